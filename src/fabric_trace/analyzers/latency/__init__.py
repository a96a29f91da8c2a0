"""The latency analyzer: call graphs -> traces, critical path, span metrics, repairs.

Registry entry :data:`ANALYZER`; modules: :mod:`.config` (``[latency]``,
``[workflows]``), :mod:`.derive`, :mod:`.findings`, :mod:`.report`, ``sql/``.
Rules: docs/critical-path.md; tables and views: docs/schema.md.
"""

from __future__ import annotations

from typing import Any

from fabric_trace.analyzers.contract import Analyzer, Derived, Partition, ReportSpec
from fabric_trace.analyzers.latency import config, findings
from fabric_trace.model import Report, ReportFilter


def _derive(part: Partition, cfg: Any) -> Derived:
    from fabric_trace.analyzers.latency.derive import derive  # imported when used: keeps CLI start-up fast

    return derive(part, cfg)


def _report(con: Any, flt: ReportFilter) -> Report:
    from fabric_trace.analyzers.latency.report import LatencyOptions, build_latency_report

    return build_latency_report(con, LatencyOptions(filter=flt))


ANALYZER = Analyzer(
    name="latency",
    summary="Call graphs per trace: critical path, self time, repairs (orphans, cycles, skew).",
    sections=("latency", "workflows"),
    parse_config=config.parse_config,
    derive=_derive,
    tables=("latency_traces", "latency_spans", "latency_segments", "latency_repairs"),
    views=("traces", "critical_path", "span_metrics"),
    report=ReportSpec(_report, "Where the time goes: end-to-end percentiles, critical path and self time by AI role.",
                      command="fabric_trace.cli.cmd_latency:latency_command"),
    severities=dict(findings.REPAIR_SEVERITY),
    sql_from=__name__,
    version="2",  # 2: traces.session_id
)
