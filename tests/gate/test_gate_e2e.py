"""``fabric gate`` / ``fabric diff`` end to end, on runs made by the fixture generator.

Each side is a generated scenario written as OTLP JSON, ingested with the real
pipeline and analysed by every registered analyzer; the checks then run
exactly as the CLI runs them. Databases are built once per module.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from fabric_trace.cli.app import app
from fabric_trace.fixtures_gen import Scenario, generate, write_otlp_jsonl
from fabric_trace.gate import gate_settings
from fabric_trace.gate.budgets import parse_gate_section
from fabric_trace.gate.checks import GateOutcome, evaluate
from fabric_trace.gate.diff import edge_counts, structural_diff
from fabric_trace.gate.metrics import SideMetrics, load_side
from fabric_trace.service import run_ingest

#: Traces per generated run: about 100 per workflow, enough for conclusive p95 checks on most.
TRACES = 300

Side = tuple[SideMetrics, dict[tuple[str, str], tuple[int, int]], str]


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Side]:
    """Generate, ingest and load one scenario (cached by its knobs)."""
    root = tmp_path_factory.mktemp("gate-runs")
    cache: dict[Scenario, Side] = {}

    def build(**knobs: object) -> Side:
        scenario = Scenario(**{"traces": TRACES, **knobs})  # type: ignore[arg-type]
        if scenario not in cache:
            name = f"run{len(cache)}"
            traces, db = root / f"{name}.jsonl", root / f"{name}.duckdb"
            write_otlp_jsonl(generate(scenario), traces)
            run_ingest(str(db), [str(traces)])
            con = duckdb.connect(str(db))
            try:
                cache[scenario] = (load_side(con, "side", str(db)), edge_counts(con), str(db))
            finally:
                con.close()
        return cache[scenario]

    return build


def gate(base: Side, cand: Side, section: dict[str, object] | None = None) -> GateOutcome:
    """Run the gate's checks on two loaded sides, as ``run_gate`` does."""
    settings = parse_gate_section(section or {})
    b, be, _ = base
    c, ce, _ = cand
    b.label, c.label = "baseline", "candidate"
    diff = structural_diff(b, c, be, ce, alpha=settings.alpha, correction=settings.correction)
    return evaluate(settings, b, c, diff)


def describe(outcome: GateOutcome) -> str:
    return "\n".join(f"{r.verdict} {r.name} [{r.workflow}]: {r.reason}" for r in outcome.results if r.verdict != "pass")


# -- no false alarms ------------------------------------------------------------------------------

@pytest.mark.slow
def test_same_scenario_with_different_seeds_passes(make_run: Callable[..., Side]) -> None:
    """20 comparisons of one unchanged workload (seeds 1..21, each run against the next): no failure."""
    runs = [make_run(seed=seed) for seed in range(1, 22)]
    failures = []
    for base, cand in zip(runs, runs[1:]):
        outcome = gate(base, cand)
        assert outcome.results, "the default checks ran"
        if outcome.verdict == "fail":
            failures.append(describe(outcome))
    assert not failures, "\n\n".join(failures)


def test_identical_runs_pass_every_check(make_run: Callable[..., Side]) -> None:
    run = make_run(seed=1)
    outcome = gate(run, run)
    assert outcome.verdict == "pass"
    assert not outcome.failed
    regressions = [r for r in outcome.results if r.kind == "regression" and r.verdict != "inconclusive"]
    assert regressions and all(r.delta == 0 for r in regressions)


# -- real regressions fail ------------------------------------------------------------------------

def test_latency_regression_in_one_role_fails_naming_the_role(make_run: Callable[..., Side]) -> None:
    outcome = gate(make_run(seed=1), make_run(seed=2, latency_factor={"llm": 1.3}))
    assert outcome.verdict == "fail", describe(outcome)
    role_failures = [r for r in outcome.failed if r.role is not None]
    assert role_failures, describe(outcome)
    assert {r.role for r in role_failures} == {"llm"}, describe(outcome)
    # end-to-end failures say where the critical path grew
    for r in outcome.failed:
        if r.metric == "duration":
            assert "critical path grew most in llm" in r.reason


def test_retrieval_regression_names_the_retrieval_roles(make_run: Callable[..., Side]) -> None:
    outcome = gate(make_run(seed=1), make_run(seed=2, latency_factor={"retrieval": 2.5}))
    assert outcome.verdict == "fail", describe(outcome)
    failed_roles = {r.role for r in outcome.failed if r.role is not None}
    assert failed_roles and failed_roles <= {"retrieval", "vector_store"}, describe(outcome)


