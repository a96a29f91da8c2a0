"""``fabric report latency``: where the time goes, per workflow.

Every figure is computed from the derived views (``traces``, ``critical_path``,
``span_metrics``) by the rules in docs/latency-report.md. Percentiles are
``quantile_cont`` (linear interpolation) over per-trace values; a trace in
which a role is absent contributes 0 ns for that role.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

from fabric_trace.errors import UsageError
from fabric_trace.model import ReportFilter
from fabric_trace.model import Column, Report, Table
from fabric_trace.analyzers.units import ms as _ms, percent as _pct

#: Dimensions for ``--by``.
BY_COLUMNS = {"role": "s.role", "service": "s.service_name", "operation": "s.name", "model": "s.model"}

ORCHESTRATION_ROLES = ("agent", "workflow")


@dataclass(frozen=True)
class LatencyOptions:
    """Options of the latency report."""

    by: str = "role"
    top: int = 10
    filter: ReportFilter = field(default_factory=ReportFilter)


def _selected_traces(con: duckdb.DuckDBPyConnection, flt: ReportFilter) -> None:
    """Materialise the traces the report covers into temp table ``sel``."""
    tf = flt.trace_sql("t")
    where_sql = f"WHERE {tf.sql}"
    params: list[Any] = list(tf.params)
    if flt.where.sql != "TRUE":
        # a trace is selected when at least one of its spans matches --where
        where_sql += f" AND t.trace_id IN (SELECT s.trace_id FROM spans s WHERE {flt.where.sql})"
        params += list(flt.where.params)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE sel AS SELECT t.* FROM latency_traces t {where_sql}", params
    )


def build_latency_report(con: duckdb.DuckDBPyConnection, options: LatencyOptions) -> Report:
    """Build the latency report from the derived tables (refresh them first)."""
    if options.by not in BY_COLUMNS:
        raise UsageError(f"--by must be one of {', '.join(BY_COLUMNS)}, not {options.by!r}")
    _selected_traces(con, options.filter)
    dim = BY_COLUMNS[options.by]
    workflows = _workflow_rows(con)
    breakdown = _breakdown(con, dim)
    self_by = _self_by(con, dim)
    top_ops = _top_operations(con, options.top)
    orchestration = _orchestration(con)
    parallelism = _parallelism(con)
    llm = _llm(con)
    retries = _retries(con)

    wf_names = [w["workflow"] for w in workflows]
    data: dict[str, Any] = {
        "report": "latency",
        "by": options.by,
        "workflows": [],
    }
    def strip(row: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if row is None else {k: v for k, v in row.items() if k != "workflow"}

    def one(rows: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
        return strip(next((r for r in rows if r["workflow"] == name), None))

    for w in workflows:
        name = w["workflow"]
        data["workflows"].append({
            **w,
            "critical_path": [strip(r) for r in breakdown if r["workflow"] == name],
            "self_time": [strip(r) for r in self_by if r["workflow"] == name],
            "top_critical_operations": [strip(r) for r in top_ops if r["workflow"] == name],
            "orchestration_overhead": one(orchestration, name),
            "parallelism": one(parallelism, name),
            "llm": one(llm, name),
            "retries": one(retries, name),
        })
    data["totals"] = {"traces": sum(w["traces"] for w in workflows), "workflows": len(wf_names)}

    dim_header = options.by.capitalize()
    tables = [
        Table("workflows", "End-to-end latency per workflow", [
            Column("workflow", "Workflow"), Column("traces", "Traces", "int"),
            Column("error_rate_pct", "Errors", "pct"), Column("p50_ms", "p50", "ms"),
            Column("p95_ms", "p95", "ms"), Column("p99_ms", "p99", "ms"), Column("max_ms", "max", "ms"),
            Column("incomplete_traces", "Incomplete", "int"), Column("repaired_traces", "Repaired", "int"),
        ], workflows),
        Table("critical_path", f"Critical-path time by {options.by} (per trace)", [
            Column("workflow", "Workflow"), Column("key", dim_header),
            Column("p50_ms", "p50", "ms"), Column("p95_ms", "p95", "ms"),
            Column("share_pct", "Share of e2e", "pct"), Column("traces_present", "In traces", "int"),
        ], breakdown),
        Table("self_time", f"Self time by {options.by} (total across traces)", [
            Column("workflow", "Workflow"), Column("key", dim_header), Column("spans", "Spans", "int"),
            Column("self_ms_total", "Self total", "ms"), Column("self_ms_p50_per_trace", "Self p50/trace", "ms"),
            Column("share_pct", "Share of self", "pct"),
        ], self_by),
        Table("top_critical_operations", "Top operations on the critical path", [
            Column("workflow", "Workflow"), Column("operation", "Operation"), Column("role", "Role"),
            Column("service", "Service"), Column("count", "Segments", "int"),
            Column("critical_ms_total", "Critical total", "ms"), Column("share_pct", "Share of e2e", "pct"),
        ], top_ops),
        Table("orchestration", "Orchestration overhead, parallelism, retries", [
            Column("workflow", "Workflow"),
            Column("orch_p50_ms", "Orch. p50", "ms"), Column("orch_p95_ms", "Orch. p95", "ms"),
            Column("orch_share_pct", "Orch. share", "pct"),
            Column("parallelism_p50", "Parallelism p50", "float"),
            Column("retry_groups_per_trace", "Retry groups/trace", "float"),
            Column("failed_attempts", "Failed attempts", "int"),
        ], _merge(wf_names, orchestration, parallelism, retries)),
        Table("llm", "LLM calls", [
            Column("workflow", "Workflow"), Column("calls_per_trace", "Calls/trace", "float"),
            Column("input_tokens_per_trace", "In tok/trace", "float"),
            Column("output_tokens_per_trace", "Out tok/trace", "float"),
            Column("cached_tokens_per_trace", "Cached tok/trace", "float"),
            Column("cached_not_reported_calls", "Cached n/r", "int"),
            Column("ttft_p50_ms", "TTFT p50", "ms"), Column("ttft_p95_ms", "TTFT p95", "ms"),
        ], llm),
    ]
    notes = []
    if not workflows:
        notes.append("no traces match the filters")
    return Report(title="Latency", tables=tables, data=data, notes=notes)


def _merge(names: list[str], *parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for n in names:
        row: dict[str, Any] = {"workflow": n}
        for part in parts:
            for r in part:
                if r["workflow"] == n:
                    row.update(r)
        out.append(row)
    return out


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _workflow_rows(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    rows = _rows(con, """
        SELECT workflow, count(*) AS traces, avg(has_error::INT) AS err,
               quantile_cont(duration_ns, 0.5) AS p50, quantile_cont(duration_ns, 0.95) AS p95,
               quantile_cont(duration_ns, 0.99) AS p99, max(duration_ns) AS mx,
               count(*) FILTER (WHERE incomplete) AS incomplete_traces,
               count(*) FILTER (WHERE repaired) AS repaired_traces
        FROM sel GROUP BY workflow ORDER BY traces DESC, workflow
    """)
    return [{
        "workflow": r["workflow"], "traces": int(r["traces"]), "error_rate_pct": _pct(r["err"]),
        "p50_ms": _ms(r["p50"]), "p95_ms": _ms(r["p95"]), "p99_ms": _ms(r["p99"]), "max_ms": _ms(r["mx"]),
        "incomplete_traces": int(r["incomplete_traces"]), "repaired_traces": int(r["repaired_traces"]),
    } for r in rows]


def _breakdown(con: duckdb.DuckDBPyConnection, dim: str) -> list[dict[str, Any]]:
    rows = _rows(con, f"""
        WITH per AS (
            SELECT s.trace_id, coalesce(CAST({dim} AS VARCHAR), '(none)') AS key, sum(s.end_ns - s.start_ns) AS ns
            FROM latency_segments s JOIN sel t USING (trace_id)
            WHERE s.root_span_id = t.root_span_id
            GROUP BY ALL
        ), keys AS (SELECT DISTINCT t.workflow, p.key FROM per p JOIN sel t USING (trace_id)),
        grid AS (
            SELECT t.workflow, k.key, t.trace_id, t.duration_ns, coalesce(p.ns, 0) AS ns
            FROM sel t JOIN keys k ON k.workflow = t.workflow
            LEFT JOIN per p ON p.trace_id = t.trace_id AND p.key = k.key
        )
        SELECT workflow, key, quantile_cont(ns, 0.5) AS p50, quantile_cont(ns, 0.95) AS p95,
               sum(ns) / nullif(sum(duration_ns), 0) AS share, count(*) FILTER (WHERE ns > 0) AS present
        FROM grid GROUP BY ALL ORDER BY workflow, sum(ns) DESC, key
    """)
    return [{"workflow": r["workflow"], "key": r["key"], "p50_ms": _ms(r["p50"]), "p95_ms": _ms(r["p95"]),
             "share_pct": _pct(r["share"]), "traces_present": int(r["present"])} for r in rows]


def _self_by(con: duckdb.DuckDBPyConnection, dim: str) -> list[dict[str, Any]]:
    rows = _rows(con, f"""
        WITH per AS (
            SELECT t.workflow, s.trace_id, coalesce(CAST({dim} AS VARCHAR), '(none)') AS key,
                   count(*) AS spans, sum(s.self_ns) AS ns
            FROM latency_spans s JOIN sel t USING (trace_id)
            GROUP BY ALL
        ), tot AS (SELECT workflow, sum(ns) AS all_ns FROM per GROUP BY workflow)
        SELECT p.workflow, key, sum(spans) AS spans, sum(ns) AS ns, quantile_cont(ns, 0.5) AS p50,
               sum(ns) / nullif(any_value(all_ns), 0) AS share
        FROM per p JOIN tot USING (workflow) GROUP BY ALL ORDER BY p.workflow, ns DESC, key
    """)
    return [{"workflow": r["workflow"], "key": r["key"], "spans": int(r["spans"]),
             "self_ms_total": _ms(r["ns"]), "self_ms_p50_per_trace": _ms(r["p50"]),
             "share_pct": _pct(r["share"])} for r in rows]


def _top_operations(con: duckdb.DuckDBPyConnection, top: int) -> list[dict[str, Any]]:
    rows = _rows(con, """
        WITH seg AS (
            SELECT t.workflow, s.name AS operation, s.role, s.service_name AS service,
                   count(*) AS n, sum(s.end_ns - s.start_ns) AS ns
            FROM latency_segments s JOIN sel t USING (trace_id)
            WHERE s.root_span_id = t.root_span_id
            GROUP BY ALL
        ), tot AS (SELECT workflow, sum(duration_ns) AS e2e FROM sel GROUP BY workflow)
        SELECT seg.*, ns / nullif(e2e, 0) AS share,
               row_number() OVER (PARTITION BY seg.workflow ORDER BY ns DESC, operation, role, service) AS rk
        FROM seg JOIN tot USING (workflow)
        QUALIFY rk <= ?
        ORDER BY seg.workflow, rk
    """, [top])
    return [{"workflow": r["workflow"], "operation": r["operation"], "role": r["role"], "service": r["service"],
             "count": int(r["n"]), "critical_ms_total": _ms(r["ns"]), "share_pct": _pct(r["share"])} for r in rows]


def _orchestration(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    roles = ", ".join(f"'{r}'" for r in ORCHESTRATION_ROLES)
    rows = _rows(con, f"""
        WITH per AS (
            SELECT t.trace_id, t.workflow, t.duration_ns,
                   coalesce(sum(s.end_ns - s.start_ns) FILTER (WHERE s.role IN ({roles})), 0) AS ns
            FROM sel t
            LEFT JOIN latency_segments s ON s.trace_id = t.trace_id AND s.root_span_id = t.root_span_id
            GROUP BY ALL
        )
        SELECT workflow, quantile_cont(ns, 0.5) AS p50, quantile_cont(ns, 0.95) AS p95,
               sum(ns) / nullif(sum(duration_ns), 0) AS share
        FROM per GROUP BY workflow
    """)
    return [{"workflow": r["workflow"], "orch_p50_ms": _ms(r["p50"]), "orch_p95_ms": _ms(r["p95"]),
             "orch_share_pct": _pct(r["share"])} for r in rows]


def _parallelism(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    rows = _rows(con, """
        WITH per AS (
            SELECT t.trace_id, t.workflow,
                   sum(greatest(s.end_ns - s.start_ns, 0)) / nullif(any_value(t.duration_ns), 0) AS par
            FROM sel t JOIN latency_spans s USING (trace_id) GROUP BY ALL
        )
        SELECT workflow, quantile_cont(par, 0.5) AS p50, quantile_cont(par, 0.95) AS p95
        FROM per GROUP BY workflow
    """)
    return [{"workflow": r["workflow"], "parallelism_p50": None if r["p50"] is None else round(r["p50"], 3),
             "parallelism_p95": None if r["p95"] is None else round(r["p95"], 3)} for r in rows]


def _llm(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Model calls per workflow, read from the llm analyzer's ``llm_calls`` view, which counts
    each call once across instrumentation layers (docs/llm.md, "One call, one row")."""
    rows = _rows(con, """
        WITH calls AS (
            SELECT c.trace_id, c.input_tokens, c.output_tokens, c.cached_input_tokens, c.ttft_ns
            FROM llm_calls c JOIN sel t USING (trace_id)
        ), per AS (
            SELECT t.trace_id, t.workflow, count(c.trace_id) AS calls,
                   coalesce(sum(c.input_tokens), 0) AS tin, coalesce(sum(c.output_tokens), 0) AS tout,
                   coalesce(sum(c.cached_input_tokens), 0) AS tcached,
                   count(c.trace_id) FILTER (WHERE c.cached_input_tokens IS NULL) AS not_reported
            FROM sel t LEFT JOIN calls c USING (trace_id) GROUP BY ALL
        ), tt AS (
            SELECT t.workflow, quantile_cont(c.ttft_ns, 0.5) AS p50, quantile_cont(c.ttft_ns, 0.95) AS p95
            FROM calls c JOIN sel t USING (trace_id) WHERE c.ttft_ns IS NOT NULL GROUP BY t.workflow
        )
        SELECT per.workflow, avg(calls) AS calls, avg(tin) AS tin, avg(tout) AS tout, avg(tcached) AS tcached,
               sum(not_reported) AS not_reported, any_value(tt.p50) AS ttft_p50, any_value(tt.p95) AS ttft_p95
        FROM per LEFT JOIN tt USING (workflow) GROUP BY per.workflow
    """)
    return [{"workflow": r["workflow"], "calls_per_trace": round(r["calls"], 3),
             "input_tokens_per_trace": round(r["tin"], 1), "output_tokens_per_trace": round(r["tout"], 1),
             "cached_tokens_per_trace": round(r["tcached"], 1),
             "cached_not_reported_calls": int(r["not_reported"]),
             "ttft_p50_ms": _ms(r["ttft_p50"]), "ttft_p95_ms": _ms(r["ttft_p95"])} for r in rows]


