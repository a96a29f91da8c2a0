-- Derived tables of the locality analyzer (docs/locality.md, docs/schema.md).

-- One row per state access (view locality_accesses).
CREATE TABLE IF NOT EXISTS locality_access_store (
    trace_id VARCHAR, span_id VARCHAR, session_id VARCHAR, store VARCHAR, access_type VARCHAR,
    outcome VARCHAR, outcome_source VARCHAR,
    caller_service VARCHAR, caller_region VARCHAR, caller_zone VARCHAR, caller_location VARCHAR,
    server_service VARCHAR, server_region VARCHAR, server_zone VARCHAR, server_location VARCHAR,
    remote VARCHAR, start_ns BIGINT, duration_ns BIGINT, cost_ns BIGINT, critical_ns BIGINT,
    key VARCHAR, backing_span_ids VARCHAR[]
);

-- One row per trace: critical-path time in misses / remote accesses, and the what-if duration.
CREATE TABLE IF NOT EXISTS locality_trace_store (
    trace_id VARCHAR, duration_ns BIGINT, miss_critical_ns BIGINT, remote_critical_ns BIGINT,
    whatif_duration_ns BIGINT, whatif_changed BOOLEAN
);

-- Store-wide statistic (not per trace): the what-if targets per (access type, store), the
-- medians over every access in the store (docs/locality.md, "What-if"; docs/analyzers.md).
CREATE TABLE IF NOT EXISTS locality_median_store (
    access_type VARCHAR, store VARCHAR, hit_ns DOUBLE, local_ns DOUBLE
);
