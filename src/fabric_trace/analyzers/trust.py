"""The trust analyzer: zones, boundary crossings and risky execution paths.

``derive`` runs after the latency analyzer, inside the refresh transaction, and
(re)creates (docs/trust.md):

* ``trust_zone_store``     (view ``trust_spans`` joins it to every span): the zone of each resource;
* ``trust_crossing_store`` (view ``trust_crossings``): every call edge whose two ends are in
  different zones, every call to an uninstrumented peer in another zone, every end-user entry;
* rows of ``finding_store`` with ``analyzer = 'trust'`` (:mod:`.trust_rules`).

Everything is set-based. One sorted scan of ``span_store`` feeds numpy, which
links parents by hashed ids and computes tree positions for all spans at once
(:mod:`.trust_tree`); the rest is SQL joined on ``span_store.rowid`` (kept as
``srow``), and the "latest X before this span" questions are ASOF joins.
"""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from fabric_trace.analyzers import Analyzer
from fabric_trace.analyzers.trust_rules import TOOL_SQL, insert_findings
from fabric_trace.analyzers.trust_tree import tree_positions
from fabric_trace.analyzers.trust_zones import (
    build_zones,
    load_trust_config,
    resolve_peers,
    write_config_tables,
)

_VIEWS = """
CREATE OR REPLACE VIEW trust_spans AS
SELECT s.trace_id, s.span_id, s.service_name, z.zone, z.zone_kind, z.trust_level
FROM span_store s JOIN trust_zone_store z ON z.resource_id = s.resource_id;
CREATE OR REPLACE VIEW trust_crossings AS
SELECT trace_id, crossing, parent_span_id, child_span_id, from_zone, from_kind, from_level,
       to_zone, to_kind, to_level, peer, protocol, operation, scheme,
       identity_from, identity_to, error
FROM trust_crossing_store;
"""

#: Client calls that may reach an uninstrumented peer.
_CANDIDATE_SQL = (
    "((s.kind IN ('CLIENT', 'PRODUCER') AND (s.peer IS NOT NULL OR s.provider IS NOT NULL)) "
    "OR (s.role IN ('llm', 'embedding', 'rerank') AND s.provider IS NOT NULL))"
)
_IDENT_SQL = "(s.user_id IS NOT NULL OR s.session_id IS NOT NULL)"


#: SQL over ``span_store s`` (rpc and messaging spans only): the system name.
_PROTOCOL_JSON = (
    "CASE WHEN s.role = 'rpc' THEN coalesce(lower(json_extract_string(s.attributes, '$.\"rpc.system.name\"')), "
    "lower(json_extract_string(s.attributes, '$.\"rpc.system\"')), 'rpc') "
    "ELSE coalesce(lower(json_extract_string(s.attributes, '$.\"messaging.system\"')), 'messaging') END"
)


def _protocol(a: str) -> str:
    """SQL: the protocol of span ``a`` from its normalized columns (rpc/messaging: ``_trust_proto``)."""
    return (
        f"CASE WHEN {a}.db_system IS NOT NULL THEN {a}.db_system "
        f"WHEN {a}.role = 'http' OR {a}.url_scheme IN ('http', 'https') THEN 'http' "
        f"WHEN {a}.role IN ('llm', 'embedding', 'rerank') THEN 'genai' END"
    )


def _host(a: str) -> str:
    return f"nullif(trim(lower({a}.peer), '[]'), '')"


def _parents(k: np.ndarray, pk: np.ndarray, has_parent: np.ndarray) -> np.ndarray | None:
    """Row of each span's parent from 64-bit id hashes (-1 if missing); None on a hash collision.

    Both sides are sorted first: binary searches for sorted needles stay in cache.
    """
    n = len(k)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(k)
    sk = k[order]
    if bool((sk[1:] == sk[:-1]).any()):
        return None
    porder = np.argsort(pk)
    pos = np.empty(n, dtype=np.int64)
    pos[porder] = np.searchsorted(sk, pk[porder])
    pos = np.minimum(pos, n - 1)
    found = has_parent & (sk[pos] == pk)
    return np.where(found, order[pos], -1).astype(np.int64)


