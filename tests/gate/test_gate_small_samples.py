"""The default gate on the sample sizes CI really has: 10, 25 and 100 traces per workflow and side.

Every run is made by the fixture generator (the same number of traces in each of its three workflows),
written as OTLP JSON, ingested with the real pipeline and gated with the default checks
(:mod:`fabric_trace.gate.simulate`, the code bench/bench_gate_power.py measures with). An unchanged
workload must pass; a doubled latency, a removed policy step, a tool run after a deny and a new
external host must fail, at every size.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fabric_trace.fixtures_gen.scenario import ROLES
from fabric_trace.gate.checks import GateOutcome
from fabric_trace.gate.simulate import LoadedSide, gate_sides, generated_side

SIZES = (10, 25, 100)
SLOWER_2X = {role: 2.0 for role in ROLES}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., LoadedSide]:
    """Generate, ingest and load one run (cached by its size, seed and knobs)."""
    root = tmp_path_factory.mktemp("gate-small")
    cache: dict[str, LoadedSide] = {}

    def build(per_workflow: int, seed: int, **knobs: object) -> LoadedSide:
        key = repr((per_workflow, seed, sorted(knobs.items())))
        if key not in cache:
            cache[key] = generated_side(root, f"run{len(cache)}", per_workflow, seed, **knobs)
        return cache[key]

    return build


def describe(outcome: GateOutcome) -> str:
    return "\n".join(f"{r.verdict} {r.name} [{r.workflow}]: {r.reason}" for r in outcome.results
                     if r.verdict != "pass")


def failed(outcome: GateOutcome) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in outcome.failed:
        out.setdefault(r.metric, []).append(f"{r.name}: {r.reason}")
    return out


@pytest.mark.parametrize("n", SIZES)
def test_unchanged_workload_passes(run: Callable[..., LoadedSide], n: int) -> None:
    """Unchanged runs PASS at every size: the checks one workflow's traces cannot decide are decided over all
    workflows, and a rarely called host is no new dependency (docs/ci.md, "Unchanged runs")."""
    for seed in (1, 3):
        outcome = gate_sides(run(n, seed), run(n, seed + 1))
        assert outcome.verdict == "pass", describe(outcome)
        assert len(outcome.results) > 20


@pytest.mark.slow
@pytest.mark.parametrize("n", SIZES)
def test_unchanged_workload_does_not_fail_over_many_seeds(run: Callable[..., LoadedSide], n: int) -> None:
    """15 more seed pairs per size (the bench measures hundreds; docs/ci.md has the rate)."""
    failures = [describe(o) for o in (gate_sides(run(n, s), run(n, s + 1)) for s in range(10, 40, 2))
                if o.verdict == "fail"]
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("n", SIZES)
def test_twice_as_slow_fails_at_every_size(run: Callable[..., LoadedSide], n: int) -> None:
    outcome = gate_sides(run(n, 1), run(n, 5, latency_factor=SLOWER_2X))
    assert outcome.verdict == "fail", describe(outcome)
    e2e = [r for r in outcome.failed if r.metric == "duration"]
    assert e2e, describe(outcome)
    assert all(r.delta is not None and r.delta > 0 for r in e2e)
    if n == 10:  # each workflow alone is small: the stratified check over all of them decides
        assert any(r.name == "duration p50 by workflow" for r in e2e), describe(outcome)
    assert any("critical path grew most in" in r.reason for r in e2e)


@pytest.mark.parametrize("n", SIZES)
def test_removed_policy_step_fails(run: Callable[..., LoadedSide], n: int) -> None:
    outcome = gate_sides(run(n, 1), run(n, 6, unguarded_tool_rate=1.0))
    reasons = failed(outcome)
    assert "guardrail_removed" in reasons and "agent -> policy" in reasons["guardrail_removed"][0], \
        describe(outcome)
    assert "the baseline runs and the candidate never does" in reasons["guardrail_removed"][0]
    assert any("unguarded_tool_call" in r for r in reasons.get("findings", [])), describe(outcome)


@pytest.mark.parametrize("n", SIZES)
def test_tool_run_after_a_deny_fails(run: Callable[..., LoadedSide], n: int) -> None:
    outcome = gate_sides(run(n, 1), run(n, 7, denied_tool_executed_rate=0.3))
    reasons = failed(outcome)
    assert "finding_kind_added" in reasons, describe(outcome)
    assert "trust:denied_tool_executed" in reasons["finding_kind_added"][0]
    assert "severity critical" in reasons["finding_kind_added"][0]


@pytest.mark.parametrize("n", SIZES)
def test_new_external_host_fails(run: Callable[..., LoadedSide], n: int) -> None:
    """Tool calls that stayed inside now reach external hosts: a structural fact, failed outright at every
    size (no test to dilute), and the rise of external egress findings fails too."""
    outcome = gate_sides(run(n, 8, external_tool_rate=0.0), run(n, 9, external_tool_rate=0.6))
    assert outcome.verdict == "fail", describe(outcome)
    reasons = failed(outcome)
    peer = next(r for r in outcome.results if r.metric == "peer_added")
    assert peer.verdict == "fail" and "new external dependency" in peer.reason, describe(outcome)
    assert "agent-orchestrator (tool) -> api." in peer.reason and ".example." in peer.reason
    trust = next(r for r in outcome.results if r.metric == "trust_crossing_added")
    assert trust.verdict == "fail" and "agents -> external:" in trust.reason, describe(outcome)
    assert any("external_egress" in r for r in reasons.get("findings", [])), describe(outcome)


def test_a_new_external_host_fails_even_in_one_trace(run: Callable[..., LoadedSide]) -> None:
    """One trace of thirty reaches a host from tool calls that never left before: no statistics needed."""
    base = run(10, 8, external_tool_rate=0.0)
    cand = run(10, 8, external_tool_rate=0.03)
    outcome = gate_sides(base, cand)
    peer = next(r for r in outcome.results if r.metric == "peer_added")
    if not peer.details["items"]:
        pytest.skip("the candidate made no external call with this seed")
    assert peer.verdict == "fail" and outcome.verdict == "fail", describe(outcome)


@pytest.mark.parametrize("n", (10, 25))
def test_new_cross_region_dependency_fails(run: Callable[..., LoadedSide], n: int) -> None:
    """State read from a replica in another region: a new cross-region dependency fails outright."""
    cand = run(n, 11, state_region="eu-west-1", remote_state_fraction=0.1)
    outcome = gate_sides(run(n, 1), cand)
    region = next(r for r in outcome.results if r.metric == "region_added")
    assert region.verdict == "fail" and "(us-east-1) -> " in region.reason and "(eu-west-1)" in region.reason, \
        describe(outcome)


def test_a_step_too_sparse_to_test_is_inconclusive_with_its_observed_change(
        run: Callable[..., LoadedSide]) -> None:
    outcome = gate_sides(run(10, 1), run(10, 5, latency_factor=SLOWER_2X))
    undecided = [r for r in outcome.inconclusive if r.kind == "regression"]
    for r in undecided:
        assert r.reason.startswith("cannot decide: observed +") and "smallest possible p" in r.reason
        assert r.delta is not None and r.p_adjusted is None


def test_runs_drawn_from_a_pool_are_what_the_bench_compares(tmp_path: Path) -> None:
    """bench/bench_gate_power.py draws runs from one ingested pool: a draw is a faithful run."""
    import numpy as np

    from fabric_trace.gate.simulate import sample_side

    pool = generated_side(tmp_path, "pool", 12, 21, keep_edges=True)
    everything = np.ones(pool.metrics.n, dtype=bool)
    whole = pool.metrics.subset(everything)
    assert pool.per_trace_edges is not None and pool.per_trace_edges.counts(everything) == pool.edges
    assert whole.n == pool.metrics.n and whole.findings.count.sum() <= pool.metrics.findings.count.sum()
    same = LoadedSide(whole, pool.edges, pool.db)
    assert [r.verdict for r in gate_sides(pool, same).results] == [r.verdict for r in gate_sides(pool, pool).results]
    rng = np.random.default_rng(0)
    base, taken = sample_side(pool, 5, rng)
    cand, taken2 = sample_side(pool, 5, rng, exclude=taken)
    assert not (taken & taken2).any()  # the two runs of a pair are disjoint
    for side, mask in ((base, taken), (cand, taken2)):
        assert sorted(side.metrics.workflow.tolist()) == sorted(pool.metrics.workflow[mask].tolist())
        assert list(side.metrics.duration_ms) == list(pool.metrics.duration_ms[mask])
        per_trace = side.metrics.findings_per_trace(None, None, None)
        assert list(per_trace) == list(pool.metrics.findings_per_trace(None, None, None)[mask])
        assert all(t <= int(mask.sum()) for t, _ in side.edges.values())
