"""``fabric report trust``: zones, crossings, findings per rule and workflow, and the trust map.

Everything is read from the derived views (``trust_spans``, ``trust_crossings``,
``findings``, ``traces``); refresh them first. The JSON document and the map
formats are documented field by field in docs/trust.md.

The map's data comes from :func:`trust_map`; its renderers are in
:mod:`fabric_trace.render.trustmap`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import duckdb

from fabric_trace.model import Column, Report, ReportFilter, Severity, Table

#: Trust finding kinds, in report order.
RULES: tuple[str, ...] = (
    "denied_tool_executed", "untrusted_input_to_privileged_tool", "unguarded_tool_call",
    "anonymous_privileged_action", "external_egress", "plaintext_crossing", "provider_egress",
)
#: Severities, most severe first (report order).
SEVERITIES: tuple[str, ...] = tuple(reversed(Severity.names()))
_SEV_RANK = "CASE severity " + " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(SEVERITIES)) + " END"
_RULE_RANK = "CASE kind " + " ".join(f"WHEN '{k}' THEN {i}" for i, k in enumerate(RULES)) + " ELSE 99 END"


@dataclass(frozen=True)
class TrustOptions:
    """Options of the trust report."""

    filter: ReportFilter = field(default_factory=ReportFilter)
    limit: int = 50
    """Findings listed (and crossing rows shown in the table formats)."""


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _select_traces(con: duckdb.DuckDBPyConnection, flt: ReportFilter) -> int:
    """Materialise the selected traces into temp table ``_trust_sel``; returns how many."""
    tf = flt.trace_sql("t")
    where, params = f"WHERE {tf.sql}", list(tf.params)
    if flt.where.sql != "TRUE":
        # a trace is selected when at least one of its spans matches --where
        where += f" AND t.trace_id IN (SELECT s.trace_id FROM spans s WHERE {flt.where.sql})"
        params += list(flt.where.params)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _trust_sel AS SELECT t.trace_id, t.workflow FROM traces t {where}",
                params)
    return int(con.execute("SELECT count(*) FROM _trust_sel").fetchone()[0])


def _pct(num: Any, den: Any) -> float | None:
    return None if not den else round(100.0 * float(num) / float(den), 2)


def _crossings(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    rows = _rows(con, """
        SELECT from_zone, any_value(from_kind) AS from_kind, to_zone, any_value(to_kind) AS to_kind,
               protocol, coalesce(operation, '') AS operation, count(*) AS calls,
               count(*) FILTER (WHERE error) AS errors,
               count(*) FILTER (WHERE identity_from AND identity_to) AS identity_both,
               count(*) FILTER (WHERE scheme = 'http') AS plaintext,
               list(DISTINCT crossing ORDER BY crossing) AS crossing_types
        FROM trust_crossings x JOIN _trust_sel USING (trace_id)
        GROUP BY from_zone, to_zone, protocol, coalesce(operation, '')
        ORDER BY calls DESC, from_zone, to_zone, protocol, operation
    """)
    for r in rows:
        r["error_rate_pct"] = _pct(r["errors"], r["calls"])
        r["identity_both_pct"] = _pct(r["identity_both"], r["calls"])
    return rows


def _by_rule(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    found = {r["kind"]: r for r in _rows(con, f"""
        SELECT kind, count(*) AS findings, count(DISTINCT trace_id) AS traces,
               {", ".join(f"count(*) FILTER (WHERE severity = '{s}') AS {s}" for s in SEVERITIES)}
        FROM findings JOIN _trust_sel USING (trace_id) WHERE analyzer = 'trust' GROUP BY kind
    """)}
    zero = {"findings": 0, "traces": 0, **{s: 0 for s in SEVERITIES}}
    return [{"kind": k, **{c: int(found.get(k, zero)[c]) for c in zero}} for k in RULES]


def _by_workflow(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return _rows(con, f"""
        SELECT s.workflow, kind, count(*) AS findings, count(DISTINCT f.trace_id) AS traces,
               arg_min(severity, {_SEV_RANK}) AS max_severity
        FROM findings f JOIN _trust_sel s USING (trace_id) WHERE analyzer = 'trust'
        GROUP BY s.workflow, kind ORDER BY s.workflow, min({_RULE_RANK})
    """)


def _findings(con: duckdb.DuckDBPyConnection, limit: int) -> tuple[list[dict[str, Any]], int]:
    total = int(con.execute("SELECT count(*) FROM findings JOIN _trust_sel USING (trace_id) "
                            "WHERE analyzer = 'trust'").fetchone()[0])
    rows = _rows(con, f"""
        SELECT severity, kind, s.workflow, f.trace_id, span_id, message, details
        FROM findings f JOIN _trust_sel s USING (trace_id) WHERE analyzer = 'trust'
        ORDER BY {_SEV_RANK}, {_RULE_RANK}, s.workflow, f.trace_id, span_id LIMIT ?
    """, [limit])
    for r in rows:
        r["details"] = json.loads(r["details"]) if r["details"] else None
    return rows, total


def _zones(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return _rows(con, """
        WITH sp AS (
            SELECT zone, any_value(zone_kind) AS kind, any_value(trust_level) AS level, count(*) AS spans,
                   list(DISTINCT service_name ORDER BY service_name) AS services
            FROM trust_spans JOIN _trust_sel USING (trace_id) GROUP BY zone
        ), x AS (SELECT x.* FROM trust_crossings x JOIN _trust_sel USING (trace_id)),
        ends AS (
            SELECT from_zone AS zone, from_kind AS kind, from_level AS level FROM x
            UNION ALL SELECT to_zone, to_kind, to_level FROM x
        ), allz AS (
            SELECT zone, any_value(kind) AS kind, any_value(level) AS level FROM (
                SELECT zone, kind, level FROM sp UNION ALL SELECT zone, kind, level FROM ends) GROUP BY zone
        )
        SELECT a.zone, a.kind, a.level AS trust_level, coalesce(sp.spans, 0) AS spans,
               coalesce(sp.services, []) AS services,
               (SELECT count(*) FROM x WHERE x.from_zone = a.zone) AS crossings_out,
               (SELECT count(*) FROM x WHERE x.to_zone = a.zone) AS crossings_in
        FROM allz a LEFT JOIN sp USING (zone)
        ORDER BY CASE a.kind WHEN 'user' THEN 0 WHEN 'internal' THEN 1 WHEN 'provider' THEN 2 ELSE 3 END, a.zone
    """)


def build_trust_report(con: duckdb.DuckDBPyConnection, options: TrustOptions | None = None) -> Report:
    """Build the trust report (derived tables must be fresh)."""
    options = options or TrustOptions()
    traces = _select_traces(con, options.filter)
    crossings = _crossings(con)
    by_rule = _by_rule(con)
    by_wf = _by_workflow(con)
    findings, total = _findings(con, options.limit)
    zones = _zones(con)
    data: dict[str, Any] = {
        "report": "trust",
        "traces": traces,
        "zones": zones,
        "crossings": crossings,
        "findings_by_rule": by_rule,
        "findings_by_workflow": by_wf,
        "findings": findings,
        "findings_total": total,
    }
    shown = crossings[: options.limit]
    tables = [
        Table("findings_by_rule", "Findings per rule", [
            Column("kind", "Rule"), Column("findings", "Findings", "int"), Column("traces", "Traces", "int"),
            *(Column(s, s.capitalize(), "int") for s in SEVERITIES),
        ], by_rule),
        Table("findings_by_workflow", "Findings per workflow", [
            Column("workflow", "Workflow"), Column("kind", "Rule"), Column("max_severity", "Severity"),
            Column("findings", "Findings", "int"), Column("traces", "Traces", "int"),
        ], by_wf),
        Table("crossings", "Zone crossings", [
            Column("from_zone", "From zone"), Column("to_zone", "To zone"), Column("to_kind", "To kind"),
            Column("protocol", "Protocol"), Column("operation", "Operation"), Column("calls", "Calls", "int"),
            Column("error_rate_pct", "Errors", "pct"), Column("identity_both_pct", "Identity both sides", "pct"),
            Column("plaintext", "http://", "int"),
        ], shown),
        Table("zones", "Zones", [
            Column("zone", "Zone"), Column("kind", "Kind"), Column("trust_level", "Trust"),
            Column("spans", "Spans", "int"), Column("crossings_out", "Out", "int"),
            Column("crossings_in", "In", "int"), Column("services", "Services"),
        ], zones),
        Table("findings", "Findings (most severe first)", [
            Column("severity", "Severity"), Column("kind", "Rule"), Column("workflow", "Workflow"),
            Column("trace_id", "Trace", "id"), Column("span_id", "Span", "id"), Column("message", "Message"),
        ], findings),
    ]
    notes = []
    if traces == 0:
        notes.append("no traces match the filters")
    if len(crossings) > len(shown):
        notes.append(f"{len(crossings) - len(shown):,} more crossing rows in --format json")
    if total > len(findings):
        notes.append(f"{total - len(findings):,} more findings: raise --limit, or query the findings view")
    return Report(title="Trust", tables=tables, data=data, notes=notes)


# -- the trust map ---------------------------------------------------------------------------------
def trust_map(con: duckdb.DuckDBPyConnection, flt: ReportFilter | None = None) -> dict[str, Any]:
    """The map as a JSON-ready dict: zones as nodes, crossings (by zone pair) as edges."""
    _select_traces(con, flt or ReportFilter())
    nodes = [{"id": z["zone"], "kind": z["kind"], "trust_level": z["trust_level"], "spans": z["spans"]}
             for z in _zones(con)]
    edges = _rows(con, """
        SELECT from_zone AS "from", to_zone AS "to", count(*) AS calls, count(*) FILTER (WHERE error) AS errors,
               count(*) FILTER (WHERE scheme = 'http') AS plaintext,
               count(*) FILTER (WHERE identity_from AND identity_to) AS identity_both,
               list(DISTINCT protocol ORDER BY protocol) AS protocols
        FROM trust_crossings JOIN _trust_sel USING (trace_id)
        GROUP BY from_zone, to_zone ORDER BY from_zone, to_zone
    """)
    return {"map": "trust", "nodes": nodes, "edges": edges}
