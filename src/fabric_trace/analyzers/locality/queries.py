"""The set-based SQL of the locality analyzer: candidates, serving sides, backing fetches, accesses.

Each builder returns one statement; :func:`fabric_trace.analyzers.locality.derive`
runs them in order. Spans are keyed by ``i`` = ``span_store.rowid`` (stable
inside the refresh transaction), so the later steps join on one integer.
The rules are documented in docs/locality.md.
"""

from __future__ import annotations

from fabric_trace.analyzers.locality import config as R
from fabric_trace.analyzers.locality.config import LocalityConfig, sql_list, sql_str

#: Roles of a sibling that can be the backing fetch of a cache miss (besides any CLIENT span).
FETCH_ROLES = ("llm", "embedding", "retrieval", "vector_store", "memory", "database", "http", "rpc", "tool")

#: The session of a trace: the one session id its spans carry (none if they carry several).
TSESS_SQL = """
CREATE OR REPLACE TEMP TABLE _loc_tsess AS
SELECT trace_id, min(session_id) AS session_id FROM span_store
WHERE session_id IS NOT NULL GROUP BY trace_id HAVING count(DISTINCT session_id) = 1
"""


def _x(paths: list[str]) -> str:
    """The one JSON extraction of a candidate span (DuckDB evaluates the repeated expression once)."""
    return "json_extract_string(s.attributes, [" + ", ".join(sql_str(p) for p in paths) + "])"


def raw_sql(cfg: LocalityConfig) -> str:
    """The spans that may be state accesses or cache writes (never the serving side), with the
    attributes the rules read, in one flat scan of ``span_store`` (a SELECT, inlined by
    :func:`candidates_sql`)."""
    paths, idx = R.extract_paths(cfg)
    x = _x(paths)
    roles = ("cache", "llm") + cfg.access_roles
    role_or = " OR ".join(f"s.role = {sql_str(r)}" for r in roles)
    cache_or = " OR ".join(f"s.db_system = {sql_str(c)}" for c in cfg.cache_systems) or "FALSE"
    is_cache = f"coalesce({cache_or}, false)"
    return f"""
    SELECT s.rowid AS i, s.trace_id, s.span_id, s.parent_span_id, s.name, s.start_ns, s.end_ns,
           s.status_code, s.service_name, s.resource_id, s.region, s.zone, s.host, s.role,
           s.peer, s.db_system, s.model, s.provider, s.input_tokens, s.cached_input_tokens, s.session_id,
           {is_cache} AS is_cache_db,
           {R.first_of(x, idx, cfg.hit_attributes)} AS hit_raw,
           CASE WHEN {is_cache} THEN {R.cache_op_sql(x, 's.name')} END AS op,
           CASE WHEN {is_cache} OR s.role = 'cache' THEN {R.cache_key_sql(x)}
                WHEN s.role = 'retrieval' THEN {R.retrieval_key_sql(x)}
                WHEN (s.role = 'database' OR s.role = 'memory') AND s.db_system IS NOT NULL
                     THEN {R.database_key_sql(x)}
           END AS key,
           CASE WHEN s.role = 'llm' THEN md5({R.first_of(x, idx, cfg.prompt_fingerprint_attributes)}) END
               AS fingerprint,
           CASE WHEN s.role = 'retrieval' THEN {x}[{idx["gen_ai.data_source.id"]}] END AS data_source
    FROM span_store s
    WHERE s.kind <> 'SERVER' AND s.kind <> 'CONSUMER' AND ({role_or} OR {cache_or} OR {_has_hit_key(cfg)})
    """


def _has_hit_key(cfg: LocalityConfig) -> str:
    """A cheap superset test for "the span may carry a hit attribute" (spans of other roles)."""
    keys = cfg.hit_attributes
    if not keys:
        return "FALSE"
    if all("cache" in k for k in keys):
        return "contains(CAST(s.attributes AS VARCHAR), 'cache')"
    return "(" + " OR ".join(f"contains(CAST(s.attributes AS VARCHAR), {sql_str(chr(34) + k + chr(34))})"
                             for k in keys) + ")"


