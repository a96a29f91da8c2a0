"""Binding a check spec to data: scopes, roles, finding kinds, and each side's sample.

A :class:`~fabric_trace.gate.budgets.CheckSpec` expands into one
:class:`Concrete` check per workflow (or one pooled), per role (``role = "*"``)
and per finding kind (``kind = "*"``); ``stat = "tail"`` becomes the highest
percentile of :data:`~fabric_trace.gate.budgets.TAIL_PERCENTILES` the scope's
traces support. :func:`sample_of` extracts the values of
one side for it; :func:`too_few` says when there are not enough to decide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fabric_trace.gate import stats
from fabric_trace.gate.budgets import PERCENTILES, TAIL_PERCENTILES, CheckSpec, GateSettings, MetricDef, metric_defs
from fabric_trace.gate.metrics import SideMetrics

#: Scope label of a check over every trace.
ALL = "(all)"

#: Metric -> role whose calls it counts.
_CALL_METRICS = {"retrieval_calls": "retrieval", "tool_calls": "tool"}


@dataclass(frozen=True)
class Concrete:
    """A spec bound to one scope, role and finding-kind set."""

    spec: CheckSpec
    metric: MetricDef
    workflow: str
    workflows: tuple[str, ...] | None
    role: str | None
    finding_kinds: tuple[str, ...] | None
    stat: str
    """The statistic compared (``spec.stat``, with ``tail`` resolved to a percentile)."""

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
        return f"{m} {self.stat}" + (" by workflow" if self.spec.stratify else "")


@dataclass
class Sample:
    """The data of one side for one concrete check."""

    n: int
    values: np.ndarray | None = None
    num: np.ndarray | None = None
    den: np.ndarray | None = None
    total: float | None = None
    strata: np.ndarray | None = None
    """The workflow of each trace (for stratified checks)."""

    def stratum(self, workflow: str) -> np.ndarray:
        """The values of one workflow's traces."""
        assert self.values is not None and self.strata is not None
        return self.values[self.strata == workflow]

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


def missing_source(spec: CheckSpec, base: SideMetrics, cand: SideMetrics) -> str | None:
    metric = metric_defs()[spec.metric]
    needed = metric.source if metric.source not in ("latency", "findings") else None
    if metric.findings and spec.analyzer is not None and spec.analyzer != "latency":
        needed = spec.analyzer
    if needed is None:
        return None
    sides = [s.label for s in (base, cand) if needed not in s.capabilities]
    if sides:
        return f"the {needed} analyzer's tables are missing on the {' and '.join(sides)}"
    return None


def scopes(spec: CheckSpec, base: SideMetrics, cand: SideMetrics) -> list[tuple[str, tuple[str, ...] | None]]:
    if spec.pooled:
        return [(ALL if spec.workflows is None else "+".join(spec.workflows), spec.workflows)]
    names = spec.workflows if spec.workflows is not None else sorted(set(base.workflows()) | set(cand.workflows()))
    return [(w, (w,)) for w in names]


def tail_stat(n: int, settings: GateSettings) -> str | None:
    """The highest tail percentile that ``n`` traces per side support (``None``: none)."""
    return next((s for s in TAIL_PERCENTILES if n >= needed(s, settings)), None)


def expand(spec: CheckSpec, base: SideMetrics, cand: SideMetrics,
           settings: GateSettings) -> tuple[list[Concrete], list[str]]:
    """The concrete checks of ``spec``, and notes about scopes it skips (a tail the sample cannot support)."""
    metric = metric_defs()[spec.metric]
    out: list[Concrete] = []
    notes: list[str] = []
    for label, workflows in scopes(spec, base, cand):
        stat = spec.stat
        if stat == "tail":
            n = min(int(base.mask(workflows).sum()), int(cand.mask(workflows).sum()))
            resolved = tail_stat(n, settings)
            if resolved is None:
                need = needed(TAIL_PERCENTILES[-1], settings)
                notes.append(f"{spec.metric} tail not checked for {label}: a tail percentile needs >= {need} "
                             f"traces per side ({TAIL_PERCENTILES[-1]}), the smaller side has {n}")
                continue
            stat = resolved
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
                out.append(Concrete(spec, metric, label, workflows, role, k, stat))
    return out, notes


def sample_of(c: Concrete, side: SideMetrics) -> Sample:
    mask = side.mask(c.workflows)
    if c.spec.metric in ("duration", "critical_path_share"):  # a trace of unknown extent (NaN) has no duration
        mask = mask & ~np.isnan(side.duration_ms)
    sample = _sample_of(c, side, mask)
    sample.strata = side.workflow[mask]
    return sample


def _sample_of(c: Concrete, side: SideMetrics, mask: np.ndarray) -> Sample:
    name = c.spec.metric
    n = int(mask.sum())
    if name == "duration":
        return Sample(n, values=side.duration_ms[mask])
    if name == "critical_path":
        assert c.role is not None
        return Sample(n, values=side.cp_ms(c.role)[mask])
    if name == "critical_path_share":
        assert c.role is not None
        return Sample(n, num=side.cp_ms(c.role)[mask], den=side.duration_ms[mask])
    if name == "error_rate":
        return Sample(n, values=side.has_error[mask].astype(float))
    if name in _CALL_METRICS:
        return Sample(n, values=side.calls_of(_CALL_METRICS[name])[mask])
    if name == "llm_calls":  # the llm analyzer's llm_calls: each model call once across layers
        return Sample(n, values=(side.llm_calls if side.llm_calls is not None else side.zeros())[mask])
    if name == "llm_tokens":
        return Sample(n, values=side.llm_tokens[mask])
    if name == "retries":
        return Sample(n, values=side.retries[mask])
    if c.metric.sql is not None:  # declared by an analyzer's registry entry
        values, den = side.declared.get(name, (side.zeros(), side.zeros() if c.metric.kind == "ratio" else None))
        if den is not None:
            return Sample(n, num=values[mask], den=den[mask])
        return Sample(n, values=values[mask])
    if name == "findings":
        s = c.spec
        values = side.findings_per_trace(s.analyzer, c.finding_kinds, s.min_severity)[mask]
        total = side.findings_total(s.analyzer, c.finding_kinds, s.min_severity, mask) if c.workflows is None else None
        return Sample(n, values=values, total=total)
    raise AssertionError(f"unknown metric {name}")  # pragma: no cover - CORE_METRICS is closed


def needed(stat: str, settings: GateSettings) -> int:
    """Traces needed per side for a conclusive ``stat``."""
    if stat == "total":
        return 1
    q = PERCENTILES.get(stat)
    if q is not None and q > 0.5:
        return max(settings.min_samples, math.ceil(settings.min_tail_samples / (1 - q) - 1e-9))
    return settings.min_samples


def too_few(c: Concrete, sb: Sample | None, sc: Sample, settings: GateSettings) -> str | None:
    need = needed(c.stat, settings)
    sides = [("candidate", sc)] if sb is None else [("baseline", sb), ("candidate", sc)]
    short = [f"{label} {s.n}" for label, s in sides if s.n < need]
    if short:
        why = f"{c.stat} needs >= {need} traces per side" if need > settings.min_samples else \
            f"need >= {need} traces per side"
        return f"too few traces ({', '.join(short)}; {why})"
    if c.metric.kind == "ratio":
        empty = [label for label, s in sides if s.den is not None and float(s.den.sum()) <= 0]
        if empty and len(empty) < len(sides):
            return f"no {denominator(c)} on the {' and '.join(empty)}"
    return None


def denominator(c: Concrete) -> str:
    return c.metric.denominator


