"""The Parquet lake without Spark: export (layout, whole traces, incremental, write-then-rename),
validation of a lake written by a pipeline, and the CLI's errors (docs/lake.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from fabric_trace.cli.app import app
from fabric_trace.errors import EngineUnavailable, LakeError
from fabric_trace.fixtures_gen import Scenario, write_otlp_jsonl
from fabric_trace.lake.export import export_lake
from fabric_trace.lake.layout import BUCKET_SQL, STATE_FILE, bucket_of, data_files, lake_schema, open_lake
from fabric_trace.service import run_ingest

SCENARIO = Scenario(traces=30, seed=5, max_session_turns=3, cache_miss_rate=0.3, unguarded_tool_rate=0.2)


def _spans(lake: Path) -> list[tuple[Any, ...]]:
    files = [str(f) for f in data_files(lake / "spans")]
    con = duckdb.connect()
    try:
        return sorted(con.execute("SELECT * FROM read_parquet(?, hive_partitioning = false)", [files]).fetchall(),
                      key=repr)
    finally:
        con.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[bytes]]:
    root = tmp_path_factory.mktemp("lake")
    src = root / "all.jsonl"
    write_otlp_jsonl(SCENARIO, src, spans_per_request=5)
    return root, src.read_bytes().splitlines(keepends=True)


def test_export_keeps_traces_whole_and_matches_the_store(corpus: tuple[Path, list[bytes]], tmp_path: Path) -> None:
    root, lines = corpus
    src = tmp_path / "all.jsonl"
    src.write_bytes(b"".join(lines))
    db = str(tmp_path / "s.duckdb")
    run_ingest(db, [str(src)], analyze=False)
    result = export_lake(db, tmp_path / "lake", buckets=4)
    assert result.partitions_written > 1 and not result.up_to_date
    lake = open_lake(tmp_path / "lake")  # validates every file and that no trace is split
    con = duckdb.connect(db, read_only=True)
    cols = ", ".join(lake_schema("spans").names)
    want = sorted(con.execute(f"SELECT {cols} FROM span_store").fetchall(), key=repr)
    con.close()
    assert _spans(tmp_path / "lake") == want
    for f in lake.files["spans"]:  # one file per partition, named by day and bucket
        assert f.name == "data.parquet"
        bucket = int(f.parent.name.removeprefix("bucket="))
        ids = set(pq.read_table(f, columns=["trace_id"]).column("trace_id").to_pylist())
        assert {bucket_of(t, 4) for t in ids} == {bucket}
    state = json.loads((tmp_path / "lake" / STATE_FILE).read_text())
    assert state["buckets"] == 4
    assert export_lake(db, tmp_path / "lake").up_to_date
    assert not (tmp_path / "lake" / "_staging").exists()


def test_bucket_is_the_same_in_python_and_duckdb() -> None:
    con = duckdb.connect()
    for tid in ("4bf92f3577b34da6a3ce929d0e0e4736", "x", "0" * 32, "zipkin-ü"):
        assert con.execute(f"SELECT {BUCKET_SQL.format(col='?', buckets=16)}", [tid]).fetchall()[0][0] \
            == bucket_of(tid, 16)


def test_incremental_export_equals_a_fresh_export(corpus: tuple[Path, list[bytes]], tmp_path: Path) -> None:
    """Late spans (of traces already exported) land in their trace's partition; the result equals a
    one-shot export of the whole store, partition by partition."""
    _, lines = corpus
    parts = [lines[i::3] for i in range(3)]  # every file has spans of most traces
    db = str(tmp_path / "inc.duckdb")
    for k, part in enumerate(parts):
        f = tmp_path / f"part{k}.jsonl"
        f.write_bytes(b"".join(part))
        run_ingest(db, [str(f)], analyze=False)
        export_lake(db, tmp_path / "inc", buckets=3)
    whole = tmp_path / "whole.jsonl"
    whole.write_bytes(b"".join(lines))
    db2 = str(tmp_path / "one.duckdb")
    run_ingest(db2, [str(whole)], analyze=False)
    export_lake(db2, tmp_path / "one", buckets=3)

    def layout(lake: Path) -> dict[str, list[Any]]:
        out = {}
        for f in data_files(lake / "spans"):
            rows = pq.read_table(f).to_pylist()
            out[str(f.relative_to(lake))] = sorted((r["trace_id"], r["span_id"]) for r in rows)
        return out

    assert layout(tmp_path / "inc") == layout(tmp_path / "one")
    open_lake(tmp_path / "inc")


def test_a_bucket_count_change_is_refused(corpus: tuple[Path, list[bytes]], tmp_path: Path) -> None:
    _, lines = corpus
    src = tmp_path / "a.jsonl"
    src.write_bytes(b"".join(lines[:10]))
    db = str(tmp_path / "s.duckdb")
    run_ingest(db, [str(src)], analyze=False)
    export_lake(db, tmp_path / "lake", buckets=2)
    res = CliRunner().invoke(app, ["lake", "export", "--db", db, "--out", str(tmp_path / "lake"), "--buckets", "3"])
    assert res.exit_code == 2 and "would split traces" in res.output


# -- a lake written by a pipeline: bad input names the file and the column -------------------------

def _pipeline_lake(root: Path, spans: pa.Table, resources: pa.Table | None = None) -> None:
    (root / "spans" / "day=2026-01-01" / "bucket=0").mkdir(parents=True)
    pq.write_table(spans, root / "spans" / "day=2026-01-01" / "bucket=0" / "part-0.parquet")
    (root / "resources").mkdir()
    pq.write_table(resources if resources is not None else lake_schema("resources").empty_table(),
                   root / "resources" / "r.parquet")


def _one_span(**over: Any) -> dict[str, Any]:
    row = {f.name: None for f in lake_schema("spans")}
    row.update(trace_id="t1", span_id="s1", name="n", kind="SERVER", start_ns=1, end_ns=2, status_code="UNSET",
               attributes="{}", events="[]", links="[]", dropped_attributes_count=0, dropped_events_count=0,
               dropped_links_count=0, resource_id="r", scope_id="sc", role="other")
    row.update(over)
    return row


def test_pipeline_lake_in_the_documented_schema_is_accepted(tmp_path: Path) -> None:
    _pipeline_lake(tmp_path, pa.Table.from_pylist([_one_span()], schema=lake_schema("spans")))
    lake = open_lake(tmp_path)
    assert len(lake.files["spans"]) == 1 and lake.files["scopes"] == []


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t.drop_columns(["role"]), "column 'role' is missing"),
    (lambda t: t.append_column("extra", pa.array(["x"])), "unexpected column 'extra'"),
    (lambda t: t.set_column(t.schema.get_field_index("start_ns"), "start_ns", pa.array(["1"])),
     "column 'start_ns' has type string, expected int64"),
])
def test_pipeline_lake_with_bad_columns_names_file_and_column(tmp_path: Path, change: Any, message: str) -> None:
    table = pa.Table.from_pylist([_one_span()], schema=lake_schema("spans"))
    _pipeline_lake(tmp_path, change(table))
    with pytest.raises(LakeError, match=message) as err:
        open_lake(tmp_path)
    assert "part-0.parquet" in err.value.message


def test_a_trace_split_across_partitions_is_an_error(tmp_path: Path) -> None:
    _pipeline_lake(tmp_path, pa.Table.from_pylist([_one_span()], schema=lake_schema("spans")))
    other = tmp_path / "spans" / "day=2026-01-02" / "bucket=0"
    other.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([_one_span(span_id="s2")], schema=lake_schema("spans")),
                   other / "part-0.parquet")
    with pytest.raises(LakeError, match="trace t1 is split across partitions"):
        open_lake(tmp_path)
    res = CliRunner().invoke(app, ["analyze", "--engine", "spark", "--lake", str(tmp_path)])
    assert res.exit_code == 65 and "split across partitions" in res.output


def test_reports_over_a_lake_without_derived_tables_say_what_to_run(tmp_path: Path) -> None:
    _pipeline_lake(tmp_path, pa.Table.from_pylist([_one_span()], schema=lake_schema("spans")))
    for args in (["report", "latency"], ["report", "trust"], ["query", "SELECT 1"]):
        res = CliRunner().invoke(app, [*args, "--lake", str(tmp_path)])
        assert res.exit_code == 65, res.output
        assert "fabric analyze --engine spark --lake" in res.output


def test_no_lake_and_usage_errors(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["report", "locality", "--lake", str(tmp_path / "nope")])
    assert res.exit_code == 66 and "no lake at" in res.output  # a missing input path (docs/exit-codes.md)
    res = CliRunner().invoke(app, ["analyze", "--engine", "spark"])
    assert res.exit_code == 2 and "--lake" in res.output
    res = CliRunner().invoke(app, ["analyze", "--lake", str(tmp_path)])
    assert res.exit_code == 2 and "--engine spark" in res.output


def test_spark_without_java_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from fabric_trace.lake.spark import session

    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    monkeypatch.setattr(session, "java_version", lambda: None)
    with pytest.raises(EngineUnavailable, match="Java 17"):
        session.spark_session("local[1]")
    monkeypatch.setattr(session, "java_version", lambda: 11)
    with pytest.raises(EngineUnavailable, match="found Java 11"):
        session.spark_session("local[1]")
