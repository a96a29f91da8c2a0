"""The latency analyzer's findings: one per graph repair (docs/critical-path.md, "Repairs").

Written with :func:`fabric_trace.analyzers.contract.write_findings` from ``latency_repairs``.
"""

from __future__ import annotations

import duckdb

from fabric_trace.analyzers.contract import write_findings
from fabric_trace.model import Severity

#: Severity of each repair finding.
REPAIR_SEVERITY: dict[str, Severity] = {
    "implausible_time": Severity.MEDIUM,
    "orphan_span": Severity.MEDIUM,
    "multiple_roots": Severity.LOW,
    "parent_cycle": Severity.HIGH,
    "duplicate_span": Severity.LOW,
    "clock_skew": Severity.MEDIUM,
    "negative_duration": Severity.LOW,
    "child_outside_parent": Severity.INFO,
}

#: Graph repair kinds (fabric_trace.graph.model) -> finding kinds.
FINDING_KIND = {
    "orphan": "orphan_span",
    "extra_root": "multiple_roots",
    "self_parent": "parent_cycle",
    "cycle_cut": "parent_cycle",
    "duplicate_span_id": "duplicate_span",
    "implausible_time": "implausible_time",
    "clock_skew": "clock_skew",
    "clock_skew_adjusted": "clock_skew",
    "clock_skew_exceeds_max": "clock_skew",
    "negative_duration": "negative_duration",
    "child_outside_parent": "child_outside_parent",
}


def repair_findings(con: duckdb.DuckDBPyConnection) -> None:
    kind_map = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in FINDING_KIND.items())
    sev = " ".join(f"WHEN '{k}' THEN '{v.value}'" for k, v in REPAIR_SEVERITY.items())
    write_findings(
        con, "latency",
        f"""
        WITH r AS (
            SELECT *, CASE kind {kind_map} END AS fkind FROM latency_repairs
        ), raw AS (  -- the recorded times of spans whose time is implausible
            SELECT r.trace_id, r.span_id, s.start_ns AS raw_start_ns, s.end_ns AS raw_end_ns
            FROM r JOIN span_store s USING (trace_id, span_id) WHERE r.kind = 'implausible_time'
        ), one_per_trace AS (
            -- several roots: one finding per trace, on the earliest extra root
            SELECT trace_id, 'multiple_roots' AS fkind, 'extra_root' AS kind, min(span_id) AS span_id,
                   NULL AS parent_span_id, NULL::BIGINT AS offset_ns, NULL AS service,
                   NULL AS parent_service, count(*) + 1 AS count
            FROM r WHERE fkind = 'multiple_roots' GROUP BY trace_id
        ), rows0 AS (
            SELECT trace_id, fkind, kind, span_id, parent_span_id, offset_ns, service, parent_service, count
            FROM r WHERE fkind IS NOT NULL AND fkind <> 'multiple_roots'
            UNION ALL
            SELECT trace_id, fkind, kind, span_id, parent_span_id, offset_ns, service, parent_service, count
            FROM one_per_trace
        ), rows AS (
            SELECT rows0.*, raw.raw_start_ns, raw.raw_end_ns,
                   CASE WHEN raw.raw_start_ns >= 0 THEN strftime(make_timestamp(raw.raw_start_ns // 1000),
                        '%Y-%m-%dT%H:%M:%SZ') ELSE raw.raw_start_ns::VARCHAR || ' ns' END AS raw_start,
                   CASE WHEN raw.raw_end_ns >= 0 THEN strftime(make_timestamp(raw.raw_end_ns // 1000),
                        '%Y-%m-%dT%H:%M:%SZ') ELSE raw.raw_end_ns::VARCHAR || ' ns' END AS raw_end
            FROM rows0 LEFT JOIN raw USING (trace_id, span_id)
        )
        SELECT fkind AS kind, CASE fkind {sev} ELSE 'low' END AS severity, trace_id, span_id,
               CASE fkind
                 WHEN 'orphan_span' THEN 'span ' || span_id || ' has parent ' || coalesce(parent_span_id, '?')
                      || ' which is not in the trace; treated as a root (trace incomplete)'
                 WHEN 'multiple_roots' THEN 'trace has ' || count || ' root spans; critical path computed per root'
                 WHEN 'parent_cycle' THEN 'parent links form a cycle; the link from span ' || span_id
                      || ' to its parent was cut'
                 WHEN 'duplicate_span' THEN 'span id ' || span_id || ' appears more than once in the trace'
                 WHEN 'clock_skew' THEN 'span ' || span_id || ' (' || coalesce(service, '?')
                      || ') looks shifted by ' || round(offset_ns / 1e6, 3) || ' ms relative to its parent ('
                      || coalesce(parent_service, '?') || ')'
                      || CASE kind WHEN 'clock_skew_adjusted' THEN '; adjusted'
                                   WHEN 'clock_skew_exceeds_max' THEN '; not adjusted (beyond the maximum)'
                                   ELSE '' END
                 WHEN 'implausible_time' THEN 'span ' || span_id || ' has an impossible time (start '
                      || coalesce(raw_start, '?') || ', end ' || coalesce(raw_end, '?')
                      || '); its time is treated as unknown and left out of durations, percentiles'
                      || ' and the critical path'
                 WHEN 'negative_duration' THEN 'span ' || span_id || ' ends before it starts; treated as zero-length'
                 WHEN 'child_outside_parent' THEN 'span ' || span_id
                      || ' lies entirely outside its parent; left out of the parent''s critical path'
                 ELSE fkind END AS message,
               json_object('repair', kind, 'parent_span_id', parent_span_id, 'offset_ns', offset_ns,
                           'service', service, 'parent_service', parent_service, 'count', count,
                           'adjusted', kind = 'clock_skew_adjusted',
                           'raw_start_ns', raw_start_ns, 'raw_end_ns', raw_end_ns) AS details
        FROM rows
        """
    )
