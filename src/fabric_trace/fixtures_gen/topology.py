"""The simulated deployment: services and their resources, peers, tools, models, scopes.

Everything here is static data derived from a :class:`Scenario` (only the
placement of the remote state replicas depends on a knob). The home of every
instrumented service is one zone of one region, so a healthy scenario makes no
cross-zone calls; each state service also has a *remote* replica, placed in
another zone of the home region or, with ``state_region``, in another region.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from .scenario import Scenario

HOME_REGION = "us-east-1"
HOME_ZONE = "us-east-1a"
HOME_CLUSTER = "prod-use1"
ENVIRONMENT = "production"

#: (service key, service.name, service.namespace, service.version); key "x@remote" is the remote replica.
SERVICES: tuple[tuple[str, str, str, str], ...] = (
    ("gateway", "inference-gateway", "platform", "2.3.1"),
    ("agent", "agent-orchestrator", "agents", "1.14.0"),
    ("worker", "report-worker", "agents", "1.14.0"),
    ("retrieval", "retrieval-service", "search", "3.2.0"),
    ("memory", "memory-service", "state", "0.9.4"),
    ("policy", "policy-engine", "security", "1.4.2"),
    ("orders", "order-service", "tools", "5.0.2"),
    ("tickets", "ticket-service", "tools", "2.8.0"),
    ("analytics", "analytics-service", "tools", "1.1.0"),
)

#: Services with a remote replica (the "state" services whose placement is a knob).
STATE_SERVICES: tuple[str, ...] = ("retrieval", "memory")


@dataclass(frozen=True)
class Placement:
    """Where one service instance runs."""

    region: str
    zone: str
    cluster: str


@dataclass(frozen=True)
class Instance:
    """One instrumented service instance = one OTLP resource."""

    key: str
    service_name: str
    namespace: str
    placement: Placement
    attributes: dict[str, Any]


def _stable_hex(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def remote_placement(scenario: Scenario) -> Placement:
    """Placement of the remote state replicas for this scenario."""
    if scenario.state_region and scenario.state_region != HOME_REGION:
        region = scenario.state_region
        return Placement(region, f"{region}a", f"prod-{region.replace('-', '')[:6]}")
    return Placement(HOME_REGION, f"{HOME_REGION}b", HOME_CLUSTER)


def build_instances(scenario: Scenario) -> list[Instance]:
    """The resource table: every service at home, plus remote replicas of state services."""
    home = Placement(HOME_REGION, HOME_ZONE, HOME_CLUSTER)
    remote = remote_placement(scenario)
    out: list[Instance] = []
    for key, name, ns, version in SERVICES:
        places = [(key, home)] + ([(f"{key}@remote", remote)] if key in STATE_SERVICES else [])
        for ikey, place in places:
            uid = _stable_hex(f"{ikey}/{place.zone}", 32)
            pod = f"{name}-{uid[:10]}-{uid[10:15]}"
            attrs: dict[str, Any] = {
                "service.name": name,
                "service.namespace": ns,
                "service.version": version,
                "service.instance.id": f"{uid[:8]}-{uid[8:12]}-{uid[12:16]}-{uid[16:20]}-{uid[20:32]}",
                "deployment.environment.name": ENVIRONMENT,
                "cloud.provider": "aws",
                "cloud.platform": "aws_eks",
                "cloud.region": place.region,
                "cloud.availability_zone": place.zone,
                "cloud.account.id": "123456789012",
                "k8s.cluster.name": place.cluster,
                "k8s.namespace.name": ns,
                "k8s.pod.name": pod,
                "host.name": f"ip-10-{int(uid[:2], 16) % 250}-{int(uid[2:4], 16)}-{int(uid[4:6], 16)}"
                f".{place.region}.compute.internal",
                "telemetry.sdk.language": "python",
                "telemetry.sdk.name": "opentelemetry",
                "telemetry.sdk.version": "1.39.0",
            }
            out.append(Instance(ikey, name, ns, place, attrs))
    return out


@dataclass(frozen=True)
class Peer:
    """An uninstrumented server (datastore, provider, external API)."""

    address: str
    port: int
    external: bool


PEERS: dict[str, Peer] = {
    "redis.memory": Peer("redis-memory.state.svc.cluster.local", 6379, False),
    "redis.search": Peer("redis-search.search.svc.cluster.local", 6379, False),
    "postgres.memory": Peer("pg-memory.state.svc.cluster.local", 5432, False),
    "postgres.orders": Peer("pg-orders.tools.svc.cluster.local", 5432, False),
    "qdrant": Peer("qdrant.search.svc.cluster.local", 6333, False),
    "pgvector": Peer("pg-vector.search.svc.cluster.local", 5432, False),
    "kafka": Peer("kafka.platform.svc.cluster.local", 9092, False),
    "openai": Peer("api.openai.com", 443, True),
    "anthropic": Peer("api.anthropic.com", 443, True),
}


@dataclass(frozen=True)
class Tool:
    """A tool an agent can call."""

    name: str
    tool_type: str  # gen_ai.tool.type: function | extension | datastore
    service: str | None  # internal tool service key; None for external or in-process tools
    method: str
    target: str  # url path template (internal) or URL template without scheme (external)
    external: bool = False  # served by an uninstrumented external API


TOOLS: dict[str, Tool] = {
    "lookup_order": Tool("lookup_order", "function", "orders", "GET", "/v1/orders/{arg}"),
    "create_ticket": Tool("create_ticket", "function", "tickets", "POST", "/v1/tickets"),
    "run_sql": Tool("run_sql", "datastore", "analytics", "POST", "/v1/query"),
    "calculator": Tool("calculator", "function", None, "", ""),
    "get_weather": Tool("get_weather", "extension", None, "GET", "api.weather.example.com/v1/forecast?city={arg}", True),
    "send_email": Tool("send_email", "extension", None, "POST", "api.mail.example.com/v3/send", True),
    "web_search": Tool("web_search", "extension", None, "GET", "api.search.example.com/v1/search?q={arg}", True),
    "fetch_url": Tool("fetch_url", "extension", None, "GET", "docs.example.org/articles/{arg}", True),
}

#: workflow -> (internal tools, external tools)
WORKFLOW_TOOLS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "support-agent": (("lookup_order", "create_ticket"), ("get_weather", "send_email")),
    "research-agent": (("run_sql", "calculator"), ("web_search", "fetch_url")),
    "rag-answer": ((), ()),
}


@dataclass(frozen=True)
class Model:
    """A model as requested and as reported by the provider."""

    provider: str  # gen_ai.provider.name
    request: str
    response: str
    prefix_tokens: int  # stable prompt prefix (system prompt + tool definitions)


MODELS: dict[str, Model] = {
    "support-agent": Model("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 1792),
    "rag-answer": Model("openai", "gpt-4o", "gpt-4o-2024-08-06", 1280),
    "research-agent": Model("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929", 3072),
    "critic-agent": Model("anthropic", "claude-haiku-4-5", "claude-haiku-4-5-20251001", 1024),
    "report-writer": Model("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 1024),
}
EMBEDDING_MODEL = Model("openai", "text-embedding-3-small", "text-embedding-3-small", 0)

#: workflow -> (data source id, vector store peer key, collection)
DATA_SOURCES: dict[str, tuple[str, str, str]] = {
    "support-agent": ("kb-support", "qdrant", "support_articles"),
    "rag-answer": ("kb-product-docs", "qdrant", "product_docs"),
    "research-agent": ("papers-index", "pgvector", "papers"),
}

#: Instrumentation scopes: alias -> (scope name, scope version). Span code refers to the alias.
SCOPES: dict[str, tuple[str, str]] = {
    "fastapi": ("opentelemetry.instrumentation.fastapi", "0.60b0"),
    "httpx": ("opentelemetry.instrumentation.httpx", "0.60b0"),
    "genai": ("opentelemetry.util.genai.handler", "1.1b0"),
    "otel.openai": ("opentelemetry.instrumentation.openai_v2", "2.4b0"),
    "otel.anthropic": ("opentelemetry.instrumentation.anthropic", "0.1b0"),
    "oi.openai": ("openinference.instrumentation.openai", "0.1.66"),
    "oi.anthropic": ("openinference.instrumentation.anthropic", "0.1.21"),
    "ollm.openai": ("opentelemetry.instrumentation.openai.v1", "0.38.7"),
    "ollm.anthropic": ("opentelemetry.instrumentation.anthropic", "0.38.7"),
    "redis": ("opentelemetry.instrumentation.redis", "0.60b0"),
    "psycopg": ("opentelemetry.instrumentation.psycopg", "0.60b0"),
    "qdrant": ("opentelemetry.instrumentation.qdrant", "0.38.7"),
    "opa": ("github.com/open-policy-agent/opa", "1.4.2"),
    "guardrails": ("acme.guardrails", "0.9.0"),
    "kafka": ("opentelemetry.instrumentation.aiokafka", "0.60b0"),
    "tools": ("acme.tools", "1.0.0"),
}
SCOPE_INDEX: dict[str, int] = {alias: i for i, alias in enumerate(SCOPES)}
