"""``fabric report locality``: state-locality misses and what they cost on the critical path.

Every figure comes from ``locality_access_store`` (view ``locality_accesses``),
``locality_trace_store`` and the locality findings, by the rules in
docs/locality.md ("Report"). Percentiles are ``quantile_cont`` (linear
interpolation); durations are milliseconds with 3 decimals, rates percent
with 2 decimals, ``null`` when there is nothing to measure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

from fabric_trace.analyzers.locality.findings import KINDS
from fabric_trace.errors import UsageError
from fabric_trace.model import ReportFilter
from fabric_trace.model import Column, Report, Table
from fabric_trace.analyzers.units import ms as _ms

#: Keys of an access-statistics row (per access type or per store), in display order.
STAT_KEYS = (
    "accesses", "hits", "misses", "not_reported", "hit_rate_pct", "miss_rate_pct", "not_reported_pct",
    "local", "cross_zone", "cross_region", "unknown_location",
    "cross_zone_pct", "cross_region_pct", "unknown_location_pct",
    "hit_p50_ms", "hit_p95_ms", "miss_p50_ms", "miss_p95_ms",
    "local_p50_ms", "local_p95_ms", "remote_p50_ms", "remote_p95_ms",
    "miss_critical_ms", "remote_critical_ms",
)

#: Keys of a per-workflow (and totals) summary, besides the nested lists.
SUMMARY_KEYS = (
    "traces", "accesses",
    "miss_critical_p50_ms", "miss_critical_p95_ms", "miss_critical_share_pct",
    "remote_critical_p50_ms", "remote_critical_p95_ms", "remote_critical_share_pct",
    "e2e_p50_ms", "e2e_p95_ms", "whatif_e2e_p50_ms", "whatif_e2e_p95_ms", "whatif_traces_changed",
    "findings",
)

_REMOTE = "('cross_zone', 'cross_region')"

_STATS_SQL = f"""
    count(*) AS accesses,
    count(*) FILTER (WHERE outcome = 'hit') AS hits,
    count(*) FILTER (WHERE outcome = 'miss') AS misses,
    count(*) FILTER (WHERE outcome = 'not_reported') AS not_reported,
    count(*) FILTER (WHERE remote = 'local') AS local,
    count(*) FILTER (WHERE remote = 'cross_zone') AS cross_zone,
    count(*) FILTER (WHERE remote = 'cross_region') AS cross_region,
    count(*) FILTER (WHERE remote = 'unknown') AS unknown_location,
    quantile_cont(cost_ns, [0.5, 0.95]) FILTER (WHERE outcome = 'hit') AS hit_q,
    quantile_cont(cost_ns, [0.5, 0.95]) FILTER (WHERE outcome = 'miss') AS miss_q,
    quantile_cont(duration_ns, [0.5, 0.95]) FILTER (WHERE remote = 'local') AS local_q,
    quantile_cont(duration_ns, [0.5, 0.95]) FILTER (WHERE remote IN {_REMOTE}) AS remote_q,
    coalesce(sum(critical_ns) FILTER (WHERE outcome = 'miss' AND access_type <> 'prefix_cache'), 0) AS miss_crit,
    coalesce(sum(critical_ns) FILTER (WHERE remote IN {_REMOTE}), 0) AS remote_crit
