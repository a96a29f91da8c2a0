"""Model calls: chat and embeddings, in three instrumentation conventions.

* ``otel``: OTel GenAI semconv (``gen_ai.provider.name``, ``gen_ai.usage.*``,
  ``gen_ai.response.time_to_first_chunk``), CLIENT span ``chat {model}``;
* ``openinference``: ``openinference.span.kind=LLM``, ``llm.*`` token counts,
  INTERNAL span with status OK and a ``First Token Stream Event`` event;
* ``openllmetry`` (older Traceloop): ``gen_ai.system``, ``gen_ai.usage.prompt_tokens``,
  ``llm.request.type``, ``gen_ai.usage.cache_read_input_tokens``.

Prompt caching: the first call of an (agent, model) in a conversation writes the
prefix to the provider cache; later calls are expected to read
``model.prefix_tokens`` cached tokens unless a knob says otherwise.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from .builder import Streams, TraceBuilder
from .model import CLIENT, INTERNAL, STATUS_OK, GenEvent, GenSpan
from .topology import PEERS, Model
from .truth import ExternalCall, LlmCall, Retry

_OI_NAMES = {"openai": ("ChatCompletion", "CreateEmbeddings"), "anthropic": ("Messages", "Embeddings")}
_OLLM_SYSTEM = {"openai": "openai", "anthropic": "Anthropic"}


@dataclass
class Conversation:
    """Per-session state shared by the traces (turns) of one conversation."""

    session_id: str
    user_id: str
    workflow: str
    turns_left: int
    turn: int = 0
    seen_prefixes: set[tuple[str, str]] = field(default_factory=set)


def _style(b: TraceBuilder, u: float) -> str:
    sc = b.scenario
    if u < sc.openinference_fraction:
        return "openinference"
    if u < sc.openinference_fraction + sc.openllmetry_fraction:
        return "openllmetry"
    return "otel"


def _attrs(
    b: TraceBuilder,
    style: str,
    op: str,
    model: Model,
    conv: Conversation,
    r: random.Random,
    usage: tuple[int, int, int | None],
    finish: str,
) -> tuple[str, int, str, dict[str, Any]]:
    """(span name, kind, scope alias, attributes) of a model call in ``style``."""
    inp, out, cached = usage
    prov = model.provider
    rid = ("chatcmpl-" if prov == "openai" else "msg_") + "%024x" % r.getrandbits(96)
    ident = {} if b.anonymous else {"session.id": conv.session_id, "user.id": conv.user_id}
    if style == "openinference":
        name = _OI_NAMES[prov][0 if op == "chat" else 1]
        a: dict[str, Any] = {
            "openinference.span.kind": "LLM" if op == "chat" else "EMBEDDING",
            "llm.system": prov,
            "llm.provider": prov,
            "llm.token_count.prompt": inp,
        }
        if op == "chat":
            a["llm.model_name"] = model.response
            a["llm.invocation_parameters"] = '{"model": "%s", "temperature": 0.2, "stream": true}' % model.request
            a["llm.token_count.completion"] = out
            a["llm.token_count.total"] = inp + out
            a["llm.finish_reason"] = finish
            if cached is not None:
                a["llm.token_count.prompt_details.cache_read"] = cached
        else:
            a["embedding.model_name"] = model.response
            a["llm.token_count.total"] = inp
        a.update(ident)
        return name, INTERNAL, f"oi.{prov}", a
    if style == "openllmetry":
        a = {
            "gen_ai.system": _OLLM_SYSTEM[prov],
            "llm.request.type": "chat" if op == "chat" else "embedding",
            "gen_ai.request.model": model.request,
            "gen_ai.response.model": model.response,
            "gen_ai.response.id": rid,
            "gen_ai.usage.prompt_tokens": inp,
            "llm.usage.total_tokens": inp + out,
            "llm.is_streaming": op == "chat",
        }
        if op == "chat":
            a["gen_ai.usage.completion_tokens"] = out
            a["gen_ai.request.temperature"] = 0.2
            if cached is not None:
                a["gen_ai.usage.cache_read_input_tokens"] = cached
        if prov == "openai":
            a["gen_ai.openai.api_base"] = "https://api.openai.com/v1/"
        return f"{prov}.{'chat' if op == 'chat' else 'embeddings'}", CLIENT, f"ollm.{prov}", a
    peer = PEERS[prov]
    a = {
        "gen_ai.operation.name": op,
        "gen_ai.provider.name": prov,
        "gen_ai.request.model": model.request,
        "gen_ai.response.model": model.response,
        "gen_ai.usage.input_tokens": inp,
        "server.address": peer.address,
        "server.port": peer.port,
    }
    if op == "chat":
        a["gen_ai.response.id"] = rid
        a["gen_ai.request.temperature"] = 0.2
        a["gen_ai.request.max_tokens"] = 1024
        a["gen_ai.request.stream"] = True
        a["gen_ai.response.finish_reasons"] = [finish]
        a["gen_ai.usage.output_tokens"] = out
        if cached is not None:
            a["gen_ai.usage.cache_read.input_tokens"] = cached
        if not b.anonymous:
            a["gen_ai.conversation.id"] = conv.session_id
    return f"{op} {model.request}", CLIENT, f"otel.{prov}", a


def chat(
    b: TraceBuilder,
    r: random.Random,
    parent: GenSpan,
    start: int,
    agent: str,
    model: Model,
    conv: Conversation,
    *,
    finish: str = "stop",
    context_tokens: int = 0,
) -> int:
    """A chat call from ``parent``'s service at ``start``; returns its end time (ns)."""
    sc = b.scenario
    u_style, u_miss, u_missing, u_retry = r.random(), r.random(), r.random(), r.random()
    lazy = Streams(r, 1)
    style = _style(b, u_style)
    key = (agent, model.request)
    seen = key in conv.seen_prefixes
    conv.seen_prefixes.add(key)
    inp = model.prefix_tokens + context_tokens + 60 + int(r.random() * 400)
    out = max(8, int((40 if finish == "tool_calls" else 220) * (0.5 + r.random())))
    expected = model.prefix_tokens if seen else 0
    miss = seen and u_miss < sc.prefix_cache_miss_rate
    reported: int | None = None if u_missing < sc.missing_cached_tokens_rate else (0 if miss else expected)
    actual_cached = 0 if miss else expected
    t = start
    if u_retry < sc.retry_rate:
        rx = lazy[0]
        name, kind, scope, a = _attrs(b, style, "chat", model, conv, rx, (inp, 0, None), finish)
        for k in [k for k in a if "usage" in k or "token_count" in k or k.startswith(("gen_ai.response", "llm.fin"))]:
            del a[k]
        failed = b.span(rx, parent, name, kind, t, parent.resource, scope, "llm", a)
        failed.end_ns = t + b.dur(rx, "llm", 120, 0.4)
        b.fail(failed, "llm", "429", "Error code: 429 - rate limit exceeded", exc=f"{model.provider}.RateLimitError")
        _external(b, failed, model)
        b.truth.llm_calls.append(
            LlmCall(failed.span_id, "chat", style, model.provider, model.request, model.response, agent,
                    inp, 0, seen, expected, None, False, None, "error")
        )
        t = failed.end_ns + b.dur(rx, "agent", 400, 0.3)
        retry_of: GenSpan | None = failed
    else:
        retry_of = None
    ttft = b.dur(r, "llm", 110 + 0.07 * (inp - actual_cached) + 0.005 * actual_cached, 0.3)
    decode = b.dur(r, "llm", out * 8.5, 0.25)
    name, kind, scope, a = _attrs(b, style, "chat", model, conv, r, (inp, out, reported), finish)
    s = b.span(r, parent, name, kind, t, parent.resource, scope, "llm", a)
    s.end_ns = t + ttft + decode
    if style == "otel":
        a["gen_ai.response.time_to_first_chunk"] = round(ttft / 1e9, 6)
    elif style == "openinference":
        s.status_code = STATUS_OK
        s.events.append(GenEvent(t + ttft, "First Token Stream Event"))
    _external(b, s, model)
    b.truth.llm_calls.append(
        LlmCall(s.span_id, "chat", style, model.provider, model.request, model.response, agent,
                inp, out, seen, expected, reported, miss and reported == 0, ttft)
    )
    if retry_of is not None:
        b.truth.retries.append(Retry("chat", retry_of.span_id, s.span_id))
    return s.end_ns


def embeddings(b: TraceBuilder, r: random.Random, parent: GenSpan, start: int, model: Model,
               conv: Conversation, text_tokens: int) -> int:
    """An embeddings call from ``parent``'s service at ``start``; returns its end time (ns)."""
    style = _style(b, r.random())
    name, kind, scope, a = _attrs(b, style, "embeddings", model, conv, r, (text_tokens, 0, None), "")
    s = b.span(r, parent, name, kind, start, parent.resource, scope, "embedding", a)
    s.end_ns = start + b.dur(r, "embedding", 45, 0.4)
    if style == "openinference":
        s.status_code = STATUS_OK
    _external(b, s, model)
    b.truth.llm_calls.append(
        LlmCall(s.span_id, "embeddings", style, model.provider, model.request, model.response, "",
                text_tokens, 0, False, 0, None, False, None)
    )
    return s.end_ns


def _external(b: TraceBuilder, s: GenSpan, model: Model) -> None:
    """Record the egress to the provider (every style egresses; only ``otel`` sets server.address)."""
    peer = PEERS[model.provider]
    b.truth.external_calls.append(ExternalCall(s.span_id, peer.address, None, "https", "model"))
