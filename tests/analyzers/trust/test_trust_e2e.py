"""End-to-end: generated traces -> OTLP/JSON -> ingest -> trust findings, against the ground truth.

The expected findings are derived from the generator's ground truth by the
documented rules (test_trust_helpers.expected_from_truth) and must match exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fabric_trace.fixtures_gen import Scenario, generate
from fabric_trace.fixtures_gen.truth import GroundTruth, TraceTruth
from fabric_trace.store import db as store
from test_trust_helpers import build_generated, expected_from_truth, ingest, keyset, trust_findings

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "scenarios"

SCENARIOS = {
    "violations": Scenario(traces=60, seed=3, unguarded_tool_rate=0.35, denied_tool_executed_rate=0.25,
                           policy_deny_rate=0.1, external_tool_rate=0.5, anonymous_rate=0.3, plaintext_rate=0.5),
    "retries-errors": Scenario(traces=40, seed=9, unguarded_tool_rate=0.4, denied_tool_executed_rate=0.2,
                               retry_rate=0.3, error_rate=0.2, anonymous_rate=0.5, external_tool_rate=0.6,
                               plaintext_rate=1.0),
    "healthy": Scenario(traces=30, seed=4),
    "all-unguarded-anonymous": Scenario(traces=20, seed=5, unguarded_tool_rate=1.0, anonymous_rate=1.0,
                                        workflows=("support-agent",)),
}


def _check(findings: list[dict], truth: GroundTruth) -> None:
    exp = expected_from_truth(truth)
    got = keyset(findings)
    got_main = {k for k in got if k[0] != "anonymous_privileged_action"}
    assert got_main == exp.keys, (sorted(got_main - exp.keys)[:5], sorted(exp.keys - got_main)[:5])
    anon = {r["trace_id"]: r for r in findings if r["kind"] == "anonymous_privileged_action"}
    assert set(anon) == set(exp.anonymous)
    for trace_id, (severity, actions) in exp.anonymous.items():
        assert anon[trace_id]["severity"] == severity
        assert anon[trace_id]["span_id"] in actions


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_generated_scenarios_match_ground_truth(tmp_path: Path, name: str) -> None:
    gen = generate(SCENARIOS[name])
    con = build_generated(tmp_path, gen)
    _check(trust_findings(con), gen.truth)


def test_healthy_scenario_has_only_egress_and_internal_plaintext(tmp_path: Path) -> None:
    gen = generate(SCENARIOS["healthy"])
    kinds = {r["kind"] for r in trust_findings(build_generated(tmp_path, gen))}
    assert kinds <= {"provider_egress", "external_egress", "plaintext_crossing"}
    assert "provider_egress" in kinds


def _truth(path: Path) -> GroundTruth:
    doc = json.loads(path.read_text())
    gt = GroundTruth(doc["scenario"])
    from fabric_trace.fixtures_gen import truth as T

    nested = {"cache_lookups": T.CacheLookup, "policy_checks": T.PolicyCheck, "tool_executions": T.ToolExecution,
              "remote_calls": T.RemoteCall, "external_calls": T.ExternalCall, "redundant_fetches": T.RedundantFetch,
              "llm_calls": T.LlmCall, "errors": T.ErrorInfo, "retries": T.Retry, "async_links": T.AsyncLink}
    for t in doc["traces"]:
        kwargs = {k: ([nested[k](**x) for x in v] if k in nested else v) for k, v in t.items()}
        gt.traces.append(TraceTruth(**kwargs))
    return gt


@pytest.mark.parametrize("scenario", ["trust-violations", "healthy", "faults"])
def test_committed_fixtures_match_their_truth_files(tmp_path: Path, scenario: str) -> None:
    db = tmp_path / "f.duckdb"
    ingest(db, [FIXTURES / f"{scenario}.jsonl"])
    _check(trust_findings(store.connect(str(db))), _truth(FIXTURES / f"{scenario}.truth.json"))


def test_untrusted_path_details_name_source_llm_and_tool(tmp_path: Path) -> None:
    gen = generate(SCENARIOS["all-unguarded-anonymous"])
    con = build_generated(tmp_path, gen)
    rows = [r for r in trust_findings(con) if r["kind"] == "untrusted_input_to_privileged_tool"]
    assert rows
    for r in rows:
        truth = gen.truth.trace(r["trace_id"])
        src, llm, tool = r["details"]["path"]
        assert tool == r["span_id"]
        assert llm in {c.span_id for c in truth.llm_calls if c.operation == "chat"}
        roles = truth.span_roles
        assert roles[src] == "retrieval" or src in {c.span_id for c in truth.external_calls if c.purpose == "tool"}
        assert r["details"]["source_kind"] in ("retrieval", "external")


def test_crossings_view_counts_match_the_topology(tmp_path: Path) -> None:
    gen = generate(SCENARIOS["violations"])
    con = build_generated(tmp_path, gen)
    calls = con.execute("SELECT count(*) FROM trust_crossings WHERE crossing = 'call'").fetchone()[0]
    peers = dict(con.execute("SELECT to_kind, count(*) FROM trust_crossings WHERE crossing = 'peer' "
                             "GROUP BY 1").fetchall())
    entries = con.execute("SELECT count(*) FROM trust_crossings WHERE crossing = 'entry'").fetchone()[0]
    truth = gen.truth
    from test_trust_helpers import NAMESPACE

    assert calls == sum(NAMESPACE[r.caller_service] != NAMESPACE[r.callee_service]
                        for t in truth.traces for r in t.remote_calls)
    assert peers.get("provider", 0) == sum(c.purpose == "model" for t in truth.traces for c in t.external_calls)
    assert peers.get("external", 0) == sum(c.purpose == "tool" for t in truth.traces for c in t.external_calls)
    assert entries == len(truth.traces)
    # the gateway root carries enduser.id unless the trace is anonymous
    ident = con.execute("SELECT count(*) FILTER (WHERE identity_from) FROM trust_crossings "
                        "WHERE crossing = 'entry'").fetchone()[0]
    assert ident == sum(not t.anonymous for t in truth.traces)
