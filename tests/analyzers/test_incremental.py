"""Incremental refresh equals a one-shot analysis (docs/analyzers.md, "Refresh").

A generated corpus (sessions of several traces, cache misses, remote state,
prefix-cache misses, repeated fetches, unguarded tools, clock skew) is written
as OTLP JSON lines of a few spans each, so a trace's spans are spread over
several lines. Hypothesis splits the lines into random files and ingests them in
random order, each ingest refreshing incrementally (late spans re-derive their
trace; session-scoped rules their sessions; changed store-wide medians the
traces that use them). Every derived view must then equal a one-shot ingest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fabric_trace.analyzers import engine
from fabric_trace.fixtures_gen import Scenario, write_otlp_jsonl
from fabric_trace.service import run_ingest

#: Every derived view and table, as a multiset of rows.
DERIVED = {
    "traces": "SELECT * FROM traces",
    "critical_path": "SELECT * FROM critical_path",
    "span_metrics": "SELECT * FROM span_metrics",
    "findings": "SELECT analyzer, kind, severity, trace_id, span_id, message, CAST(details AS VARCHAR) FROM findings",
    "locality_accesses": "SELECT * FROM locality_accesses",
    "locality_trace_store": "SELECT * FROM locality_trace_store",
    "locality_median_store": "SELECT * FROM locality_median_store",
    "trust_spans": "SELECT * FROM trust_spans",
    "trust_crossings": "SELECT * FROM trust_crossings",
    "trust_zone_store": "SELECT * FROM trust_zone_store",
    "llm_calls": "SELECT * FROM llm_calls",
    "session_turns": "SELECT * FROM session_turns",
    "sessions": "SELECT * FROM sessions",
}

SCENARIO = Scenario(traces=24, seed=11, cache_miss_rate=0.4, remote_state_fraction=0.3, repeat_fetch_rate=0.3,
                    unguarded_tool_rate=0.3, prefix_cache_miss_rate=0.4, clock_skew_ns=3_000_000,
                    max_session_turns=4, error_rate=0.1)


def snapshot(db: str) -> dict[str, list[tuple[Any, ...]]]:
    con = duckdb.connect(db, read_only=True)
    try:
        return {name: sorted(con.execute(sql).fetchall(), key=repr) for name, sql in DERIVED.items()}
    finally:
        con.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[bytes], dict[str, list[tuple[Any, ...]]]]:
    root = tmp_path_factory.mktemp("incremental")
    src = root / "all.jsonl"
    write_otlp_jsonl(SCENARIO, src, spans_per_request=7)
    db = str(root / "oneshot.duckdb")
    run_ingest(db, [str(src)])
    return src.read_bytes().splitlines(keepends=True), snapshot(db)


def test_corpus_exercises_the_incremental_paths(corpus: tuple[list[bytes], dict[str, list[Any]]]) -> None:
    lines, expected = corpus
    assert len(lines) >= 20
    kinds = {row[1] for row in expected["findings"]}
    assert {"cache_miss", "prefix_cache_miss", "session_redundant_fetch", "clock_skew"} <= kinds, kinds
    assert any(row[5] for row in expected["locality_trace_store"])  # some what-if changed a trace
    assert len(expected["llm_calls"]) > 20 and any(row[2] > 1 for row in expected["sessions"])  # multi-turn sessions


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow])
@given(data=st.data())
def test_random_files_in_random_order_equal_one_shot(corpus: tuple[list[bytes], dict[str, list[Any]]],
                                                     tmp_path_factory: pytest.TempPathFactory,
                                                     data: st.DataObject) -> None:
    lines, expected = corpus
    # contiguous runs of lines (whole traces, with traces cut at the edges: late spans), or lines scattered
    n_files = data.draw(st.integers(2, 6), label="files")
    if data.draw(st.booleans(), label="contiguous"):
        cuts = sorted(data.draw(st.lists(st.integers(1, len(lines) - 1), min_size=n_files - 1,
                                         max_size=n_files - 1), label="cuts"))
        owner = [sum(1 for c in cuts if c <= i) for i in range(len(lines))]
    else:
        owner = data.draw(st.lists(st.integers(0, n_files - 1), min_size=len(lines), max_size=len(lines)),
                          label="split")
    order = data.draw(st.permutations(range(n_files)), label="order")
    # default batches (one transaction per refresh), or batches of a few traces (a commit per batch)
    batch = data.draw(st.sampled_from([engine.BATCH_SPANS, 60]), label="batch_spans")
    root = tmp_path_factory.mktemp("split")
    files: list[Path] = []
    for f in range(n_files):
        path = root / f"part{f}.jsonl"
        path.write_bytes(b"".join(line for line, o in zip(lines, owner) if o == f))
        files.append(path)
    db = str(root / "incremental.duckdb")
    default, engine.BATCH_SPANS = engine.BATCH_SPANS, batch
    try:
        for f in order:
            if files[f].stat().st_size:
                run_ingest(db, [str(files[f])])
    finally:
        engine.BATCH_SPANS = default
    got = snapshot(db)
    for name in DERIVED:
        assert got[name] == expected[name], name


def test_refresh_after_duplicates_only_changes_nothing(tmp_path: Path,
                                                       corpus: tuple[list[bytes], dict[str, list[Any]]]) -> None:
    lines, expected = corpus
    src = tmp_path / "all.jsonl"
    src.write_bytes(b"".join(lines))
    db = str(tmp_path / "t.duckdb")
    run_ingest(db, [str(src)])
    again = tmp_path / "again.jsonl"
    again.write_bytes(b"".join(lines[:5]))
    run_ingest(db, [str(again)])  # every span already there
    assert snapshot(db) == expected


def test_an_interrupted_refresh_of_several_batches_is_redone_in_full(
        tmp_path: Path, corpus: tuple[list[bytes], dict[str, list[Any]]], monkeypatch: pytest.MonkeyPatch) -> None:
    """A refresh of several batches commits per batch; stopped in the middle it leaves
    ``refresh_pending``, the store reads as stale, and the next refresh derives everything again."""
    from fabric_trace.analyzers.engine import is_stale, refresh
    from fabric_trace.config import Config
    from fabric_trace.store import db as store

    lines, expected = corpus
    src = tmp_path / "all.jsonl"
    src.write_bytes(b"".join(lines))
    db = str(tmp_path / "t.duckdb")
    run_ingest(db, [str(src)], analyze=False)
    write, calls = engine._Run._write, []

    def stop_at_the_third_batch(self: Any, a: Any, out: Any, **kw: Any) -> None:
        calls.append(a.name)
        if calls.count("trust") == 3:
            raise KeyboardInterrupt
        write(self, a, out, **kw)

    monkeypatch.setattr(engine._Run, "_write", stop_at_the_third_batch)
    con = store.connect(db)
    try:
        with pytest.raises(KeyboardInterrupt):
            refresh(con, Config(), batch_spans=60)
        meta = dict(con.execute("SELECT key, value FROM fabric_meta").fetchall())
        assert meta.get("refresh_pending") == "1" and is_stale(con)
        assert con.execute("SELECT count(DISTINCT trace_id) FROM latency_spans").fetchall()[0][0] > 0  # committed
        monkeypatch.setattr(engine._Run, "_write", write)
        assert refresh(con, Config(), batch_spans=60)
        assert not is_stale(con)
        assert "refresh_pending" not in dict(con.execute("SELECT key, value FROM fabric_meta").fetchall())
    finally:
        con.close()
    assert snapshot(db) == expected


def test_a_first_analysis_derives_locality_once_and_replays_the_what_if(
        tmp_path: Path, corpus: tuple[list[bytes], dict[str, list[Any]]], monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the first analysis no what-if median is known: every trace is derived once (with no
    medians), then only the what-if of the traces with a critical-path access is replayed with the
    medians (``MEDIANS.rederive``), not the whole locality analyzer again; and the kernels of a batch
    share one private database (the spans are copied into a database once per batch)."""
    from fabric_trace.analyzers import contract
    from fabric_trace.analyzers.engine import refresh
    from fabric_trace.analyzers.locality import derive as locality_derive
    from fabric_trace.config import Config
    from fabric_trace.store import db as store

    lines, expected = corpus
    src = tmp_path / "all.jsonl"
    src.write_bytes(b"".join(lines))
    db = str(tmp_path / "t.duckdb")
    run_ingest(db, [str(src)], analyze=False)
    seen: dict[str, list[str]] = {"derive": [], "rederive": []}
    databases: list[int] = []
    batches: list[int] = []

    def counting(kind: str, fn: Any) -> Any:
        def wrapped(part: Any, config: Any) -> Any:
            seen[kind].extend(part.spans.column("trace_id").unique().to_pylist())
            if kind == "rederive":
                assert part.spans.column_names == ["trace_id", "span_id", "parent_span_id"]
            return fn(part, config)
        return wrapped

    def counting_database(part: Any) -> Any:
        databases.append(part.spans.num_rows)
        return new_database(part)

    def counting_batches(self: Any, table: str) -> Any:
        for _ in batches_of(self, table):
            batches.append(1)
            yield

    new_database, batches_of = contract._kernel_database, engine._Run._batches
    monkeypatch.setattr(locality_derive, "derive", counting("derive", locality_derive.derive))
    monkeypatch.setattr(locality_derive, "rederive", counting("rederive", locality_derive.rederive))
    monkeypatch.setattr(contract, "_kernel_database", counting_database)
    monkeypatch.setattr(engine._Run, "_batches", counting_batches)
    con = store.connect(db)
    try:
        refresh(con, Config(), batch_spans=60)
        replayed = {r[0] for r in con.execute(
            "SELECT DISTINCT trace_id FROM locality_access_store "
            "WHERE critical_ns > 0 AND access_type <> 'prefix_cache'").fetchall()}
        traces = {r[0] for r in con.execute("SELECT trace_id FROM latency_traces").fetchall()}
    finally:
        con.close()
    assert sorted(seen["derive"]) == sorted(traces)  # each trace once
    assert replayed and replayed <= set(seen["rederive"]) <= traces  # (closed over sessions)
    assert len(databases) == len(batches) > 2  # one kernel database per batch (the llm kernel may skip one)
    assert snapshot(db) == expected


