-- Views of the latency analyzer (docs/schema.md).

CREATE OR REPLACE VIEW traces AS
SELECT trace_id, workflow, root_span_id, root_name, root_service, start_ns, end_ns, duration_ns,
       span_count, error_count, has_error, services, incomplete, repaired, repair_count, root_count,
       session_id
FROM latency_traces;

CREATE OR REPLACE VIEW critical_path AS
SELECT trace_id, span_id, start_ns, end_ns, end_ns - start_ns AS duration_ns, root_span_id
FROM latency_segments;

CREATE OR REPLACE VIEW span_metrics AS
SELECT trace_id, span_id, self_ns, on_critical_path_ns, depth, child_count, root_span_id,
       start_ns AS adjusted_start_ns, end_ns AS adjusted_end_ns, shift_ns
FROM latency_spans;
