"""Reference repairs of one trace, applied in a fixed order (pure Python).

The order matters and is the one documented in docs/critical-path.md:

1. duplicate span ids    -- keep one copy (needs nothing)
1b. implausible times    -- (only with ``time_bounds``) the span's time becomes unknown
2. negative durations    -- end < start becomes zero-length at start
3. orphans               -- missing parent: the span becomes a root (trace incomplete)
4. self-parents, cycles  -- cut the edge into the earliest-starting span of the cycle
5. extra roots           -- several parentless spans: one main root, the others reported
6. clock skew            -- needs the tree of 3-4, walks it top-down from every root
7. clipping              -- reported against the parent's skew-adjusted interval

Every repair yields a :class:`~fabric_trace.graph.model.Repair` record. Nothing
here recurses: every walk uses an explicit stack or queue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fabric_trace.graph import model as m
from fabric_trace.graph.model import Repair, Span


def _opt(value: str | None) -> tuple[bool, str]:
    """Sort key of an optional string with ``None`` first (SQL ``NULLS FIRST``)."""
    return (value is not None, value or "")


def copy_rank(span: Span) -> tuple[Any, ...]:
    """Order of duplicate copies: the smallest key is the copy that is kept.

    Earliest start, then latest (raw) end, then the other columns, so the
    choice never depends on input order.
    """
    return (
        span.start_ns,
        -span.end_ns,
        _opt(span.parent_span_id or None),
        span.kind,
        _opt(span.service_name),
        _opt(span.host),
        span.status_code,
    )


def same_clock(a: Span, b: Span) -> bool:
    """Whether two spans share a clock (no skew is possible between them).

    Hosts decide when both are known; otherwise the service names decide when
    both are known; with neither, the clocks are taken as different (Jaeger:
    an empty host key never matches).
    """
    if a.host and b.host:
        return a.host == b.host
    return bool(a.service_name) and a.service_name == b.service_name


def is_async_edge(parent: Span, child: Span) -> bool:
    """A CONSUMER child of a PRODUCER parent does not block the parent."""
    return parent.kind == "PRODUCER" and child.kind == "CONSUMER"


def skew_delta(ps: int, pe: int, cs: int, ce: int, async_edge: bool) -> int:
    """Clock-skew offset (ns) to add to a child on another clock, 0 if not skewed.

    Skewed: the child starts before its parent starts, or (for a blocking
    edge) starts after its parent ended. A child that only ends late is not
    skewed. Estimate as Jaeger's adjuster: a child longer than its parent (or
    any async consumer) is moved to start at the parent's start; otherwise it
    is centred in the parent: ``ps + (pdur - cdur) // 2 - cs``::

        parent  |------------|          parent |------------|
        child        |--|  (fits: 0)    child        skewed: |--|
                                        shifted   |--|   (centred)
    """
    if cs < ps or (cs > pe and not async_edge):
        pdur, cdur = pe - ps, ce - cs
        if async_edge or cdur > pdur:
            return ps - cs
        return ps + (pdur - cdur) // 2 - cs
    return 0


def clip_excess(ps: int, pe: int, cs: int, ce: int) -> int | None:
    """ns of the child outside its parent; ``None`` if the child is entirely outside.

    Entirely outside: a positive-length child with no positive overlap, or a
    zero-length child strictly before ``ps`` or after ``pe``::

        parent     |--------|
        clipped  |---|    |---|      outside |--|        |--|
    """
    if cs == ce:
        return None if cs < ps or cs > pe else 0
    if ce <= ps or cs >= pe:
        return None
    return max(0, ps - cs) + max(0, ce - pe)


@dataclass(frozen=True)
class TimeBounds:
    """When a span's recorded time cannot be right (docs/critical-path.md, repair 1b).

    A span's time is implausible when its start or end lies outside
    ``[min_ns, max_ns)``, or more than ``max_spread_ns`` away from the trace's
    reference start: the lower median of the starts of the trace's spans
    whose start and end are both inside ``[min_ns, max_ns)``.
    """

    min_ns: int = 946_684_800 * 10**9
    """2000-01-01T00:00:00Z."""
    max_ns: int = 4_102_444_800 * 10**9
    """2100-01-01T00:00:00Z."""
    max_spread_ns: int = 7 * 86_400 * 10**9
    """7 days."""


#: The bounds the latency analyzer applies to every stored trace.
PLAUSIBLE_TIMES = TimeBounds()


def implausible_spans(start: Mapping[str, int], end: Mapping[str, int], bounds: TimeBounds) -> set[str]:
    """Span ids of one trace whose time is implausible under ``bounds`` (see :class:`TimeBounds`)."""
    inside = sorted(start[s] for s in start
                    if bounds.min_ns <= start[s] < bounds.max_ns and bounds.min_ns <= end[s] < bounds.max_ns)
    if not inside:
        return set(start)
    ref = inside[(len(inside) - 1) // 2]
    lo, hi = max(bounds.min_ns, ref - bounds.max_spread_ns), min(bounds.max_ns - 1, ref + bounds.max_spread_ns)
    return {s for s in start if not (lo <= start[s] <= hi and lo <= end[s] <= hi)}


def place_unknown(
    bad: set[str], start: Mapping[str, int], end: Mapping[str, int], parent_of: Mapping[str, str | None]
) -> dict[str, tuple[int, int]]:
    """The (start, end) given to each span of ``bad`` (its time is unknown).

    It covers its direct children whose times are plausible, from their
    earliest start to their latest end (an end before its start counts as the
    start), if it has any; otherwise it is zero-length at its parent's start
    when the parent's time is plausible, else zero-length at the trace's
    earliest plausible start. With no plausible span at all it is zero-length
    at its own start. ``parent_of`` maps each span to the parent it names
    (``None``, or an id not in the trace, for none).
    """
    kids: dict[str, list[str]] = {}
    for sid, p in parent_of.items():
        if p is not None and p != sid and p in bad and sid not in bad:
            kids.setdefault(p, []).append(sid)
    good = [start[s] for s in start if s not in bad]
    anchor = min(good) if good else None
    out: dict[str, tuple[int, int]] = {}
    for sid in bad:
        if sid in kids:
            out[sid] = (min(start[k] for k in kids[sid]), max(max(start[k], end[k]) for k in kids[sid]))
            continue
        p = parent_of.get(sid)
        if p is not None and p in start and p not in bad:
            t = start[p]
        else:
            t = start[sid] if anchor is None else anchor
        out[sid] = (t, t)
    return out


@dataclass
class RepairedTrace:
    """A trace after the repairs: a forest with adjusted times (mutable scratch)."""

    trace_id: str
    spans: dict[str, Span]
    parent: dict[str, str | None]
    start: dict[str, int]
    end: dict[str, int]
    shift: dict[str, int]
    children: dict[str, list[str]]
    roots: list[str]
    """All roots, the main root first, the others by (start, -end, id)."""
    depth: dict[str, int]
    root_of: dict[str, str]
    repairs: list[Repair]
    time_known: bool = True
    """False when no span of the trace has a plausible time (its extent is unknown)."""

    @property
    def main_root(self) -> str:
        """The main root span id."""
        return self.roots[0]

    def is_async(self, span_id: str) -> bool:
        """Whether the edge from ``span_id`` to its parent is async."""
        p = self.parent[span_id]
        return p is not None and is_async_edge(self.spans[p], self.spans[span_id])


def repair_trace(
    spans: Iterable[Span | Mapping[str, Any]], *, max_clock_skew_ns: int | None = None,
    time_bounds: TimeBounds | None = None,
) -> RepairedTrace:
    """Apply the repairs 1-7 to one trace and return the repaired forest.

    ``max_clock_skew_ns``: ``None`` only detects clock skew; an int enables the
    adjustment of offsets up to that magnitude. ``time_bounds``: also treat
    implausible times as unknown (repair 1b; ``None``: every time is taken as
    recorded). Raises ``ValueError`` for an empty input or spans of several traces.
    """
    items = m.coerce_spans(spans)
    if not items:
        raise ValueError("empty trace")
    trace_ids = {s.trace_id for s in items}
    if len(trace_ids) > 1:
        raise ValueError(f"spans of {len(trace_ids)} traces given; expected one")
    tid = items[0].trace_id
    repairs: list[Repair] = []

    # 1. duplicate span ids: keep the copy with the smallest copy_rank
    groups: dict[str, list[Span]] = {}
    for s in items:
        groups.setdefault(s.span_id, []).append(s)
    by_id: dict[str, Span] = {}
    for sid, copies in groups.items():
        kept = copies[0] if len(copies) == 1 else min(copies, key=copy_rank)
        by_id[sid] = kept
        if len(copies) > 1:
            repairs.append(Repair(tid, m.DUPLICATE_SPAN_ID, sid, kept.parent_span_id or None, count=len(copies)))

    # 1b. implausible times: the span's time is unknown and it is placed where it cannot distort timing
    start = {sid: s.start_ns for sid, s in by_id.items()}
    raw_end = {sid: s.end_ns for sid, s in by_id.items()}
    known = True
    if time_bounds is not None:
        bad = implausible_spans(start, raw_end, time_bounds)
        known = len(bad) < len(start)
        if bad:
            placed = place_unknown(bad, start, raw_end, {sid: s.parent_span_id or None for sid, s in by_id.items()})
            for sid in sorted(bad):
                s = by_id[sid]
                repairs.append(Repair(tid, m.IMPLAUSIBLE_TIME, sid, s.parent_span_id or None,
                                      s.start_ns - placed[sid][0]))
                start[sid], raw_end[sid] = placed[sid]

    # 2. negative durations
    end: dict[str, int] = {}
    for sid, s in by_id.items():
        end[sid] = raw_end[sid] if raw_end[sid] >= start[sid] else start[sid]
        if raw_end[sid] < start[sid]:
            repairs.append(Repair(tid, m.NEGATIVE_DURATION, sid, s.parent_span_id or None, raw_end[sid] - start[sid]))

    # 3. orphans and self-parents
    parent: dict[str, str | None] = {}
    declared_root: set[str] = set()
    for sid, s in by_id.items():
        p = s.parent_span_id or None
        if p is None:
            declared_root.add(sid)
        elif p == sid:
            repairs.append(Repair(tid, m.SELF_PARENT, sid, sid))
            p = None
        elif p not in by_id:
            repairs.append(Repair(tid, m.ORPHAN, sid, p))
            p = None
        parent[sid] = p

    # 4. cycles: follow parents with colours; 1 = on the current path, 2 = reaches a root
    colour = {sid: 2 if p is None else 0 for sid, p in parent.items()}
    for sid in sorted(by_id):
        path: list[str] = []
        v: str | None = sid
        while v is not None and colour[v] == 0:
            colour[v] = 1
            path.append(v)
            v = parent[v]
        if v is not None and colour[v] == 1:  # closed a cycle: path[j:] with path[j] == v
            cycle = path[path.index(v):]
            cut = min(cycle, key=lambda c: (start[c], c))
            repairs.append(Repair(tid, m.CYCLE_CUT, cut, parent[cut]))
            parent[cut] = None
        for u in path:
            colour[u] = 2

    children: dict[str, list[str]] = {sid: [] for sid in by_id}
    for sid in sorted(by_id):
        p = parent[sid]
        if p is not None:
            children[p].append(sid)

    # 5. roots: the main root is the earliest-starting parentless one
    def root_key(r: str) -> tuple[bool, int, int, str]:
        return (r not in declared_root, start[r], -end[r], r)

    roots = sorted((sid for sid, p in parent.items() if p is None), key=root_key)
    for r in roots[1:]:
        if r in declared_root:
            repairs.append(Repair(tid, m.EXTRA_ROOT, r, roots[0]))

    # depth / root_of, breadth first from every root
    depth: dict[str, int] = {}
    root_of: dict[str, str] = {}
    order: list[str] = []
    for r in roots:
        depth[r], root_of[r] = 0, r
        queue = [r]
        while queue:
            v = queue.pop()
            order.append(v)
            for c in children[v]:
                depth[c], root_of[c] = depth[v] + 1, r
                queue.append(c)

    # 6. clock skew, top-down (parents before children: ``order`` is a preorder)
    shift = {sid: 0 for sid in by_id}
    for v in order:
        p = parent[v]
        if p is None:
            continue
        sv, sp = by_id[v], by_id[p]
        if same_clock(sv, sp):
            shift[v] = shift[p]
            continue
        delta = skew_delta(start[p] + shift[p], end[p] + shift[p], start[v], end[v], is_async_edge(sp, sv))
        if delta == 0:
            continue
        if max_clock_skew_ns is None:
            kind = m.CLOCK_SKEW
        elif abs(delta) <= max_clock_skew_ns:
            kind, shift[v] = m.CLOCK_SKEW_ADJUSTED, delta
        else:
            kind = m.CLOCK_SKEW_EXCEEDS_MAX
        repairs.append(Repair(tid, kind, v, p, delta, sv.service_name or None, sp.service_name or None))
    for sid, d in shift.items():
        start[sid] += d
        end[sid] += d

    # 7. clipping (reported against the parent's own adjusted interval; async edges exempt)
    for v in order:
        p = parent[v]
        if p is None or is_async_edge(by_id[p], by_id[v]):
            continue
        excess = clip_excess(start[p], end[p], start[v], end[v])
        if excess is None:
            repairs.append(Repair(tid, m.CHILD_OUTSIDE_PARENT, v, p))
        elif excess:
            repairs.append(Repair(tid, m.CHILD_CLIPPED, v, p, excess))

    repairs.sort(key=Repair.sort_key)
    return RepairedTrace(tid, by_id, parent, start, end, shift, children, roots, depth, root_of, repairs, known)
