"""Trace browsing: the data behind ``fabric trace ls`` and ``fabric trace show``."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import duckdb

from fabric_trace.errors import UsageError
from fabric_trace.model import Column, Report, ReportFilter, Table
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
    sel = flt.selection_sql("t")
    sql = f"SELECT t.* FROM traces t WHERE {sel.sql} ORDER BY t.start_ns DESC, t.trace_id LIMIT ?"
    params: list[Any] = list(sel.params)
    params.append(limit)
    cur = con.execute(sql, params)
    cols = [d[0] for d in cur.description]
    rows = []
    for r in cur.fetchall():
        d = dict(zip(cols, r))
        rows.append({
            "trace_id": d["trace_id"], "root_name": d["root_name"], "workflow": d["workflow"],
            "start": _iso(d["start_ns"]), "start_ns": d["start_ns"],
            "duration_ms": None if d["duration_ns"] is None else round(d["duration_ns"] / 1e6, 3),
            "spans": d["span_count"],
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
        -- times after the repairs (an impossible time is placed, docs/critical-path.md 1b)
        SELECT s.span_id, s.parent_span_id, s.name, s.service_name, s.role, s.kind,
               coalesce(m.adjusted_start_ns, s.start_ns) AS start_ns, coalesce(m.adjusted_end_ns, s.end_ns) AS end_ns,
               s.status_code, s.status_message, s.model, s.provider, s.input_tokens, s.output_tokens,
               s.cached_input_tokens, s.peer, m.self_ns, m.on_critical_path_ns, m.depth,
               CASE WHEN s.status_code = 'ERROR' OR s.events LIKE '%"exception"%' THEN s.events END AS events,
               json_extract_string(s.attributes, '$."error.type"') AS error_type
        FROM span_store s LEFT JOIN span_metrics m USING (trace_id, span_id)
        WHERE s.trace_id = ? ORDER BY start_ns, s.span_id
        """,
        [tid],
    )
    cols = [d[0] for d in cur.description]
    spans = [dict(zip(cols, r)) for r in cur.fetchall()]
    starts = [sp["start_ns"] for sp in spans if sp["start_ns"] and sp["start_ns"] > 0]
    t0 = min(starts, default=0)
    for sp in spans:
        sp["start_offset_ns"] = sp["start_ns"] - t0 if sp["start_ns"] and sp["start_ns"] > 0 else None
        sp["exception"] = exception_of(sp.pop("events"))
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


def first_stack_line(stacktrace: str | None) -> str | None:
    """The first line of a stack trace that names a place in the code.

    Skips blank lines, Python's ``Traceback (most recent call last):`` header
    and a leading ``Type: message`` line (Java, .NET, Go), so that
    ``File "app.py", line 12, in handler`` or ``at com.acme.Handler.run(Handler.java:42)``
    is what remains.
    """
    if not stacktrace:
        return None
    lines = [line.strip() for line in str(stacktrace).splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            continue
        if index == 0 and len(lines) > 1 and not line.startswith(("File ", "at ")):
            continue  # "java.lang.IllegalStateException: boom" before the frames
        return line
    return None


def exception_of(events: Any) -> dict[str, Any] | None:
    """The first ``exception`` event of a span (OTel semantic conventions) as type, message, stack line."""
    if not events:
        return None
    import json

    try:
        items = json.loads(events) if isinstance(events, str) else events
    except ValueError:
        return None
    for event in items or ():
        if not isinstance(event, dict) or event.get("name") != "exception":
            continue
        attrs = event.get("attributes") or {}
        return {
            "type": attrs.get("exception.type"),
            "message": attrs.get("exception.message"),
            "stack_first_line": first_stack_line(attrs.get("exception.stacktrace")),
            "escaped": attrs.get("exception.escaped"),
        }
    return None


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
        "start_offset_ms": None if s["start_offset_ns"] is None else round(s["start_offset_ns"] / 1e6, 3),
        "status_message": s["status_message"], "exception": s["exception"],
        "model": s["model"], "provider": s["provider"], "input_tokens": s["input_tokens"],
        "output_tokens": s["output_tokens"], "cached_input_tokens": s["cached_input_tokens"],
    } for s in spans]
    summary = {k: v for k, v in trace["summary"].items() if k != "services"}
    summary["services"] = list(trace["summary"].get("services") or [])
    return Report(
        title=f"Trace {trace['trace_id']}",
        tables=[Table("spans", "Spans", [
            Column("span_id", "Span", "id"), Column("name", "Name"), Column("role", "Role"),
            Column("start_offset_ms", "Start", "ms"), Column("duration_ms", "Duration", "ms"),
            Column("self_ms", "Self", "ms"), Column("critical_ms", "Critical", "ms"), Column("status", "Status"),
            Column("service", "Service"), Column("kind", "Kind"), Column("parent_span_id", "Parent", "id"),
            Column("model", "Model"), Column("input_tokens", "In tok", "int"),
            Column("output_tokens", "Out tok", "int"), Column("status_message", "Status message"),
        ], [{**r, "exception": None} for r in rows])],
        data={"trace_id": trace["trace_id"], "summary": summary, "spans": rows, "findings": trace["findings"]},
    )