def test_removing_policy_checks_fails_on_the_trust_rule(make_run: Callable[..., Side]) -> None:
    base, cand = make_run(seed=1), make_run(seed=2, unguarded_tool_rate=1.0)
    if "trust" not in base[0].capabilities:
        pytest.skip("the trust analyzer is not registered")
    outcome = gate(base, cand)
    assert outcome.verdict == "fail", describe(outcome)
    names = " ".join(r.name for r in outcome.failed)
    assert "unguarded_tool_call" in names, describe(outcome)


def test_new_external_tool_fails_on_the_structural_diff(make_run: Callable[..., Side]) -> None:
    outcome = gate(make_run(seed=1, external_tool_rate=0.0), make_run(seed=2, external_tool_rate=0.4))
    structural = {r.metric: r for r in outcome.results if r.kind == "structure"}
    assert structural["peer_added"].verdict == "fail", describe(outcome)
    labels = [i["label"] for i in structural["peer_added"].details["items"] if i["significant"]]
    assert any("api.weather.example.com" in x or "api.search.example.com" in x for x in labels), labels


def test_cross_region_state_fails_on_locality(make_run: Callable[..., Side]) -> None:
    base = make_run(seed=1)
    if "locality" not in base[0].capabilities:
        pytest.skip("the locality analyzer is not registered")
    outcome = gate(base, make_run(seed=2, remote_state_fraction=0.5, state_region="eu-west-1"))
    failed = {r.metric for r in outcome.failed}
    assert "cross_region_accesses" in failed, describe(outcome)
    assert "region_added" in failed, describe(outcome)


# -- too little data ------------------------------------------------------------------------------

def test_too_few_traces_is_inconclusive_not_pass_or_fail(make_run: Callable[..., Side]) -> None:
    base, cand = make_run(seed=1, traces=24), make_run(seed=2, traces=24, latency_factor={"llm": 1.3})
    outcome = gate(base, cand, {"min_samples": 40})
    regressions = [r for r in outcome.results if r.kind == "regression"]
    assert regressions and all(r.verdict == "inconclusive" for r in regressions), describe(outcome)
    assert all("too few traces" in r.reason for r in regressions)
    # the observed change is shown even though it cannot be decided
    llm = [r for r in regressions if r.role == "llm"]
    assert llm and all("observed +" in r.reason and r.delta is not None for r in llm), describe(outcome)
    assert outcome.verdict == "inconclusive"  # exits 0, but never reads as a pass ...
    strict = gate(base, cand, {"min_samples": 40, "fail_on_inconclusive": True})
    assert strict.verdict == "fail"  # ... and fails when asked to


def test_tail_percentile_is_the_one_the_sample_supports(make_run: Callable[..., Side]) -> None:
    base, cand = make_run(seed=1, traces=90), make_run(seed=2, traces=90)
    outcome = gate(base, cand, {"regression": [{"metric": "duration", "stat": "p95"}]})
    configured = [r for r in outcome.results if r.name == "duration p95"]
    assert configured and all(r.verdict == "inconclusive" and "p95 needs >= 160 traces" in r.reason
                              for r in configured)
    counts = {w: min(int((base[0].workflow == w).sum()), int((cand[0].workflow == w).sum()))
              for w in base[0].workflows()}
    for workflow, n in counts.items():
        tails = [r for r in outcome.results if r.metric == "duration" and r.workflow == workflow
                 and r.origin == "default" and r.stat != "p50"]
        if n >= 32:  # p75 needs 8 traces above it on each side
            assert [r.stat for r in tails] == ["p75"] and tails[0].verdict != "inconclusive"
        else:
            assert not tails
            assert any(note.startswith(f"duration tail not checked for {workflow}") for note in outcome.notes)


# -- budgets --------------------------------------------------------------------------------------

def test_absolute_budgets(make_run: Callable[..., Side]) -> None:
    base, cand = make_run(seed=1), make_run(seed=2)
    section = {"defaults": False, "budget": [
        {"metric": "duration", "stat": "p50", "max": 1.0, "workflow": "rag-answer"},
        {"metric": "duration", "stat": "p50", "max": 1e9, "workflow": "rag-answer"},
        {"metric": "llm_calls", "stat": "mean", "max": 100, "pooled": True},
        {"metric": "error_rate", "max": 0.5},
        {"metric": "critical_path_share", "role": "llm", "max": 0.999, "pooled": True},
    ]}
    outcome = gate(base, cand, section)
    verdicts = [(r.name, r.workflow, r.verdict) for r in outcome.results if r.kind == "budget"]
    assert verdicts[0] == ("duration p50", "rag-answer", "fail")
    assert verdicts[1] == ("duration p50", "rag-answer", "pass")
    assert ("llm_calls mean", "(all)", "pass") in verdicts
    assert all(v == "pass" for n, _, v in verdicts if n == "error_rate rate")
    assert ("critical_path_share[llm] rate", "(all)", "pass") in verdicts


