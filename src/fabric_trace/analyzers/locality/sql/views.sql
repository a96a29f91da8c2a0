-- View of the locality analyzer (docs/locality.md, docs/schema.md).

CREATE OR REPLACE VIEW locality_accesses AS
SELECT trace_id, span_id, session_id, store, access_type, outcome, outcome_source,
       caller_service, caller_region, caller_zone, caller_location,
       server_service, server_region, server_zone, server_location, remote,
       start_ns, duration_ns, cost_ns, critical_ns, key, backing_span_ids
FROM locality_access_store;
