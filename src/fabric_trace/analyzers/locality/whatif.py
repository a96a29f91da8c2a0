"""Critical-path time of state accesses, and the what-if end-to-end durations.

Both work on numpy arrays indexed by ``span_store.rowid`` (:func:`build_index`,
temp tables ``_loc_tix`` and ``_loc_idx``):

* :func:`critical_inputs`, :func:`trace_critical`: the critical-path time
  inside each access (its span and descendants, plus a miss's backing fetch),
  and per trace the time inside any miss / any remote access (a union: nested
  accesses count once);
* :func:`what_if`: for traces with a miss or remote access on the critical
  path, a copy of the trace in which each such access is cut to its store's
  counterfactual median (a miss to the median hit, a remote access to the
  median local one; never lengthened) and a miss's backing fetch removed,
  replayed so that later work moves earlier (:func:`replay`). The replay
  recomputes every span's end from its children, i.e. the new critical path;
  the what-if end-to-end duration is the replayed trace's latest end minus its
  earliest start, which is what the graph module computes for the replayed
  copy (:func:`replayed_spans`; tests/analyzers/locality/test_locality_whatif.py checks it).

The replay model (docs/locality.md, "What-if")::

    parent |------------------------------------|        before
    miss      |==GET==|--fetch--|SET|
    next                              |--llm--|
    parent |---------------------------|                  after: the fetch and SET are gone,
    hit       |GET|                                       later siblings start the same gap
    next               |--llm--|                          after their latest predecessor

A span starts the same gap after the latest-ending earlier sibling that had
finished when it started (or, without one, the same offset after its parent's
start); a span ends the same gap after its latest-ending child, and never
later than its own (shifted) original duration allows.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

I64 = np.ndarray


@dataclass
class SpanIndex:
    """Per-span arrays indexed by ``span_store.rowid`` (holes: depth 0, parent -1, nothing on the path)."""

    parent: I64
    """Row of the parent in the repaired tree, -1 for a root."""
    depth: I64
    """Depth in the repaired tree (``span_metrics.depth``)."""
    on_cp: I64
    """Critical-path ns owned by the span itself."""
    trace: I64
    """Trace number (``_loc_tix.t``)."""
    start: I64
    """Start after the latency analyzer's repairs (``adjusted_start_ns``)."""
    end: I64
    """End after repairs."""
    levels: list[I64]
    """Rows per depth, depth 1 first."""
    sub: I64 | None = None
    """Critical-path ns inside each span's subtree (set by :func:`critical_inputs`)."""


#: The exact (string) join, used when two spans (or traces) share a 64-bit hash.
_INDEX_EXACT_SQL = """
SELECT s.rowid AS i, x.t, m.depth, m.on_critical_path_ns AS on_cp, m.start_ns AS a_start, m.end_ns AS a_end,
       coalesce(CASE WHEN m.depth > 0 THEN p.rowid END, -1) AS p
FROM span_store s JOIN latency_spans m USING (trace_id, span_id) JOIN _loc_tix x USING (trace_id)
LEFT JOIN span_store p ON p.trace_id = s.trace_id AND p.span_id = s.parent_span_id
"""


#: The 64-bit key of a span: a hash of (trace_id, span id).
_SPAN_KEY = "hash(trace_id, {id})"


def _u64(tbl: pa.Table, col: str) -> np.ndarray:
    return np.asarray(tbl.column(col).to_numpy(), dtype=np.uint64) if tbl.num_rows else np.empty(0, np.uint64)


