"""The data of ``fabric report html``: aggregates from SQL, a few traces sampled for waterfalls.

Every number is computed by a rule documented in docs/html-report.md. The
traces are selected once into a temporary table (``_html_sel``) by the report
filters; every aggregate joins it. Only the sampled traces' spans are loaded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import duckdb

from fabric_trace.model import ReportFilter
from fabric_trace.pictures.spans import load_spans, select_trace_ids
from fabric_trace.render.export.model import ExportSpan

SEVERITIES = ("critical", "high", "medium", "low", "info")
_SEV_RANK = "CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 WHEN 'low' THEN 3 ELSE 4 END"


@dataclass
class HtmlOptions:
    """What ``fabric report html`` draws."""

    filter: ReportFilter = field(default_factory=ReportFilter)
    slowest: int = 10
    """Waterfalls of the slowest traces (over all selected workflows)."""
    max_waterfalls: int = 20
    """At most this many waterfalls in all (slowest, one median per workflow, finding examples)."""
    max_spans: int = 400
    """Spans drawn per waterfall; the rest of a bigger trace is listed as elided."""
    max_findings: int = 100
    """Rows of the per-finding table (findings of the drawn traces)."""
    histogram_bins: int = 24
    title: str = "fabric report"


@dataclass
class Waterfall:
    """One trace to draw."""

    trace_id: str
    workflow: str
    reasons: list[str]
    summary: dict[str, Any]
    spans: list[ExportSpan]
    segments: list[tuple[str, int, int]]
    """Main critical-path segments: (span_id, start_ns, end_ns)."""
    findings: list[dict[str, Any]]
    elided: int = 0


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _has(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND NOT internal",
                            [name]).fetchone()[0] or con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]).fetchone()[0])


def select(con: duckdb.DuckDBPyConnection, flt: ReportFilter) -> int:
    """Put the selected trace ids into ``_html_sel``; returns how many."""
    ids = select_trace_ids(con, flt)
    con.execute("CREATE OR REPLACE TEMP TABLE _html_sel AS SELECT unnest(?::VARCHAR[]) AS trace_id", [ids])
    return len(ids)


def overview(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Counts and the time window of the selection."""
    r = _rows(con, """
        SELECT count(*) AS traces, coalesce(sum(span_count), 0) AS spans, min(start_ns) AS start_ns,
               max(end_ns) AS end_ns, count(*) FILTER (WHERE has_error) AS error_traces,
               count(DISTINCT workflow) AS workflows
        FROM traces JOIN _html_sel USING (trace_id)""")[0]
    return r


