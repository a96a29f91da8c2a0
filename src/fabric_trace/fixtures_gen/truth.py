"""Ground truth: the exact facts behind every generated trace.

The generator records here what it did, span id by span id, so tests of the
analyzers can assert exact findings. The structure is documented in
``fixtures/README.md``; :meth:`GroundTruth.to_dict` is its JSON form.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class CacheLookup:
    """A redis GET with its outcome; on a miss ``backing_span_ids`` are the fetch + refill spans."""

    span_id: str
    key: str
    hit: bool
    service: str
    backing_span_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class PolicyCheck:
    """A policy decision about one tool call."""

    span_id: str
    tool_call_id: str
    tool_name: str
    decision: str  # "allow" | "deny"
    engine: str  # "opa" (remote policy-engine) | "guardrail" (in-process)


@dataclass(slots=True)
class ToolExecution:
    """A tool call the model asked for.

    ``verdict``: ``guarded`` (allowed by a policy check, executed), ``unguarded``
    (executed, no policy check), ``denied_executed`` (denied, executed anyway),
    ``denied_blocked`` (denied and not executed: ``span_id`` is ``None``).
    ``target``: ``service`` (CLIENT->SERVER hop to a tool service), ``inproc``,
    or ``external`` (CLIENT span to an uninstrumented API).
    """

    tool_call_id: str
    tool_name: str
    tool_type: str
    target: str
    verdict: str
    span_id: str | None
    policy_span_id: str | None
    client_span_id: str | None = None
    server_span_id: str | None = None
    status: str = "ok"  # "ok" | "error"


@dataclass(slots=True)
class RemoteCall:
    """A CLIENT span whose child SERVER span runs in another service instance."""

    client_span_id: str
    server_span_id: str
    caller_service: str
    callee_service: str
    caller_zone: str
    callee_zone: str
    caller_region: str
    callee_region: str
    locality: str  # "same_zone" | "cross_zone" | "cross_region"


@dataclass(slots=True)
class ExternalCall:
    """A CLIENT span to a peer outside the deployment (model provider or external tool)."""

    span_id: str
    peer: str
    url_full: str | None
    scheme: str
    purpose: str  # "model" | "tool"


@dataclass(slots=True)
class RedundantFetch:
    """The same key (or retrieval query) fetched twice in one trace."""

    kind: str  # "memory" (redis GET spans) | "retrieval" (retrieval spans) | "embedding_cache"
    key: str
    first_span_id: str
    repeat_span_id: str


@dataclass(slots=True)
class LlmCall:
    """A model call (chat or embeddings) and what it reported."""

    span_id: str
    operation: str  # "chat" | "embeddings"
    style: str  # "otel" | "openinference" | "openllmetry"
    provider: str
    request_model: str
    response_model: str
    agent: str
    input_tokens: int
    output_tokens: int
    prefix_seen: bool  # prompt prefix seen earlier in the conversation: cached tokens expected
    cached_tokens_expected: int
    cached_tokens_reported: int | None  # None: not reported at all
    prefix_cache_miss: bool  # prefix_seen but reported 0 cached tokens (the knob fired)
    ttft_ns: int | None
    status: str = "ok"


@dataclass(slots=True)
class ErrorInfo:
    """A span with status ERROR."""

    span_id: str
    role: str
    error_type: str


@dataclass(slots=True)
class Retry:
    """A failed attempt followed by a successful sibling retry."""

    operation: str
    failed_span_id: str
    retry_span_id: str


@dataclass(slots=True)
class AsyncLink:
    """A PRODUCER span and the CONSUMER span that links to it (same trace)."""

    producer_span_id: str
    consumer_span_id: str


@dataclass(slots=True)
class TraceTruth:
    """Everything the generator knows about one trace."""

    trace_id: str
    index: int
    workflow: str
    session_id: str
    user_id: str
    anonymous: bool
    root_span_id: str = ""
    start_ns: int = 0  # root span start
    end_ns: int = 0  # root span end (what the user waited for)
    last_end_ns: int = 0  # latest end of any span (async consumers may outlive the root)
    span_roles: dict[str, str] = field(default_factory=dict)
    cache_lookups: list[CacheLookup] = field(default_factory=list)
    policy_checks: list[PolicyCheck] = field(default_factory=list)
    tool_executions: list[ToolExecution] = field(default_factory=list)
    remote_calls: list[RemoteCall] = field(default_factory=list)
    external_calls: list[ExternalCall] = field(default_factory=list)
    redundant_fetches: list[RedundantFetch] = field(default_factory=list)
    llm_calls: list[LlmCall] = field(default_factory=list)
    errors: list[ErrorInfo] = field(default_factory=list)
    retries: list[Retry] = field(default_factory=list)
    async_links: list[AsyncLink] = field(default_factory=list)
    skewed_spans: list[str] = field(default_factory=list)
    out_of_parent: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of this trace's facts."""
        return asdict(self)


def _count(traces: list[TraceTruth]) -> dict[str, int]:
    c: Counter[str] = Counter()
    c["traces"] = len(traces)
    for t in traces:
        c["spans"] += len(t.span_roles)
        c["anonymous_traces"] += t.anonymous
        c["cache_lookups"] += len(t.cache_lookups)
        c["cache_misses"] += sum(not x.hit for x in t.cache_lookups)
        c["policy_checks"] += len(t.policy_checks)
        for te in t.tool_executions:
            c[f"tools_{te.verdict}"] += 1
            c[f"tools_target_{te.target}"] += 1
        for rc in t.remote_calls:
            c[f"remote_calls_{rc.locality}"] += 1
        for ec in t.external_calls:
            c[f"external_calls_{ec.purpose}_{ec.scheme}"] += 1
        c["redundant_fetches"] += len(t.redundant_fetches)
        c["llm_calls"] += len(t.llm_calls)
        chats = [x for x in t.llm_calls if x.operation == "chat" and x.status == "ok"]
        c["prefix_cache_misses"] += sum(x.prefix_cache_miss for x in chats)
        c["prefix_cache_expected_hits"] += sum(x.prefix_seen for x in chats)
        c["cached_tokens_unreported"] += sum(x.cached_tokens_reported is None for x in chats)
        c["errors"] += len(t.errors)
        c["retries"] += len(t.retries)
        c["async_links"] += len(t.async_links)
        c["skewed_spans"] += len(t.skewed_spans)
        for role in t.span_roles.values():
            c[f"role_{role}"] += 1
    return dict(sorted(c.items()))


@dataclass
class GroundTruth:
    """The ground truth of one generated data set: the knobs and one entry per trace."""

    scenario: dict[str, Any]
    traces: list[TraceTruth] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        """Counts over all traces (spans, cache misses, tool verdicts, localities, ...)."""
        return _count(self.traces)

    def trace(self, trace_id: str) -> TraceTruth:
        """The truth of one trace (``KeyError`` if unknown)."""
        for t in self.traces:
            if t.trace_id == trace_id:
                return t
        raise KeyError(trace_id)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"scenario", "totals", "traces"}``."""
        return {
            "scenario": self.scenario,
            "totals": self.totals(),
            "traces": [t.to_dict() for t in self.traces],
        }
