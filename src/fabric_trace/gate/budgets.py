"""The ``[gate]`` config section: settings, absolute budgets, regression checks.

Parsed once into a frozen :class:`GateSettings`; every bad value raises
:class:`~fabric_trace.errors.ConfigError` naming the key. The reference is
docs/config.md (``## [gate]``); the metric vocabulary is :func:`metric_defs`
(the gate's own :data:`CORE_METRICS` and every metric the analyzer registry declares).

Without a ``[gate]`` section (or with ``defaults = true``, the default) the
gate runs the checks of :func:`default_table` (one table, each row with the
reason it is there, documented in docs/ci.md "Default checks") and fails on
the structural changes of :data:`DEFAULT_STRUCTURE_FAIL_ON`. A configured
check with the same identity (kind, metric, statistic, role, finding filter,
scope) replaces the default one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from fabric_trace.errors import ConfigError

MetricKind = Literal["sample", "proportion", "ratio"]
CheckKind = Literal["budget", "regression"]

#: Severities, lowest first (the ``findings.severity`` values).
SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")

#: Percentile statistics and their quantile.
PERCENTILES: dict[str, float] = {"p50": 0.50, "p75": 0.75, "p90": 0.90, "p95": 0.95, "p99": 0.99}

#: ``stat = "tail"``: the highest of these percentiles that both sides' traces support
#: (``min_tail_samples`` traces above it), chosen per workflow; none supported -> the check is skipped.
TAIL_PERCENTILES: tuple[str, ...] = ("p95", "p90", "p75")

#: Roles whose steps are guardrails: a removed ``X -> policy`` edge is a ``guardrail_removed`` change.
GUARDRAIL_ROLES: tuple[str, ...] = ("policy",)

#: Structural change categories the gate can fail on (see :mod:`fabric_trace.gate.diff`).
STRUCTURE_CATEGORIES: tuple[str, ...] = (
    "role_added", "role_removed", "service_added", "service_removed", "peer_added", "peer_removed",
    "region_added", "region_removed", "calls_increased", "calls_decreased", "trust_crossing_added",
    "finding_kind_added", "guardrail_removed", "host_added",
)
DEFAULT_STRUCTURE_FAIL_ON: tuple[str, ...] = (
    "guardrail_removed", "peer_added", "region_added", "trust_crossing_added", "finding_kind_added",
)


@dataclass(frozen=True)
class MetricDef:
    """One metric of the vocabulary."""

    name: str
    kind: MetricKind
    """``sample``: one value per trace; ``proportion``: a yes/no per trace; ``ratio``: sum(num)/sum(den) over traces."""
    unit: str
    """``ms``, ``fraction`` (0-1), ``count`` (per trace) or ``tokens`` (per trace)."""
    default_stat: str
    relative: float
    """Default relative threshold of a regression check (0.10 = +10 %)."""
    absolute: float
    """Default absolute floor of a regression check, in :attr:`unit`."""
    needs_role: bool = False
    findings: bool = False
    source: str = "latency"
    """Which analyzer's tables it needs (its registry name; ``findings``: the findings of any)."""
    description: str = ""
    sql: str | None = None
    """For a metric an analyzer declares (:class:`~fabric_trace.analyzers.contract.GateMetric`): its query
    (``trace_id, value`` or ``trace_id, num, den``); ``None`` for the gate's own metrics."""
    denominator: str = "trace time"
    """What the ``den`` of a ratio counts (said when a side has none)."""

    @property
    def stats(self) -> tuple[str, ...]:
        """Statistics allowed for this metric."""
        if self.kind == "sample":
            base = ("mean", *PERCENTILES, "tail", "max")
            return (*base, "total") if self.unit in ("count", "tokens", "USD") else base
        return ("rate",)