def candidates_sql(cfg: LocalityConfig) -> str:
    """``_loc_cand``: every state access that is not a cross-service call, plus cache writes.

    A cache read whose next event on the same key by the same parent is a
    write of the key was refilled (cache-aside): with no hit attribute it is
    inferred to be a miss.
    """
    reads, writes = sql_list(R.CACHE_READ_OPS), sql_list(R.CACHE_WRITE_OPS)
    infer = "true" if cfg.infer_cache_outcome else "false"
    return f"""
    CREATE OR REPLACE TEMP TABLE _loc_cand AS
    WITH t AS (
        SELECT i, trace_id, span_id, parent_span_id, start_ns, end_ns, status_code, service_name, resource_id,
               region, zone, host, peer, input_tokens, cached_input_tokens, session_id, key, fingerprint,
               is_cache_db AND op IN {reads} AS cache_read,
               is_cache_db AND op IN {writes} AS cache_write,
               CASE WHEN hit_raw IS NOT NULL THEN 'cache'
                    WHEN is_cache_db THEN CASE WHEN op IN {reads} THEN 'cache' END
                    WHEN role = 'llm' THEN 'prefix_cache'
                    WHEN role = 'cache' THEN 'cache'
                    WHEN role IN {sql_list(cfg.access_roles)} THEN role
               END AS access_type,
               CASE WHEN role = 'llm' AND hit_raw IS NULL
                        THEN concat_ws(' ', coalesce(provider, '?'), coalesce(model, '?'))
                    WHEN role = 'retrieval' AND data_source IS NOT NULL THEN 'retrieval ' || data_source
                    WHEN nullif(concat_ws(' ', db_system, peer), '') IS NOT NULL THEN concat_ws(' ', db_system, peer)
                    ELSE name || ' @ ' || service_name END AS store,
               {R.outcome_value_sql('hit_raw')} AS attr
        FROM ({raw_sql(cfg)})
    ), ev AS (
        SELECT i, cache_write, end_ns,
               lead(cache_write) OVER w AS next_is_write, lead(start_ns) OVER w AS next_start
        FROM t
        WHERE key IS NOT NULL AND (cache_write OR access_type = 'cache')
        WINDOW w AS (PARTITION BY trace_id, parent_span_id, store, key ORDER BY start_ns, span_id)
    ), refill AS (
        SELECT i, next_start AS refill_start FROM ev
        WHERE NOT cache_write AND next_is_write AND next_start >= end_ns
    )
    SELECT t.i, t.trace_id, t.span_id, t.parent_span_id, t.start_ns, t.end_ns, t.status_code, t.service_name,
           t.resource_id, t.region, t.zone, t.host, t.peer, t.input_tokens, t.cached_input_tokens, t.session_id,
           t.key, t.fingerprint, t.cache_write, t.access_type, t.store, r.refill_start,
           CASE WHEN attr IS NOT NULL THEN attr
                WHEN access_type = 'prefix_cache' THEN
                    CASE WHEN cached_input_tokens IS NULL THEN 'not_reported'
                         WHEN cached_input_tokens > 0 THEN 'hit' ELSE 'miss' END
                WHEN access_type = 'cache' AND cache_read AND {infer} THEN
                    CASE WHEN r.refill_start IS NOT NULL THEN 'miss' ELSE 'hit' END
                ELSE 'not_reported' END AS outcome,
           CASE WHEN attr IS NOT NULL THEN 'attribute'
                WHEN access_type = 'prefix_cache' AND cached_input_tokens IS NOT NULL THEN 'tokens'
                WHEN access_type = 'cache' AND cache_read AND {infer} THEN 'inferred'
                ELSE 'none' END AS outcome_source
    FROM t LEFT JOIN refill r USING (i)
    WHERE t.access_type IS NOT NULL OR t.cache_write
    """


