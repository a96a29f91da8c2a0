"""Evaluating the gate's checks on two sides: budgets, regressions, structure.

* A **budget** compares one candidate statistic with a fixed limit
  (``duration p95 <= 3000 ms``).
* A **regression** compares candidate with baseline. It fails only when the
  change is *practically* significant (beyond ``max(relative x baseline,
  absolute)``) **and** *statistically* significant under a one-sided test
  (:mod:`fabric_trace.gate.stats`), after Holm-Bonferroni adjustment across
  every regression check of the run (``alpha`` is the family-wise error rate).
* A **structure** check fails when the structural diff shows a significant
  change of a category listed in ``[gate.structure] fail_on``.

Too few traces make a check *inconclusive* (never a silent pass or fail):
``min_samples`` traces per side and scope, and for a percentile ``pXX``
enough traces that ``min_tail_samples`` of them lie above it.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

from fabric_trace.gate import stats
from fabric_trace.gate.budgets import PERCENTILES, SEVERITIES, GateSettings
from fabric_trace.gate.diff import StructuralDiff
from fabric_trace.gate.metrics import SideMetrics
from fabric_trace.gate.results import CheckResult, GateOutcome, Verdict, format_value, p_text
from fabric_trace.gate.samples import ALL, Concrete, Sample, denominator, expand, missing_source, sample_of, too_few

__all__ = ["CheckResult", "GateOutcome", "Verdict", "evaluate", "format_value"]


def evaluate(settings: GateSettings, base: SideMetrics, cand: SideMetrics,
             diff: StructuralDiff | None = None) -> GateOutcome:
    """Run every check of ``settings`` on the two sides (and the structural diff)."""
    results: list[CheckResult] = []
    notes: list[str] = []
    pending: list[tuple[Concrete, dict[str, Any]]] = []
    for spec in settings.checks:
        missing = missing_source(spec, base, cand)
        if missing:
            if spec.origin == "default":
                note = f"{spec.metric} checks skipped: {missing}"
                if note not in notes:
                    notes.append(note)
                continue
        for concrete in expand(spec, base, cand):
            if missing:
                results.append(_result(concrete, "inconclusive", f"cannot be computed: {missing}", settings))
                continue
            if spec.kind == "budget":
                results.append(_budget(concrete, cand, base, settings))
            else:
                pending.append((concrete, _regression(concrete, base, cand, settings)))
    results.extend(_decide_regressions(pending, settings))
    if diff is not None:
        results.extend(_structure(settings, diff, base, cand, notes))
    return GateOutcome(results, notes, settings)


def _threshold_text(c: Concrete) -> str:
    unit = c.metric.unit
    if c.spec.kind == "budget":
        return f"<= {format_value(c.spec.max, unit)}"
    rel = c.spec.relative or 0.0
    return f"+{rel * 100:g}% and {format_value(c.spec.absolute, unit, delta=True)}"


def _result(c: Concrete, verdict: Verdict, reason: str, settings: GateSettings, **kw: Any) -> CheckResult:
    return CheckResult(
        name=c.name, kind=c.spec.kind, workflow=c.workflow, metric=c.spec.metric, stat=c.spec.stat,
        unit=c.metric.unit, baseline=kw.pop("baseline", None), candidate=kw.pop("candidate", None),
        delta=kw.pop("delta", None), threshold=kw.pop("threshold", None), threshold_text=_threshold_text(c),
        verdict=verdict, reason=reason, role=c.role, origin=c.spec.origin, **kw,
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _budget(c: Concrete, cand: SideMetrics, base: SideMetrics, settings: GateSettings) -> CheckResult:
    sc, sb = sample_of(c, cand), sample_of(c, base)
    kind = c.metric.kind
    b_val = _finite(sb.statistic(c.spec.stat, kind)) if sb.n else None
    common = {"n_baseline": sb.n, "n_candidate": sc.n, "threshold": c.spec.max, "baseline": b_val}
    short = too_few(c, None, sc, settings)
    if short:
        return _result(c, "inconclusive", short, settings, **common)
    value = sc.statistic(c.spec.stat, kind)
    if not math.isfinite(value):
        return _result(c, "pass", f"no {denominator(c)} in the candidate: nothing to measure", settings, **common)
    delta = value - b_val if b_val is not None else None
    limit = c.spec.max
    assert limit is not None
    unit = c.metric.unit
    if value > limit:
        reason = f"{format_value(value, unit)} exceeds the budget {format_value(limit, unit)}"
        verdict: Verdict = "fail"
    else:
        reason = f"{format_value(value, unit)} is within the budget {format_value(limit, unit)}"
        verdict = "pass"
    return _result(c, verdict, reason, settings, candidate=value, delta=delta, **common)


def _seed(settings: GateSettings, c: Concrete) -> int:
    return (settings.seed * 1_000_003 + zlib.crc32(f"{c.workflow}|{c.name}".encode())) % (2**32)


def _regression(c: Concrete, base: SideMetrics, cand: SideMetrics, settings: GateSettings) -> dict[str, Any]:
    """Everything of one regression check except the final (family-adjusted) verdict."""
    sb, sc = sample_of(c, base), sample_of(c, cand)
    kind, stat = c.metric.kind, c.spec.stat
    out: dict[str, Any] = {"n_baseline": sb.n, "n_candidate": sc.n}
    short = too_few(c, sb, sc, settings)
    b_val, c_val = sb.statistic(stat, kind), sc.statistic(stat, kind)
    out["baseline"], out["candidate"] = _finite(b_val), _finite(c_val)
    if short:
        out["inconclusive"] = short
        return out
    if not math.isfinite(b_val) and not math.isfinite(c_val):
        out["pass"] = f"no {denominator(c)} on either side: nothing to compare"
        return out
    delta = c_val - b_val
    threshold = max((c.spec.relative or 0.0) * abs(b_val), c.spec.absolute or 0.0)
    out.update(delta=delta, threshold=threshold, practical=delta > threshold)
    result = _test(c, sb, sc, settings)
    out.update(test=result.method, p_value=result.p_value, ci=result.ci)
    if c.spec.metric == "duration":
        out["details"] = {"attribution": _attribution(c, base, cand)}
    return out


def _test(c: Concrete, sb: Sample, sc: Sample, settings: GateSettings) -> stats.TestResult:
    kind, stat = c.metric.kind, c.spec.stat
    seed = _seed(settings, c)
    if kind == "proportion":
        assert sb.values is not None and sc.values is not None
        return stats.fisher(int(sb.values.sum()), sb.n, int(sc.values.sum()), sc.n)
    if kind == "ratio":
        assert sb.num is not None and sb.den is not None and sc.num is not None and sc.den is not None
        return stats.bootstrap_ratio(sb.num, sb.den, sc.num, sc.den, resamples=settings.bootstrap_resamples,
                                     seed=seed, alpha=settings.alpha)
    assert sb.values is not None and sc.values is not None
    q = PERCENTILES.get(stat)
    test = c.spec.test
    if test == "auto":
        test = "bootstrap" if q is not None and q > 0.5 else "mannwhitney"
    if test == "mannwhitney":
        return stats.mann_whitney(sb.values, sc.values)
    return stats.bootstrap_quantile(sb.values, sc.values, q, resamples=settings.bootstrap_resamples,
                                    seed=seed, alpha=settings.alpha)


def _attribution(c: Concrete, base: SideMetrics, cand: SideMetrics) -> list[dict[str, Any]]:
    """Mean critical-path ms per trace by role, baseline vs candidate, largest increase first."""
    mb, mc = base.mask(c.workflows), cand.mask(c.workflows)
    if not mb.any() or not mc.any():
        return []
    rows = []
    for role in sorted(set(base.cp_ns) | set(cand.cp_ns)):
        b = float(base.cp_ms(role)[mb].mean())
        v = float(cand.cp_ms(role)[mc].mean())
        rows.append({"role": role, "baseline_ms": round(b, 3), "candidate_ms": round(v, 3), "delta_ms": round(v - b, 3)})
    rows.sort(key=lambda r: (-r["delta_ms"], r["role"]))
    return rows


def _decide_regressions(pending: list[tuple[Concrete, dict[str, Any]]], settings: GateSettings) -> list[CheckResult]:
    tested = [i for i, (_, d) in enumerate(pending) if d.get("p_value") is not None]
    adjusted = stats.adjust([pending[i][1]["p_value"] for i in tested], settings.correction)
    for i, p_adj in zip(tested, adjusted):
        pending[i][1]["p_adjusted"] = p_adj
    out = []
    for c, d in pending:
        if "inconclusive" in d:
            verdict: Verdict = "inconclusive"
            reason = d.pop("inconclusive")
        elif "pass" in d:
            verdict, reason = "pass", d.pop("pass")
        else:
            verdict, reason = _regression_verdict(c, d, settings)
        d.pop("practical", None)
        out.append(_result(c, verdict, reason, settings, **d))
    return out


def _regression_verdict(c: Concrete, d: dict[str, Any], settings: GateSettings) -> tuple[Verdict, str]:
    unit = c.metric.unit
    delta, threshold, practical = d["delta"], d["threshold"], d["practical"]
    p_adj = d["p_adjusted"]
    significant = p_adj < settings.alpha
    change = _change_text(d["baseline"], delta, unit)
    limit = format_value(threshold, unit, delta=True)
    if practical and significant:
        reason = f"regression: {change} beyond {limit}, significant ({d['test']}, p_adj {p_text(p_adj)})"
        top = _top_roles(d.get("details", {}).get("attribution", []))
        if top:
            reason += f"; critical path grew most in {top}"
        return "fail", reason
    if delta <= 0:
        return "pass", f"no increase ({change})"
    if practical:
        return "pass", f"{change} beyond {limit} but not significant (p_adj {p_text(p_adj)} >= {settings.alpha:g})"
    if significant:
        return "pass", f"{change}: significant but within {limit}"
    return "pass", f"{change}, within {limit}"


def _top_roles(attribution: list[dict[str, Any]]) -> str:
    grown = [r for r in attribution if r["delta_ms"] > 0]
    total = sum(r["delta_ms"] for r in grown)
    picked = [r for r in grown[:3] if total and r["delta_ms"] >= 0.2 * total]
    return ", ".join(f"{r['role']} (+{r['delta_ms']:,.1f} ms/trace)" for r in picked)


def _change_text(baseline: float | None, delta: float, unit: str) -> str:
    text = format_value(delta, unit, delta=True)
    if baseline:
        text = f"{100 * delta / abs(baseline):+.1f}% ({text})"
    return text


def _structure(settings: GateSettings, diff: StructuralDiff, base: SideMetrics, cand: SideMetrics,
               notes: list[str]) -> list[CheckResult]:
    out = []
    st = settings.structure
    for category in st.fail_on:
        if category == "trust_crossing_added" and not {"trust"} <= (base.capabilities & cand.capabilities):
            notes.append("structure check trust_crossing_added skipped: the trust analyzer's tables are missing")
            continue
        items = diff.by_category(category, min_traces=st.min_traces)
        if category == "finding_kind_added":
            floor = SEVERITIES.index(st.finding_min_severity)
            items = [i for i in items if i.severity is not None and SEVERITIES.index(i.severity) >= floor]
        significant = [i for i in items if i.significant]
        listed = significant or items
        described = "; ".join(
            f"{i.label} (baseline {i.baseline_traces}/{diff.baseline_traces} traces, "
            f"candidate {i.candidate_traces}/{diff.candidate_traces}, p_adj={p_text(i.p_adjusted)})"
            for i in listed[:5]) + (f"; and {len(listed) - 5} more" if len(listed) > 5 else "")
        if significant:
            verdict: Verdict = "fail"
            reason = f"{len(significant)} significant change(s): {described}"
        elif items:
            verdict, reason = "pass", f"{len(items)} change(s), none significant: {described}"
        else:
            verdict, reason = "pass", "no change"
        out.append(CheckResult(
            name=f"structure {category}", kind="structure", workflow=ALL, metric=category, stat="changes",
            unit="count", baseline=None, candidate=float(len(significant)), delta=None, threshold=0.0,
            threshold_text="no significant change", verdict=verdict, reason=reason,
            n_baseline=diff.baseline_traces, n_candidate=diff.candidate_traces,
            details={"items": [i.as_dict() for i in items]},
        ))
    return out
