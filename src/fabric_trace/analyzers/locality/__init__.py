"""The state-locality analyzer: where the state a step needs lives, and what misses cost.

Registry entry :data:`ANALYZER`; modules: :mod:`.config` (``[locality]`` and the
rules' SQL helpers), :mod:`.derive` (with :mod:`.queries` and :mod:`.whatif`),
:mod:`.findings`, :mod:`.report`, ``sql/``. Rules: docs/locality.md.
"""

from __future__ import annotations

from typing import Any

from fabric_trace.analyzers.contract import Analyzer, Derived, GateMetric, Partition, ReportSpec, StoreStats
from fabric_trace.analyzers.locality import config, findings
from fabric_trace.model import Report, ReportFilter

#: Columns of the ``locality_accesses`` view (docs/locality.md), in order.
ACCESS_COLUMNS = (
    "trace_id", "span_id", "session_id", "store", "access_type", "outcome", "outcome_source",
    "caller_service", "caller_region", "caller_zone", "caller_location",
    "server_service", "server_region", "server_zone", "server_location", "remote",
    "start_ns", "duration_ns", "cost_ns", "critical_ns", "key", "backing_span_ids",
)


def _derive(part: Partition, cfg: Any) -> Derived:
    from fabric_trace.analyzers.locality.derive import derive  # imported when used: keeps CLI start-up fast

    return derive(part, cfg)


#: Significant digits the what-if targets are rounded to (docs/locality.md, "What-if"): a median
#: moves in steps of 1-10 %, so new data from the same distribution rarely changes it, and only
#: a change re-derives the traces that depend on it.
MEDIAN_DIGITS = 2


def _rounded(expr: str) -> str:
    return (f"CASE WHEN {expr} > 0 THEN round({expr}, ({MEDIAN_DIGITS - 1} - floor(log10({expr})))::INTEGER) "
            f"ELSE {expr} END")


#: Per (access type, store): the median cost of a hit and the median duration of a local access
#: over the whole store, rounded to MEDIAN_DIGITS significant digits: the what-if targets
#: (docs/locality.md, "What-if").
MEDIANS_SQL = f"""
SELECT access_type, store, {_rounded("hit_ns")} AS hit_ns, {_rounded("local_ns")} AS local_ns
FROM (
    SELECT access_type, store,
           median(cost_ns) FILTER (WHERE outcome = 'hit') AS hit_ns,
           median(duration_ns) FILTER (WHERE remote = 'local') AS local_ns
    FROM locality_access_store WHERE access_type <> 'prefix_cache'
    GROUP BY access_type, store
)
"""


def _medians(con: Any, cfg: Any) -> Any:
    return con.sql(MEDIANS_SQL).to_arrow_table()


def _rederive(part: Partition, cfg: Any) -> Derived:
    from fabric_trace.analyzers.locality.derive import rederive

    return rederive(part, cfg)


#: The medians are recomputed from the store after the partitions; when a median of a store a trace
#: accesses on its critical path changed, only the trace's what-if is replayed again (``rederive``:
#: the accesses, critical times and findings do not depend on the medians).
MEDIANS = StoreStats(
    table="locality_median_store", compute=_medians, key=("access_type", "store"),
    affected_sql="SELECT DISTINCT a.trace_id FROM locality_access_store a JOIN _stats_changed c "
                 "USING (access_type, store) WHERE a.critical_ns > 0 AND a.access_type <> 'prefix_cache'",
    after_derive=True,
    rederive=_rederive,
    span_columns=("trace_id", "span_id", "parent_span_id"),
)


def _report(con: Any, flt: ReportFilter) -> Report:
    from fabric_trace.analyzers.locality.report import LocalityOptions, build_locality_report

    return build_locality_report(con, LocalityOptions(filter=flt))


#: What ``fabric gate`` can check from the locality tables (docs/ci.md, "Metrics").
METRICS = (
    GateMetric("cache_miss_rate", "ratio", "fraction", "rate", 0.10, 0.05,
               "SELECT trace_id, count(*) FILTER (WHERE outcome = 'miss') AS num, count(*) AS den "
               "FROM locality_accesses WHERE access_type = 'cache' AND outcome IN ('hit', 'miss') "
               "GROUP BY trace_id",
               "cache misses / cache lookups", denominator="cache lookups"),
    GateMetric("cache_misses", "sample", "count", "mean", 0.10, 0.5,
               "SELECT trace_id, count(*) AS value FROM locality_accesses "
               "WHERE access_type = 'cache' AND outcome = 'miss' GROUP BY trace_id",
               "cache misses per trace"),
    GateMetric("cross_region_accesses", "sample", "count", "mean", 0.10, 0.25,
               "SELECT trace_id, count(*) AS value FROM locality_accesses "
               "WHERE remote = 'cross_region' GROUP BY trace_id",
               "cross-region state accesses per trace",
               default="state read from another region: latency and data residency"),
)

ANALYZER = Analyzer(
    name="locality",
    summary="State locality: cache and prefix-cache misses, cross-zone/region access, redundant fetches.",
    sections=("locality",),
    parse_config=config.LocalityConfig.from_config,
    derive=_derive,
    tables=("locality_access_store", "locality_trace_store", "locality_median_store"),
    views=("locality_accesses",),
    report=ReportSpec(_report, "Where the state lives: cache and prefix-cache misses, cross-zone/region access, "
                      "redundant fetches, what they cost on the critical path, and a what-if.",
                      command="fabric_trace.cli.cmd_locality:locality_command"),
    metrics=METRICS,
    scope="session",
    reads=("latency_spans", "latency_traces"),
    stats=(MEDIANS,),
    severities=dict(findings.SEVERITY),
    sql_from=__name__,
)

__all__ = ["ACCESS_COLUMNS", "ANALYZER", "MEDIANS", "METRICS"]
