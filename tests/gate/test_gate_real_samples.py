"""The default gate on traces from real third-party instrumentation: dropping the policy step fails.

The samples (tests/data/otlp-samples/generated) were recorded from the OpenTelemetry GenAI, OpenInference
and OpenLLMetry instrumentations of the OpenAI SDK: an agent that calls a model, runs a tool
(``execute_tool get_weather``), calls the model again and makes an embeddings call. The baseline is the
same traces with a guardrail step before the tool (a span carrying ``guardrail.decision = allow``, as a
guardrail library records it); the candidate drops that step, as a change that removed the policy
check would. Each side repeats every sample ten times under new trace and span ids.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import otlp_build

from fabric_trace.gate import run_gate

FILES = ("otel.otlp.jsonl", "openinference.otlp.jsonl", "openllmetry.otlp.jsonl")
COPIES = 10


def _hex(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _spans(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [sp for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for sp in ss["spans"]]


def _copy(doc: dict[str, Any], tag: str, shift_ns: int, guardrail: bool) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    ids: dict[str, str] = {}
    for sp in _spans(doc):
        ids[sp["spanId"]] = _hex(f"{tag}/{sp['spanId']}", 16)
    for sp in _spans(doc):
        sp["traceId"] = _hex(f"{tag}/{sp['traceId']}", 32)
        sp["spanId"] = ids[sp["spanId"]]
        if sp.get("parentSpanId"):
            sp["parentSpanId"] = ids.get(sp["parentSpanId"], sp["parentSpanId"])
        sp["startTimeUnixNano"] = str(int(sp["startTimeUnixNano"]) + shift_ns)
        sp["endTimeUnixNano"] = str(int(sp["endTimeUnixNano"]) + shift_ns)
    if guardrail:
        for rs in doc["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for sp in list(ss["spans"]):
                    if sp["name"].startswith("execute_tool"):
                        start = int(sp["startTimeUnixNano"])
                        ss["spans"].append(otlp_build.span(
                            sp["traceId"], _hex(f"{tag}/guard/{sp['spanId']}", 16), sp["parentSpanId"],
                            "guardrail check_tool_call", start - 400_000, start - 100_000, t0=0, unit=1,
                            attrs={"guardrail.decision": "allow", "gen_ai.tool.name": "get_weather"}))
    return doc


def _side(samples: Path, out: Path, label: str, guardrail: bool) -> str:
    lines = []
    for name in FILES:
        for line in (samples / "generated" / name).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            doc = json.loads(line)
            for i in range(COPIES):
                lines.append(json.dumps(_copy(doc, f"{label}/{name}/{i}", i * 5_000_000_000, guardrail)))
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(out)


def test_dropping_the_policy_spans_of_real_traces_fails(samples: Path, tmp_path: Path) -> None:
    baseline = _side(samples, tmp_path / "baseline.jsonl", "b", guardrail=True)
    candidate = _side(samples, tmp_path / "candidate.jsonl", "c", guardrail=False)
    run = run_gate([baseline], [candidate])
    failed = {r.name: r for r in run.outcome.failed}
    described = "\n".join(f"{r.verdict} {r.name} [{r.workflow}]: {r.reason}" for r in run.outcome.results)
    assert run.exit_code == 1, described
    guard = failed.get("structure guardrail_removed")
    assert guard is not None and "-> policy" in guard.reason, described
    unguarded = [r for r in run.outcome.failed if "unguarded_tool_call" in r.name]
    assert unguarded, described
    # the unchanged traces pass: same guardrail on both sides
    same = run_gate([baseline], [_side(samples, tmp_path / "again.jsonl", "a", guardrail=True)])
    assert same.exit_code == 0, "\n".join(r.reason for r in same.outcome.failed)
