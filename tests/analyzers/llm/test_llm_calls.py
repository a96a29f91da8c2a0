"""The ``llm_calls``, ``session_turns`` and ``sessions`` views (docs/llm.md) against independent
expectations: the real captures' own logs, the fixture generator's ground truth, and hand-built
layered traces whose answer is drawn next to them."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import otlp_build
import pytest

from fabric_trace.fixtures_gen import Scenario, generate, write_otlp_jsonl
from fabric_trace.service import run_ingest

CAPTURES = Path(__file__).resolve().parents[2] / "data" / "captures"
CONVENTIONS = ("openinference", "langchain-openinference", "openllmetry", "otel-genai-new", "otel-genai-old", "llamaindex",
               "langgraph", "vercel-ai")


_rows = otlp_build.rows


# -- the real captures --------------------------------------------------------------------------

@pytest.mark.parametrize("convention", CONVENTIONS)
def test_captures_count_each_call_once_with_its_tokens(tmp_path: Path, convention: str) -> None:
    truth = json.loads((CAPTURES / f"{convention}.truth.json").read_text())
    db = str(tmp_path / "c.duckdb")
    run_ingest(db, [str(CAPTURES / f"{convention}.otlp.jsonl")])
    calls = _rows(db, "SELECT * FROM llm_calls")
    want = Counter((c["trace_id"], "chat", c["input_tokens"], c["output_tokens"]) for c in truth["llm_calls"])
    want += Counter((c["trace_id"], "embeddings", c["input_tokens"], None) for c in truth["embedding_calls"])
    got = Counter((c["trace_id"], c["operation"], c["input_tokens"], c["output_tokens"]) for c in calls)
    assert got == want
    for c in calls:
        assert c["model"] in ("gpt-4o-mini", "text-embedding-3-small") and c["provider"].startswith("openai")
        assert c["status_code"] != "ERROR" and c["attempts"] == 1 and c["cached_input_tokens"] in (None, 0)
        assert c["cost_usd"] is not None and c["cost_usd"] > 0  # both models are in the bundled table
    sessions = {t["trace_id"]: (t["session_id"], t["user_id"]) for t in truth["traces"]}
    assert {c["trace_id"]: (c["session_id"], c["user_id"]) for c in calls} == sessions
    traces = _rows(db, "SELECT trace_id, session_id FROM traces")
    assert {t["trace_id"]: t["session_id"] for t in traces} == {k: v[0] for k, v in sessions.items()}
    per_session = Counter(s for s, _ in sessions.values())
    got_sessions = _rows(db, "SELECT session_id, user_id, traces, llm_calls, input_tokens, output_tokens FROM sessions")
    assert {s["session_id"]: s["traces"] for s in got_sessions} == dict(per_session)
    for s in got_sessions:
        mine = [c for c in truth["llm_calls"] + truth["embedding_calls"] if sessions[c["trace_id"]][0] == s["session_id"]]
        assert s["llm_calls"] == len(mine)
        assert s["input_tokens"] == sum(c["input_tokens"] for c in mine)
        assert s["output_tokens"] == sum(c.get("output_tokens", 0) for c in mine)
        users = {sessions[c["trace_id"]][1] for c in mine} - {None}
        assert s["user_id"] == (users.pop() if users else None)


def test_capture_costs_follow_the_bundled_prices(tmp_path: Path) -> None:
    """gpt-4o-mini: $0.15 in, $0.60 out per 1M tokens; text-embedding-3-small $0.02 in (prices.toml)."""
    db = str(tmp_path / "c.duckdb")
    run_ingest(db, [str(CAPTURES / "otel-genai-new.otlp.jsonl")])
    for c in _rows(db, "SELECT * FROM llm_calls"):
        assert c["price_model"] == "gpt-4o-mini"
        assert c["cost_usd"] == pytest.approx(c["input_tokens"] * 0.15e-6 + c["output_tokens"] * 0.60e-6)
        assert c["cost_note"] == "cached tokens not reported: input charged in full"


# -- the generator's ground truth ---------------------------------------------------------------

SCENARIO = Scenario(traces=40, seed=5, retry_rate=0.3, missing_cached_tokens_rate=0.3, openinference_fraction=0.3,
                    openllmetry_fraction=0.3, anonymous_rate=0.2, error_rate=0.1, max_session_turns=4)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, str]:
    root = tmp_path_factory.mktemp("llm")
    gen = generate(SCENARIO)
    write_otlp_jsonl(gen, root / "g.jsonl")
    db = str(root / "g.duckdb")
    run_ingest(db, [str(root / "g.jsonl")])
    return gen, db


def _expected(call: Any, trace: Any) -> dict[str, Any]:
    """What each convention reports of a call the generator made (steps_llm.py)."""
    ok = call.status == "ok"
    chat = call.operation == "chat"
    reports_request = not (call.style == "openinference" and not chat)
    return {
        "operation": call.operation, "provider": call.provider,
        "request_model": call.request_model if reports_request else None,
        "model": call.response_model if ok or call.style != "otel" else call.request_model,
        "input_tokens": call.input_tokens if ok else None,
        "output_tokens": call.output_tokens if ok and chat else None,
        "cached_input_tokens": call.cached_tokens_reported if ok and chat else None,
        "ttft": call.ttft_ns if ok and chat and call.style != "openllmetry" else None,
        "error": not ok,
        "session_id": None if trace.anonymous else trace.session_id,
    }


def test_generated_calls_match_the_ground_truth(generated: tuple[Any, str]) -> None:
    gen, db = generated
    got = {c["span_id"]: c for c in _rows(db, "SELECT * FROM llm_calls")}
    want = {c.span_id: _expected(c, t) for t in gen.truth.traces for c in t.llm_calls}
    assert set(got) == set(want) and len(want) > 100
    assert any(w["error"] for w in want.values()) and any(w["cached_input_tokens"] is None for w in want.values())
    for span_id, w in want.items():
        g = got[span_id]
        have = {k: g[k] for k in ("operation", "provider", "request_model", "input_tokens", "output_tokens",
                                  "cached_input_tokens", "session_id")}
        assert have == {k: w[k] for k in have}, span_id
        assert (g["status_code"] == "ERROR") == w["error"], span_id
        if not w["error"]:
            assert g["model"] == w["model"], span_id
        if w["ttft"] is None:
            assert g["ttft_ns"] is None, span_id
        else:  # otel reports seconds with 6 decimals
            assert abs(g["ttft_ns"] - w["ttft"]) <= 1_000, span_id


def test_generated_sessions_match_the_ground_truth(generated: tuple[Any, str]) -> None:
    gen, db = generated
    named = [t for t in gen.truth.traces if not t.anonymous]
    by_session: dict[str, list[Any]] = {}
    for t in named:
        by_session.setdefault(t.session_id, []).append(t)
    sessions = {s["session_id"]: s for s in _rows(db, "SELECT * FROM sessions")}
    assert set(sessions) == set(by_session)
    turns = _rows(db, "SELECT * FROM session_turns ORDER BY session_id, turn")
    for sid, traces in by_session.items():
        s = sessions[sid]
        calls = [c for t in traces for c in t.llm_calls]
        assert s["traces"] == len(traces)
        assert s["llm_calls"] == len(calls)
        assert s["input_tokens"] == sum(c.input_tokens for c in calls if c.status == "ok")
        assert s["user_id"] == traces[0].user_id
        order = [t.trace_id for t in sorted(traces, key=lambda t: (t.start_ns, t.trace_id))]
        assert [u["trace_id"] for u in turns if u["session_id"] == sid] == order
        assert s["start_ns"] == min(t.start_ns for t in traces)
    anonymous = {t.trace_id for t in gen.truth.traces if t.anonymous}
    assert anonymous and not anonymous & {u["trace_id"] for u in turns}


# -- layered instrumentation, hand-built --------------------------------------------------------

TID = "0af7651916cd43dd8448eb211c80319c"


def _span(sid: str, parent: str | None, start: int, end: int, attrs: dict[str, Any], *, error: bool = False,
          name: str = "call") -> dict[str, Any]:
    """A CLIENT span of trace :data:`TID`; times in nanoseconds."""
    return otlp_build.span(TID, sid, parent, name, start, end, kind="CLIENT", status="ERROR" if error else None,
                           message="boom" if error else None, attrs=attrs, t0=0, unit=1)


def _ingest(tmp_path: Path, scopes: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    db = otlp_build.ingest(tmp_path, otlp_build.document(otlp_build.resource_spans({"service.name": "agent"}, scopes)))
    return _rows(db, "SELECT * FROM llm_calls ORDER BY start_ns, span_id")


ROOT = "1000000000000001"
OI_LLM = {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini-2024-07-18",
          "llm.invocation_parameters": '{"model": "gpt-4o-mini"}'}


def test_a_framework_span_over_an_sdk_span_is_one_call(tmp_path: Path) -> None:
    #  root        |----------------------------|
    #  ChatOpenAI    |------------------------|       LangChain layer: no tokens
    #  ChatCompl.      |--------------------|         OpenAI SDK layer: the tokens
    calls = _ingest(tmp_path, {"app": [_span(ROOT, None, 0, 1000, {})],
                               "openinference.instrumentation.langchain": [
                                   _span("2000000000000002", ROOT, 10, 990, OI_LLM, name="ChatOpenAI")],
                               "openinference.instrumentation.openai": [
                                   _span("3000000000000003", "2000000000000002", 20, 980,
                                         {**OI_LLM, "llm.token_count.prompt": 100, "llm.token_count.completion": 7},
                                         name="ChatCompletion")]})
    assert len(calls) == 1
    (c,) = calls
    assert (c["span_id"], c["input_tokens"], c["output_tokens"], c["attempts"]) == ("2000000000000002", 100, 7, 1)
    assert c["span_ids"] == ["2000000000000002", "3000000000000003"]
    assert (c["request_model"], c["model"], c["price_model"]) == ("gpt-4o-mini", "gpt-4o-mini-2024-07-18",
                                                                  "gpt-4o-mini")


def test_a_retried_call_is_one_call_with_two_attempts(tmp_path: Path) -> None:
    #  ChatOpenAI   |------------------------|
    #  attempt 1      |--x--|                      ERROR, no tokens
    #  attempt 2              |------------|       the answer
    calls = _ingest(tmp_path, {"lc": [_span("2000000000000002", None, 0, 1000, OI_LLM)],
                               "oai": [_span("3000000000000003", "2000000000000002", 10, 100, OI_LLM, error=True),
                                       _span("4000000000000004", "2000000000000002", 200, 990,
                                             {**OI_LLM, "llm.token_count.prompt": 50,
                                              "llm.token_count.completion": 5})]})
    (c,) = calls
    assert (c["attempts"], c["status_code"], c["input_tokens"], c["output_tokens"]) == (2, "UNSET", 50, 5)


def test_a_failed_call_keeps_its_requested_model_and_has_no_cost(tmp_path: Path) -> None:
    failed = {"openinference.span.kind": "LLM", "llm.invocation_parameters": '{"model": "gpt-4o", "temperature": 0}'}
    (c,) = _ingest(tmp_path, {"oai": [_span("2000000000000002", None, 0, 1000, failed, error=True)]})
    assert (c["request_model"], c["model"], c["status_code"]) == ("gpt-4o", "gpt-4o", "ERROR")
    assert c["input_tokens"] is None and c["cost_usd"] is None and c["cost_note"] == "input tokens not reported"


def test_a_wrapper_of_two_successful_calls_is_not_a_call(tmp_path: Path) -> None:
    #  chain (tokens: the total)  |------------------------|
    #  call 1                        |------|
    #  call 2                                  |--------|
    wrapper = {"openinference.span.kind": "CHAIN", "llm.token_count.prompt": 30, "llm.token_count.completion": 3}
    calls = _ingest(tmp_path, {"lc": [_span("2000000000000002", None, 0, 1000, wrapper)],
                               "oai": [_span("3000000000000003", "2000000000000002", 10, 300,
                                             {**OI_LLM, "llm.token_count.prompt": 10, "llm.token_count.completion": 1}),
                                       _span("4000000000000004", "2000000000000002", 400, 900,
                                             {**OI_LLM, "llm.token_count.prompt": 20,
                                              "llm.token_count.completion": 2})]})
    assert [(c["span_id"], c["input_tokens"]) for c in calls] == [("3000000000000003", 10), ("4000000000000004", 20)]


def test_openinference_and_genai_spans_of_one_call_are_one_call(tmp_path: Path) -> None:
    #  two instrumentations, neither parent of the other (separate tracer providers):
    #  GenAI chat   |--------------------|   input 40, output 4
    #  OI LLM         |----------------|     input 40, output 4
    #  GenAI chat                           |------|  another call (input 41)
    genai = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
             "gen_ai.usage.input_tokens": 40, "gen_ai.usage.output_tokens": 4}
    other = {**genai, "gen_ai.usage.input_tokens": 41}
    oi = {**OI_LLM, "llm.token_count.prompt": 40, "llm.token_count.completion": 4, "llm.provider": "openai"}
    calls = _ingest(tmp_path, {"app": [_span(ROOT, None, 0, 3000, {})],
                               "opentelemetry.instrumentation.openai_v2": [
                                   _span("2000000000000002", ROOT, 10, 1000, genai),
                                   _span("5000000000000005", ROOT, 1500, 2000, other)],
                               "openinference.instrumentation.openai": [_span("3000000000000003", ROOT, 20, 990, oi)]})
    assert [(c["span_id"], c["input_tokens"]) for c in calls] == [("2000000000000002", 40), ("5000000000000005", 41)]
    assert calls[0]["span_ids"] == ["2000000000000002", "3000000000000003"]


def test_two_parallel_calls_with_equal_tokens_in_one_scope_stay_two(tmp_path: Path) -> None:
    genai = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
             "gen_ai.usage.input_tokens": 40, "gen_ai.usage.output_tokens": 4}
    calls = _ingest(tmp_path, {"oai": [_span(ROOT, None, 0, 3000, {}), _span("2000000000000002", ROOT, 10, 1000, genai),
                                       _span("3000000000000003", ROOT, 20, 990, genai)]})
    assert len(calls) == 2


def test_unknown_model_has_no_cost_and_a_note(tmp_path: Path) -> None:
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "acme", "gen_ai.request.model": "acme-9",
             "gen_ai.usage.input_tokens": 40, "gen_ai.usage.output_tokens": 4}
    (c,) = _ingest(tmp_path, {"x": [_span(ROOT, None, 0, 3000, attrs)]})
    assert c["cost_usd"] is None and c["cost_note"] == "no price for model acme-9 (acme)"


def test_reasoning_tokens_and_cached_tokens_are_read(tmp_path: Path) -> None:
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "o3",
             "gen_ai.response.model": "o3-2025-04-16", "gen_ai.usage.input_tokens": 1000,
             "gen_ai.usage.output_tokens": 500, "gen_ai.usage.cache_read.input_tokens": 800,
             "gen_ai.usage.reasoning_tokens": 300}
    (c,) = _ingest(tmp_path, {"x": [_span(ROOT, None, 0, 3000, attrs)]})
    assert (c["cached_input_tokens"], c["reasoning_tokens"], c["price_model"]) == (800, 300, "o3")
    # o3: 200 uncached x $2 + 800 cached x $0.50 + 500 output x $8 (reasoning included), per 1M tokens
    assert c["cost_usd"] == pytest.approx((200 * 2.0 + 800 * 0.5 + 500 * 8.0) / 1e6)


def test_folding_survives_parent_cycles_and_missing_parents() -> None:
    from fabric_trace.analyzers.llm.calls import fold_calls

    def cand(sid: str, start: int, end: int) -> dict[str, Any]:
        return {"trace_id": "t", "span_id": sid, "scope_id": "s", "role": "llm", "status_code": "UNSET",
                "start_ns": start, "end_ns": end, "input_tokens": 1, "output_tokens": 1, "model": "m"}

    # a -> b -> a (a cycle), c -> (missing parent)
    spans = [("t", "a", "b"), ("t", "b", "a"), ("t", "c", "gone")]
    calls = fold_calls(spans, [cand("a", 0, 10), cand("b", 1, 9), cand("c", 20, 30)])
    assert sorted(tuple(c["span_ids"]) for c in calls) == [("a", "b"), ("c",)]


def test_an_sdk_span_over_its_http_requests_is_one_call_with_its_attempts(tmp_path: Path) -> None:
    #  openai.chat (SDK)   |------------------------|   tokens
    #  POST (HTTP)           |--429--|                  attempt 1
    #  POST (HTTP)                      |---200---|     attempt 2
    sdk = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
           "gen_ai.usage.input_tokens": 40, "gen_ai.usage.output_tokens": 4}
    post = {"http.request.method": "POST", "url.full": "https://api.openai.com/v1/chat/completions"}
    calls = _ingest(tmp_path, {"oai": [_span("2000000000000002", None, 0, 1000, sdk)],
                               "httpx": [_span("3000000000000003", "2000000000000002", 10, 100,
                                               {**post, "http.response.status_code": 429}, error=True, name="POST"),
                                         _span("4000000000000004", "2000000000000002", 200, 990,
                                               {**post, "http.response.status_code": 200}, name="POST")]})
    (c,) = calls
    assert (c["span_id"], c["attempts"], c["input_tokens"], c["span_ids"]) == ("2000000000000002", 2, 40,
                                                                               ["2000000000000002"])


def test_a_partition_without_model_calls_or_sessions_needs_no_database(tmp_path: Path) -> None:
    calls = _ingest(tmp_path, {"app": [_span(ROOT, None, 0, 1000, {"http.request.method": "GET"})]})
    assert calls == []
    con = duckdb.connect(str(tmp_path / "t.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM sessions").fetchall() == [(0,)]
        assert con.execute("SELECT session_id FROM traces").fetchall() == [(None,)]
    finally:
        con.close()


def test_hostile_values_never_crash(tmp_path: Path) -> None:
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
             "gen_ai.usage.input_tokens": 9_000_000_000_000_000_000, "gen_ai.usage.output_tokens": 9_000_000_000_000_000_000,
             "gen_ai.usage.reasoning_tokens": "1e30", "gen_ai.response.time_to_first_chunk": "1e300",
             "gen_ai.conversation.id": "s"}
    twin = {**attrs, "gen_ai.usage.reasoning_tokens": "nan", "gen_ai.response.time_to_first_chunk": "-inf"}
    calls = _ingest(tmp_path, {"x": [_span(ROOT, None, 0, 3000, attrs), _span("2000000000000002", None, 0, 10, twin)]})
    assert len(calls) == 2 and all(c["reasoning_tokens"] is None and c["ttft_ns"] is None for c in calls)
    con = duckdb.connect(str(tmp_path / "t.duckdb"), read_only=True)
    try:
        (row,) = con.execute("SELECT llm_calls, input_tokens FROM sessions").fetchall()
    finally:
        con.close()
    assert row == (2, None)  # the sum does not fit a BIGINT: NULL, never an error
