"""Evaluating the gate's checks on two sides: budgets, regressions, structure.

* A **budget** compares one candidate statistic with a fixed limit
  (``duration p95 <= 3000 ms``).
* A **regression** compares candidate with baseline. It fails only when the
  change is *practically* significant (beyond ``max(relative x baseline,
  absolute)``) **and** *statistically* significant under a one-sided test
  (:mod:`fabric_trace.gate.stats`), after a weighted Holm-Bonferroni adjustment
  across every regression check of the run (``alpha`` is the family-wise error
  rate; the end-to-end latency checks share :data:`PRIMARY_SHARE` of it).
  Times are tested against *baseline + threshold* (:func:`_test`).
* A **structure** check fails on a structural fact outright (a removed
  guardrail, a new cross-region dependency, a new high/critical finding kind,
  a new external dependency) and otherwise when the structural diff shows a
  significant change of a category listed in ``[gate.structure] fail_on``.

Tests are exact where samples are small (:mod:`fabric_trace.gate.stats`).
A check is *inconclusive* (never a silent pass or fail) only when the data
cannot decide it: fewer than ``min_samples`` traces per side and scope, a
percentile ``pXX`` without ``min_tail_samples`` traces above it, or an
observed change beyond the practical threshold whose test could not be
significant even for the most extreme data of that sample size (its smallest
attainable p-value times the family size is not below ``alpha``), unless its
companion over all workflows (a stratified check of the same question)
shows no hint of a rise (:data:`SETTLE_P`).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import replace

import numpy as np
from typing import Any

from fabric_trace.gate import stats
from fabric_trace.gate.budgets import PERCENTILES, SEVERITIES, GateSettings
from fabric_trace.gate.diff import DiffItem, StructuralDiff
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
        concretes, skipped = expand(spec, base, cand, settings)
        notes.extend(n for n in skipped if n not in notes)
        for concrete in concretes:
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
        name=c.name, kind=c.spec.kind, workflow=c.workflow, metric=c.spec.metric, stat=c.stat,
        unit=c.metric.unit, baseline=kw.pop("baseline", None), candidate=kw.pop("candidate", None),
        delta=kw.pop("delta", None), threshold=kw.pop("threshold", None), threshold_text=_threshold_text(c),
        verdict=verdict, reason=reason, role=c.role, origin=c.spec.origin, **kw,
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _budget(c: Concrete, cand: SideMetrics, base: SideMetrics, settings: GateSettings) -> CheckResult:
    sc, sb = sample_of(c, cand), sample_of(c, base)
    kind = c.metric.kind
    b_val = _finite(sb.statistic(c.stat, kind)) if sb.n else None
    common = {"n_baseline": sb.n, "n_candidate": sc.n, "threshold": c.spec.max, "baseline": b_val}
    short = too_few(c, None, sc, settings)
    if short:
        return _result(c, "inconclusive", short, settings, **common)
    value = sc.statistic(c.stat, kind)
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
    kind, stat = c.metric.kind, c.stat
    out: dict[str, Any] = {"n_baseline": sb.n, "n_candidate": sc.n}
    short = too_few(c, sb, sc, settings)
    if c.spec.stratify:
        b_val, c_val = _stratified_values(stat, sb, sc)
    else:
        b_val, c_val = sb.statistic(stat, kind), sc.statistic(stat, kind)
    out["baseline"], out["candidate"] = _finite(b_val), _finite(c_val)
    if math.isfinite(b_val) and math.isfinite(c_val):
        out["delta"] = c_val - b_val
        out["threshold"] = max((c.spec.relative or 0.0) * abs(b_val), c.spec.absolute or 0.0)
    if short:
        out["inconclusive"] = short + _observed(out, c.metric.unit)
        return out
    if not math.isfinite(b_val) and not math.isfinite(c_val):
        out["pass"] = f"no {denominator(c)} on either side: nothing to compare"
        return out
    delta = c_val - b_val
    threshold = out["threshold"] if "threshold" in out else max(c.spec.absolute or 0.0, 0.0)
    out.update(delta=delta, threshold=threshold, practical=delta > threshold)
    result = _test(c, sb, sc, settings)
    out.update(test=result.method, p_value=result.p_value, ci=result.ci, min_p=result.min_p)
    if c.spec.metric == "duration":
        out["details"] = {"attribution": _attribution(c, base, cand)}
    return out


def _common_strata(sb: Sample, sc: Sample) -> list[str]:
    assert sb.strata is not None and sc.strata is not None
    return sorted(set(sb.strata.tolist()) & set(sc.strata.tolist()))


def _stratified_values(stat: str, sb: Sample, sc: Sample) -> tuple[float, float]:
    """Baseline and candidate statistic per workflow, averaged with the same weights on both sides
    (each workflow's share of the traces of both runs; workflows on one side only are left out)."""
    common = _common_strata(sb, sc)
    if not common:
        return math.nan, math.nan
    weights = np.array([len(sb.stratum(w)) + len(sc.stratum(w)) for w in common], dtype=float)
    weights /= weights.sum()
    values = []
    for side in (sb, sc):
        per = [Sample(len(side.stratum(w)), values=side.stratum(w)).statistic(stat, "sample") for w in common]
        values.append(float(np.dot(weights, per)))
    return values[0], values[1]


def _observed(d: dict[str, Any], unit: str) -> str:
    """``; observed +12.0% (+30.1 ms)`` for a check that could not decide, when both sides have a value."""
    if d.get("delta") is None:
        return ""
    return f"; observed {_change_text(d.get('baseline'), d['delta'], unit)}"


def _floor(c: Concrete, baseline: np.ndarray, stat: str) -> float:
    """The practical threshold of ``c`` for a baseline sample: ``max(relative x statistic, absolute)``."""
    value = Sample(len(baseline), values=baseline).statistic(stat, "sample") if len(baseline) else math.nan
    rel = (c.spec.relative or 0.0) * abs(value) if math.isfinite(value) else 0.0
    return max(rel, c.spec.absolute or 0.0, 0.0)


def _test(c: Concrete, sb: Sample, sc: Sample, settings: GateSettings) -> stats.TestResult:
    """The one-sided test of ``c``. For times (unit ``ms``) it asks whether the candidate is worse than the
    baseline *plus the practical threshold*: the candidate's values are lowered by the threshold (of their
    workflow, for a stratified check) before the rank test, so chance differences smaller than a relevant
    slowdown do not count as evidence (docs/ci.md, "How a check decides")."""
    kind, stat = c.metric.kind, c.stat
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
        test = "exceedance" if q is not None and q > 0.5 else "mannwhitney"
    shifted = c.metric.unit == "ms" and test in ("mannwhitney", "exceedance")
    suffix = " vs baseline + threshold" if shifted else ""

    def lowered(base: np.ndarray, cand: np.ndarray) -> np.ndarray:
        return cand - _floor(c, base, stat) if shifted else cand

    if test == "mannwhitney" and c.spec.stratify:
        strata = [(sb.stratum(w), sc.stratum(w)) for w in _common_strata(sb, sc)]
        res = stats.mann_whitney_stratified([(b, lowered(b, v)) for b, v in strata])
    elif test == "mannwhitney":
        res = stats.mann_whitney(sb.values, lowered(sb.values, sc.values))
    elif test == "exceedance" and q is not None:
        res = stats.quantile_exceedance(sb.values, lowered(sb.values, sc.values), q)
    else:
        return stats.bootstrap_quantile(sb.values, sc.values, q, resamples=settings.bootstrap_resamples,
                                        seed=seed, alpha=settings.alpha)
    return replace(res, method=res.method + suffix)


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
    # Tarone: a test whose most extreme outcome could not be significant is left out of the family (it
    # cannot fail, and counting it would only weaken the others); its check says it cannot decide
    if settings.correction != "none":
        able = stats.testable_weighted([pending[i][1]["min_p"] for i in tested], settings.alpha,
                                       lambda idx: family_weights([pending[tested[j]][0] for j in idx]))
        tested = [i for i, ok in zip(tested, able) if ok]
    family = set(tested)
    weights = family_weights([pending[i][0] for i in tested]) if settings.correction != "none" else None
    adjusted = stats.adjust([pending[i][1]["p_value"] for i in tested], settings.correction, weights)
    for i, p_adj in zip(tested, adjusted):
        pending[i][1]["p_adjusted"] = p_adj
    for i, (_, d) in enumerate(pending):
        if d.get("p_value") is not None and i not in family:
            d["untestable"] = True
    pooled = {_question(c): (c, d) for c, d in pending if c.spec.pooled and c.spec.stratify
              and c.spec.workflows is None and "p_adjusted" in d}
    # a companion settles the question when it passes with its observed change inside the threshold, or
    # without even a hint of a rise (unadjusted p >= SETTLE_P); a suggestive rise leaves it open
    settled = {q for q, (c, d) in pooled.items() if _regression_verdict(c, d, settings)[0] == "pass"
               and (d["delta"] <= d["threshold"] or d["p_value"] >= SETTLE_P)}
    out = []
    for c, d in pending:
        if d.get("untestable") and d.get("practical") and not c.spec.pooled and _question(c) in settled:
            d["decided_by"] = pooled[_question(c)]
        if "inconclusive" in d:
            verdict: Verdict = "inconclusive"
            reason = d.pop("inconclusive")
        elif "pass" in d:
            verdict, reason = "pass", d.pop("pass")
        else:
            verdict, reason = _regression_verdict(c, d, settings)
        out.append((c, verdict, reason, d))
    results = []
    for c, verdict, reason, d in out:
        fields = {k: v for k, v in d.items() if k not in ("practical", "min_p", "untestable", "decided_by")}
        results.append(_result(c, verdict, reason, settings, **fields))
    return results


#: The share of ``alpha`` the end-to-end latency checks (metric ``duration``) get together in the weighted
#: Holm family of a run's regression tests; the other checks share the rest equally. End-to-end latency is
#: what the gate is first run for, and its tests (against baseline + threshold) almost never alarm by
#: chance; with equal weights 4 of some 65 tests got 6 % of ``alpha``, and a 1.5x slower run at 10 traces
#: a workflow was caught in 58 % of pairs (docs/ci.md, "Multiple testing").
PRIMARY_SHARE = 0.5

#: Of :data:`PRIMARY_SHARE`, the part of the end-to-end checks over all workflows (``pooled`` and
#: ``stratify``: the most traces, so the most power for a slowdown of every workflow); the per-workflow
#: ones (p50, tail) share the rest.
STRATIFIED_SHARE = 0.5


def family_weights(checks: list[Concrete]) -> list[float]:
    """The weight of each test of the family (summing to 1): :data:`PRIMARY_SHARE` for the end-to-end
    latency checks (:data:`STRATIFIED_SHARE` of it for those over all workflows, the rest for the
    per-workflow ones, equally within each group), the rest equally among the other checks. A group that is
    empty gives its share to the others (a family of one kind has equal weights)."""
    if not checks:
        return []
    groups = [("other" if c.spec.metric != "duration" else "stratified" if c.spec.stratify else "per-workflow")
              for c in checks]
    shares = {"other": 1 - PRIMARY_SHARE, "stratified": PRIMARY_SHARE * STRATIFIED_SHARE,
              "per-workflow": PRIMARY_SHARE * (1 - STRATIFIED_SHARE)}
    counts = {g: groups.count(g) for g in shares}
    total = sum(share for g, share in shares.items() if counts[g])
    return [shares[g] / total / counts[g] for g in groups]


#: A per-workflow check too sparse to decide passes when its companion over all workflows passes with its
#: change within the threshold or with an unadjusted p-value of at least this (no hint of a rise).
SETTLE_P = 0.05


def _question(c: Concrete) -> tuple[Any, ...]:
    """What a check asks, whatever its scope: a per-workflow check and the stratified check over all
    workflows with the same question are matched by it."""
    s = c.spec
    return s.kind, s.metric, c.stat, c.role, c.finding_kinds, s.analyzer, s.min_severity


def _regression_verdict(c: Concrete, d: dict[str, Any], settings: GateSettings) -> tuple[Verdict, str]:
    unit = c.metric.unit
    delta, threshold, practical = d["delta"], d["threshold"], d["practical"]
    change = _change_text(d["baseline"], delta, unit)
    limit = format_value(threshold, unit, delta=True)
    if d.get("untestable"):
        by = d.get("decided_by")
        if practical and by is not None:
            return "pass", (
                f"observed {change} beyond {limit}, too few traces to decide alone ({d['n_baseline']} and "
                f"{d['n_candidate']}); over all workflows, each compared with itself, no sign of a regression "
                f"({by[0].name}: {_change_text(by[1]['baseline'], by[1]['delta'], unit)}, "
                f"p {p_text(by[1]['p_value'])})")
        if practical:
            return "inconclusive", (
                f"cannot decide: observed {change} beyond {limit}, but with {d['n_baseline']} and "
                f"{d['n_candidate']} traces even the most extreme data would not be significant "
                f"(smallest possible p {p_text(d['min_p'])}, {d['test']})")
        if delta <= 0:
            return "pass", f"no increase ({change})"
        return "pass", f"{change}, within {limit}"
    p_adj = d["p_adjusted"]
    significant = p_adj < settings.alpha
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
    """One check per ``fail_on`` category.

    Structural facts fail **outright**, with no test: a guardrail edge the baseline shows and the candidate
    never does, a new cross-region dependency, a new finding kind of severity ``finding_min_severity`` or
    more, and a new external dependency or trust-zone crossing (:func:`new_dependencies`). The other items
    are tested: the presence tests of the sections these checks read form their own Holm family
    (:func:`_structure_family`; the diff's other items, e.g. every calls-per-trace comparison, cannot fail
    the gate and do not dilute it). An item that is tested and not significant is listed in the reason of
    a passing check.
    """
    st = settings.structure
    by_category: dict[str, list[DiffItem]] = {}
    for category in st.fail_on:
        if category == "trust_crossing_added" and not {"trust"} <= (base.capabilities & cand.capabilities):
            notes.append("structure check trust_crossing_added skipped: the trust analyzer's tables are missing")
            continue
        if category == "host_added":  # every external host the baseline never reaches (opt-in)
            items = new_dependencies(diff, "egress", st.min_traces, any_kind=True)
        else:
            items = diff.by_category(category, min_traces=st.min_traces)
        if category == "finding_kind_added":
            floor = SEVERITIES.index(st.finding_min_severity)
            items = [i for i in items if i.severity is not None and SEVERITIES.index(i.severity) >= floor]
        by_category[category] = items
    adjusted = _structure_family(settings, diff, [c for c in by_category if c in _PRESENCE_SECTIONS
                                                  and c not in OUTRIGHT])
    out = []
    for category, items in by_category.items():
        if category in OUTRIGHT:
            failing, decided = items, items
        else:
            decided = []
            for i in items:
                p_adj = adjusted.get((i.section, i.label), i.p_adjusted)
                significant = i.practical and p_adj is not None and p_adj < settings.alpha
                decided.append(replace(i, p_adjusted=p_adj, significant=significant))
            failing = [i for i in decided if i.significant]
            if category in _NEW_DEPENDENCY:
                new = new_dependencies(diff, _NEW_DEPENDENCY[category], st.min_traces)
                failing = new + [i for i in failing if i.label not in {n.label for n in new}]
                decided = failing + [i for i in decided if i not in failing]
        failing = [replace(i, significant=True) for i in failing]
        listed = failing or decided
        described = "; ".join(_item_text(i, category, diff) for i in listed[:5]) + \
            (f"; and {len(listed) - 5} more" if len(listed) > 5 else "")
        if failing:
            verdict: Verdict = "fail"
            what = _FAIL_TEXT.get(category, "significant change(s)").format(severity=st.finding_min_severity)
            reason = f"{len(failing)} {what}: {described}"
        elif decided:
            verdict = "pass"
            reason = f"{len(decided)} change(s), none significant: {described}"
            if category in _NEW_DEPENDENCY:
                reason = (f"{len(decided)} item(s) not seen in the baseline, behind kinds of call the baseline "
                          f"already makes, too rare to tell from chance (listed for review): {described}")
        else:
            verdict, reason = "pass", "no change"
        out.append(CheckResult(
            name=f"structure {category}", kind="structure", workflow=ALL, metric=category, stat="changes",
            unit="count", baseline=None, candidate=float(len(failing)), delta=None, threshold=0.0,
            threshold_text=_STRUCTURE_THRESHOLD.get(category, "no significant change"), verdict=verdict,
            reason=reason, n_baseline=diff.baseline_traces, n_candidate=diff.candidate_traces,
            details={"items": [i.as_dict() for i in (failing + [i for i in decided if i not in failing])]},
        ))
    return out


#: Categories that fail on any item, without a test: structural facts, not rates.
OUTRIGHT: frozenset[str] = frozenset({"guardrail_removed", "region_added", "finding_kind_added", "host_added"})

#: Categories that fail outright on a new dependency (:func:`new_dependencies`) of the diff section named,
#: and test their other items.
_NEW_DEPENDENCY = {"peer_added": "egress", "trust_crossing_added": "trust"}

_FAIL_TEXT = {
    "finding_kind_added": "new finding kind(s) of severity >= {severity}",
    "guardrail_removed": "guardrail step(s) the baseline runs and the candidate never does",
    "region_added": "new cross-region dependency(ies)",
    "peer_added": "new external dependency(ies)",
    "host_added": "external host(s) the baseline never reaches",
    "trust_crossing_added": "new trust-zone crossing(s)",
}


def _item_text(i: DiffItem, category: str, diff: StructuralDiff) -> str:
    text = (f"{i.label} (baseline {i.baseline_traces}/{diff.baseline_traces} traces, "
            f"candidate {i.candidate_traces}/{diff.candidate_traces}")
    if category == "finding_kind_added":
        return text + f", severity {i.severity})"
    if category in OUTRIGHT or i.section in _NEW_DEPENDENCY.values() and i.significant:
        return text + ")"
    return text + f", p_adj={p_text(i.p_adjusted)})"


def _dependency_parts(section: str, label: str) -> tuple[str, str]:
    """The kind of call and its target: ``svc (tool) -> api.x.com`` -> (``svc (tool)``, ``api.x.com``);
    ``agents -> external:api.x.com (external)`` -> (``agents (external)``, ``external:api.x.com``)."""
    caller, _, target = label.rpartition(" -> ")
    if section == "trust" and target.endswith(")") and " (" in target:
        target, _, kind = target[:-1].rpartition(" (")
        return f"{caller} ({kind})", target
    return caller, target


def new_dependencies(diff: StructuralDiff, section: str, min_traces: int = 1, *,
                     any_kind: bool = False) -> list[DiffItem]:
    """New dependencies of the candidate, structural facts that fail outright.

    ``egress`` items are a service's calls of one role to a host outside the organisation; ``trust`` items
    are crossings ``from_zone -> to_zone (to_kind)``. An item is a new dependency when its target (host,
    zone) is reached by nothing in the baseline **and** its kind of call (service and calling role; from
    zone and zone kind) never reached such a target in the baseline: tool calls that were all internal now
    reaching ``api.weather.example.com``. One more host behind a kind of call that already leaves the
    organisation (a tool that calls several external APIs) is tested instead: a run of 30 traces does not
    show every rarely called host. With ``any_kind`` (the opt-in category ``host_added``) every target the
    baseline never reaches is new, whatever its kind of call.
    """
    items = [i for i in diff.items if i.section == section]
    parts = {i.label: _dependency_parts(section, i.label) for i in items}
    base_targets = {parts[i.label][1] for i in items if i.baseline_traces > 0}
    if section == "egress":  # a host the baseline reaches through an instrumented or internal-looking span
        base_targets |= {i.label.rpartition(" -> ")[2] for i in diff.items
                         if i.section == "peer" and i.baseline_traces > 0}
    base_kinds = {parts[i.label][0] for i in items if i.baseline_traces > 0}
    return [i for i in items if i.baseline_traces == 0 and i.candidate_traces >= min_traces
            and parts[i.label][1] not in base_targets and (any_kind or parts[i.label][0] not in base_kinds)]


_STRUCTURE_THRESHOLD = {"finding_kind_added": "no new kind", "host_added": "no new external host"}

#: Structural categories tested on presence: the diff section they read, and the direction of the change.
_PRESENCE_SECTIONS: dict[str, tuple[str, str]] = {
    "guardrail_removed": ("role", "removed"), "peer_added": ("peer", "added"), "region_added": ("region", "added"),
    "trust_crossing_added": ("trust", "added"), "peer_removed": ("peer", "removed"),
    "region_removed": ("region", "removed"), "role_added": ("role", "added"), "role_removed": ("role", "removed"),
    "service_added": ("service", "added"), "service_removed": ("service", "removed"),
}


def _structure_family(settings: GateSettings, diff: StructuralDiff, categories: list[str]) -> dict[tuple[str, str], float]:
    """Holm-adjusted p-values of the presence tests the structural checks can fail on.

    The family is every item of the sections those categories read, changed or not: an edge seen on both
    sides was tested too (it could have been all on one side), and leaving it out would make the family
    too small. Each item's test asks whether it is on one side only more than chance allows (Fisher's
    exact test on the share of traces showing it); Tarone's rule leaves out items too rare to ever be
    significant (an edge seen in 2 traces in all)."""
    tests: dict[tuple[str, str], tuple[float, float]] = {}
    nb, nc = diff.baseline_traces, diff.candidate_traces
    for category in categories:
        section, change = _PRESENCE_SECTIONS[category]
        for i in diff.items:
            if i.section != section or (category == "guardrail_removed" and not i.guardrail):
                continue
            k = i.baseline_traces + i.candidate_traces
            if change == "added":
                p = stats.fisher(i.baseline_traces, nb, i.candidate_traces, nc).p_value if i.change == "added" else 1.0
                m = min(k, nc)
                min_p = stats.fisher(k - m, nb, m, nc).p_value
            else:
                p = stats.fisher(i.baseline_traces, nb, i.candidate_traces, nc, "less").p_value \
                    if i.change == "removed" else 1.0
                m = min(k, nb)
                min_p = stats.fisher(m, nb, k - m, nc, "less").p_value
            key = (i.section, i.label)
            tests[key] = (min(p, tests[key][0]) if key in tests else p, min_p)
    keys = list(tests)
    if settings.correction != "none":
        able = stats.testable([tests[k][1] for k in keys], settings.alpha)
        keys = [k for k, ok in zip(keys, able) if ok]
    adjusted = dict(zip(keys, stats.adjust([tests[k][0] for k in keys], settings.correction)))
    return {k: adjusted.get(k, 1.0) for k in tests}
