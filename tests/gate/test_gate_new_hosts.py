"""A new external host behind a kind of call that already goes out (docs/ci.md, "Structural diff").

``peer_added`` (a default) fails outright on a new external *dependency*: a host nothing in the baseline
reaches, called by a kind of call (service and role) that never left the organisation. One more host
behind tool calls that already go out is tested instead (a run of 30 traces does not show every host a
tool calls rarely: with the fixture workload at 10 traces a workflow, 25 % of unchanged pairs show one),
so a rare one passes, listed for review. ``host_added`` (opt-in) fails on any such host outright.
"""

from __future__ import annotations

import numpy as np
import pytest

from fabric_trace.gate.budgets import parse_gate_section
from fabric_trace.gate.checks import evaluate
from fabric_trace.gate.diff import DiffItem, StructuralDiff
from fabric_trace.gate.metrics import Findings, SideMetrics

KIND = "agent-orchestrator (tool)"


def _side(label: str, n: int = 30) -> SideMetrics:
    empty = np.array([], dtype=object)
    return SideMetrics(label=label, source=label, workflow=np.array(["w"] * n, dtype=object),
                       duration_ms=np.full(n, 100.0), has_error=np.zeros(n, dtype=bool), incomplete=0, cp_ns={},
                       calls={}, llm_tokens=np.zeros(n), retries=np.zeros(n),
                       findings=Findings(np.array([], dtype=np.int64), empty, empty, np.array([], dtype=np.int64),
                                         np.array([], dtype=float)))


def _egress(host: str, base: int, cand: int, kind: str = KIND) -> DiffItem:
    change = "added" if base == 0 and cand else "removed" if cand == 0 and base else "unchanged"
    return DiffItem("egress", f"{kind} -> {host}", base, cand, base, cand, base / 30, cand / 30, change)


def _peer(host: str, base: int, cand: int) -> DiffItem:
    change = "added" if base == 0 and cand else "unchanged"
    return DiffItem("peer", f"agent-orchestrator -> {host}", base, cand, base, cand, base / 30, cand / 30, change)


def _gate(fail_on: list[str], *items: DiffItem):
    settings = parse_gate_section({"defaults": False, "structure": {"fail_on": fail_on}})
    diff = StructuralDiff(30, 30, list(items))
    outcome = evaluate(settings, _side("baseline"), _side("candidate"), diff)
    return {r.metric: r for r in outcome.results}, outcome


RARE_NEW_HOST = (_egress("api.weather.example.com", 12, 11), _egress("api.evil.example.net", 0, 1),
                 _peer("api.weather.example.com", 12, 11), _peer("api.evil.example.net", 0, 1))


def test_a_rare_new_host_behind_an_outgoing_kind_is_tested_by_peer_added() -> None:
    checks, outcome = _gate(["peer_added"], *RARE_NEW_HOST)
    peer = checks["peer_added"]
    assert peer.verdict == "pass" and outcome.verdict == "pass"
    assert "api.evil.example.net" in peer.reason and "listed for review" in peer.reason


def test_host_added_fails_a_rare_new_host_outright() -> None:
    checks, outcome = _gate(["peer_added", "host_added"], *RARE_NEW_HOST)
    host = checks["host_added"]
    assert host.verdict == "fail" and outcome.verdict == "fail"
    assert host.reason == (f"1 external host(s) the baseline never reaches: {KIND} -> api.evil.example.net "
                           "(baseline 0/30 traces, candidate 1/30)")
    assert checks["peer_added"].verdict == "pass"


@pytest.mark.parametrize("items", [
    (_egress("api.weather.example.com", 12, 11),),  # nothing new
    (_egress("api.weather.example.com", 12, 0), _egress("api.weather.example.com", 0, 3, kind="mailer (tool)")),
])
def test_host_added_passes_hosts_the_baseline_reaches(items: tuple[DiffItem, ...]) -> None:
    """A host the baseline reaches, from another kind of call too, is no new host."""
    checks, _ = _gate(["host_added"], *items)
    assert checks["host_added"].verdict == "pass"


def test_a_new_kind_of_call_to_a_new_host_fails_both() -> None:
    checks, _ = _gate(["peer_added", "host_added"], _egress("api.weather.example.com", 0, 1))
    assert checks["peer_added"].verdict == "fail" and checks["host_added"].verdict == "fail"
