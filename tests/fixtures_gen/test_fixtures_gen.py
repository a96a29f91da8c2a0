"""Tests of the deterministic fixture generator (fabric_trace.fixtures_gen)."""

from __future__ import annotations

import filecmp
import struct
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from fabric_trace.fixtures_gen import (
    GeneratedTraces,
    GenSpan,
    Scenario,
    generate,
    iter_requests,
    iter_traces,
    write_otlp_jsonl,
    write_otlp_proto,
)
from fabric_trace.fixtures_gen.catalog import SCENARIOS, write_fixture_set
from fabric_trace.fixtures_gen.model import CLIENT, CONSUMER, PRODUCER, SERVER, STATUS_ERROR

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CACHED_KEYS = ("gen_ai.usage.cache_read.input_tokens", "llm.token_count.prompt_details.cache_read",
               "gen_ai.usage.cache_read_input_tokens")
IDENTITY_KEYS = ("enduser.id", "user.id", "session.id", "gen_ai.conversation.id")


def gen(**knobs: object) -> GeneratedTraces:
    knobs.setdefault("traces", 40)
    return generate(Scenario(**knobs))  # type: ignore[arg-type]


def by_trace(g: GeneratedTraces) -> dict[str, dict[str, GenSpan]]:
    out: dict[str, dict[str, GenSpan]] = {}
    for s in g.spans:
        out.setdefault(s.trace_id, {})[s.span_id] = s
    return out


def spans_where(g: GeneratedTraces, key: str, value: object = None) -> list[GenSpan]:
    return [s for s in g.spans if key in s.attributes and (value is None or s.attributes[key] == value)]


# -- determinism and pairing ---------------------------------------------------------------------
def test_same_seed_same_output_and_other_seed_differs() -> None:
    a, b, c = gen(seed=3), gen(seed=3), gen(seed=4)
    assert [s.to_dict() for s in a.spans] == [s.to_dict() for s in b.spans]
    assert a.truth.to_dict() == b.truth.to_dict()
    assert {s.trace_id for s in a.spans}.isdisjoint({s.trace_id for s in c.spans})


def test_no_wall_clock_base_time_is_a_parameter() -> None:
    g = gen(traces=5, base_time_ns=10**18)
    assert min(s.start_ns for s in g.spans) >= 10**18
    assert all(isinstance(s.start_ns, int) and isinstance(s.end_ns, int) for s in g.spans)
    assert min(s.start_ns for s in gen(traces=5).spans) >= 1_767_225_600_000_000_000  # 2026-01-01


def test_latency_factor_is_paired_with_the_baseline() -> None:
    base, slow = gen(), gen(latency_factor={"retrieval": 2.0})
    assert [(s.trace_id, s.span_id, s.name) for s in sorted(base.spans, key=lambda s: s.span_id)] == \
        [(s.trace_id, s.span_id, s.name) for s in sorted(slow.spans, key=lambda s: s.span_id)]
    b, c = base.by_id(), slow.by_id()
    vector = [k for k, s in b.items() if s.role == "retrieval" and s.kind == CLIENT and "db.system.name" in s.attributes]
    assert vector
    for k in vector:
        d0, d1 = b[k].end_ns - b[k].start_ns, c[k].end_ns - c[k].start_ns
        assert abs(d1 - 2 * d0) <= 2
    llm = [k for k, s in b.items() if s.role == "llm"]
    assert all(b[k].end_ns - b[k].start_ns == c[k].end_ns - c[k].start_ns for k in llm)
    assert sum(t.end_ns - t.start_ns for t in slow.truth.traces) > sum(t.end_ns - t.start_ns for t in base.truth.traces)


