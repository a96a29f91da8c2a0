"""The locality findings, inserted into ``finding_store`` with ``analyzer = 'locality'``.

One SQL statement per kind, over ``locality_access_store`` (rules:
docs/locality.md, "Findings"):

* ``cache_miss``: a cache lookup that missed;
* ``prefix_cache_miss``: an LLM call that reported 0 cached input tokens although
  an earlier call of the same session, service, provider, model (and prompt
  fingerprint, when recorded) had already sent the prefix;
* ``cross_zone`` / ``cross_region``: an access whose caller and server run in
  different zones / regions;
* ``redundant_fetch``: a key fetched again in the same trace with no write of
  the key in between; ``session_redundant_fetch``: fetched again in a later
  trace of the same session.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fabric_trace.analyzers.contract import write_findings
from fabric_trace.analyzers.locality.config import LocalityConfig
from fabric_trace.model import Severity

#: Severity of each finding kind.
SEVERITY: dict[str, Severity] = {
    "cache_miss": Severity.LOW,
    "prefix_cache_miss": Severity.MEDIUM,
    "cross_zone": Severity.LOW,
    "cross_region": Severity.MEDIUM,
    "redundant_fetch": Severity.LOW,
    "session_redundant_fetch": Severity.INFO,
}

KINDS = tuple(SEVERITY)


def _ms(col: str) -> str:
    return f"CAST(round({col} / 1e6, 3) AS VARCHAR) || ' ms'"


_CACHE_MISS = f"""
SELECT 'cache_miss', '{SEVERITY["cache_miss"]}', trace_id, span_id,
       'cache miss on ' || store || coalesce(' (key ' || key || ')', '') || ': ' || {_ms('cost_ns')}
       || CASE WHEN backing_span_ids IS NOT NULL THEN ' with the backing fetch' ELSE '' END
       || ', ' || {_ms('critical_ns')} || ' on the critical path',
       json_object('store', store, 'key', key, 'outcome_source', outcome_source, 'duration_ns', duration_ns,
                   'cost_ns', cost_ns, 'critical_ns', critical_ns, 'backing_span_ids', backing_span_ids)
FROM locality_access_store
WHERE access_type = 'cache' AND outcome = 'miss'
ORDER BY trace_id, start_ns, span_id
"""

_REMOTE = f"""
SELECT remote, CASE remote WHEN 'cross_region' THEN '{SEVERITY["cross_region"]}'
                                       ELSE '{SEVERITY["cross_zone"]}' END, trace_id, span_id,
       replace(remote, '_', '-') || ' ' || access_type || ' from ' || caller_service || ' ('
       || coalesce(caller_location, '?') || ') to ' || coalesce(server_service, store) || ' ('
       || coalesce(server_location, '?') || '): ' || {_ms('duration_ns')} || ', '
       || {_ms('critical_ns')} || ' on the critical path',
       json_object('access_type', access_type, 'store', store, 'caller_service', caller_service,
                   'caller_region', caller_region, 'caller_zone', caller_zone,
                   'server_service', server_service, 'server_region', server_region,
                   'server_zone', server_zone, 'duration_ns', duration_ns, 'critical_ns', critical_ns)
