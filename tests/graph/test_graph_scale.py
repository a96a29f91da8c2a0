"""Deep, wide and cyclic traces finish quickly; the DuckDB store path equals the reference."""

from __future__ import annotations

import random
import time
from importlib import resources
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from test_graph_helpers import reference_tables, to_arrow

from fabric_trace.graph import analyze_trace, compute_trace_metrics, iter_trace_metrics, metrics_from_arrow
from fabric_trace.graph.model import Span

N = 100_000


def _ids(n: int) -> list[str]:
    return [f"{i + 1:016x}" for i in range(n)]


def _timed(fn, *args, **kw):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


@pytest.mark.slow
def test_100k_deep_chain() -> None:
    # s0 |==============================|
    # s1  |============================|
    # ...           (each span nested in its parent, 1 ns in from each side)
    ids = _ids(N)
    spans = [Span(ids[i], ids[i - 1] if i else None, i, 2 * N - i, trace_id="t") for i in range(N)]
    a, dt_ref = _timed(analyze_trace, spans)
    assert a.spans[ids[-1]].depth == N - 1
    segs = a.critical_paths[ids[0]]
    assert sum(s.duration_ns for s in segs) == 2 * N and len(segs) == 2 * N - 1
    mb, dt_batch = _timed(metrics_from_arrow, to_arrow(spans))
    assert mb is not None and mb.segments.num_rows == 2 * N - 1
    assert max(mb.spans["depth"].to_pylist()) == N - 1
    assert dt_ref < 60 and dt_batch < 20, (dt_ref, dt_batch)  # guards against quadratic work


@pytest.mark.slow
def test_100k_wide_fan_out() -> None:
    rnd = random.Random(1)
    ids = _ids(N + 1)
    spans = [Span(ids[0], None, 0, 10**9, trace_id="t")]
    for i in range(1, N + 1):
        s = rnd.randrange(0, 10**9)
        spans.append(Span(ids[i], ids[0], s, s + rnd.randrange(0, 10**6), trace_id="t"))
    a, dt_ref = _timed(analyze_trace, spans)
    mb, dt_batch = _timed(metrics_from_arrow, to_arrow(spans))
    assert mb is not None
    ref = [(s.span_id, s.start_ns, s.end_ns) for s in a.critical_paths[ids[0]]]
    got = list(zip(mb.segments["span_id"].to_pylist(), mb.segments["start_ns"].to_pylist(),
                   mb.segments["end_ns"].to_pylist()))
    assert got == ref and sum(e - s for _, s, e in got) == 10**9
    assert dt_ref < 60 and dt_batch < 20, (dt_ref, dt_batch)  # guards against quadratic work


def test_10k_cycle_is_cut_once() -> None:
    n = 10_000
    ids = _ids(n)
    spans = [Span(ids[i], ids[i - 1], i, 3 * n - i, trace_id="t") for i in range(n)]  # 0's parent: last
    a = analyze_trace(spans)
    assert [r.kind for r in a.repairs if r.kind == "cycle_cut"] == ["cycle_cut"]
    assert a.facts.root_span_id == ids[0]
    mb = metrics_from_arrow(to_arrow(spans))
    assert mb is not None and mb.repairs["kind"].to_pylist().count("cycle_cut") == 1


def _store(path: Path, spans: list[Span]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    con.execute(resources.files("fabric_trace.store").joinpath("schema.sql").read_text())
    con.register("gen", to_arrow(spans))
    con.execute("""INSERT INTO span_store (trace_id, span_id, parent_span_id, name, kind, start_ns,
        end_ns, status_code, service_name, host, role, attributes, events, links,
        dropped_attributes_count, dropped_events_count, dropped_links_count, resource_id,
        scope_id, file_id, content_hash)
        SELECT trace_id, span_id, parent_span_id, 'op', kind, start_ns, end_ns, status_code,
               service_name, host, 'agent', '{}', '[]', '[]', 0, 0, 0, 'r', 's', 1, 0 FROM gen""")
    return con


def _random_store_spans(n_traces: int, seed: int) -> list[Span]:
    rnd = random.Random(seed)
    spans: list[Span] = []
    for t in range(n_traces):
        tid = f"{rnd.getrandbits(128):032x}"
        ids = [f"{rnd.getrandbits(64):016x}" for _ in range(rnd.randint(1, 30))]
        for i, sid in enumerate(ids):
            parent = None if i == 0 else (ids[rnd.randrange(i)] if rnd.random() > 0.03 else "ab" * 8)
            s = rnd.randrange(0, 1000) * 10**6
            spans.append(Span(sid, parent, s, s + rnd.randrange(-5, 500) * 10**6,
                              rnd.choice(("INTERNAL", "CLIENT", "SERVER", "PRODUCER", "CONSUMER")),
                              rnd.choice(("agent", "llm", "")), rnd.choice(("h1", "h2", None)), tid,
                              status_code=rnd.choice(("UNSET", "ERROR"))))
    return spans


def test_store_buckets_equal_reference(tmp_path: Path) -> None:
    spans = _random_store_spans(300, 3)
    con = _store(tmp_path / "s.duckdb", spans)
    ref = reference_tables(spans, 10**8)
    for buckets in (1, 4):
        batches = list(iter_trace_metrics(con, n_buckets=buckets, max_clock_skew_ns=10**8))
        assert len(batches) == buckets
        for name in ("traces", "spans", "segments", "repairs"):
            rows = [tuple(r.values()) for b in batches for r in getattr(b, name).to_pylist()]
            assert sorted(rows, key=repr) == sorted(ref[name], key=repr), (buckets, name)
    whole = compute_trace_metrics(con)
    assert whole is not None and whole.traces.num_rows == 300
    assert whole.traces["trace_id"].to_pylist() == sorted(whole.traces["trace_id"].to_pylist())
    con.close()


def test_empty_store_and_non_hex_ids(tmp_path: Path) -> None:
    con = _store(tmp_path / "e.duckdb", [])
    assert compute_trace_metrics(con) is None and list(iter_trace_metrics(con)) == []
    tbl = pa.table({"trace_id": ["x", "x"], "span_id": ["root span", "child"],
                    "parent_span_id": [None, "root span"], "kind": ["SERVER", "CLIENT"],
                    "start_ns": [0, 10], "end_ns": [100, 20], "service_name": ["a", "a"],
                    "host": [None, None], "status_code": ["OK", "OK"]})
    mb = metrics_from_arrow(tbl)
    assert mb is not None and mb.spans["depth"].to_pylist() == [1, 0]


def test_huge_durations_use_exact_ranks() -> None:
    # durations near 2**62 ns overflow the packed sort keys: ranks are used instead
    big = 2**61
    spans = [Span(f"{i:02x}", None if i == 0 else f"{(i - 1) // 2:02x}", i * (big // 64),
                  big * 2 - i * (big // 64) + (i % 3), trace_id="t") for i in range(40)]
    spans += [Span(f"{i:02x}", None if i == 40 else "28", i, i + 10 + i % 2, trace_id="t")
              for i in range(40, 60)]
    got = metrics_from_arrow(to_arrow(spans))
    ref = reference_tables(spans, None)
    assert got is not None
    for name in ("traces", "spans", "segments", "repairs"):
        assert [tuple(r.values()) for r in getattr(got, name).to_pylist()] == ref[name], name
