"""Shared helpers for the graph tests: random traces, brute force, comparisons."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

from fabric_trace.graph import analyze_trace, metrics_from_arrow
from fabric_trace.graph.model import Repair, Segment, Span
from fabric_trace.graph.repair import RepairedTrace, TimeBounds

COLUMNS = ("trace_id", "span_id", "parent_span_id", "kind", "start_ns", "end_ns",
           "service_name", "host", "status_code")
KINDS = ("INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER", "UNSPECIFIED")


def span(sid: str, parent: str | None, start: int, end: int, **kw: Any) -> Span:
    """A span of trace 't' of service 'svc' (tests read better with positional times)."""
    kw.setdefault("service_name", "svc")
    return Span(span_id=sid, parent_span_id=parent, start_ns=start, end_ns=end,
                trace_id=kw.pop("trace_id", "t"), **kw)


def to_arrow(spans: list[Span]) -> pa.Table:
    """Spans as an Arrow table with span_store's column names."""
    return pa.table({c: pa.array([getattr(s, c) for s in spans],
                                 pa.int64() if c.endswith("_ns") else pa.string())
                     for c in COLUMNS})


@st.composite
def traces(draw: st.DrawFn, max_spans: int = 12, max_time: int = 24, weird: bool = True,
           trace_id: str = "t") -> list[Span]:
    """A random trace: overlap, overhang, zero-length spans, equal ends; with
    ``weird`` also orphans, cycles, self-parents, duplicates, end < start, skew."""
    n = draw(st.integers(1, max_spans))
    ids = [f"{i:02x}" for i in range(n)]
    out: list[Span] = []
    for i, sid in enumerate(ids):
        choices = [st.none()]
        if i:
            choices.append(st.sampled_from(ids[:i]))
        if weird:  # any id (cycles), a missing one, one that may exist in another trace only
            choices += [st.sampled_from(ids), st.just("ff"), st.sampled_from([f"{k:02x}" for k in range(16)])]
        parent = draw(st.one_of(*choices))
        start = draw(st.integers(0, max_time))
        length = draw(st.integers(-3 if weird else 0, max_time))
        end = start + length if length >= 0 or draw(st.booleans()) else start
        out.append(Span(
            span_id=sid, parent_span_id=parent, start_ns=start, end_ns=end,
            kind=draw(st.sampled_from(KINDS)),
            service_name=draw(st.sampled_from((None, "a", "b"))),
            host=draw(st.sampled_from((None, "h1", "h2"))) if weird else "h1",
            trace_id=trace_id, status_code=draw(st.sampled_from(("UNSET", "OK", "ERROR"))),
        ))
    if weird and draw(st.booleans()):
        dup = draw(st.sampled_from(out))
        shift = draw(st.integers(-2, 2))
        out.append(Span(dup.span_id, draw(st.sampled_from((None, *ids))), dup.start_ns + shift,
                        dup.end_ns, dup.kind, dup.service_name, dup.host, trace_id))
    return draw(st.permutations(out))


def brute_windows(rt: RepairedTrace, root: str) -> dict[str, tuple[int, int]]:
    """Positive clipped windows by the path definition: [max start, min end] over
    the span and its ancestors, nothing below an async edge."""
    out: dict[str, tuple[int, int]] = {}
    for sid in rt.spans:
        if rt.root_of[sid] != root:
            continue
        lo, hi, v, ok = rt.start[sid], rt.end[sid], sid, True
        while rt.parent[v] is not None:
            ok = ok and not rt.is_async(v)
            v = rt.parent[v]  # type: ignore[assignment]
            lo, hi = max(lo, rt.start[v]), min(hi, rt.end[v])
        if ok and lo < hi:
            out[sid] = (lo, hi)
    return out


def brute_critical_path(rt: RepairedTrace, root: str) -> list[Segment]:
    """Literal definition: discretise at every boundary and walk backwards.

    At each boundary point, descend while the current span has a child ending
    exactly here (earliest start, then smallest id, wins), and ascend while
    the current span starts here; the elementary interval just before the
    point belongs to the current span.
    """
    win = brute_windows(rt, root)
    if root not in win:
        return []
    points = sorted({t for w in win.values() for t in w}, reverse=True)
    cur, owner = root, []
    for hi, lo in zip(points, points[1:]):
        while True:
            ends_here = [c for c in rt.children[cur] if c in win and win[c][1] == hi]
            if ends_here:
                cur = min(ends_here, key=lambda c: (win[c][0], c))
            elif cur != root and win[cur][0] == hi:
                cur = rt.parent[cur]  # type: ignore[assignment]
            else:
                break
        owner.append((lo, hi, cur))
    segs: list[Segment] = []
    for lo, hi, sid in reversed(owner):
        if segs and segs[-1].span_id == sid:
            segs[-1] = Segment(segs[-1].start_ns, hi, sid)
        else:
            segs.append(Segment(lo, hi, sid))
    return segs


