"""The latency analyzer: call graphs -> traces, critical path, span metrics, repairs.

``derive`` runs the batch call-graph kernel (:mod:`fabric_trace.graph`) over
one partition of whole traces, bucket by bucket, and returns:

* ``latency_traces``   -> view ``traces``
* ``latency_segments`` -> view ``critical_path``
* ``latency_spans``    -> view ``span_metrics``
* ``latency_repairs``  -> findings with ``analyzer = 'latency'`` (:mod:`.findings`).

Tables: ``sql/tables.sql``; views: ``sql/views.sql``.

Rules: docs/critical-path.md; tables and views: docs/schema.md.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from fabric_trace.analyzers.contract import Derived, Partition, sql_kernel
from fabric_trace.analyzers.latency.config import max_skew, workflow_sql
from fabric_trace.analyzers.latency.findings import repair_findings
from fabric_trace.graph import iter_trace_metrics
from fabric_trace.graph.repair import PLAUSIBLE_TIMES

#: The kernel's per-trace rows, before the root span's facts are joined in.
_RAW_DDL = """
CREATE OR REPLACE TEMP TABLE latency_traces_raw (
    trace_id VARCHAR, root_span_id VARCHAR, root_count BIGINT,
    start_ns BIGINT, end_ns BIGINT, duration_ns BIGINT, root_duration_ns BIGINT,
    span_count BIGINT, error_count BIGINT, incomplete BOOLEAN, repair_count BIGINT
)
"""


#: A trace's session: the session id of its shallowest span that has one (then the earliest,
#: then the smallest span id); docs/schema.md, ``traces``.
SESSION_SQL = """
    SELECT s.trace_id, arg_min(s.session_id, (ls.depth, s.start_ns, s.span_id)) AS session_id
    FROM span_store s JOIN latency_spans ls ON ls.trace_id = s.trace_id AND ls.span_id = s.span_id
    WHERE s.session_id IS NOT NULL GROUP BY s.trace_id
"""


def _append(con: duckdb.DuckDBPyConnection, table: str, data: pa.Table, columns: list[str]) -> None:
    if data.num_rows == 0:
        return
    con.register("_lat_in", data.select(columns))
    try:
        con.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM _lat_in")
    finally:
        con.unregister("_lat_in")


def derive(part: Partition, config: Any) -> Derived:
    """The latency rows and repair findings of one partition of whole traces (a kernel: no store)."""
    from fabric_trace.analyzers.latency import ANALYZER

    return sql_kernel(ANALYZER, part, config, derive_sql)


def derive_sql(con: duckdb.DuckDBPyConnection, config: Any) -> None:
    """Fill the latency tables (``sql/tables.sql``) and repair findings from ``span_store`` on ``con``."""
    con.execute(_RAW_DDL)
    carry = ("name", "role", "model")
    for batch in iter_trace_metrics(con, max_clock_skew_ns=max_skew(config), carry=carry,
                                    time_bounds=PLAUSIBLE_TIMES):
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
        INSERT INTO latency_traces
        SELECT t.trace_id, {wf_sql} AS workflow, t.root_span_id, r.name AS root_name,
               r.service_name AS root_service, t.start_ns, t.end_ns, t.duration_ns, t.root_duration_ns,
               t.span_count, t.error_count, t.error_count > 0 AS has_error,
               coalesce(sv.services, []::VARCHAR[]) AS services, t.incomplete,
               t.repair_count > 0 AS repaired, t.repair_count, t.root_count, ss.session_id
        FROM latency_traces_raw t
        LEFT JOIN span_store r ON r.trace_id = t.trace_id AND r.span_id = t.root_span_id
        LEFT JOIN (SELECT trace_id, list(DISTINCT service_name ORDER BY service_name) AS services
                   FROM latency_spans GROUP BY trace_id) sv ON sv.trace_id = t.trace_id
        LEFT JOIN ({SESSION_SQL}) ss ON ss.trace_id = t.trace_id
        """,
        wf_params,
    )
    con.execute("DROP TABLE latency_traces_raw")
    repair_findings(con)
