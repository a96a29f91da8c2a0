"""``fabric report llm``: what the model calls cost, by model, provider, workflow or operation.

Every figure comes from the ``llm_calls`` view (one row per call, docs/llm.md)
over the traces the filters select. Token and cost sums skip calls that did
not report the value; ``unpriced_calls`` says how many calls have no cost.
Percentiles are ``quantile_cont`` over calls. JSON: docs/llm.md, "fabric report llm".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

from fabric_trace.errors import UsageError
from fabric_trace.model import Column, Report, ReportFilter, Table
from fabric_trace.analyzers.units import ms as _ms, percent as _pct

#: Dimensions for ``--by``.
BY_COLUMNS = {"model": "c.model", "provider": "c.provider", "workflow": "c.workflow", "operation": "c.operation",
              "service": "c.service", "request_model": "c.request_model"}


@dataclass(frozen=True)
class LlmOptions:
    """Options of the llm report."""

    by: str = "model"
    top: int = 10
    filter: ReportFilter = field(default_factory=ReportFilter)


def _usd(x: Any) -> float | None:
    return None if x is None else round(float(x), 9)


def _int(x: Any) -> int | None:
    return None if x is None else int(x)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _select(con: duckdb.DuckDBPyConnection, flt: ReportFilter) -> None:
    """Materialise the selected traces (``llm_sel``) and their calls (``llm_sel_calls``)."""
    sel = flt.selection_sql("t")
    con.execute(f"CREATE OR REPLACE TEMP TABLE llm_sel AS SELECT t.* FROM traces t WHERE {sel.sql}", list(sel.params))
    con.execute("CREATE OR REPLACE TEMP TABLE llm_sel_calls AS SELECT c.* FROM llm_calls c SEMI JOIN llm_sel USING (trace_id)")


_AGG = """
    count(*) AS calls, count(*) FILTER (WHERE c.status_code = 'ERROR') AS errors,
    count(*) FILTER (WHERE c.attempts > 1) AS retried_calls, sum(c.attempts - 1) AS retries,
    sum(c.input_tokens) AS input_tokens, sum(c.output_tokens) AS output_tokens,
    sum(c.cached_input_tokens) AS cached_input_tokens, sum(c.reasoning_tokens) AS reasoning_tokens,
    sum(c.cached_input_tokens) FILTER (WHERE c.input_tokens IS NOT NULL AND c.cached_input_tokens IS NOT NULL)
        / nullif(sum(c.input_tokens) FILTER (WHERE c.input_tokens IS NOT NULL AND c.cached_input_tokens IS NOT NULL), 0) AS cached_share,
    sum(c.cost_usd ORDER BY c.trace_id, c.span_id) AS cost_usd, count(*) FILTER (WHERE c.cost_usd IS NULL) AS unpriced_calls,
    quantile_cont(c.duration_ns, 0.5) AS p50, quantile_cont(c.duration_ns, 0.95) AS p95,
    quantile_cont(c.ttft_ns, 0.5) AS ttft_p50, quantile_cont(c.ttft_ns, 0.95) AS ttft_p95,
    sum(c.on_critical_path_ns) AS critical_ns