FROM locality_access_store
WHERE remote IN ('cross_zone', 'cross_region')
ORDER BY trace_id, start_ns, span_id
"""


def _prefix_sql(cfg: LocalityConfig) -> str:
    return f"""
        WITH calls AS (
        SELECT * FROM (
            SELECT c.trace_id, c.span_id, coalesce(c.session_id, ts.session_id) AS session_id,
                   c.service_name AS caller_service, c.store, c.start_ns, c.input_tokens,
                   c.cached_input_tokens, c.fingerprint
            FROM _loc_cand c LEFT JOIN _loc_tsess ts USING (trace_id)
            WHERE c.access_type = 'prefix_cache' AND c.status_code <> 'ERROR'
        ) WHERE session_id IS NOT NULL
    ), w AS (
        SELECT *,
               first_value(start_ns) OVER k AS first_start,
               first_value(span_id) OVER k AS first_span_id,
               first_value(trace_id) OVER k AS first_trace_id
        FROM calls
        WINDOW k AS (PARTITION BY session_id, caller_service, store, fingerprint ORDER BY start_ns, span_id)
    )
    SELECT 'prefix_cache_miss', '{SEVERITY["prefix_cache_miss"]}', trace_id, span_id,
           'LLM call on ' || store || ' reported 0 cached input tokens of ' || input_tokens
           || ' although the session already sent this prompt prefix (first call: span ' || first_span_id || ')',
           json_object('store', store, 'session_id', session_id, 'service', caller_service,
                       'input_tokens', input_tokens, 'cached_input_tokens', cached_input_tokens,
                       'first_call_trace_id', first_trace_id, 'first_call_span_id', first_span_id,
                       'prompt_fingerprint', fingerprint)
    FROM w
    WHERE cached_input_tokens = 0 AND input_tokens >= {int(cfg.min_prompt_tokens)} AND first_start < start_ns
    ORDER BY trace_id, start_ns, span_id
    """


#: Fetches (reads with a key) and the cache writes that invalidate keys. A write refills, and does
#: not invalidate, when the same parent read the key earlier (cache-aside: GET miss, fetch, SET).
_FETCH_EVENTS = """
SELECT c.i, c.trace_id, coalesce(c.session_id, ts.session_id) AS session_id, c.store, c.key,
       c.start_ns, c.span_id, false AS is_write
FROM _loc_cand c LEFT JOIN _loc_tsess ts USING (trace_id)
WHERE c.key IS NOT NULL AND c.access_type IS NOT NULL
UNION ALL
SELECT -1 AS i, w.trace_id, w.session_id, w.store, w.key, w.start_ns, w.span_id, true AS is_write
FROM _loc_writes w
WHERE NOT EXISTS (SELECT 1 FROM _loc_cand r
                  WHERE r.trace_id = w.trace_id AND r.parent_span_id = w.parent_span_id AND r.store = w.store
                    AND r.key = w.key AND r.start_ns <= w.start_ns AND r.access_type IS NOT NULL)
"""

_REDUNDANT_INSERT = f"""
SELECT 'redundant_fetch', '{SEVERITY["redundant_fetch"]}', a.trace_id, a.span_id,
       a.access_type || ' ' || a.store || ' fetched ' || a.key || ' again in the same trace (first: span '
       || f.span_id || ')',
       json_object('scope', 'trace', 'access_type', a.access_type, 'store', a.store, 'key', a.key,
                   'first_trace_id', f.trace_id, 'first_span_id', f.span_id)
FROM _loc_red r JOIN _loc_cand a ON a.i = r.i JOIN _loc_cand f ON f.i = r.first_i
WHERE r.scope = 'trace'
ORDER BY a.trace_id, a.start_ns, a.span_id
"""

_SESSION_INSERT = f"""
SELECT 'session_redundant_fetch', '{SEVERITY["session_redundant_fetch"]}', a.trace_id, a.span_id,
       a.access_type || ' ' || a.store || ' fetched ' || a.key || ' again in session ' || r.session_id
       || ' (first: trace ' || f.trace_id || ', span ' || f.span_id || ')',
       json_object('scope', 'session', 'session_id', r.session_id, 'access_type', a.access_type,
                   'store', a.store, 'key', a.key, 'first_trace_id', f.trace_id, 'first_span_id', f.span_id)
