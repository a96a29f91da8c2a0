"""The llm analyzer: model calls (one row per call across instrumentation layers), their
tokens and cost, and sessions (conversations of several traces).

Registry entry :data:`ANALYZER`; modules: :mod:`.config` (``[llm]``: the price table),
:mod:`.derive` (the kernel), :mod:`.calls` (the de-duplication rule), :mod:`.cost`,
:mod:`.sessions` (turns and the session's critical path), :mod:`.findings`, :mod:`.report`
(``fabric report llm``), :mod:`.browse` (``fabric session ls|show``), ``sql/``,
``data/prices.toml`` (the bundled, dated price table). Rules and columns: docs/llm.md.
"""

from __future__ import annotations

from typing import Any

from fabric_trace.analyzers.contract import Analyzer, Derived, GateMetric, Partition, ReportSpec
from fabric_trace.analyzers.llm import config, findings
from fabric_trace.model import Report, ReportFilter


def _derive(part: Partition, cfg: Any) -> Derived:
    from fabric_trace.analyzers.llm.derive import derive  # imported when used: keeps CLI start-up fast

    return derive(part, cfg)


def _report(con: Any, flt: ReportFilter) -> Report:
    from fabric_trace.analyzers.llm.report import LlmOptions, build_llm_report

    return build_llm_report(con, LlmOptions(filter=flt))


#: What ``fabric gate`` can check from the llm tables (docs/ci.md, "Metrics"; docs/llm.md).
METRICS = (
    GateMetric("llm_cost_usd", "sample", "USD", "mean", 0.10, 0.0001,
               "SELECT trace_id, sum(cost_usd ORDER BY span_id) AS value FROM llm_calls GROUP BY trace_id",
               "LLM cost per trace (priced calls; docs/llm.md, Cost)",
               default="a costlier model, longer prompt or extra loop is a cost regression"),
    GateMetric("llm_input_tokens", "sample", "tokens", "mean", 0.10, 250.0,
               "SELECT trace_id, sum(input_tokens) AS value FROM llm_calls GROUP BY trace_id",
               "LLM input tokens per trace, each call counted once (docs/llm.md)"),
    GateMetric("llm_output_tokens", "sample", "tokens", "mean", 0.10, 100.0,
               "SELECT trace_id, sum(output_tokens) AS value FROM llm_calls GROUP BY trace_id",
               "LLM output tokens per trace, each call counted once (docs/llm.md)"),
    GateMetric("llm_error_rate", "ratio", "fraction", "rate", 0.10, 0.02,
               "SELECT trace_id, count(*) FILTER (WHERE status_code = 'ERROR') AS num, count(*) AS den "
               "FROM llm_calls GROUP BY trace_id",
               "failed LLM calls / LLM calls", denominator="LLM calls"),
)

ANALYZER = Analyzer(
    name="llm",
    summary="LLM usage and cost: one row per model call across layers, tokens, cost, sessions.",
    sections=("llm",),
    parse_config=config.parse_config,
    derive=_derive,
    tables=("llm_call_store", "llm_turn_store"),
    views=("llm_calls", "session_turns", "sessions"),
    report=ReportSpec(_report, "LLM usage and cost: calls, errors, tokens, cost, latency and TTFT by model, "
                      "provider, workflow or operation; the top traces and sessions by cost.",
                      command="fabric_trace.cli.cmd_llm:llm_command"),
    metrics=METRICS,
    scope="session",
    reads=("latency_traces", "latency_spans"),
    severities=dict(findings.SEVERITIES),
    sql_from=__name__,
)

__all__ = ["ANALYZER", "METRICS"]
