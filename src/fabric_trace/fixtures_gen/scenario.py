"""The knobs of the fixture generator: one frozen :class:`Scenario`.

Every knob defaults to a *healthy* system: state co-located with its callers,
every tool call guarded by an allowing policy check, identified users, TLS
everywhere, no errors, no clock skew, prompt caching working. Each knob that
departs from healthy is applied deterministically and recorded in the ground
truth (:mod:`fabric_trace.fixtures_gen.truth`), so a test knows the exact
findings to expect.

Rates are per-opportunity probabilities drawn from the seeded generator: a rate
of 0 never fires and a rate of 1 always fires; in between the ground truth says
exactly which spans were affected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

#: Latency roles: each drawn duration belongs to one. ``latency_factor`` keys must be among these.
ROLES: tuple[str, ...] = (
    "gateway",  # HTTP handling in the inference gateway
    "agent",  # orchestration self-time inside an agent (planning, parsing, prompt building)
    "llm",  # chat / text generation call to a model provider
    "embedding",  # embeddings call to a model provider
    "retrieval",  # retrieval service work and its vector-store query
    "cache",  # redis GET/SET
    "memory",  # memory service and its backing database
    "policy",  # policy engine / guardrail evaluation
    "tool",  # internal tool execution (tool services)
    "external_tool",  # call to an uninstrumented external API
    "queue",  # message publish / consume overhead
    "network",  # one-way network transit between services
)

#: Workflows the generator knows how to build.
WORKFLOWS: tuple[str, ...] = ("support-agent", "rag-answer", "research-agent")

#: 2026-01-01T00:00:00Z in nanoseconds: the default base time (no wall clock is ever read).
DEFAULT_BASE_TIME_NS = 1_767_225_600_000_000_000

_RATE_FIELDS: tuple[str, ...] = (
    "cache_miss_rate",
    "remote_state_fraction",
    "repeat_fetch_rate",
    "unguarded_tool_rate",
    "denied_tool_executed_rate",
    "policy_deny_rate",
    "external_tool_rate",
    "anonymous_rate",
    "plaintext_rate",
    "error_rate",
    "retry_rate",
    "prefix_cache_miss_rate",
    "missing_cached_tokens_rate",
    "async_rate",
    "openinference_fraction",
    "openllmetry_fraction",
)


@dataclass(frozen=True)
class Scenario:
    """All knobs of one generated data set. Defaults describe a healthy system.

    ``latency_factor`` may be given as a mapping (``{"retrieval": 1.5}``); it is
    stored as a sorted tuple of ``(role, factor)`` pairs so the scenario stays
    hashable. Use :meth:`factor` to read it.
    """

    traces: int = 200
    """Number of workflow traces (one gateway request each)."""
    seed: int = 7
    """Seed of every random draw; same seed and knobs give identical output."""
    base_time_ns: int = DEFAULT_BASE_TIME_NS
    """Start time of the first trace, integer nanoseconds since the epoch."""
    mean_interarrival_ms: float = 750.0
    """Mean gap between trace starts (exponentially distributed)."""
    workflows: tuple[str, ...] = WORKFLOWS
    """Workflows to draw from (uniformly, one per session)."""
    latency_factor: Any = ()
    """Per-role duration multiplier, e.g. ``{"retrieval": 1.5}`` (a latency regression)."""
    cache_miss_rate: float = 0.1
    """Probability that a redis cache lookup misses (a backing fetch then follows)."""
    state_region: str | None = None
    """Region of the remote replicas of state services; ``None``: another zone of the home region."""
    remote_state_fraction: float = 0.0
    """Probability that a call to a state service (memory, retrieval) lands on the remote replica."""
    repeat_fetch_rate: float = 0.0
    """Probability that a memory read or a retrieval is repeated with the same key/query in the trace."""
    unguarded_tool_rate: float = 0.0
    """Probability that a tool execution has no policy check at all."""
    denied_tool_executed_rate: float = 0.0
    """Probability that a guarded tool call is denied by policy but executed anyway."""
    policy_deny_rate: float = 0.0
    """Probability that a guarded tool call is denied and correctly not executed."""
    external_tool_rate: float = 0.25
    """Probability that a tool call goes to an external (uninstrumented) API instead of an internal service."""
    anonymous_rate: float = 0.0
    """Probability that a trace carries no enduser.id / user.id / session.id / conversation id."""
    plaintext_rate: float = 0.0
    """Probability that an external tool call uses ``http://`` instead of ``https://``."""
    clock_skew_service: str = "memory-service"
    """Service whose spans are shifted by ``clock_skew_ns``."""
    clock_skew_ns: int = 0
    """Clock offset added to every span (and event) of ``clock_skew_service``."""
    error_rate: float = 0.0
    """Probability that a tool execution or retrieval fails (not retried; the agent carries on)."""
    retry_rate: float = 0.0
    """Probability that an LLM call or tool execution fails once and is retried as a sibling."""
    prefix_cache_miss_rate: float = 0.0
    """Probability that an LLM call whose prompt prefix was seen earlier reports 0 cached tokens."""
    missing_cached_tokens_rate: float = 0.0
    """Probability that an LLM call does not report cached tokens at all."""
    async_rate: float = 0.2
    """Probability that a research/support trace publishes a background job (PRODUCER -> CONSUMER, linked)."""
    openinference_fraction: float = 0.15
    """Share of LLM/embedding spans written in OpenInference style (llm.*, openinference.span.kind)."""
    openllmetry_fraction: float = 0.15
    """Share of LLM/embedding spans written in older OpenLLMetry style (gen_ai.system, prompt_tokens)."""
    max_session_turns: int = 4
    """Upper bound of traces (turns) per conversation session."""

    def __post_init__(self) -> None:
        lf = self.latency_factor
        pairs = tuple(sorted((lf.items() if isinstance(lf, Mapping) else lf)))
        for role, factor in pairs:
            if role not in ROLES:
                raise ValueError(f"unknown latency role {role!r}; expected one of {', '.join(ROLES)}")
            if not float(factor) > 0:
                raise ValueError(f"latency_factor[{role!r}] must be > 0, got {factor!r}")
        object.__setattr__(self, "latency_factor", tuple((r, float(f)) for r, f in pairs))
        object.__setattr__(self, "workflows", tuple(self.workflows))
        for name in _RATE_FIELDS:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value!r}")
        if self.openinference_fraction + self.openllmetry_fraction > 1.0:
            raise ValueError("openinference_fraction + openllmetry_fraction must be <= 1")
        if self.traces < 0:
            raise ValueError("traces must be >= 0")
        if not self.workflows or any(w not in WORKFLOWS for w in self.workflows):
            raise ValueError(f"workflows must be a non-empty subset of {WORKFLOWS}")
        if self.max_session_turns < 1:
            raise ValueError("max_session_turns must be >= 1")
        if self.base_time_ns < 0 or self.mean_interarrival_ms <= 0:
            raise ValueError("base_time_ns must be >= 0 and mean_interarrival_ms > 0")

    def factor(self, role: str) -> float:
        """Latency multiplier of ``role`` (1.0 unless set in ``latency_factor``)."""
        for r, f in self.latency_factor:
            if r == role:
                return f
        return 1.0

    def with_(self, **changes: Any) -> Scenario:
        """A copy with some knobs changed (``dataclasses.replace``)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The knobs as a JSON-ready dict (``latency_factor`` as a mapping)."""
        out = asdict(self)
        out["latency_factor"] = dict(self.latency_factor)
        out["workflows"] = list(self.workflows)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown scenario knobs: {', '.join(unknown)}")
        kwargs = dict(data)
        if "workflows" in kwargs:
            kwargs["workflows"] = tuple(kwargs["workflows"])
        return cls(**kwargs)
