"""Trace browsing: the data behind ``fabric trace ls`` and ``fabric trace show``."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import duckdb

from fabric_trace.errors import UsageError
from fabric_trace.filters import ReportFilter
from fabric_trace.render.report import Column, Report, Table


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + (
        f".{(ns % 1_000_000_000) // 1_000_000:03d}Z"
    )


def list_traces(con: duckdb.DuckDBPyConnection, flt: ReportFilter, limit: int = 20) -> Report:
    """The most recent traces (by start), newest first."""
    tf = flt.trace_sql("t")
    sql = f"SELECT t.* FROM traces t WHERE {tf.sql}"
    params: list[Any] = list(tf.params)
    if flt.where.sql != "TRUE":
        sql += f" AND t.trace_id IN (SELECT s.trace_id FROM spans s WHERE {flt.where.sql})"
        params += list(flt.where.params)
    sql += " ORDER BY t.start_ns DESC, t.trace_id LIMIT ?"
    params.append(limit)
    cur = con.execute(sql, params)
    cols = [d[0] for d in cur.description]
    rows = []
    for r in cur.fetchall():
        d = dict(zip(cols, r))
        rows.append({
            "trace_id": d["trace_id"], "root_name": d["root_name"], "workflow": d["workflow"],
            "start": _iso(d["start_ns"]), "start_ns": d["start_ns"],
            "duration_ms": round(d["duration_ns"] / 1e6, 3), "spans": d["span_count"],
            "errors": d["error_count"], "services": list(d["services"] or []),
            "incomplete": d["incomplete"], "repaired": d["repaired"],
        })
    table_rows = [{**r, "services": ", ".join(r["services"])} for r in rows]
    return Report(
        title="Traces",
        tables=[Table("traces", "Recent traces", [
            Column("trace_id", "Trace", "id"), Column("root_name", "Root"), Column("workflow", "Workflow"),
            Column("start", "Start (UTC)"), Column("duration_ms", "Duration", "ms"),
            Column("spans", "Spans", "int"), Column("errors", "Errors", "int"), Column("services", "Services"),
        ], table_rows)],
        data={"traces": rows},
    )


def load_trace(con: duckdb.DuckDBPyConnection, trace_id: str) -> dict[str, Any]:
    """One trace: its spans with self time and critical-path membership, and its repairs."""
    tid = trace_id.strip().lower()
    if not tid:
        raise UsageError("empty trace id")
    cur = con.execute(
        """
        SELECT s.span_id, s.parent_span_id, s.name, s.service_name, s.role, s.kind, s.start_ns, s.end_ns,
               s.status_code, s.status_message, s.model, s.peer, m.self_ns, m.on_critical_path_ns, m.depth
        FROM span_store s LEFT JOIN span_metrics m USING (trace_id, span_id)
        WHERE s.trace_id = ? ORDER BY s.start_ns, s.span_id
        """,
        [tid],
    )
    cols = [d[0] for d in cur.description]
    spans = [dict(zip(cols, r)) for r in cur.fetchall()]
    if not spans:
        near = con.execute("SELECT trace_id FROM traces WHERE trace_id LIKE ? || '%' ORDER BY trace_id LIMIT 2",
                           [tid]).fetchall()
        if len(near) == 1:
            return load_trace(con, near[0][0])
        raise UsageError(f"no trace {trace_id!r} in the database", hint="list traces with: fabric trace ls")
    summary = con.execute("SELECT * FROM traces WHERE trace_id = ?", [tid]).fetchone()
    scols = [d[0] for d in con.description] if summary else []
    findings = con.execute(
        "SELECT analyzer, kind, severity, span_id, message FROM findings WHERE trace_id = ? "
        "ORDER BY analyzer, kind, span_id", [tid]).fetchall()
    return {
        "trace_id": tid,
        "summary": dict(zip(scols, summary)) if summary else {},
        "spans": spans,
        "critical": {s["span_id"] for s in spans if (s["on_critical_path_ns"] or 0) > 0},
        "self_ns": {s["span_id"]: s["self_ns"] for s in spans if s["self_ns"] is not None},
        "findings": [dict(zip(("analyzer", "kind", "severity", "span_id", "message"), f)) for f in findings],
    }


def trace_report(trace: dict[str, Any]) -> Report:
    """A trace as a report (the json/csv/markdown forms of ``fabric trace show``)."""
    spans = trace["spans"]
    rows = [{
        "span_id": s["span_id"], "parent_span_id": s["parent_span_id"], "name": s["name"],
        "service": s["service_name"], "role": s["role"], "kind": s["kind"], "start_ns": s["start_ns"],
        "duration_ms": round((s["end_ns"] - s["start_ns"]) / 1e6, 3),
        "self_ms": None if s["self_ns"] is None else round(s["self_ns"] / 1e6, 3),
        "critical_ms": None if s["on_critical_path_ns"] is None else round(s["on_critical_path_ns"] / 1e6, 3),
        "status": s["status_code"], "depth": s["depth"],
    } for s in spans]
    summary = {k: v for k, v in trace["summary"].items() if k != "services"}
    summary["services"] = list(trace["summary"].get("services") or [])
    return Report(
        title=f"Trace {trace['trace_id']}",
        tables=[Table("spans", "Spans", [
            Column("span_id", "Span", "id"), Column("parent_span_id", "Parent", "id"), Column("name", "Name"),
            Column("service", "Service"), Column("role", "Role"), Column("kind", "Kind"),
            Column("duration_ms", "Duration", "ms"), Column("self_ms", "Self", "ms"),
            Column("critical_ms", "Critical", "ms"), Column("status", "Status"),
        ], rows)],
        data={"trace_id": trace["trace_id"], "summary": summary, "spans": rows, "findings": trace["findings"]},
    )