def test_knobs_keep_trace_ids_and_roots() -> None:
    base = gen()
    for knobs in ({"unguarded_tool_rate": 0.5}, {"error_rate": 0.5, "retry_rate": 0.5}, {"anonymous_rate": 1.0},
                  {"remote_state_fraction": 1.0}, {"cache_miss_rate": 1.0}):
        other = gen(**knobs)
        assert [(t.trace_id, t.root_span_id, t.workflow) for t in other.truth.traces] == \
            [(t.trace_id, t.root_span_id, t.workflow) for t in base.truth.traces]


# -- structure ------------------------------------------------------------------------------------
def check_structure(g: GeneratedTraces) -> None:
    traces = by_trace(g)
    assert len(traces) == g.scenario.traces == len(g.truth.traces)
    assert len({(s.trace_id, s.span_id) for s in g.spans}) == len(g.spans)
    for t in g.truth.traces:
        spans = traces[t.trace_id]
        assert set(t.span_roles) == set(spans)
        roots = [s for s in spans.values() if s.parent_span_id is None]
        assert [r.span_id for r in roots] == [t.root_span_id]
        assert roots[0].kind == SERVER and g.service_of(roots[0]) == "inference-gateway"
        outside = set()
        for s in spans.values():
            assert s.end_ns >= s.start_ns
            if s.parent_span_id is None:
                continue
            p = spans[s.parent_span_id]
            if s.start_ns < p.start_ns or s.end_ns > p.end_ns:
                outside.add(s.span_id)
        assert outside == set(t.out_of_parent)
        consumers = {a.consumer_span_id for a in t.async_links}
        assert outside <= consumers | set(t.skewed_spans)


def test_structure_of_healthy_and_children_within_parents() -> None:
    g = gen(async_rate=0.0)
    check_structure(g)
    assert all(not t.out_of_parent for t in g.truth.traces)
    assert set(Counter(t.workflow for t in g.truth.traces)) == {"support-agent", "rag-answer", "research-agent"}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    rates=st.lists(st.sampled_from([0.0, 0.3, 1.0]), min_size=8, max_size=8),
    skew=st.sampled_from([0, 40_000_000, -3_000_000]),
)
def test_structure_holds_for_any_knobs(seed: int, rates: list[float], skew: int) -> None:
    names = ("cache_miss_rate", "remote_state_fraction", "repeat_fetch_rate", "unguarded_tool_rate",
             "error_rate", "retry_rate", "async_rate", "anonymous_rate")
    check_structure(gen(traces=6, seed=seed, clock_skew_ns=skew, **dict(zip(names, rates))))


# -- state locality knobs ---------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_cache_miss_rate(rate: float) -> None:
    g = gen(cache_miss_rate=rate)
    ids = g.by_id()
    lookups = [(t.trace_id, c) for t in g.truth.traces for c in t.cache_lookups]
    assert lookups and all(c.hit == (rate == 0.0) for _, c in lookups)
    for tid, c in lookups:
        get = ids[(tid, c.span_id)]
        assert get.attributes["cache.hit"] is c.hit and get.attributes["db.system.name"] == "redis"
        assert get.attributes["db.query.text"] == f"GET {c.key}"
        assert len(c.backing_span_ids) == (0 if c.hit else 2)
        for b in c.backing_span_ids:
            assert ids[(tid, b)].parent_span_id == get.parent_span_id and ids[(tid, b)].start_ns >= get.end_ns
    gets = spans_where(g, "cache.hit")
    assert len(gets) == len(lookups)


@pytest.mark.parametrize(("region", "locality"), [(None, "cross_zone"), ("eu-west-1", "cross_region")])
def test_remote_state(region: str | None, locality: str) -> None:
    g = gen(remote_state_fraction=1.0, state_region=region)
    ids = g.by_id()
    calls = [(t.trace_id, rc) for t in g.truth.traces for rc in t.remote_calls]
    state = [(tid, rc) for tid, rc in calls if rc.callee_service in ("memory-service", "retrieval-service")]
    assert state and all(rc.locality == locality for _, rc in state)
    assert all(rc.locality == "same_zone" for _, rc in calls if rc.callee_service not in ("memory-service",
                                                                                          "retrieval-service"))
    for tid, rc in state:
        server = ids[(tid, rc.server_span_id)]
        attrs = g.resources[server.resource].attributes
        assert attrs["cloud.availability_zone"] == rc.callee_zone != rc.caller_zone
        if region:
            assert attrs["cloud.region"] == region
            assert server.start_ns - ids[(tid, rc.client_span_id)].start_ns > 10_000_000  # cross-region transit
    healthy = gen()
    assert {rc.locality for t in healthy.truth.traces for rc in t.remote_calls} == {"same_zone"}