"""


@dataclass(frozen=True)
class LocalityOptions:
    """Options of the locality report."""

    filter: ReportFilter = field(default_factory=ReportFilter)
    top: int = 20
    """Stores shown by the table formats (JSON lists them all)."""


def _pct(num: Any, den: Any) -> float | None:
    return None if not den else round(100.0 * float(num) / float(den), 2)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _selected_traces(con: duckdb.DuckDBPyConnection, flt: ReportFilter) -> None:
    """Materialise the traces the report covers into temp table ``_loc_sel`` (same rules as latency)."""
    tf = flt.trace_sql("t")
    where_sql = f"WHERE {tf.sql}"
    params: list[Any] = list(tf.params)
    if flt.where.sql != "TRUE":
        where_sql += f" AND t.trace_id IN (SELECT s.trace_id FROM spans s WHERE {flt.where.sql})"
        params += list(flt.where.params)
    # latency_traces, not the traces view: the view also aggregates every span (services, root name)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _loc_sel AS SELECT t.trace_id, t.workflow FROM latency_traces t {where_sql}",
                params)


def _stats(r: dict[str, Any]) -> dict[str, Any]:
    """An access-statistics row from the aggregate columns of :data:`_STATS_SQL`."""
    n, hits, misses = int(r["accesses"]), int(r["hits"]), int(r["misses"])
    out: dict[str, Any] = {
        "accesses": n, "hits": hits, "misses": misses, "not_reported": int(r["not_reported"]),
        "hit_rate_pct": _pct(hits, hits + misses), "miss_rate_pct": _pct(misses, hits + misses),
        "not_reported_pct": _pct(r["not_reported"], n),
        "local": int(r["local"]), "cross_zone": int(r["cross_zone"]), "cross_region": int(r["cross_region"]),
        "unknown_location": int(r["unknown_location"]),
        "cross_zone_pct": _pct(r["cross_zone"], n), "cross_region_pct": _pct(r["cross_region"], n),
        "unknown_location_pct": _pct(r["unknown_location"], n),
        "miss_critical_ms": _ms(r["miss_crit"]), "remote_critical_ms": _ms(r["remote_crit"]),
    }
    for name in ("hit", "miss", "local", "remote"):
        q = r[f"{name}_q"]
        out[f"{name}_p50_ms"] = _ms(q[0]) if q else None
        out[f"{name}_p95_ms"] = _ms(q[1]) if q else None
    return {k: out[k] for k in STAT_KEYS}


def _access_stats(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Statistics per (workflow, access type, store) with the roll-ups, from GROUPING SETS."""
    rows = _rows(con, f"""
        SELECT s.workflow, a.access_type, a.store,
               GROUPING(s.workflow) AS g_wf, GROUPING(a.access_type) AS g_type, GROUPING(a.store) AS g_store,
               {_STATS_SQL}
        FROM locality_access_store a JOIN _loc_sel s USING (trace_id)
        GROUP BY GROUPING SETS ((s.workflow, a.access_type, a.store), (s.workflow, a.access_type),
                                (a.access_type, a.store), (s.workflow), ())
    """)
    out = []
    for r in rows:
        row = _stats(r)
        row.update(workflow=None if r["g_wf"] else r["workflow"],
                   access_type=None if r["g_type"] else r["access_type"],
                   store=None if r["g_store"] else r["store"])
        out.append(row)
    return out


def _trace_stats(con: duckdb.DuckDBPyConnection) -> dict[str | None, dict[str, Any]]:
    """Per-trace figures per workflow (key ``None`` = all selected traces)."""
    rows = _rows(con, """
        SELECT s.workflow, GROUPING(s.workflow) AS g_wf, count(*) AS traces,
               quantile_cont(t.miss_critical_ns, [0.5, 0.95]) AS miss_q,
               sum(t.miss_critical_ns) / nullif(sum(t.duration_ns), 0) AS miss_share,
               quantile_cont(t.remote_critical_ns, [0.5, 0.95]) AS remote_q,
               sum(t.remote_critical_ns) / nullif(sum(t.duration_ns), 0) AS remote_share,
               quantile_cont(t.duration_ns, [0.5, 0.95]) AS e2e_q,
               quantile_cont(t.whatif_duration_ns, [0.5, 0.95]) AS whatif_q,
               count(*) FILTER (WHERE t.whatif_changed) AS changed
        FROM locality_trace_store t JOIN _loc_sel s USING (trace_id)
        GROUP BY GROUPING SETS ((s.workflow), ())
    """)
    out: dict[str | None, dict[str, Any]] = {}
    for r in rows:
        def q(name: str, k: int) -> float | None:
            v = r[name]
            return _ms(v[k]) if v else None

        out[None if r["g_wf"] else r["workflow"]] = {
            "traces": int(r["traces"]),
            "miss_critical_p50_ms": q("miss_q", 0), "miss_critical_p95_ms": q("miss_q", 1),
            "miss_critical_share_pct": None if r["miss_share"] is None else round(100 * r["miss_share"], 2),
            "remote_critical_p50_ms": q("remote_q", 0), "remote_critical_p95_ms": q("remote_q", 1),
            "remote_critical_share_pct": None if r["remote_share"] is None else round(100 * r["remote_share"], 2),
            "e2e_p50_ms": q("e2e_q", 0), "e2e_p95_ms": q("e2e_q", 1),
            "whatif_e2e_p50_ms": q("whatif_q", 0), "whatif_e2e_p95_ms": q("whatif_q", 1),
            "whatif_traces_changed": int(r["changed"]),
        }
    return out


