"""Load spans from the store as :class:`~fabric_trace.render.export.model.ExportSpan` records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import orjson

from fabric_trace.errors import UsageError
from fabric_trace.model import ReportFilter
from fabric_trace.render.export.model import ExportSpan

_COLUMNS = """
    s.trace_id, s.span_id, s.parent_span_id, s.name, coalesce(s.service_name, 'unknown_service') AS service,
    s.start_ns, s.end_ns, s.kind, s.role, s.status_code, s.status_message, CAST(s.attributes AS VARCHAR),
    CAST(s.events AS VARCHAR), CAST(s.links AS VARCHAR), s.resource_id, sc.name, sc.version, s.flags,
    coalesce(m.depth, 0), m.self_ns, m.on_critical_path_ns, s.input_tokens, s.output_tokens,
    s.cached_input_tokens
"""


def resolve_trace_id(con: duckdb.DuckDBPyConnection, trace_id: str) -> str:
    """The full id of ``trace_id`` (a full id or a unique prefix); UsageError if none or ambiguous."""
    tid = trace_id.strip().lower()
    if not tid:
        raise UsageError("empty trace id")
    if con.execute("SELECT 1 FROM traces WHERE trace_id = ?", [tid]).fetchone():
        return tid
    near = [r[0] for r in con.execute(
        "SELECT trace_id FROM traces WHERE starts_with(trace_id, ?) ORDER BY trace_id LIMIT 3", [tid]).fetchall()]
    if len(near) == 1:
        return near[0]
    if near:
        raise UsageError(f"trace id prefix {trace_id!r} is ambiguous ({', '.join(near[:2])}, ...)",
                         hint="give more characters of the id")
    raise UsageError(f"no trace {trace_id!r} in the database", hint="list traces with: fabric trace ls")


def select_trace_ids(con: duckdb.DuckDBPyConnection, flt: ReportFilter, limit: int | None = None) -> list[str]:
    """Trace ids matching ``flt``, oldest first (the first ``limit`` of them when given)."""
    sel = flt.selection_sql("t")
    sql = f"SELECT t.trace_id FROM traces t WHERE {sel.sql} ORDER BY t.start_ns, t.trace_id"
    params: list[Any] = list(sel.params)
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [r[0] for r in con.execute(sql, params).fetchall()]


def load_spans(con: duckdb.DuckDBPyConnection, trace_ids: Sequence[str]) -> list[ExportSpan]:
    """Every span of ``trace_ids`` with its resource attributes, self time and critical-path time."""
    if not trace_ids:
        return []
    con.execute("CREATE OR REPLACE TEMP TABLE _pic_ids (trace_id VARCHAR)")
    con.execute("INSERT INTO _pic_ids SELECT unnest(?::VARCHAR[])", [list(trace_ids)])
    rows = con.execute(f"""
        SELECT {_COLUMNS}
        FROM span_store s JOIN _pic_ids USING (trace_id)
        LEFT JOIN scopes sc USING (scope_id)
        LEFT JOIN span_metrics m USING (trace_id, span_id)
        ORDER BY s.trace_id, s.start_ns, s.span_id
    """).fetchall()
    resources = {rid: orjson.loads(attrs) for rid, attrs in con.execute("""
        SELECT resource_id, CAST(attributes AS VARCHAR) FROM resources
        WHERE resource_id IN (SELECT DISTINCT resource_id FROM span_store JOIN _pic_ids USING (trace_id))
    """).fetchall()}
    con.execute("DROP TABLE IF EXISTS _pic_ids")
    out = []
    for (tid, sid, parent, name, service, start, end, kind, role, code, msg, attrs, events, links, rid,
         scope_name, scope_version, flags, depth, self_ns, crit, tin, tout, tcached) in rows:
        out.append(ExportSpan(
            trace_id=tid, span_id=sid, parent_span_id=parent, name=name, service=service, start_ns=start,
            end_ns=end, kind=kind, role=role, status_code=code, status_message=msg,
            attributes=orjson.loads(attrs) if attrs else {}, events=orjson.loads(events) if events else [],
            links=orjson.loads(links) if links else [], resource=resources.get(rid, {}), resource_id=rid,
            scope_name=scope_name, scope_version=scope_version, flags=flags, depth=depth, self_ns=self_ns,
            critical_ns=crit, input_tokens=tin, output_tokens=tout, cached_input_tokens=tcached,
        ))
    return out
