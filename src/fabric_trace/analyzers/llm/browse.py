"""``fabric session ls`` and ``fabric session show``: sessions as reports (docs/llm.md, "Sessions").

Both read the ``sessions``, ``session_turns``, ``llm_calls`` and latency views of a
refreshed store and return a :class:`~fabric_trace.model.Report`; the CLI renders it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import duckdb

from fabric_trace.errors import UsageError
from fabric_trace.model import Column, Report, Table
from fabric_trace.analyzers.units import ms as _ms

#: Candidates listed when a session-id prefix is ambiguous.
_CANDIDATES = 10
#: Roles named in a turn's critical-path summary.
_SUMMARY_ROLES = 3


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + (
        f".{(ns % 1_000_000_000) // 1_000_000:03d}Z")


def _usd(x: Any) -> float | None:
    return None if x is None else round(float(x), 9)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _session_row(r: dict[str, Any]) -> dict[str, Any]:
    return {"session_id": r["session_id"], "user_id": r["user_id"], "traces": r["traces"], "spans": r["spans"],
            "start": _iso(r["start_ns"]), "start_ns": r["start_ns"], "duration_ms": _ms(r["duration_ns"]),
            "idle_ms": _ms(r["idle_ns"]), "llm_calls": r["llm_calls"], "input_tokens": r["input_tokens"],
            "output_tokens": r["output_tokens"], "cost_usd": _usd(r["cost_usd"]),
            "unpriced_calls": r["unpriced_calls"], "errors": r["errors"], "findings": r["findings"]}


_SESSION_COLUMNS = [
    Column("session_id", "Session", "id"), Column("user_id", "User"), Column("traces", "Turns", "int"),
    Column("duration_ms", "Duration", "ms"), Column("llm_calls", "LLM calls", "int"),
    Column("input_tokens", "In tok", "int"), Column("output_tokens", "Out tok", "int"),
    Column("cost_usd", "Cost $", "float"), Column("errors", "Errors", "int"), Column("findings", "Findings", "int"),
    Column("start", "Start (UTC)"),
]


def list_sessions(con: duckdb.DuckDBPyConnection, limit: int = 20, user: str | None = None,
                  since_ns: int | None = None, until_ns: int | None = None) -> Report:
    """The most recent sessions (by first start), newest first."""
    where, params = ["TRUE"], []
    for cond, value in (("user_id = ?", user), ("start_ns >= ?", since_ns), ("start_ns < ?", until_ns)):
        if value is not None:
            where.append(cond)
            params.append(value)
    rows = [_session_row(r) for r in _rows(
        con, f"SELECT * FROM sessions WHERE {' AND '.join(where)} ORDER BY start_ns DESC, session_id LIMIT ?",
        [*params, limit])]
    table = [{**r, "start": r["start"][:19].replace("T", " ") if r["start"] else None} for r in rows]
    notes = [] if rows else ["no sessions: no trace names a session id (docs/llm.md, Sessions)"]
    return Report("Sessions", [Table("sessions", "Recent sessions", _SESSION_COLUMNS, table)], {"sessions": rows},
                  notes)


def resolve_session_id(con: duckdb.DuckDBPyConnection, session_id: str) -> str:
    """The one session id equal to, or starting with, ``session_id`` (:class:`UsageError` otherwise)."""
    sid = session_id.strip()
    if not sid:
        raise UsageError("empty session id")
    if con.execute("SELECT 1 FROM sessions WHERE session_id = ?", [sid]).fetchone():
        return sid
    hits = [r[0] for r in con.execute(
        "SELECT session_id FROM sessions WHERE starts_with(session_id, ?) ORDER BY session_id LIMIT ?",
        [sid, _CANDIDATES + 1]).fetchall()]
    if len(hits) == 1:
        return str(hits[0])
    if not hits:
        raise UsageError(f"no session {session_id!r} in the database", hint="list sessions with:",
                         command=("session", "ls"))
    listed = "\n".join(f"  {h}" for h in hits[:_CANDIDATES]) + ("\n  ..." if len(hits) > _CANDIDATES else "")
    raise UsageError(f"session id prefix {session_id!r} is ambiguous:\n{listed}",
                     hint="give more characters of the session id")


def _critical_summary(con: duckdb.DuckDBPyConnection, session_id: str) -> dict[str, str]:
    """Per trace of the session: its critical path by role, the largest shares first (``llm 60%, tool 25%``)."""
    rows = _rows(con, """
        SELECT s.trace_id, coalesce(s.role, '(none)') AS role, sum(s.end_ns - s.start_ns) AS ns,
               any_value(t.duration_ns) AS total
        FROM latency_segments s JOIN latency_traces t ON t.trace_id = s.trace_id AND t.root_span_id = s.root_span_id
        WHERE t.trace_id IN (SELECT trace_id FROM session_turns WHERE session_id = ?)
        GROUP BY ALL ORDER BY s.trace_id, ns DESC, role
    """, [session_id])
    parts: dict[str, list[str]] = {}
    for r in rows:
        shares = parts.setdefault(r["trace_id"], [])
        if len(shares) < _SUMMARY_ROLES and r["total"]:
            shares.append(f"{r['role']} {round(100.0 * r['ns'] / r['total'])}%")
    return {k: ", ".join(v) for k, v in parts.items()}


def _path(turns: list[dict[str, Any]], origin: int) -> list[dict[str, Any]]:
    """The session's critical path across turns as segments (the rule of :mod:`.sessions`)."""
    out: list[dict[str, Any]] = []
    ordered = sorted(turns, key=lambda t: (t["start_ns"], t["trace_id"]))
    if not ordered:
        return out
    cursor, i, n = ordered[0]["start_ns"], 0, len(ordered)
    while i < n:
        best: dict[str, Any] | None = None
        while i < n and ordered[i]["start_ns"] <= cursor:
            if ordered[i]["end_ns"] > (best["end_ns"] if best else cursor):
                best = ordered[i]
            i += 1
        if best is None:
            if i < n:
                out.append({"what": "idle", "turn": None, "trace_id": None, "from_ms": _ms(cursor - origin),
                            "to_ms": _ms(ordered[i]["start_ns"] - origin),
                            "duration_ms": _ms(ordered[i]["start_ns"] - cursor)})
                cursor = ordered[i]["start_ns"]
            continue
        out.append({"what": f"turn {best['turn']}", "turn": best["turn"], "trace_id": best["trace_id"],
                    "from_ms": _ms(cursor - origin), "to_ms": _ms(best["end_ns"] - origin),
                    "duration_ms": _ms(best["end_ns"] - cursor)})
        cursor = best["end_ns"]
    return out