def workflows(con: duckdb.DuckDBPyConnection, bins: int) -> list[dict[str, Any]]:
    """Per workflow: percentiles, a log-scale histogram, p50/p95 over time, critical path by role."""
    wfs = _rows(con, """
        SELECT workflow, count(*) AS traces, count(*) FILTER (WHERE has_error) AS error_traces,
               quantile_cont(duration_ns, 0.5) AS p50_ns, quantile_cont(duration_ns, 0.95) AS p95_ns,
               quantile_cont(duration_ns, 0.99) AS p99_ns, min(duration_ns) AS min_ns, max(duration_ns) AS max_ns,
               min(start_ns) AS first_ns, max(start_ns) AS last_ns
        FROM traces JOIN _html_sel USING (trace_id) GROUP BY workflow
        HAVING count(duration_ns) > 0  -- traces of unknown extent are left out (docs/critical-path.md, 1b)
        ORDER BY p95_ns DESC, workflow""")
    hist = _rows(con, f"""
        WITH t AS (SELECT workflow, greatest(duration_ns, 1) AS d FROM traces JOIN _html_sel USING (trace_id)
                   WHERE duration_ns IS NOT NULL),
        r AS (SELECT workflow, ln(min(d)) AS lo, ln(max(d)) AS hi FROM t GROUP BY workflow)
        SELECT workflow, least({bins - 1}, CASE WHEN hi > lo THEN floor((ln(d) - lo) / (hi - lo) * {bins})::BIGINT
                                             ELSE 0 END) AS bin, count(*) AS n, min(lo) AS lo, min(hi) AS hi
        FROM t JOIN r USING (workflow) GROUP BY ALL ORDER BY workflow, bin""")
    over_time = _rows(con, """
        WITH t AS (SELECT workflow, start_ns, duration_ns FROM traces JOIN _html_sel USING (trace_id)
                   WHERE duration_ns IS NOT NULL),
        r AS (SELECT workflow, min(start_ns) AS lo, max(start_ns) AS hi FROM t GROUP BY workflow)
        SELECT workflow, least(19, CASE WHEN hi > lo THEN floor((start_ns - lo) / (hi - lo) * 20)::BIGINT ELSE 0 END)
               AS bucket, count(*) AS n, quantile_cont(duration_ns, 0.5) AS p50_ns,
               quantile_cont(duration_ns, 0.95) AS p95_ns, min(start_ns) AS bucket_start_ns
        FROM t JOIN r USING (workflow) GROUP BY ALL ORDER BY workflow, bucket""")
    by_role = _rows(con, """
        WITH tr AS (SELECT t.trace_id, t.workflow, t.root_span_id, t.duration_ns,
                           t.duration_ns >= quantile_cont(t.duration_ns, 0.95) OVER (PARTITION BY t.workflow) AS slow
                    FROM traces t JOIN _html_sel USING (trace_id) WHERE t.duration_ns IS NOT NULL),
        seg AS (SELECT tr.workflow, tr.trace_id, tr.slow, s.role, c.duration_ns
                FROM critical_path c JOIN tr ON c.trace_id = tr.trace_id AND c.root_span_id = tr.root_span_id
                JOIN span_store s ON s.trace_id = c.trace_id AND s.span_id = c.span_id),
        n AS (SELECT workflow, count(*) AS n_all, count(*) FILTER (WHERE slow) AS n_slow FROM tr GROUP BY workflow)
        SELECT seg.workflow, role, sum(duration_ns) / any_value(n_all) AS mean_all_ns,
               coalesce(sum(duration_ns) FILTER (WHERE slow), 0) / greatest(any_value(n_slow), 1) AS mean_slow_ns
        FROM seg JOIN n USING (workflow) GROUP BY ALL ORDER BY seg.workflow, mean_all_ns DESC, role""")
    for w in wfs:
        name = w["workflow"]
        w["histogram"] = [h for h in hist if h["workflow"] == name]
        w["over_time"] = [b for b in over_time if b["workflow"] == name]
        w["by_role"] = [b for b in by_role if b["workflow"] == name]
    return wfs


def locality(con: duckdb.DuckDBPyConnection, n_traces: int, top: int = 12) -> list[dict[str, Any]]:
    """Per store: critical-path time inside misses and remote accesses (split so the parts add up)."""
    if not _has(con, "locality_accesses"):
        return []
    rows = _rows(con, """
        SELECT store, any_value(access_type) AS access_type, count(*) AS accesses,
               count(*) FILTER (WHERE outcome = 'miss') AS misses,
               count(*) FILTER (WHERE outcome IN ('hit', 'miss')) AS reported,
               count(*) FILTER (WHERE remote IN ('cross_zone', 'cross_region')) AS remote,
               coalesce(sum(critical_ns) FILTER (WHERE outcome = 'miss' AND remote NOT IN ('cross_zone', 'cross_region')), 0)
                   AS miss_local_ns,
               coalesce(sum(critical_ns) FILTER (WHERE outcome = 'miss' AND remote IN ('cross_zone', 'cross_region')), 0)
                   AS miss_remote_ns,
               coalesce(sum(critical_ns) FILTER (WHERE outcome <> 'miss' AND remote IN ('cross_zone', 'cross_region')), 0)
                   AS remote_only_ns,
               coalesce(sum(critical_ns), 0) AS critical_ns
        FROM locality_accesses JOIN _html_sel USING (trace_id)
        GROUP BY store""")
    for r in rows:
        r["cost_ns"] = r["miss_local_ns"] + r["miss_remote_ns"] + r["remote_only_ns"]
        r["per_trace_ns"] = r["cost_ns"] / n_traces if n_traces else 0
    rows.sort(key=lambda r: (-r["cost_ns"], -r["accesses"], r["store"]))
    return rows[:top]


