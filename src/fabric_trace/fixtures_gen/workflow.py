"""Workflows and the trace stream: sessions, arrival times, one trace per request.

Every trace starts with a SERVER span on the inference gateway, which calls the
agent orchestrator (CLIENT -> SERVER), whose ``invoke_agent`` span runs one of:

* ``support-agent``: memory read, knowledge-base retrieval, chat -> sequential
  tool calls (-> chat -> tool call) -> final chat, memory write, maybe a job;
* ``rag-answer``: 2-3 parallel retrievals (query rewrites), one chat;
* ``research-agent``: memory read, planning chat, 2-4 *parallel* tool calls,
  retrieval, a ``critic-agent`` sub-agent, final chat, memory write, maybe a job.

A background job is a PRODUCER span (kafka send) whose CONSUMER span (in
``report-worker``) is its child *and* links to it, and runs after it ends.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from .builder import MS, Streams, Topology, TraceBuilder, sub, trace_id
from .model import CONSUMER, INTERNAL, PRODUCER, SERVER, GenLink, GenSpan
from .scenario import Scenario
from .steps_llm import Conversation, chat
from .steps_state import memory_read, memory_write, record_repeat, retrieve
from .steps_tools import tool_round
from .topology import MODELS, PEERS
from .truth import AsyncLink, TraceTruth

_QUESTIONS = (
    "how do I reset my api key",
    "where is my order",
    "compare vector databases for rag",
    "summarise recent work on speculative decoding",
    "what is the refund policy for annual plans",
    "why is my invoice higher this month",
    "best practices for prompt caching",
    "how to rotate credentials safely",
)
_POOL = 8  # concurrent conversations


def _ctx(conv: Conversation, calls: int) -> int:
    return conv.turn * 260 + calls * 180


def _publish(b: TraceBuilder, r: random.Random, parent: GenSpan, t: int, conv: Conversation) -> int:
    """Kafka send (PRODUCER) + async processing in report-worker (CONSUMER, linked). Returns the send's end."""
    kafka = PEERS["kafka"]
    prod = b.leaf(r, parent, "send agent.reports", PRODUCER, t, "kafka", "queue", {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": "agent.reports",
        "server.address": kafka.address,
        "server.port": kafka.port,
    }, 2.0, 0.4)
    worker = b.topo.index["worker"]
    cstart = prod.end_ns + b.dur(r, "queue", 35.0, 0.7)
    cons = b.span(r, prod, "process agent.reports", CONSUMER, cstart, worker, "kafka", "queue", {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "agent.reports",
        "messaging.consumer.group.name": "report-workers",
    })
    cons.links.append(GenLink(b.trace_id, prod.span_id, {"messaging.operation.type": "send"}))
    t2 = chat(b, sub(r), cons, cstart + b.dur(r, "queue", 1.0, 0.3), "report-writer", MODELS["report-writer"], conv)
    t2 = memory_write(b, sub(r), cons, t2, conv)
    cons.end_ns = t2 + b.dur(r, "queue", 1.0, 0.3)
    b.truth.async_links.append(AsyncLink(prod.span_id, cons.span_id))
    return prod.end_ns


def _support(b: TraceBuilder, r: random.Random, inv: GenSpan, t: int, conv: Conversation, u: tuple[float, ...]) -> int:
    agent, model, wf = "support-agent", MODELS["support-agent"], "support-agent"
    s = Streams(r, 11)
    n_tools, extra = 1 + (r.random() < 0.4), r.random() < 0.3
    query = _QUESTIONS[int(r.random() * len(_QUESTIONS))]
    t, first_get = memory_read(b, s[0], inv, t, conv)
    t, _, _ = retrieve(b, s[1], inv, t + b.dur(r, "agent", 3, 0.4), conv, wf, query)
    t = chat(b, s[2], inv, t + b.dur(r, "agent", 4, 0.4), agent, model, conv, finish="tool_calls",
             context_tokens=_ctx(conv, 0))
    t = tool_round(b, s[3], inv, t, agent, wf, n_tools, parallel=False)
    if extra:
        t = chat(b, s[4], inv, t + b.dur(s[5], "agent", 3, 0.4), agent, model, conv, finish="tool_calls",
                 context_tokens=_ctx(conv, 1))
        t = tool_round(b, s[5], inv, t, agent, wf, 1, parallel=False)
    t = chat(b, s[6], inv, t + b.dur(r, "agent", 3, 0.4), agent, model, conv, context_tokens=_ctx(conv, 2))
    if u[0] < b.scenario.repeat_fetch_rate:
        t, again = memory_read(b, s[7], inv, t, conv, force_hit=True)
        record_repeat(b, "memory", b.truth.cache_lookups[-1].key, first_get, again)
    t = memory_write(b, s[8], inv, t + b.dur(r, "agent", 1, 0.4), conv)
    if u[1] < b.scenario.async_rate:
        t = _publish(b, s[9], inv, t, conv)
    return t


