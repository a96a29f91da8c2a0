"""Make the real-instrumentation captures in this folder (see README.md).

Runs one small support agent, instrumented by a REAL instrumentation library, against a fake
OpenAI-compatible server on 127.0.0.1 (no network), and writes

* ``<convention>.otlp.jsonl``: the spans the library produced (SDK in-memory exporter, written as
  OTLP/JSON lines: hex ids, typed attribute values), and
* ``<convention>.truth.json``: the program's own log of what it did: per trace its session and
  user, every LLM call with the tokens the server charged, every tool call with its policy
  decision and whether it ran, the span id of each span it created itself and that span's role,
  and the trust findings that follow (a tool that ran with no decision, a tool that ran although
  denied).

Usage (each convention needs its libraries, see README.md; none of them is a dependency of fabric):

    python tests/data/captures/make_captures.py openllmetry
    python tests/data/captures/make_captures.py otel-genai-old   # and otel-genai-new, openinference,
    # langchain-openinference, langchain-openai-layers, langgraph, llamaindex; vercel-ai runs make_capture_vercel_ai.cjs with node

The scenario, per request: an LLM call offered tools answers with two parallel tool calls; each
call is checked by policy (or not), the two run concurrently in threads, and a second LLM call
reads their results. Requests differ in tools and decisions so that every finding kind occurs.
"""

from __future__ import annotations

import contextvars
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
#: Where the captures are written (this folder; CAPTURE_OUT for a trial run elsewhere).
OUT = Path(os.environ.get("CAPTURE_OUT", HERE))
#: The tool span of the tool call running in this thread (tool calls run in parallel threads).
LAST = threading.local()
MODEL = "gpt-4o-mini"

#: The requests: session, user, the two tools the model asks for, and per tool the policy
#: behaviour: "allow", "deny" (not run), "deny-run" (run anyway: a bug), "none" (no check).
REQUESTS: list[dict[str, Any]] = [
    {"session": "sess-1", "user": "user-1", "tools": [("lookup_order", "allow"), ("refund_order", "allow")]},
    {"session": "sess-2", "user": "user-2", "tools": [("lookup_order", "allow"), ("send_email", "deny-run")]},
    {"session": "sess-3", "user": None, "tools": [("lookup_order", "none"), ("delete_account", "deny")]},
    {"session": "sess-1", "user": "user-1", "tools": [("search_kb", "allow"), ("update_ticket", "none")]},
]