def _finding_counts(con: duckdb.DuckDBPyConnection) -> tuple[dict[str | None, dict[str, int]], dict[tuple[str, str], int]]:
    """Finding counts per workflow and kind, and redundant fetches per (access type, store)."""
    per_wf: dict[str | None, dict[str, int]] = {}
    per_store: dict[tuple[str, str], int] = {}
    rows = _rows(con, """
        SELECT s.workflow, GROUPING(s.workflow) AS g_wf, f.kind, count(*) AS n
        FROM findings f JOIN _loc_sel s USING (trace_id)
        WHERE f.analyzer = 'locality'
        GROUP BY GROUPING SETS ((s.workflow, f.kind), (f.kind))
    """)
    for r in rows:
        per_wf.setdefault(None if r["g_wf"] else r["workflow"], {})[r["kind"]] = int(r["n"])
    for r in _rows(con, """
        SELECT json_extract_string(f.details, '$.access_type') AS access_type,
               json_extract_string(f.details, '$.store') AS store, count(*) AS n
        FROM findings f JOIN _loc_sel s USING (trace_id)
        WHERE f.analyzer = 'locality' AND f.kind = 'redundant_fetch'
        GROUP BY ALL
    """):
        per_store[(r["access_type"], r["store"])] = int(r["n"])
    return per_wf, per_store