@pytest.mark.slow
def test_a_trace_bigger_than_a_batch_is_a_batch_of_its_own(tmp_path: Path) -> None:
    """A 120k-span trace (a root, 300 workers, 400-deep chains under each) next to small traces,
    analysed with batches of 5,000 spans: the big trace is one batch, the small ones share theirs,
    and the result equals one batch for everything."""
    import orjson
    from json_helpers import doc, span

    from fabric_trace.analyzers.engine import refresh
    from fabric_trace.config import Config
    from fabric_trace.store import db as store

    big, lines = "b" * 32, []
    spans = [span(traceId=big, spanId=f"{1:016x}", startTimeUnixNano="0", endTimeUnixNano=str(10**9), kind=2)]
    n = 1
    for w in range(300):
        parent = f"{1:016x}"
        for d in range(400):
            n += 1
            sid = f"{n:016x}"
            spans.append(span(traceId=big, spanId=sid, parentSpanId=parent, name=f"w{w}",
                              startTimeUnixNano=str(w * 1000 + d), endTimeUnixNano=str(10**9 - w * 1000 - d)))
            parent = sid
    for i in range(0, len(spans), 5000):
        lines.append(orjson.dumps(doc(*spans[i:i + 5000])))
    src = tmp_path / "big.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    small = tmp_path / "small.jsonl"
    write_otlp_jsonl(Scenario(traces=20, seed=3), small)
    db = str(tmp_path / "t.duckdb")
    run_ingest(db, [str(src), str(small)], analyze=False)
    con = store.connect(db)
    try:
        refresh(con, Config(), force=True, batch_spans=5_000)
        batched = {name: sorted(con.execute(sql).fetchall(), key=repr) for name, sql in DERIVED.items()}
        ((count, depth),) = con.execute(
            "SELECT t.span_count, max(m.depth) FROM traces t JOIN span_metrics m USING (trace_id) "
            "WHERE t.trace_id = ? GROUP BY t.span_count", [big]).fetchall()
        assert count == len(spans) == 120_001 and depth == 400
        refresh(con, Config(), force=True, batch_spans=10_000_000)
        whole = {name: sorted(con.execute(sql).fetchall(), key=repr) for name, sql in DERIVED.items()}
    finally:
        con.close()
    assert batched == whole