#: The gate's own metrics: the trace model every store has (``traces``, ``critical_path``, span roles and
#: ``findings``), with a role or a finding filter as parameter. Every other metric is declared by an
#: analyzer's registry entry (:func:`metric_defs`).
CORE_METRICS: dict[str, MetricDef] = {m.name: m for m in (
    MetricDef("duration", "sample", "ms", "p95", 0.10, 20.0,
              description="end-to-end trace duration (root span)"),
    MetricDef("critical_path", "sample", "ms", "mean", 0.10, 20.0, needs_role=True,
              description="critical-path time of one role per trace"),
    MetricDef("critical_path_share", "ratio", "fraction", "rate", 0.10, 0.05, needs_role=True,
              description="share of end-to-end time on the critical path spent in one role"),
    MetricDef("error_rate", "proportion", "fraction", "rate", 0.10, 0.02,
              description="share of traces with an error span"),
    MetricDef("llm_calls", "sample", "count", "mean", 0.10, 0.5, source="llm",
              description="model calls per trace, each once across instrumentation layers (llm_calls view)"),
    MetricDef("llm_tokens", "sample", "tokens", "mean", 0.10, 500.0, source="llm",
              description="input + output tokens of the model calls per trace (llm_calls view)"),
    MetricDef("retrieval_calls", "sample", "count", "mean", 0.10, 0.5, description="retrieval calls per trace"),
    MetricDef("tool_calls", "sample", "count", "mean", 0.10, 0.5, description="tool executions per trace"),
    MetricDef("retries", "sample", "count", "mean", 0.10, 0.1,
              description="retried operations per trace (a sibling of the same name failed just before)"),
    MetricDef("findings", "sample", "count", "mean", 0.10, 0.02, findings=True, source="findings",
              description="findings per trace (filter: analyzer, kind, min_severity)"),
)}


def registry_metrics() -> list[tuple[MetricDef, str | None]]:
    """The metrics the registered analyzers declare, in registry order, each with the reason it is a
    default check (``None``: not a default). A name the gate already has is not replaced."""
    from fabric_trace.analyzers import registry

    out: list[tuple[MetricDef, str | None]] = []
    seen = set(CORE_METRICS)
    for analyzer in registry().values():
        for m in analyzer.metrics:
            if m.name in seen:
                continue
            seen.add(m.name)
            out.append((MetricDef(m.name, m.kind, m.unit, m.default_stat, m.relative, m.absolute,
                                  source=analyzer.name, description=m.description, sql=m.sql,
                                  denominator=m.denominator), m.default))
    return out


def metric_defs() -> dict[str, MetricDef]:
    """The metric vocabulary: the gate's own metrics, then every metric the analyzer registry declares."""
    return {**CORE_METRICS, **{m.name: m for m, _ in registry_metrics()}}


def __getattr__(name: str) -> Any:
    # METRICS and DEFAULT_CHECKS follow the registry: computed when read
    if name == "METRICS":
        return metric_defs()
    if name == "DEFAULT_CHECKS":
        return default_table()
    raise AttributeError(name)



@dataclass(frozen=True)
class CheckSpec:
    """One configured (or default) check, before it is expanded over workflows, roles and kinds."""

    kind: CheckKind
    metric: str
    stat: str
    workflows: tuple[str, ...] | None = None
    """Workflows to check; ``None`` = every workflow present."""
    pooled: bool = False
    """One check over the selected traces together instead of one per workflow."""
    stratify: bool = False
    """With ``pooled``: compare within each workflow and combine (a stratified test; the statistic is the
    workflows' values weighted by their share of both runs' traces), so the workflow mix does not count."""
    roles: tuple[str, ...] | None = None
    """For role metrics: the roles; ``("*",)`` = every role on the critical path."""
    analyzer: str | None = None
    finding_kinds: tuple[str, ...] | None = None
    """For ``findings``: kinds to count; ``("*",)`` = one check per kind seen; ``None`` = all kinds together."""
    min_severity: str | None = None
    max: float | None = None
    """Budget: the largest allowed value (unit of the metric)."""
    relative: float | None = None
    """Regression: relative threshold (0.10 = +10 %)."""
    absolute: float | None = None
    """Regression: absolute floor (unit of the metric)."""
    test: str = "auto"
    origin: str = "default"
    """``default`` or ``gate.budget[i]`` / ``gate.regression[i]``."""

    def identity(self) -> tuple[Any, ...]:
        """What makes two specs "the same check" (a configured one replaces a default one)."""
        return (self.kind, self.metric, self.stat, self.workflows, self.pooled, self.stratify, self.roles,
                self.analyzer, self.finding_kinds, self.min_severity)