def _hashed_index(con: duckdb.DuckDBPyConnection) -> dict[str, I64] | None:
    """Per-span arrays, joined in numpy on 64-bit hashes of the ids (sorted search, no SQL join).

    Returns ``None`` when two spans or two traces share a hash (the caller then joins exactly).
    """
    key = _SPAN_KEY
    spans = con.sql(f"""
        SELECT rowid AS i, {key.format(id="span_id")} AS h, hash(trace_id) AS th,
               coalesce({key.format(id="parent_span_id")}, 0::UBIGINT) AS ph, parent_span_id IS NOT NULL AS hp
        FROM span_store""").to_arrow_table()
    met = con.sql(f"""SELECT {key.format(id="span_id")} AS h, depth, on_critical_path_ns AS on_cp,
                             start_ns AS a_start, end_ns AS a_end FROM latency_spans""").to_arrow_table()
    tix = con.sql("SELECT hash(trace_id) AS th, t FROM _loc_tix").to_arrow_table()
    h, th = _u64(spans, "h"), _u64(spans, "th")
    order = np.argsort(h)
    hs = h[order]
    tord = np.argsort(_u64(tix, "th"))
    ths = _u64(tix, "th")[tord]
    if (len(hs) > 1 and (hs[1:] == hs[:-1]).any()) or (len(ths) > 1 and (ths[1:] == ths[:-1]).any()):
        return None

    def find(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(sorted_keys):
            return np.zeros(len(keys), np.int64), np.zeros(len(keys), bool)
        by = np.argsort(keys)  # sorted needles keep the binary searches cache-friendly
        pos = np.empty(len(keys), np.int64)
        pos[by] = np.minimum(np.searchsorted(sorted_keys, keys[by]), len(sorted_keys) - 1)
        return pos, sorted_keys[pos] == keys

    mpos, mok = find(hs, _u64(met, "h"))
    if not mok.all() or len(mpos) != len(hs):
        return None
    row_of_met = order[mpos]  # row (in ``spans``) of each latency_spans row
    n = len(hs)
    out: dict[str, I64] = {"i": _np(spans, "i")}
    for k in ("depth", "on_cp", "a_start", "a_end"):
        arr = np.zeros(n, np.int64)
        arr[row_of_met] = _np(met, k)
        out[k] = arr
    tpos, tok = find(ths, th)
    if not tok.all():
        return None
    out["t"] = _np(tix, "t")[tord][tpos]
    ppos, pok = find(hs, _u64(spans, "ph"))
    has = np.asarray(spans.column("hp").to_numpy(zero_copy_only=False), dtype=bool) & pok & (out["depth"] > 0)
    out["p"] = np.where(has, out["i"][order[ppos]], -1)
    return out


def build_index(con: duckdb.DuckDBPyConnection) -> SpanIndex:
    """Number the traces (``_loc_tix``), load the per-span arrays and register ``_loc_idx(i, p)``
    (``p``: row of the parent in the repaired tree, -1 for a root) for the SQL steps; the caller
    unregisters it."""
    con.execute("""
    CREATE OR REPLACE TEMP TABLE _loc_tix AS
    SELECT trace_id, (row_number() OVER (ORDER BY trace_id) - 1)::BIGINT AS t FROM latency_traces
    """)
    cols = _hashed_index(con)
    if cols is None:  # a hash collision: join on the ids themselves
        tbl = con.sql(_INDEX_EXACT_SQL).to_arrow_table()
        cols = {k: _np(tbl, k) for k in ("i", "t", "depth", "on_cp", "a_start", "a_end", "p")}
    i = cols["i"]
    n = int(i.max()) + 1 if len(i) else 0
    out = {k: np.zeros(n, np.int64) for k in ("t", "depth", "on_cp", "a_start", "a_end")}
    out["t"][:] = -1  # rowids without a span (holes) belong to no trace
    for k, arr in out.items():
        arr[i] = cols[k]
    parent = np.full(n, -1, np.int64)
    parent[i] = cols["p"]
    parent[out["depth"] == 0] = -1  # the repaired tree: orphans and cut cycles are roots
    con.register("_loc_idx", pa.table({"i": pa.array(i), "p": pa.array(parent[i])}))
    return SpanIndex(parent, out["depth"], out["on_cp"], out["t"], out["a_start"], out["a_end"],
                     _levels(out["depth"]))


def _np(tbl: pa.Table, col: str) -> I64:
    if tbl.num_rows == 0:
        return np.empty(0, np.int64)
    return np.asarray(tbl.column(col).to_numpy(), dtype=np.int64)


def _levels(depth: I64) -> list[I64]:
    """Row numbers per depth, depth 1 first (roots are not listed)."""
    if not len(depth):
        return []
    order = np.argsort(depth, kind="stable")
    bounds = np.searchsorted(depth[order], np.arange(1, int(depth.max()) + 2))
    return [order[bounds[k]:bounds[k + 1]] for k in range(len(bounds) - 1)]


def critical_inputs(con: duckdb.DuckDBPyConnection, ix: SpanIndex) -> None:
    """Write ``_loc_crit(i, critical_ns)`` for every access: the critical-path ns inside the
    access's subtree (its own segments plus its descendants'), plus, for a cache miss, inside
    its backing fetch spans."""
    n = len(ix.parent)
    sub = ix.on_cp.astype(np.float64)
    for rows in reversed(ix.levels):  # subtree sums, deepest level first
        sub += np.bincount(ix.parent[rows], weights=sub[rows], minlength=n)
    ix.sub = np.rint(sub).astype(np.int64)
    wanted = np.zeros(n, bool)
    wanted[_np(con.sql("SELECT i FROM _loc_cand WHERE access_type IS NOT NULL UNION ALL "
                       "SELECT i FROM _loc_srv").to_arrow_table(), "i")] = True
    ids = np.flatnonzero(wanted)
    back = con.sql("SELECT i, unnest(backing_i) AS b FROM _loc_backing").to_arrow_table()
    crit = ix.sub.copy()
    np.add.at(crit, _np(back, "i"), ix.sub[_np(back, "b")])
    con.register("_loc_crit_in", pa.table({"i": pa.array(ids), "critical_ns": pa.array(crit[ids])}))
    con.execute("CREATE OR REPLACE TEMP TABLE _loc_crit AS SELECT * FROM _loc_crit_in")
    con.unregister("_loc_crit_in")


def trace_critical(con: duckdb.DuckDBPyConnection, ix: SpanIndex) -> None:
    """``_loc_trace_crit(trace_id, miss_critical_ns, remote_critical_ns)``: per trace, the
    critical-path time inside any miss (with its backing fetch) / any remote access; a span
    inside several such accesses counts once."""
    acc = con.sql("""
    SELECT i, outcome = 'miss' AND access_type <> 'prefix_cache' AS miss,
           remote IN ('cross_zone', 'cross_region') AS remote
    FROM locality_access_store WHERE (outcome = 'miss' AND access_type <> 'prefix_cache')
                                  OR remote IN ('cross_zone', 'cross_region')
    """).to_arrow_table()
    back = con.sql("SELECT unnest(backing_i) AS b FROM _loc_backing").to_arrow_table()
    parent, on_cp, n = ix.parent, ix.on_cp, len(ix.parent)
    ai = _np(acc, "i")
    miss_flag = np.zeros(n, bool)
    remote_flag = np.zeros(n, bool)
    miss_flag[ai[_bool(acc, "miss")]] = True
    remote_flag[ai[_bool(acc, "remote")]] = True
    miss_flag[_np(back, "b")] = True
    for rows in ix.levels:  # top-down: inside a flagged span is flagged
        miss_flag[rows] |= miss_flag[parent[rows]]
        remote_flag[rows] |= remote_flag[parent[rows]]
    real = ix.trace >= 0
    n_traces = int(ix.trace.max()) + 1 if n else 0
    tr = ix.trace[real]
    miss_ns = np.bincount(tr, weights=np.where(miss_flag, on_cp, 0)[real], minlength=n_traces)
    remote_ns = np.bincount(tr, weights=np.where(remote_flag, on_cp, 0)[real], minlength=n_traces)
    con.register("_loc_tc_in", pa.table({
        "t": pa.array(np.arange(n_traces, dtype=np.int64)),
        "miss_critical_ns": pa.array(np.rint(miss_ns).astype(np.int64)),
        "remote_critical_ns": pa.array(np.rint(remote_ns).astype(np.int64)),
    }))
    con.execute("""
    CREATE OR REPLACE TEMP TABLE _loc_trace_crit AS
    SELECT x.trace_id, c.miss_critical_ns, c.remote_critical_ns FROM _loc_tc_in c JOIN _loc_tix x USING (t)
    """)
    con.unregister("_loc_tc_in")


def _bool(tbl: pa.Table, col: str) -> np.ndarray:
    if tbl.num_rows == 0:
        return np.zeros(0, bool)
    return np.asarray(tbl.column(col).fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


# --- what-if ---------------------------------------------------------------------------------

_TARGETS_SQL = """
WITH med AS (
    SELECT access_type, store, hit_ns, local_ns FROM locality_median_store  -- store-wide (locality.MEDIANS)
), a AS (
    SELECT l.i, l.duration_ns,
           least(CASE WHEN l.outcome = 'miss' THEN m.hit_ns END,
                 CASE WHEN l.remote IN ('cross_zone', 'cross_region') THEN m.local_ns END)::BIGINT AS target_ns,
           l.outcome = 'miss' AND m.hit_ns IS NOT NULL AS cut_backing
    FROM {acc} l JOIN med m USING (access_type, store)
    WHERE l.critical_ns > 0 AND l.access_type <> 'prefix_cache'
)
SELECT i, target_ns FROM a WHERE target_ns < duration_ns
UNION ALL
SELECT unnest(b.backing_i) AS i, 0 AS target_ns FROM a JOIN {backing} b USING (i) WHERE a.cut_backing
"""

#: The accesses with their span's row ``i`` (the store's table keeps no row numbers).
_STORED_ACCESSES = """(
    SELECT a.*, s.rowid AS i FROM locality_access_store a JOIN span_store s USING (trace_id, span_id))"""

#: The backing spans' rows from the stored span ids (when ``_loc_backing`` is gone, after derive).
_STORED_BACKING = """(
    SELECT l.i, list(s.rowid) AS backing_i
    FROM (SELECT i, trace_id, unnest(backing_span_ids) AS bid FROM {acc}
          WHERE backing_span_ids IS NOT NULL) l
    JOIN span_store s ON s.trace_id = l.trace_id AND s.span_id = l.bid
    GROUP BY l.i)"""


def _replayed(con: duckdb.DuckDBPyConnection, ix: SpanIndex, backing: str = "_loc_backing",
              acc: str = "locality_access_store") -> tuple[I64, I64, I64] | None:
    """Rows of the traces with a counterfactual to apply, and their replayed (start, end)."""
    tg = con.sql(_TARGETS_SQL.format(backing=backing, acc=acc)).to_arrow_table()
    if tg.num_rows == 0:
        return None
    n = len(ix.parent)
    big = np.iinfo(np.int64).max
    target = np.full(n, big, np.int64)
    np.minimum.at(target, _np(tg, "i"), _np(tg, "target_ns"))
    target[target == big] = -1
    hit_traces = np.zeros(int(ix.trace.max()) + 1, bool)
    hit_traces[ix.trace[_np(tg, "i")]] = True
    rows = np.flatnonzero((ix.trace >= 0) & hit_traces[np.maximum(ix.trace, 0)])
    local = np.full(n, -1, np.int64)
    local[rows] = np.arange(len(rows))
    par = ix.parent[rows]
    parent = np.where(par >= 0, local[np.maximum(par, 0)], -1)
    new_s, new_e = replay(parent, ix.start[rows], ix.end[rows], target[rows], depth=ix.depth[rows])
    return rows, new_s, new_e


def what_if(con: duckdb.DuckDBPyConnection, ix: SpanIndex) -> None:
    """Write ``locality_trace_store``: per trace the critical time in misses / remote accesses and
    the what-if end-to-end duration.

    The what-if duration of a replayed trace is its latest end minus its earliest
    start over all its spans, which is exactly the end-to-end duration the graph
    module computes for the replayed copy (``tests/analyzers/locality/test_locality_whatif.py``
    checks this against :func:`fabric_trace.graph.compute_trace_metrics` on
    :func:`replayed_spans`); other traces keep their duration.
    """
    con.register("_loc_wi_in", _whatif_durations(ix, _replayed(con, ix)))
    con.execute("""
    CREATE OR REPLACE TABLE locality_trace_store AS
    SELECT t.trace_id, t.duration_ns, coalesce(c.miss_critical_ns, 0) AS miss_critical_ns,
           coalesce(c.remote_critical_ns, 0) AS remote_critical_ns,
           least(coalesce(w.whatif_ns, t.duration_ns), t.duration_ns) AS whatif_duration_ns,
           w.whatif_ns IS NOT NULL AS whatif_changed
    FROM latency_traces t
    JOIN _loc_tix x USING (trace_id)
    LEFT JOIN _loc_trace_crit c USING (trace_id)
    LEFT JOIN _loc_wi_in w USING (t)
    """)
    con.unregister("_loc_wi_in")


def what_if_again(con: duckdb.DuckDBPyConnection, config: object = None) -> None:
    """Replace only the what-if columns of ``locality_trace_store`` (the partition's own rows, with
    ``locality_access_store``, ``latency_spans`` and ``latency_traces`` of the same traces and a
    ``span_store`` of the id columns): the second step of a first analysis, once the store-wide
    medians are known (``locality.MEDIANS.rederive``). The replay is :func:`what_if`'s, from the
    stored accesses (as :func:`replayed_spans` does), so the rows are the ones a derive with the
    same medians writes."""
    ix = build_index(con)
    con.unregister("_loc_idx")
    res = _replayed(con, ix, _STORED_BACKING.format(acc=_STORED_ACCESSES), _STORED_ACCESSES)
    con.register("_loc_wi_in", _whatif_durations(ix, res))
    try:
        con.execute("""
        CREATE OR REPLACE TEMP TABLE _loc_trace_again AS
        SELECT t.trace_id, t.duration_ns, t.miss_critical_ns, t.remote_critical_ns,
               least(coalesce(w.whatif_ns, t.duration_ns), t.duration_ns) AS whatif_duration_ns,
               w.whatif_ns IS NOT NULL AS whatif_changed
        FROM locality_trace_store t
        JOIN _loc_tix x USING (trace_id)
        LEFT JOIN _loc_wi_in w USING (t)
        """)
    finally:
        con.unregister("_loc_wi_in")
    con.execute("CREATE OR REPLACE TABLE locality_trace_store AS SELECT * FROM _loc_trace_again")
    con.execute("DROP TABLE _loc_trace_again")
    con.execute("DROP TABLE _loc_tix")


def _whatif_durations(ix: SpanIndex, res: tuple[I64, I64, I64] | None) -> pa.Table:
    """``(t, whatif_ns)`` of every replayed trace: its latest new end minus its earliest new start."""
    if res is None:
        return pa.table({"t": pa.array([], pa.int64()), "whatif_ns": pa.array([], pa.int64())})
    rows, new_s, new_e = res
    t = ix.trace[rows]
    n_traces = int(ix.trace.max()) + 1
    lo = np.full(n_traces, np.iinfo(np.int64).max, np.int64)
    hi = np.full(n_traces, np.iinfo(np.int64).min, np.int64)
    np.minimum.at(lo, t, new_s)
    np.maximum.at(hi, t, new_e)
    done = np.flatnonzero(hi >= lo)
    return pa.table({"t": pa.array(done), "whatif_ns": pa.array(hi[done] - lo[done])})


def replayed_spans(con: duckdb.DuckDBPyConnection, ix: SpanIndex) -> pa.Table | None:
    """The replayed copy of every trace with a counterfactual, with ``span_store``'s columns
    (what the graph module reads); for tests and for inspecting a what-if after a refresh
    (``ix`` from :func:`build_index` on the same connection)."""
    res = _replayed(con, ix, _STORED_BACKING.format(acc=_STORED_ACCESSES), _STORED_ACCESSES)
    if res is None:
        return None
    rows, new_s, new_e = res
    con.register("_loc_rows_in", pa.table({"i": pa.array(rows), "start_ns": pa.array(new_s),
                                           "end_ns": pa.array(new_e)}))
    try:
        return con.sql("""
        SELECT s.trace_id, s.span_id, s.parent_span_id, s.kind, s.service_name, s.host, s.status_code,
               r.start_ns, r.end_ns
        FROM _loc_rows_in r JOIN span_store s ON s.rowid = r.i
        """).to_arrow_table()
    finally:
        con.unregister("_loc_rows_in")


def replay(parent: I64, start: I64, end: I64, target: I64, *, depth: I64 | None = None) -> tuple[I64, I64]:
    """Shift a forest's spans after shortening some of them (see the module docstring).

    ``target[i] >= 0`` caps span ``i``'s duration (0 removes it); ``-1`` leaves it.
    Returns the new (start, end) arrays; with no targets they equal the input.

    Vectorised by depth: ``rho[v]`` is how much earlier a span ends than its
    (shifted) start would imply, computed bottom-up from its children;
    ``sigma[c]`` is how much earlier a span starts than its parent's shift
    would imply, from the earlier siblings that had ended when it started (its
    "gates"); the shift of a span's start is the sum of ``sigma`` down its
    ancestor chain. Sibling groups that run strictly one after another are
    a prefix sum; only groups with overlapping siblings are scanned in Python.
    """
    n = len(parent)
    start = np.asarray(start, np.int64)
    end = np.asarray(end, np.int64)
    if n == 0:
        return start.copy(), end.copy()
    if depth is None:
        from fabric_trace.graph.arrays import jumps

        depth = jumps(parent).depth
    dur = end - start
    rho = np.zeros(n, np.int64)
    sigma = np.zeros(n, np.int64)
    # siblings in (parent, start, end, row) order, roots first
    order = np.lexsort((np.arange(n), end, start, parent))
    by_depth = np.argsort(depth, kind="stable")
    bounds = np.searchsorted(depth[by_depth], np.arange(int(depth.max()) + 2))
    levels = [by_depth[bounds[k]:bounds[k + 1]] for k in range(len(bounds) - 1)]
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    lo = np.iinfo(np.int64).min
    for d in range(len(levels) - 1, -1, -1):
        nodes = levels[d]
        r = np.zeros(len(nodes), np.int64)
        if d + 1 < len(levels) and len(levels[d + 1]):
            ch = levels[d + 1]
            p = parent[ch]
            inside = end[ch] <= end[p]
            m_old = np.full(n, lo, np.int64)
            m_new = np.full(n, lo, np.int64)
            np.maximum.at(m_old, p[inside], end[ch][inside])
            np.maximum.at(m_new, p[inside], (end + sigma + rho)[ch][inside])
            has = m_old[nodes] > lo
            r = np.where(has, np.minimum(0, np.maximum(-dur[nodes], m_new[nodes] - m_old[nodes])), 0)
        tg = target[nodes]
        r = np.where(tg >= 0, np.minimum(r, np.minimum(tg, dur[nodes]) - dur[nodes]), r)
        rho[nodes] = r
        if d > 0:
            _sigma_level(nodes[np.argsort(rank[nodes])], parent, start, end, rho, sigma)
    delta = np.zeros(n, np.int64)
    for nodes in levels[1:]:
        delta[nodes] = delta[parent[nodes]] + sigma[nodes]
    return start + delta, end + delta + rho


def _sigma_level(kids: I64, parent: I64, start: I64, end: I64, rho: I64, sigma: I64) -> None:
    """``sigma`` of one depth level's spans, ``kids`` in (parent, start, end, row) order."""
    par = parent[kids]
    new_group = np.ones(len(kids), bool)
    new_group[1:] = par[1:] != par[:-1]
    gid = np.cumsum(new_group) - 1
    active = np.zeros(int(gid[-1]) + 1, bool)
    active[gid[rho[kids] != 0]] = True
    keep = active[gid]
    if not keep.any():
        return
    kids, gid, new_group = kids[keep], gid[keep], new_group[keep]
    s, e = start[kids], end[kids]
    # running max of the earlier siblings' ends: packed (group, end rank) restarts at each group
    uniq, erank = np.unique(e, return_inverse=True)
    m = len(uniq)
    run = np.maximum.accumulate(gid * m + erank.astype(np.int64))
    prev = np.zeros(len(kids), np.int64)
    prev[1:] = run[:-1] - gid[1:] * m
    seq_ok = new_group | (uniq[np.clip(prev, 0, m - 1)] <= s)
    seq_group = np.ones(int(gid[-1]) + 1, bool)
    seq_group[gid[~seq_ok]] = False
    seq = seq_group[gid]
    # strictly sequential groups: every earlier sibling is a gate, so sigma is the prefix sum of rho
    if seq.any():
        k = kids[seq]
        r = rho[k]
        csum = np.cumsum(r)
        base = np.maximum.accumulate(np.where(new_group[seq], np.arange(len(k)), 0))
        sigma[k] = csum - r - (csum[base] - r[base])
    # groups with overlapping siblings: scan in Python, gates released in end order
    if (~seq).any():
        _scan_groups(kids[~seq], new_group[~seq], start, end, rho, sigma)


def _scan_groups(kids: I64, first: np.ndarray, start: I64, end: I64, rho: I64, sigma: I64) -> None:
    """Sibling groups with overlap: ``sigma[c] = max(new end of gates) - max(old end of gates)``."""
    import heapq

    ks = kids.tolist()
    fs = first.tolist()
    s, e, r = start[kids].tolist(), end[kids].tolist(), rho[kids].tolist()
    out = [0] * len(ks)
    pending: list[tuple[int, int]] = []
    w = em = None
    for j in range(len(ks)):
        if fs[j]:
            pending, w, em = [], None, None
        while pending and pending[0][0] <= s[j]:
            ej, q = heapq.heappop(pending)
            val = ej + out[q] + r[q]
            if w is None or val > w:
                w = val
            if em is None or ej > em:
                em = ej
        if w is not None:
            out[j] = w - em
        heapq.heappush(pending, (e[j], j))
    sigma[kids] = np.asarray(out, np.int64)


__all__ = ["SpanIndex", "build_index", "critical_inputs", "replay", "replayed_spans", "trace_critical", "what_if",
           "what_if_again"]
