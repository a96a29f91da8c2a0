-- Derived tables of the llm analyzer (docs/llm.md). Every row carries its trace_id, so a
-- partition (whole sessions) is replaced by deleting and inserting its trace ids.

-- One row per model call (docs/llm.md, "One call, one row"); view llm_calls.
CREATE TABLE IF NOT EXISTS llm_call_store (
    trace_id VARCHAR, span_id VARCHAR, session_id VARCHAR, user_id VARCHAR, workflow VARCHAR,
    service VARCHAR, provider VARCHAR, operation VARCHAR, request_model VARCHAR, model VARCHAR,
    input_tokens BIGINT, output_tokens BIGINT, cached_input_tokens BIGINT, reasoning_tokens BIGINT,
    cost_usd DOUBLE, cost_note VARCHAR, price_model VARCHAR, status_code VARCHAR, error_type VARCHAR,
    start_ns BIGINT, end_ns BIGINT, duration_ns BIGINT, ttft_ns BIGINT, on_critical_path_ns BIGINT,
    attempts BIGINT, span_ids VARCHAR[]
);

-- One row per trace that belongs to a session (docs/llm.md, "Sessions"); views session_turns, sessions.
CREATE TABLE IF NOT EXISTS llm_turn_store (
    trace_id VARCHAR, session_id VARCHAR, user_id VARCHAR, turn BIGINT, start_ns BIGINT, end_ns BIGINT,
    gap_ns BIGINT, session_path_ns BIGINT
);
