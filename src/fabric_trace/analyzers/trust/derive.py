"""The trust analyzer: zones, boundary crossings and risky execution paths.

``derive`` runs per partition of whole traces (a kernel: no store) and returns
(docs/trust.md):

* (store-wide, :data:`fabric_trace.analyzers.trust.ZONES`) ``trust_zone_store`` (view ``trust_spans`` joins it to every span):
  the zone of each resource;
* ``trust_crossing_store`` (view ``trust_crossings``): every call edge whose two ends are in
  different zones, every call to an uninstrumented peer in another zone, every end-user entry;
* rows of ``finding_store`` with ``analyzer = 'trust'`` (:mod:`.trust_rules`).

Everything is set-based. One sorted scan of ``span_store`` feeds numpy, which
links parents with the graph's span-tree index (:func:`fabric_trace.graph.tree.parent_rows`)
and computes tree positions and the parent-side facts of every span at once (:mod:`.tree`). The result, ``_trust_pos``,
is an Arrow table in ``span_store`` scan order, so later statements read it
with ``POSITIONAL JOIN`` (no hash join against the span table); the "latest X
before this span" questions are ASOF joins (:mod:`.trust_rules`).
"""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from fabric_trace.analyzers.contract import Derived, Partition, sql_kernel
from fabric_trace.analyzers.trust.findings import TOOL_SQL, insert_findings
from fabric_trace.analyzers.trust.tree import tree_positions
from fabric_trace.analyzers.trust.config import build_zones, load_trust_config, resolve_peers, write_config_tables
from fabric_trace.errors import DatabaseError
from fabric_trace.graph.tree import parent_rows

#: Client calls that may reach an uninstrumented peer.
CANDIDATE_SQL = (
    "((s.kind IN ('CLIENT', 'PRODUCER') AND (s.peer IS NOT NULL OR s.provider IS NOT NULL)) "
    "OR (s.role IN ('llm', 'embedding', 'rerank') AND s.provider IS NOT NULL))"
)
IDENT_SQL = "(s.user_id IS NOT NULL OR s.session_id IS NOT NULL)"
HOST_SQL = "nullif(trim(lower(s.peer), '[]'), '')"
#: The protocol of span ``s``, from its normalized columns (no JSON parsing).
PROTOCOL_SQL = (
    "CASE WHEN s.db_system IS NOT NULL THEN s.db_system "
    "WHEN s.role IN ('rpc', 'messaging') THEN s.role "
    "WHEN s.role = 'http' OR s.url_scheme IN ('http', 'https') THEN 'http' "
    "WHEN s.role IN ('llm', 'embedding', 'rerank') THEN 'genai' "
    "WHEN s.kind IN ('PRODUCER', 'CONSUMER') THEN 'messaging' END"
)
#: A root span through which an end user enters.
ENTRY_SQL = (
    "(s.parent_span_id IS NULL AND (s.kind = 'SERVER' "
    f"OR ({IDENT_SQL} AND s.kind NOT IN ('CONSUMER', 'CLIENT', 'PRODUCER'))))"
)


