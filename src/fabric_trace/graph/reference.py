"""Reference critical path and self time of one trace (pure Python, iterative).

This is the readable definition that the fast batch implementation
(:mod:`fabric_trace.graph.batch`) must reproduce exactly, and the sibling of
the brute-force oracle in the tests. It follows Jaeger's three steps:

1. copy the spans and repair them (:func:`~fabric_trace.graph.repair.repair_trace`);
2. sanitize each root's tree: leave out async (PRODUCER->CONSUMER) subtrees,
   clip children to their parent's *clipped* interval, drop children entirely
   outside it together with their subtree;
3. walk backwards from the root's end, each time descending into the
   last-finishing child that ends at or before the current point::

       root  |==========================================|
       A        |=====A======|
       B                          |====B=====|
       path  |r |     A      |  r |    B     |    r     |

Tie-break: among children with the same end, the earliest start wins (the
longer child covered the wait), then the smallest span id. Zero-length
children never own time. Segments are maximal (two consecutive segments never
have the same span id) and tile the root's interval exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fabric_trace.graph import model as m
from fabric_trace.graph.model import Segment, Span, SpanMetrics, TraceAnalysis, TraceFacts
from fabric_trace.graph.repair import RepairedTrace, TimeBounds, repair_trace

SpanLike = Span | Mapping[str, Any]


def _windows(rt: RepairedTrace, root: str) -> tuple[dict[str, tuple[int, int]], dict[str, list[str]]]:
    """Sanitized (clipped) intervals of the blocking part of ``root``'s tree.

    Returns the window of every kept span and, per kept span, its kept
    children sorted by (end, -start, -id) so that the tie-break winner of any
    end value comes last.
    """
    window = {root: (rt.start[root], rt.end[root])}
    kids: dict[str, list[str]] = {}
    stack = [root]
    while stack:
        v = stack.pop()
        ps, pe = window[v]
        kept: list[str] = []
        for c in rt.children[v]:
            if rt.is_async(c):
                continue  # non-blocking: the subtree never enters the path
            cs, ce = rt.start[c], rt.end[c]
            # Jaeger's rule: keep iff cs < pe and (cs >= ps or ce > ps)
            #     |----parent----|              |----parent----|
            #   |--c--|     |--c--|    dropped:                  |--c--|
            if cs < pe and (cs >= ps or ce > ps):
                window[c] = (max(cs, ps), min(ce, pe))
                kept.append(c)
                stack.append(c)
        kept.sort(reverse=True)  # span id descending, then a stable sort:
        kept.sort(key=lambda c: (window[c][1], -window[c][0]))
        kids[v] = kept
    return window, kids


def _walk(rt: RepairedTrace, root: str) -> list[Segment]:
    """Jaeger's backward walk from ``root``'s end, without recursion."""
    window, kids = _windows(rt, root)
    pointer = {v: len(k) for v, k in kids.items()}  # next child to try is pointer-1
    out: list[list[Any]] = []  # [start, end, span_id], built backwards in time

    def emit(span_id: str, a: int, b: int) -> None:
        if a >= b:
            return
        if out and out[-1][2] == span_id and out[-1][0] == b:
            out[-1][0] = a  # merge across a zero-length child
        else:
            out.append([a, b, span_id])

    cur, t = root, window[root][1]
    while True:
        ks = kids[cur]
        i = pointer[cur] - 1
        # t only decreases, so a child skipped once is never eligible again
        while i >= 0 and (window[ks[i]][1] > t or window[ks[i]][0] >= t):
            i -= 1
        if i >= 0:
            c = ks[i]
            pointer[cur] = i
            emit(cur, window[c][1], t)
            cur, t = c, window[c][1]
        else:
            pointer[cur] = 0
            emit(cur, window[cur][0], t)
            if cur == root:
                break
            t = window[cur][0]
            p = rt.parent[cur]
            assert p is not None
            cur = p
    return [Segment(a, b, sid) for a, b, sid in reversed(out)]


def _self_ns(rt: RepairedTrace, span_id: str) -> int:
    """Duration minus the union of the children's intervals clipped to the span."""
    ps, pe = rt.start[span_id], rt.end[span_id]
    if not rt.children[span_id]:
        return pe - ps
    pieces = sorted(
        (max(rt.start[c], ps), min(rt.end[c], pe))
        for c in rt.children[span_id]
        if max(rt.start[c], ps) < min(rt.end[c], pe)
    )
    covered, reach = 0, ps
    for a, b in pieces:
        if b > reach:
            covered += b - max(a, reach)
            reach = b
    return (pe - ps) - covered


