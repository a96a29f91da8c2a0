"""The gate's statistical tests: direction, calibration, determinism, multiple-testing control."""

from __future__ import annotations

import numpy as np
import pytest

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