def _rag(b: TraceBuilder, r: random.Random, inv: GenSpan, t: int, conv: Conversation, u: tuple[float, ...]) -> int:
    agent, model, wf = "rag-answer", MODELS["rag-answer"], "rag-answer"
    s = Streams(r, 6)
    n = 2 + (r.random() < 0.5)
    base = _QUESTIONS[int(r.random() * len(_QUESTIONS))]
    queries = [base] + [f"{base} ({k})" for k in ("detailed", "examples")][: n - 1]
    end, found = t, []
    for i, q in enumerate(queries):
        e, ret_id, get_id = retrieve(b, s[i], inv, t + b.dur(r, "agent", 0.3, 0.3), conv, wf, q)
        end, found = max(end, e), found + [(ret_id, get_id)]
    t = end
    if u[0] < b.scenario.repeat_fetch_rate:
        t, ret2, get2 = retrieve(b, s[3], inv, t + b.dur(s[4], "agent", 1, 0.4), conv, wf, queries[0], force_hit=True)
        _repeat_retrieval(b, wf, queries[0], found[0], (ret2, get2))
    return chat(b, s[5], inv, t + b.dur(r, "agent", 3, 0.4), agent, model, conv, context_tokens=_ctx(conv, 0) + 2400)


def _repeat_retrieval(b: TraceBuilder, wf: str, query: str, first: tuple[str, str], again: tuple[str, str]) -> None:
    from .topology import DATA_SOURCES

    record_repeat(b, "retrieval", f"{DATA_SOURCES[wf][0]}:{query}", first[0], again[0])
    key = next(c.key for c in b.truth.cache_lookups if c.span_id == first[1])
    record_repeat(b, "embedding_cache", key, first[1], again[1])


def _research(b: TraceBuilder, r: random.Random, inv: GenSpan, t: int, conv: Conversation,
              u: tuple[float, ...]) -> int:
    agent, model, wf = "research-agent", MODELS["research-agent"], "research-agent"
    s = Streams(r, 11)
    n_tools = 2 + int(r.random() * 3)
    query = _QUESTIONS[int(r.random() * len(_QUESTIONS))]
    t, _ = memory_read(b, s[0], inv, t, conv)
    t = chat(b, s[1], inv, t + b.dur(r, "agent", 5, 0.4), agent, model, conv, finish="tool_calls",
             context_tokens=_ctx(conv, 0))
    t = tool_round(b, s[2], inv, t, agent, wf, n_tools, parallel=True)
    t, ret1, get1 = retrieve(b, s[3], inv, t + b.dur(r, "agent", 2, 0.4), conv, wf, query)
    if u[0] < b.scenario.repeat_fetch_rate:
        t, ret2, get2 = retrieve(b, s[4], inv, t + b.dur(s[5], "agent", 1, 0.4), conv, wf, query, force_hit=True)
        _repeat_retrieval(b, wf, query, (ret1, get1), (ret2, get2))
    critic_model = MODELS["critic-agent"]
    sub_attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "critic-agent",
                 "gen_ai.agent.id": "agt-critic-01", "gen_ai.request.model": critic_model.request}
    crit = b.span(s[6], inv, "invoke_agent critic-agent", INTERNAL, t + b.dur(r, "agent", 2, 0.4),
                  inv.resource, "genai", "agent", sub_attrs)
    e = chat(b, s[7], crit, crit.start_ns + b.dur(s[6], "agent", 2, 0.4), "critic-agent", critic_model, conv,
             context_tokens=1500)
    crit.end_ns = e + b.dur(s[6], "agent", 1, 0.4)
    t = chat(b, s[8], inv, crit.end_ns + b.dur(r, "agent", 3, 0.4), agent, model, conv, context_tokens=_ctx(conv, 3))
    t = memory_write(b, s[9], inv, t + b.dur(r, "agent", 1, 0.4), conv)
    if u[1] < b.scenario.async_rate:
        t = _publish(b, s[10], inv, t, conv)
    return t