def test_repeat_fetch_rate() -> None:
    g = gen(repeat_fetch_rate=1.0)
    ids = g.by_id()
    for t in g.truth.traces:
        kinds = sorted(r.kind for r in t.redundant_fetches)
        assert kinds == (["memory"] if t.workflow == "support-agent" else ["embedding_cache", "retrieval"])
        for r in t.redundant_fetches:
            a, b = ids[(t.trace_id, r.first_span_id)], ids[(t.trace_id, r.repeat_span_id)]
            key = "gen_ai.retrieval.query.text" if r.kind == "retrieval" else "db.query.text"
            assert a.attributes[key] == b.attributes[key] and a.end_ns <= b.start_ns
    assert not any(t.redundant_fetches for t in gen().truth.traces)


# -- trust knobs -------------------------------------------------------------------------------------
def policy_spans(g: GeneratedTraces) -> list[GenSpan]:
    return [s for s in g.spans if s.name in ("opa.decision", "guardrail.evaluate")]


def test_healthy_tools_are_all_guarded_by_an_allow_before_execution() -> None:
    g = gen()
    ids = g.by_id()
    execs = spans_where(g, "gen_ai.operation.name", "execute_tool")
    decisions = {(s.trace_id, s.attributes["gen_ai.tool.call.id"]): s for s in policy_spans(g)}
    assert execs and len(decisions) == sum(len(t.tool_executions) for t in g.truth.traces)
    for ex in execs:
        d = decisions[(ex.trace_id, ex.attributes["gen_ai.tool.call.id"])]
        assert d.attributes["policy.decision"] == "allow" and d.end_ns <= ex.start_ns
        assert d.attributes["gen_ai.tool.name"] == ex.attributes["gen_ai.tool.name"]
    for t in g.truth.traces:
        for te in t.tool_executions:
            assert te.verdict == "guarded" and ids[(t.trace_id, te.policy_span_id)].name in (
                "opa.decision", "guardrail.evaluate")


def test_unguarded_tool_rate_one_removes_every_policy_check() -> None:
    g = gen(unguarded_tool_rate=1.0)
    tes = [te for t in g.truth.traces for te in t.tool_executions]
    assert tes and all(te.verdict == "unguarded" and te.policy_span_id is None for te in tes)
    assert not policy_spans(g) and not any(t.policy_checks for t in g.truth.traces)
    assert len(spans_where(g, "gen_ai.operation.name", "execute_tool")) == len(tes)


def test_denied_tool_executed_and_denied_blocked() -> None:
    g = gen(denied_tool_executed_rate=1.0)
    ex_calls = {(s.trace_id, s.attributes["gen_ai.tool.call.id"]) for s in spans_where(g, "gen_ai.operation.name",
                                                                                       "execute_tool")}
    pol = policy_spans(g)
    assert pol and all(p.attributes["policy.decision"] == "deny" for p in pol)
    assert {(p.trace_id, p.attributes["gen_ai.tool.call.id"]) for p in pol} == ex_calls
    assert {te.verdict for t in g.truth.traces for te in t.tool_executions} == {"denied_executed"}
    blocked = gen(policy_deny_rate=1.0)
    assert not spans_where(blocked, "gen_ai.operation.name", "execute_tool")
    tes = [te for t in blocked.truth.traces for te in t.tool_executions]
    assert tes and all(te.verdict == "denied_blocked" and te.span_id is None for te in tes)


