"""The trust analyzer: zones, boundary crossings and risky execution paths.

Registry entry :data:`ANALYZER`; modules: :mod:`.config` (``[trust]`` and the
zone rules), :mod:`.derive` (with :mod:`.tree`), :mod:`.findings`,
:mod:`.report`, ``sql/``. Rules: docs/trust.md.
"""

from __future__ import annotations

from typing import Any

from fabric_trace.analyzers.contract import Analyzer, ReportSpec
from fabric_trace.analyzers.trust import config, derive
from fabric_trace.model import Report, ReportFilter, Severity


def _report(con: Any, flt: ReportFilter) -> Report:
    from fabric_trace.analyzers.trust.report import TrustOptions, build_trust_report

    return build_trust_report(con, TrustOptions(filter=flt))


ANALYZER = Analyzer(
    name="trust",
    summary="Trust zones, boundary crossings, and risky paths (unguarded or denied tools, egress, "
    "prompt-injection exposure, anonymous privileged actions, plaintext hops).",
    sections=("trust",),
    parse_config=config.load_trust_config,
    derive=derive.derive,
    tables=("trust_zone_store", "trust_service_zones", "trust_crossing_store"),
    views=("trust_spans", "trust_crossings"),
    report=ReportSpec(_report, "Trust zones, boundary crossings and risky execution paths (unguarded tools, "
                      "egress, injection paths).", command="fabric_trace.cli.cmd_trust:trust_command"),
    severities={  # the lowest severity of each kind (docs/trust.md, "Findings")
        "unguarded_tool_call": Severity.MEDIUM, "denied_tool_executed": Severity.CRITICAL,
        "external_egress": Severity.MEDIUM, "provider_egress": Severity.INFO,
        "untrusted_input_to_privileged_tool": Severity.HIGH, "anonymous_privileged_action": Severity.MEDIUM,
        "plaintext_crossing": Severity.LOW,
    },
    stats=(derive.ZONES, derive.SERVICE_ZONES),
    sql_from=__name__,
)