@dataclass(frozen=True)
class StructureSettings:
    """``[gate.structure]``: which structural changes fail the gate."""

    fail_on: tuple[str, ...] = DEFAULT_STRUCTURE_FAIL_ON
    min_traces: int = 1
    """A change counts only when the side that has it shows it in at least this many traces."""
    finding_min_severity: str = "high"
    """``finding_kind_added`` counts only kinds of at least this severity."""


@dataclass(frozen=True)
class GateSettings:
    """The parsed ``[gate]`` section."""

    alpha: float = 0.01
    correction: str = "holm"
    min_samples: int = 5
    """Traces per side and scope below which a check is inconclusive whatever the data shows."""
    min_tail_samples: int = 8
    """A percentile ``pXX`` needs this many traces above it on each side (``n x (1 - XX/100)``)."""
    bootstrap_resamples: int = 2000
    seed: int = 0
    fail_on_inconclusive: bool = False
    defaults: bool = True
    checks: tuple[CheckSpec, ...] = ()
    structure: StructureSettings = field(default_factory=StructureSettings)

    def with_(self, **changes: Any) -> GateSettings:
        """A copy with some settings changed (CLI overrides)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class DefaultCheck:
    """One row of the default-check table: the check, and why a team wants it on day one."""

    spec: CheckSpec
    why: str


def _default(metric: MetricDef, stat: str, why: str, **kw: Any) -> DefaultCheck:
    return DefaultCheck(CheckSpec("regression", metric.name, stat, relative=metric.relative,
                                  absolute=metric.absolute, **kw), why)


_BY_WORKFLOW = "the same over all workflows, each compared with itself"


def default_table() -> tuple[DefaultCheck, ...]:
    """The default checks (each per workflow unless pooled), in evaluation order: the gate's own, then the
    default checks the registered analyzers declare (``GateMetric.default``), then the trust findings.
    docs/ci.md "Default checks" lists them."""
    m = CORE_METRICS
    head = (
        _default(m["duration"], "p50", "what a typical user waits for, end to end"),
        _default(m["duration"], "p50", "all workflows at once, each compared with itself: decides a small run "
                                       "whose workflows have too few traces each; a new workflow mix is no "
                                       "regression", pooled=True, stratify=True),
        _default(m["duration"], "tail", "the slow requests users complain about: p95 from 160 traces per side, "
                                        "p90 from 80, p75 from 32 (min_tail_samples above it); skipped below"),
        _default(m["critical_path"], "mean", "where the time went: a slower step on the critical path, by role",
                 roles=("*",)),
        _default(m["critical_path"], "mean", f"{_BY_WORKFLOW}: decides a step that too few traces of one "
                                             "workflow show", roles=("*",), pooled=True, stratify=True),
        _default(m["error_rate"], "rate", "more traces with a failed step"),
        _default(m["llm_calls"], "mean", "extra LLM loops or retries cost money and time"),
        _default(m["llm_calls"], "mean", _BY_WORKFLOW, pooled=True, stratify=True),
        _default(m["llm_tokens"], "mean", "a longer prompt or answer is a cost regression"),
        _default(m["llm_tokens"], "mean", _BY_WORKFLOW, pooled=True, stratify=True),
    )
    declared = tuple(_default(metric, metric.default_stat, why) for metric, why in registry_metrics() if why)
    tail = (
        _default(m["findings"], "mean", "every trust finding kind of severity medium or more, per trace: a rise "
                                        "means more unguarded or exposed steps", analyzer="trust",
                 finding_kinds=("*",), min_severity="medium"),
        _default(m["findings"], "mean", f"{_BY_WORKFLOW}: decides a kind that too few traces of one workflow "
                                        "show", analyzer="trust", finding_kinds=("*",), min_severity="medium",
                 pooled=True, stratify=True),
    )
    return head + declared + tail


def default_checks() -> tuple[CheckSpec, ...]:
    """The checks that run when the config defines none (:func:`default_table`)."""
    return tuple(d.spec for d in default_table())


_TOP_KEYS = {"alpha", "correction", "min_samples", "min_tail_samples", "bootstrap_resamples", "seed",
             "fail_on_inconclusive", "defaults", "budget", "regression", "structure"}
_COMMON_CHECK_KEYS = {"metric", "stat", "workflow", "pooled", "role", "analyzer", "kind", "min_severity"}
_BUDGET_KEYS = _COMMON_CHECK_KEYS | {"max"}
_REGRESSION_KEYS = _COMMON_CHECK_KEYS | {"relative", "absolute", "test", "stratify"}
_STRUCTURE_KEYS = {"fail_on", "min_traces", "finding_min_severity"}


def parse_gate_section(section: Mapping[str, Any], where: str = "[gate]") -> GateSettings:
    """Validate and parse the ``[gate]`` section (a dict from the TOML file)."""
    _unknown(section, _TOP_KEYS, where)
    alpha = _number(section, "alpha", 0.01, where)
    if not 0.0 < alpha < 0.5:
        raise ConfigError(f"{where} alpha must be between 0 and 0.5, got {alpha}")
    correction = section.get("correction", "holm")
    if correction not in ("holm", "bonferroni", "none"):
        raise ConfigError(f"{where} correction must be holm, bonferroni or none, got {correction!r}")
    settings = GateSettings(
        alpha=alpha,
        correction=correction,
        min_samples=_integer(section, "min_samples", GateSettings.min_samples, where, minimum=2),
        min_tail_samples=_integer(section, "min_tail_samples", GateSettings.min_tail_samples, where, minimum=1),
        bootstrap_resamples=_integer(section, "bootstrap_resamples", 2000, where, minimum=200),
        seed=_integer(section, "seed", 0, where, minimum=0),
        fail_on_inconclusive=_boolean(section, "fail_on_inconclusive", False, where),
        defaults=_boolean(section, "defaults", True, where),
        structure=_structure(section.get("structure", {}), f"{where[:-1]}.structure]"),
    )
    configured: list[CheckSpec] = []
    for key, kind in (("budget", "budget"), ("regression", "regression")):
        entries = section.get(key, [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ConfigError(f"{where} {key} must be an array of tables ([[gate.{key}]])")
        configured.extend(_check(e, kind, f"gate.{key}[{i}]") for i, e in enumerate(entries))
    return replace(settings, checks=merge_checks(default_checks() if settings.defaults else (), configured))


def merge_checks(defaults: tuple[CheckSpec, ...], configured: list[CheckSpec]) -> tuple[CheckSpec, ...]:
    """Defaults first, each replaced by a configured check of the same identity; then the other configured ones."""
    by_id = {c.identity(): c for c in configured}
    out = [by_id.pop(d.identity(), d) for d in defaults]
    out.extend(c for c in configured if c.identity() in by_id)
    return tuple(out)


def _check(entry: Mapping[str, Any], kind: CheckKind, where: str) -> CheckSpec:
    _unknown(entry, _BUDGET_KEYS if kind == "budget" else _REGRESSION_KEYS, where)
    name = entry.get("metric")
    vocabulary = metric_defs()
    if name not in vocabulary:
        raise ConfigError(f"{where}: unknown or missing metric {name!r}",
                          hint=f"metrics: {', '.join(vocabulary)}")
    metric = vocabulary[name]
    stat = entry.get("stat", metric.default_stat)
    if stat not in metric.stats or (kind == "regression" and stat in ("max", "total")):
        allowed = [s for s in metric.stats if kind == "budget" or s not in ("max", "total")]
        raise ConfigError(f"{where}: stat {stat!r} is not valid for metric {name}",
                          hint=f"use one of: {', '.join(allowed)}")
    roles = _names(entry, "role", where)
    if metric.needs_role and roles is None:
        raise ConfigError(f"{where}: metric {name} needs a role (a role name, a list, or \"*\" for every role)")
    if roles is not None and not metric.needs_role:
        raise ConfigError(f"{where}: metric {name} takes no role")
    finding_keys = [k for k in ("analyzer", "kind", "min_severity") if k in entry]
    if finding_keys and not metric.findings:
        raise ConfigError(f"{where}: {', '.join(finding_keys)} only apply to metric findings")
    severity = entry.get("min_severity")
    if severity is not None and severity not in SEVERITIES:
        raise ConfigError(f"{where}: min_severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    analyzer = entry.get("analyzer")
    if analyzer is not None and not isinstance(analyzer, str):
        raise ConfigError(f"{where}: analyzer must be a string")
    spec = CheckSpec(
        kind=kind, metric=name, stat=stat, workflows=_names(entry, "workflow", where, star_is_none=True),
        pooled=_boolean(entry, "pooled", False, where), roles=roles, analyzer=analyzer,
        finding_kinds=_names(entry, "kind", where), min_severity=severity, origin=where,
    )
    if kind == "budget":
        if "max" not in entry:
            raise ConfigError(f"{where}: a budget needs max")
        limit = _number(entry, "max", 0.0, where)
        if limit < 0:
            raise ConfigError(f"{where}: max must be >= 0")
        if metric.unit == "fraction" and limit > 1:
            raise ConfigError(f"{where}: max of {name} is a fraction between 0 and 1, got {limit}",
                              hint="write 0.3 for 30 %")
        return replace(spec, max=limit)
    stratify = _boolean(entry, "stratify", False, where)
    if stratify and not (spec.pooled and metric.kind == "sample" and stat in ("mean", "p50")
                         and entry.get("test", "auto") in ("auto", "mannwhitney")):
        raise ConfigError(f"{where}: stratify needs pooled = true, a per-trace metric and stat mean or p50 "
                          "(a rank test within each workflow)")
    spec = replace(spec, stratify=stratify)
    relative = _number(entry, "relative", metric.relative, where)
    absolute = _number(entry, "absolute", metric.absolute, where)
    if relative < 0 or absolute < 0:
        raise ConfigError(f"{where}: relative and absolute must be >= 0")
    if relative == 0 and absolute == 0:
        raise ConfigError(f"{where}: relative and absolute cannot both be 0 (any noise would count as a regression)")
    test = entry.get("test", "auto")
    valid_tests = ("auto", "mannwhitney", "exceedance", "bootstrap") if metric.kind == "sample" else ("auto",)
    if test not in valid_tests:
        raise ConfigError(f"{where}: test must be one of {', '.join(valid_tests)}, got {test!r}")
    return replace(spec, relative=relative, absolute=absolute, test=test)


def _structure(section: Any, where: str) -> StructureSettings:
    if not isinstance(section, dict):
        raise ConfigError(f"{where} must be a table")
    _unknown(section, _STRUCTURE_KEYS, where)
    fail_on = section.get("fail_on", list(DEFAULT_STRUCTURE_FAIL_ON))
    if not isinstance(fail_on, list) or any(c not in STRUCTURE_CATEGORIES for c in fail_on):
        raise ConfigError(f"{where} fail_on must be a list of: {', '.join(STRUCTURE_CATEGORIES)}")
    severity = section.get("finding_min_severity", "high")
    if severity not in SEVERITIES:
        raise ConfigError(f"{where} finding_min_severity must be one of {', '.join(SEVERITIES)}")
    return StructureSettings(tuple(fail_on), _integer(section, "min_traces", 1, where, minimum=1), severity)


def _unknown(entry: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}", hint=f"known: {', '.join(sorted(allowed))}")


def _number(entry: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: {key} must be a number, got {value!r}")
    return float(value)


def _integer(entry: Mapping[str, Any], key: str, default: int, where: str, *, minimum: int) -> int:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: {key} must be an integer >= {minimum}, got {value!r}")
    return value


def _boolean(entry: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    value = entry.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
    return value


def _names(entry: Mapping[str, Any], key: str, where: str, *, star_is_none: bool = False) -> tuple[str, ...] | None:
    if key not in entry:
        return None
    value = entry[key]
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"{where}: {key} must be a name or a non-empty list of names")
    if star_is_none and "*" in names:
        return None
    if "*" in names:
        return ("*",)
    return tuple(dict.fromkeys(names))
