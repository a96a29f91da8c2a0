"""Tool calls: the policy check that should guard each, and the execution itself.

For each tool call the model asks for, the agent normally asks the policy
engine first (remote OPA ``opa.decision`` behind a CLIENT->SERVER hop, or an
in-process ``guardrail.evaluate``), then runs ``execute_tool {name}``. Knobs
remove the check (``unguarded_tool_rate``), execute a denied call
(``denied_tool_executed_rate``), deny and skip it (``policy_deny_rate``), send
it to an external API (``external_tool_rate``, ``plaintext_rate``), fail it
(``error_rate``) or fail it once and retry (``retry_rate``).
"""

from __future__ import annotations

import random

from .builder import Streams, TraceBuilder, sub
from .model import CLIENT, INTERNAL, STATUS_ERROR, GenEvent, GenSpan
from .topology import TOOLS, WORKFLOW_TOOLS, Tool
from .truth import ExternalCall, PolicyCheck, Retry, ToolExecution

_ARGS = ("Paris", "8841-22", "llm caching", "q3 revenue", "42", "tokyo", "vector db", "3310-07")


def _policy(b: TraceBuilder, r: random.Random, parent: GenSpan, t: int, agent: str, tool: Tool, call_id: str,
            decision: str) -> tuple[int, str]:
    """A policy decision about ``call_id``; returns (end time, decision span id)."""
    remote = r.random() < 0.7
    attrs = {
        "policy.decision": decision,
        "gen_ai.tool.name": tool.name,
        "gen_ai.tool.call.id": call_id,
        "gen_ai.agent.name": agent,
    }
    if not remote:
        attrs.update({"policy.engine": "guardrails", "policy.name": "tool-allowlist",
                      "openinference.span.kind": "GUARDRAIL"})
        s = b.leaf(r, parent, "guardrail.evaluate", INTERNAL, t, "guardrails", "policy", attrs, 3.0, 0.5)
        b.truth.policy_checks.append(PolicyCheck(s.span_id, call_id, tool.name, decision, "guardrail"))
        return s.end_ns, s.span_id
    found: list[str] = []

    def body(server: GenSpan, t0: int, rb: random.Random) -> int:
        attrs.update({"policy.engine": "opa", "policy.name": "agents.tools.allow"})
        d = b.leaf(rb, server, "opa.decision", INTERNAL, t0, "opa", "policy", attrs, 4.0, 0.5)
        found.append(d.span_id)
        return d.end_ns

    path = "/v1/data/agents/tools/allow"
    c = b.hop(r, parent, t, b.topo.index["policy"], "POST", "/v1/data/{path}", path, "policy", body, port=8181)
    b.truth.policy_checks.append(PolicyCheck(found[0], call_id, tool.name, decision, "opa"))
    return c.end_ns, found[0]


def _execute(b: TraceBuilder, r: random.Random, parent: GenSpan, t: int, tool: Tool, call_id: str, arg: str,
             fail: bool, plaintext: bool, te: ToolExecution) -> GenSpan:
    """One ``execute_tool`` span (and its hop or external call), failed if ``fail``."""
    ex = b.span(r, parent, f"execute_tool {tool.name}", INTERNAL, t, parent.resource, "genai", "tool", {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": tool.name,
        "gen_ai.tool.call.id": call_id,
        "gen_ai.tool.type": tool.tool_type,
        "gen_ai.tool.call.arguments": '{"q": "%s"}' % arg,
    })
    t += b.dur(r, "tool", 0.5, 0.3)
    if tool.external:
        scheme = "http" if plaintext else "https"
        host = tool.target.split("/", 1)[0]
        url = f"{scheme}://" + tool.target.replace("{arg}", arg.replace(" ", "+"))
        c = b.leaf(r, ex, tool.method, CLIENT, t, "httpx", "external_tool", {
            "http.request.method": tool.method,
            "url.full": url,
            "url.scheme": scheme,
            "server.address": host,
            "server.port": 80 if plaintext else 443,
            "http.response.status_code": 503 if fail else 200,
        }, 180.0, 0.6)
        if fail:
            b.fail(c, "external_tool", "503", "Service Unavailable")
        te.client_span_id = c.span_id
        b.truth.external_calls.append(ExternalCall(c.span_id, host, url, scheme, "tool"))
        end = c.end_ns
    elif tool.service is not None:
        def body(server: GenSpan, t0: int, rb: random.Random) -> int:
            w = b.leaf(rb, server, f"{tool.name}.handle", INTERNAL, t0, "tools", "tool",
                       {"code.function.name": f"handle_{tool.name}"}, 60.0, 0.6)
            if fail:
                b.fail(w, "tool", "ToolExecutionError", f"{tool.name} failed", exc="ToolExecutionError")
                server.status_code = STATUS_ERROR
            te.server_span_id = server.span_id
            return w.end_ns

        path = tool.target.replace("{arg}", arg.replace(" ", "-"))
        route = tool.target.replace("{arg}", "{id}")
        c = b.hop(r, ex, t, b.topo.index[tool.service], tool.method, route, path, "tool", body)
        te.client_span_id = c.span_id
        end = c.end_ns
    else:
        end = t + b.dur(r, "tool", 2.0, 0.5)
    ex.end_ns = end + b.dur(r, "tool", 0.4, 0.3)
    ex.events.append(GenEvent(ex.end_ns - 1000, "tool.result", {"result.size": int(r.random() * 4000)}))
    if fail:
        b.fail(ex, "tool", "ToolExecutionError", f"{tool.name} failed", exc="ToolExecutionError")
    return ex


