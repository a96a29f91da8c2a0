"""AI role rules: which role a span plays (llm, retrieval, tool, policy, ...).

A role rule is a set of conditions that must all hold; the first rule that
matches a span gives its role, and a span no rule matches is ``internal``.
The default rules encode the semantic-convention crosswalk (OTel GenAI,
OpenInference, OpenLLMetry, db/http/rpc/messaging); a config file can put its
own rules in front of them or replace them (docs/normalization.md).
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


@dataclass(frozen=True)
class RoleRule:
    """One rule. Every given condition must hold (AND).

    * ``attr`` + ``equals``: the span attribute ``attr`` equals one of the values
      (case-insensitive string compare);
    * ``attr`` + ``glob``: the attribute matches a glob (case-insensitive);
    * ``attr`` alone (or ``exists=True``): the attribute is present;
    * ``name_glob``: the span name matches a glob (case-insensitive);
    * ``kind``: the span kind is one of these (``CLIENT``, ``PRODUCER``...).
    """

    role: str
    attr: str | None = None
    equals: tuple[str, ...] = ()
    glob: str | None = None
    name_glob: str | None = None
    kinds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ConfigError(f"unknown role {self.role!r} in a role rule; known roles: {', '.join(ROLES)}")
        if not (self.attr or self.name_glob or self.kinds):
            raise ConfigError(f"role rule for {self.role!r} has no condition (attr, name_glob or kind)")


def _eq(role: str, attr: str, *values: str) -> RoleRule:
    return RoleRule(role=role, attr=attr, equals=tuple(values))


#: The default rules, in order (first match wins). Order matters: explicit
#: instrumentation kinds first, then operation names, then provider/db/protocol hints.
DEFAULT_RULES: tuple[RoleRule, ...] = (
    # OpenInference span kinds
    _eq("llm", "openinference.span.kind", "LLM"),
    _eq("embedding", "openinference.span.kind", "EMBEDDING"),
    _eq("retrieval", "openinference.span.kind", "RETRIEVER"),
    _eq("rerank", "openinference.span.kind", "RERANKER"),
    _eq("tool", "openinference.span.kind", "TOOL"),
    _eq("agent", "openinference.span.kind", "AGENT"),
    _eq("policy", "openinference.span.kind", "GUARDRAIL"),
    _eq("evaluator", "openinference.span.kind", "EVALUATOR"),
    _eq("workflow", "openinference.span.kind", "CHAIN", "PROMPT"),
    # OTel GenAI operation names (old and new)
    _eq("llm", "gen_ai.operation.name", "chat", "text_completion", "generate_content", "completion"),
    _eq("embedding", "gen_ai.operation.name", "embeddings", "embedding"),
    _eq("retrieval", "gen_ai.operation.name", "retrieval", "retrieve"),
    _eq("tool", "gen_ai.operation.name", "execute_tool"),
    _eq("agent", "gen_ai.operation.name", "invoke_agent", "create_agent"),
    _eq("workflow", "gen_ai.operation.name", "invoke_workflow", "plan"),
    # OpenLLMetry / Traceloop
    _eq("llm", "llm.request.type", "chat", "completion"),
    _eq("embedding", "llm.request.type", "embedding", "embeddings"),
    _eq("rerank", "llm.request.type", "rerank"),
    _eq("tool", "traceloop.span.kind", "tool"),
    _eq("agent", "traceloop.span.kind", "agent"),
    _eq("workflow", "traceloop.span.kind", "workflow", "task"),
    # policy engines and guardrails (hand-made spans)
    RoleRule(role="policy", attr="policy.decision"),
    RoleRule(role="policy", attr="guardrail.decision"),
    RoleRule(role="policy", attr="authz.decision"),
    RoleRule(role="policy", name_glob="*guardrail*"),
    RoleRule(role="policy", name_glob="opa.*"),
    RoleRule(role="policy", name_glob="*policy*"),
    RoleRule(role="policy", name_glob="authz*"),
    RoleRule(role="policy", name_glob="*moderation*"),
    # tools named by attribute only
    RoleRule(role="tool", attr="gen_ai.tool.call.id"),
    RoleRule(role="tool", name_glob="execute_tool*"),
    # LLM calls recognised by provider attributes
    RoleRule(role="llm", attr="gen_ai.provider.name"),
    RoleRule(role="llm", attr="gen_ai.system"),
    RoleRule(role="llm", attr="llm.model_name"),
    RoleRule(role="rerank", name_glob="*rerank*"),
    # caches and memory
    RoleRule(role="cache", attr="cache.hit"),
    RoleRule(role="cache", attr="cache.result"),
    RoleRule(role="cache", attr="cache_hit"),
    RoleRule(role="memory", attr="gen_ai.memory.operation"),
    RoleRule(role="memory", name_glob="*memory*"),
    _eq("cache", "db.system.name", *CACHE_DBS),
    _eq("cache", "db.system", *CACHE_DBS),
    # vector stores and databases
    _eq("vector_store", "db.system.name", *VECTOR_DBS),
    _eq("vector_store", "db.system", *VECTOR_DBS),
    RoleRule(role="vector_store", attr="db.vector.query.top_k"),
    RoleRule(role="database", attr="db.system.name"),
    RoleRule(role="database", attr="db.system"),
    # protocols
    RoleRule(role="messaging", attr="messaging.system"),
    RoleRule(role="messaging", kinds=("PRODUCER", "CONSUMER")),
    RoleRule(role="rpc", attr="rpc.system.name"),
    RoleRule(role="rpc", attr="rpc.system"),
    RoleRule(role="http", attr="http.request.method"),
    RoleRule(role="http", attr="http.method"),
    RoleRule(role="http", attr="url.full"),
)


def rules_from_config(entries: list[dict[str, Any]]) -> tuple[RoleRule, ...]:
    """Build role rules from ``[[roles.rules]]`` config entries (validated)."""
    rules: list[RoleRule] = []
    allowed = {"role", "attr", "equals", "glob", "name_glob", "kind", "exists"}
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
        try:
            rules.append(
                RoleRule(
                    role=str(entry.get("role", "")),
                    attr=entry.get("attr"),
                    equals=tuple(str(v) for v in equals),
                    glob=entry.get("glob"),
                    name_glob=entry.get("name_glob"),
                    kinds=tuple(str(k).upper() for k in kinds),
                )
            )
        except ConfigError as exc:
            raise ConfigError(f"roles.rules[{i}]: {exc.message}") from None
    return tuple(rules)
