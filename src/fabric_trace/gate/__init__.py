"""``fabric gate`` and ``fabric diff``: compare a candidate run with a baseline run.

:func:`run_gate` opens both sides (:mod:`.inputs`), reads per-trace samples
(:mod:`.metrics`), builds the structural diff (:mod:`.diff`), evaluates the
budgets and regression checks of the ``[gate]`` config (:mod:`.budgets`,
:mod:`.checks`, :mod:`.stats`) and returns a :class:`GateRun` whose report the
CLI renders (:mod:`.outputs`). Nothing here prints or exits. The guide is
docs/ci.md; the config reference docs/config.md (``[gate]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fabric_trace.config import Config, load_config
from fabric_trace.errors import ExitCode
from fabric_trace.gate.budgets import GateSettings, parse_gate_section
from fabric_trace.gate.checks import GateOutcome, evaluate
from fabric_trace.gate.diff import StructuralDiff, edge_counts, structural_diff
from fabric_trace.gate.inputs import Side, Sides
from fabric_trace.gate.metrics import SideMetrics, load_side
from fabric_trace.gate.outputs import SideInfo, diff_report, gate_report
from fabric_trace.model import Report
from fabric_trace.store.db import DEFAULT_LOCK_TIMEOUT

__all__ = ["GateRun", "gate_settings", "run_diff", "run_gate"]


@dataclass
class GateRun:
    """The result of one ``fabric gate``."""

    outcome: GateOutcome
    diff: StructuralDiff
    baseline: SideInfo
    candidate: SideInfo
    report: Report
    exit_code: int
    """0 (pass) or 1 (a check failed, or was inconclusive with ``fail_on_inconclusive``)."""


def gate_settings(config: Config, **overrides: Any) -> GateSettings:
    """The ``[gate]`` settings of ``config``, with CLI overrides (``None`` values are ignored)."""
    where = f"{config.path}: [gate]" if config.path else "[gate]"
    settings = parse_gate_section(config.section("gate"), where)
    changes = {k: v for k, v in overrides.items() if v is not None}
    return settings.with_(**changes) if changes else settings


def _load(side: Side) -> tuple[SideMetrics, dict[tuple[str, str], tuple[int, int]]]:
    return load_side(side.con, side.label, side.source), edge_counts(side.con)


def _compare(baseline: list[str], candidate: list[str], config: Config, settings: GateSettings,
             config_path: str | None, lock_timeout: float) -> tuple[SideMetrics, SideMetrics, Side, Side,
                                                                    StructuralDiff]:
    with Sides(baseline, candidate, config, config_path=config_path, lock_timeout=lock_timeout) as (b, c):
        base, base_edges = _load(b)
        cand, cand_edges = _load(c)
        diff = structural_diff(base, cand, base_edges, cand_edges, alpha=settings.alpha,
                               correction=settings.correction)
    return base, cand, b, c, diff


def run_gate(baseline: list[str], candidate: list[str], *, config_path: str | None = None,
             lock_timeout: float = DEFAULT_LOCK_TIMEOUT, **overrides: Any) -> GateRun:
    """Compare ``candidate`` with ``baseline`` under the ``[gate]`` settings (plus ``overrides``)."""
    config = load_config(config_path)
    settings = gate_settings(config, **overrides)
    base, cand, b, c, diff = _compare(baseline, candidate, config, settings, config_path, lock_timeout)
    outcome = evaluate(settings, base, cand, diff)
    exit_code = int(ExitCode.CHECK_FAILED if outcome.verdict == "fail" else ExitCode.OK)
    bi, ci = SideInfo.of(base, b.kind), SideInfo.of(cand, c.kind)
    report = gate_report(outcome, bi, ci, diff, exit_code)
    return GateRun(outcome, diff, bi, ci, report, exit_code)


def run_diff(baseline: list[str], candidate: list[str], *, config_path: str | None = None,
             lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> Report:
    """The structural diff of two sides, as a report."""
    config = load_config(config_path)
    settings = gate_settings(config)
    base, cand, b, c, diff = _compare(baseline, candidate, config, settings, config_path, lock_timeout)
    return diff_report(diff, SideInfo.of(base, b.kind), SideInfo.of(cand, c.kind), settings.alpha)