def analyze_trace(spans: Iterable[SpanLike], *, max_clock_skew_ns: int | None = None,
                  time_bounds: TimeBounds | None = None) -> TraceAnalysis:
    """Repair one trace and compute its critical paths, per-span metrics and facts.

    ``max_clock_skew_ns``: ``None`` detects clock skew only; an int enables the
    adjustment (offsets larger in magnitude are reported, not applied).
    ``time_bounds``: treat implausible times as unknown (repair 1b).
    """
    rt = repair_trace(spans, max_clock_skew_ns=max_clock_skew_ns, time_bounds=time_bounds)
    paths = {r: tuple(_walk(rt, r)) for r in rt.roots}
    on_cp = dict.fromkeys(rt.spans, 0)
    for segs in paths.values():
        for seg in segs:
            on_cp[seg.span_id] += seg.duration_ns
    metrics = {
        sid: SpanMetrics(
            span_id=sid,
            root_span_id=rt.root_of[sid],
            depth=rt.depth[sid],
            child_count=len(rt.children[sid]),
            start_ns=rt.start[sid],
            end_ns=rt.end[sid],
            self_ns=_self_ns(rt, sid),
            on_critical_path_ns=on_cp[sid],
            shift_ns=rt.shift[sid],
        )
        for sid in sorted(rt.spans)
    }
    main = rt.main_root
    t0, t1 = min(rt.start.values()), max(rt.end.values())
    facts = TraceFacts(
        trace_id=rt.trace_id,
        root_span_id=main,
        root_count=len(rt.roots),
        start_ns=t0 if rt.time_known else None,
        end_ns=t1 if rt.time_known else None,
        duration_ns=t1 - t0 if rt.time_known else None,
        root_duration_ns=rt.end[main] - rt.start[main] if rt.time_known else None,
        span_count=len(rt.spans),
        error_count=sum(1 for s in rt.spans.values() if s.status_code == "ERROR"),
        incomplete=any(r.kind in m.INCOMPLETE_KINDS for r in rt.repairs),
        repair_count=len(rt.repairs),
    )
    return TraceAnalysis(facts, metrics, paths, tuple(rt.repairs))


def critical_path(
    spans: Iterable[SpanLike], *, root_span_id: str | None = None, max_clock_skew_ns: int | None = None
) -> list[Segment]:
    """Critical path of one trace: segments tiling the main root (or ``root_span_id``).

    The segments are in time order, never overlap, and their durations sum to
    the root's duration exactly.
    """
    rt = repair_trace(spans, max_clock_skew_ns=max_clock_skew_ns)
    root = rt.main_root if root_span_id is None else root_span_id
    if root not in rt.roots:
        raise ValueError(f"{root_span_id!r} is not a root of the trace")
    return _walk(rt, root)


def self_times(spans: Iterable[SpanLike], *, max_clock_skew_ns: int | None = None) -> dict[str, int]:
    """Self time (ns) of every span: its duration minus the union of its children's
    intervals, each clipped to the span."""
    rt = repair_trace(spans, max_clock_skew_ns=max_clock_skew_ns)
    return {sid: _self_ns(rt, sid) for sid in sorted(rt.spans)}


__all__ = ["analyze_trace", "critical_path", "self_times"]
