"""The latency analyzer: call graphs -> traces, critical path, span metrics, repairs.

``derive`` runs the batch call-graph kernel (:mod:`fabric_trace.graph`) over
the whole store, bucket by bucket, and writes:

* ``latency_traces``   -> view ``traces``
* ``latency_segments`` -> view ``critical_path``
* ``latency_spans``    -> view ``span_metrics``
* repairs -> ``finding_store`` rows with ``analyzer = 'latency'``.

Rules: docs/critical-path.md; tables and views: docs/schema.md.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from fabric_trace.analyzers import Analyzer
from fabric_trace.analyzers.workflows import workflow_sql
from fabric_trace.graph import iter_trace_metrics

#: Severity of each repair finding.
REPAIR_SEVERITY = {
    "orphan_span": "medium",
    "multiple_roots": "low",
    "parent_cycle": "high",
    "duplicate_span": "low",
    "clock_skew": "medium",
    "negative_duration": "low",
    "child_outside_parent": "info",
}

_DDL = """
CREATE OR REPLACE TABLE latency_traces_raw (
    trace_id VARCHAR, root_span_id VARCHAR, root_count BIGINT,
    start_ns BIGINT, end_ns BIGINT, duration_ns BIGINT, root_duration_ns BIGINT,
    span_count BIGINT, error_count BIGINT, incomplete BOOLEAN, repair_count BIGINT
);
CREATE OR REPLACE TABLE latency_spans (
    trace_id VARCHAR, span_id VARCHAR, root_span_id VARCHAR, depth BIGINT, child_count BIGINT,
    start_ns BIGINT, end_ns BIGINT, self_ns BIGINT, on_critical_path_ns BIGINT, shift_ns BIGINT,
    service_name VARCHAR, name VARCHAR, role VARCHAR, model VARCHAR
);
CREATE OR REPLACE TABLE latency_segments (
    trace_id VARCHAR, root_span_id VARCHAR, span_id VARCHAR, start_ns BIGINT, end_ns BIGINT,
    service_name VARCHAR, name VARCHAR, role VARCHAR, model VARCHAR
);
CREATE OR REPLACE TABLE latency_repairs (
    trace_id VARCHAR, kind VARCHAR, span_id VARCHAR, parent_span_id VARCHAR, offset_ns BIGINT,
    service VARCHAR, parent_service VARCHAR, count BIGINT
);
"""

_VIEWS = """
CREATE OR REPLACE VIEW traces AS
SELECT trace_id, workflow, root_span_id, root_name, root_service, start_ns, end_ns, duration_ns,
       span_count, error_count, has_error, services, incomplete, repaired, repair_count, root_count
FROM latency_traces;

CREATE OR REPLACE VIEW critical_path AS
SELECT trace_id, span_id, start_ns, end_ns, end_ns - start_ns AS duration_ns, root_span_id
FROM latency_segments;

CREATE OR REPLACE VIEW span_metrics AS
SELECT trace_id, span_id, self_ns, on_critical_path_ns, depth, child_count, root_span_id,
       start_ns AS adjusted_start_ns, end_ns AS adjusted_end_ns, shift_ns