FROM _loc_red r JOIN _loc_cand a ON a.i = r.i JOIN _loc_cand f ON f.i = r.first_i
WHERE r.scope = 'session'
ORDER BY a.trace_id, a.start_ns, a.span_id
"""


def _codes(col: pa.ChunkedArray) -> np.ndarray:
    """Integer codes of a string column (equal strings, equal codes; NULL -> -1)."""
    enc = pc.dictionary_encode(col.combine_chunks())
    return np.asarray(enc.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _repeats(group: np.ndarray, is_write: np.ndarray, order_keys: tuple[np.ndarray, ...],
             trace: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Positions of repeated reads and of the first read they repeat.

    Events are ordered by ``group`` then ``order_keys``; a write starts a new
    epoch of its group. With ``trace`` (session scope) only the first read of
    each trace in an epoch counts, and only when the epoch's first read is in
    another trace.
    """
    if len(group) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.lexsort(tuple(reversed((group,) + order_keys)))
    g, w = group[order], is_write[order]
    new = np.ones(len(g), bool)
    new[1:] = g[1:] != g[:-1]
    epoch_start = new | w  # a write opens a new epoch for the reads after it
    epoch = np.cumsum(epoch_start)
    reads = ~w
    pos = order[reads]
    ep = epoch[reads]
    first_of_epoch = np.ones(len(ep), bool)
    first_of_epoch[1:] = ep[1:] != ep[:-1]
    first_idx = np.maximum.accumulate(np.where(first_of_epoch, np.arange(len(ep)), 0))
    first = pos[first_idx]
    if trace is None:
        rep = ~first_of_epoch
        return pos[rep], first[rep]
    tr = trace[pos]
    _, firsts = np.unique(ep * (int(trace.max()) + 1) + tr, return_index=True)
    first_in_trace = np.zeros(len(ep), bool)
    first_in_trace[firsts] = True
    rep = first_in_trace & (tr != trace[first])
    return pos[rep], first[rep]


def _redundant(con: duckdb.DuckDBPyConnection) -> None:
    """``redundant_fetch`` and ``session_redundant_fetch`` findings (windows done in numpy)."""
    ev = con.sql(_FETCH_EVENTS).to_arrow_table()
    if ev.num_rows == 0:
        return
    trace = _codes(ev.column("trace_id"))
    session = _codes(ev.column("session_id"))
    store_key = _codes(pc.binary_join_element_wise(ev.column("store"), ev.column("key"), "\x1f"))
    start = np.asarray(ev.column("start_ns").to_numpy(), dtype=np.int64)
    span = np.asarray(pc.rank(ev.column("span_id").combine_chunks(), "ascending").to_numpy(), dtype=np.int64)
    w = np.asarray(ev.column("is_write").to_numpy(zero_copy_only=False), dtype=bool)
    i = np.asarray(ev.column("i").to_numpy(), dtype=np.int64)
    nkeys = int(store_key.max()) + 1
    keys = (start, (~w).astype(np.int64), span)
    t_pos, t_first = _repeats(trace * nkeys + store_key, w, keys)
    has = session >= 0
    sel = np.flatnonzero(has)
    s_pos, s_first = _repeats((session * nkeys + store_key)[sel], w[sel], tuple(k[sel] for k in keys), trace[sel])
    s_pos, s_first = sel[s_pos], sel[s_first]
    sess = ev.column("session_id").take(pa.array(s_pos))
    con.register("_loc_red_in", pa.table({
        "i": pa.array(np.concatenate([i[t_pos], i[s_pos]])),
        "first_i": pa.array(np.concatenate([i[t_first], i[s_first]])),
        "scope": pa.array(["trace"] * len(t_pos) + ["session"] * len(s_pos)),
        "session_id": pa.concat_arrays([pa.nulls(len(t_pos), pa.string()), sess.combine_chunks()]),
    }))
    con.execute("CREATE OR REPLACE TEMP TABLE _loc_red AS SELECT * FROM _loc_red_in")
    con.unregister("_loc_red_in")
    write_findings(con, "locality", _REDUNDANT_INSERT)
    write_findings(con, "locality", _SESSION_INSERT)
    con.execute("DROP TABLE _loc_red")


def insert_findings(con: duckdb.DuckDBPyConnection, cfg: LocalityConfig) -> None:
    """Append every locality finding to ``finding_store`` (reads the ``_loc_*`` temp tables)."""
    write_findings(con, "locality", _CACHE_MISS)
    write_findings(con, "locality", _prefix_sql(cfg))
    write_findings(con, "locality", _REMOTE)
    _redundant(con)


__all__ = ["KINDS", "SEVERITY", "insert_findings"]