def _ident_down(trace_no: np.ndarray, svc: np.ndarray, ident: np.ndarray, enter: np.ndarray,
                exit_: np.ndarray) -> np.ndarray:
    """Whether each span or a span of the same service inside its subtree carries identity."""
    rows = np.flatnonzero(ident)
    if len(rows) == 0:
        return np.zeros(len(trace_no), dtype=bool)
    span = np.int64(2 * len(trace_no) + 1)  # tour positions are < 2n
    group = trace_no * (int(svc.max()) + 1) + svc
    keys = np.sort(group[rows] * span + enter[rows])
    query = group * span + enter
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    hit = keys[pos]
    # past the last key, ``pos`` is clamped to a smaller key: not a hit
    return (hit >= query) & (hit // span == group) & (hit % span <= exit_)


def _scan_positions(con: duckdb.DuckDBPyConnection, srow: np.ndarray) -> np.ndarray:
    """Position of each ``srow`` in the ``span_store`` scan order (the order POSITIONAL JOIN uses)."""
    scan = np.asarray(con.execute("SELECT rowid FROM span_store").fetchnumpy()["rowid"], dtype=np.int64)
    if np.array_equal(scan, np.arange(len(scan), dtype=np.int64)):
        return srow
    order = np.argsort(scan)
    return order[np.searchsorted(scan[order], srow)]


def _build_positions(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Tree positions and flags of every span, in ``span_store`` scan order.

    Also creates ``_trust_tr`` (trace numbers) and ``_trust_anon`` (traces without identity).
    """
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _trust_tr AS
        SELECT trace_id, (row_number() OVER (ORDER BY trace_id) - 1)::BIGINT AS trace_no
        FROM (SELECT DISTINCT trace_id FROM span_store)
        """
    )
    a = con.sql(
        f"""
        SELECT s.rowid AS srow, t.trace_no, s.trace_id, s.span_id,
               CASE WHEN s.parent_span_id <> s.span_id THEN s.parent_span_id END AS parent_span_id,
               s.start_ns, z.svc_no, z.zone_no, {IDENT_SQL} AS ident, {TOOL_SQL} AS is_tool,
               s.kind IN ('SERVER', 'CONSUMER') AS is_server, {ENTRY_SQL} AS entry
        FROM span_store s JOIN _trust_tr t ON t.trace_id = s.trace_id
        JOIN _trust_res z ON z.resource_id = s.resource_id
        ORDER BY t.trace_no, s.start_ns, s.end_ns, hash(s.trace_id, s.span_id)
        """
    ).to_arrow_table()
    col = {name: np.asarray(a.column(name).to_numpy(zero_copy_only=False))
           for name in a.column_names if name not in ("trace_id", "span_id", "parent_span_id")}
    srow = col["srow"].astype(np.int64)
    n = len(srow)
    # the graph's span-tree index (a self-parent is a root here, as the graph's repair makes it)
    by_id, parent, _ = parent_rows(a.column("trace_id"), a.column("span_id"), a.column("parent_span_id"))
    id_rank = np.empty(n, dtype=np.int64)
    id_rank[by_id] = np.arange(n, dtype=np.int64)
    has_parent = parent >= 0
    sp = np.where(has_parent, parent, 0)
    svc, zone = col["svc_no"].astype(np.int64), col["zone_no"].astype(np.int64)
    trace_no = col["trace_no"].astype(np.int64)
    ident = col["ident"].astype(bool)
    same_service = has_parent & (svc[sp] == svc)
    pos = tree_positions(parent, trace_no, ident, col["is_tool"].astype(bool), same_service,
                         col["start_ns"].astype(np.int64), id_rank)
    ident_down = _ident_down(trace_no, svc, ident, pos.enter, pos.exit)
    remote = has_parent & (col["is_server"].astype(bool) | ~same_service)
    remote_kid = np.zeros(n, dtype=bool)
    remote_kid[parent[remote]] = True
    cross = has_parent & (zone[sp] != zone)
    cross_parent = np.zeros(n, dtype=bool)
    cross_parent[parent[cross]] = True
    scan = _scan_positions(con, srow)  # sorted row -> scan position
    order = np.empty(n, dtype=np.int64)
    order[scan] = np.arange(n, dtype=np.int64)  # scan position -> sorted row
    columns = {
        "srow": srow,
        "trace_no": trace_no,
        "ppos": np.where(has_parent, scan[sp], -1),
        "enter": pos.enter,
        "exit": pos.exit,
        "ident_up": pos.ident_up,
        "ident_down": ident_down,
        "tool_anc": np.where(pos.tool_ancestor >= 0, scan[np.maximum(pos.tool_ancestor, 0)], -1),
        "cross": cross,
        "cross_parent": cross_parent,
        "remote_kid": remote_kid,
        "entry": col["entry"].astype(bool),
    }
    table = {name: values[order] for name, values in columns.items()}
    table["peer_edge"] = np.zeros(n, dtype=bool)  # set once the peers are resolved
    table["pos"] = np.arange(n, dtype=np.int64)
    identified = np.zeros(int(trace_no.max()) + 1 if n else 0, dtype=bool)
    identified[trace_no[ident]] = True
    con.register("_trust_in", pa.table({"trace_no": np.flatnonzero(~identified).astype(np.int64)}))
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _trust_anon AS SELECT * FROM _trust_in")
    finally:
        con.unregister("_trust_in")
    return pa.table(table)


def _check_alignment(con: duckdb.DuckDBPyConnection) -> None:
    bad = con.execute("SELECT count(*) FROM span_store s POSITIONAL JOIN _trust_pos p "
                      "WHERE s.rowid IS DISTINCT FROM p.srow").fetchone()[0]
    if bad:  # pragma: no cover - DuckDB preserves insertion order in scans
        raise DatabaseError("trust analysis: span_store scan order changed during the analysis")


def _build_candidates(con: duckdb.DuckDBPyConnection) -> None:
    """``_trust_cand``: client calls whose peer has no spans of its own."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _trust_cand AS
        SELECT p.pos, p.ppos, {HOST_SQL} AS host, s.provider, s.resource_id
        FROM span_store s POSITIONAL JOIN _trust_pos p
        WHERE {CANDIDATE_SQL} AND NOT p.remote_kid
        """
    )


