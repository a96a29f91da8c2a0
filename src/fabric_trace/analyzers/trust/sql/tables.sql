-- Derived tables of the trust analyzer (docs/trust.md, docs/schema.md).

-- Store-wide (not per trace): the zone of every resource (view trust_spans joins it to the spans).
CREATE TABLE IF NOT EXISTS trust_zone_store (
    resource_id VARCHAR, service_name VARCHAR, zone VARCHAR, zone_kind VARCHAR, trust_level VARCHAR
);

-- Store-wide (not per trace): each service name's zone, which resolves peer hosts named after a
-- known service (docs/trust.md, "Zones").
CREATE TABLE IF NOT EXISTS trust_service_zones (name VARCHAR, zone VARCHAR);

-- One row per crossing (view trust_crossings).
CREATE TABLE IF NOT EXISTS trust_crossing_store (
    trace_id VARCHAR, crossing VARCHAR, parent_span_id VARCHAR, child_span_id VARCHAR,
    from_zone VARCHAR, from_kind VARCHAR, from_level VARCHAR, to_zone VARCHAR, to_kind VARCHAR,
    to_level VARCHAR, peer VARCHAR, protocol VARCHAR, operation VARCHAR, scheme VARCHAR,
    identity_from BOOLEAN, identity_to BOOLEAN, error BOOLEAN
);
