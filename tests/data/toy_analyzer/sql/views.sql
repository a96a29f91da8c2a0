CREATE OR REPLACE VIEW toy_traces AS SELECT * FROM toy_trace_store;
