"""The state-locality analyzer: where the state a step needs lives, and what misses cost.

Registry entry :data:`ANALYZER`; modules: :mod:`.config` (``[locality]`` and the
rules' SQL helpers), :mod:`.derive` (with :mod:`.queries` and :mod:`.whatif`),
:mod:`.findings`, :mod:`.report`, ``sql/``. Rules: docs/locality.md.
"""

from __future__ import annotations

from typing import Any

from fabric_trace.analyzers.contract import Analyzer, GateMetric, ReportSpec
from fabric_trace.analyzers.locality import config, derive, findings
from fabric_trace.analyzers.locality.derive import ACCESS_COLUMNS
from fabric_trace.model import Report, ReportFilter


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
               "cross-region state accesses per trace"),
)

ANALYZER = Analyzer(
    name="locality",
    summary="State locality: cache and prefix-cache misses, cross-zone/region access, redundant fetches.",
    sections=("locality",),
    parse_config=config.LocalityConfig.from_config,
    derive=derive.derive,
    tables=("locality_access_store", "locality_trace_store", "locality_median_store"),
    views=("locality_accesses",),
    report=ReportSpec(_report, "Where the state lives: cache and prefix-cache misses, cross-zone/region access, "
                      "redundant fetches, what they cost on the critical path, and a what-if.",
                      command="fabric_trace.cli.cmd_locality:locality_command"),
    metrics=METRICS,
    scope="session",
    reads=("latency_spans", "latency_traces"),
    stats=(derive.MEDIANS,),
    severities=dict(findings.SEVERITY),
    sql_from=__name__,
)

__all__ = ["ACCESS_COLUMNS", "ANALYZER", "METRICS"]