@pytest.mark.parametrize("plaintext", [0.0, 1.0])
def test_external_tools_and_plaintext(plaintext: float) -> None:
    g = gen(external_tool_rate=1.0, plaintext_rate=plaintext)
    scheme = "http" if plaintext else "https"
    ids = g.by_id()
    ext = [(t.trace_id, e) for t in g.truth.traces for e in t.external_calls if e.purpose == "tool"]
    tes = [te for t in g.truth.traces for te in t.tool_executions]
    assert tes and all(te.target == "external" for te in tes) and len(ext) == len(tes)
    for tid, e in ext:
        s = ids[(tid, e.span_id)]
        assert s.kind == CLIENT and s.attributes["url.full"] == e.url_full and e.url_full.startswith(f"{scheme}://")
        assert s.attributes["server.address"] == e.peer and not any(c.parent_span_id == s.span_id for c in g.spans)
    model = [e for t in g.truth.traces for e in t.external_calls if e.purpose == "model"]
    assert model and all(e.scheme == "https" for e in model)
    internal = gen(external_tool_rate=0.0)
    assert {te.target for t in internal.truth.traces for te in t.tool_executions} <= {"service", "inproc"}


def test_anonymous_rate() -> None:
    anon, named = gen(anonymous_rate=1.0), gen()
    assert all(t.anonymous for t in anon.truth.traces)
    assert not any(k in s.attributes for s in anon.spans for k in IDENTITY_KEYS)
    roots = [s for s in named.spans if s.parent_span_id is None]
    assert all("enduser.id" in r.attributes and "session.id" in r.attributes for r in roots)


# -- faults -------------------------------------------------------------------------------------------
def test_clock_skew_shifts_exactly_one_service() -> None:
    skew = 30_000_000
    base, g = gen(), gen(clock_skew_ns=skew)
    b = base.by_id()
    skewed = {(t.trace_id, s) for t in g.truth.traces for s in t.skewed_spans}
    assert skewed == {(s.trace_id, s.span_id) for s in g.spans if g.service_of(s) == "memory-service"}
    for s in g.spans:
        shift = skew if (s.trace_id, s.span_id) in skewed else 0
        assert (s.start_ns - shift, s.end_ns - shift) == (b[(s.trace_id, s.span_id)].start_ns,
                                                          b[(s.trace_id, s.span_id)].end_ns)
    assert any(t.out_of_parent for t in g.truth.traces)
    with pytest.raises(ValueError, match="clock_skew_service"):
        gen(clock_skew_ns=1, clock_skew_service="nope")


def test_error_rate_one() -> None:
    g = gen(error_rate=1.0)
    ids = g.by_id()
    for t in g.truth.traces:
        errs = {e.span_id for e in t.errors}
        assert errs == {sid for sid in t.span_roles if ids[(t.trace_id, sid)].status_code == STATUS_ERROR}
        for te in t.tool_executions:
            assert te.status == "error" and te.span_id in errs
            ex = ids[(t.trace_id, te.span_id)]
            assert ex.attributes["error.type"] and any(e.name == "exception" for e in ex.events)
    rets = spans_where(g, "gen_ai.operation.name", "retrieval")
    assert rets and all(s.status_code == STATUS_ERROR for s in rets)
    assert not any(t.errors for t in gen().truth.traces)


def test_retry_rate_one() -> None:
    g = gen(retry_rate=1.0)
    ids = g.by_id()
    retries = [(t.trace_id, r) for t in g.truth.traces for r in t.retries]
    chats = [c for t in g.truth.traces for c in t.llm_calls if c.operation == "chat" and c.status == "ok"]
    tools = [te for t in g.truth.traces for te in t.tool_executions]
    assert len(retries) == len(chats) + len(tools)
    for tid, r in retries:
        a, b = ids[(tid, r.failed_span_id)], ids[(tid, r.retry_span_id)]
        assert a.parent_span_id == b.parent_span_id and a.name == b.name and a.end_ns <= b.start_ns
        assert a.status_code == STATUS_ERROR and b.status_code != STATUS_ERROR