def brute_self_ns(rt: RepairedTrace, sid: str) -> int:
    """Count elementary intervals of the span covered by no child."""
    s, e = rt.start[sid], rt.end[sid]
    pts = sorted({s, e} | {min(max(t, s), e) for c in rt.children[sid] for t in (rt.start[c], rt.end[c])})
    return sum(b - a for a, b in zip(pts, pts[1:])
               if not any(rt.start[c] <= a and b <= rt.end[c] for c in rt.children[sid]))


def reference_tables(spans: list[Span], max_clock_skew_ns: int | None,
                     time_bounds: TimeBounds | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """The reference results of several traces as sorted row tuples."""
    by_trace: dict[str, list[Span]] = {}
    for s in spans:
        by_trace.setdefault(s.trace_id, []).append(s)
    out: dict[str, list[tuple[Any, ...]]] = {"traces": [], "spans": [], "segments": [], "repairs": []}
    for tid in sorted(by_trace):
        a = analyze_trace(by_trace[tid], max_clock_skew_ns=max_clock_skew_ns, time_bounds=time_bounds)
        f = a.facts
        out["traces"].append((f.trace_id, f.root_span_id, f.root_count, f.start_ns, f.end_ns,
                              f.duration_ns, f.root_duration_ns, f.span_count, f.error_count,
                              f.incomplete, f.repair_count))
        for m in a.spans.values():
            out["spans"].append((tid, m.span_id, m.root_span_id, m.depth, m.child_count, m.start_ns,
                                 m.end_ns, m.self_ns, m.on_critical_path_ns, m.shift_ns))
        for root in sorted(a.critical_paths):
            out["segments"] += [(tid, root, g.span_id, g.start_ns, g.end_ns) for g in a.critical_paths[root]]
        out["repairs"] += [_repair_row(r) for r in a.repairs]
    return out


def _repair_row(r: Repair) -> tuple[Any, ...]:
    return (r.trace_id, r.kind, r.span_id, r.parent_span_id, r.offset_ns, r.service,
            r.parent_service, r.count)


def batch_tables(spans: list[Span], max_clock_skew_ns: int | None,
                 time_bounds: TimeBounds | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """The batch results as row tuples, in the batch's own order."""
    mb = metrics_from_arrow(to_arrow(spans), max_clock_skew_ns=max_clock_skew_ns, time_bounds=time_bounds)
    assert mb is not None
    return {name: [tuple(row.values()) for row in getattr(mb, name).to_pylist()]
            for name in ("traces", "spans", "segments", "repairs")}


def test_parent_rows_is_exact_for_any_ids() -> None:
    """graph.tree.parent_rows, the one span-tree index: a parent is the span of the same trace with
    that id (ids repeat across traces; hex and other ids; null, missing and self parents)."""
    import numpy as np
    import pyarrow as pa

    from fabric_trace.graph.tree import parent_rows

    for ids in (["00000000000000a1", "00000000000000b2", "00000000000000c3"], ["a", "b", "c"]):
        a, b, c = ids
        trace = pa.array(["t2", "t1", "t1", "t2", "t1", "t2"])
        span = pa.array([a, a, b, b, c, c])
        parent = pa.array([None, None, a, a, c, "zz"])
        order, par, tkey = parent_rows(trace, span, parent)
        assert par.tolist() == [-1, -1, 1, 0, 4, -1]  # row 4 is its own parent (the cycle policy cuts it)
        assert [(trace[i].as_py(), span[i].as_py()) for i in order] == sorted(zip(trace.to_pylist(), span.to_pylist()))
        assert tkey.tolist() == [1, 0, 0, 1, 0, 1]
    empty = parent_rows(pa.array([], pa.string()), pa.array([], pa.string()), pa.array([], pa.string()))
    assert all(len(x) == 0 for x in empty) and isinstance(empty[0], np.ndarray)
