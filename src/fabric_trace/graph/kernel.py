"""The batch algorithm on one bucket of spans (numpy; see docs/critical-path.md).

Same rules as :mod:`fabric_trace.graph.reference`, formulated so that only the
walk along the chosen children of each parent is a Python loop:

* clipping: the window of a span is [max start, min end] over the span and
  its ancestors; a span whose window is empty (or that sits below an async
  PRODUCER->CONSUMER edge) never owns critical-path time;
* the walk inside a parent only depends on its children's windows: it visits
  the last-finishing child, then repeatedly the last one ending at or before
  the start of the previous one (:func:`~fabric_trace.graph.arrays.chain_predecessor`);
* a span is on the path iff every span from it up to its root was chosen, and
  owns its window minus its chosen children's windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fabric_trace.graph import arrays as ga
from fabric_trace.graph import model as m
from fabric_trace.graph.repair import TimeBounds, skew_delta

I64, Bool = ga.I64, ga.Bool


@dataclass(frozen=True)
class SpanArrays:
    """One bucket of unique spans sorted by (trace_id, span_id)."""

    trace_id: pa.Array
    span_id: pa.Array
    parent_span_id: pa.Array
    service_name: pa.Array
    tix: I64
    """Trace number in the bucket, non-decreasing."""
    parent: I64
    """Row of the parent, -1 if none or missing."""
    has_parent: Bool
    """The span names a parent (not NULL / empty)."""
    start: I64
    """Start, ns."""
    end: I64
    """End as recorded (may be < start), ns."""
    async_edge: Bool
    """PRODUCER parent, CONSUMER child."""
    same_clock: Bool
    """Same host (or, without hosts, same service) as the parent."""
    error: Bool
    """Status ERROR."""
    copies: I64
    """Copies of this span id seen before deduplication."""
    carried: dict[str, pa.Array] = field(default_factory=dict)
    """Caller's extra columns, aligned with the rows, copied into the ``spans`` output."""


@dataclass(frozen=True)
class MetricsBatch:
    """Results for a set of traces, as Arrow tables (see docs/critical-path.md)."""

    traces: pa.Table
    """One row per trace (facts), sorted by trace_id."""
    spans: pa.Table
    """One row per distinct span id: self time, critical-path time, depth..."""
    segments: pa.Table
    """Critical-path segments of every root, in time order per root."""
    repairs: pa.Table
    """Repair records, sorted like :meth:`~fabric_trace.graph.model.Repair.sort_key`."""


@dataclass
class _Records:
    """Repair records collected as row arrays, one entry per kind."""

    rows: list[tuple[int, I64, I64 | None, I64 | None, I64 | None]]

    def add(self, kind: str, at: I64, offset: I64 | None = None, count: I64 | None = None,
            related: I64 | None = None) -> None:
        """Record ``kind`` for the rows ``at``; the other arrays are aligned with ``at``."""
        if len(at):
            self.rows.append((m.REPAIR_KINDS.index(kind), at, offset, count, related))


def _adjust_skew(a: SpanArrays, par: I64, end: I64, depth: I64, skewed: Bool, max_ns: int,
                 rec: _Records) -> I64:
    """Top-down clock-skew adjustment of the traces that have a skewed edge."""
    shift = np.zeros(len(par), dtype=np.int64)
    flag = np.zeros(int(a.tix[-1]) + 1, dtype=bool)
    flag[a.tix[skewed]] = True
    sub = np.flatnonzero(flag[a.tix])
    psub = par[sub]
    ploc = np.where(psub >= 0, np.searchsorted(sub, np.maximum(psub, 0)), -1).tolist()
    s, e = a.start[sub].tolist(), end[sub].tolist()
    same, asy = a.same_clock[sub].tolist(), a.async_edge[sub].tolist()
    sh = [0] * len(sub)
    out: list[tuple[int, int, bool]] = []
    for v in np.argsort(depth[sub], kind="stable").tolist():
        p = ploc[v]
        if p < 0:
            continue
        if same[v]:
            sh[v] = sh[p]
            continue
        d = skew_delta(s[p] + sh[p], e[p] + sh[p], s[v], e[v], asy[v])
        if d:
            ok = abs(d) <= max_ns
            if ok:
                sh[v] = d
            out.append((v, d, ok))
    shift[sub] = sh
    for kind, ok in ((m.CLOCK_SKEW_ADJUSTED, True), (m.CLOCK_SKEW_EXCEEDS_MAX, False)):
        loc = np.array([v for v, _, k in out if k == ok], dtype=np.int64)
        rec.add(kind, sub[loc], np.array([d for _, d, k in out if k == ok], dtype=np.int64))
    return shift