def test_prefix_cache_knobs() -> None:
    healthy = gen()
    chats = [c for t in healthy.truth.traces for c in t.llm_calls if c.operation == "chat" and c.status == "ok"]
    seen = [c for c in chats if c.prefix_seen]
    assert seen and all(c.cached_tokens_reported == c.cached_tokens_expected > 0 for c in seen)
    assert all(c.cached_tokens_reported == 0 for c in chats if not c.prefix_seen)
    miss = gen(prefix_cache_miss_rate=1.0)
    mchats = [c for t in miss.truth.traces for c in t.llm_calls if c.operation == "chat" and c.status == "ok"]
    assert all(c.cached_tokens_reported == 0 and c.prefix_cache_miss == c.prefix_seen for c in mchats)
    ids, hids = miss.by_id(), healthy.by_id()
    for t, c in ((t, c) for t in miss.truth.traces for c in t.llm_calls if c.prefix_cache_miss):
        s = ids[(t.trace_id, c.span_id)]
        assert [s.attributes[k] for k in CACHED_KEYS if k in s.attributes] == [0]
        assert c.ttft_ns > next(h.ttft_ns for h in healthy.truth.trace(t.trace_id).llm_calls if h.span_id == c.span_id)
        assert s.end_ns - s.start_ns > hids[(t.trace_id, c.span_id)].end_ns - hids[(t.trace_id, c.span_id)].start_ns
    gone = gen(missing_cached_tokens_rate=1.0)
    assert not any(k in s.attributes for s in gone.spans for k in CACHED_KEYS)
    assert all(c.cached_tokens_reported is None for t in gone.truth.traces for c in t.llm_calls)


def test_async_producer_consumer_linked() -> None:
    g = gen(async_rate=1.0)
    ids = g.by_id()
    for t in g.truth.traces:
        assert len(t.async_links) == (0 if t.workflow == "rag-answer" else 1)
        for a in t.async_links:
            p, c = ids[(t.trace_id, a.producer_span_id)], ids[(t.trace_id, a.consumer_span_id)]
            assert p.kind == PRODUCER and c.kind == CONSUMER and c.parent_span_id == p.span_id
            assert [(ln.trace_id, ln.span_id) for ln in c.links] == [(t.trace_id, p.span_id)]
            assert c.start_ns >= p.end_ns and g.service_of(c) == "report-worker"


def test_parallel_fan_out_overlaps() -> None:
    g = gen(traces=60)
    overlapping = 0
    for t in g.truth.traces:
        if t.workflow != "research-agent":
            continue
        execs = sorted((s for s in g.spans if s.trace_id == t.trace_id and s.name.startswith("execute_tool")),
                       key=lambda s: s.start_ns)
        overlapping += any(b.start_ns < a.end_ns for a, b in zip(execs, execs[1:]))
    assert overlapping > 0


@pytest.mark.parametrize(("knob", "marker"), [("openinference_fraction", "openinference.span.kind"),
                                              ("openllmetry_fraction", "gen_ai.system")])
def test_convention_styles(knob: str, marker: str) -> None:
    g = gen(**{knob: 1.0, "openinference_fraction" if knob != "openinference_fraction" else "openllmetry_fraction": 0})
    llm = [s for s in g.spans if s.role in ("llm", "embedding")]
    assert llm and all(marker in s.attributes for s in llm)
    assert not any("gen_ai.provider.name" in s.attributes for s in llm)
    plain = gen(openinference_fraction=0.0, openllmetry_fraction=0.0)
    assert all(s.attributes.get("gen_ai.provider.name") in ("openai", "anthropic")
               for s in plain.spans if s.role in ("llm", "embedding"))


