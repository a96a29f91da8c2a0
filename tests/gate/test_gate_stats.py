"""The gate's statistical tests: direction, calibration, determinism, multiple-testing control."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fabric_trace.gate import stats


def _lognormal(seed: int, n: int, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(np.log(100 * scale), 0.6, n)


def test_mann_whitney_is_one_sided() -> None:
    base, slower = _lognormal(1, 80), _lognormal(2, 80, scale=1.5)
    assert stats.mann_whitney(base, slower).p_value < 1e-4
    assert stats.mann_whitney(slower, base).p_value > 0.99  # faster is never a regression
    assert stats.mann_whitney(slower, base, "less").p_value < 1e-4


def test_mann_whitney_degenerate_inputs() -> None:
    zeros = np.zeros(30)
    assert stats.mann_whitney(zeros, zeros).p_value == 1.0
    assert stats.mann_whitney(np.array([]), zeros).p_value == 1.0


@pytest.mark.parametrize("q", [None, 0.95])
def test_bootstrap_is_deterministic_and_detects_a_shift(q: float | None) -> None:
    base, slower = _lognormal(3, 300), _lognormal(4, 300, scale=1.8)
    a = stats.bootstrap_quantile(base, slower, q, seed=5)
    b = stats.bootstrap_quantile(base, slower, q, seed=5)
    assert a == b
    assert a.p_value < 1e-3
    assert a.ci is not None and a.ci[0] > 0


def test_bootstrap_ratio_resamples_whole_traces() -> None:
    rng = np.random.default_rng(6)
    den = rng.integers(1, 6, 300).astype(float)
    base_num = rng.binomial(den.astype(int), 0.1).astype(float)
    cand_num = rng.binomial(den.astype(int), 0.3).astype(float)
    assert stats.bootstrap_ratio(base_num, den, cand_num, den).p_value < 1e-6
    assert stats.bootstrap_ratio(cand_num, den, base_num, den).p_value > 0.99
    assert stats.bootstrap_ratio(base_num, np.zeros(300), cand_num, den).p_value == 1.0


def test_fisher_exact() -> None:
    assert stats.fisher(0, 100, 20, 100).p_value < 1e-5
    assert stats.fisher(20, 100, 0, 100).p_value == 1.0
    assert stats.fisher(0, 100, 1, 100).p_value == pytest.approx(0.5)


def test_holm_matches_the_textbook_example() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    assert stats.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.adjust(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 0.02])
    assert stats.adjust(p, "none") == p
    assert stats.holm([]) == []


@pytest.mark.parametrize("test", ["mann_whitney", "bootstrap_p95"])
def test_false_positive_rate_under_the_null_is_at_most_alpha(test: str) -> None:
    """Two samples of one distribution: p < 0.05 in at most about 5 % of 200 repetitions."""
    hits = 0
    for rep in range(200):
        a, b = _lognormal(1000 + rep, 120), _lognormal(5000 + rep, 120)
        if test == "mann_whitney":
            p = stats.mann_whitney(a, b).p_value
        else:
            p = stats.bootstrap_quantile(a, b, 0.95, resamples=400, seed=rep).p_value
        hits += p < 0.05
    assert hits <= 20  # 5 % expected (10 = 5 %); a miscalibrated test would exceed this often


# -- exact small-sample tests ---------------------------------------------------------------------

def _brute_force_p(base: list[float], cand: list[float]) -> float:
    """P(candidate mid-rank sum >= observed) over every split of the pooled values (enumerated)."""
    import itertools

    from scipy.stats import rankdata

    pooled = cand + base
    ranks = rankdata(pooled)
    observed = ranks[:len(cand)].sum()
    sums = [sum(ranks[i] for i in idx) for idx in itertools.combinations(range(len(pooled)), len(cand))]
    return sum(s >= observed - 1e-9 for s in sums) / len(sums)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=7), st.lists(st.integers(0, 4), min_size=1, max_size=7))
def test_exact_mann_whitney_with_ties_equals_enumeration(base: list[int], cand: list[int]) -> None:
    b, c = [float(x) for x in base], [float(x) for x in cand]
    result = stats.mann_whitney(np.array(b), np.array(c))
    if len(set(b + c)) == 1:
        assert result.p_value == 1.0
        return
    assert result.method == "mann-whitney exact"
    assert result.p_value == pytest.approx(_brute_force_p(b, c), abs=1e-9)
    assert result.min_p <= result.p_value


def test_exact_mann_whitney_without_ties_matches_scipy_and_decides_ten_traces() -> None:
    from scipy.stats import mannwhitneyu

    base, slower = _lognormal(11, 10), _lognormal(12, 10, scale=2.0)
    result = stats.mann_whitney(base, slower)
    assert result.method == "mann-whitney exact"
    assert result.p_value == pytest.approx(mannwhitneyu(slower, base, alternative="greater", method="exact").pvalue)
    assert result.min_p == pytest.approx(1 / 184756)  # 1 / C(20, 10): complete separation
    big = stats.mann_whitney(_lognormal(13, 80), _lognormal(14, 80))
    assert big.method == "mann-whitney"  # 160 traces: the normal approximation


def test_stratified_mann_whitney_combines_workflows_and_ignores_the_mix() -> None:
    rng = np.random.default_rng(3)
    fast, slow = rng.lognormal(np.log(100), 0.3, 40), rng.lognormal(np.log(2000), 0.3, 40)
    # same per-workflow distributions, but the candidate runs the slow workflow far more often
    strata = [(fast[:30], fast[30:32]), (slow[:5], slow[5:35])]
    assert stats.mann_whitney_stratified(strata).p_value > 0.05
    pooled = stats.mann_whitney(np.concatenate([fast[:30], slow[:5]]), np.concatenate([fast[30:32], slow[5:35]]))
    assert pooled.p_value < 1e-6  # a pooled test would call the mix a regression
    small = [(_lognormal(20 + i, 10), _lognormal(30 + i, 10, scale=1.6)) for i in range(3)]
    combined = stats.mann_whitney_stratified(small)
    assert combined.method == "mann-whitney stratified exact"
    assert combined.p_value < min(stats.mann_whitney(b, c).p_value for b, c in small)


def test_exceedance_test_is_exact_and_one_sided() -> None:
    base, slower = _lognormal(40, 60), _lognormal(41, 60, scale=2.5)
    result = stats.quantile_exceedance(base, slower, 0.9)
    assert result.p_value < 1e-3 and result.method == "exceedance p90 (fisher exact)"
    assert stats.quantile_exceedance(slower, base, 0.9).p_value > 0.5
    assert result.min_p <= result.p_value


def test_tarone_leaves_out_tests_that_cannot_be_significant() -> None:
    assert stats.testable([1e-6, 0.5, 0.02, 1e-5, 0.004], 0.01) == [True, False, False, True, False]
    assert stats.testable([1e-9] * 5, 0.01) == [True] * 5
    assert stats.testable([], 0.01) == []


def test_weighted_holm() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # equal weights are plain Holm
    assert stats.holm(p, [1, 1, 1, 1]) == pytest.approx(stats.holm(p))
    # weights 1/2, 1/6, 1/6, 1/6; order by p/w: 0.02 (w .5), 0.03, 0.18, 0.24
    # adjusted: 1 x 0.02, 0.5 x 0.03 = 0.015 -> 0.02, 0.333 x 0.18 = 0.06, 0.1667 x 0.24 = 0.04 -> 0.06
    assert stats.holm(p, [3, 1, 1, 1]) == pytest.approx([0.02, 0.06, 0.06, 0.02])
    assert stats.adjust(p, "bonferroni", [3, 1, 1, 1]) == pytest.approx([0.02, 0.24, 0.18, 0.03])
    assert stats.holm([], []) == []


@given(st.lists(st.tuples(st.floats(1e-12, 1.0), st.floats(0.01, 10.0)), min_size=1, max_size=30))
@settings(max_examples=200, deadline=None)
def test_weighted_holm_rejects_at_least_what_weighted_bonferroni_does(pw: list[tuple[float, float]]) -> None:
    p, w = [x for x, _ in pw], [y for _, y in pw]
    holm, bonf = stats.holm(p, w), stats.bonferroni(p, w)
    assert all(h <= b + 1e-12 for h, b in zip(holm, bonf))
    assert all(0.0 <= h <= 1.0 for h in holm)


def test_weighted_tarone_drops_tests_below_their_weighted_level() -> None:
    # unweighted Tarone keeps the first three (alpha / 3 = 0.0033); with weights 0.5 / 0.25 / 0.25 the third
    # (min p 0.003 >= 0.01 x 0.25) cannot reach its level and drops out; the others then get 2/3 and 1/3
    def weigh(idx: list[int]) -> list[float]:
        raw = [0.5, 0.25, 0.25, 0.25]
        total = sum(raw[i] for i in idx)
        return [raw[i] / total for i in idx]

    assert stats.testable_weighted([1e-6, 1e-4, 0.003, 0.5], 0.01, weigh) == [True, True, False, False]


def test_end_to_end_latency_gets_half_of_alpha() -> None:
    from fabric_trace.gate.budgets import default_checks
    from fabric_trace.gate.checks import PRIMARY_SHARE, STRATIFIED_SHARE, family_weights
    from fabric_trace.gate.samples import Concrete
    from fabric_trace.gate.budgets import metric_defs

    specs = {(s.metric, s.stratify): s for s in default_checks()}

    def concrete(metric: str, stratify: bool) -> Concrete:
        s = specs[(metric, stratify)]
        return Concrete(s, metric_defs()[metric], "w", None, None, None, "p50" if metric == "duration" else "mean")

    family = [concrete("duration", False)] * 3 + [concrete("duration", True)] + [concrete("llm_calls", False)] * 10
    w = family_weights(family)
    assert sum(w) == pytest.approx(1.0)
    assert w[:3] == pytest.approx([PRIMARY_SHARE * (1 - STRATIFIED_SHARE) / 3] * 3)
    assert w[3] == pytest.approx(PRIMARY_SHARE * STRATIFIED_SHARE)
    assert w[4:] == pytest.approx([(1 - PRIMARY_SHARE) / 10] * 10)
    # a family of one kind has equal weights
    assert family_weights(family[4:]) == pytest.approx([0.1] * 10)
    assert family_weights(family[:3]) == pytest.approx([1 / 3] * 3)
