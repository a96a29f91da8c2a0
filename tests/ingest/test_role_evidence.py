"""Role evidence: what a span does outranks what a framework calls it, which outranks its name.

docs/normalization.md ("Roles"); conflicts are queryable in the ``role_conflicts`` view.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fabric_trace.ingest.batch import SpanBatch
from fabric_trace.ingest.normalize import compile_projection
from fabric_trace.ingest.writer import StoreWriter
from fabric_trace.store import db as store

PROJECTION = compile_projection()


class Store:
    """One in-memory store; each call adds spans and reads back their normalized columns."""

    def __init__(self) -> None:
        self.con = store.connect(":memory:")
        self.writer = StoreWriter(self.con, PROJECTION)
        self.n = 0
        self.file_id = 0

    def roles(self, spans: list[tuple[dict[str, Any], str, str]]) -> list[dict[str, Any]]:
        b = SpanBatch()
        rid = b.resource({"service.name": "svc"}, None, 0)
        sid = b.scope("s", None, {}, None, 0)
        ids = []
        for attrs, name, kind in spans:
            self.n += 1
            span_id = f"{self.n:016x}"
            ids.append(span_id)
            b.span((f"line {self.n}", "a" * 32, span_id, None, None, 0, name, kind, 1, 2, "UNSET", None, attrs,
                    [], [], 0, 0, 0, rid, sid))
        self.file_id += 1
        self.writer.write(b, self.file_id)
        cur = self.con.execute(
            "SELECT s.span_id, s.role, s.role_source, s.role_evidence, s.tool_name, s.agent_name, s.session_id, "
            "s.user_id, s.tool_call_id, c.rival_role, c.rival_source, c.rival_evidence "
            "FROM spans s LEFT JOIN role_conflicts c USING (trace_id, span_id) "
            "WHERE s.span_id IN (SELECT unnest(?))", [ids])
        cols = [d[0] for d in cur.description]
        by_id = {r[0]: dict(zip(cols, r)) for r in cur.fetchall()}
        return [by_id[i] for i in ids]

    def one(self, attrs: dict[str, Any], name: str = "op", kind: str = "INTERNAL") -> dict[str, Any]:
        return self.roles([(attrs, name, kind)])[0]


@pytest.fixture(scope="module")
def db() -> Store:
    return Store()


def test_openllmetry_task_with_a_policy_decision_is_a_policy_check(db: Store) -> None:
    row = db.one({"traceloop.span.kind": "task", "traceloop.entity.name": "check_policy",
                  "traceloop.workflow.name": "support", "policy.decision": "allow"}, name="check_policy.task")
    assert (row["role"], row["role_source"], row["role_evidence"]) == ("policy", "domain", "policy.decision present")
    assert (row["rival_role"], row["rival_source"], row["rival_evidence"]) == (
        "workflow", "framework", "traceloop.span.kind in workflow, task")


def test_task_whose_output_is_a_decision_is_a_policy_check(db: Store) -> None:
    row = db.one({"traceloop.span.kind": "task", "traceloop.entity.output": json.dumps({"decision": "deny"})},
                 name="authorize.task")
    assert (row["role"], row["role_source"]) == ("policy", "framework")
    # a tool that returns a field called "decision" is still a tool: specific labels come first
    row = db.one({"traceloop.span.kind": "tool", "traceloop.entity.name": "refund",
                  "traceloop.entity.output": json.dumps({"decision": "approved"})}, name="refund.tool")
    assert (row["role"], row["tool_name"], row["rival_role"]) == ("tool", "refund", "policy")
    # text that merely mentions the word is not a decision
    row = db.one({"openinference.span.kind": "CHAIN", "output.value": 'the "decision" was hard'})
    assert (row["role"], row["rival_role"]) == ("workflow", None)


@pytest.mark.parametrize(
    ("attrs", "name", "role", "source"),
    [
        # token usage on a LangChain CHAIN span: a model call
        ({"openinference.span.kind": "CHAIN", "llm.token_count.prompt": 10}, "RunnableSequence", "llm", "domain"),
        # OpenInference embeddings report tokens too
        ({"openinference.span.kind": "EMBEDDING", "embedding.model_name": "e", "llm.token_count.prompt": 3},
         "CreateEmbeddingResponse", "embedding", "domain"),
        # Vercel AI SDK: the outer call sums its steps' tokens, the inner step is the model call
        ({"ai.operationId": "ai.generateText", "ai.usage.promptTokens": 30}, "ai.generateText", "workflow", "domain"),
        ({"ai.operationId": "ai.generateText.doGenerate", "ai.usage.promptTokens": 10, "gen_ai.system": "openai.chat"},
         "ai.generateText.doGenerate", "llm", "domain"),
        ({"ai.operationId": "ai.toolCall", "ai.toolCall.name": "weather", "ai.toolCall.id": "c1"}, "ai.toolCall",
         "tool", "domain"),
        # LlamaIndex's _prepare_chat_with_tools: labelled LLM and naming the model, but its output is the
        # request it built (no tokens, no reply): a step before the model call, not the call
        ({"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini", "llm.provider": "openai",
          "output.value": json.dumps({"messages": ["system: be brief", "user: hi"], "tools": []})},
         "OpenAI._prepare_chat_with_tools", "workflow", "domain"),
        # ... while the call itself reports tokens (its output is the reply)
        ({"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini", "llm.token_count.prompt": 34,
          "output.value": "assistant: None"}, "OpenAI.chat", "llm", "domain"),
        # a model named with no other evidence is still a model call (e.g. one that failed)
        ({"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini"}, "OpenAI.chat", "llm", "domain"),
        # a LangGraph agent node returns the state's messages but names no model: its label stands
        ({"openinference.span.kind": "AGENT", "output.value": json.dumps({"messages": [{"type": "ai"}]})},
         "agent", "agent", "framework"),
        # framework labels beat names
        ({"openinference.span.kind": "CHAIN"}, "policy_router", "workflow", "framework"),
        ({"langfuse.observation.type": "guardrail"}, "check", "policy", "framework"),
        ({"langsmith.span.kind": "retriever"}, "search", "retrieval", "framework"),
        ({"gen_ai.guardrail.tripwire_triggered": True}, "input_guardrail", "policy", "domain"),
        ({}, "content_guardrail", "policy", "name"),
        ({}, "compute", "internal", "none"),
    ],
)
def test_order_of_evidence(db: Store, attrs: dict[str, Any], name: str, role: str, source: str) -> None:
    row = db.one(attrs, name=name)
    assert (row["role"], row["role_source"]) == (role, source)


def test_identity_from_association_properties(db: Store) -> None:
    row = db.one({"traceloop.association.properties.session_id": "s-9",
                  "traceloop.association.properties.user_id": "u-9", "traceloop.span.kind": "workflow"})
    assert (row["session_id"], row["user_id"]) == ("s-9", "u-9")
    row = db.one({"ai.telemetry.metadata.sessionId": "s-1", "ai.telemetry.metadata.userId": "u-1"})
    assert (row["session_id"], row["user_id"]) == ("s-1", "u-1")
    row = db.one({"traceloop.span.kind": "agent", "traceloop.entity.name": "planner"})
    assert (row["role"], row["agent_name"], row["tool_name"]) == ("agent", "planner", None)


def test_a_step_that_prepares_a_model_call_is_no_model_call(db: Store) -> None:
    row = db.one({"openinference.span.kind": "LLM", "llm.model_name": "m",
                  "output.value": json.dumps({"messages": []})}, name="OpenAI._prepare_chat_with_tools")
    assert (row["role"], row["role_evidence"]) == ("workflow", "llm.model_name present and output.value has field messages")
    assert (row["rival_role"], row["rival_source"], row["rival_evidence"]) == ("llm", "domain", "llm.model_name present")
    # both conditions are needed: the output alone, or text mentioning messages, is no evidence
    row = db.one({"openinference.span.kind": "LLM", "llm.model_name": "m", "output.value": 'the "messages" field'})
    assert row["role"] == "llm"
    row = db.one({"output.value": json.dumps({"messages": []})})
    assert row["role"] == "internal"


def test_agreeing_evidence_is_no_conflict(db: Store) -> None:
    row = db.one({"openinference.span.kind": "LLM", "llm.token_count.prompt": 5, "llm.model_name": "m"})
    assert (row["role"], row["rival_role"]) == ("llm", None)


# --- property: domain evidence is never changed by framework labels or attribute order ---

DOMAIN = [
    ({"policy.decision": "deny"}, "policy"),
    ({"guardrail.blocked": True}, "policy"),
    ({"gen_ai.operation.name": "chat"}, "llm"),
    ({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "t"}, "tool"),
    ({"gen_ai.usage.input_tokens": 7, "gen_ai.usage.output_tokens": 2}, "llm"),
    ({"llm.token_count.prompt": 3}, "llm"),
    ({"llm.model_name": "m", "output.value": '{"messages": []}'}, "workflow"),
    ({"llm.request.type": "embedding"}, "embedding"),
    ({"gen_ai.tool.call.id": "call_1"}, "tool"),
    ({"db.system": "postgresql"}, "database"),
    ({"db.system.name": "redis"}, "cache"),
    ({"db.system": "qdrant"}, "vector_store"),
    ({"http.request.method": "POST", "url.full": "https://x"}, "http"),
    ({"rpc.system": "grpc"}, "rpc"),
    ({"messaging.system": "kafka"}, "messaging"),
]
FRAMEWORK = {
    "openinference.span.kind": st.sampled_from(["LLM", "CHAIN", "TOOL", "AGENT", "GUARDRAIL", "RETRIEVER",
                                                "RERANKER", "EMBEDDING", "EVALUATOR", "UNKNOWN"]),
    "traceloop.span.kind": st.sampled_from(["workflow", "task", "agent", "tool", "unknown"]),
    "langsmith.span.kind": st.sampled_from(["llm", "chain", "tool", "retriever"]),
    "langfuse.observation.type": st.sampled_from(["generation", "span", "guardrail", "tool", "agent"]),
    "traceloop.entity.output": st.sampled_from(['{"decision": "allow"}', '{"tripwire_triggered": true}', "ok"]),
    "output.value": st.sampled_from(['{"allowed": false}', "text"]),
    "traceloop.entity.name": st.text(max_size=8),
    "traceloop.workflow.name": st.text(max_size=8),
    "metadata": st.just('{"ls_provider": "openai"}'),
}
UNRELATED = st.dictionaries(st.sampled_from(["app.x", "foo", "input.value", "tag.tags", "component"]),
                            st.one_of(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1), st.booleans()), max_size=3)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    domain=st.sampled_from(DOMAIN),
    framework=st.fixed_dictionaries({}, optional=FRAMEWORK),
    unrelated=UNRELATED,
    name=st.sampled_from(["op", "check_policy.task", "guardrail", "execute_tool x", "memory.read", "rerank"]),
    kind=st.sampled_from(["INTERNAL", "CLIENT", "PRODUCER"]),
    seed=st.randoms(use_true_random=False),
)
@pytest.mark.slow
def test_framework_labels_never_change_a_role_with_domain_evidence(db: Store, domain, framework, unrelated, name,
                                                                   kind, seed) -> None:
    attrs, role = domain
    noisy = list({**unrelated, **framework, **attrs}.items())
    seed.shuffle(noisy)
    plain, shuffled = db.roles([(attrs, "op", "INTERNAL"), (dict(noisy), name, kind)])
    assert plain["role"] == role and plain["role_source"] == "domain"
    assert shuffled["role"] == role and shuffled["role_source"] == "domain"
    assert shuffled["role_evidence"] == plain["role_evidence"]


def test_role_conflicts_view_matches_spans(db: Store) -> None:
    db.one({"traceloop.span.kind": "task", "guardrail.decision": "block"}, name="x")
    con: duckdb.DuckDBPyConnection = db.con
    n_conflicts = con.execute("SELECT count(*) FROM role_conflicts").fetchone()[0]
    n_spans = con.execute("SELECT count(*) FROM span_store WHERE role_rival IS NOT NULL").fetchone()[0]
    assert n_conflicts == n_spans > 0
    assert con.execute("SELECT count(*) FROM role_conflicts WHERE rival_role = role").fetchone()[0] == 0
