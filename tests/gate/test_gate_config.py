"""The ``[gate]`` config section: defaults, validation, merging with the default checks."""

from __future__ import annotations

from typing import Any

import pytest

from fabric_trace.errors import ConfigError
from fabric_trace.gate.budgets import METRICS, default_checks, parse_gate_section


def test_no_section_gives_the_documented_defaults() -> None:
    s = parse_gate_section({})
    assert (s.alpha, s.correction, s.min_samples, s.min_tail_samples) == (0.01, "holm", 5, 8)
    assert s.fail_on_inconclusive is False
    assert s.checks == default_checks()
    metrics = {(c.metric, c.stat) for c in s.checks}
    assert {("duration", "p50"), ("duration", "tail"), ("critical_path", "mean"), ("error_rate", "rate"),
            ("llm_calls", "mean"), ("llm_tokens", "mean"), ("findings", "mean")} <= metrics
    trust = next(c for c in s.checks if c.metric == "findings")
    assert (trust.analyzer, trust.min_severity, trust.finding_kinds) == ("trust", "medium", ("*",))
    assert all(c.relative is not None and c.absolute is not None for c in s.checks)
    stratified = [c for c in s.checks if c.stratify]
    assert [(c.metric, c.stat, c.pooled) for c in stratified] == [
        ("duration", "p50", True), ("critical_path", "mean", True), ("llm_calls", "mean", True),
        ("llm_tokens", "mean", True), ("findings", "mean", True)]
    # the analyzers' declared default checks come from the registry (locality's cross-region accesses)
    assert [c.metric for c in s.checks if c.metric not in METRICS or c.metric == "cross_region_accesses"] == \
        ["cross_region_accesses"]
    # issue 15: cost per trace is a default relative check (the llm analyzer's registry entry)
    cost = [c for c in s.checks if c.metric == "llm_cost_usd"]
    assert [(c.stat, c.relative, c.absolute, c.pooled) for c in cost] == [("mean", 0.10, 0.0001, False)]
    assert s.structure.fail_on == ("guardrail_removed", "peer_added", "region_added", "trust_crossing_added",
                                   "finding_kind_added")


def test_every_default_check_says_why_and_is_in_the_docs() -> None:
    from pathlib import Path

    from fabric_trace.gate.budgets import DEFAULT_CHECKS

    doc = (Path(__file__).resolve().parents[2] / "docs" / "ci.md").read_text(encoding="utf-8")
    section = doc.split("### Default checks", 1)[1].split("\n## ", 1)[0]
    for d in DEFAULT_CHECKS:
        assert d.why
        label = f"`{d.spec.metric}` {d.spec.stat}" + (" by workflow" if d.spec.stratify else "")
        assert label in section, label


def test_stratify_is_validated() -> None:
    s = parse_gate_section({"defaults": False, "regression": [
        {"metric": "critical_path", "role": "llm", "stat": "mean", "pooled": True, "stratify": True}]})
    assert s.checks[0].stratify
    with pytest.raises(ConfigError, match="stratify needs pooled"):
        parse_gate_section({"regression": [{"metric": "duration", "stat": "p50", "stratify": True}]})
    with pytest.raises(ConfigError, match="stratify needs pooled"):
        parse_gate_section({"regression": [{"metric": "duration", "stat": "p95", "pooled": True, "stratify": True}]})


def test_configured_check_replaces_the_default_of_the_same_identity() -> None:
    s = parse_gate_section({"regression": [{"metric": "duration", "stat": "p50", "relative": 0.2, "absolute": 50}]})
    p50 = [c for c in s.checks if c.metric == "duration" and c.stat == "p50" and not c.pooled]
    assert len(p50) == 1 and (p50[0].relative, p50[0].absolute) == (0.2, 50.0)
    assert p50[0].origin == "gate.regression[0]"
    assert len(s.checks) == len(default_checks())


def test_defaults_can_be_turned_off() -> None:
    s = parse_gate_section({"defaults": False, "budget": [{"metric": "duration", "stat": "p99", "max": 3000}]})
    assert len(s.checks) == 1 and s.checks[0].max == 3000.0 and s.checks[0].kind == "budget"


def test_check_fields() -> None:
    s = parse_gate_section({"defaults": False, "budget": [
        {"metric": "critical_path", "role": ["retrieval", "rerank"], "stat": "p95", "max": 250,
         "workflow": "rag-answer"},
        {"metric": "findings", "analyzer": "trust", "kind": "unguarded_tool_call", "min_severity": "high",
         "stat": "total", "max": 0, "pooled": True},
    ]})
    cp, fnd = s.checks
    assert cp.roles == ("retrieval", "rerank") and cp.workflows == ("rag-answer",)
    assert fnd.finding_kinds == ("unguarded_tool_call",) and fnd.pooled and fnd.stat == "total"


@pytest.mark.parametrize("section, message", [
    ({"alpha": 0.7}, "alpha"),
    ({"alpha": "0.05"}, "alpha"),
    ({"correction": "fdr"}, "correction"),
    ({"min_samples": 1}, "min_samples"),
    ({"bogus": 1}, "unknown key"),
    ({"fail_on_inconclusive": "yes"}, "fail_on_inconclusive"),
    ({"budget": {"metric": "duration"}}, "array of tables"),
    ({"budget": [{"metric": "latency", "max": 1}]}, "unknown or missing metric"),
    ({"budget": [{"metric": "duration", "stat": "p42", "max": 1}]}, "stat 'p42'"),
    ({"budget": [{"metric": "duration"}]}, "needs max"),
    ({"budget": [{"metric": "error_rate", "max": 5}]}, "fraction"),
    ({"budget": [{"metric": "critical_path", "max": 5}]}, "needs a role"),
    ({"budget": [{"metric": "duration", "role": "llm", "max": 5}]}, "takes no role"),
    ({"budget": [{"metric": "duration", "kind": "x", "max": 5}]}, "only apply to metric findings"),
    ({"budget": [{"metric": "findings", "min_severity": "urgent", "max": 5}]}, "min_severity"),
    ({"regression": [{"metric": "duration", "stat": "max"}]}, "not valid"),
    ({"regression": [{"metric": "duration", "relative": 0, "absolute": 0}]}, "cannot both be 0"),
    ({"regression": [{"metric": "error_rate", "test": "mannwhitney"}]}, "test must be"),
    ({"regression": [{"metric": "duration", "workflow": []}]}, "non-empty list"),
    ({"structure": {"fail_on": ["everything"]}}, "fail_on"),
    ({"structure": {"min_traces": 0}}, "min_traces"),
])
def test_bad_values_raise_config_errors(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_gate_section(section)


def test_every_metric_is_documented() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text()
    gate = text[text.index("## `[gate]`"):]
    for name in METRICS:
        assert f"`{name}`" in gate, name
