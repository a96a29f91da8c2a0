-- Views of the llm analyzer (docs/llm.md; columns pinned by tests/analyzers/llm/test_llm_docs.py).

CREATE OR REPLACE VIEW llm_calls AS
SELECT trace_id, span_id, session_id, user_id, workflow, service, provider, operation, request_model, model,
       input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, cost_usd, cost_note, price_model,
       status_code, error_type, start_ns, duration_ns, ttft_ns, on_critical_path_ns, attempts, span_ids
FROM llm_call_store;

CREATE OR REPLACE VIEW session_turns AS
SELECT u.session_id, u.turn, u.trace_id, t.workflow, u.start_ns, u.end_ns, u.end_ns - u.start_ns AS duration_ns,
       u.gap_ns, u.session_path_ns, t.span_count AS spans, t.error_count AS errors,
       (SELECT count(*) FROM llm_call_store c WHERE c.trace_id = u.trace_id) AS llm_calls,
       (SELECT sum(c.cost_usd ORDER BY c.span_id) FROM llm_call_store c WHERE c.trace_id = u.trace_id) AS cost_usd,
       (SELECT count(*) FROM findings f WHERE f.trace_id = u.trace_id) AS findings
FROM llm_turn_store u LEFT JOIN latency_traces t ON t.trace_id = u.trace_id;

CREATE OR REPLACE VIEW sessions AS
WITH calls AS (
    SELECT trace_id, count(*) AS llm_calls, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
           sum(cost_usd ORDER BY span_id) AS cost_usd, count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced_calls
    FROM llm_call_store GROUP BY trace_id
), found AS (
    SELECT trace_id, count(*) AS findings FROM findings WHERE trace_id IS NOT NULL GROUP BY trace_id
)
SELECT u.session_id,
       arg_min(u.user_id, u.turn) FILTER (WHERE u.user_id IS NOT NULL) AS user_id,
       count(*) AS traces, TRY_CAST(sum(t.span_count) AS BIGINT) AS spans, min(u.start_ns) AS start_ns, max(u.end_ns) AS end_ns,
       max(u.end_ns) - min(u.start_ns) AS duration_ns,
       TRY_CAST(coalesce(sum(c.llm_calls), 0) AS BIGINT) AS llm_calls, TRY_CAST(sum(c.input_tokens) AS BIGINT) AS input_tokens,
       TRY_CAST(sum(c.output_tokens) AS BIGINT) AS output_tokens, sum(c.cost_usd ORDER BY u.trace_id) AS cost_usd,
       TRY_CAST(coalesce(sum(c.unpriced_calls), 0) AS BIGINT) AS unpriced_calls,
       TRY_CAST(coalesce(sum(t.error_count), 0) AS BIGINT) AS errors, TRY_CAST(coalesce(sum(f.findings), 0) AS BIGINT) AS findings,
       TRY_CAST(max(u.end_ns) - min(u.start_ns) - sum(u.session_path_ns) AS BIGINT) AS idle_ns
FROM llm_turn_store u
LEFT JOIN latency_traces t ON t.trace_id = u.trace_id
LEFT JOIN calls c ON c.trace_id = u.trace_id
LEFT JOIN found f ON f.trace_id = u.trace_id
GROUP BY u.session_id;