"""


def _shape(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "calls": int(r["calls"]), "errors": int(r["errors"]),
        "error_rate_pct": _pct(r["errors"] / r["calls"]) if r["calls"] else None,
        "retried_calls": int(r["retried_calls"]), "retries": _int(r["retries"]),
        "input_tokens": _int(r["input_tokens"]), "cached_input_tokens": _int(r["cached_input_tokens"]),
        "cached_share_pct": _pct(r["cached_share"]), "output_tokens": _int(r["output_tokens"]),
        "reasoning_tokens": _int(r["reasoning_tokens"]), "cost_usd": _usd(r["cost_usd"]),
        "unpriced_calls": int(r["unpriced_calls"]), "p50_ms": _ms(r["p50"]), "p95_ms": _ms(r["p95"]),
        "ttft_p50_ms": _ms(r["ttft_p50"]), "ttft_p95_ms": _ms(r["ttft_p95"]),
        "critical_path_ms": _ms(r["critical_ns"]),
    }


def _groups(con: duckdb.DuckDBPyConnection, dim: str) -> list[dict[str, Any]]:
    rows = _rows(con, f"""
        SELECT coalesce(CAST({dim} AS VARCHAR), '(not reported)') AS key, {_AGG}
        FROM llm_sel_calls c GROUP BY ALL ORDER BY sum(c.cost_usd ORDER BY c.trace_id, c.span_id) DESC NULLS LAST, calls DESC, key
    """)
    return [{"key": r["key"], **_shape(r)} for r in rows]


def _totals(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    (r,) = _rows(con, f"SELECT {_AGG} FROM llm_sel_calls c")
    traces = con.execute("SELECT count(*) FROM llm_sel").fetchall()[0][0]
    out = _shape(r) if r["calls"] else {"calls": 0}
    out["traces"] = int(traces)
    return out


def _top_traces(con: duckdb.DuckDBPyConnection, top: int) -> list[dict[str, Any]]:
    rows = _rows(con, """
        SELECT c.trace_id, any_value(c.workflow) AS workflow, any_value(c.session_id) AS session_id,
               count(*) AS calls, sum(c.input_tokens) AS input_tokens, sum(c.output_tokens) AS output_tokens,
               sum(c.cost_usd ORDER BY c.trace_id, c.span_id) AS cost_usd, count(*) FILTER (WHERE c.cost_usd IS NULL) AS unpriced_calls
        FROM llm_sel_calls c GROUP BY c.trace_id
        ORDER BY cost_usd DESC NULLS LAST, calls DESC, c.trace_id LIMIT ?
    """, [top])
    return [{"trace_id": r["trace_id"], "workflow": r["workflow"], "session_id": r["session_id"],
             "calls": int(r["calls"]), "input_tokens": _int(r["input_tokens"]),
             "output_tokens": _int(r["output_tokens"]), "cost_usd": _usd(r["cost_usd"]),
             "unpriced_calls": int(r["unpriced_calls"])} for r in rows]


def _top_sessions(con: duckdb.DuckDBPyConnection, top: int) -> list[dict[str, Any]]:
    rows = _rows(con, """
        SELECT c.session_id, count(DISTINCT c.trace_id) AS traces, count(*) AS calls,
               sum(c.input_tokens) AS input_tokens, sum(c.output_tokens) AS output_tokens,
               sum(c.cost_usd ORDER BY c.trace_id, c.span_id) AS cost_usd, count(*) FILTER (WHERE c.cost_usd IS NULL) AS unpriced_calls
        FROM llm_sel_calls c WHERE c.session_id IS NOT NULL GROUP BY c.session_id
        ORDER BY cost_usd DESC NULLS LAST, calls DESC, c.session_id LIMIT ?
    """, [top])
    return [{"session_id": r["session_id"], "traces": int(r["traces"]), "calls": int(r["calls"]),
             "input_tokens": _int(r["input_tokens"]), "output_tokens": _int(r["output_tokens"]),
             "cost_usd": _usd(r["cost_usd"]), "unpriced_calls": int(r["unpriced_calls"])} for r in rows]


def _unpriced(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    rows = _rows(con, """
        SELECT c.cost_note AS note, count(*) AS calls FROM llm_sel_calls c
        WHERE c.cost_usd IS NULL GROUP BY ALL ORDER BY calls DESC, note
    """)
    return [{"note": r["note"], "calls": int(r["calls"])} for r in rows]


def build_llm_report(con: duckdb.DuckDBPyConnection, options: LlmOptions) -> Report:
    """Build the llm report from the derived views (refresh them first)."""
    if options.by not in BY_COLUMNS:
        raise UsageError(f"--by must be one of {', '.join(BY_COLUMNS)}, not {options.by!r}")
    _select(con, options.filter)
    groups = _groups(con, BY_COLUMNS[options.by])
    totals = _totals(con)
    top_traces = _top_traces(con, options.top)
    top_sessions = _top_sessions(con, options.top)
    unpriced = _unpriced(con)
    from fabric_trace.analyzers.llm.config import bundled

    as_of = bundled()[1]
    data: dict[str, Any] = {"report": "llm", "by": options.by, "totals": totals, "groups": groups,
                            "top_traces": top_traces, "top_sessions": top_sessions, "unpriced": unpriced,
                            "bundled_prices_as_of": as_of}
    header = options.by.replace("_", " ").capitalize()
    usage = [Column("key", header), Column("calls", "Calls", "int"), Column("error_rate_pct", "Errors", "pct"),
             Column("retries", "Retries", "int"), Column("input_tokens", "In tok", "int"),
             Column("cached_share_pct", "Cached", "pct"), Column("output_tokens", "Out tok", "int"),
             Column("reasoning_tokens", "Reasoning", "int"), Column("cost_usd", "Cost $", "float"),
             Column("unpriced_calls", "Unpriced", "int")]
    timing = [Column("key", header), Column("calls", "Calls", "int"), Column("p50_ms", "p50", "ms"),
              Column("p95_ms", "p95", "ms"), Column("ttft_p50_ms", "TTFT p50", "ms"),
              Column("ttft_p95_ms", "TTFT p95", "ms"), Column("critical_path_ms", "On critical path", "ms")]
    tables = [
        Table("usage", f"Calls, tokens and cost by {options.by}", usage, groups),
        Table("latency", f"Call latency and time to first token by {options.by}", timing, groups),
        Table("top_traces", "Top traces by cost", [
            Column("trace_id", "Trace", "id"), Column("workflow", "Workflow"), Column("session_id", "Session", "id"),
            Column("calls", "Calls", "int"), Column("input_tokens", "In tok", "int"),
            Column("output_tokens", "Out tok", "int"), Column("cost_usd", "Cost $", "float"),
            Column("unpriced_calls", "Unpriced", "int")], top_traces),
        Table("top_sessions", "Top sessions by cost", [
            Column("session_id", "Session", "id"), Column("traces", "Traces", "int"), Column("calls", "Calls", "int"),
            Column("input_tokens", "In tok", "int"), Column("output_tokens", "Out tok", "int"),
            Column("cost_usd", "Cost $", "float"), Column("unpriced_calls", "Unpriced", "int")], top_sessions),
    ]
    notes = [f"bundled prices as of {as_of} (override in fabric.toml, docs/llm.md)"]
    notes += [f"{u['calls']} call(s) without cost: {u['note']}" for u in unpriced]
    if not totals.get("calls"):
        notes.insert(0, "no LLM calls in the selected traces")
    return Report(title="LLM usage and cost", tables=tables, data=data, notes=notes)