def _build_crossings(con: duckdb.DuckDBPyConnection, positions: pa.Table) -> pa.Table:
    """``trust_crossing_store``: the crossings, plus internal columns the rules use
    (``trace_no``; ``anchor_pos``: the caller side, or the root of an entry; ``to_pos``: the callee).

    Marks the peer calls in ``positions`` (column ``peer_edge``) and returns the new table,
    registered again as ``_trust_pos``.
    """
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _trust_peer_edge AS
        WITH c AS (
            SELECT c.pos, c.ppos, z.zone AS from_zone, coalesce(p.zone, z.zone) AS to_zone,
                   p.kind AS to_kind, p.level AS to_level
            FROM _trust_cand c JOIN _trust_res z ON z.resource_id = c.resource_id
            JOIN _trust_peer p ON p.host IS NOT DISTINCT FROM c.host AND p.provider IS NOT DISTINCT FROM c.provider
            WHERE p.rule IS NOT NULL
        ), cz AS (SELECT * FROM c WHERE to_zone <> from_zone),
        -- a call whose child is itself a call to the same zone is represented by the child
        covered AS (SELECT DISTINCT ppos AS pos, to_zone FROM cz)
        SELECT cz.* FROM cz ANTI JOIN covered USING (pos, to_zone)
        """
    )
    edges = con.execute("SELECT pos FROM _trust_peer_edge").fetchnumpy()["pos"]
    mask = np.zeros(positions.num_rows, dtype=bool)
    mask[np.asarray(edges, dtype=np.int64)] = True
    con.unregister("_trust_pos")
    positions = positions.set_column(positions.schema.get_field_index("peer_edge"), "peer_edge", pa.array(mask))
    con.register("_trust_pos", positions)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _trust_xs AS
        SELECT s.trace_id, s.span_id, s.parent_span_id, s.name, s.url_scheme, s.status_code = 'ERROR' AS error,
               s.resource_id, {HOST_SQL} AS host, {IDENT_SQL} AS ident, {PROTOCOL_SQL} AS protocol,
               s.kind IN ('CLIENT', 'PRODUCER') AS is_client, p.trace_no, p.pos, p.ppos, p."cross", p.peer_edge, p.entry, p.ident_up, p.ident_down
        FROM span_store s POSITIONAL JOIN _trust_pos p
        WHERE p."cross" OR p.cross_parent OR p.peer_edge OR p.entry
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TABLE trust_crossing_store AS
        WITH ul AS (
            SELECT coalesce((SELECT level FROM _trust_zonecfg WHERE zone = 'user'),
                            (SELECT level FROM _trust_levels WHERE kind = 'user')) AS level
        )
        SELECT c.trace_id, 'call' AS crossing, c.parent_span_id, c.span_id AS child_span_id,
               fz.zone AS from_zone, fz.zone_kind AS from_kind, fz.trust_level AS from_level,
               tz.zone AS to_zone, tz.zone_kind AS to_kind, tz.trust_level AS to_level,
               -- the caller's view of the call when it is a client span, else the callee's
               CASE WHEN f.is_client THEN coalesce(f.host, c.host) ELSE coalesce(c.host, f.host) END AS peer,
               CASE WHEN f.is_client THEN coalesce(f.protocol, c.protocol, 'unknown')
                    ELSE coalesce(c.protocol, f.protocol, 'unknown') END AS protocol,
               c.name AS operation,
               CASE WHEN f.is_client THEN coalesce(f.url_scheme, c.url_scheme)
                    ELSE coalesce(c.url_scheme, f.url_scheme) END AS scheme,
               f.ident_up AS identity_from,
               c.ident_down AS identity_to, f.error OR c.error AS error,
               c.trace_no, c.ppos AS anchor_pos, c.pos AS to_pos
        FROM (SELECT * FROM _trust_xs WHERE "cross") c
        JOIN _trust_xs f ON f.pos = c.ppos
        JOIN _trust_res fz ON fz.resource_id = f.resource_id
        JOIN _trust_res tz ON tz.resource_id = c.resource_id
        UNION ALL
        SELECT c.trace_id, 'peer', c.span_id, NULL, e.from_zone, fz.zone_kind, fz.trust_level,
               e.to_zone, e.to_kind, e.to_level, c.host, coalesce(c.protocol, 'unknown'), c.name, c.url_scheme,
               c.ident_up, c.ident, c.error, c.trace_no, c.pos, NULL
        FROM _trust_xs c JOIN _trust_peer_edge e ON e.pos = c.pos
        JOIN _trust_res fz ON fz.resource_id = c.resource_id
        WHERE c.peer_edge
        UNION ALL
        SELECT c.trace_id, 'entry', NULL, c.span_id, 'user', 'user', ul.level,
               tz.zone, tz.zone_kind, tz.trust_level, c.host, coalesce(c.protocol, 'unknown'), c.name,
               c.url_scheme, c.ident, c.ident_down, c.error, c.trace_no, c.pos, c.pos
        FROM _trust_xs c JOIN _trust_res tz ON tz.resource_id = c.resource_id CROSS JOIN ul
        WHERE c.entry
        """
    )
    return positions


