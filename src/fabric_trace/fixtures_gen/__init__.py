"""Deterministic generator of realistic multi-service AI workflow traces, with ground truth.

>>> from fabric_trace.fixtures_gen import Scenario, generate
>>> gen = generate(Scenario(traces=10, unguarded_tool_rate=1.0))
>>> all(t.verdict == "unguarded" for tr in gen.truth.traces for t in tr.tool_executions)
True

See ``fixtures/README.md`` for the knobs and the ground-truth structure.
"""

from __future__ import annotations

from .builder import Topology
from .model import GenEvent, GeneratedTraces, GenLink, GenSpan
from .scenario import DEFAULT_BASE_TIME_NS, ROLES, WORKFLOWS, Scenario
from .truth import GroundTruth, TraceTruth
from .workflow import iter_traces
from .writers import (
    WriteStats,
    encode_request_json,
    encode_request_proto,
    iter_requests,
    write_otlp_jsonl,
    write_otlp_proto,
)


def generate(scenario: Scenario | None = None) -> GeneratedTraces:
    """Generate every trace of ``scenario`` in memory, with its ground truth."""
    scenario = scenario or Scenario()
    topo = Topology(scenario)
    spans: list[GenSpan] = []
    truth = GroundTruth(scenario.to_dict())
    for trace_spans, trace_truth in iter_traces(scenario):
        spans.extend(trace_spans)
        truth.traces.append(trace_truth)
    return GeneratedTraces(scenario, spans, topo.instances, topo.scopes, truth)


__all__ = [
    "DEFAULT_BASE_TIME_NS",
    "ROLES",
    "WORKFLOWS",
    "GenEvent",
    "GenLink",
    "GenSpan",
    "GeneratedTraces",
    "GroundTruth",
    "Scenario",
    "TraceTruth",
    "WriteStats",
    "encode_request_json",
    "encode_request_proto",
    "generate",
    "iter_requests",
    "iter_traces",
    "write_otlp_jsonl",
    "write_otlp_proto",
]
