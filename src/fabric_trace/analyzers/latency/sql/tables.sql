-- Derived tables of the latency analyzer (docs/schema.md, docs/critical-path.md).
-- One row per trace / span / critical-path segment / repair; every row carries its trace_id,
-- so a partition of whole traces is replaced by deleting and inserting its trace ids.

CREATE TABLE IF NOT EXISTS latency_spans (
    trace_id VARCHAR, span_id VARCHAR, root_span_id VARCHAR, depth BIGINT, child_count BIGINT,
    start_ns BIGINT, end_ns BIGINT, self_ns BIGINT, on_critical_path_ns BIGINT, shift_ns BIGINT,
    service_name VARCHAR, name VARCHAR, role VARCHAR, model VARCHAR
);

CREATE TABLE IF NOT EXISTS latency_segments (
    trace_id VARCHAR, root_span_id VARCHAR, span_id VARCHAR, start_ns BIGINT, end_ns BIGINT,
    service_name VARCHAR, name VARCHAR, role VARCHAR, model VARCHAR
);

CREATE TABLE IF NOT EXISTS latency_repairs (
    trace_id VARCHAR, kind VARCHAR, span_id VARCHAR, parent_span_id VARCHAR, offset_ns BIGINT,
    service VARCHAR, parent_service VARCHAR, count BIGINT
);

-- Trace facts materialised once (root span, workflow, services), so reports and the
-- `traces` view never join back to the span store.
CREATE TABLE IF NOT EXISTS latency_traces (
    trace_id VARCHAR, workflow VARCHAR, root_span_id VARCHAR, root_name VARCHAR, root_service VARCHAR,
    start_ns BIGINT, end_ns BIGINT, duration_ns BIGINT, root_duration_ns BIGINT,
    span_count BIGINT, error_count BIGINT, has_error BOOLEAN, services VARCHAR[], incomplete BOOLEAN,
    repaired BOOLEAN, repair_count BIGINT, root_count BIGINT, session_id VARCHAR
);
