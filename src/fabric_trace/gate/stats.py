"""The statistical tests of the gate: one-sided, robust to skew, deterministic.

Every test answers one question: *is the candidate worse than the baseline?*
(``alternative="greater"``: larger is worse, the case of every gate metric;
``"less"`` is used by the structural diff for things that disappear). Each
returns a one-sided p-value; small means "significantly worse".

* :func:`mann_whitney` - Mann-Whitney U on two samples (medians, means,
  per-trace counts). Rank based, so skew and outliers do not drive it.
  Up to :data:`EXACT_MAX_N` traces in all the p-value is **exact**: the
  permutation distribution of the candidate's rank sum, counted over every
  way of splitting the pooled traces (ties get mid-ranks, so zero-inflated
  counts are exact too); beyond it the normal approximation with tie
  correction, which is accurate at that size.
* :func:`quantile_exceedance` - a tail percentile (p75/p90/p95/p99): how
  many candidate traces lie above the pooled percentile, against Fisher's
  exact (hypergeometric) distribution. Exact at every sample size.
* :func:`bootstrap_quantile` - a bootstrap of the difference of a
  percentile; the p-value comes from the bootstrap standard error (a Wald
  test). Only on request (``test = "bootstrap"``): it is not calibrated on
  small samples.
* :func:`bootstrap_ratio` - a trace-level (cluster) bootstrap of a ratio of
  sums, e.g. cache misses / cache lookups: resampling whole traces keeps the
  test honest when events within one trace are correlated.
* :func:`fisher` - Fisher's exact test on a per-trace yes/no (error rate, an
  edge present in a trace or not).
* :func:`holm` - Holm-Bonferroni adjustment of a family of p-values, optionally
  weighted (the gate gives end-to-end latency a fixed share of ``alpha``).

Bootstraps use a fixed seed: the same inputs always give the same verdict.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
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
    min_p: float = 0.0
    """The smallest p-value this test could give with these sample sizes (the most extreme data).
    When it is not below the significance level the check needs, the data cannot decide it."""


def quantile(values: np.ndarray, q: float) -> float:
    """The ``q`` quantile (0-1) of ``values``, linear interpolation (numpy's default)."""
    return float(np.quantile(values, q)) if len(values) else math.nan


#: Largest pooled sample (baseline + candidate traces) whose Mann-Whitney p-value is computed exactly.
EXACT_MAX_N = 100


def _rank_sum_distribution(ranks2: np.ndarray, k: int) -> np.ndarray:
    """Exact null distribution of the sum of ``k`` of the doubled mid-ranks ``ranks2`` drawn without
    replacement: ``dist[s]`` is the probability that the sum is ``s`` (read-only).

    Counted item by item (``ways[j, s]``: draws of ``j`` items summing to ``s``), n x k x max-sum additions,
    small for n <= :data:`EXACT_MAX_N`. It depends only on the ranks as a multiset and ``k``, so it is
    cached: every tie-free sample of the same sizes (times, most checks of a run) has the same one.
    """
    return _rank_sum_distribution_of(np.sort(np.asarray(ranks2, dtype=np.int64)).tobytes(), k)


@functools.lru_cache(maxsize=128)
def _rank_sum_distribution_of(sorted_ranks2: bytes, k: int) -> np.ndarray:
    ranks2 = np.frombuffer(sorted_ranks2, dtype=np.int64)
    total = int(ranks2.sum())
    ways = np.zeros((k + 1, total + 1))
    ways[0, 0] = 1.0
    for r in ranks2.tolist():
        ways[1:, r:] += ways[:-1, :total + 1 - r].copy()
    dist = ways[k] / ways[k].sum()
    dist.setflags(write=False)
    return dist


def _tail(dist: np.ndarray, observed: int) -> tuple[float, float]:
    """P(sum >= observed), and the same for the largest attainable sum (the smallest possible p-value)."""
    top = int(np.nonzero(dist)[0][-1])
    return float(min(1.0, dist[observed:].sum())), float(dist[top])


def _doubled_ranks(base: np.ndarray, cand: np.ndarray, alternative: Alternative) -> np.ndarray:
    """Doubled mid-ranks of candidate then baseline values (from the top for ``less``)."""
    pooled = np.concatenate([cand, base])
    ranks2 = np.rint(2 * sps.rankdata(pooled)).astype(np.int64)
    if alternative == "less":
        ranks2 = 2 * len(pooled) + 2 - ranks2  # rank from the top: "smaller" becomes "larger"
    return ranks2


def mann_whitney(base: np.ndarray, cand: np.ndarray, alternative: Alternative = "greater") -> TestResult:
    """One-sided Mann-Whitney U: is ``cand`` stochastically larger (or smaller) than ``base``?

    Exact (permutation distribution with mid-ranks) up to :data:`EXACT_MAX_N` traces in all, else the
    tie-corrected normal approximation.
    """
    base = np.asarray(base, dtype=float)
    cand = np.asarray(cand, dtype=float)
    if len(base) == 0 or len(cand) == 0:
        return TestResult(1.0, "mann-whitney", min_p=1.0)
    pooled = np.concatenate([cand, base])
    if np.all(pooled == pooled[0]):
        return TestResult(1.0, "mann-whitney", min_p=1.0)  # identical constants: no variance, no evidence
    if len(pooled) <= EXACT_MAX_N:
        if len(np.unique(pooled)) == len(pooled):  # no ties: scipy's exact distribution of U
            res = sps.mannwhitneyu(cand, base, alternative=alternative, method="exact")
            return TestResult(min(1.0, float(res.pvalue)), "mann-whitney exact",
                              min_p=1.0 / math.comb(len(pooled), len(cand)))
        ranks2 = _doubled_ranks(base, cand, alternative)
        p, min_p = _tail(_rank_sum_distribution(ranks2, len(cand)), int(ranks2[:len(cand)].sum()))
        return TestResult(p, "mann-whitney exact", min_p=min_p)
    res = sps.mannwhitneyu(cand, base, alternative=alternative, method="asymptotic")
    p = float(res.pvalue)
    return TestResult(p if math.isfinite(p) else 1.0, "mann-whitney", min_p=0.0)


def mann_whitney_stratified(strata: Sequence[tuple[np.ndarray, np.ndarray]],
                            alternative: Alternative = "greater") -> TestResult:
    """Mann-Whitney U within strata (workflows), combined: is the candidate larger within its workflow?

    The statistic is the sum over strata of the candidate's rank sum within the stratum, so a change of
    the workflow mix between the runs is not a regression. Exact (the convolution of each stratum's
    exact distribution) when every stratum has at most :data:`EXACT_MAX_N` traces, else the normal
    approximation (the strata's means and tie-corrected variances add up).
    """
    strata = [(np.asarray(b, float), np.asarray(c, float)) for b, c in strata if len(b) and len(c)]
    strata = [(b, c) for b, c in strata if not np.all(np.concatenate([b, c]) == b[0])]  # constants carry nothing
    if not strata:
        return TestResult(1.0, "mann-whitney stratified", min_p=1.0)
    if all(len(b) + len(c) <= EXACT_MAX_N for b, c in strata):
        dist = np.ones(1)
        observed = 0
        for b, c in strata:
            ranks2 = _doubled_ranks(b, c, alternative)
            dist = np.convolve(dist, _rank_sum_distribution(ranks2, len(c)))
            observed += int(ranks2[:len(c)].sum())
        p, min_p = _tail(dist, observed)
        return TestResult(p, "mann-whitney stratified exact", min_p=min_p)
    z_num, var = 0.0, 0.0
    for b, c in strata:
        n1, n2 = len(c), len(b)
        n = n1 + n2
        ranks = sps.rankdata(np.concatenate([c, b]))
        _, counts = np.unique(ranks, return_counts=True)
        z_num += float(ranks[:n1].sum()) - n1 * (n + 1) / 2
        var += n1 * n2 / 12 * ((n + 1) - float((counts ** 3 - counts).sum()) / (n * (n - 1)))
    if var <= 0:
        return TestResult(1.0, "mann-whitney stratified", min_p=1.0)
    signed = z_num if alternative == "greater" else -z_num
    return TestResult(float(sps.norm.sf(signed / math.sqrt(var))), "mann-whitney stratified", min_p=0.0)


def testable(min_ps: Sequence[float], alpha: float) -> list[bool]:
    """Tarone's rule: which tests of a family can reach significance at all.

    K is the smallest number such that at most K tests have a smallest attainable p-value below
    ``alpha / K``; those tests form the family that is adjusted, the others cannot be significant and
    do not dilute it (Tarone 1990, a valid family-wise error control for discrete tests).
    """
    m = len(min_ps)
    for k in range(1, m + 1):
        chosen = [p < alpha / k for p in min_ps]
        if sum(chosen) <= k:
            return chosen
    return [True] * m


def testable_weighted(min_ps: Sequence[float], alpha: float,
                      weigh: Callable[[list[int]], Sequence[float]]) -> list[bool]:
    """Tarone's rule for a weighted family: the tests of :func:`testable`, then only those whose smallest
    attainable p-value is below ``alpha x weight``, ``weigh(chosen)`` giving the weights (summing to 1) of
    the tests chosen; repeated until none drops out (``weigh`` must not lower a weight when a test drops
    out). The choice depends on the sample sizes alone, never on the p-values, so the weighted Holm
    procedure on the chosen tests keeps the family-wise error rate at ``alpha``."""
    chosen = testable(min_ps, alpha)
    while True:
        idx = [i for i, ok in enumerate(chosen) if ok]
        if not idx:
            return chosen
        keep = {i for i, w in zip(idx, weigh(idx)) if min_ps[i] < alpha * w}
        if len(keep) == len(idx):
            return chosen
        chosen = [i in keep for i in range(len(min_ps))]


def quantile_exceedance(base: np.ndarray, cand: np.ndarray, q: float,
                        alternative: Alternative = "greater") -> TestResult:
    """Is the candidate's ``q`` tail heavier? Counts the traces of each side above the pooled ``q`` quantile
    and tests the candidate's share with Fisher's exact test (a generalised median test)."""
    base = np.asarray(base, dtype=float)
    cand = np.asarray(cand, dtype=float)
    method = f"exceedance p{round(q * 100)} (fisher exact)"
    if len(base) == 0 or len(cand) == 0:
        return TestResult(1.0, method, min_p=1.0)
    cut = quantile(np.concatenate([base, cand]), q)
    above_b, above_c = int((base > cut).sum()), int((cand > cut).sum())
    k = above_b + above_c
    if k == 0:
        return TestResult(1.0, method, min_p=1.0)
    p = fisher(above_b, len(base), above_c, len(cand), alternative).p_value
    if alternative == "greater":  # the most extreme split: as many exceedances as possible on the worse side
        m = min(k, len(cand))
        min_p = fisher(k - m, len(base), m, len(cand), alternative).p_value
    else:
        m = min(k, len(base))
        min_p = fisher(m, len(base), k - m, len(cand), alternative).p_value
    return TestResult(p, method, min_p=min_p)


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


def _weights(m: int, weights: Sequence[float] | None) -> list[float]:
    """``weights`` scaled to sum 1 (``None``: equal weights)."""
    if weights is None:
        return [1.0 / m] * m
    assert len(weights) == m and all(w > 0 for w in weights), "one positive weight per p-value"
    total = float(sum(weights))
    return [w / total for w in weights]


def holm(p_values: Sequence[float], weights: Sequence[float] | None = None) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given); reject where adjusted < alpha.

    With ``weights`` (positive, scaled to sum 1) the weighted Holm procedure (Holm 1979): the tests are
    taken in the order of ``p / w``, and the one of rank ``j`` is rejected when ``p / w <= alpha /
    (sum of the weights of the tests not yet rejected)``. A test of weight ``w`` thus gets ``alpha x w``
    at the first step instead of ``alpha / m``; the family-wise error rate is still ``alpha``. Equal
    weights are the ordinary Holm procedure.
    """
    m = len(p_values)
    w = _weights(m, weights) if m else []
    order = sorted(range(m), key=lambda i: p_values[i] / w[i])
    adjusted = [1.0] * m
    running = 0.0
    remaining = 1.0
    for i in order:
        running = max(running, min(1.0, max(remaining, 0.0) * p_values[i] / w[i]))
        adjusted[i] = running
        remaining -= w[i]
    return adjusted


def bonferroni(p_values: Sequence[float], weights: Sequence[float] | None = None) -> list[float]:
    """Bonferroni adjusted p-values (weighted: ``p / w`` with the weights scaled to sum 1)."""
    m = len(p_values)
    w = _weights(m, weights) if m else []
    return [min(1.0, p / wi) for p, wi in zip(p_values, w)]


def adjust(p_values: Sequence[float], method: str, weights: Sequence[float] | None = None) -> list[float]:
    """Adjust a family of p-values: ``holm``, ``bonferroni`` (both optionally weighted) or ``none``."""
    if method == "holm":
        return holm(p_values, weights)
    if method == "bonferroni":
        return bonferroni(p_values, weights)
    return list(p_values)
