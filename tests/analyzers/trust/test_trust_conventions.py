"""Trust rules on OpenLLMetry-style traces: the decision recorded by a ``@task`` guards the tools
after it (role evidence beats the framework's ``task`` label), parallel tool calls each need one."""

from __future__ import annotations

import json
from pathlib import Path

from test_trust_helpers import S, Svc, TraceSet, build, sid, tid, trust_findings

APP = Svc("support-agent")


def wf(n: int = 1, end: float = 100) -> S:
    return S(sid(n), None, "support.workflow", APP, 0, end, attrs={
        "traceloop.span.kind": "workflow", "traceloop.entity.name": "support",
        "traceloop.association.properties.user_id": "u-1",
        "traceloop.association.properties.session_id": "s-1"})


def task(n: int, parent: int, start: float, end: float, **attrs: object) -> S:
    return S(sid(n), sid(parent), "check_policy.task", APP, start, end,
             attrs={"traceloop.span.kind": "task", "traceloop.entity.name": "check_policy", **attrs})


def tool(n: int, parent: int, start: float, end: float, name: str = "refund_order") -> S:
    return S(sid(n), sid(parent), f"{name}.tool", APP, start, end,
             attrs={"traceloop.span.kind": "tool", "traceloop.entity.name": name})


def findings(tmp_path: Path, *spans: S) -> dict[str, set[str]]:
    ts = TraceSet()
    ts.trace(tid(1), spans)
    out: dict[str, set[str]] = {}
    for r in trust_findings(build(tmp_path, ts)):
        out.setdefault(r["kind"], set()).add(r["span_id"])
    return out


def test_task_recording_a_decision_guards_the_tool(tmp_path: Path) -> None:
    f = findings(tmp_path, wf(), task(2, 1, 1, 5, **{"policy.decision": "allow"}), tool(3, 1, 6, 20))
    assert "unguarded_tool_call" not in f and "denied_tool_executed" not in f
    assert "anonymous_privileged_action" not in f  # the association properties identify the user


def test_task_returning_a_deny_decision(tmp_path: Path) -> None:
    out = json.dumps({"decision": "deny", "reason": "amount over limit"})
    f = findings(tmp_path, wf(), task(2, 1, 1, 5, **{"traceloop.entity.output": out}), tool(3, 1, 6, 20))
    assert f.get("denied_tool_executed") == {sid(3)}


def test_guardrail_tripwire_output(tmp_path: Path) -> None:
    out = json.dumps({"tripwire_triggered": True})
    g = S(sid(2), sid(1), "input_guardrail", APP, 1, 5, attrs={"openinference.span.kind": "GUARDRAIL",
                                                               "output.value": out})
    f = findings(tmp_path, wf(), g, tool(3, 1, 6, 20))
    assert f.get("denied_tool_executed") == {sid(3)}


def test_parallel_tool_calls_each_need_a_decision(tmp_path: Path) -> None:
    # two concurrent tool calls after one allowing check, a third concurrent one whose
    # own check (naming it) denied it: the rules see three executions, one denied
    spans = [
        wf(),
        task(2, 1, 1, 5, **{"policy.decision": "allow"}),
        task(3, 1, 2, 5, **{"policy.decision": "deny", "gen_ai.tool.name": "send_email"}),
        tool(4, 1, 6, 30, "lookup_order"),
        tool(5, 1, 6, 25, "refund_order"),
        tool(6, 1, 7, 20, "send_email"),
    ]
    f = findings(tmp_path, *spans)
    assert f.get("denied_tool_executed") == {sid(6)}
    assert "unguarded_tool_call" not in f
    # without any check, each parallel call is its own finding
    f = findings(tmp_path / "none", wf(), tool(4, 1, 6, 30, "lookup_order"), tool(5, 1, 6, 25, "refund_order"))
    assert f.get("unguarded_tool_call") == {sid(4), sid(5)}


def test_one_tool_call_described_by_framework_sdk_and_http_spans_counts_once(tmp_path: Path) -> None:
    # OpenLLMetry @tool span > GenAI execute_tool span (with the call id) > the HTTP call it makes
    # (an MCP-style client span naming the tool): one execution, so one finding
    spans = [
        wf(),
        tool(2, 1, 5, 40, "refund_order"),
        S(sid(3), sid(2), "execute_tool refund_order", APP, 6, 39, attrs={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "refund_order",
            "gen_ai.tool.call.id": "call_9"}),
        S(sid(4), sid(3), "POST", APP, 7, 38, "CLIENT", {
            "http.request.method": "POST", "url.full": "https://tools.internal/refund", "gen_ai.tool.name": "refund_order"}),
    ]
    f = findings(tmp_path, *spans)
    assert f.get("unguarded_tool_call") == {sid(2)}