_TEMP_TABLES = ("_trust_tr", "_trust_anon", "_trust_cand", "_trust_peer", "_trust_peer_edge", "_trust_xs",
                "_trust_res", "_trust_pat", "_trust_zonecfg", "_trust_levels")


def derive(part: Partition, config: Any) -> Derived:
    """The crossings and trust findings of one partition of whole traces (a kernel: no store).

    Reads the store-wide ``trust_zone_store`` (every resource's zone: a peer named after a
    service anywhere in the store resolves to that service's zone)."""
    from fabric_trace.analyzers.trust import ANALYZER

    return sql_kernel(ANALYZER, part, config, derive_sql)


def derive_sql(con: duckdb.DuckDBPyConnection, config: Any) -> None:
    """Fill ``trust_crossing_store`` and the trust findings from the tables on ``con``."""
    cfg = load_trust_config(config)
    write_config_tables(con, cfg)
    build_zones(con)
    positions = _build_positions(con)
    con.register("_trust_pos", positions)
    try:
        _check_alignment(con)
        _build_candidates(con)
        resolve_peers(con)
        positions = _build_crossings(con, positions)
        insert_findings(con)
    finally:
        con.unregister("_trust_pos")
        for table in _TEMP_TABLES:
            con.execute(f"DROP TABLE IF EXISTS {table}")

