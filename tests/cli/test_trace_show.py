"""``fabric trace show``: what failed comes first (status, exception, stack line), model and tokens,
start offsets and span ids; ``--span`` shows one span whole."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pytest
from rich.cells import cell_len
from typer.testing import CliRunner

from conftest import SAMPLES

from fabric_trace.browse import first_stack_line
from fabric_trace.cli.app import app
from fabric_trace.errors import ExitCode

runner = CliRunner()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("show") / "s.duckdb")
    files = [str(SAMPLES / "generated" / f"{name}.otlp.jsonl") for name in ("otel", "openinference", "openllmetry")]
    res = runner.invoke(app, ["trace", "ingest", *files, "--db", path])
    assert res.exit_code == 0, res.stderr
    return path


def _error_span(db: str, with_exception: bool) -> tuple[str, str]:
    con = duckdb.connect(db, read_only=True)
    try:
        op = "LIKE" if with_exception else "NOT LIKE"
        return con.execute(f"SELECT trace_id, span_id FROM span_store WHERE status_code = 'ERROR' "
                           f"AND events {op} '%exception%' ORDER BY trace_id LIMIT 1").fetchone()
    finally:
        con.close()


def test_failed_span_shows_status_exception_and_first_stack_line(db: str) -> None:
    trace_id, span_id = _error_span(db, with_exception=True)
    res = runner.invoke(app, ["trace", "show", trace_id[:10], "--db", db])
    assert res.exit_code == 0, res.stderr
    out = res.stdout
    errors = out.index("Errors (1 span)")
    assert errors < out.index("mk span")  # what failed comes before the tree
    block = out[errors:out.index("mk span")]
    assert f"✗ {span_id[:8]}" in block
    assert "status: " in block and "404" in block
    assert "exception: openai.NotFoundError: Error code: 404 - not found" in block
    assert 'at: File "' in block and "line " in block
    assert "at +" in block  # start offset of the failed span


def test_error_type_attribute_when_there_is_no_exception_event(db: str) -> None:
    trace_id, _ = _error_span(db, with_exception=False)
    out = runner.invoke(app, ["trace", "show", trace_id, "--db", db]).stdout
    assert "error type: <class 'openai.NotFoundError'>" in out


def test_tree_has_span_ids_and_start_offsets_and_llm_calls_have_model_and_tokens(db: str) -> None:
    con = duckdb.connect(db, read_only=True)
    trace_id, span_id, model, tokens_in = con.execute(
        "SELECT trace_id, span_id, model, input_tokens FROM span_store WHERE role = 'llm' AND input_tokens > 0 "
        "ORDER BY trace_id, start_ns LIMIT 1").fetchone()
    ids = [r[0] for r in con.execute("SELECT span_id FROM span_store WHERE trace_id = ?", [trace_id]).fetchall()]
    con.close()
    out = runner.invoke(app, ["trace", "show", trace_id, "--db", db]).stdout
    header = next(line for line in out.splitlines() if line.startswith("mk span"))
    assert " id " in header and " start " in header
    tree = out[out.index("mk span"):out.index("LLM calls")]
    for sid in ids:
        assert sid[:8] in tree
    assert "+0 ns" in tree
    llm = out[out.index("LLM calls"):]
    line = next(line for line in llm.splitlines() if line.startswith(span_id[:8]))
    assert model[:10] in line and str(tokens_in) in line.split()


def test_findings_refer_to_span_ids_shown_in_the_tree(db: str) -> None:
    con = duckdb.connect(db, read_only=True)
    trace_id, span_id = con.execute("SELECT trace_id, span_id FROM findings WHERE span_id IS NOT NULL "
                                    "ORDER BY trace_id LIMIT 1").fetchone()
    con.close()
    out = runner.invoke(app, ["trace", "show", trace_id, "--db", db]).stdout
    findings = out[out.index("Findings"):]
    assert span_id[:8] in findings and span_id[:8] in out[:out.index("Findings")]


def test_json_carries_the_new_fields(db: str) -> None:
    trace_id, span_id = _error_span(db, with_exception=True)
    doc = json.loads(runner.invoke(app, ["trace", "show", trace_id, "--db", db, "--format", "json"]).stdout)
    span = next(s for s in doc["spans"] if s["span_id"] == span_id)
    assert span["exception"]["type"] == "openai.NotFoundError"
    assert span["exception"]["stack_first_line"].startswith("File ")
    assert span["status_message"] and span["start_offset_ms"] > 0
    root = next(s for s in doc["spans"] if not s["parent_span_id"])
    assert root["start_offset_ms"] == 0
    assert {"model", "input_tokens", "output_tokens", "cached_input_tokens", "provider"} <= set(span)


def test_span_option_shows_one_span_whole(db: str) -> None:
    trace_id, span_id = _error_span(db, with_exception=True)
    res = runner.invoke(app, ["trace", "show", trace_id[:12], "--span", span_id[:6], "--db", db])
    assert res.exit_code == 0, res.stderr
    out = res.stdout
    assert f"Span {span_id} of trace {trace_id}" in out
    for section in ("Attributes", "Resource attributes", "Events"):
        assert section in out
    assert "openinference.span.kind" in out or "gen_ai" in out or "llm." in out
    assert "exception" in out and "Traceback (most recent call last)" in out  # the whole stack trace
    assert "service.name" in out
    doc = json.loads(runner.invoke(app, ["trace", "show", trace_id, "--span", span_id, "--db", db,
                                         "--format", "json"]).stdout)
    assert doc["span_id"] == span_id and isinstance(doc["attributes"], dict)
    assert doc["events"][0]["name"] == "exception" and doc["exception"]["type"] == "openai.NotFoundError"
    assert "service.name" in doc["resource_attributes"]


def test_span_option_at_80_columns_wraps_instead_of_cutting(db: str) -> None:
    from fabric_trace.browse import span_detail, span_report
    from fabric_trace.render.detail import record_view
    from fabric_trace.render.formats import renderables_to_text
    from fabric_trace.service import open_analyzed

    trace_id, span_id = _error_span(db, with_exception=True)
    with open_analyzed(db) as con:
        detail = span_detail(con, trace_id, span_id)
    text = renderables_to_text(record_view(span_report(detail), width=80, styled=False), 80)
    assert max(cell_len(line) for line in text.splitlines()) <= 80
    joined = re.sub(r"\n *", "", text)  # wrapped lines joined again: nothing was cut
    assert "Traceback (most recent call last)" in joined
    assert detail["exception"]["stack_first_line"].split("/")[-1].split('"')[0] in joined


def test_unknown_and_ambiguous_span_ids(db: str) -> None:
    trace_id, _ = _error_span(db, with_exception=True)
    res = runner.invoke(app, ["trace", "show", trace_id, "--span", "zzzz", "--db", db])
    assert res.exit_code == ExitCode.USAGE and "no span 'zzzz'" in res.stderr
    assert f"fabric trace show {trace_id} --db {db}" in res.stderr
    con = duckdb.connect(db, read_only=True)
    ids = sorted(r[0] for r in con.execute("SELECT span_id FROM span_store WHERE trace_id = ?", [trace_id]).fetchall())
    con.close()
    for length in range(1, 3):
        groups: dict[str, int] = {}
        for sid in ids:
            groups[sid[:length]] = groups.get(sid[:length], 0) + 1
        shared = [p for p, n in groups.items() if n > 1]
        if shared:
            res = runner.invoke(app, ["trace", "show", trace_id, "--span", shared[0], "--db", db])
            assert res.exit_code == ExitCode.USAGE and "ambiguous" in res.stderr
            break


@pytest.mark.parametrize("stack, first", [
    ('Traceback (most recent call last):\n  File "a.py", line 3, in f\n    g()\nValueError: x',
     'File "a.py", line 3, in f'),
    ("java.lang.IllegalStateException: boom\n\tat com.acme.Handler.run(Handler.java:42)\n\tat x.y(Z.java:1)",
     "at com.acme.Handler.run(Handler.java:42)"),
    ("single line", "single line"),
    ("", None),
    (None, None),
])
def test_first_stack_line(stack: str | None, first: str | None) -> None:
    assert first_stack_line(stack) == first


def test_readme_trace_id_prefix_resolves(tmp_path: Path) -> None:
    """The README's example trace id is a unique prefix of a trace of the bundled demo data."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    prefix = re.search(r"fabric trace show ([0-9a-f]+)", readme).group(1)
    jsonl = Path(__file__).resolve().parents[2] / "fixtures" / "demo" / "demo.jsonl"
    assert f'"traceId":"{prefix}'.encode() in jsonl.read_bytes() or f'"traceId": "{prefix}'.encode() in \
        jsonl.read_bytes()
