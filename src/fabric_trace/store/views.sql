-- User-facing views over the store (documented in docs/schema.md, pinned by tests).
-- Recreated on every open, so they always match this version of fabric.

CREATE OR REPLACE VIEW spans AS
SELECT
    s.trace_id, s.span_id, s.parent_span_id, s.name, s.kind,
    s.start_ns, s.end_ns, s.end_ns - s.start_ns AS duration_ns,
    s.status_code, s.status_message,
    s.service_name, s.service_namespace, s.region, s.zone, s.host,
    s.role, s.operation, s.model, s.provider,
    s.input_tokens, s.output_tokens, s.cached_input_tokens,
    s.peer, s.url_scheme, s.user_id, s.session_id,
    s.tool_name, s.tool_call_id, s.agent_name, s.workflow_name, s.db_system,
    s.role_source, s.role_evidence,
    s.attributes, r.attributes AS resource_attributes,
    sc.name AS scope_name, sc.version AS scope_version, sc.attributes AS scope_attributes,
    s.events, s.links, s.trace_state, s.flags,
    s.dropped_attributes_count, s.dropped_events_count, s.dropped_links_count,
    s.resource_id, s.scope_id, s.file_id
FROM span_store s
LEFT JOIN resources r USING (resource_id)
LEFT JOIN scopes sc USING (scope_id);

-- Spans with evidence for two roles: the role fabric gave and the strongest evidence for another.
CREATE OR REPLACE VIEW role_conflicts AS
SELECT
    s.trace_id, s.span_id, s.name, s.service_name,
    s.role, s.role_source, s.role_evidence,
    s.role_rival AS rival_role, s.role_rival_source AS rival_source, s.role_rival_evidence AS rival_evidence
FROM span_store s
WHERE s.role_rival IS NOT NULL;

CREATE OR REPLACE VIEW span_events AS
SELECT
    s.trace_id, s.span_id, e.event_index,
    CAST(json_extract(e.event, '$.time_ns') AS BIGINT) AS time_ns,
    json_extract_string(e.event, '$.name') AS name,
    json_extract(e.event, '$.attributes') AS attributes,
    CAST(json_extract(e.event, '$.dropped_attributes_count') AS BIGINT) AS dropped_attributes_count
FROM span_store s,
LATERAL (
    SELECT unnest(CAST(s.events AS JSON[])) AS event,
           generate_subscripts(CAST(s.events AS JSON[]), 1) - 1 AS event_index
) e;

CREATE OR REPLACE VIEW span_links AS
SELECT
    s.trace_id, s.span_id, l.link_index,
    json_extract_string(l.link, '$.trace_id') AS linked_trace_id,
    json_extract_string(l.link, '$.span_id') AS linked_span_id,
    json_extract_string(l.link, '$.trace_state') AS trace_state,
    CAST(json_extract(l.link, '$.flags') AS BIGINT) AS flags,
    json_extract(l.link, '$.attributes') AS attributes
FROM span_store s,
LATERAL (
    SELECT unnest(CAST(s.links AS JSON[])) AS link,
           generate_subscripts(CAST(s.links AS JSON[]), 1) - 1 AS link_index
) l;

CREATE OR REPLACE VIEW manifest AS SELECT * FROM files;
