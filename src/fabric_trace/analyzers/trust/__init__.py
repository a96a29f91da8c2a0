"""The trust analyzer: zones, boundary crossings and risky execution paths.

Registry entry :data:`ANALYZER`; modules: :mod:`.config` (``[trust]`` and the
zone rules), :mod:`.derive` (with :mod:`.tree`), :mod:`.findings`,
:mod:`.report`, ``sql/``. Rules: docs/trust.md.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from fabric_trace.analyzers.contract import Analyzer, Derived, Partition, ReportSpec, StoreStats
from fabric_trace.analyzers.trust import config
from fabric_trace.analyzers.trust.config import ZONES_SQL, load_trust_config, write_config_tables
from fabric_trace.model import Report, ReportFilter, Severity


def _derive(part: Partition, cfg: Any) -> Derived:
    from fabric_trace.analyzers.trust.derive import derive  # imported when used: keeps CLI start-up fast

    return derive(part, cfg)


def _zones(con: duckdb.DuckDBPyConnection, config: Any) -> pa.Table:
    """``trust_zone_store`` of the whole store (run on the store, inside the refresh transaction)."""
    write_config_tables(con, load_trust_config(config))
    try:
        return con.sql(ZONES_SQL).to_arrow_table()
    finally:
        for table in ("_trust_pat", "_trust_zonecfg", "_trust_levels"):
            con.execute(f"DROP TABLE IF EXISTS {table}")


def _service_zones(con: duckdb.DuckDBPyConnection, config: Any) -> pa.Table:
    return con.sql("SELECT lower(service_name) AS name, min(zone) AS zone FROM trust_zone_store "
                   "GROUP BY 1 ORDER BY 1").to_arrow_table()


#: Store-wide: the zone of every resource. A trace is derived again when a resource it uses
#: changes zone.
ZONES = StoreStats(
    table="trust_zone_store", compute=_zones, key=("resource_id",),
    affected_sql="SELECT DISTINCT trace_id FROM span_store WHERE resource_id IN "
                 "(SELECT resource_id FROM _stats_changed)",
)

#: Store-wide: each service name's zone (peer hosts named after a known service resolve to it).
#: When it changes (a new service, or a service's zone), every trace is derived again.
SERVICE_ZONES = StoreStats(
    table="trust_service_zones", compute=_service_zones, key=("name",),
    affected_sql="SELECT DISTINCT trace_id FROM span_store",
)


def _report(con: Any, flt: ReportFilter) -> Report:
    from fabric_trace.analyzers.trust.report import TrustOptions, build_trust_report

    return build_trust_report(con, TrustOptions(filter=flt))


ANALYZER = Analyzer(
    name="trust",
    summary="Trust zones, boundary crossings, and risky paths (unguarded or denied tools, egress, "
    "prompt-injection exposure, anonymous privileged actions, plaintext hops).",
    sections=("trust",),
    parse_config=config.load_trust_config,
    derive=_derive,
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
    stats=(ZONES, SERVICE_ZONES),
    sql_from=__name__,
    version="2",  # 2: identity_to no longer depends on which traces share a partition
)
