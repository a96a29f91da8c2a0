-- Views of the trust analyzer (docs/trust.md, docs/schema.md).

CREATE OR REPLACE VIEW trust_spans AS
SELECT s.trace_id, s.span_id, s.service_name, z.zone, z.zone_kind, z.trust_level
FROM span_store s JOIN trust_zone_store z ON z.resource_id = s.resource_id;

CREATE OR REPLACE VIEW trust_crossings AS
SELECT trace_id, crossing, parent_span_id, child_span_id, from_zone, from_kind, from_level,
       to_zone, to_kind, to_level, peer, protocol, operation, scheme,
       identity_from, identity_to, error
FROM trust_crossing_store;