def trust(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Zones (nodes) and crossings by zone pair (edges); an edge is risky if a call was plaintext http
    or one of its crossings touches a span with a trust finding of severity medium or above."""
    if not _has(con, "trust_crossings"):
        return {"nodes": [], "edges": []}
    nodes = _rows(con, """
        SELECT zone AS id, any_value(zone_kind) AS kind, any_value(trust_level) AS trust_level, count(*) AS spans
        FROM trust_spans JOIN _html_sel USING (trace_id) GROUP BY zone ORDER BY zone""")
    edges = _rows(con, """
        WITH risky AS (
            SELECT DISTINCT trace_id, span_id FROM findings JOIN _html_sel USING (trace_id)
            WHERE analyzer = 'trust' AND severity IN ('medium', 'high', 'critical'))
        SELECT c.from_zone AS "from", any_value(c.from_kind) AS from_kind, c.to_zone AS "to",
               any_value(c.to_kind) AS to_kind, count(*) AS calls,
               count(*) FILTER (WHERE c.error) AS errors,
               count(*) FILTER (WHERE c.scheme = 'http') AS plaintext,
               count(*) FILTER (WHERE r1.span_id IS NOT NULL OR r2.span_id IS NOT NULL) AS flagged,
               list(DISTINCT c.protocol ORDER BY c.protocol) AS protocols
        FROM trust_crossings c JOIN _html_sel USING (trace_id)
        LEFT JOIN risky r1 ON r1.trace_id = c.trace_id AND r1.span_id = c.parent_span_id
        LEFT JOIN risky r2 ON r2.trace_id = c.trace_id AND r2.span_id = c.child_span_id
        GROUP BY c.from_zone, c.to_zone ORDER BY c.from_zone, c.to_zone""")
    known = {n["id"] for n in nodes}
    for e in edges:
        e["risky"] = bool(e["plaintext"] or e["flagged"])
        for end, kind in ((e["from"], e["from_kind"]), (e["to"], e["to_kind"])):
            if end not in known:  # peers without spans (external hosts, users) are zones too
                known.add(end)
                nodes.append({"id": end, "kind": kind, "trust_level": None, "spans": 0})
    return {"nodes": nodes, "edges": edges}


def finding_kinds(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """One row per (analyzer, kind, severity) with counts and the example (longest trace) to draw."""
    return _rows(con, f"""
        WITH f AS (SELECT f.*, t.duration_ns FROM findings f JOIN _html_sel USING (trace_id)
                   JOIN traces t USING (trace_id))
        SELECT analyzer, kind, severity, count(*) AS findings, count(DISTINCT trace_id) AS traces,
               arg_max(trace_id, duration_ns) AS example_trace, arg_max(span_id, duration_ns) AS example_span,
               arg_max(message, duration_ns) AS example_message, min({_SEV_RANK}) AS rank
        FROM f GROUP BY analyzer, kind, severity ORDER BY rank, findings DESC, analyzer, kind""")


def pick_traces(con: duckdb.DuckDBPyConnection, wfs: list[dict[str, Any]], kinds: list[dict[str, Any]],
                opt: HtmlOptions) -> dict[str, list[str]]:
    """Trace id -> why it is drawn: the slowest, the median of each workflow, then finding examples."""
    picked: dict[str, list[str]] = {}

    def add(tid: str | None, why: str) -> None:
        if tid is None:
            return
        if tid in picked:
            picked[tid].append(why)
        elif len(picked) < opt.max_waterfalls:
            picked[tid] = [why]

    for w in wfs:
        row = con.execute("""
            SELECT trace_id FROM traces JOIN _html_sel USING (trace_id) WHERE workflow = ?
            ORDER BY abs(duration_ns - ?) NULLS LAST, trace_id LIMIT 1""", [w["workflow"], w["p50_ns"]]).fetchone()
        add(row[0] if row else None, f"median of {w['workflow']}")
    slow = con.execute("""SELECT trace_id, workflow FROM traces JOIN _html_sel USING (trace_id)
                          ORDER BY duration_ns DESC NULLS LAST, trace_id LIMIT ?""", [opt.slowest]).fetchall()
    for rank, (tid, wf) in enumerate(slow, 1):
        add(tid, f"slowest #{rank}")
    for k in kinds:
        add(k["example_trace"], f"example of {k['analyzer']}/{k['kind']}")
    return picked


def waterfalls(con: duckdb.DuckDBPyConnection, picked: dict[str, list[str]], opt: HtmlOptions) -> list[Waterfall]:
    """Load the picked traces' spans, main critical-path segments and findings."""
    ids = list(picked)
    if not ids:
        return []
    spans = load_spans(con, ids)
    by_trace: dict[str, list[ExportSpan]] = {t: [] for t in ids}
    for s in spans:
        by_trace[s.trace_id].append(s)
    summaries = {r["trace_id"]: r for r in _rows(con, """
        SELECT trace_id, workflow, root_span_id, root_name, root_service, start_ns, duration_ns, span_count,
               error_count, incomplete, repaired FROM traces WHERE trace_id IN (SELECT unnest(?::VARCHAR[]))""", [ids])}
    segs: dict[str, list[tuple[str, int, int]]] = {t: [] for t in ids}
    for tid, sid, a, b in con.execute("""
        SELECT c.trace_id, c.span_id, c.start_ns, c.end_ns FROM critical_path c JOIN traces t
        ON c.trace_id = t.trace_id AND c.root_span_id = t.root_span_id
        WHERE c.trace_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY c.trace_id, c.start_ns""", [ids]).fetchall():
        segs[tid].append((sid, a, b))
    finds: dict[str, list[dict[str, Any]]] = {t: [] for t in ids}
    for f in _rows(con, f"""
        SELECT trace_id, span_id, analyzer, kind, severity, message FROM findings
        WHERE trace_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY trace_id, {_SEV_RANK}, analyzer, kind, span_id""",
                   [ids]):
        finds[f["trace_id"]].append(f)
    out = []
    for tid in ids:
        summary = summaries.get(tid, {})
        out.append(Waterfall(tid, summary.get("workflow") or "", picked[tid], summary, by_trace[tid], segs[tid],
                             finds[tid]))
    return out


def findings_table(waterfalls_: list[Waterfall], limit: int) -> tuple[list[dict[str, Any]], int]:
    """The findings of the drawn traces, most severe first; returns (rows, how many were left out)."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    rows = [f for w in waterfalls_ for f in w.findings]
    rows.sort(key=lambda f: (rank.get(f["severity"], 9), f["analyzer"], f["kind"], f["trace_id"], f["span_id"] or ""))
    return rows[:limit], max(0, len(rows) - limit)


def collect(con: duckdb.DuckDBPyConnection, opt: HtmlOptions) -> dict[str, Any]:
    """Everything the HTML report shows, as plain data."""
    t0 = time.perf_counter()
    n = select(con, opt.filter)
    data: dict[str, Any] = {"overview": overview(con), "options": opt}
    data["workflows"] = workflows(con, opt.histogram_bins) if n else []
    data["locality"] = locality(con, n) if n else []
    data["trust"] = trust(con) if n else {"nodes": [], "edges": []}
    data["finding_kinds"] = finding_kinds(con) if n else []
    picked = pick_traces(con, data["workflows"], data["finding_kinds"], opt) if n else {}
    data["waterfalls"] = waterfalls(con, picked, opt)
    data["findings"], data["findings_left_out"] = findings_table(data["waterfalls"], opt.max_findings)
    data["total_findings"] = sum(k["findings"] for k in data["finding_kinds"])
    con.execute("DROP TABLE IF EXISTS _html_sel")
    data["collect_seconds"] = time.perf_counter() - t0
    return data


def summary(data: dict[str, Any]) -> list[dict[str, str]]:
    """What to look at first, in a few lines (rules in docs/html-report.md); each line links to its section."""
    from fabric_trace.render.html.fmt import ms, pct

    out: list[dict[str, str]] = []
    ov, wfs = data["overview"], data["workflows"]
    n = ov["traces"]
    if not n:
        return [{"text": "No trace matches the filters.", "href": "#top"}]
    if wfs:
        k, w = max(enumerate(wfs), key=lambda kw: (kw[1]["p95_ns"], kw[1]["workflow"]))
        roles = w["by_role"]
        total = sum(r["mean_all_ns"] for r in roles)
        lead = max(roles, key=lambda r: r["mean_all_ns"]) if roles else None
        text = (f"Slowest workflow: {w['workflow']} — p95 {ms(w['p95_ns'])}, p50 {ms(w['p50_ns'])} over "
                f"{w['traces']:,} traces")
        if lead and total:
            text += f"; {pct(lead['mean_all_ns'], total)} of its critical path is {lead['role']}"
        out.append({"text": text + ".", "href": f"#workflow-{k}"})
    slow = next((wf for wf in data["waterfalls"] if any(r.startswith("slowest #1") for r in wf.reasons)), None)
    if slow is not None:
        out.append({"text": f"Slowest trace: {slow.trace_id[:16]}… ({slow.workflow}) took "
                            f"{ms(slow.summary.get('duration_ns'))}: open its waterfall.",
                    "href": f"#wf-{slow.trace_id}"})
    if ov["error_traces"]:
        out.append({"text": f"{ov['error_traces']:,} of {n:,} traces ({pct(ov['error_traces'], n)}) have a span "
                            "with status ERROR.", "href": "#workflows"})
    costly = [s for s in data["locality"] if s["cost_ns"] > 0]
    if costly:
        s = costly[0]
        out.append({"text": f"State: misses and remote accesses at {s['store']} cost {ms(s['per_trace_ns'])} per "
                            f"trace on the critical path ({s['misses']:,} misses, {s['remote']:,} remote of "
                            f"{s['accesses']:,} accesses).", "href": "#locality"})
    risky = [e for e in data["trust"]["edges"] if e["risky"]]
    if risky:
        top = max(risky, key=lambda e: (e["plaintext"] + e["flagged"], e["calls"]))
        out.append({"text": f"Trust: {len(risky)} of {len(data['trust']['edges'])} zone-to-zone edges are risky; "
                            f"the busiest is {top['from']} → {top['to']} ({top['plaintext']:,} plaintext, "
                            f"{top['flagged']:,} flagged calls).", "href": "#trust"})
    kinds = data["finding_kinds"]
    if kinds:
        worst = kinds[0]
        by_sev: dict[str, int] = {}
        for k in kinds:
            by_sev[k["severity"]] = by_sev.get(k["severity"], 0) + k["findings"]
        counts = ", ".join(f"{by_sev[s]:,} {s}" for s in SEVERITIES if s in by_sev)
        out.append({"text": f"{data['total_findings']:,} findings ({counts}); most severe: {worst['severity']} "
                            f"{worst['analyzer']}/{worst['kind']} ({worst['findings']:,}).", "href": "#findings"})
    return out