def test_unknown_workflow_in_a_budget_is_inconclusive(make_run: Callable[..., Side]) -> None:
    outcome = gate(make_run(seed=1), make_run(seed=2), {"defaults": False, "budget": [
        {"metric": "duration", "stat": "p50", "max": 1000, "workflow": "no-such-workflow"}]})
    (result,) = outcome.results[:1]
    assert result.verdict == "inconclusive" and "too few traces" in result.reason


# -- fabric diff ----------------------------------------------------------------------------------

def test_diff_reports_edges_calls_and_kinds_with_counts(make_run: Callable[..., Side]) -> None:
    b, be, _ = make_run(seed=1, external_tool_rate=0.0)
    c, ce, _ = make_run(seed=2, external_tool_rate=0.4, unguarded_tool_rate=1.0)
    diff = structural_diff(b, c, be, ce)
    added = [i for i in diff.items if i.change == "added" and i.section == "peer"]
    assert added and all(i.baseline_traces == 0 and i.candidate_traces > 0 for i in added)
    calls = [i for i in diff.items if i.section == "calls" and i.role == "policy"]
    assert any(i.change == "decreased" and i.significant for i in calls)  # the policy checks are gone
    assert diff.baseline_traces == b.n and diff.candidate_traces == c.n


# -- the CLI contract -----------------------------------------------------------------------------

def _cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_cli_gate_pass_and_fail_exit_codes_and_files(make_run: Callable[..., Side], tmp_path: Path) -> None:
    base, same, slow = make_run(seed=1)[2], make_run(seed=2)[2], make_run(seed=2, latency_factor={"llm": 1.3})[2]
    code, out, err = _cli("gate", "--baseline", base, "--candidate", same)
    assert code == 0, out + err
    assert "fabric gate: PASS" in out
    junit, md = tmp_path / "gate.xml", tmp_path / "gate.md"
    code, out, err = _cli("gate", "-b", base, "-c", slow, "--junit", str(junit), "--markdown", str(md),
                          "--format", "json")
    assert code == 1, out + err
    doc = json.loads(out)
    assert doc["verdict"] == "fail" and doc["exit_code"] == 1
    assert doc["summary"]["failed"] == sum(1 for c in doc["checks"] if c["verdict"] == "fail") > 0
    assert "<testsuites" in junit.read_text() and "<failure" in junit.read_text()
    assert md.read_text().startswith("# fabric gate: FAIL")


def test_cli_gate_on_trace_files_ingests_them(tmp_path: Path) -> None:
    paths = []
    for seed in (1, 2):
        p = tmp_path / f"s{seed}.jsonl"
        write_otlp_jsonl(generate(Scenario(traces=30, seed=seed)), p)
        paths.append(str(p))
    code, out, err = _cli("gate", "--baseline", paths[0], "--candidate", paths[1], "--format", "json")
    assert code == 0, out + err
    doc = json.loads(out)
    assert doc["baseline"]["kind"] == "traces" and doc["baseline"]["traces"] == 30
    code, out, err = _cli("diff", paths[0], paths[1], "--format", "json")
    assert code == 0, out + err
    assert json.loads(out)["baseline"]["traces"] == 30
    code, out, err = _cli("gate", "--baseline", paths[0], "--candidate", paths[1], "--verbose")
    assert code == 0, out + err  # the verdict's note names the weighted family (docs/ci.md)
    assert "holm-adjusted across the" in out + err and "end-to-end latency holds half of alpha" in out + err


def test_cli_github_annotations(make_run: Callable[..., Side]) -> None:
    base, slow = make_run(seed=1)[2], make_run(seed=2, latency_factor={"llm": 1.3})[2]
    code, out, _ = _cli("gate", "-b", base, "-c", slow, env={"GITHUB_ACTIONS": "true"})
    assert code == 1
    assert any(line.startswith("::error title=fabric gate") for line in out.splitlines())
    code, out, err = _cli("gate", "-b", base, "-c", slow, "--format", "json", env={"GITHUB_ACTIONS": "true"})
    json.loads(out)  # annotations never break a machine-readable stdout
    assert "::error title=" in err


