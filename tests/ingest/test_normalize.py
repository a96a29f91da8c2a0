"""The crosswalk and the role rules: documented, and applied at ingest exactly as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from fabric_trace.config import Config
from fabric_trace.errors import ConfigError
from fabric_trace.ingest.batch import SpanBatch
from fabric_trace.ingest.normalize import PROVIDER_RENAMES, RESOURCE_KEYS, SPAN_KEYS, compile_projection
from fabric_trace.ingest.roles import DEFAULT_RULES, ROLES, TIERS, rules_from_config
from fabric_trace.ingest.writer import StoreWriter
from fabric_trace.store import db as store

DOC = (Path(__file__).resolve().parents[2] / "docs" / "normalization.md").read_text()


def test_every_key_and_role_is_documented() -> None:
    for keys in list(SPAN_KEYS.values()) + list(RESOURCE_KEYS.values()):
        for k in keys:
            assert f"`{k}`" in DOC, k
    for old, new in PROVIDER_RENAMES.items():
        assert f"`{old}`" in DOC and f"`{new}`" in DOC
    for role in ROLES:
        assert f"`{role}`" in DOC
    for i, rule in enumerate(DEFAULT_RULES, 1):
        assert f"| {i} | {rule.tier} | {rule.role} | `{rule.evidence}` |" in DOC, (i, rule)


def test_rules_are_ordered_by_tier() -> None:
    """Every domain rule before every framework rule before every name rule."""
    ranks = [TIERS.index(r.tier) for r in DEFAULT_RULES]
    assert ranks == sorted(ranks)
    assert {r.tier for r in DEFAULT_RULES} == {"domain", "framework", "name"}


def _store_one(tmp_path, attrs, *, name="op", kind="INTERNAL", resource=None, projection=None):
    con = store.connect(str(tmp_path / "n.duckdb"))
    b = SpanBatch()
    rid = b.resource(resource or {"service.name": "svc"}, None, 0)
    sid = b.scope("s", None, {}, None, 0)
    b.span(("line 1", "a" * 32, "b" * 16, None, None, 0, name, kind, 1, 2, "UNSET", None, attrs, [], [], 0, 0, 0, rid, sid))
    StoreWriter(con, projection or compile_projection()).write(b, 1)
    row = con.execute("SELECT * FROM spans").fetchone()
    cols = [d[0] for d in con.description]
    con.close()
    return dict(zip(cols, row))


@pytest.mark.parametrize(
    ("attrs", "name", "kind", "role"),
    [
        ({"openinference.span.kind": "LLM"}, "ChatCompletion", "INTERNAL", "llm"),
        ({"openinference.span.kind": "GUARDRAIL"}, "g", "INTERNAL", "policy"),
        ({"gen_ai.operation.name": "chat"}, "chat gpt-4o", "CLIENT", "llm"),
        ({"gen_ai.operation.name": "embeddings"}, "embeddings x", "CLIENT", "embedding"),
        ({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "t"}, "execute_tool t", "INTERNAL", "tool"),
        ({"gen_ai.operation.name": "invoke_agent"}, "invoke_agent a", "INTERNAL", "agent"),
        ({"traceloop.span.kind": "workflow"}, "wf", "INTERNAL", "workflow"),
        ({"policy.decision": "allow"}, "opa.decision", "INTERNAL", "policy"),
        ({}, "guardrail.evaluate", "INTERNAL", "policy"),
        ({"cache.hit": True}, "cache.get", "CLIENT", "cache"),
        ({"db.system.name": "redis", "db.query.text": "GET k"}, "GET", "CLIENT", "cache"),
        ({"db.system.name": "qdrant"}, "search", "CLIENT", "vector_store"),
        ({"db.system": "postgresql"}, "SELECT", "CLIENT", "database"),
        ({}, "memory.read", "CLIENT", "memory"),
        ({"messaging.system": "kafka"}, "send", "PRODUCER", "messaging"),
        ({"http.request.method": "GET"}, "GET", "CLIENT", "http"),
        ({"gen_ai.system": "openai"}, "openai.chat", "CLIENT", "llm"),
        ({}, "compute", "INTERNAL", "internal"),
    ],
)
def test_roles(tmp_path, attrs, name, kind, role) -> None:
    assert _store_one(tmp_path, attrs, name=name, kind=kind)["role"] == role


def test_crosswalk_columns(tmp_path) -> None:
    row = _store_one(
        tmp_path,
        {
            "gen_ai.system": "az.ai.openai", "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.usage.prompt_tokens": 120,
            "gen_ai.usage.completion_tokens": "30", "llm.token_count.prompt_details.cache_read": 64.0,
            "url.full": "https://User@API.Example.com:8443/v1/x?q=1", "session.id": "s-1", "enduser.id": "alice",
            "gen_ai.tool.call.id": "call_1", "gen_ai.agent.name": "planner",
        },
        kind="CLIENT",
        resource={"service.name": "gw", "service.namespace": "platform", "cloud.region": "eu-west-1",
                  "cloud.availability_zone": "eu-west-1a", "host.name": "h1"},
    )
    assert row["provider"] == "azure.ai.openai"
    assert row["model"] == "gpt-4o-2024-08-06"
    assert (row["input_tokens"], row["output_tokens"], row["cached_input_tokens"]) == (120, 30, 64)
    assert row["peer"] == "api.example.com" and row["url_scheme"] == "https"
    assert (row["service_name"], row["service_namespace"], row["region"], row["zone"], row["host"]) == (
        "gw", "platform", "eu-west-1", "eu-west-1a", "h1")
    assert (row["session_id"], row["user_id"], row["tool_call_id"], row["agent_name"]) == ("s-1", "alice", "call_1", "planner")


def test_cached_tokens_not_reported_is_null(tmp_path) -> None:
    row = _store_one(tmp_path, {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 5})
    assert row["cached_input_tokens"] is None and row["input_tokens"] == 5
    assert row["service_name"] == "svc"


def test_missing_service_name(tmp_path) -> None:
    assert _store_one(tmp_path, {}, resource={"x": 1})["service_name"] == "unknown_service"


def test_config_rules_override(tmp_path) -> None:
    cfg = Config(path="fabric.toml", data={"roles": {"rules": [{"role": "memory", "name_glob": "mem0.*"}]}})
    row = _store_one(tmp_path, {"http.request.method": "GET"}, name="mem0.search", projection=cfg.projection())
    assert row["role"] == "memory"


@pytest.mark.parametrize(
    "entry",
    [{"role": "nope", "attr": "x"}, {"role": "tool"}, {"role": "tool", "attr": "x", "bogus": 1}, "string"],
)
def test_bad_role_rules_are_config_errors(entry) -> None:
    with pytest.raises(ConfigError):
        rules_from_config([entry])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("attrs", "provider"),
    [
        # the Vercel AI SDK: its provider id in ai.model.provider, and in gen_ai.system on model calls
        ({"ai.model.provider": "openai.chat"}, "openai"),
        ({"ai.model.provider": "openai.chat", "gen_ai.system": "openai.chat"}, "openai"),
        ({"ai.model.provider": "anthropic.messages", "gen_ai.system": "anthropic.messages"}, "anthropic"),
        ({"ai.model.provider": "azure.chat", "gen_ai.system": "azure.chat"}, "azure.ai.openai"),
        # GenAI provider names with dots of their own keep them
        ({"gen_ai.provider.name": "azure.ai.inference"}, "azure.ai.inference"),
        ({"gen_ai.system": "aws.bedrock"}, "aws.bedrock"),
        ({"gen_ai.system": "az.ai.openai"}, "azure.ai.openai"),
        # a GenAI name beside a Vercel id: the GenAI name wins and is kept whole
        ({"gen_ai.provider.name": "gcp.vertex_ai", "ai.model.provider": "google.vertex"}, "gcp.vertex_ai"),
        ({"gen_ai.system": "OpenAI"}, "openai"),
    ],
)
def test_provider_names(tmp_path, attrs, provider) -> None:
    assert _store_one(tmp_path, attrs, name="call", kind="CLIENT")["provider"] == provider