#: ``_loc_srv``: a CLIENT span's first SERVER child in another resource, the serving side of the call
#: (children found through ``_loc_idx.p``, the parent row in the repaired tree).
SERVERS_SQL = """
CREATE OR REPLACE TEMP TABLE _loc_srv AS
WITH s AS (
    SELECT x.p AS i, s.resource_id, s.service_name, s.region, s.zone, s.host, s.start_ns
    FROM span_store s JOIN _loc_idx x ON x.i = s.rowid
    WHERE s.kind = 'SERVER' AND x.p >= 0
)
SELECT s.i, arg_min({'service': s.service_name, 'region': s.region, 'zone': s.zone, 'host': s.host,
                     'resource_id': s.resource_id}, s.start_ns) AS sv
FROM s JOIN span_store c ON c.rowid = s.i
WHERE c.kind = 'CLIENT' AND s.resource_id <> c.resource_id
GROUP BY s.i
"""

#: ``_loc_writes``: cache writes (SET, DEL...), which refill or invalidate keys.
WRITES_SQL = """
CREATE OR REPLACE TEMP TABLE _loc_writes AS
SELECT c.trace_id, coalesce(c.session_id, ts.session_id) AS session_id, c.span_id, c.parent_span_id,
       c.store, c.key, c.start_ns
FROM _loc_cand c LEFT JOIN _loc_tsess ts USING (trace_id)
WHERE c.cache_write AND c.key IS NOT NULL
"""

#: ``_loc_backing``: the siblings that a cache miss caused: up to and including the refill write,
#: or, without a refill, the next sibling if it is a fetch.
BACKING_SQL = f"""
CREATE OR REPLACE TEMP TABLE _loc_backing AS
WITH m AS (
    SELECT i, trace_id, parent_span_id, end_ns, refill_start FROM _loc_cand
    WHERE access_type = 'cache' AND outcome = 'miss' AND parent_span_id IS NOT NULL
), sib AS (
    SELECT m.i AS access_i, s.rowid AS i, s.span_id, s.start_ns, s.end_ns, m.refill_start,
           row_number() OVER (PARTITION BY m.i ORDER BY s.start_ns, s.span_id) AS k,
           s.role IN {sql_list(FETCH_ROLES)} OR s.kind = 'CLIENT' AS is_fetch
    FROM m JOIN span_store s ON s.trace_id = m.trace_id AND s.parent_span_id = m.parent_span_id
    WHERE s.rowid <> m.i AND s.start_ns >= m.end_ns AND (m.refill_start IS NULL OR s.start_ns <= m.refill_start)
)
SELECT access_i AS i, list(span_id ORDER BY start_ns, span_id) AS backing_span_ids,
       list(i ORDER BY start_ns, span_id) AS backing_i,
       sum(greatest(end_ns - start_ns, 0))::BIGINT AS backing_ns
FROM sib
WHERE refill_start IS NOT NULL OR (k = 1 AND is_fetch)
GROUP BY access_i
"""


def _label(region: str, zone: str, cluster: str, host: str) -> str:
    """Display label of a location: ``region/zone``, else the cluster or host where that is all there is."""
    return (f"CASE WHEN {region} IS NOT NULL OR {zone} IS NOT NULL "
            f"THEN concat_ws('/', {region}, {zone}) "
            f"WHEN {cluster} IS NOT NULL THEN 'cluster ' || {cluster} "
            f"WHEN {host} IS NOT NULL THEN 'host ' || {host} END")


