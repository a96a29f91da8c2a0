"""AI role rules: which role a span plays (llm, retrieval, tool, policy, ...).

A role rule is a set of conditions that must all hold; the first rule that
matches a span gives its role, and a span no rule matches is ``internal``.
The default rules encode the semantic-convention crosswalk (OTel GenAI,
OpenInference, OpenLLMetry, Vercel AI SDK, Langfuse, LangSmith,
db/http/rpc/messaging) in three tiers of evidence, strongest first: what the
span does (``domain``), what a framework calls it (``framework``), and name
patterns (``name``). A config file can put its own rules in front of them or
replace them (docs/normalization.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fabric_trace.errors import ConfigError

#: Every role fabric knows; rules may only produce these.
ROLES: tuple[str, ...] = (
    "llm",
    "embedding",
    "retrieval",
    "rerank",
    "tool",
    "agent",
    "workflow",
    "memory",
    "cache",
    "database",
    "vector_store",
    "policy",
    "evaluator",
    "http",
    "rpc",
    "messaging",
    "internal",
)

VECTOR_DBS = (
    "qdrant", "pinecone", "chroma", "chromadb", "milvus", "weaviate", "pgvector", "lancedb",
    "marqo", "vespa", "faiss", "redisvl", "turbopuffer", "vectorstore",
)
CACHE_DBS = ("redis", "memcached", "valkey", "keydb", "dragonfly")


#: Where a piece of role evidence comes from, strongest first (docs/normalization.md, "Roles").
#: ``config``: your own rules; ``domain``: what the span does (a policy decision, a GenAI
#: operation or token usage, a tool call id, a database, a protocol); ``framework``: what an
#: instrumentation framework calls the span; ``name``: patterns on the span name or kind.
TIERS: tuple[str, ...] = ("config", "domain", "framework", "name")

#: String attributes whose presence records a policy or guardrail decision. These are
#: domain evidence for ``policy``, and the trust rules read the decision from them
#: (``fabric_trace.analyzers.trust.findings``), in this order.
POLICY_DECISION_KEYS: tuple[str, ...] = (
    "policy.decision", "guardrail.decision", "authz.decision", "gen_ai.security.decision.type",
    "gen_ai.guardrail.decision", "gen_ai.guardrail.status", "ai_guard.action", "opa.decision",
    "policy.result", "guardrail.result", "authz.result", "moderation.decision", "guardrail.action",
    "policy.action",
)
#: Boolean attributes that mean "denied" when true (and "allowed" when false).
POLICY_DENY_FLAGS: tuple[str, ...] = (
    "ai_guard.blocked", "gen_ai.guardrail.tripwire_triggered", "guardrail.blocked", "guardrail.triggered",
    "moderation.flagged", "policy.denied",
)
#: Boolean attributes that mean "allowed" when true (and "denied" when false).
POLICY_ALLOW_FLAGS: tuple[str, ...] = ("policy.allowed", "authz.allowed", "guardrail.passed")
#: Attributes where frameworks record a step's output as JSON (OpenLLMetry entity output,
#: OpenInference ``output.value``), and the top-level fields of that output that record a
#: decision. A step whose output has one is a policy check (framework tier, see DEFAULT_RULES).
OUTPUT_KEYS: tuple[str, ...] = ("traceloop.entity.output", "output.value")
OUTPUT_DECISION_FIELDS: tuple[str, ...] = ("decision", "allow", "allowed", "blocked", "tripwire_triggered")


@dataclass(frozen=True)
class RoleRule:
    """One rule. Every given condition must hold (AND).

    * ``attr`` + ``equals``: the span attribute ``attr`` equals one of the values
      (case-insensitive string compare);
    * ``attr`` + ``glob``: the attribute matches a glob (case-insensitive);
    * ``attr`` + ``json_fields``: the attribute is a JSON object with one of these
      top-level fields;
    * ``attr`` alone (or ``exists=True``): the attribute is present;
    * ``name_glob``: the span name matches a glob (case-insensitive);
    * ``kind``: the span kind is one of these (``CLIENT``, ``PRODUCER``...).

    ``tier`` says how strong the evidence is (:data:`TIERS`); rules from a config file
    are ``config``. ``also``: further conditions (rules whose conditions must hold too; their
    role and tier are not used), for evidence that takes two attributes.
    """

    role: str
    attr: str | None = None
    equals: tuple[str, ...] = ()
    glob: str | None = None
    name_glob: str | None = None
    kinds: tuple[str, ...] = ()
    json_fields: tuple[str, ...] = ()
    tier: str = "config"
    also: tuple[RoleRule, ...] = ()

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ConfigError(f"unknown role {self.role!r} in a role rule; known roles: {', '.join(ROLES)}")
        if not (self.attr or self.name_glob or self.kinds):
            raise ConfigError(f"role rule for {self.role!r} has no condition (attr, name_glob or kind)")
        if self.tier not in TIERS:
            raise ConfigError(f"unknown role evidence tier {self.tier!r}")

    @property
    def evidence(self) -> str:
        """The rule as it reads in ``spans.role_evidence`` and docs/normalization.md."""
        parts: list[str] = []
        if self.attr:
            if self.equals:
                parts.append(f"{self.attr} in {', '.join(self.equals)}" if len(self.equals) > 1
                             else f"{self.attr} = {self.equals[0]}")
            elif self.glob:
                parts.append(f"{self.attr} matches {self.glob}")
            elif self.json_fields:
                parts.append(f"{self.attr} has field {'|'.join(self.json_fields)}")
            else:
                parts.append(f"{self.attr} present")
        if self.name_glob:
            parts.append(f"name matches {self.name_glob}")
        if self.kinds:
            parts.append(f"kind in {', '.join(self.kinds)}")
        parts.extend(c.evidence for c in self.also)
        return " and ".join(parts)


def _eq(role: str, attr: str, *values: str, tier: str = "domain") -> RoleRule:
    return RoleRule(role=role, attr=attr, equals=tuple(values), tier=tier)


def _has(role: str, *attrs: str, tier: str = "domain") -> tuple[RoleRule, ...]:
    return tuple(RoleRule(role=role, attr=a, tier=tier) for a in attrs)


def _name(role: str, *globs: str) -> tuple[RoleRule, ...]:
    return tuple(RoleRule(role=role, name_glob=g, tier="name") for g in globs)


def _fw(role: str, attr: str, *values: str) -> RoleRule:
    return _eq(role, attr, *values, tier="framework")


#: Token-usage attributes: a span that reports tokens used is a model call.
TOKEN_KEYS: tuple[str, ...] = (
    "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.usage.prompt_tokens",
    "gen_ai.usage.completion_tokens", "llm.token_count.prompt", "llm.token_count.completion",
    "llm.usage.total_tokens", "ai.usage.promptTokens", "ai.usage.completionTokens",
    "ai.usage.inputTokens", "ai.usage.outputTokens",
)

#: The default rules, in order (first match wins): every ``domain`` rule (what the span
#: does) before every ``framework`` rule (what a framework calls it) before every ``name``
#: rule (span name and kind patterns). docs/normalization.md lists them with the reasons.
DEFAULT_RULES: tuple[RoleRule, ...] = (
    # --- domain: what the span does ------------------------------------------------
    # a recorded policy / guardrail decision (a guardrail that calls a model is still a policy step)
    *_has("policy", *POLICY_DECISION_KEYS, *POLICY_DENY_FLAGS, *POLICY_ALLOW_FLAGS),
    # the GenAI operation (OTel GenAI, old and new values)
    _eq("llm", "gen_ai.operation.name", "chat", "text_completion", "generate_content", "completion"),
    _eq("embedding", "gen_ai.operation.name", "embeddings", "embedding"),
    _eq("retrieval", "gen_ai.operation.name", "retrieval", "retrieve"),
    _eq("tool", "gen_ai.operation.name", "execute_tool"),
    _eq("agent", "gen_ai.operation.name", "invoke_agent", "create_agent"),
    _eq("workflow", "gen_ai.operation.name", "invoke_workflow", "plan"),
    # the Vercel AI SDK operation (the outer generateText/embed span sums its steps' tokens)
    _eq("llm", "ai.operationId", "ai.generateText.doGenerate", "ai.streamText.doStream",
        "ai.generateObject.doGenerate", "ai.streamObject.doStream"),
    _eq("embedding", "ai.operationId", "ai.embed.doEmbed", "ai.embedMany.doEmbed"),
    _eq("tool", "ai.operationId", "ai.toolCall"),
    _eq("workflow", "ai.operationId", "ai.generateText", "ai.streamText", "ai.generateObject",
        "ai.streamObject", "ai.embed", "ai.embedMany"),
    # the OpenLLMetry request type
    _eq("llm", "llm.request.type", "chat", "completion"),
    _eq("embedding", "llm.request.type", "embedding", "embeddings"),
    _eq("rerank", "llm.request.type", "rerank"),
    # an embedding model named (before token usage: embedding calls report tokens too)
    *_has("embedding", "embedding.model_name"),
    # token usage
    *_has("llm", *TOKEN_KEYS),
    # a tool call with its call id
    *_has("tool", "gen_ai.tool.call.id", "tool_call.id", "ai.toolCall.id"),
    # caches and memory
    *_has("cache", "cache.hit", "cache.result", "cache_hit"),
    *_has("memory", "gen_ai.memory.operation"),
    _eq("cache", "db.system.name", *CACHE_DBS),
    _eq("cache", "db.system", *CACHE_DBS),
    # vector stores and databases
    _eq("vector_store", "db.system.name", *VECTOR_DBS),
    _eq("vector_store", "db.system", *VECTOR_DBS),
    *_has("vector_store", "db.vector.query.top_k"),
    *_has("database", "db.system.name", "db.system"),
    # a step that names a model but whose recorded output is the request it prepared for the model
    # (a JSON object with the messages to send), not a reply: it prepares the call, it is not the call
    # (LlamaIndex's ``_prepare_chat_with_tools``, which OpenInference labels LLM). A model call that
    # got a reply reports tokens (above); its output is the reply, never a ``messages`` list.
    RoleRule(role="workflow", attr="llm.model_name", tier="domain",
             also=(RoleRule(role="workflow", attr="output.value", json_fields=("messages",), tier="domain"),)),
    # a model provider or model named without an operation
    *_has("llm", "gen_ai.provider.name", "gen_ai.system", "llm.model_name"),
    # protocols
    *_has("messaging", "messaging.system"),
    *_has("rpc", "rpc.system.name", "rpc.system"),
    *_has("http", "http.request.method", "http.method", "url.full"),
    # --- framework: what an instrumentation framework calls the span ---------------
    # specific kinds first (OpenInference, Langfuse, LangSmith, OpenLLMetry)
    _fw("llm", "openinference.span.kind", "LLM"),
    _fw("embedding", "openinference.span.kind", "EMBEDDING"),
    _fw("retrieval", "openinference.span.kind", "RETRIEVER"),
    _fw("rerank", "openinference.span.kind", "RERANKER"),
    _fw("tool", "openinference.span.kind", "TOOL"),
    _fw("agent", "openinference.span.kind", "AGENT"),
    _fw("policy", "openinference.span.kind", "GUARDRAIL"),
    _fw("evaluator", "openinference.span.kind", "EVALUATOR"),
    _fw("llm", "langfuse.observation.type", "generation"),
    _fw("embedding", "langfuse.observation.type", "embedding"),
    _fw("retrieval", "langfuse.observation.type", "retriever"),
    _fw("tool", "langfuse.observation.type", "tool"),
    _fw("agent", "langfuse.observation.type", "agent"),
    _fw("policy", "langfuse.observation.type", "guardrail"),
    _fw("evaluator", "langfuse.observation.type", "evaluator"),
    _fw("llm", "langsmith.span.kind", "llm"),
    _fw("embedding", "langsmith.span.kind", "embedding"),
    _fw("retrieval", "langsmith.span.kind", "retriever"),
    _fw("tool", "langsmith.span.kind", "tool"),
    _fw("tool", "traceloop.span.kind", "tool"),
    _fw("agent", "traceloop.span.kind", "agent"),
    # a step whose recorded output is a decision (OpenLLMetry @task, OpenInference CHAIN)
    *(RoleRule(role="policy", attr=k, json_fields=OUTPUT_DECISION_FIELDS, tier="framework") for k in OUTPUT_KEYS),
    # generic orchestration labels (a LangChain chain, a Traceloop task or workflow)
    _fw("workflow", "openinference.span.kind", "CHAIN", "PROMPT"),
    _fw("workflow", "langfuse.observation.type", "chain"),
    _fw("workflow", "langsmith.span.kind", "chain", "prompt", "parser"),
    _fw("workflow", "traceloop.span.kind", "workflow", "task"),
    # --- name: patterns on the span name and kind -----------------------------------
    *_name("policy", "*guardrail*", "opa.*", "*policy*", "authz*", "*moderation*"),
    *_name("tool", "execute_tool*"),
    *_name("rerank", "*rerank*"),
    *_name("memory", "*memory*"),
    RoleRule(role="messaging", kinds=("PRODUCER", "CONSUMER"), tier="name"),
)


def rules_from_config(entries: list[dict[str, Any]]) -> tuple[RoleRule, ...]:
    """Build role rules from ``[[roles.rules]]`` config entries (validated)."""
    rules: list[RoleRule] = []
    allowed = {"role", "attr", "equals", "glob", "name_glob", "kind", "exists", "json_fields"}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(f"roles.rules[{i}] must be a table")
        unknown = set(entry) - allowed
        if unknown:
            raise ConfigError(f"roles.rules[{i}] has unknown keys: {', '.join(sorted(unknown))}")
        equals = entry.get("equals", ())
        if isinstance(equals, str):
            equals = (equals,)
        kinds = entry.get("kind", ())
        if isinstance(kinds, str):
            kinds = (kinds,)
        fields = entry.get("json_fields", ())
        if isinstance(fields, str):
            fields = (fields,)
        try:
            rules.append(
                RoleRule(
                    role=str(entry.get("role", "")),
                    attr=entry.get("attr"),
                    equals=tuple(str(v) for v in equals),
                    glob=entry.get("glob"),
                    name_glob=entry.get("name_glob"),
                    kinds=tuple(str(k).upper() for k in kinds),
                    json_fields=tuple(str(f) for f in fields),
                    tier="config",
                )
            )
        except ConfigError as exc:
            raise ConfigError(f"roles.rules[{i}]: {exc.message}") from None
    return tuple(rules)
