"""The trust rules on hand-made traces: tree order, decisions, untrusted paths, zones, egress.

Each case draws its trace; times are ms. ``P`` is a policy decision, ``T`` a tool execution.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from test_trust_helpers import S, Svc, TraceSet, build, keyset, sid, tid, trust_findings

AGENT = Svc("agent", "agents")
OPA = Svc("policy-engine", "security")
RAG = Svc("retriever", "search")
USER = {"enduser.id": "u-1"}


def tool(n: int, parent: int, start: float, end: float, name: str = "lookup_order", call: str | None = "c1",
         **kw: object) -> S:
    attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name}
    if call:
        attrs["gen_ai.tool.call.id"] = call
    return S(sid(n), sid(parent), f"execute_tool {name}", AGENT, start, end, attrs=attrs | dict(kw))


def policy(n: int, parent: int, start: float, end: float, decision: str | None = "allow", call: str | None = "c1",
           name: str | None = "lookup_order", svc: Svc = AGENT, span_name: str = "guardrail.evaluate",
           **extra: object) -> S:
    attrs: dict[str, object] = {}
    if decision is not None:
        attrs["policy.decision"] = decision
    if call:
        attrs["gen_ai.tool.call.id"] = call
    if name:
        attrs["gen_ai.tool.name"] = name
    attrs.update(extra)
    return S(sid(n), sid(parent), span_name, svc, start, end, attrs=attrs)


def root(n: int = 1, end: float = 100, **attrs: object) -> S:
    return S(sid(n), None, "invoke_agent support", AGENT, 0, end, attrs={"gen_ai.operation.name": "invoke_agent",
                                                                       **USER, **attrs})


def llm(n: int, parent: int, start: float, end: float) -> S:
    return S(sid(n), sid(parent), "chat gpt-4o", AGENT, start, end, "CLIENT",
             {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "server.address": "api.openai.com"})


def retrieval(n: int, parent: int, start: float, end: float) -> S:
    return S(sid(n), sid(parent), "retrieval kb", AGENT, start, end, attrs={"gen_ai.operation.name": "retrieval"})


def findings_of(tmp_path: Path, *spans: S, config: str | None = None) -> list[dict]:
    ts = TraceSet()
    ts.trace(tid(1), spans)
    return trust_findings(build(tmp_path, ts, config))


def kinds_at(rows: list[dict], span: int) -> set[str]:
    return {r["kind"] for r in rows if r["span_id"] == sid(span)}


# -- which policy decisions guard a tool -------------------------------------------------------------
def test_policy_ancestor_guards(tmp_path: Path) -> None:
    #   root      |--------------------|
    #   P           |----------------|
    #   T             |--------|
    rows = findings_of(tmp_path, root(), policy(2, 1, 1, 50), tool(3, 2, 5, 20))
    assert not kinds_at(rows, 3)


def test_earlier_sibling_guards(tmp_path: Path) -> None:
    #   root      |--------------------|
    #   P           |--|
    #   T                 |--------|
    rows = findings_of(tmp_path, root(), policy(2, 1, 1, 3), tool(3, 1, 5, 20))
    assert not kinds_at(rows, 3)


def test_policy_inside_an_earlier_sibling_subtree_guards_even_with_clock_skew(tmp_path: Path) -> None:
    #   root      |------------------------|
    #   client      |----|                    (agent -> policy-engine)
    #   server        |--|                    policy-engine's clock is 40 ms ahead:
    #   opa.decision     (at 42-43 ms)        it "starts" after T, but sits in an earlier branch
    #   T                   |--------|
    client = S(sid(2), sid(1), "POST", AGENT, 1, 4, "CLIENT", {"url.full": "https://policy-engine.security.svc"
                                                                "/v1/data", "server.address": "policy-engine"})
    server = S(sid(3), sid(2), "POST /v1/data", OPA, 41, 44, "SERVER", {"http.request.method": "POST"})
    rows = findings_of(tmp_path, root(), client, server, policy(4, 3, 42, 43, svc=OPA, span_name="opa.decision"),
                       tool(5, 1, 5, 20))
    assert not kinds_at(rows, 5)


def test_a_sibling_starting_at_the_same_instant_guards_when_it_ends_first(tmp_path: Path) -> None:
    #   root      |--------------------|
    #   P           |                      (the JS SDK records starts in whole ms: P and T share one)
    #   T           |--------|
    # both ways round, so that neither span id order decides it
    rows = findings_of(tmp_path, root(), policy(9, 1, 5, 5.05), tool(3, 1, 5, 20))
    assert not kinds_at(rows, 3)
    rows = findings_of(tmp_path, root(), policy(3, 1, 5, 5.05), tool(9, 1, 5, 20))
    assert not kinds_at(rows, 9)


def test_later_sibling_and_child_policies_do_not_guard(tmp_path: Path) -> None:
    #   root      |--------------------------|
    #   T1          |-----|            T2 |-----------|
    #   P (late)           |--|          P (child of T2) |--|
    rows = findings_of(tmp_path, root(), tool(2, 1, 1, 5, call="a"), policy(3, 1, 6, 7, call="a"),
                       tool(4, 1, 10, 40, call="b"), policy(5, 4, 11, 12, call="b"))
    assert kinds_at(rows, 2) == {"unguarded_tool_call"}
    assert kinds_at(rows, 4) == {"unguarded_tool_call"}


def test_decision_for_another_call_or_tool_does_not_guard(tmp_path: Path) -> None:
    rows = findings_of(
        tmp_path, root(),
        policy(2, 1, 1, 2, call="other"), tool(3, 1, 3, 4, call="c1"),                 # ids differ
        policy(4, 1, 5, 6, call=None, name="send_email"), tool(5, 1, 7, 8, call="c2"),  # names differ
        policy(6, 1, 9, 10, call=None, name="calculator"), tool(7, 1, 11, 12, name="calculator", call="c3"),
    )
    assert kinds_at(rows, 3) == {"unguarded_tool_call"}
    assert kinds_at(rows, 5) == {"unguarded_tool_call"}
    assert not kinds_at(rows, 7)  # no call id on the decision: the tool name decides


def test_decision_naming_nothing_guards_every_later_tool(tmp_path: Path) -> None:
    rows = findings_of(tmp_path, root(), policy(2, 1, 1, 2, call=None, name=None, span_name="moderation.check"),
                       tool(3, 1, 3, 4), tool(4, 1, 5, 6, name="send_email", call="c9"))
    assert not kinds_at(rows, 3) and not kinds_at(rows, 4)


def test_denied_then_executed_is_critical_and_a_later_allow_clears_it(tmp_path: Path) -> None:
    #   P deny(c1)  T(c1)     P deny(c2)  P allow(c2)  T(c2)
    rows = findings_of(tmp_path, root(), policy(2, 1, 1, 2, "deny"), tool(3, 1, 3, 4),
                       policy(4, 1, 5, 6, "deny", call="c2"), policy(5, 1, 7, 8, "allow", call="c2"),
                       tool(6, 1, 9, 10, call="c2"))
    denied = [r for r in rows if r["span_id"] == sid(3)]
    assert [(r["kind"], r["severity"]) for r in denied] == [("denied_tool_executed", "critical")]
    assert denied[0]["details"]["policy_span_id"] == sid(2)
    assert not kinds_at(rows, 6)


@pytest.mark.parametrize("attrs, denied", [
    ({"gen_ai.guardrail.tripwire_triggered": True}, True),
    ({"guardrail.passed": False}, True),
    ({"ai_guard.action": "BLOCK"}, True),
    ({"policy.decision": "Permit"}, False),
    ({"authz.decision": "REJECTED"}, True),
    ({"opa.decision": "something-odd"}, False),  # unknown decisions still count as a check
])
def test_decision_attribute_variants(tmp_path: Path, attrs: dict, denied: bool) -> None:
    p = policy(2, 1, 1, 2, decision=None, span_name="guardrail.check", **attrs)
    rows = findings_of(tmp_path, root(), p, tool(3, 1, 3, 4))
    assert kinds_at(rows, 3) == ({"denied_tool_executed"} if denied else set())


def test_nested_spans_of_one_tool_call_count_once(tmp_path: Path) -> None:
    #   T (execute_tool, c1)  |------------|
    #   T' (tool span, c1)      |--------|     an inner framework span of the same call
    inner = S(sid(3), sid(2), "lookup_order", AGENT, 2, 8, attrs={"openinference.span.kind": "TOOL",
                                                                 "tool.name": "lookup_order",
                                                                 "tool_call.id": "c1"})
    rows = findings_of(tmp_path, root(), tool(2, 1, 1, 9), inner)
    assert [r["span_id"] for r in rows if r["kind"] == "unguarded_tool_call"] == [sid(2)]


def test_privileged_tools_are_high_and_configurable(tmp_path: Path) -> None:
    spans = (root(), tool(2, 1, 1, 2, name="send_email", call="a"), tool(3, 1, 3, 4, name="lookup_order", call="b"))
    rows = findings_of(tmp_path, *spans)
    assert {(r["span_id"], r["severity"]) for r in rows if r["kind"] == "unguarded_tool_call"} == {
        (sid(2), "high"), (sid(3), "medium")}
    rows = findings_of(tmp_path / "cfg", *spans, config='[trust]\nprivileged_tools = ["lookup_*"]\n')
    assert {(r["span_id"], r["severity"]) for r in rows if r["kind"] == "unguarded_tool_call"} == {
        (sid(2), "medium"), (sid(3), "high")}


# -- untrusted input reaching a privileged tool ------------------------------------------------------------
def test_retrieval_to_llm_to_privileged_tool_is_an_injection_path(tmp_path: Path) -> None:
    #   retrieval |--|   chat |-----|   T send_email |--|
    rows = findings_of(tmp_path, root(), retrieval(2, 1, 1, 2), llm(3, 1, 3, 8),
                       tool(4, 1, 9, 10, name="send_email"))
    hit = [r for r in rows if r["kind"] == "untrusted_input_to_privileged_tool"]
    assert len(hit) == 1 and hit[0]["span_id"] == sid(4) and hit[0]["severity"] == "high"
    assert hit[0]["details"]["path"] == [sid(2), sid(3), sid(4)]
    assert hit[0]["details"]["source_kind"] == "retrieval"


def test_no_injection_path_for_unprivileged_tools_or_with_a_decision_in_between(tmp_path: Path) -> None:
    rows = findings_of(tmp_path, root(), retrieval(2, 1, 1, 2), llm(3, 1, 3, 8), tool(4, 1, 9, 10),
                       policy(5, 1, 11, 12, call="c2", name="send_email"), tool(6, 1, 13, 14, "send_email", "c2"))
    assert not [r for r in rows if r["kind"] == "untrusted_input_to_privileged_tool"]


def test_a_decision_made_before_the_untrusted_content_does_not_cover_it(tmp_path: Path) -> None:
    #   P (generic) |--|  retrieval |--|  chat |---|  T send_email |--|
    rows = findings_of(tmp_path, root(), policy(2, 1, 1, 2, call=None, name=None), retrieval(3, 1, 3, 4),
                       llm(4, 1, 5, 8), tool(5, 1, 9, 10, name="send_email"))
    assert kinds_at(rows, 5) == {"untrusted_input_to_privileged_tool"}


def test_external_tool_output_is_untrusted_input(tmp_path: Path) -> None:
    web = tool(2, 1, 1, 5, name="web_search", call="w")
    egress = S(sid(3), sid(2), "GET", AGENT, 2, 4, "CLIENT", {"url.full": "https://api.search.example.com/q",
                                                              "server.address": "api.search.example.com"})
    rows = findings_of(tmp_path, root(), web, egress, llm(4, 1, 6, 8), tool(5, 1, 9, 10, "create_ticket", "t"))
    hit = [r for r in rows if r["kind"] == "untrusted_input_to_privileged_tool"]
    assert [h["details"]["path"] for h in hit] == [[sid(3), sid(4), sid(5)]]
    assert hit[0]["details"]["source_kind"] == "external"
    assert hit[0]["details"]["source_zone"] == "external:api.search.example.com"


# -- anonymous workflows -------------------------------------------------------------------------------------
def test_anonymous_privileged_action(tmp_path: Path) -> None:
    anon_root = S(sid(1), None, "run", AGENT, 0, 100)
    rows = findings_of(tmp_path, anon_root, tool(2, 1, 1, 2, name="send_email"))
    hit = [r for r in rows if r["kind"] == "anonymous_privileged_action"]
    assert [(h["severity"], h["span_id"]) for h in hit] == [("high", sid(2))]
    assert hit[0]["details"]["privileged_tools"] == 1
    rows = findings_of(tmp_path / "b", root(), tool(2, 1, 1, 2, name="send_email"))
    assert not [r for r in rows if r["kind"] == "anonymous_privileged_action"]


def test_session_id_counts_as_identity(tmp_path: Path) -> None:
    r = S(sid(1), None, "run", AGENT, 0, 100, attrs={"session.id": "s-1"})
    rows = findings_of(tmp_path, r, tool(2, 1, 1, 2, name="send_email"))
    assert not [x for x in rows if x["kind"] == "anonymous_privileged_action"]


# -- zones, peers, egress, plaintext ----------------------------------------------------------------------------
def _client(n: int, parent: int, url: str, **attrs: object) -> S:
    host = url.split("://", 1)[1].split("/", 1)[0].split(":")[0]
    return S(sid(n), sid(parent), "GET", AGENT, 1, 2, "CLIENT", {"url.full": url, "server.address": host, **attrs})


def test_peer_zone_rules(tmp_path: Path) -> None:
    spans = [
        root(),
        _client(2, 1, "http://localhost:8080/x"),                              # loopback: own zone
        _client(3, 1, "https://redis.cache.svc.cluster.local/x"),              # k8s DNS: zone "cache"
        _client(4, 1, "https://10.1.2.3/x"),                                   # private IP: own zone
        _client(5, 1, "https://api.anthropic.com/v1/messages"),                # provider host
        _client(6, 1, "https://vllm.ml.svc.cluster.local/v1/chat", **{"gen_ai.provider.name": "openai"}),
        _client(7, 1, "https://api.weather.example.com/v1"),                   # external
        _client(8, 1, "https://retriever/v1"),                                 # a known service by name
    ]
    ts = TraceSet()
    ts.trace(tid(1), spans + [S(sid(20), None, "other", RAG, 0, 1)])
    con = build(tmp_path, ts)
    got = dict(con.execute("SELECT parent_span_id, to_zone || '/' || to_kind FROM trust_crossings "
                           "WHERE crossing = 'peer'").fetchall())
    assert got == {
        sid(3): "cache/internal",
        sid(5): "provider:anthropic/provider",
        sid(6): "ml/internal",
        sid(7): "external:api.weather.example.com/external",
        sid(8): "search/internal",
    }


def test_config_names_zones_hosts_and_gateways(tmp_path: Path) -> None:
    config = """