#: local / cross_zone / cross_region / unknown (docs/locality.md, "Locality").
REMOTE_SQL = """CASE
    WHEN server_host IS NOT NULL AND host IS NOT NULL AND server_host = host THEN 'local'
    WHEN region IS NOT NULL AND server_region IS NOT NULL AND region <> server_region THEN 'cross_region'
    WHEN zone IS NOT NULL AND server_zone IS NOT NULL AND zone <> server_zone THEN 'cross_zone'
    WHEN zone IS NOT NULL AND server_zone IS NOT NULL THEN 'local'
    ELSE 'unknown' END"""


def accesses_sql(cfg: LocalityConfig) -> str:
    """``locality_access_store``: candidates plus cross-service calls, located, with their
    backing fetch (``_loc_backing``) and critical-path time (``_loc_crit``)."""
    service_calls = "TRUE" if cfg.service_calls else "FALSE"
    return f"""
    CREATE OR REPLACE TABLE locality_access_store AS
    WITH allacc AS (
        SELECT i, trace_id, span_id, start_ns, end_ns, service_name, resource_id,
               region, zone, host, peer, session_id, access_type, store, key, outcome, outcome_source
        FROM _loc_cand WHERE access_type IS NOT NULL
        UNION ALL BY NAME
        SELECT c.rowid AS i, c.trace_id, c.span_id, c.start_ns, c.end_ns,
               c.service_name, c.resource_id, c.region, c.zone, c.host, c.peer, c.session_id,
               'service_call' AS access_type, v.sv.service AS store,
               'not_reported' AS outcome, 'none' AS outcome_source
        FROM _loc_srv v JOIN span_store c ON c.rowid = v.i
        WHERE {service_calls} AND v.i NOT IN (SELECT i FROM _loc_cand WHERE access_type IS NOT NULL)
    ), res AS (
        SELECT resource_id, json_extract_string(attributes, '$."k8s.cluster.name"') AS cluster FROM resources
    ), peermap AS (
        SELECT a.i, arg_min({{'region': p.region, 'zone': p.zone}}, p.pos) AS loc
        FROM allacc a JOIN _loc_peer p ON a.peer = p.pattern OR (p.is_glob AND a.peer GLOB p.pattern)
        WHERE a.peer IS NOT NULL
        GROUP BY a.i
    ), located AS (
        SELECT a.*, coalesce(a.session_id, ts.session_id) AS session,
               cr.cluster AS caller_cluster,
               v.sv.service AS server_svc,
               CASE WHEN v.sv IS NOT NULL THEN v.sv.region ELSE pm.loc.region END AS server_region,
               CASE WHEN v.sv IS NOT NULL THEN v.sv.zone ELSE pm.loc.zone END AS server_zone,
               v.sv.host AS server_host, sr.cluster AS server_cluster,
               b.backing_span_ids, b.backing_ns, cr2.critical_ns
        FROM allacc a
        LEFT JOIN _loc_srv v USING (i)
        LEFT JOIN peermap pm USING (i)
        LEFT JOIN _loc_tsess ts ON ts.trace_id = a.trace_id
        LEFT JOIN res cr ON cr.resource_id = a.resource_id
        LEFT JOIN res sr ON sr.resource_id = v.sv.resource_id
        LEFT JOIN _loc_backing b USING (i)
        LEFT JOIN _loc_crit cr2 USING (i)
    )
    SELECT trace_id, span_id, session AS session_id, store, access_type, outcome, outcome_source,
           service_name AS caller_service, region AS caller_region, zone AS caller_zone,
           {_label('region', 'zone', 'caller_cluster', 'host')} AS caller_location,
           coalesce(server_svc, peer) AS server_service, server_region, server_zone,
           {_label('server_region', 'server_zone', 'server_cluster', 'server_host')} AS server_location,
           {REMOTE_SQL} AS remote,
           start_ns, greatest(end_ns - start_ns, 0) AS duration_ns,
           (greatest(end_ns - start_ns, 0) + coalesce(backing_ns, 0))::BIGINT AS cost_ns,
           coalesce(critical_ns, 0)::BIGINT AS critical_ns, key, backing_span_ids, i
    FROM located
    """