def _ident_down(trace_no: np.ndarray, svc: np.ndarray, ident: np.ndarray, enter: np.ndarray,
                exit_: np.ndarray) -> np.ndarray:
    """Whether each span or a span of the same service inside its subtree carries identity."""
    n = len(trace_no)
    out = np.zeros(n, dtype=bool)
    rows = np.flatnonzero(ident)
    if len(rows) == 0:
        return out
    n_svc = int(svc.max()) + 1
    # one sortable key per (trace, service, tour position); positions are < 2n
    span = np.int64(2 * n + 1)
    group = trace_no * n_svc + svc
    keys = np.sort(group[rows] * span + enter[rows])
    queries = group * span + enter
    pos = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
    hit = keys[pos]
    return (hit // span == group) & (hit % span <= exit_)


def _exact_parents(con: duckdb.DuckDBPyConnection, srow: np.ndarray) -> np.ndarray:
    """Parent rows by an exact join on the ids (used only if two ids hash alike)."""
    e = con.execute(
        "SELECT c.rowid AS crow, p.rowid AS prow FROM span_store c JOIN span_store p "
        "ON p.trace_id = c.trace_id AND p.span_id = c.parent_span_id WHERE c.parent_span_id <> c.span_id"
    ).fetchnumpy()
    order = np.argsort(srow)
    where = lambda rows: order[np.searchsorted(srow[order], rows)]  # noqa: E731
    parent = np.full(len(srow), -1, dtype=np.int64)
    parent[where(e["crow"])] = where(e["prow"])
    return parent


def _build_positions(con: duckdb.DuckDBPyConnection) -> None:
    """``_trust_pos`` (one row per span, keyed by ``srow``) and ``_trust_anon`` (traces without identity)."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _trust_tr AS
        SELECT trace_id, (row_number() OVER (ORDER BY trace_id) - 1)::BIGINT AS trace_no
        FROM (SELECT DISTINCT trace_id FROM span_store)
        """
    )
    a = con.execute(
        f"""
        SELECT s.rowid AS srow, t.trace_no, hash(s.trace_id, s.span_id) AS k,
               coalesce(hash(s.trace_id, s.parent_span_id), 0) AS pk,
               s.parent_span_id IS NOT NULL AND s.parent_span_id <> s.span_id AS has_parent,
               z.svc_no, z.zone_no, {_IDENT_SQL} AS ident, {TOOL_SQL} AS is_tool,
               s.kind IN ('SERVER', 'CONSUMER') AS is_server
        FROM span_store s JOIN _trust_tr t ON t.trace_id = s.trace_id
        JOIN _trust_res z ON z.resource_id = s.resource_id
        ORDER BY t.trace_no, s.start_ns, k
        """
    ).fetchnumpy()
    srow = np.asarray(a["srow"], dtype=np.int64)
    n = len(srow)
    parent = _parents(np.asarray(a["k"]), np.asarray(a["pk"]), np.asarray(a["has_parent"], dtype=bool))
    if parent is None:
        parent = _exact_parents(con, srow)
    has_parent = parent >= 0
    sp = np.where(has_parent, parent, 0)
    svc, zone = np.asarray(a["svc_no"], dtype=np.int64), np.asarray(a["zone_no"], dtype=np.int64)
    trace_no = np.asarray(a["trace_no"], dtype=np.int64)
    ident = np.asarray(a["ident"], dtype=bool)
    same_service = has_parent & (svc[sp] == svc)
    pos = tree_positions(parent, trace_no, ident, np.asarray(a["is_tool"], dtype=bool), same_service)
    ident_down = _ident_down(trace_no, svc, ident, pos.enter, pos.exit)
    remote = has_parent & (np.asarray(a["is_server"], dtype=bool) | ~same_service)
    remote_kid = np.zeros(n, dtype=bool)
    remote_kid[parent[remote]] = True
    table = pa.table({
        "srow": srow,
        "trace_no": trace_no,
        "psrow": np.where(has_parent, srow[sp], -1),
        "enter": pos.enter,
        "exit": pos.exit,
        "ident_up": pos.ident_up,
        "tool_anc": np.where(pos.tool_ancestor >= 0, srow[np.maximum(pos.tool_ancestor, 0)], -1),
        "cross": has_parent & (zone[sp] != zone),
        "remote_kid": remote_kid,
        "ident_down": ident_down,
    })
    identified = np.zeros(int(trace_no.max()) + 1 if n else 0, dtype=bool)
    identified[trace_no[ident]] = True
    anon = pa.table({"trace_no": np.flatnonzero(~identified).astype(np.int64)})
    for name, data in (("_trust_pos", table), ("_trust_anon", anon)):
        con.register("_trust_in", data)
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM _trust_in")
        finally:
            con.unregister("_trust_in")


