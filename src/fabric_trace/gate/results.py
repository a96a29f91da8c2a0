"""The outcome of a gate run: one :class:`CheckResult` per check, and the :class:`GateOutcome`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from fabric_trace.gate.budgets import GateSettings

Verdict = Literal["pass", "fail", "inconclusive"]


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
    def verdict(self) -> Literal["pass", "fail", "inconclusive"]:
        """``fail`` when a check failed (or was inconclusive, with ``fail_on_inconclusive``); else
        ``inconclusive`` when a check could not decide (the gate exits 0 but did not pass); else ``pass``."""
        if self.failed or (self.settings.fail_on_inconclusive and self.inconclusive):
            return "fail"
        return "inconclusive" if self.inconclusive else "pass"


def p_text(p: float | None) -> str:
    """A p-value for humans (``0.012``, ``3.4e-07``)."""
    if p is None:
        return "n/a"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def format_value(value: float | None, unit: str, *, delta: bool = False) -> str:
    """A value with its unit for humans: ``1,234.5 ms``, ``12.3%`` (``+2.0 pp`` as a delta), ``1.25``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    sign = "+" if delta and value > 0 else ""
    if unit == "ms":
        return f"{sign}{value:,.1f} ms"
    if unit == "fraction":
        return f"{sign}{value * 100:.1f}{' pp' if delta else '%'}"
    if unit == "tokens":
        return f"{sign}{value:,.0f} tokens"
    if unit == "USD":
        return f"{sign}{value:,.4f} USD"
    return f"{sign}{value:,.2f}"


