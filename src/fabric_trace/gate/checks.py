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
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from fabric_trace.gate import stats
from fabric_trace.gate.budgets import METRICS, PERCENTILES, SEVERITIES, CheckSpec, GateSettings, MetricDef
from fabric_trace.gate.diff import StructuralDiff
from fabric_trace.gate.metrics import SideMetrics

Verdict = Literal["pass", "fail", "inconclusive"]

#: Scope label of a check over every trace.
ALL = "(all)"

#: Metric -> role whose calls it counts.
_CALL_METRICS = {"llm_calls": "llm", "retrieval_calls": "retrieval", "tool_calls": "tool"}


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check (one row of the verdict table, one JUnit test case)."""

    name: str
    kind: str
    """``budget``, ``regression`` or ``structure``."""
    workflow: str
    metric: str
    stat: str
    unit: str
    baseline: float | None
    candidate: float | None
    delta: float | None
    threshold: float | None
    """Budget: the limit. Regression: the smallest delta that counts (max(relative x baseline, absolute))."""
    threshold_text: str
    verdict: Verdict
    reason: str
    n_baseline: int = 0
    n_candidate: int = 0
    test: str | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    ci: tuple[float, float] | None = None
    role: str | None = None
    origin: str = "default"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def delta_pct(self) -> float | None:
        """Delta in percent of the baseline (None when the baseline is 0 or unknown)."""
        if self.delta is None or not self.baseline:
            return None
        return 100.0 * self.delta / abs(self.baseline)


@dataclass
class GateOutcome:
    """All check results of one run, plus notes about skipped checks."""

    results: list[CheckResult]
    notes: list[str]
    settings: GateSettings

    @property
    def failed(self) -> list[CheckResult]:
        """Checks that failed."""
        return [r for r in self.results if r.verdict == "fail"]

    @property
    def inconclusive(self) -> list[CheckResult]:
        """Checks that could not decide."""
        return [r for r in self.results if r.verdict == "inconclusive"]

    @property
    def verdict(self) -> Literal["pass", "fail"]:
        """``fail`` when a check failed (or was inconclusive, with ``fail_on_inconclusive``)."""
        if self.failed or (self.settings.fail_on_inconclusive and self.inconclusive):
            return "fail"
        return "pass"


@dataclass(frozen=True)
class _Concrete:
    """A spec bound to one scope, role and finding-kind set."""

    spec: CheckSpec
    metric: MetricDef
    workflow: str
    workflows: tuple[str, ...] | None
    role: str | None
    finding_kinds: tuple[str, ...] | None

    @property
    def name(self) -> str:
        m = self.spec.metric
        if self.role is not None:
            m += f"[{self.role}]"
        if self.metric.findings:
            parts = [self.spec.analyzer or "any"]
            parts.append(",".join(self.finding_kinds) if self.finding_kinds else "all kinds")
            flt = ":".join(parts)
            if self.spec.min_severity:
                flt += f", severity>={self.spec.min_severity}"
            m += f"[{flt}]"
        return f"{m} {self.spec.stat}"


@dataclass
class _Sample:
    """The data of one side for one concrete check."""

    n: int
    values: np.ndarray | None = None
    num: np.ndarray | None = None
    den: np.ndarray | None = None
    total: float | None = None

    def statistic(self, stat: str, kind: str) -> float:
        if kind == "ratio":
            assert self.num is not None and self.den is not None
            return stats.ratio(self.num, self.den)
        assert self.values is not None
        if stat == "total":
            return float(self.total if self.total is not None else self.values.sum())
        if not len(self.values):
            return math.nan
        if stat in ("mean", "rate"):
            return float(self.values.mean())
        if stat == "max":
            return float(self.values.max())
        return stats.quantile(self.values, PERCENTILES[stat])


def evaluate(settings: GateSettings, base: SideMetrics, cand: SideMetrics,
             diff: StructuralDiff | None = None) -> GateOutcome:
    """Run every check of ``settings`` on the two sides (and the structural diff)."""
    results: list[CheckResult] = []
    notes: list[str] = []
    pending: list[tuple[_Concrete, dict[str, Any]]] = []
    for spec in settings.checks:
        missing = _missing_source(spec, base, cand)
        if missing:
            if spec.origin == "default":
                note = f"{spec.metric} checks skipped: {missing}"
                if note not in notes:
                    notes.append(note)
                continue
        for concrete in _expand(spec, base, cand):
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


def _missing_source(spec: CheckSpec, base: SideMetrics, cand: SideMetrics) -> str | None:
    metric = METRICS[spec.metric]
    needed = metric.source if metric.source in ("locality", "trust") else None
    if metric.findings and spec.analyzer in ("locality", "trust"):
        needed = spec.analyzer
    if needed is None:
        return None
    sides = [s.label for s in (base, cand) if needed not in s.capabilities]
    if sides:
        return f"the {needed} analyzer's tables are missing on the {' and '.join(sides)}"
    if spec.metric == "cache_miss_rate" and (base.cache_lookups is None or cand.cache_lookups is None):
        return "the locality tables do not record cache lookups"
    return None


def _scopes(spec: CheckSpec, base: SideMetrics, cand: SideMetrics) -> list[tuple[str, tuple[str, ...] | None]]:
    if spec.pooled:
        return [(ALL if spec.workflows is None else "+".join(spec.workflows), spec.workflows)]
    names = spec.workflows if spec.workflows is not None else sorted(set(base.workflows()) | set(cand.workflows()))
    return [(w, (w,)) for w in names]


def _expand(spec: CheckSpec, base: SideMetrics, cand: SideMetrics) -> list[_Concrete]:
    metric = METRICS[spec.metric]
    out: list[_Concrete] = []
    for label, workflows in _scopes(spec, base, cand):
        roles: list[str | None] = [None]
        if metric.needs_role:
            assert spec.roles is not None
            if spec.roles == ("*",):
                mb, mc = base.mask(workflows), cand.mask(workflows)
                roles = sorted({r for r, a in base.cp_ns.items() if a[mb].any()}
                               | {r for r, a in cand.cp_ns.items() if a[mc].any()})
            else:
                roles = list(spec.roles)
        kinds: list[tuple[str, ...] | None] = [spec.finding_kinds]
        if metric.findings and spec.finding_kinds == ("*",):
            mb, mc = base.mask(workflows), cand.mask(workflows)
            present = sorted(
                {k for k in base.finding_kinds(spec.analyzer, spec.min_severity)
                 if base.findings_per_trace(spec.analyzer, (k,), spec.min_severity)[mb].any()}
                | {k for k in cand.finding_kinds(spec.analyzer, spec.min_severity)
                   if cand.findings_per_trace(spec.analyzer, (k,), spec.min_severity)[mc].any()})
            kinds = [(k,) for k in present] or [None]
        for role in roles:
            for k in kinds:
                out.append(_Concrete(spec, metric, label, workflows, role, k))
    return out


def _sample(c: _Concrete, side: SideMetrics) -> _Sample:
    mask = side.mask(c.workflows)
    n = int(mask.sum())
    name = c.spec.metric
    if name == "duration":
        return _Sample(n, values=side.duration_ms[mask])
    if name == "critical_path":
        assert c.role is not None
        return _Sample(n, values=side.cp_ms(c.role)[mask])
    if name == "critical_path_share":
        assert c.role is not None
        return _Sample(n, num=side.cp_ms(c.role)[mask], den=side.duration_ms[mask])
    if name == "error_rate":
        return _Sample(n, values=side.has_error[mask].astype(float))
    if name in _CALL_METRICS:
        return _Sample(n, values=side.calls_of(_CALL_METRICS[name])[mask])
    if name == "llm_tokens":
        return _Sample(n, values=side.llm_tokens[mask])
    if name == "retries":
        return _Sample(n, values=side.retries[mask])
    if name in ("cache_miss_rate", "cache_misses"):
        lookups = side.cache_lookups if side.cache_lookups is not None else side.zeros()
        misses = side.cache_misses if side.cache_misses is not None else side.finding_kind_counts("cache_miss")
        if name == "cache_misses":
            return _Sample(n, values=misses[mask])
        return _Sample(n, num=misses[mask], den=lookups[mask])
    if name == "cross_region_accesses":
        return _Sample(n, values=side.finding_kind_counts("cross_region")[mask])
    if name == "findings":
        s = c.spec
        values = side.findings_per_trace(s.analyzer, c.finding_kinds, s.min_severity)[mask]
        total = side.findings_total(s.analyzer, c.finding_kinds, s.min_severity, mask) if c.workflows is None else None
        return _Sample(n, values=values, total=total)
    raise AssertionError(f"unknown metric {name}")  # pragma: no cover - METRICS is closed


def _needed(stat: str, settings: GateSettings) -> int:
    """Traces needed per side for a conclusive ``stat``."""
    if stat == "total":
        return 1
    q = PERCENTILES.get(stat)
    if q is not None and q > 0.5:
        return max(settings.min_samples, math.ceil(settings.min_tail_samples / (1 - q) - 1e-9))
    return settings.min_samples


def _too_few(c: _Concrete, sb: _Sample | None, sc: _Sample, settings: GateSettings) -> str | None:
    need = _needed(c.spec.stat, settings)
    sides = [("candidate", sc)] if sb is None else [("baseline", sb), ("candidate", sc)]
    short = [f"{label} {s.n}" for label, s in sides if s.n < need]
    if short:
        why = f"{c.spec.stat} needs >= {need} traces per side" if need > settings.min_samples else \
            f"need >= {need} traces per side"
        return f"too few traces ({', '.join(short)}; {why})"
    if c.metric.kind == "ratio":
        empty = [label for label, s in sides if s.den is not None and float(s.den.sum()) <= 0]
        if empty and len(empty) < len(sides):
            return f"no {_denominator(c)} on the {' and '.join(empty)}"
    return None


def _denominator(c: _Concrete) -> str:
    return "cache lookups" if c.spec.metric == "cache_miss_rate" else "trace time"


def _threshold_text(c: _Concrete) -> str:
    unit = c.metric.unit
    if c.spec.kind == "budget":
        return f"<= {format_value(c.spec.max, unit)}"
    rel = c.spec.relative or 0.0
    return f"+{rel * 100:g}% and {format_value(c.spec.absolute, unit, delta=True)}"


def _result(c: _Concrete, verdict: Verdict, reason: str, settings: GateSettings, **kw: Any) -> CheckResult:
    return CheckResult(
        name=c.name, kind=c.spec.kind, workflow=c.workflow, metric=c.spec.metric, stat=c.spec.stat,
        unit=c.metric.unit, baseline=kw.pop("baseline", None), candidate=kw.pop("candidate", None),
        delta=kw.pop("delta", None), threshold=kw.pop("threshold", None), threshold_text=_threshold_text(c),
        verdict=verdict, reason=reason, role=c.role, origin=c.spec.origin, **kw,
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _budget(c: _Concrete, cand: SideMetrics, base: SideMetrics, settings: GateSettings) -> CheckResult:
    sc, sb = _sample(c, cand), _sample(c, base)
    kind = c.metric.kind
    b_val = _finite(sb.statistic(c.spec.stat, kind)) if sb.n else None
    common = {"n_baseline": sb.n, "n_candidate": sc.n, "threshold": c.spec.max, "baseline": b_val}
    short = _too_few(c, None, sc, settings)
    if short:
        return _result(c, "inconclusive", short, settings, **common)
    value = sc.statistic(c.spec.stat, kind)
    if not math.isfinite(value):
        return _result(c, "pass", f"no {_denominator(c)} in the candidate: nothing to measure", settings, **common)
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


def _seed(settings: GateSettings, c: _Concrete) -> int:
    return (settings.seed * 1_000_003 + zlib.crc32(f"{c.workflow}|{c.name}".encode())) % (2**32)


def _regression(c: _Concrete, base: SideMetrics, cand: SideMetrics, settings: GateSettings) -> dict[str, Any]:
    """Everything of one regression check except the final (family-adjusted) verdict."""
    sb, sc = _sample(c, base), _sample(c, cand)
    kind, stat = c.metric.kind, c.spec.stat
    out: dict[str, Any] = {"n_baseline": sb.n, "n_candidate": sc.n}
    short = _too_few(c, sb, sc, settings)
    b_val, c_val = sb.statistic(stat, kind), sc.statistic(stat, kind)
    out["baseline"], out["candidate"] = _finite(b_val), _finite(c_val)
    if short:
        out["inconclusive"] = short
        return out
    if not math.isfinite(b_val) and not math.isfinite(c_val):
        out["pass"] = f"no {_denominator(c)} on either side: nothing to compare"
        return out
    delta = c_val - b_val
    threshold = max((c.spec.relative or 0.0) * abs(b_val), c.spec.absolute or 0.0)
    out.update(delta=delta, threshold=threshold, practical=delta > threshold)
    result = _test(c, sb, sc, settings)
    out.update(test=result.method, p_value=result.p_value, ci=result.ci)
    if c.spec.metric == "duration":
        out["details"] = {"attribution": _attribution(c, base, cand)}
    return out


def _test(c: _Concrete, sb: _Sample, sc: _Sample, settings: GateSettings) -> stats.TestResult:
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


def _attribution(c: _Concrete, base: SideMetrics, cand: SideMetrics) -> list[dict[str, Any]]:
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


def _decide_regressions(pending: list[tuple[_Concrete, dict[str, Any]]], settings: GateSettings) -> list[CheckResult]:
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


def _regression_verdict(c: _Concrete, d: dict[str, Any], settings: GateSettings) -> tuple[Verdict, str]:
    unit = c.metric.unit
    delta, threshold, practical = d["delta"], d["threshold"], d["practical"]
    p_adj = d["p_adjusted"]
    significant = p_adj < settings.alpha
    change = _change_text(d["baseline"], delta, unit)
    limit = format_value(threshold, unit, delta=True)
    if practical and significant:
        reason = f"regression: {change} beyond {limit}, significant ({d['test']}, p_adj {_p(p_adj)})"
        top = _top_roles(d.get("details", {}).get("attribution", []))
        if top:
            reason += f"; critical path grew most in {top}"
        return "fail", reason
    if delta <= 0:
        return "pass", f"no increase ({change})"
    if practical:
        return "pass", f"{change} beyond {limit} but not significant (p_adj {_p(p_adj)} >= {settings.alpha:g})"
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


def _p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def format_value(value: float | None, unit: str, *, delta: bool = False) -> str:
    """A value with its unit for humans: ``1,234.5 ms``, ``12.3%``, ``1.25/trace``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    sign = "+" if delta and value > 0 else ""
    if unit == "ms":
        return f"{sign}{value:,.1f} ms"
    if unit == "fraction":
        return f"{sign}{value * 100:.1f}{' pp' if delta else '%'}"
    if unit == "tokens":
        return f"{sign}{value:,.0f} tokens"
    return f"{sign}{value:,.2f}"


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
            f"candidate {i.candidate_traces}/{diff.candidate_traces}, p_adj={_p(i.p_adjusted)})"
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