# --------------------------------------------------------------------- the fake OpenAI server
class FakeOpenAI(BaseHTTPRequestHandler):
    """Chat completions: offered tools and no tool results yet -> two parallel tool calls; else text.

    Usage is a documented function of the request (prompt: 20 + 7 per message, completion: 9 per
    tool call or 12 for text), so every call has its own token counts.
    """

    plan: dict[str, list[str]] = {}  # first user message -> tool names to call

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        if self.path.endswith("/embeddings"):
            inputs = body.get("input")
            n = len(inputs) if isinstance(inputs, list) else 1
            out = {"object": "list", "model": body.get("model", "text-embedding-3-small"),
                   "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(n)],
                   "usage": {"prompt_tokens": 4 * n, "total_tokens": 4 * n}}
            return self._send(out)
        msgs = body.get("messages", [])
        prompt = 20 + 7 * len(msgs)
        has_results = any(m.get("role") == "tool" for m in msgs)
        first_user = next((m.get("content") for m in msgs if m.get("role") == "user"), "")
        names = self.plan.get(first_user, [])
        n = int(self.headers.get("x-call-no", "0") or 0)
        if body.get("tools") and not has_results and names:
            calls = [{"id": f"call_{abs(hash(first_user)) % 10_000}_{i}", "type": "function",
                      "function": {"name": nm, "arguments": json.dumps({"order_id": "A-1"})}}
                     for i, nm in enumerate(names)]
            msg = {"role": "assistant", "content": None, "tool_calls": calls}
            finish, completion = "tool_calls", 9 * len(calls)
        else:
            msg = {"role": "assistant", "content": "Done: your request was handled."}
            finish, completion = "stop", 12
        out = {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": 1_700_000_000, "model": MODEL,
               "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
               "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                         "total_tokens": prompt + completion}}
        self._send(out)

    def _send(self, out: dict[str, Any]) -> None:
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def start_server() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


# --------------------------------------------------------------------- OTLP/JSON from SDK spans
def _any(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, (list, tuple)):
        return {"arrayValue": {"values": [_any(x) for x in v]}}
    return {"stringValue": str(v)}


def _attrs(d: Any) -> list[dict[str, Any]]:
    return [{"key": k, "value": _any(v)} for k, v in (d or {}).items()]


def write_otlp(spans: list[Any], path: Path) -> None:
    """One ExportTraceServiceRequest per resource+scope, as OTLP/JSON lines."""
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for s in spans:
        res = json.dumps(dict(s.resource.attributes), sort_keys=True, default=str)
        sc = s.instrumentation_scope
        groups.setdefault((res, sc.name if sc else "", (sc.version or "") if sc else ""), []).append(s)
    with path.open("w", encoding="utf-8") as f:
        for (res, scope, version), group in groups.items():
            out = []
            for s in sorted(group, key=lambda x: x.start_time):
                ctx = s.get_span_context()
                span = {"traceId": f"{ctx.trace_id:032x}", "spanId": f"{ctx.span_id:016x}", "name": s.name,
                        "kind": s.kind.value + 1, "startTimeUnixNano": str(s.start_time),
                        "endTimeUnixNano": str(s.end_time), "attributes": _attrs(s.attributes),
                        "events": [{"timeUnixNano": str(e.timestamp), "name": e.name, "attributes": _attrs(e.attributes)}
                                   for e in s.events],
                        "status": {"code": s.status.status_code.value, **({"message": s.status.description}
                                                                          if s.status.description else {})}}
                if s.parent is not None:
                    span["parentSpanId"] = f"{s.parent.span_id:016x}"
                out.append(span)
            doc = {"resourceSpans": [{"resource": {"attributes": _attrs(json.loads(res))},
                                      "scopeSpans": [{"scope": {"name": scope, **({"version": version} if version else {})},
                                                      "spans": out}]}]}
            f.write(json.dumps(doc, separators=(",", ":")) + "\n")


# --------------------------------------------------------------------- the program's own log
class Log:
    """What the program did, as it saw it."""

    def __init__(self, convention: str, libraries: dict[str, str]) -> None:
        self.data: dict[str, Any] = {"convention": convention, "libraries": libraries, "traces": [],
                                     "spans": {}, "named_spans": [], "llm_calls": [], "embedding_calls": [], "tool_calls": [],
                                     "policy_checks": []}
        self.lock = threading.Lock()

    def span(self, span: Any, role: str) -> str:
        sid = f"{span.get_span_context().span_id:016x}"
        with self.lock:
            self.data["spans"][sid] = role
        return sid

    def named(self, trace_id: str, name: str, role: str) -> None:
        """A span the program cannot see (the framework does not make it current): by trace and name."""
        with self.lock:
            self.data["named_spans"].append([trace_id, name, role])

    def add(self, key: str, row: dict[str, Any]) -> None:
        with self.lock:
            self.data[key].append(row)

    def findings(self) -> list[dict[str, str]]:
        out = []
        for t in self.data["tool_calls"]:
            if not t["ran"]:
                continue
            if t["decision"] is None:
                out.append({"kind": "unguarded_tool_call", "span_id": t["span_id"], "trace_id": t["trace_id"],
                            "tool": t["tool"]})
            elif t["decision"] == "deny":
                out.append({"kind": "denied_tool_executed", "span_id": t["span_id"], "trace_id": t["trace_id"],
                            "tool": t["tool"]})
        return out

    def write(self, path: Path) -> None:
        self.data["findings"] = self.findings()
        path.write_text(json.dumps(self.data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def trace_id_now() -> str:
    from opentelemetry import trace
    return f"{trace.get_current_span().get_span_context().trace_id:032x}"


TOOLS_SCHEMA = [{"type": "function", "function": {"name": n, "description": n.replace("_", " "),
                                                  "parameters": {"type": "object", "properties": {
                                                      "order_id": {"type": "string"}}}}}
                for n in ("lookup_order", "refund_order", "send_email", "delete_account", "search_kb",
                          "update_ticket")]


def run_agent(client: Any, log: Log, req: dict[str, Any], i: int,
              guard: Callable[[str, str, str, str], str | None],
              run_tool: Callable[[str, str, Callable[[], str]], str]) -> None:
    """One request: LLM call, parallel guarded tool calls, LLM call. ``guard(tool, call_id, behaviour,
    trace_id)`` records a check and returns its decision (None: no check); ``run_tool(name, call_id, fn)``
    runs ``fn`` inside the convention's tool span."""
    question = f"request {i}: please help with order A-{i}"
    FakeOpenAI.plan[question] = [t for t, _ in req["tools"]]
    behaviour = dict(req["tools"])
    msgs: list[dict[str, Any]] = [{"role": "system", "content": "You are a support agent."},
                                  {"role": "user", "content": question}]
    resp = client.chat.completions.create(model=MODEL, messages=msgs, tools=TOOLS_SCHEMA)
    log.add("llm_calls", {"trace_id": trace_id_now(), "input_tokens": resp.usage.prompt_tokens,
                          "output_tokens": resp.usage.completion_tokens})
    calls = resp.choices[0].message.tool_calls or []
    msgs.append({"role": "assistant", "content": None,
                 "tool_calls": [{"id": c.id, "type": "function",
                                 "function": {"name": c.function.name, "arguments": c.function.arguments}}
                                for c in calls]})

    def one(call: Any) -> tuple[str, str]:
        name, b = call.function.name, behaviour[call.function.name]
        LAST.tool = None
        tid = trace_id_now()
        decision = guard(name, call.id, b, tid)
        ran = decision != "deny" or b == "deny-run"
        result = "skipped: denied by policy"
        if ran:
            def body() -> str:
                return json.dumps({"tool": name, "status": "ok"})
            result = run_tool(name, call.id, body)
        log.add("tool_calls", {"trace_id": tid, "tool": name, "call_id": call.id, "decision": decision,
                               "ran": ran, "span_id": LAST.tool if ran else None})
        return call.id, result

    # parallel tool calls: each in its own thread, in a copy of this context (the span stays the parent)
    with ThreadPoolExecutor(max_workers=len(calls) or 1) as pool:
        futures = [pool.submit(contextvars.copy_context().run, one, c) for c in calls]
        results = [f.result() for f in futures]
    for call_id, result in results:
        msgs.append({"role": "tool", "tool_call_id": call_id, "content": result})
    resp = client.chat.completions.create(model=MODEL, messages=msgs, tools=TOOLS_SCHEMA)
    log.add("llm_calls", {"trace_id": trace_id_now(), "input_tokens": resp.usage.prompt_tokens,
                          "output_tokens": resp.usage.completion_tokens})


# --------------------------------------------------------------------- conventions
def versions(*names: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            out[n] = "not installed"
    return out


def sdk() -> tuple[Any, Any]:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "support-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


class ManualGenAI:
    """``invoke_agent``/``execute_tool`` spans as the GenAI conventions of that time define them, with
    the same interface as util-genai's handler (used where util-genai cannot be installed)."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer

    class _Inv:
        def __init__(self, cm: Any) -> None:
            self.cm = cm

        def __enter__(self) -> Any:
            self.span = self.cm.__enter__()
            return self

        def __exit__(self, *exc: Any) -> None:
            self.cm.__exit__(*exc)

    def tool(self, name: str, *, tool_call_id: str, tool_type: str) -> Any:
        return self._Inv(self.tracer.start_as_current_span(f"execute_tool {name}", attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.call.id": tool_call_id,
            "gen_ai.tool.type": tool_type}))

    def invoke_local_agent(self, *, agent_name: str, request_model: str) -> Any:
        return self._Inv(self.tracer.start_as_current_span(f"invoke_agent {agent_name}", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent_name, "gen_ai.system": "openai",
            "gen_ai.request.model": request_model}))


def run_otel_genai(name: str, new_names: bool) -> None:
    """opentelemetry-instrumentation-openai-v2 for the model calls, opentelemetry-util-genai for the
    agent and tool spans. The GenAI conventions have no guardrail span: the check is a plain span with
    ``gen_ai.security.decision.type`` (the GenAI security decision attribute)."""
    if new_names:
        os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
    from openai import OpenAI
    from opentelemetry import trace
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    provider, exporter = sdk()
    trace.set_tracer_provider(provider)
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    tracer = trace.get_tracer("support-agent.policy")
    try:
        from opentelemetry.util.genai.handler import get_telemetry_handler
        handler: Any = get_telemetry_handler(tracer_provider=provider)
    except ImportError:  # older instrumentation without util-genai: the GenAI agent/tool spans by hand
        handler = ManualGenAI(tracer)
    libs = ["opentelemetry-instrumentation-openai-v2", "opentelemetry-sdk", "openai"]
    if not isinstance(handler, ManualGenAI):
        libs.insert(1, "opentelemetry-util-genai")
    log = Log(name, versions(*libs))
    server, url = start_server()
    client = OpenAI(base_url=url, api_key="test")
    local = threading.local()

    def guard(tool: str, call_id: str, b: str, tid: str) -> str | None:
        if b == "none":
            return None
        decision = "allow" if b == "allow" else "deny"
        with tracer.start_as_current_span(f"guardrail {tool}") as s:
            s.set_attribute("gen_ai.security.decision.type", decision)
            s.set_attribute("gen_ai.tool.name", tool)
            s.set_attribute("gen_ai.tool.call.id", call_id)
            log.span(s, "policy")
        log.add("policy_checks", {"trace_id": tid, "tool": tool, "call_id": call_id, "decision": decision})
        return decision

    def run_tool(tool: str, call_id: str, fn: Callable[[], str]) -> str:
        with handler.tool(tool, tool_call_id=call_id, tool_type="function") as inv:
            out = fn()
            LAST.tool = log.span(inv.span, "tool")
        return out

    for i, req in enumerate(REQUESTS, 1):
        with handler.invoke_local_agent(agent_name="support", request_model=MODEL) as agent:
            agent.span.set_attribute("gen_ai.conversation.id", req["session"])
            if req["user"]:
                agent.span.set_attribute("enduser.id", req["user"])
            log.span(agent.span, "agent")
            log.add("traces", {"trace_id": trace_id_now(), "session_id": req["session"], "user_id": req["user"]})
            run_agent(client, log, req, i, guard, run_tool)
    server.shutdown()
    finish(name, exporter, log)


def run_openinference() -> None:
    """openinference-instrumentation-openai for the model calls; the agent, guardrail, tool, retriever,
    reranker and embedding steps through OpenInference's own tracer helpers (OITracer), with
    ``using_session``/``using_user`` for the session and user."""
    from openai import OpenAI
    from openinference.instrumentation import TracerProvider as _unused  # noqa: F401
    from openinference.instrumentation import OITracer, TraceConfig, using_session, using_user
    from openinference.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry import trace

    provider, exporter = sdk()
    trace.set_tracer_provider(provider)
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    tracer = OITracer(trace.get_tracer("support-agent"), config=TraceConfig())
    log = Log("openinference", versions("openinference-instrumentation-openai", "openinference-instrumentation",
                                        "openinference-semantic-conventions", "opentelemetry-sdk", "openai"))
    server, url = start_server()
    client = OpenAI(base_url=url, api_key="test")

    def guard(tool: str, call_id: str, b: str, tid: str) -> str | None:
        if b == "none":
            return None
        decision = "allow" if b == "allow" else "deny"
        with tracer.start_as_current_span(f"tool-allowlist {tool}", openinference_span_kind="guardrail") as s:
            s.set_input({"tool": tool, "tool_call_id": call_id})
            s.set_output({"decision": decision, "policy": "tool-allowlist", "tool": tool, "tool_call_id": call_id})
            log.span(s, "policy")
        log.add("policy_checks", {"trace_id": tid, "tool": tool, "call_id": call_id, "decision": decision})
        return decision

    def run_tool(tool: str, call_id: str, fn: Callable[[], str]) -> str:
        with tracer.start_as_current_span(tool, openinference_span_kind="tool") as s:
            s.set_tool(name=tool, description=tool.replace("_", " "), parameters={"order_id": "string"})
            s.set_input({"order_id": "A-1"})
            out = fn()
            s.set_output(out)
            LAST.tool = log.span(s, "tool")
        return out

    for i, req in enumerate(REQUESTS, 1):
        with using_session(req["session"]), using_user(req["user"] or ""):
            with tracer.start_as_current_span("support-agent", openinference_span_kind="agent") as agent:
                log.span(agent, "agent")
                log.add("traces", {"trace_id": trace_id_now(), "session_id": req["session"],
                                   "user_id": req["user"]})
                with tracer.start_as_current_span("kb-search", openinference_span_kind="retriever") as r:
                    r.set_input(f"order A-{i}")
                    log.span(r, "retrieval")
                    emb = client.embeddings.create(model="text-embedding-3-small", input=[f"order A-{i}"])
                    log.add("embedding_calls", {"trace_id": trace_id_now(), "input_tokens": emb.usage.prompt_tokens})
                with tracer.start_as_current_span("rerank", openinference_span_kind="reranker") as rr:
                    log.span(rr, "rerank")
                run_agent(client, log, req, i, guard, run_tool)
    server.shutdown()
    finish("openinference", exporter, log)


def run_openllmetry() -> None:
    """traceloop-sdk: @workflow/@agent/@task/@tool decorators, its OpenAI instrumentation, and
    association properties for the session and user. Request 1 records the policy decision as a span
    attribute inside the @task; the others return it (the @task's entity output)."""
    from openai import OpenAI
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from traceloop.sdk import Traceloop
    from traceloop.sdk.decorators import agent, task, tool, workflow

    exporter = InMemorySpanExporter()
    Traceloop.init(app_name="support-agent", exporter=exporter, disable_batch=True, telemetry_enabled=False,
                   should_enrich_metrics=False)
    log = Log("openllmetry", versions("traceloop-sdk", "opentelemetry-instrumentation-openai",
                                      "opentelemetry-semantic-conventions-ai", "opentelemetry-sdk", "openai"))
    server, url = start_server()
    client = OpenAI(base_url=url, api_key="test")
    state = {"i": 0}

    @task(name="check_policy")
    def check_policy(tool_name: str, call_id: str, decision: str) -> dict[str, str]:
        s = trace.get_current_span()
        log.span(s, "policy")
        if state["i"] == 1:
            s.set_attribute("policy.decision", decision)
        return {"decision": decision, "tool": tool_name, "tool_call_id": call_id}

    def guard(tool_name: str, call_id: str, b: str, tid: str) -> str | None:
        if b == "none":
            return None
        decision = "allow" if b == "allow" else "deny"
        check_policy(tool_name, call_id, decision)
        log.add("policy_checks", {"trace_id": tid, "tool": tool_name, "call_id": call_id, "decision": decision})
        return decision

    def run_tool(tool_name: str, call_id: str, fn: Callable[[], str]) -> str:
        @tool(name=tool_name)
        def execute(order_id: str) -> str:
            LAST.tool = log.span(trace.get_current_span(), "tool")
            return fn()
        return execute("A-1")

    @agent(name="support")
    def support(req: dict[str, Any], i: int) -> None:
        log.span(trace.get_current_span(), "agent")
        run_agent(client, log, req, i, guard, run_tool)

    @workflow(name="support_request")
    def handle(req: dict[str, Any], i: int) -> None:
        log.span(trace.get_current_span(), "workflow")
        log.add("traces", {"trace_id": trace_id_now(), "session_id": req["session"], "user_id": req["user"]})
        support(req, i)

    for i, req in enumerate(REQUESTS, 1):
        state["i"] = i
        props = {"session_id": req["session"]}
        if req["user"]:
            props["user_id"] = req["user"]
        Traceloop.set_association_properties(props)
        handle(req, i)
    server.shutdown()
    finish("openllmetry", exporter, log)


def run_langchain_openinference(name: str = "langchain-openinference", openai_layer: bool = False) -> None:
    """LangChain (langchain-openai ChatOpenAI with bound tools, langchain-core tools and runnables)
    instrumented by openinference-instrumentation-langchain. The policy check is a RunnableLambda
    (an OpenInference CHAIN span) whose output is the decision; tools are LangChain tools (TOOL spans).
    The instrumentation does not make its spans current, so the program names its spans by trace
    and name (``named_spans``) instead of span id.

    With ``openai_layer`` (convention ``langchain-openai-layers``) openinference-instrumentation-openai
    is installed too, as teams often do: every model call is then reported twice, by LangChain's
    ``ChatOpenAI`` LLM span and, below it, by the OpenAI SDK's ``ChatCompletion`` LLM span (one call,
    two layers: docs/llm.md, "One call, one row")."""
    from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage
    from langchain_core.runnables import RunnableConfig, RunnableLambda
    from langchain_core.tools import StructuredTool
    from langchain_openai import ChatOpenAI
    from openinference.instrumentation import using_session, using_user
    from openinference.instrumentation.langchain import LangChainInstrumentor
    from opentelemetry import trace

    provider, exporter = sdk()
    trace.set_tracer_provider(provider)
    LangChainInstrumentor().instrument(tracer_provider=provider)
    libraries = ["openinference-instrumentation-langchain", "langchain-core", "langchain-openai", "opentelemetry-sdk",
                 "openai"]
    if openai_layer:
        from openinference.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=provider)
        libraries.insert(1, "openinference-instrumentation-openai")
    log = Log(name, versions(*libraries))
    server, url = start_server()
    llm = ChatOpenAI(model=MODEL, base_url=url, api_key="test", max_retries=0)
    tool_fns = {}
    for n in ("lookup_order", "refund_order", "send_email", "delete_account", "search_kb", "update_ticket"):
        def fn(order_id: str, _n: str = n) -> str:
            log.named(trace_id_now(), _n, "tool")
            return json.dumps({"tool": _n, "status": "ok"})
        tool_fns[n] = StructuredTool.from_function(func=fn, name=n, description=n.replace("_", " "))
    model = llm.bind_tools(list(tool_fns.values()))

    def policy(inp: dict[str, str]) -> dict[str, str]:
        log.named(trace_id_now(), "check_policy", "policy")
        return {"decision": inp["decision"], "tool": inp["tool"], "tool_call_id": inp["tool_call_id"]}

    check = RunnableLambda(policy, name="check_policy")

    def agent(req: dict[str, Any], i: int) -> None:
        log.named(trace_id_now(), "support_request", "workflow")
        question = f"request {i}: please help with order A-{i}"
        FakeOpenAI.plan[question] = [t for t, _ in req["tools"]]
        behaviour = dict(req["tools"])
        msgs: list[Any] = [SystemMessage("You are a support agent."), HumanMessage(question)]
        ai = model.invoke(msgs)
        u = ai.usage_metadata or {}
        log.add("llm_calls", {"trace_id": trace_id_now(), "input_tokens": u.get("input_tokens"),
                              "output_tokens": u.get("output_tokens")})
        msgs.append(ai)

        def one(call: dict[str, Any]) -> ToolMessage:
            name, b = call["name"], behaviour[call["name"]]
            LAST.tool = None
            tid = trace_id_now()
            decision = None
            if b != "none":
                decision = "allow" if b == "allow" else "deny"
                check.invoke({"decision": decision, "tool": name, "tool_call_id": call["id"]})
                log.add("policy_checks", {"trace_id": tid, "tool": name, "call_id": call["id"], "decision": decision})
            ran = decision != "deny" or b == "deny-run"
            content = "skipped: denied by policy"
            if ran:
                content = tool_fns[name].invoke(call["args"])
            log.add("tool_calls", {"trace_id": tid, "tool": name, "call_id": call["id"], "decision": decision,
                                   "ran": ran, "span_id": LAST.tool if ran else None})
            return ToolMessage(content=content, tool_call_id=call["id"])

        with ThreadPoolExecutor(max_workers=len(ai.tool_calls) or 1) as pool:
            futures = [pool.submit(contextvars.copy_context().run, one, c) for c in ai.tool_calls]
            msgs.extend(f.result() for f in futures)
        ai = model.invoke(msgs)
        u = ai.usage_metadata or {}
        log.add("llm_calls", {"trace_id": trace_id_now(), "input_tokens": u.get("input_tokens"),
                              "output_tokens": u.get("output_tokens")})

    def handle(args: dict[str, Any], config: RunnableConfig) -> str:
        agent(args["req"], args["i"])
        return "ok"

    workflow = RunnableLambda(handle, name="support_request")
    for i, req in enumerate(REQUESTS, 1):
        with using_session(req["session"]), using_user(req["user"] or ""):
            tracer = trace.get_tracer("support-agent")
            with tracer.start_as_current_span("request"):
                log.add("traces", {"trace_id": trace_id_now(), "session_id": req["session"], "user_id": req["user"]})
                workflow.invoke({"req": req, "i": i})
    server.shutdown()
    finish(name, exporter, log)


def run_llamaindex() -> None:
    """LlamaIndex (llama-index-core, llama-index-llms-openai) instrumented by
    openinference-instrumentation-llama-index. The model calls are ``OpenAI.chat_with_tools``, the
    tools ``FunctionTool``s called with ``tool.call``; the policy check is a function traced with
    LlamaIndex's own instrumentation dispatcher (``@dispatcher.span``: a CHAIN span whose output is
    the decision); ``using_session``/``using_user`` give the session and user."""
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.llms import ChatMessage
    from llama_index.core.tools import FunctionTool
    from llama_index.llms.openai import OpenAI as LlamaOpenAI
    from openinference.instrumentation import using_session, using_user
    from openinference.instrumentation.llama_index import LlamaIndexInstrumentor
    from opentelemetry import trace

    provider, exporter = sdk()
    trace.set_tracer_provider(provider)
    LlamaIndexInstrumentor().instrument(tracer_provider=provider)
    log = Log("llamaindex", versions("openinference-instrumentation-llama-index", "llama-index-core",
                                     "llama-index-llms-openai", "opentelemetry-sdk", "openai"))
    server, url = start_server()
    llm = LlamaOpenAI(model=MODEL, api_base=url, api_key="test", max_retries=0)
    dispatcher = get_dispatcher("support_agent")

    def make_tool(n: str) -> Any:
        def fn(order_id: str) -> str:
            log.named(trace_id_now(), "FunctionTool.call", "tool")
            return json.dumps({"tool": n, "status": "ok"})
        return FunctionTool.from_defaults(fn=fn, name=n, description=n.replace("_", " "))

    tools = {n: make_tool(n) for n in ("lookup_order", "refund_order", "send_email", "delete_account",
                                       "search_kb", "update_ticket")}

    @dispatcher.span
    def check_policy(tool: str, tool_call_id: str, decision: str) -> dict[str, str]:
        log.named(trace_id_now(), policy_span, "policy")
        return {"decision": decision, "tool": tool, "tool_call_id": tool_call_id}

    policy_span = check_policy.__qualname__  # the dispatcher names its span after the function

    def agent(req: dict[str, Any], i: int) -> None:
        question = f"request {i}: please help with order A-{i}"
        FakeOpenAI.plan[question] = [t for t, _ in req["tools"]]
        behaviour = dict(req["tools"])
        msgs = [ChatMessage(role="system", content="You are a support agent."),
                ChatMessage(role="user", content=question)]
        resp = llm.chat_with_tools(list(tools.values()), chat_history=msgs, allow_parallel_tool_calls=True)
        usage = resp.raw.usage
        log.add("llm_calls", {"trace_id": trace_id_now(), "input_tokens": usage.prompt_tokens,
                              "output_tokens": usage.completion_tokens})
        calls = llm.get_tool_calls_from_response(resp, error_on_no_tool_call=False)
        msgs.append(resp.message)

        def one(call: Any) -> ChatMessage:
            name, b = call.tool_name, behaviour[call.tool_name]
            tid = trace_id_now()
            decision = None
            if b != "none":
                decision = "allow" if b == "allow" else "deny"
                check_policy(name, call.tool_id, decision)
                log.add("policy_checks", {"trace_id": tid, "tool": name, "call_id": call.tool_id,
                                          "decision": decision})
            ran = decision != "deny" or b == "deny-run"
            content = "skipped: denied by policy"
            if ran:
                content = str(tools[name].call(**call.tool_kwargs))
            log.add("tool_calls", {"trace_id": tid, "tool": name, "call_id": call.tool_id, "decision": decision,
                                   "ran": ran, "span_id": None})
            return ChatMessage(role="tool", content=content, additional_kwargs={"tool_call_id": call.tool_id})

        with ThreadPoolExecutor(max_workers=len(calls) or 1) as pool:
            futures = [pool.submit(contextvars.copy_context().run, one, c) for c in calls]
            msgs.extend(f.result() for f in futures)
        resp = llm.chat_with_tools(list(tools.values()), chat_history=msgs)
        usage = resp.raw.usage
        log.add("llm_calls", {"trace_id": trace_id_now(), "input_tokens": usage.prompt_tokens,
                              "output_tokens": usage.completion_tokens})

    tracer = trace.get_tracer("support-agent")
    for i, req in enumerate(REQUESTS, 1):
        with using_session(req["session"]), using_user(req["user"] or ""):
            with tracer.start_as_current_span("support_request"):
                log.add("traces", {"trace_id": trace_id_now(), "session_id": req["session"], "user_id": req["user"]})
                agent(req, i)
    server.shutdown()
    finish("llamaindex", exporter, log)


def run_langgraph() -> None:
    """LangGraph (a ``StateGraph``: an ``agent`` node calling langchain-openai's ``ChatOpenAI`` with bound
    tools, and one ``call_tool`` branch per tool call sent with ``Send``, which LangGraph runs in
    parallel) instrumented by openinference-instrumentation-langchain. In each branch the policy check
    is a ``RunnableLambda`` (a CHAIN span whose output is the decision) run before the tool (a
    LangChain tool: a TOOL span). The instrumentation does not make its spans current, so the program
    names its spans by trace and name (``named_spans``)."""
    import operator
    from typing import Annotated, TypedDict

    from langchain_core.messages import AnyMessage, HumanMessage, SystemMessage, ToolMessage
    from langchain_core.runnables import RunnableLambda
    from langchain_core.tools import StructuredTool
    from langchain_openai import ChatOpenAI
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Send
    from openinference.instrumentation import using_session, using_user
    from openinference.instrumentation.langchain import LangChainInstrumentor
    from opentelemetry import trace

    provider, exporter = sdk()
    trace.set_tracer_provider(provider)
    LangChainInstrumentor().instrument(tracer_provider=provider)
    log = Log("langgraph", versions("openinference-instrumentation-langchain", "langgraph", "langchain-core",
                                    "langchain-openai", "opentelemetry-sdk", "openai"))
    server, url = start_server()
    llm = ChatOpenAI(model=MODEL, base_url=url, api_key="test", max_retries=0)
    tool_fns = {}
    for n in ("lookup_order", "refund_order", "send_email", "delete_account", "search_kb", "update_ticket"):
        def fn(order_id: str, _n: str = n) -> str:
            log.named(trace_id_now(), _n, "tool")
            return json.dumps({"tool": _n, "status": "ok"})
        tool_fns[n] = StructuredTool.from_function(func=fn, name=n, description=n.replace("_", " "))
    model = llm.bind_tools(list(tool_fns.values()))

    def policy(inp: dict[str, str]) -> dict[str, str]:
        log.named(trace_id_now(), "check_policy", "policy")
        return {"decision": inp["decision"], "tool": inp["tool"], "tool_call_id": inp["tool_call_id"]}

    check = RunnableLambda(policy, name="check_policy")
    behaviour: dict[str, str] = {}

    # the functional form: this module's ``from __future__ import annotations`` would leave a class
    # body's annotations as strings that LangGraph evaluates in the module's globals
    State = TypedDict("State", {"messages": Annotated[list[AnyMessage], operator.add]})  # noqa: UP013

    def agent_node(state: Any) -> dict[str, Any]:
        ai = model.invoke(state["messages"])
        u = ai.usage_metadata or {}
        log.add("llm_calls", {"trace_id": trace_id_now(), "input_tokens": u.get("input_tokens"),
                              "output_tokens": u.get("output_tokens")})
        return {"messages": [ai]}

    def route(state: Any) -> Any:
        calls = getattr(state["messages"][-1], "tool_calls", None)
        return [Send("call_tool", {"call": c}) for c in calls] if calls else END

    def call_tool(arg: dict[str, Any]) -> dict[str, Any]:
        call = arg["call"]
        name, b = call["name"], behaviour[call["name"]]
        tid = trace_id_now()
        decision = None
        if b != "none":
            decision = "allow" if b == "allow" else "deny"
            check.invoke({"decision": decision, "tool": name, "tool_call_id": call["id"]})
            log.add("policy_checks", {"trace_id": tid, "tool": name, "call_id": call["id"], "decision": decision})
        ran = decision != "deny" or b == "deny-run"
        content = "skipped: denied by policy"
        if ran:
            time.sleep(0.02)  # long enough for the parallel branches to overlap
            content = tool_fns[name].invoke(call["args"])
        log.add("tool_calls", {"trace_id": tid, "tool": name, "call_id": call["id"], "decision": decision,
                               "ran": ran, "span_id": None})
        return {"messages": [ToolMessage(content=content, tool_call_id=call["id"])]}

    graph = StateGraph(State)
    graph.add_node("agent", agent_node)
    graph.add_node("call_tool", call_tool)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", route, ["call_tool", END])
    graph.add_edge("call_tool", "agent")
    app = graph.compile()
    tracer = trace.get_tracer("support-agent")
    for i, req in enumerate(REQUESTS, 1):
        question = f"request {i}: please help with order A-{i}"
        FakeOpenAI.plan[question] = [t for t, _ in req["tools"]]
        behaviour.clear()
        behaviour.update(dict(req["tools"]))
        with using_session(req["session"]), using_user(req["user"] or ""):
            with tracer.start_as_current_span("request"):
                log.add("traces", {"trace_id": trace_id_now(), "session_id": req["session"], "user_id": req["user"]})
                app.invoke({"messages": [SystemMessage("You are a support agent."), HumanMessage(question)]})
    server.shutdown()
    finish("langgraph", exporter, log)


def run_vercel_ai() -> None:
    """The Vercel AI SDK (node): ``make_capture_vercel_ai.cjs`` runs the agent with ``generateText`` and
    the SDK's telemetry (``experimental_telemetry``) against this script's fake server; the policy
    check is the SDK's tool-approval hook. Needs ``node`` and ``NODE_PATH`` naming a ``node_modules``
    with the packages listed in README.md."""
    import subprocess
    node_modules = Path(os.environ.get("NODE_PATH", "node_modules")).resolve()
    packages = ["ai", "@ai-sdk/openai", "@opentelemetry/sdk-trace-base", "@opentelemetry/api",
                "@opentelemetry/context-async-hooks", "@opentelemetry/resources", "zod"]
    libs = {}
    for pkg in packages:
        meta = node_modules / pkg / "package.json"
        libs[pkg] = json.loads(meta.read_text())["version"] if meta.exists() else "not installed"
    libs["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    for i, req in enumerate(REQUESTS, 1):
        FakeOpenAI.plan[f"request {i}: please help with order A-{i}"] = [t for t, _ in req["tools"]]
    server, url = start_server()
    try:
        out = subprocess.run(["node", str(HERE / "make_capture_vercel_ai.cjs"), url, json.dumps(REQUESTS)],
                             capture_output=True, text=True, check=True, timeout=120,
                             env={**os.environ, "NODE_PATH": str(node_modules)})
    except subprocess.CalledProcessError as exc:
        sys.stderr.write(exc.stderr)
        raise
    finally:
        server.shutdown()
    doc = json.loads(out.stdout)
    log = Log("vercel-ai", libs)
    for key in ("traces", "llm_calls", "tool_calls", "policy_checks"):
        log.data[key] = doc["log"][key]
    log.data["spans"] = doc["log"]["spans"]
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for s in doc["spans"]:
        key = (json.dumps(s["resource"], sort_keys=True), s["scope"]["name"], s["scope"].get("version") or "")
        groups.setdefault(key, []).append(s["span"])
    with (OUT / "vercel-ai.otlp.jsonl").open("w", encoding="utf-8") as f:
        for (res, scope, version), spans in groups.items():
            spans.sort(key=lambda x: int(x["startTimeUnixNano"]))
            f.write(json.dumps({"resourceSpans": [{"resource": {"attributes": _attrs(json.loads(res))}, "scopeSpans": [
                {"scope": {"name": scope, **({"version": version} if version else {})}, "spans": spans}]}]},
                separators=(",", ":")) + "\n")
    log.write(OUT / "vercel-ai.truth.json")
    print(f"vercel-ai: {len(doc['spans'])} spans, {len(log.data['traces'])} traces", file=sys.stderr)


def finish(name: str, exporter: Any, log: Log) -> None:
    spans = list(exporter.get_finished_spans())
    write_otlp(spans, OUT / f"{name}.otlp.jsonl")
    log.write(OUT / f"{name}.truth.json")
    print(f"{name}: {len(spans)} spans, {len(log.data['traces'])} traces", file=sys.stderr)


def main(argv: list[str]) -> int:
    runners = {
        "otel-genai-old": lambda: run_otel_genai("otel-genai-old", new_names=False),
        "otel-genai-new": lambda: run_otel_genai("otel-genai-new", new_names=True),
        "openinference": run_openinference,
        "openllmetry": run_openllmetry,
        "langchain-openinference": run_langchain_openinference,
        "langchain-openai-layers": lambda: run_langchain_openinference("langchain-openai-layers", openai_layer=True),
        "vercel-ai": run_vercel_ai,
        "llamaindex": run_llamaindex,
        "langgraph": run_langgraph,
    }
    if len(argv) != 2 or argv[1] not in runners:
        print(f"usage: make_captures.py {{{'|'.join(runners)}}}", file=sys.stderr)
        return 2
    runners[argv[1]]()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