def _retries(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Retries: a span that starts after a same-name sibling (same parent) has ended is a
    repeat (parallel fan-out of the same operation is not); a failed attempt is such an
    earlier sibling with status ERROR."""
    rows = _rows(con, """
        WITH sib AS (
            SELECT s.trace_id, s.parent_span_id, s.name, s.status_code, s.start_ns, s.end_ns,
                   lead(s.start_ns) OVER w AS next_start
            FROM span_store s JOIN sel t USING (trace_id)
            WHERE s.parent_span_id IS NOT NULL
            WINDOW w AS (PARTITION BY s.trace_id, s.parent_span_id, s.name ORDER BY s.start_ns, s.span_id)
        ), per AS (
            SELECT t.trace_id, t.workflow,
                   count(DISTINCT (sib.parent_span_id, sib.name)) FILTER (WHERE sib.next_start >= sib.end_ns) AS groups,
                   count(*) FILTER (WHERE sib.next_start >= sib.end_ns AND sib.status_code = 'ERROR') AS failed
            FROM sel t LEFT JOIN sib USING (trace_id) GROUP BY ALL
        )
        SELECT workflow, avg(groups) AS groups, sum(failed) AS failed FROM per GROUP BY workflow
    """)
    return [{"workflow": r["workflow"], "retry_groups_per_trace": round(r["groups"], 3),
             "failed_attempts": int(r["failed"])} for r in rows]