def tool_call(b: TraceBuilder, r: random.Random, parent: GenSpan, start: int, agent: str, workflow: str) -> int:
    """One tool call requested by the model (policy check + execution); returns its end time."""
    sc = b.scenario
    u_ext, u_unguarded, u_denied_exec, u_deny, u_plain, u_err, u_retry = (r.random() for _ in range(7))
    internal, external = WORKFLOW_TOOLS[workflow]
    pick_i, pick_e, arg = r.random(), r.random(), _ARGS[int(r.random() * len(_ARGS))]
    use_ext = bool(external) and (not internal or u_ext < sc.external_tool_rate)
    pool = external if use_ext else internal
    tool = TOOLS[pool[int((pick_e if use_ext else pick_i) * len(pool))]]
    call_id = "call_%024x" % r.getrandbits(96)
    lazy = Streams(r, 3)  # policy check, knob-added content, execution
    t = start
    if u_unguarded < sc.unguarded_tool_rate:
        verdict, decision = "unguarded", None
    elif u_denied_exec < sc.denied_tool_executed_rate:
        verdict, decision = "denied_executed", "deny"
    elif u_deny < sc.policy_deny_rate:
        verdict, decision = "denied_blocked", "deny"
    else:
        verdict, decision = "guarded", "allow"
    policy_span = None
    if decision is not None:
        t, policy_span = _policy(b, lazy[0], parent, t, agent, tool, call_id, decision)
    target = "external" if tool.external else "service" if tool.service else "inproc"
    te = ToolExecution(call_id, tool.name, tool.tool_type, target, verdict, None, policy_span)
    b.truth.tool_executions.append(te)
    if verdict == "denied_blocked":
        return t + b.dur(lazy[1], "agent", 1.0, 0.3)
    plaintext = u_plain < sc.plaintext_rate
    if u_retry < sc.retry_rate:
        rx = lazy[1]
        first = _execute(b, rx, parent, t, tool, call_id, arg, True, plaintext, ToolExecution(**_blank(te)))
        t = first.end_ns + b.dur(rx, "agent", 150, 0.4)
        retried: str | None = first.span_id
    else:
        retried = None
    failed = u_err < sc.error_rate
    ex = _execute(b, lazy[2], parent, t, tool, call_id, arg, failed, plaintext, te)
    te.span_id = ex.span_id
    te.status = "error" if failed else "ok"
    if retried is not None:
        b.truth.retries.append(Retry("execute_tool", retried, ex.span_id))
    return ex.end_ns


def _blank(te: ToolExecution) -> dict[str, object]:
    return {"tool_call_id": te.tool_call_id, "tool_name": te.tool_name, "tool_type": te.tool_type,
            "target": te.target, "verdict": te.verdict, "span_id": None, "policy_span_id": te.policy_span_id}


def tool_round(b: TraceBuilder, r: random.Random, parent: GenSpan, start: int, agent: str, workflow: str,
               n: int, parallel: bool) -> int:
    """``n`` tool calls, concurrently (fan-out, overlapping spans) or one after another; returns the end time."""
    t, end = start, start
    for _ in range(n):
        rc = sub(r)
        stagger = b.dur(r, "agent", 0.3, 0.3)
        if parallel:
            end = max(end, tool_call(b, rc, parent, start + stagger, agent, workflow))
        else:
            t = tool_call(b, rc, parent, t + stagger, agent, workflow)
            end = t
    return end
