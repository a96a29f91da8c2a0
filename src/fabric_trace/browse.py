"""Trace browsing: the data behind ``fabric trace ls`` and ``fabric trace show``."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import duckdb

from fabric_trace.errors import UsageError
from fabric_trace.filters import ReportFilter
from fabric_trace.render.report import Column, Report, Table
from fabric_trace.render.sanitize import safe_text


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + (
        f".{(ns % 1_000_000_000) // 1_000_000:03d}Z"
    )


def _table_time(iso: str | None) -> str | None:
    """``2026-01-01T00:02:20.775Z`` -> ``2026-01-01 00:02:20`` (the table; JSON keeps milliseconds)."""
    return None if iso is None else iso[:19].replace("T", " ")


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
    # the table: labels, then numbers, then the rest (a narrow terminal drops from the right)
    table_rows = [{**r, "services": ", ".join(r["services"]), "start": _table_time(r["start"])} for r in rows]
    return Report(
        title="Traces",
        tables=[Table("traces", "Recent traces", [
            Column("trace_id", "Trace", "id"), Column("workflow", "Workflow"), Column("root_name", "Root"),
            Column("duration_ms", "Duration", "ms"), Column("spans", "Spans", "int"), Column("errors", "Errors", "int"),
            Column("start", "Start (UTC)"), Column("services", "Services"),
        ], table_rows)],
        data={"traces": rows},
    )


#: Candidates listed when a trace-id prefix is ambiguous.
_CANDIDATES = 10


def resolve_trace_id(con: duckdb.DuckDBPyConnection, trace_id: str) -> str:
    """The one stored trace id equal to, or starting with, ``trace_id``.

    Raises :class:`UsageError` when no trace matches, or when the prefix matches
    several (the message lists up to ten candidates with their root span).
    """
    tid = trace_id.strip().lower()
    if not tid:
        raise UsageError("empty trace id")
    exact = con.execute("SELECT trace_id FROM traces WHERE trace_id = ?", [tid]).fetchone()
    if exact:
        return str(exact[0])
    total, = con.execute("SELECT count(*) FROM traces WHERE starts_with(trace_id, ?)", [tid]).fetchone()
    if total == 1:
        return str(con.execute("SELECT trace_id FROM traces WHERE starts_with(trace_id, ?)", [tid]).fetchone()[0])
    if total == 0:
        raise UsageError(f"no trace {trace_id!r} in the database", hint="list traces with:", command=("trace", "ls"))
    rows = con.execute(
        "SELECT trace_id, root_name, workflow FROM traces WHERE starts_with(trace_id, ?) ORDER BY trace_id LIMIT ?",
        [tid, _CANDIDATES]).fetchall()
    lines = [f"  {r[0]}  {safe_text(r[1] or '', 60)}" + (f"  ({safe_text(r[2], 40)})" if r[2] else "") for r in rows]
    if total > len(rows):
        lines.append(f"  ... and {total - len(rows):,} more")
    raise UsageError(f"trace id prefix {trace_id!r} is ambiguous: it matches {total:,} traces:\n" + "\n".join(lines),
                     hint="give more characters of the trace id")


def load_trace(con: duckdb.DuckDBPyConnection, trace_id: str) -> dict[str, Any]:
    """One trace: its spans with self time and critical-path membership, and its repairs."""
    tid = resolve_trace_id(con, trace_id)
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