def show_session(con: duckdb.DuckDBPyConnection, session_id: str) -> Report:
    """One session: its summary, its turns as a timeline, its LLM calls and its critical path across turns."""
    sid = resolve_session_id(con, session_id)
    (summary,) = [_session_row(r) for r in _rows(con, "SELECT * FROM sessions WHERE session_id = ?", [sid])]
    origin = summary["start_ns"]
    cp = _critical_summary(con, sid)
    turns = _rows(con, "SELECT * FROM session_turns WHERE session_id = ? ORDER BY turn", [sid])
    turn_of = {t["trace_id"]: t["turn"] for t in turns}
    turn_rows = [{
        "turn": t["turn"], "trace_id": t["trace_id"], "workflow": t["workflow"], "start": _iso(t["start_ns"]),
        "offset_ms": _ms(t["start_ns"] - origin), "gap_ms": _ms(t["gap_ns"]), "duration_ms": _ms(t["duration_ns"]),
        "session_path_ms": _ms(t["session_path_ns"]), "critical_path": cp.get(t["trace_id"], ""),
        "llm_calls": t["llm_calls"], "cost_usd": _usd(t["cost_usd"]), "errors": t["errors"],
        "findings": t["findings"]} for t in turns]
    calls = [{
        "turn": turn_of.get(c["trace_id"]), "trace_id": c["trace_id"], "span_id": c["span_id"],
        "offset_ms": _ms(c["start_ns"] - origin), "operation": c["operation"], "model": c["model"],
        "input_tokens": c["input_tokens"], "output_tokens": c["output_tokens"],
        "cached_input_tokens": c["cached_input_tokens"], "cost_usd": _usd(c["cost_usd"]),
        "duration_ms": _ms(c["duration_ns"]), "status_code": c["status_code"]}
        for c in _rows(con, "SELECT * FROM llm_calls WHERE session_id = ? ORDER BY start_ns, span_id", [sid])]
    path = _path(turns, origin)
    tables = [
        Table("session", f"Session {sid}", _SESSION_COLUMNS[:-1] + [Column("idle_ms", "Idle", "ms")],
              [summary]),
        Table("turns", "Turns (timeline)", [
            Column("turn", "Turn", "int"), Column("trace_id", "Trace", "id"), Column("workflow", "Workflow"),
            Column("offset_ms", "At", "ms"), Column("gap_ms", "Gap", "ms"), Column("duration_ms", "Duration", "ms"),
            Column("critical_path", "Critical path"), Column("llm_calls", "LLM calls", "int"),
            Column("cost_usd", "Cost $", "float"), Column("findings", "Findings", "int")], turn_rows),
        Table("calls", "LLM calls", [
            Column("turn", "Turn", "int"), Column("offset_ms", "At", "ms"), Column("operation", "Operation"),
            Column("model", "Model"), Column("input_tokens", "In tok", "int"), Column("output_tokens", "Out tok", "int"),
            Column("cost_usd", "Cost $", "float"), Column("duration_ms", "Duration", "ms"),
            Column("status_code", "Status")], calls),
        Table("path", "Critical path across turns", [
            Column("what", "Segment"), Column("trace_id", "Trace", "id"), Column("from_ms", "From", "ms"),
            Column("to_ms", "To", "ms"), Column("duration_ms", "Duration", "ms")], path),
    ]
    data = {"session": summary, "turns": turn_rows, "calls": calls, "path": path}
    return Report(f"Session {sid}", tables, data)