_WORKFLOW_FN: dict[str, Callable[..., int]] = {
    "support-agent": _support,
    "rag-answer": _rag,
    "research-agent": _research,
}


def build_trace(topo: Topology, tr: random.Random, index: int, conv: Conversation, start: int) -> tuple[
        list[GenSpan], TraceTruth]:
    """Build one trace of ``conv.workflow`` starting at ``start``; returns (spans in export order, truth)."""
    sc = topo.scenario
    u_anon, u_repeat, u_async = tr.random(), tr.random(), tr.random()
    anonymous = u_anon < sc.anonymous_rate
    truth = TraceTruth(trace_id(tr), index, conv.workflow, conv.session_id, conv.user_id, anonymous)
    b = TraceBuilder(topo, truth)
    wf = conv.workflow
    root_attrs = {
        "http.request.method": "POST",
        "http.route": "/v1/workflows/{workflow}/invoke",
        "url.path": f"/v1/workflows/{wf}/invoke",
        "url.scheme": "https",
        "server.address": "api.acme.example",
        "server.port": 443,
        "client.address": f"203.0.113.{int(conv.user_id[-3:]) % 250 + 1}",
        "user_agent.original": "acme-web/4.2.0",
        "gen_ai.workflow.name": wf,
    }
    agent_attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": wf,
                   "gen_ai.agent.id": f"agt-{wf}", "gen_ai.workflow.name": wf,
                   "gen_ai.request.model": MODELS[wf].request}
    if not anonymous:
        root_attrs.update({"enduser.id": conv.user_id, "session.id": conv.session_id})
        agent_attrs.update({"user.id": conv.user_id, "session.id": conv.session_id,
                            "gen_ai.conversation.id": conv.session_id})
    root = b.span(tr, None, "POST /v1/workflows/{workflow}/invoke", SERVER, start, topo.index["gateway"],
                  "fastapi", "gateway", root_attrs)
    root.flags = 0x101

    def agent_body(server: GenSpan, t0: int, rb: random.Random) -> int:
        inv = b.span(rb, server, f"invoke_agent {wf}", INTERNAL, t0, server.resource, "genai", "agent", agent_attrs)
        end = _WORKFLOW_FN[wf](b, sub(rb), inv, t0 + b.dur(rb, "agent", 2, 0.4), conv, (u_repeat, u_async))
        inv.end_ns = end + b.dur(rb, "agent", 1.5, 0.4)
        return inv.end_ns

    client = b.hop(tr, root, start + b.dur(tr, "gateway", 1.5, 0.4), topo.index["agent"], "POST", "/v1/run",
                   "/v1/run", "gateway", agent_body, server_role="agent")
    root.end_ns = client.end_ns + b.dur(tr, "gateway", 0.8, 0.4)
    root.attributes["http.response.status_code"] = 200
    return b.finish(), truth


def _conversation(master: random.Random, scenario: Scenario) -> Conversation:
    wf = scenario.workflows[int(master.random() * len(scenario.workflows))]
    turns = 1 + int(master.random() * scenario.max_session_turns)
    sid = "sess-%016x" % master.getrandbits(64)
    user = "user-%04d" % int(master.random() * 500)
    return Conversation(sid, user, wf, turns)


def iter_traces(scenario: Scenario) -> Iterator[tuple[list[GenSpan], TraceTruth]]:
    """Yield ``(spans, truth)`` for each trace, in order, holding only a few conversations in memory."""
    topo = Topology(scenario)
    master = random.Random(scenario.seed)
    pool: list[Conversation | None] = [None] * _POOL
    t = scenario.base_time_ns
    for i in range(scenario.traces):
        t += int(master.expovariate(1.0) * scenario.mean_interarrival_ms * MS)
        slot = int(master.random() * _POOL)
        conv = pool[slot]
        if conv is None or conv.turns_left <= 0:
            conv = pool[slot] = _conversation(master, scenario)
        conv.turns_left -= 1
        tr = random.Random(master.getrandbits(64))
        yield build_trace(topo, tr, i, conv, t)
        conv.turn += 1