def _counterfactuals(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The medians the what-if uses, per store (over the whole database, rounded as stored in
    ``locality_median_store``)."""
    rows = _rows(con, """
        SELECT m.access_type, m.store, m.hit_ns, m.local_ns
        FROM locality_median_store m
        JOIN (SELECT access_type, store FROM locality_access_store WHERE access_type <> 'prefix_cache'
              GROUP BY access_type, store
              HAVING count(*) FILTER (WHERE outcome = 'miss' OR remote IN ('cross_zone', 'cross_region')) > 0) a
             ON a.access_type = m.access_type AND a.store IS NOT DISTINCT FROM m.store
        ORDER BY m.access_type, m.store
    """)
    return [{"access_type": r["access_type"], "store": r["store"], "median_hit_ms": _ms(r["hit_ns"]),
             "median_local_ms": _ms(r["local_ns"])} for r in rows]


def _summary(trace: dict[str, Any] | None, stats: dict[str, Any] | None, counts: dict[str, int]) -> dict[str, Any]:
    base = dict(trace or {"traces": 0})
    base["accesses"] = stats["accesses"] if stats else 0
    base["findings"] = {k: counts.get(k, 0) for k in KINDS}
    return {k: base.get(k) for k in SUMMARY_KEYS}


def _store_order(row: dict[str, Any]) -> tuple[Any, ...]:
    crit = (row["miss_critical_ms"] or 0) + (row["remote_critical_ms"] or 0)
    return (-crit, -row["accesses"], row["access_type"], row["store"] or "")


def build_locality_report(con: duckdb.DuckDBPyConnection, options: LocalityOptions | None = None) -> Report:
    """Build the locality report from the derived tables (refresh them first)."""
    options = options or LocalityOptions()
    if options.top < 1:
        raise UsageError("--top must be at least 1")
    _selected_traces(con, options.filter)
    stats = _access_stats(con)
    traces = _trace_stats(con)
    counts, redundant = _finding_counts(con)
    workflows = sorted((w for w in traces if w is not None), key=lambda w: (-traces[w]["traces"], w))

    def pick(wf: str | None, by_type: bool, by_store: bool) -> list[dict[str, Any]]:
        rows = [r for r in stats if r["workflow"] == wf and (r["access_type"] is not None) == by_type
                and (r["store"] is not None) == by_store]
        return rows

    def type_rows(wf: str | None) -> list[dict[str, Any]]:
        rows = [{"access_type": r["access_type"], **{k: r[k] for k in STAT_KEYS}} for r in pick(wf, True, False)]
        return sorted(rows, key=lambda r: (-r["accesses"], r["access_type"]))

    def store_rows(wf: str | None) -> list[dict[str, Any]]:
        rows = []
        for r in pick(wf, True, True):
            row = {"access_type": r["access_type"], "store": r["store"], **{k: r[k] for k in STAT_KEYS}}
            row["redundant_fetches"] = redundant.get((r["access_type"], r["store"]), 0) if wf is None else None
            rows.append(row)
        return sorted(rows, key=_store_order)

    per_wf_total = {r["workflow"]: r for r in stats if r["access_type"] is None and r["store"] is None}
    data_wfs = []
    for wf in workflows:
        entry = {"workflow": wf, **_summary(traces.get(wf), per_wf_total.get(wf), counts.get(wf, {}))}
        entry["access_types"] = type_rows(wf)
        entry["stores"] = [{k: v for k, v in r.items() if k != "redundant_fetches"} for r in store_rows(wf)]
        data_wfs.append(entry)
    all_stores = store_rows(None)
    data: dict[str, Any] = {
        "report": "locality",
        "totals": _summary(traces.get(None), per_wf_total.get(None), counts.get(None, {})),
        "workflows": data_wfs,
        "stores": all_stores,
        "counterfactuals": _counterfactuals(con),
    }
    con.execute("DROP TABLE IF EXISTS _loc_sel")
    return Report(title="State locality", tables=_tables(data_wfs, all_stores, options.top),
                  data=data, notes=_notes(data, len(all_stores), options.top))


def _tables(wfs: list[dict[str, Any]], stores: list[dict[str, Any]], top: int) -> list[Table]:
    types = [{"workflow": w["workflow"], **r} for w in wfs for r in w["access_types"]]
    findings = [{"workflow": w["workflow"], "kind": k, "count": n}
                for w in wfs for k, n in w["findings"].items() if n]
    shown = stores[:top]
    return [
        Table("workflows", "Critical-path time in misses and remote accesses (per trace)", [
            Column("workflow", "Workflow"), Column("traces", "Traces", "int"), Column("accesses", "Accesses", "int"),
            Column("miss_critical_p50_ms", "Miss p50", "ms"), Column("miss_critical_p95_ms", "Miss p95", "ms"),
            Column("miss_critical_share_pct", "Miss share", "pct"),
            Column("remote_critical_p50_ms", "Remote p50", "ms"), Column("remote_critical_p95_ms", "Remote p95", "ms"),
            Column("remote_critical_share_pct", "Remote share", "pct"),
        ], wfs),
        Table("whatif", "What-if: misses at the median hit, remote accesses at the median local latency", [
            Column("workflow", "Workflow"), Column("e2e_p50_ms", "e2e p50", "ms"), Column("e2e_p95_ms", "e2e p95", "ms"),
            Column("whatif_e2e_p50_ms", "What-if p50", "ms"), Column("whatif_e2e_p95_ms", "What-if p95", "ms"),
            Column("whatif_traces_changed", "Traces changed", "int"),
        ], wfs),
        Table("access_types", "Accesses by type", [
            Column("workflow", "Workflow"), Column("access_type", "Type"), Column("accesses", "Accesses", "int"),
            Column("hit_rate_pct", "Hit", "pct"), Column("miss_rate_pct", "Miss", "pct"),
            Column("not_reported_pct", "Not rep.", "pct"), Column("cross_zone_pct", "X-zone", "pct"),
            Column("cross_region_pct", "X-region", "pct"), Column("unknown_location_pct", "Loc. unknown", "pct"),
        ], types),
        Table("stores", f"Stores and peers (top {top} by critical-path time in misses and remote accesses)", [
            Column("access_type", "Type"), Column("store", "Store"), Column("accesses", "Accesses", "int"),
            Column("hit_rate_pct", "Hit", "pct"), Column("miss_rate_pct", "Miss", "pct"),
            Column("cross_zone_pct", "X-zone", "pct"), Column("cross_region_pct", "X-region", "pct"),
            Column("miss_critical_ms", "Miss crit.", "ms"), Column("remote_critical_ms", "Remote crit.", "ms"),
        ], shown),
        Table("hit_miss_latency", "Latency of hits vs misses (misses include the backing fetch)", [
            Column("access_type", "Type"), Column("store", "Store"),
            Column("hit_p50_ms", "Hit p50", "ms"), Column("hit_p95_ms", "Hit p95", "ms"),
            Column("miss_p50_ms", "Miss p50", "ms"), Column("miss_p95_ms", "Miss p95", "ms"),
        ], [r for r in shown if r["hits"] or r["misses"]]),
        Table("local_remote_latency", "Latency of local vs cross-zone/region accesses", [
            Column("access_type", "Type"), Column("store", "Store"),
            Column("local_p50_ms", "Local p50", "ms"), Column("local_p95_ms", "Local p95", "ms"),
            Column("remote_p50_ms", "Remote p50", "ms"), Column("remote_p95_ms", "Remote p95", "ms"),
        ], [r for r in shown if r["cross_zone"] or r["cross_region"]]),
        Table("findings", "Findings", [
            Column("workflow", "Workflow"), Column("kind", "Kind"), Column("count", "Count", "int"),
        ], findings),
    ]


def _notes(data: dict[str, Any], n_stores: int, top: int) -> list[str]:
    notes = []
    if not data["workflows"]:
        notes.append("no traces match the filters")
    if n_stores > top:
        notes.append(f"{n_stores - top} more store(s) in --format json (or raise --top)")
    notes.append("hit and miss rates are of the accesses that report an outcome; 'not reported' is of all accesses")
    notes.append("what-if medians are per store over the whole database; LLM prefix-cache misses are not shortened")
    return notes


__all__ = ["STAT_KEYS", "SUMMARY_KEYS", "LocalityOptions", "build_locality_report"]