def _place_implausible(a: SpanArrays, b: TimeBounds, rec: _Records) -> tuple[SpanArrays, Bool]:
    """Repair 1b (:func:`~fabric_trace.graph.repair.implausible_spans` and
    :func:`~fabric_trace.graph.repair.place_unknown`, vectorised).

    Returns the spans with the implausible ones placed, and per trace whether
    any span has a plausible time.
    """
    s, e, tix, par = a.start, a.end, a.tix, a.parent
    n_traces = int(tix[-1]) + 1
    inside = (s >= b.min_ns) & (s < b.max_ns) & (e >= b.min_ns) & (e < b.max_ns)
    idx = np.flatnonzero(inside)
    o = idx[np.lexsort((s[idx], tix[idx]))]
    cnt = np.bincount(tix[o], minlength=n_traces)
    first = np.cumsum(cnt) - cnt
    has_ref = cnt > 0
    ref = np.zeros(n_traces, dtype=np.int64)
    ref[has_ref] = s[o[first[has_ref] + (cnt[has_ref] - 1) // 2]]
    lo = np.maximum(b.min_ns, ref - b.max_spread_ns)[tix]
    hi = np.minimum(b.max_ns - 1, ref + b.max_spread_ns)[tix]
    bad = ~has_ref[tix] | (s < lo) | (s > hi) | (e < lo) | (e > hi)
    good = ~bad
    known = np.bincount(tix[good], minlength=n_traces) > 0
    if not bad.any():
        return a, known
    anchor = np.full(n_traces, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(anchor, tix[good], s[good])
    kid = np.flatnonzero((par >= 0) & good)
    kid = kid[bad[par[kid]]]
    kmin = np.full(len(s), np.iinfo(np.int64).max, dtype=np.int64)
    kmax = np.full(len(s), np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(kmin, par[kid], s[kid])
    np.maximum.at(kmax, par[kid], np.maximum(s[kid], e[kid]))
    covers = np.zeros(len(s), dtype=bool)
    covers[par[kid]] = True
    pz = np.maximum(par, 0)
    t = np.where((par >= 0) & good[pz], s[pz], np.where(known[tix], anchor[tix], s))
    new_s = np.where(bad, np.where(covers, kmin, t), s)
    new_e = np.where(bad, np.where(covers, kmax, t), e)
    at = np.flatnonzero(bad)
    rec.add(m.IMPLAUSIBLE_TIME, at, (s - new_s)[at])
    return replace(a, start=new_s, end=new_e), known


def compute_bucket(a: SpanArrays, *, max_clock_skew_ns: int | None = None,
                   time_bounds: TimeBounds | None = None) -> MetricsBatch:
    """All metrics for the traces of one bucket (``time_bounds``: repair 1b, see repair.TimeBounds)."""
    n = len(a.start)
    rows = np.arange(n, dtype=np.int64)
    rec = _Records([])
    at = np.flatnonzero(a.copies > 1)
    rec.add(m.DUPLICATE_SPAN_ID, at, count=a.copies[at])
    known: Bool | None = None
    if time_bounds is not None:
        a, known = _place_implausible(a, time_bounds, rec)
    # 2. negative durations
    neg = a.end < a.start
    end = np.where(neg, a.start, a.end)
    at = np.flatnonzero(neg)
    rec.add(m.NEGATIVE_DURATION, at, (a.end - a.start)[at])
    # 3. orphans, self-parents; 4. cycles
    par = a.parent.copy()
    orphan = a.has_parent & (par < 0)
    rec.add(m.ORPHAN, np.flatnonzero(orphan))
    selfp = par == rows
    rec.add(m.SELF_PARENT, np.flatnonzero(selfp))
    par[selfp] = -1
    jp = ga.jumps(par)
    if jp.cyclic.any():
        cut = ga.cycle_cuts(par, a.start, jp.cyclic)
        rec.add(m.CYCLE_CUT, cut)
        par[cut] = -1
        jp = ga.jumps(par)
    has_p = par >= 0
    pz = np.maximum(par, 0)
    asy = a.async_edge & has_p  # a cut cycle edge is no edge
    # 5. roots: (declared root first, start, -end, id) per trace
    roots = np.flatnonzero(~has_p)
    ro = roots[ga.order_by(a.tix[roots], a.has_parent[roots].astype(np.int64), a.start[roots], -end[roots], roots)]
    first = ga.group_starts(a.tix[ro])
    main = ro[first]
    main_of_trace = np.empty(len(first), dtype=np.int64)
    main_of_trace[a.tix[main]] = main
    extra = roots[~a.has_parent[roots] & (main_of_trace[a.tix[roots]] != roots)]
    rec.add(m.EXTRA_ROOT, extra, related=main_of_trace[a.tix[extra]])
    # 6. clock skew, detected against the raw parent
    cs, ce, ps, pe = a.start, end, a.start[pz], end[pz]
    skewed = has_p & ~a.same_clock & ((cs < ps) | ((cs > pe) & ~asy))
    longer = asy | ((ce - cs) > (pe - ps))
    delta = np.where(longer, ps - cs, ps + ((pe - ps) - (ce - cs)) // 2 - cs)
    shift = np.zeros(n, dtype=np.int64)
    if max_clock_skew_ns is None:
        at = np.flatnonzero(skewed)
        rec.add(m.CLOCK_SKEW, at, delta[at])
    elif skewed.any():
        shift = _adjust_skew(a, par, end, jp.depth, skewed, max_clock_skew_ns, rec)
    start, end = a.start + shift, end + shift
    # 7. clipping records against the parent's own interval
    cs, ce, ps, pe = start, end, start[pz], end[pz]
    blocking = has_p & ~asy
    zero = cs == ce
    outside = blocking & np.where(zero, (cs < ps) | (cs > pe), (ce <= ps) | (cs >= pe))
    excess = np.maximum(ps - cs, 0) + np.maximum(ce - pe, 0)
    rec.add(m.CHILD_OUTSIDE_PARENT, np.flatnonzero(outside))
    at = np.flatnonzero(blocking & ~outside & (excess > 0))
    rec.add(m.CHILD_CLIPPED, at, excess[at])
    # self time: duration minus the union of children clipped to the span
    lo, hi = np.maximum(cs, ps), np.minimum(ce, pe)
    kid = np.flatnonzero(has_p & (lo < hi))
    self_ns = (end - start) - ga.union_length(par[kid], lo[kid], hi[kid], ps[kid], n)
    # critical path: windows, eligibility, chains
    ws, we = jp.path_max(start), jp.path_min(end)
    eligible = (ws < we) & ~jp.path_any(asy)
    kids = np.flatnonzero(eligible & has_p)
    order, pred = ga.chain_predecessor(par[kids], ws[kids], we[kids], ws[par[kids]], kids)
    sk = kids[order]
    heads = np.flatnonzero(np.concatenate((par[sk][1:] != par[sk][:-1], [True]))) if len(sk) else sk
    chosen = np.zeros(n, dtype=bool)
    chosen[sk[ga.walk_chains(heads, pred)]] = True
    on_cp = ~jp.path_any(~(eligible & (chosen | ~has_p)))
    width = np.where(on_cp, we - ws, 0)
    cp_ns = width.copy()
    cpk = np.flatnonzero(on_cp & has_p)
    np.subtract.at(cp_ns, par[cpk], width[cpk])
    segments = _segments(a, jp.root, par, on_cp, cpk, ws, we)
    return MetricsBatch(
        traces=_trace_table(a, jp, has_p, main_of_trace, start, end, orphan, rec, known),
        spans=pa.table({
            "trace_id": a.trace_id, "span_id": a.span_id,
            "root_span_id": a.span_id.take(pa.array(jp.root)),
            "depth": jp.depth, "child_count": np.bincount(par[has_p], minlength=n).astype(np.int64),
            "start_ns": start, "end_ns": end, "self_ns": self_ns,
            "on_critical_path_ns": cp_ns, "shift_ns": shift,
            **({"service_name": a.service_name} if a.carried else {}),
            **a.carried,
        }),
        segments=segments,
        repairs=_repair_table(a, par, rec),
    )


def _segments(a: SpanArrays, root: I64, par: I64, on_cp: Bool, cpk: I64, ws: I64, we: I64) -> pa.Table:
    """Each on-path span owns its window minus its chosen children's windows."""
    k = cpk[ga.packed_order(par[cpk], ws[cpk] - ws[par[cpk]])]
    p = par[k]
    new = np.concatenate(([True], p[1:] != p[:-1])) if len(k) else np.zeros(0, bool)
    last = np.concatenate((p[1:] != p[:-1], [True])) if len(k) else np.zeros(0, bool)
    prev_end = np.where(new, ws[p], np.roll(we[k], 1))
    childless = np.flatnonzero(on_cp)
    has_kid = np.zeros(len(on_cp), dtype=bool)
    has_kid[p] = True
    childless = childless[~has_kid[childless]]
    span = np.concatenate((p, p[last], childless))
    lo = np.concatenate((prev_end, we[k][last], ws[childless]))
    hi = np.concatenate((ws[k], we[p[last]], we[childless]))
    keep = lo < hi
    span, lo, hi = span[keep], lo[keep], hi[keep]
    o = ga.packed_order(root[span], lo - ws[root[span]])
    span, lo, hi = span[o], lo[o], hi[o]
    take = pa.array(span)
    return pa.table({
        "trace_id": a.trace_id.take(take), "root_span_id": a.span_id.take(pa.array(root[span])),
        "span_id": a.span_id.take(take), "start_ns": lo, "end_ns": hi,
        **({"service_name": a.service_name.take(take)} if a.carried else {}),
        **{name: values.take(take) for name, values in a.carried.items()},
    })


def _trace_table(a: SpanArrays, jp: ga.Jumps, has_p: Bool, main: I64, start: I64, end: I64,
                 orphan: Bool, rec: _Records, known: Bool | None) -> pa.Table:
    bounds = ga.group_starts(a.tix)
    n_rep = np.zeros(len(bounds), dtype=np.int64)
    for _, at, _, _, _ in rec.rows:
        np.add.at(n_rep, a.tix[at], 1)
    t0, t1 = np.minimum.reduceat(start, bounds), np.maximum.reduceat(end, bounds)
    unknown = None if known is None or known.all() else ~known  # no plausible time: extent unknown (NULL)

    def times(values: I64) -> pa.Array:
        return pa.array(values, type=pa.int64(), mask=unknown)

    return pa.table({
        "trace_id": a.trace_id.take(pa.array(bounds)),
        "root_span_id": a.span_id.take(pa.array(main)),
        "root_count": np.add.reduceat((~has_p).astype(np.int64), bounds),
        "start_ns": times(t0), "end_ns": times(t1), "duration_ns": times(t1 - t0),
        "root_duration_ns": times(end[main] - start[main]),
        "span_count": np.diff(np.append(bounds, len(a.tix))),
        "error_count": np.add.reduceat(a.error.astype(np.int64), bounds),
        "incomplete": np.add.reduceat(orphan.astype(np.int64), bounds) > 0,
        "repair_count": n_rep,
    })


_SKEW_KINDS = frozenset(m.REPAIR_KINDS.index(k) for k in
                        (m.CLOCK_SKEW, m.CLOCK_SKEW_ADJUSTED, m.CLOCK_SKEW_EXCEEDS_MAX))

REPAIR_SCHEMA = pa.schema([
    ("trace_id", pa.string()), ("kind", pa.string()), ("span_id", pa.string()),
    ("parent_span_id", pa.string()), ("offset_ns", pa.int64()), ("service", pa.string()),
    ("parent_service", pa.string()), ("count", pa.int64()),
])


def _repair_table(a: SpanArrays, par: I64, rec: _Records) -> pa.Table:
    """Repair records sorted like :meth:`~fabric_trace.graph.model.Repair.sort_key`."""
    if not rec.rows:
        return REPAIR_SCHEMA.empty_table()
    kind = np.concatenate([np.full(len(r[1]), r[0], np.int64) for r in rec.rows])
    at = np.concatenate([r[1] for r in rec.rows])
    off = np.concatenate([np.zeros(len(r[1]), np.int64) if r[2] is None else r[2] for r in rec.rows])
    has_off = np.concatenate([np.full(len(r[1]), r[2] is not None) for r in rec.rows])
    cnt = np.concatenate([np.ones(len(r[1]), np.int64) if r[3] is None else r[3] for r in rec.rows])
    rel = np.concatenate([np.full(len(r[1]), -1, np.int64) if r[4] is None else r[4] for r in rec.rows])
    o = ga.order_by(a.tix[at], kind, at)
    kind, at, off, has_off, cnt, rel = kind[o], at[o], off[o], has_off[o], cnt[o], rel[o]
    skew = np.isin(kind, list(_SKEW_KINDS))
    take = pa.array(at)
    parent_id = pc.if_else(pa.array(rel >= 0), a.span_id.take(pa.array(np.maximum(rel, 0))),
                           a.parent_span_id.take(take))
    service = a.service_name.take(take)
    parent_service = a.service_name.take(pa.array(np.maximum(par[at], 0)))
    null = pa.nulls(len(at), pa.string())
    return pa.Table.from_arrays([
        a.trace_id.take(take),
        pa.array(np.array(m.REPAIR_KINDS, dtype=object)[kind], pa.string()),
        a.span_id.take(take),
        parent_id,
        pa.array(off, mask=~has_off),
        pc.if_else(pa.array(skew), service, null),
        pc.if_else(pa.array(skew), parent_service, null),
        pa.array(cnt),
    ], schema=REPAIR_SCHEMA)
