"""The statistical tests of the gate: one-sided, robust to skew, deterministic.

Every test answers one question: *is the candidate worse than the baseline?*
(``alternative="greater"``: larger is worse, the case of every gate metric;
``"less"`` is used by the structural diff for things that disappear). Each
returns a one-sided p-value; small means "significantly worse".

* :func:`mann_whitney` - Mann-Whitney U on two samples (medians, means,
  per-trace counts). Rank based, so skew and outliers do not drive it.
* :func:`bootstrap_quantile` - a bootstrap of the difference of a tail
  percentile (p90/p95/p99); the p-value comes from the bootstrap standard
  error (a Wald test), so it is continuous and not limited by the number of
  resamples.
* :func:`bootstrap_ratio` - a trace-level (cluster) bootstrap of a ratio of
  sums, e.g. cache misses / cache lookups: resampling whole traces keeps the
  test honest when events within one trace are correlated.
* :func:`fisher` - Fisher's exact test on a per-trace yes/no (error rate, an
  edge present in a trace or not).
* :func:`holm` - Holm-Bonferroni adjustment of a family of p-values.

Bootstraps use a fixed seed: the same inputs always give the same verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps

Alternative = Literal["greater", "less"]

#: Resamples per bootstrap chunk (bounds memory: chunk x n values at a time).
_CHUNK = 250


@dataclass(frozen=True)
class TestResult:
    """The outcome of one one-sided test."""

    p_value: float
    """One-sided p-value (1.0 when there is no evidence at all)."""
    method: str
    """Short name of the test, shown in reports (``"mann-whitney"``...)."""
    ci: tuple[float, float] | None = None
    """A two-sided confidence interval of the difference candidate - baseline, when the test gives one."""


def quantile(values: np.ndarray, q: float) -> float:
    """The ``q`` quantile (0-1) of ``values``, linear interpolation (numpy's default)."""
    return float(np.quantile(values, q)) if len(values) else math.nan


def mann_whitney(base: np.ndarray, cand: np.ndarray, alternative: Alternative = "greater") -> TestResult:
    """One-sided Mann-Whitney U: is ``cand`` stochastically larger (or smaller) than ``base``?"""
    base = np.asarray(base, dtype=float)
    cand = np.asarray(cand, dtype=float)
    if len(base) == 0 or len(cand) == 0:
        return TestResult(1.0, "mann-whitney")
    if np.all(base == base[0]) and np.all(cand == base[0]):
        return TestResult(1.0, "mann-whitney")  # identical constants: no variance, no evidence
    res = sps.mannwhitneyu(cand, base, alternative=alternative, method="auto")
    p = float(res.pvalue)
    return TestResult(p if math.isfinite(p) else 1.0, "mann-whitney")


def _resample_indices(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    return rng.integers(0, n, size=(size, n))


def _wald(observed: float, diffs: np.ndarray, alternative: Alternative, alpha: float) -> tuple[float, tuple[float, float]]:
    """One-sided p-value from the bootstrap standard error, and a two-sided (1 - 2 alpha) percentile CI."""
    se = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else 0.0
    lo, hi = (float(v) for v in np.quantile(diffs, [alpha, 1 - alpha]))
    signed = observed if alternative == "greater" else -observed
    if se <= 0.0 or not math.isfinite(se):
        return (0.0 if signed > 0 else 1.0), (lo, hi)
    return float(sps.norm.sf(signed / se)), (lo, hi)


def bootstrap_quantile(
    base: np.ndarray,
    cand: np.ndarray,
    q: float | None,
    *,
    resamples: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    alternative: Alternative = "greater",
) -> TestResult:
    """Bootstrap test of ``stat(cand) - stat(base)``, stat the ``q`` quantile (``None``: the mean).

    Each side is resampled on its own (the samples are independent traces).
    """
    base = np.asarray(base, dtype=float)
    cand = np.asarray(cand, dtype=float)
    method = "bootstrap mean" if q is None else f"bootstrap p{round(q * 100)}"
    if len(base) < 2 or len(cand) < 2:
        return TestResult(1.0, method)

    def stat_rows(a: np.ndarray) -> np.ndarray:
        return a.mean(axis=1) if q is None else np.quantile(a, q, axis=1)

    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    done = 0
    while done < resamples:
        size = min(_CHUNK, resamples - done)
        sb = stat_rows(base[_resample_indices(rng, len(base), size)])
        sc = stat_rows(cand[_resample_indices(rng, len(cand), size)])
        diffs[done:done + size] = sc - sb
        done += size
    if q is None:
        observed = float(cand.mean() - base.mean())
    else:
        observed = quantile(cand, q) - quantile(base, q)
    p, ci = _wald(observed, diffs, alternative, alpha)
    return TestResult(p, method, ci)


def ratio(num: np.ndarray, den: np.ndarray) -> float:
    """``sum(num) / sum(den)`` (NaN when the denominator is 0)."""
    total = float(np.sum(den))
    return float(np.sum(num)) / total if total > 0 else math.nan


def bootstrap_ratio(
    base_num: np.ndarray,
    base_den: np.ndarray,
    cand_num: np.ndarray,
    cand_den: np.ndarray,
    *,
    resamples: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    alternative: Alternative = "greater",
) -> TestResult:
    """Trace-level bootstrap test of a ratio of sums (candidate ratio - baseline ratio)."""
    sides = [(np.asarray(base_num, float), np.asarray(base_den, float)),
             (np.asarray(cand_num, float), np.asarray(cand_den, float))]
    if any(len(n) < 2 or float(np.sum(d)) <= 0 for n, d in sides):
        return TestResult(1.0, "bootstrap ratio")
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    done = 0
    while done < resamples:
        size = min(_CHUNK, resamples - done)
        out = []
        for num, den in sides:
            idx = _resample_indices(rng, len(num), size)  # whole traces, with replacement
            d = den[idx].sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                out.append(np.where(d > 0, num[idx].sum(axis=1) / np.where(d > 0, d, 1.0), np.nan))
        diffs[done:done + size] = out[1] - out[0]
        done += size
    diffs = diffs[np.isfinite(diffs)]
    if len(diffs) < 2:
        return TestResult(1.0, "bootstrap ratio")
    observed = ratio(*sides[1]) - ratio(*sides[0])
    p, ci = _wald(observed, diffs, alternative, alpha)
    return TestResult(p, "bootstrap ratio", ci)


def fisher(base_yes: int, base_n: int, cand_yes: int, cand_n: int,
           alternative: Alternative = "greater") -> TestResult:
    """Fisher's exact test: is the candidate's proportion ``cand_yes / cand_n`` larger (or smaller)?"""
    if base_n <= 0 or cand_n <= 0:
        return TestResult(1.0, "fisher exact")
    table = [[cand_yes, cand_n - cand_yes], [base_yes, base_n - base_yes]]
    res = sps.fisher_exact(table, alternative=alternative)
    p = float(res.pvalue)
    return TestResult(min(1.0, p) if math.isfinite(p) else 1.0, "fisher exact")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given); reject where adjusted < alpha."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def bonferroni(p_values: Sequence[float]) -> list[float]:
    """Bonferroni adjusted p-values."""
    m = len(p_values)
    return [min(1.0, p * m) for p in p_values]


def adjust(p_values: Sequence[float], method: str) -> list[float]:
    """Adjust a family of p-values: ``holm``, ``bonferroni`` or ``none``."""
    if method == "holm":
        return holm(p_values)
    if method == "bonferroni":
        return bonferroni(p_values)
    return list(p_values)