def resolve_span_id(con: duckdb.DuckDBPyConnection, trace_id: str, span_id: str) -> str:
    """The one span id of trace ``trace_id`` equal to, or starting with, ``span_id``."""
    sid = span_id.strip().lower()
    if not sid:
        raise UsageError("empty span id")
    rows = con.execute(
        "SELECT span_id, name FROM span_store WHERE trace_id = ? AND starts_with(span_id, ?) ORDER BY span_id",
        [trace_id, sid]).fetchall()
    exact = [r for r in rows if r[0] == sid]
    if exact or len(rows) == 1:
        return str((exact or rows)[0][0])
    if not rows:
        raise UsageError(f"no span {span_id!r} in trace {trace_id}", hint="list its spans with:",
                         command=("trace", "show", trace_id))
    lines = [f"  {r[0]}  {safe_text(r[1], 60)}" for r in rows[:_CANDIDATES]]
    if len(rows) > _CANDIDATES:
        lines.append(f"  ... and {len(rows) - _CANDIDATES:,} more")
    raise UsageError(f"span id prefix {span_id!r} is ambiguous in trace {trace_id}: it matches {len(rows):,} spans:\n"
                     + "\n".join(lines), hint="give more characters of the span id")


def _json(value: Any) -> Any:
    import json

    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def span_detail(con: duckdb.DuckDBPyConnection, trace_id: str, span_id: str) -> dict[str, Any]:
    """One span whole: every column of the ``spans`` view (attributes, resource and scope
    attributes, events, links parsed from JSON), its metrics, and its findings."""
    tid = resolve_trace_id(con, trace_id)
    sid = resolve_span_id(con, tid, span_id)
    cur = con.execute("SELECT * FROM spans WHERE trace_id = ? AND span_id = ?", [tid, sid])
    cols = [d[0] for d in cur.description]
    row = dict(zip(cols, cur.fetchone()))
    for key in ("attributes", "resource_attributes", "scope_attributes", "events", "links"):
        row[key] = _json(row.get(key))
    t0 = con.execute("SELECT min(start_ns) FROM span_store WHERE trace_id = ? AND start_ns > 0", [tid]).fetchone()[0]
    row["start_offset_ns"] = row["start_ns"] - t0 if t0 is not None and row["start_ns"] > 0 else None
    metrics = con.execute("SELECT self_ns, on_critical_path_ns, depth FROM span_metrics WHERE trace_id = ? "
                          "AND span_id = ?", [tid, sid]).fetchone()
    row["self_ns"], row["on_critical_path_ns"], row["depth"] = metrics if metrics else (None, None, None)
    row["exception"] = exception_of(row["events"])
    row["findings"] = [dict(zip(("analyzer", "kind", "severity", "message"), f)) for f in con.execute(
        "SELECT analyzer, kind, severity, message FROM findings WHERE trace_id = ? AND span_id = ? "
        "ORDER BY analyzer, kind", [tid, sid]).fetchall()]
    return row


def span_report(detail: dict[str, Any]) -> Report:
    """``fabric trace show TRACE --span SPAN`` as a report: the JSON document is ``detail``;
    the table formats list every field, attribute, event and link as key/value rows."""
    skip = {"attributes", "resource_attributes", "scope_attributes", "events", "links", "findings", "exception"}
    fields = [{"key": k, "value": v} for k, v in detail.items() if k not in skip]

    def pairs(name: str, title: str, mapping: Any) -> Table:
        rows = [{"key": k, "value": v} for k, v in sorted((mapping or {}).items())]
        return Table(name, title, [Column("key", "Key"), Column("value", "Value")], rows)

    events = [{"time_offset_ns": (e.get("time_ns") or 0) - (detail["start_ns"] or 0) if e.get("time_ns") else None,
               "name": e.get("name"), "attributes": e.get("attributes")} for e in detail.get("events") or ()]
    links = [{"trace_id": link.get("trace_id"), "span_id": link.get("span_id"), "attributes": link.get("attributes")}
             for link in detail.get("links") or ()]
    return Report(
        title=f"Span {detail['span_id']} of trace {detail['trace_id']}",
        tables=[
            Table("span", "Span", [Column("key", "Field"), Column("value", "Value")], fields),
            pairs("attributes", "Attributes", detail.get("attributes")),
            pairs("resource_attributes", "Resource attributes", detail.get("resource_attributes")),
            Table("events", "Events", [Column("time_offset_ns", "After start", "ns"), Column("name", "Name"),
                                       Column("attributes", "Attributes")], events),
            Table("links", "Links", [Column("trace_id", "Trace", "id"), Column("span_id", "Span", "id"),
                                     Column("attributes", "Attributes")], links),
            Table("findings", "Findings", [Column("severity", "Severity"), Column("kind", "Rule"),
                                           Column("analyzer", "Analyzer"), Column("message", "Message")],
                  detail.get("findings") or []),
        ],
        data=detail,
    )
