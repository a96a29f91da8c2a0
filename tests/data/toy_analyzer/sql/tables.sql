CREATE TABLE IF NOT EXISTS toy_trace_store (trace_id VARCHAR, spans BIGINT);