def test_cli_errors_are_never_a_pass_or_a_regression(make_run: Callable[..., Side], tmp_path: Path) -> None:
    base = make_run(seed=1)[2]
    code, _, err = _cli("gate", "-b", base, "-c", str(tmp_path / "missing.jsonl"))
    assert code == 66, err
    assert "candidate" in err
    foreign = tmp_path / "other.duckdb"
    duckdb.connect(str(foreign)).execute("CREATE TABLE x (a INT)").close()
    code, _, err = _cli("gate", "-b", str(foreign), "-c", base)
    assert code == 74, err
    bad = tmp_path / "fabric.toml"
    bad.write_text("[gate]\nalpha = 2\n")
    code, _, err = _cli("gate", "-b", base, "-c", base, "--config", str(bad))
    assert code == 78, err
    code, _, err = _cli("gate", "-b", base, "-c", base, "--junit", str(tmp_path / "no" / "such" / "dir.xml"))
    assert code == 73, err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, _, err = _cli("gate", "-b", base, "-c", str(empty))
    assert code == 65, err
    code, _, err = _cli("gate", "-b", base, "-c", base, "--alpha", "0.9")
    assert code == 2, err


def test_config_file_is_read(make_run: Callable[..., Side], tmp_path: Path) -> None:
    cfg = tmp_path / "fabric.toml"
    cfg.write_text('[gate]\ndefaults = false\n[[gate.budget]]\nmetric = "duration"\nstat = "p50"\nmax = 1\n')
    base = make_run(seed=1)[2]
    code, out, err = _cli("gate", "-b", base, "-c", base, "--config", str(cfg), "--format", "json")
    assert code == 1, out + err
    checks = json.loads(out)["checks"]
    assert {c["kind"] for c in checks} == {"budget", "structure"}
    from fabric_trace.config import load_config

    assert gate_settings(load_config(str(cfg))).defaults is False


def test_cli_compact_verdict_and_verbose(make_run: Callable[..., Side]) -> None:
    base, slow = make_run(seed=1)[2], make_run(seed=2, latency_factor={"llm": 1.3})[2]
    code, out, err = _cli("gate", "-b", base, "-c", slow)
    assert code == 1, out + err
    lines = out.splitlines()
    assert lines[0].startswith("fabric gate: FAIL (")
    rows = [ln for ln in lines if ln.lstrip().startswith(("FAIL", "PASS", "INCONCLUSIVE"))]
    assert rows and not any(r.lstrip().startswith("PASS") for r in rows)  # passing checks are folded ...
    assert "passing check(s) not listed (--verbose" in out  # ... into a count
    assert "critical_path[llm] mean" in out and "regression: +" in out  # each failure with its reason
    code, verbose, _ = _cli("gate", "-b", base, "-c", slow, "--verbose")
    assert code == 1
    assert any(ln.lstrip().startswith("PASS") for ln in verbose.splitlines())
    code, doc, _ = _cli("gate", "-b", base, "-c", slow, "--format", "json")
    assert json.loads(doc)["summary"]["passed"] > 0  # JSON always has the full table


def test_cli_subprocess_gate_exit_code_and_headline(make_run: Callable[..., Side]) -> None:
    import subprocess
    import sys

    base, slow = make_run(seed=1)[2], make_run(seed=2, latency_factor={"llm": 1.3})[2]
    proc = subprocess.run([sys.executable, "-m", "fabric_trace", "gate", "-b", base, "-c", slow],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("fabric gate: FAIL (")
    assert proc.stderr.strip().splitlines()[-1].startswith("fabric gate: FAIL (")
    assert "Traceback" not in proc.stderr


def test_a_sparse_rise_the_pooled_check_hints_at_stays_inconclusive() -> None:
    """The bundled retrieval-regression pair (vector-store time doubled, 5 rag-answer traces a side): the
    per-workflow check cannot decide alone and its companion over all workflows shows a rise beyond the
    threshold with unadjusted p < 0.05, so the check stays INCONCLUSIVE with its observed change, never a pass."""
    scenarios = Path(__file__).resolve().parents[2] / "fixtures" / "scenarios"
    code, out, _ = _cli("gate", "-b", str(scenarios / "healthy.jsonl"), "-c",
                        str(scenarios / "retrieval-regression.jsonl"), "--format", "json")
    doc = json.loads(out)
    (check,) = [c for c in doc["checks"] if c["name"] == "critical_path[vector_store] mean" and c["workflow"] == "rag-answer"]
    assert check["verdict"] == "inconclusive" and check["reason"].startswith("cannot decide: observed +100.0%")
    assert doc["verdict"] == "inconclusive" and code == 0
    settled = [c for c in doc["checks"] if "too few traces to decide alone" in c["reason"]]
    assert all(c["verdict"] == "pass" and "no sign of a regression" in c["reason"] for c in settled)