[trust]
internal_gateways = ["llm-proxy.acme.example"]
[trust.services]
"agent" = "core"
[trust.hosts]
"*.partner.example" = "partner"
[trust.zones.partner]
kind = "external"
level = "low"
[trust.zones.core]
level = "medium"
"""
    spans = [root(), _client(2, 1, "https://llm-proxy.acme.example/v1", **{"gen_ai.provider.name": "openai"}),
             _client(3, 1, "https://api.partner.example/v1")]
    ts = TraceSet()
    ts.trace(tid(1), spans)
    con = build(tmp_path, ts, config)
    assert con.execute("SELECT DISTINCT zone, zone_kind, trust_level FROM trust_spans").fetchall() == [
        ("core", "internal", "medium")]
    got = con.execute("SELECT parent_span_id, to_zone, to_kind, to_level FROM trust_crossings "
                      "WHERE crossing = 'peer'").fetchall()
    assert got == [(sid(3), "partner", "external", "low")]
    rows = trust_findings(con)
    assert keyset(rows, "external_egress") == {("external_egress", "medium", tid(1), sid(3))}


def test_service_zone_fallbacks(tmp_path: Path) -> None:
    ts = TraceSet()
    ts.trace(tid(1), [
        S(sid(1), None, "a", Svc("a", "ns-a", {"k8s.namespace.name": "k-a"}), 0, 10, "SERVER"),
        S(sid(2), sid(1), "b", Svc("b", None, {"k8s.namespace.name": "k-b", "cloud.account.id": "111"}), 1, 9),
        S(sid(3), sid(2), "c", Svc("c", None, {"cloud.account.id": "222"}), 2, 8),
        S(sid(4), sid(3), "d", Svc("d"), 3, 7),
    ])
    con = build(tmp_path, ts)
    assert dict(con.execute("SELECT span_id, zone FROM trust_spans").fetchall()) == {
        sid(1): "ns-a", sid(2): "k-b", sid(3): "222", sid(4): "d"}
    chain = con.execute("SELECT from_zone, to_zone, crossing FROM trust_crossings ORDER BY child_span_id").fetchall()
    assert chain == [("user", "ns-a", "entry"), ("ns-a", "k-b", "call"), ("k-b", "222", "call"), ("222", "d", "call")]


def test_plaintext_crossings(tmp_path: Path) -> None:
    spans = [root(), _client(2, 1, "http://api.weather.example.com/v1"), _client(3, 1, "http://127.0.0.1:9/x"),
             _client(4, 1, "http://redis.cache.svc.cluster.local/x"), _client(5, 1, "https://api.x.example/x")]
    rows = findings_of(tmp_path, *spans)
    assert {(r["span_id"], r["severity"]) for r in rows if r["kind"] == "plaintext_crossing"} == {
        (sid(2), "high"), (sid(4), "low")}
    rows = findings_of(tmp_path / "cfg", *spans, config='[trust]\nplaintext_exempt = ["*.svc.cluster.local"]\n')
    assert {r["span_id"] for r in rows if r["kind"] == "plaintext_crossing"} == {sid(2)}


def test_llm_span_with_http_child_to_the_provider_counts_once(tmp_path: Path) -> None:
    #   ChatCompletion (OpenInference, INTERNAL, llm.provider) |------|
    #     POST api.openai.com (httpx CLIENT)                     |--|
    chat = S(sid(2), sid(1), "ChatCompletion", AGENT, 1, 9, attrs={"openinference.span.kind": "LLM",
                                                                   "llm.provider": "openai"})
    http = _client(3, 2, "https://api.openai.com/v1/chat/completions")
    rows = findings_of(tmp_path, root(), chat, http)
    assert keyset(rows, "provider_egress") == {("provider_egress", "info", tid(1), sid(3))}


# -- robustness -------------------------------------------------------------------------------------------------
def test_deep_chain_and_parent_cycle(tmp_path: Path) -> None:
    #   root -> 20,000 nested spans -> guardrail (allow) -> ... -> tool at the bottom: guarded (ancestor)
    depth = 20_000
    spans = [root(end=depth + 10)]
    for i in range(2, depth):
        spans.append(S(sid(i), sid(i - 1), f"step {i}", AGENT, i * 0.001, depth + 5 - i * 0.0001))
    spans.append(policy(depth, depth - 1, depth * 0.001, depth * 0.001 + 5, call="deep"))
    spans.append(tool(depth + 1, depth, depth * 0.001 + 1, depth * 0.001 + 2, call="deep"))
    ts = TraceSet()
    ts.trace(tid(1), spans)
    # a second trace whose spans are each other's parents
    ts.trace(tid(2), [S(sid(1), sid(2), "a", AGENT, 0, 5), S(sid(2), sid(1), "b", AGENT, 1, 4),
                      tool(3, 2, 2, 3, call="cyc")])
    rows = trust_findings(build(tmp_path, ts))
    assert {(r["trace_id"], r["span_id"]) for r in rows if r["kind"] == "unguarded_tool_call"} == {(tid(2), sid(3))}


def test_a_parent_cycle_is_cut_as_the_graph_cuts_it(tmp_path: Path) -> None:
    #   a (parent: the policy, starts first) <-> guardrail (parent: a); the tool under the guardrail.
    #   One cycle policy (graph.arrays.cycle_cuts): the edge into a, the earliest-starting span, is cut,
    #   so a is the root, the guardrail its child and the tool guarded by its ancestor.
    ts = TraceSet()
    ts.trace(tid(1), [S(sid(1), sid(2), "a", AGENT, 0, 10), policy(2, 1, 1, 9, call="cyc"),
                      tool(3, 2, 2, 3, call="cyc")])
    con = build(tmp_path, ts)
    assert keyset(trust_findings(con), "unguarded_tool_call") == set()
    assert con.execute("SELECT span_id FROM latency_repairs WHERE kind = 'cycle_cut'").fetchall() == [(sid(1),)]
    assert con.execute("SELECT depth FROM span_metrics WHERE span_id = ?", [sid(3)]).fetchall() == [(2,)]


def test_call_crossing_without_a_client_span_takes_the_callee_side(tmp_path: Path) -> None:
    #   gateway SERVER (https, inbound)  ->  backend SERVER (http, its own address)   no CLIENT span between
    ts = TraceSet()
    ts.trace(tid(1), [
        S(sid(1), None, "GET /", Svc("gw", "edge"), 0, 10, "SERVER", {"url.scheme": "https", "server.address": "gw.x"}),
        S(sid(2), sid(1), "GET /b", Svc("b", "core"), 1, 9, "SERVER", {"url.scheme": "http",
                                                                      "server.address": "b.core.example"}),
    ])
    con = build(tmp_path, ts)
    assert con.execute("SELECT peer, scheme, protocol FROM trust_crossings WHERE crossing = 'call'").fetchall() == [
        ("b.core.example", "http", "http")]


def test_a_cycle_of_spans_starting_together_is_cut_at_the_smallest_id_as_the_graph_cuts_it() -> None:
    """The trust tree uses the graph's cycle policy whole: earliest start, then the smallest span id
    (it used to break the tie by end time and an id hash, in its own visiting order)."""
    import numpy as np

    from fabric_trace.analyzers.trust.tree import tree_positions

    # rows in visiting order: row 0 (span id rank 1, ends first) and row 1 (rank 0) are each other's
    # parents and start together; row 2 hangs below row 0
    parent = np.array([1, 0, 0], dtype=np.int64)
    flags = np.zeros(3, dtype=bool)
    pos = tree_positions(parent, np.zeros(3, dtype=np.int64), flags, flags, flags,
                         start=np.array([5, 5, 6], dtype=np.int64), id_rank=np.array([1, 0, 2], dtype=np.int64))
    assert pos.depth.tolist() == [1, 0, 2]  # the edge into row 1 (the smallest id) is cut: row 1 is the root


def test_empty_store(tmp_path: Path) -> None:
    from fabric_trace.analyzers.engine import refresh
    from fabric_trace.config import Config
    from fabric_trace.store import db as store

    con = store.connect(str(tmp_path / "e.duckdb"))
    refresh(con, Config(), force=True)
    assert con.execute("SELECT count(*) FROM trust_crossings").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM findings WHERE analyzer = 'trust'").fetchone()[0] == 0


def test_ident_down_is_not_fooled_by_a_key_before_the_span() -> None:
    """A span after the last identity-carrying span of its (trace, service) has no identity below it,
    whatever other traces share the partition (the Spark engine's batches hold other traces)."""
    import numpy as np

    from fabric_trace.analyzers.trust.derive import _ident_down

    # one trace, one service: span 0 (enter 0, exit 1) carries identity; span 1 (enter 2, exit 3) does not
    got = _ident_down(np.array([0, 0]), np.array([1, 1]), np.array([True, False]), np.array([0, 2]),
                      np.array([1, 3]))
    assert got.tolist() == [True, False]
