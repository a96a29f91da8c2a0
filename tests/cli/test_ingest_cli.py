"""`fabric trace ingest` end to end: the real CLI (typer runner and subprocess), real files, real DuckDB."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from fabric_trace.cli.app import app
from fabric_trace.errors import ExitCode

runner = CliRunner()

GENERATED = ("otel", "openinference", "openllmetry")
SPAN_COLS = (
    "trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, status_code, status_message, "
    "service_name, role, model, provider, input_tokens, output_tokens, cached_input_tokens, peer, "
    "user_id, session_id, attributes, resource_attributes, events, links, scope_name"
)


def ingest(db: str, *paths: str, extra: tuple[str, ...] = ()) -> tuple[int, dict, str]:
    res = runner.invoke(app, ["trace", "ingest", *paths, "--db", db, "--json", *extra])
    summary = json.loads(res.stdout) if res.stdout.strip() else {}
    return res.exit_code, summary, res.stderr


def rows(db: str, sql: str) -> list[tuple]:
    con = duckdb.connect(db, read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("scenario", GENERATED)
def test_each_encoding_ingests_to_the_same_rows(tmp_path: Path, samples: Path, scenario: str) -> None:
    """JSON lines, raw protobuf, gzip protobuf and collector framing give identical span rows."""
    results = []
    for suffix in (".otlp.jsonl", ".otlp.pb", ".otlp.pb.gz"):
        db = str(tmp_path / f"{suffix.strip('.')}.duckdb")
        code, summary, _ = ingest(db, str(samples / "generated" / f"{scenario}{suffix}"))
        assert code == 0
        assert summary["spans_ingested"] == 6 and summary["spans_rejected"] == 0
        results.append(rows(db, f"SELECT {SPAN_COLS} FROM spans ORDER BY span_id"))
    assert results[0] == results[1] == results[2]
    assert len(results[0]) == 6
    framed_db = str(tmp_path / "framed.duckdb")
    ingest(framed_db, str(samples / "generated" / "all3.collector-fileexporter-proto.bin"))
    framed = rows(framed_db, f"SELECT {SPAN_COLS} FROM spans WHERE trace_id = ? ORDER BY span_id".replace("?", f"'{results[0][0][0]}'"))
    assert framed == results[0]


def test_exact_values_from_real_instrumentation(tmp_path: Path, samples: Path) -> None:
    db = str(tmp_path / "t.duckdb")
    ingest(db, str(samples / "generated" / "otel.otlp.jsonl"))
    (root,) = rows(db, "SELECT name, kind, parent_span_id, role, user_id, session_id, service_name, service_namespace FROM spans WHERE parent_span_id IS NULL")
    assert root == ("invoke_agent weather-agent", "INTERNAL", None, "agent", root[4], root[5], "fixture-agent-otel", "fixtures")
    chat = rows(db, "SELECT span_id, start_ns, end_ns, kind, role, provider, model, input_tokens, "
                    "json_extract(attributes, '$.\"gen_ai.request.temperature\"')::DOUBLE FROM spans "
                    "WHERE span_id = 'e00a850ad10a87d4'")
    assert chat == [("e00a850ad10a87d4", 1795824119279428775, 1795824119362861252, "CLIENT", "llm", "openai",
                     "gpt-4o-mini-2024-07-18", chat[0][7], 0.2)]
    roles = {r for (r,) in rows(db, "SELECT DISTINCT role FROM spans")}
    assert {"agent", "llm", "tool", "embedding"} <= roles
    errors = rows(db, "SELECT count(*) FROM spans WHERE status_code = 'ERROR'")
    assert errors == [(1,)]
    events = rows(db, "SELECT time_ns, name, json_extract_string(attributes, '$.result') FROM span_events")
    assert events == [(1795824119363145445, "tool.result", "rainy, 12C")]


@pytest.mark.parametrize("scenario", GENERATED)
def test_roles_recognised_for_each_genai_instrumentation(tmp_path: Path, samples: Path, scenario: str) -> None:
    db = str(tmp_path / "t.duckdb")
    ingest(db, str(samples / "generated" / f"{scenario}.otlp.jsonl"))
    roles = dict(rows(db, "SELECT role, count(*) FROM spans GROUP BY role"))
    assert roles.get("llm", 0) == 3, roles
    assert roles.get("embedding", 0) == 1 and roles.get("tool", 0) == 1 and roles.get("agent", 0) == 1


def test_reingest_and_overlap_add_nothing(tmp_path: Path, samples: Path) -> None:
    db = str(tmp_path / "t.duckdb")
    f = str(samples / "generated" / "otel.otlp.jsonl")
    code, first, _ = ingest(db, f)
    assert (code, first["spans_ingested"]) == (0, 6)
    code, again, err = ingest(db, f)
    assert code == 0 and again["spans_ingested"] == 0 and again["files_skipped"] == 1
    assert "already ingested" in err and "0 new" in err
    # same spans under another encoding (different bytes): all duplicates
    code, overlap, _ = ingest(db, str(samples / "generated" / "otel.otlp.pb"))
    assert (code, overlap["spans_ingested"], overlap["spans_duplicate"]) == (0, 0, 6)
    assert rows(db, "SELECT count(*) FROM spans") == [(6,)]
    assert rows(db, "SELECT count(*), sum(spans_ingested) FROM manifest") == [(2, 6)]


def test_conflicting_resend_keeps_first_and_quarantines_second(tmp_path: Path, samples: Path) -> None:
    db = str(tmp_path / "t.duckdb")
    src = (samples / "generated" / "otel.otlp.jsonl").read_text()
    ingest(db, str(samples / "generated" / "otel.otlp.jsonl"))
    changed = tmp_path / "changed.jsonl"
    changed.write_text(src.replace('"name":"chat gpt-4o-mini"', '"name":"chat CHANGED"', 1))
    code, summary, _ = ingest(db, str(changed))
    assert code == 0
    assert summary["spans_rejected"] == 1 and summary["spans_duplicate"] == 5 and summary["spans_ingested"] == 0
    assert rows(db, "SELECT count(*) FROM spans WHERE name = 'chat CHANGED'") == [(0,)]
    (reason,) = rows(db, "SELECT reason FROM quarantine")[0]
    assert "conflicting duplicate" in reason


def test_bad_lines_are_quarantined_and_the_rest_loads(tmp_path: Path, samples: Path) -> None:
    good = (samples / "generated" / "otel.otlp.jsonl").read_bytes().splitlines()
    bad = tmp_path / "mixed.jsonl"
    bad.write_bytes(b"\n".join([good[0], b"{not json", b"\xff\xfe garbage", *good[1:], good[0][: len(good[0]) // 2]]))
    db = str(tmp_path / "t.duckdb")
    code, summary, err = ingest(db, str(bad))
    assert code == 0
    assert summary["spans_ingested"] == 6
    q = rows(db, "SELECT location, action FROM quarantine ORDER BY quarantine_id")
    assert [loc for loc, _ in q] == ["line 2", "line 3", f"line {len(good) + 3}"]
    assert "quarantined" in err
    code, _, _ = ingest(str(tmp_path / "strict.duckdb"), str(bad), extra=("--strict",))
    assert code == ExitCode.DATA


def test_only_garbage_exits_65(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x7fELF" + os.urandom(200))
    code, summary, err = ingest(str(tmp_path / "t.duckdb"), str(junk))
    assert code == ExitCode.DATA
    assert summary["files_failed"] == 1 and "Traceback" not in err


def test_missing_input_exits_66(tmp_path: Path) -> None:
    code, _, err = ingest(str(tmp_path / "t.duckdb"), str(tmp_path / "nope.jsonl"))
    assert code == ExitCode.NO_INPUT and "does not exist" in err


def test_corrupt_database_exits_74(tmp_path: Path, samples: Path) -> None:
    db = tmp_path / "bad.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE t AS SELECT range AS i FROM range(1000)")
    con.close()
    data = bytearray(db.read_bytes())
    data[4096:] = (b"garbage" * len(data))[: len(data) - 4096]  # a DuckDB header, damaged blocks
    db.write_bytes(bytes(data))
    code, _, err = ingest(str(db), str(samples / "generated" / "otel.otlp.jsonl"))
    assert code == ExitCode.DB_ERROR and "Traceback" not in err
    assert db.read_bytes() == bytes(data)  # never touched


def test_garbage_database_is_refused_as_not_duckdb(tmp_path: Path, samples: Path) -> None:
    db = tmp_path / "bad.duckdb"
    db.write_bytes(b"garbage" * 1000)
    code, _, err = ingest(str(db), str(samples / "generated" / "otel.otlp.jsonl"))
    assert code == ExitCode.USAGE and "not a DuckDB database" in err and "Traceback" not in err
    assert db.read_bytes() == b"garbage" * 1000  # never touched


def test_decompression_bomb_is_refused(tmp_path: Path, samples: Path) -> None:
    bomb = tmp_path / "bomb.jsonl.gz"
    with gzip.open(bomb, "wb") as f:
        f.write((samples / "generated" / "otel.otlp.jsonl").read_bytes())
        f.write(b" " * (3 * 1024 * 1024))
    code, summary, err = ingest(str(tmp_path / "t.duckdb"), str(bomb), extra=("--max-decompressed-mb", "1"))
    assert code == ExitCode.DATA and summary["files_failed"] == 1
    assert "exceeds" in err


@pytest.mark.slow
def test_directories_globs_and_stdin(tmp_path: Path, samples: Path) -> None:
    db = str(tmp_path / "t.duckdb")
    code, summary, _ = ingest(db, str(samples / "generated"))
    assert code == 0 and summary["files"] == 11 and summary["spans_ingested"] == 18 and summary["traces"] == 3
    db2 = str(tmp_path / "g.duckdb")
    code, summary, _ = ingest(db2, str(samples / "generated" / "*.jsonl"))
    assert summary["files"] == 3 and summary["spans_ingested"] == 18
    db3 = str(tmp_path / "s.duckdb")
    res = subprocess.run(
        [sys.executable, "-m", "fabric_trace", "trace", "ingest", "-", "--db", db3, "--json"],
        input=(samples / "generated" / "openllmetry.otlp.pb.gz").read_bytes(), capture_output=True, timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["spans_ingested"] == 6


def test_json_summary_keys(tmp_path: Path, samples: Path) -> None:
    _, summary, _ = ingest(str(tmp_path / "t.duckdb"), str(samples / "generated" / "otel.otlp.jsonl"))
    assert {"files", "spans_ingested", "spans_duplicate", "spans_rejected", "traces"} <= set(summary)
    assert summary["spans_decoded"] == summary["spans_ingested"] + summary["spans_duplicate"] + summary["spans_rejected"]


def test_db_busy_exits_75(tmp_path: Path, samples: Path) -> None:
    db = str(tmp_path / "t.duckdb")
    ingest(db, str(samples / "generated" / "otel.otlp.jsonl"))
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb,time; c=duckdb.connect({db!r}); print('x', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline()
        code, _, err = ingest(db, str(samples / "generated" / "otel.otlp.pb"), extra=("--lock-timeout", "0.5"))
        assert code == ExitCode.DB_BUSY and "locked" in err
        res = runner.invoke(app, ["query", "SELECT 1", "--db", db, "--lock-timeout", "0.3"])
        assert res.exit_code == ExitCode.DB_BUSY
    finally:
        holder.kill()
        holder.wait()


def test_demo_jsonl_and_framed_proto_give_identical_rows(tmp_path: Path) -> None:
    """The committed demo in two encodings (JSON lines; Collector-framed protobuf) loads identically."""
    demo = Path(__file__).resolve().parents[2] / "fixtures" / "demo"
    cols = SPAN_COLS + ", resource_id, scope_id, trace_state, flags, dropped_attributes_count"
    out = []
    for name in ("demo.jsonl", "demo.bin"):
        db = str(tmp_path / f"{name}.duckdb")
        code, summary, _ = ingest(db, str(demo / name), extra=("--no-analyze",))
        assert code == 0 and summary["spans_rejected"] == 0
        out.append(rows(db, f"SELECT {cols} FROM spans ORDER BY trace_id, span_id"))
    assert len(out[0]) == 5656
    assert out[0] == out[1]
    both = str(tmp_path / "both.duckdb")
    code, summary, _ = ingest(both, str(demo / "demo.jsonl"), str(demo / "demo.bin"), extra=("--no-analyze",))
    assert summary["spans_ingested"] == 5656 and summary["spans_duplicate"] == 5656 and summary["spans_rejected"] == 0
