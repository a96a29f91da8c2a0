-- fabric store schema: the contract between ingest and the analyzers.
-- Documented in docs/schema.md; every user-visible table and view is pinned by tests.
-- Bump SCHEMA_VERSION in store/schema.py whenever this file changes incompatibly.

CREATE TABLE IF NOT EXISTS fabric_meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR
);

CREATE SEQUENCE IF NOT EXISTS file_id_seq START 1;

-- One row per ingested file (or stdin stream), written in the same transaction as its spans.
CREATE TABLE IF NOT EXISTS files (
    file_id          BIGINT PRIMARY KEY,
    path             VARCHAR NOT NULL,
    sha256           VARCHAR NOT NULL,
    size_bytes       BIGINT NOT NULL,
    format           VARCHAR NOT NULL,
    spans_decoded    BIGINT NOT NULL,
    spans_ingested   BIGINT NOT NULL,
    spans_duplicate  BIGINT NOT NULL,
    spans_rejected   BIGINT NOT NULL,
    records_rejected BIGINT NOT NULL,
    repairs          BIGINT NOT NULL,
    traces           BIGINT NOT NULL,
    ingested_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS resources (
    resource_id               VARCHAR PRIMARY KEY,
    attributes                JSON NOT NULL,
    schema_url                VARCHAR,
    dropped_attributes_count  BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS scopes (
    scope_id                  VARCHAR PRIMARY KEY,
    name                      VARCHAR,
    version                   VARCHAR,
    attributes                JSON NOT NULL,
    schema_url                VARCHAR,
    dropped_attributes_count  BIGINT NOT NULL
);

-- The span store. Raw OTLP fields, then the normalized columns derived at ingest.
CREATE TABLE IF NOT EXISTS span_store (
    trace_id                  VARCHAR NOT NULL,
    span_id                   VARCHAR NOT NULL,
    parent_span_id            VARCHAR,
    trace_state               VARCHAR,
    flags                     BIGINT,
    name                      VARCHAR NOT NULL,
    kind                      VARCHAR NOT NULL,
    start_ns                  BIGINT NOT NULL,
    end_ns                    BIGINT NOT NULL,
    status_code               VARCHAR NOT NULL,
    status_message            VARCHAR,
    attributes                JSON NOT NULL,
    events                    JSON NOT NULL,
    links                     JSON NOT NULL,
    dropped_attributes_count  BIGINT NOT NULL,
    dropped_events_count      BIGINT NOT NULL,
    dropped_links_count       BIGINT NOT NULL,
    resource_id               VARCHAR NOT NULL,
    scope_id                  VARCHAR NOT NULL,
    file_id                   BIGINT NOT NULL,
    content_hash              UBIGINT NOT NULL,
    -- normalized columns (docs/normalization.md)
    service_name              VARCHAR,
    service_namespace         VARCHAR,
    region                    VARCHAR,
    zone                      VARCHAR,
    host                      VARCHAR,
    role                      VARCHAR NOT NULL,
    operation                 VARCHAR,
    model                     VARCHAR,
    provider                  VARCHAR,
    input_tokens              BIGINT,
    output_tokens             BIGINT,
    cached_input_tokens       BIGINT,
    peer                      VARCHAR,
    url_scheme                VARCHAR,
    user_id                   VARCHAR,
    session_id                VARCHAR,
    tool_name                 VARCHAR,
    tool_call_id              VARCHAR,
    agent_name                VARCHAR,
    workflow_name             VARCHAR,
    db_system                 VARCHAR,
    -- role evidence (docs/normalization.md, "Roles")
    role_source               VARCHAR,
    role_evidence             VARCHAR,
    role_rival                VARCHAR,
    role_rival_source         VARCHAR,
    role_rival_evidence       VARCHAR,
    PRIMARY KEY (trace_id, span_id)
);

CREATE SEQUENCE IF NOT EXISTS quarantine_id_seq START 1;

-- Every record that was rejected or repaired, with where it came from and why.
CREATE TABLE IF NOT EXISTS quarantine (
    quarantine_id  BIGINT PRIMARY KEY,
    file_id        BIGINT NOT NULL,
    path           VARCHAR NOT NULL,
    location       VARCHAR NOT NULL,
    action         VARCHAR NOT NULL,   -- 'rejected' (not loaded) or 'repaired' (loaded after a documented fix)
    reason         VARCHAR NOT NULL,
    trace_id       VARCHAR,
    span_id        VARCHAR,
    raw            VARCHAR,            -- an excerpt of the offending bytes (at most 4 KiB)
    recorded_at    TIMESTAMPTZ NOT NULL
);