FROM latency_spans;
"""


def _append(con: duckdb.DuckDBPyConnection, table: str, data: pa.Table, columns: list[str]) -> None:
    if data.num_rows == 0:
        return
    con.register("_lat_in", data.select(columns))
    try:
        con.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM _lat_in")
    finally:
        con.unregister("_lat_in")


def derive(con: duckdb.DuckDBPyConnection, config: Any) -> None:
    """Recompute the latency tables and repair findings for the whole store."""
    con.execute(_DDL)
    max_skew = _max_skew(config)
    carry = ("name", "role", "model")
    for batch in iter_trace_metrics(con, max_clock_skew_ns=max_skew, carry=carry):
        _append(con, "latency_traces_raw", batch.traces,
                ["trace_id", "root_span_id", "root_count", "start_ns", "end_ns", "duration_ns",
                 "root_duration_ns", "span_count", "error_count", "incomplete", "repair_count"])
        _append(con, "latency_spans", batch.spans,
                ["trace_id", "span_id", "root_span_id", "depth", "child_count", "start_ns", "end_ns",
                 "self_ns", "on_critical_path_ns", "shift_ns", "service_name", *carry])
        _append(con, "latency_segments", batch.segments,
                ["trace_id", "root_span_id", "span_id", "start_ns", "end_ns", "service_name", *carry])
        _append(con, "latency_repairs", batch.repairs,
                ["trace_id", "kind", "span_id", "parent_span_id", "offset_ns", "service",
                 "parent_service", "count"])
    wf_sql, wf_params = workflow_sql(config)
    # Trace facts materialised once (root span, workflow, services), so reports
    # and the `traces` view never join back to the span store.
    con.execute(
        f"""
        CREATE OR REPLACE TABLE latency_traces AS
        SELECT t.trace_id, {wf_sql} AS workflow, t.root_span_id, r.name AS root_name,
               r.service_name AS root_service, t.start_ns, t.end_ns, t.duration_ns, t.root_duration_ns,
               t.span_count, t.error_count, t.error_count > 0 AS has_error,
               coalesce(sv.services, []::VARCHAR[]) AS services, t.incomplete,
               t.repair_count > 0 AS repaired, t.repair_count, t.root_count
        FROM latency_traces_raw t
        LEFT JOIN span_store r ON r.trace_id = t.trace_id AND r.span_id = t.root_span_id
        LEFT JOIN (SELECT trace_id, list(DISTINCT service_name ORDER BY service_name) AS services
                   FROM latency_spans GROUP BY trace_id) sv ON sv.trace_id = t.trace_id
        """,
        wf_params,
    )
    con.execute("DROP TABLE latency_traces_raw")
    con.execute(_VIEWS)
    _repair_findings(con)


def _max_skew(config: Any) -> int | None:
    """``[latency] adjust_skew_max_ns`` (set by ``--adjust-skew``); None = detect only."""
    data = getattr(config, "data", {}) or {}
    value = (data.get("latency") or {}).get("adjust_skew_max_ns")
    return None if value is None else int(value)


#: Graph repair kinds (fabric_trace.graph.model) -> finding kinds.
FINDING_KIND = {
    "orphan": "orphan_span",
    "extra_root": "multiple_roots",
    "self_parent": "parent_cycle",
    "cycle_cut": "parent_cycle",
    "duplicate_span_id": "duplicate_span",
    "clock_skew": "clock_skew",
    "clock_skew_adjusted": "clock_skew",
    "clock_skew_exceeds_max": "clock_skew",
    "negative_duration": "negative_duration",
    "child_outside_parent": "child_outside_parent",
}


def _repair_findings(con: duckdb.DuckDBPyConnection) -> None:
    kind_map = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in FINDING_KIND.items())
    sev = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in REPAIR_SEVERITY.items())
    con.execute(
        f"""
        INSERT INTO finding_store
        WITH r AS (
            SELECT *, CASE kind {kind_map} END AS fkind FROM latency_repairs
        ), one_per_trace AS (
            -- several roots: one finding per trace, on the earliest extra root
            SELECT trace_id, 'multiple_roots' AS fkind, 'extra_root' AS kind, min(span_id) AS span_id,
                   NULL AS parent_span_id, NULL::BIGINT AS offset_ns, NULL AS service,
                   NULL AS parent_service, count(*) + 1 AS count
            FROM r WHERE fkind = 'multiple_roots' GROUP BY trace_id
        ), rows AS (
            SELECT trace_id, fkind, kind, span_id, parent_span_id, offset_ns, service, parent_service, count
            FROM r WHERE fkind IS NOT NULL AND fkind <> 'multiple_roots'
            UNION ALL
            SELECT trace_id, fkind, kind, span_id, parent_span_id, offset_ns, service, parent_service, count
            FROM one_per_trace
        )
        SELECT 'latency', fkind, CASE fkind {sev} ELSE 'low' END, trace_id, span_id,
               CASE fkind
                 WHEN 'orphan_span' THEN 'span ' || span_id || ' has parent ' || coalesce(parent_span_id, '?')
                      || ' which is not in the trace; treated as a root (trace incomplete)'
                 WHEN 'multiple_roots' THEN 'trace has ' || count || ' root spans; critical path computed per root'
                 WHEN 'parent_cycle' THEN 'parent links form a cycle; the link from span ' || span_id
                      || ' to its parent was cut'
                 WHEN 'duplicate_span' THEN 'span id ' || span_id || ' appears more than once in the trace'
                 WHEN 'clock_skew' THEN 'span ' || span_id || ' (' || coalesce(service, '?')
                      || ') looks shifted by ' || round(offset_ns / 1e6, 3) || ' ms relative to its parent ('
                      || coalesce(parent_service, '?') || ')'
                      || CASE kind WHEN 'clock_skew_adjusted' THEN '; adjusted'
                                   WHEN 'clock_skew_exceeds_max' THEN '; not adjusted (beyond the maximum)'
                                   ELSE '' END
                 WHEN 'negative_duration' THEN 'span ' || span_id || ' ends before it starts; treated as zero-length'
                 WHEN 'child_outside_parent' THEN 'span ' || span_id
                      || ' lies entirely outside its parent; left out of the parent''s critical path'
                 ELSE fkind END,
               json_object('repair', kind, 'parent_span_id', parent_span_id, 'offset_ns', offset_ns,
                           'service', service, 'parent_service', parent_service, 'count', count,
                           'adjusted', kind = 'clock_skew_adjusted')
        FROM rows
        """
    )


ANALYZER = Analyzer(
    name="latency",
    summary="Call graphs per trace: critical path, self time, repairs (orphans, cycles, skew).",
    derive=derive,
)