def test_scenario_validation_and_round_trip() -> None:
    for bad in ({"cache_miss_rate": 1.5}, {"latency_factor": {"warp": 2.0}}, {"latency_factor": {"llm": 0}},
                {"workflows": ("nope",)}, {"openinference_fraction": 0.7, "openllmetry_fraction": 0.7}):
        with pytest.raises(ValueError):
            Scenario(**bad)  # type: ignore[arg-type]
    sc = SCENARIOS["retrieval-regression"]
    assert Scenario.from_dict(orjson.loads(orjson.dumps(sc.to_dict()))) == sc
    assert sc.factor("retrieval") == 2.0 and sc.factor("llm") == 1.0
    with pytest.raises(ValueError, match="unknown scenario knobs"):
        Scenario.from_dict({"trace": 3})


# -- writers -------------------------------------------------------------------------------------------
def _value(v: dict[str, object]) -> object:
    (kind, x), = v.items()
    if kind == "intValue":
        return int(x)  # type: ignore[arg-type]
    if kind == "arrayValue":
        return [_value(e) for e in x["values"]]  # type: ignore[index]
    return x


def test_jsonl_is_collector_style_otlp(tmp_path: Path) -> None:
    g = gen(traces=30, async_rate=1.0, error_rate=0.3)
    stats = write_otlp_jsonl(g, tmp_path / "t.jsonl", spans_per_request=100)
    lines = (tmp_path / "t.jsonl").read_bytes().splitlines()
    assert stats.spans == len(g.spans) and stats.requests == len(lines) == -(-len(g.spans) // 100)
    assert stats.traces == 30
    expected = {(s.trace_id, s.span_id): s for s in g.spans}
    seen = 0
    for line in lines:
        req = orjson.loads(line)
        resources = [orjson.dumps(rs["resource"]) for rs in req["resourceSpans"]]
        assert len(resources) == len(set(resources))  # grouped by resource
        for rs in req["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                assert ss["scope"]["name"]
                for sp in ss["spans"]:
                    seen += 1
                    for key, n in (("traceId", 32), ("spanId", 16), ("parentSpanId", 16)):
                        if key in sp:
                            assert len(sp[key]) == n and sp[key] == sp[key].lower()
                            int(sp[key], 16)
                    assert isinstance(sp["startTimeUnixNano"], str) and isinstance(sp["kind"], int)
                    assert "status" in sp
                    src = expected[(sp["traceId"], sp["spanId"])]
                    assert int(sp["endTimeUnixNano"]) == src.end_ns and sp["kind"] == src.kind
                    assert {a["key"]: _value(a["value"]) for a in sp["attributes"]} == src.attributes
                    assert sp["status"].get("code", 0) == src.status_code
                    for ln in sp.get("links", []):
                        assert len(ln["traceId"]) == 32 and len(ln["spanId"]) == 16
    assert seen == len(g.spans)


def _frames(data: bytes) -> list[ExportTraceServiceRequest]:
    out, off = [], 0
    while off < len(data):
        (n,) = struct.unpack(">I", data[off:off + 4])
        out.append(ExportTraceServiceRequest.FromString(data[off + 4:off + 4 + n]))
        off += 4 + n
    assert off == len(data)
    return out


def _pb_value(v: object) -> object:
    which = v.WhichOneof("value")  # type: ignore[attr-defined]
    if which == "array_value":
        return [_pb_value(x) for x in v.array_value.values]  # type: ignore[attr-defined]
    return getattr(v, which)


@pytest.mark.parametrize("framed", [True, False])
def test_proto_parses_with_opentelemetry_proto(tmp_path: Path, framed: bool) -> None:
    g = gen(traces=30, async_rate=1.0, error_rate=0.3, retry_rate=0.3)
    path = tmp_path / "t.bin"
    stats = write_otlp_proto(g, path, framed=framed, spans_per_request=64)
    data = path.read_bytes()
    reqs = _frames(data) if framed else [ExportTraceServiceRequest.FromString(data)]
    assert len(reqs) == (stats.requests if framed else 1)
    expected = {(s.trace_id, s.span_id): s for s in g.spans}
    got = 0
    for req in reqs:
        for rs in req.resource_spans:
            res = {kv.key: _pb_value(kv.value) for kv in rs.resource.attributes}
            for ss in rs.scope_spans:
                for sp in ss.spans:
                    got += 1
                    src = expected[(sp.trace_id.hex(), sp.span_id.hex())]
                    assert res == g.resources[src.resource].attributes
                    assert (ss.scope.name, ss.scope.version) == g.scopes[src.scope]
                    assert sp.parent_span_id.hex() == (src.parent_span_id or "")
                    assert (sp.name, sp.kind, sp.start_time_unix_nano, sp.end_time_unix_nano, sp.flags) == (
                        src.name, src.kind, src.start_ns, src.end_ns, src.flags)
                    assert {kv.key: _pb_value(kv.value) for kv in sp.attributes} == src.attributes
                    assert (sp.status.code, sp.status.message) == (src.status_code, src.status_message)
                    assert [(e.time_unix_nano, e.name) for e in sp.events] == [(e.time_ns, e.name) for e in src.events]
                    assert [(ln.trace_id.hex(), ln.span_id.hex()) for ln in sp.links] == [
                        (ln.trace_id, ln.span_id) for ln in src.links]
    assert got == len(g.spans) == stats.spans


def test_streaming_equals_in_memory(tmp_path: Path) -> None:
    sc = Scenario(traces=25, seed=5, error_rate=0.2)
    write_otlp_jsonl(sc, tmp_path / "a.jsonl", spans_per_request=50)
    write_otlp_jsonl(generate(sc), tmp_path / "b.jsonl", spans_per_request=50)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    write_otlp_proto(sc, tmp_path / "a.bin")
    write_otlp_proto(generate(sc), tmp_path / "b.bin")
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()
    sizes = [len(b.spans) for b in iter_requests(sc, 50)]
    assert all(n == 50 for n in sizes[:-1]) and 0 < sizes[-1] <= 50
    assert sum(sizes) == len(generate(sc).spans)


# -- committed fixtures ----------------------------------------------------------------------------------
def test_fixture_set_is_deterministic_and_matches_committed_files(tmp_path: Path) -> None:
    first = write_fixture_set(tmp_path / "a")
    second = write_fixture_set(tmp_path / "b")
    assert first == second
    for rel, size in first.items():
        assert filecmp.cmp(tmp_path / "a" / rel, tmp_path / "b" / rel, shallow=False), rel
        committed = FIXTURES / rel
        assert committed.is_file(), f"{rel} missing: run python fixtures/generate.py"
        assert filecmp.cmp(tmp_path / "a" / rel, committed, shallow=False), f"{rel} stale: run fixtures/generate.py"
        if rel.startswith("scenarios/"):
            assert size < 1_000_000


def test_committed_truth_matches_committed_spans() -> None:
    truth = orjson.loads((FIXTURES / "scenarios" / "trust-violations.truth.json").read_bytes())
    ids = set()
    for line in (FIXTURES / "scenarios" / "trust-violations.jsonl").read_bytes().splitlines():
        for rs in orjson.loads(line)["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                ids.update((s["traceId"], s["spanId"]) for s in ss["spans"])
    assert ids == {(t["trace_id"], sid) for t in truth["traces"] for sid in t["span_roles"]}
    assert truth["totals"]["tools_unguarded"] > 0 and truth["scenario"]["unguarded_tool_rate"] == 0.3


@pytest.mark.slow
def test_generation_speed() -> None:
    t0 = time.perf_counter()
    n = sum(len(spans) for spans, _ in iter_traces(Scenario(traces=3000)))
    rate = n / (time.perf_counter() - t0)
    assert n > 60_000 and rate > 10_000  # ~65k spans/s on an idle 2-core machine