def _build_candidates(con: duckdb.DuckDBPyConnection) -> None:
    """``_trust_cand``: client calls whose peer has no spans of its own."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _trust_cand AS
        SELECT p.srow, {_host('s')} AS host, s.provider, z.zone AS from_zone
        FROM span_store s JOIN _trust_pos p ON p.srow = s.rowid
        JOIN _trust_res z ON z.resource_id = s.resource_id
        WHERE {_CANDIDATE_SQL} AND NOT p.remote_kid
        """
    )


def _build_crossings(con: duckdb.DuckDBPyConnection) -> None:
    """``trust_crossing_store``: crossings, with the ``span_store`` rows they hang on
    (``anchor_srow``: the caller side, or the root for an entry; ``to_srow``: the callee span)."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _trust_peer_edge AS
        WITH c AS (
            SELECT c.srow, c.from_zone, coalesce(p.zone, c.from_zone) AS to_zone, p.kind AS to_kind,
                   p.level AS to_level
            FROM _trust_cand c
            JOIN _trust_peer p ON p.host IS NOT DISTINCT FROM c.host AND p.provider IS NOT DISTINCT FROM c.provider
            WHERE p.rule IS NOT NULL
        ), cz AS (SELECT * FROM c WHERE to_zone <> from_zone),
        -- a call whose child is itself a call to the same zone is represented by the child
        covered AS (
            SELECT DISTINCT k.psrow AS srow, c2.to_zone FROM cz c2 JOIN _trust_pos k ON k.srow = c2.srow
        )
        SELECT cz.* FROM cz ANTI JOIN covered USING (srow, to_zone)
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _trust_proto AS
        SELECT s.rowid AS srow, {_PROTOCOL_JSON} AS protocol
        FROM span_store s WHERE s.role IN ('rpc', 'messaging')
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TABLE trust_crossing_store AS
        WITH edges AS (
            SELECT 'call' AS crossing, psrow AS from_srow, srow AS to_srow,
                   NULL AS to_zone, NULL AS to_kind, NULL AS to_level
            FROM _trust_pos WHERE "cross"
            UNION ALL
            SELECT 'peer', srow, NULL::BIGINT, to_zone, to_kind, to_level FROM _trust_peer_edge
            UNION ALL
            SELECT 'entry', NULL::BIGINT, s.rowid, NULL, NULL, NULL FROM span_store s
            WHERE s.parent_span_id IS NULL
              AND (s.kind = 'SERVER' OR ({_IDENT_SQL} AND s.kind NOT IN ('CONSUMER', 'CLIENT', 'PRODUCER')))
        ), ends AS (
            SELECT from_srow AS srow FROM edges WHERE from_srow IS NOT NULL
            UNION SELECT to_srow FROM edges WHERE to_srow IS NOT NULL
        ), sp AS (
            SELECT s.rowid AS srow, s.trace_id, s.span_id, s.name, s.peer, s.url_scheme, s.role, s.db_system,
                   s.status_code, s.resource_id, {_IDENT_SQL} AS ident
            FROM span_store s SEMI JOIN ends e ON e.srow = s.rowid
        )
        SELECT coalesce(f.trace_id, t.trace_id) AS trace_id, ed.crossing,
               f.span_id AS parent_span_id, t.span_id AS child_span_id,
               coalesce(fz.zone, 'user') AS from_zone, coalesce(fz.zone_kind, 'user') AS from_kind,
               coalesce(fz.trust_level, ul.level) AS from_level,
               coalesce(tz.zone, ed.to_zone) AS to_zone, coalesce(tz.zone_kind, ed.to_kind) AS to_kind,
               coalesce(tz.trust_level, ed.to_level) AS to_level,
               CASE WHEN ed.crossing = 'entry' THEN {_host('t')} ELSE {_host('f')} END AS peer,
               coalesce(fpr.protocol, {_protocol('f')}, tpr.protocol, {_protocol('t')}, 'unknown') AS protocol,
               CASE WHEN ed.crossing = 'peer' THEN f.name ELSE t.name END AS operation,
               CASE WHEN ed.crossing = 'entry' THEN t.url_scheme ELSE coalesce(f.url_scheme, t.url_scheme) END
                   AS scheme,
               CASE WHEN ed.crossing = 'entry' THEN t.ident ELSE fp.ident_up END AS identity_from,
               CASE WHEN ed.crossing = 'peer' THEN f.ident ELSE tp.ident_down END AS identity_to,
               coalesce(f.status_code = 'ERROR', false) OR coalesce(t.status_code = 'ERROR', false) AS error,
               coalesce(ed.from_srow, ed.to_srow) AS anchor_srow, ed.to_srow
        FROM edges ed
        LEFT JOIN sp f ON f.srow = ed.from_srow
        LEFT JOIN sp t ON t.srow = ed.to_srow
        LEFT JOIN _trust_res fz ON fz.resource_id = f.resource_id
        LEFT JOIN _trust_res tz ON tz.resource_id = t.resource_id
        LEFT JOIN _trust_pos fp ON fp.srow = ed.from_srow
        LEFT JOIN _trust_pos tp ON tp.srow = ed.to_srow
        LEFT JOIN _trust_proto fpr ON fpr.srow = ed.from_srow
        LEFT JOIN _trust_proto tpr ON tpr.srow = ed.to_srow
        CROSS JOIN (SELECT coalesce((SELECT level FROM _trust_zonecfg WHERE zone = 'user'),
                                    (SELECT level FROM _trust_levels WHERE kind = 'user')) AS level) ul
        """
    )


_TEMP_TABLES = ("_trust_tr", "_trust_pos", "_trust_anon", "_trust_cand", "_trust_peer", "_trust_peer_edge",
                "_trust_proto", "_trust_res", "_trust_pat", "_trust_zonecfg", "_trust_levels")


def derive(con: duckdb.DuckDBPyConnection, config: Any) -> None:
    """Recompute the trust tables and findings for the whole store."""
    cfg = load_trust_config(config)
    write_config_tables(con, cfg)
    build_zones(con)
    _build_positions(con)
    _build_candidates(con)
    resolve_peers(con)
    _build_crossings(con)
    con.execute(_VIEWS)
    insert_findings(con)
    for table in _TEMP_TABLES:
        con.execute(f"DROP TABLE IF EXISTS {table}")


ANALYZER = Analyzer(
    name="trust",
    summary="Trust zones, boundary crossings, and risky paths (unguarded or denied tools, egress, "
    "prompt-injection exposure, anonymous privileged actions, plaintext hops).",
    derive=derive,
)
