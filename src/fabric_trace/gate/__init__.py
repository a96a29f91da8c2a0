"""``fabric gate`` and ``fabric diff``: compare a candidate run with a baseline run.

:func:`run_gate` opens both sides (:mod:`.inputs`), reads per-trace samples
(:mod:`.metrics`), builds the structural diff (:mod:`.diff`), evaluates the
budgets and regression checks of the ``[gate]`` config (:mod:`.budgets`,
:mod:`.checks`, :mod:`.stats`) and returns a :class:`GateRun` whose report the
CLI renders (:mod:`.outputs`). Nothing here prints or exits. The guide is
docs/ci.md; the config reference docs/config.md (``[gate]``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fabric_trace.config import Config, load_config
from fabric_trace.errors import ExitCode
from fabric_trace.gate.budgets import GateSettings, parse_gate_section
from fabric_trace.gate.checks import GateOutcome, evaluate
from fabric_trace.gate.diff import StructuralDiff, edge_counts, structural_diff
from fabric_trace.gate.inputs import Side, Sides
from fabric_trace.gate.metrics import SideMetrics, load_side
from fabric_trace.gate.results import format_value
from fabric_trace.gate.outputs import SideInfo, diff_report, gate_report
from fabric_trace.model import Report
from fabric_trace.store.db import DEFAULT_LOCK_TIMEOUT

__all__ = ["GateRun", "gate_settings", "run_diff", "run_diff_pictures", "run_gate"]


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
    html: str | None = None
    """The side-by-side HTML page (``run_gate(..., html=True)``), else None."""


def gate_settings(config: Config, **overrides: Any) -> GateSettings:
    """The ``[gate]`` settings of ``config``, with CLI overrides (``None`` values are ignored)."""
    where = f"{config.path}: [gate]" if config.path else "[gate]"
    settings = parse_gate_section(config.section("gate"), where)
    changes = {k: v for k, v in overrides.items() if v is not None}
    return settings.with_(**changes) if changes else settings


def _load(side: Side) -> tuple[SideMetrics, dict[tuple[str, str], tuple[int, int]]]:
    return load_side(side.con, side.label, side.source), edge_counts(side.con)


def _compare(baseline: list[str], candidate: list[str], config: Config, settings: GateSettings,
             config_path: str | None, lock_timeout: float,
             inside: Callable[[Side, Side, SideMetrics, SideMetrics, StructuralDiff], Any] | None = None,
             ) -> tuple[SideMetrics, SideMetrics, Side, Side, StructuralDiff, Any]:
    """Load both sides and diff them; ``inside`` runs while both stores are still open."""
    with Sides(baseline, candidate, config, config_path=config_path, lock_timeout=lock_timeout) as (b, c):
        base, base_edges = _load(b)
        cand, cand_edges = _load(c)
        diff = structural_diff(base, cand, base_edges, cand_edges, alpha=settings.alpha,
                               correction=settings.correction)
        extra = inside(b, c, base, cand, diff) if inside is not None else None
    return base, cand, b, c, diff, extra


def run_gate(baseline: list[str], candidate: list[str], *, config_path: str | None = None,
             lock_timeout: float = DEFAULT_LOCK_TIMEOUT, html: bool = False, **overrides: Any) -> GateRun:
    """Compare ``candidate`` with ``baseline`` under the ``[gate]`` settings (plus ``overrides``).

    With ``html``, the side-by-side page of the failed checks is built while both stores are open.
    """
    config = load_config(config_path)
    settings = gate_settings(config, **overrides)

    def inside(b: Side, c: Side, base: SideMetrics, cand: SideMetrics, diff: StructuralDiff) -> Any:
        outcome = evaluate(settings, base, cand, diff)
        pictures = None
        if html:
            from fabric_trace.pictures.compare_data import compare

            scopes = [r.workflow for r in outcome.results if r.verdict != "pass"]
            pictures = compare(b.con, c.con, scopes)
        return outcome, pictures

    base, cand, b, c, diff, (outcome, pictures) = _compare(baseline, candidate, config, settings, config_path,
                                                           lock_timeout, inside)
    exit_code = int(ExitCode.CHECK_FAILED if outcome.verdict == "fail" else ExitCode.OK)
    bi, ci = SideInfo.of(base, b.kind), SideInfo.of(cand, c.kind)
    report = gate_report(outcome, bi, ci, diff, exit_code)
    page = None
    if html:
        from fabric_trace.gate.outputs import headline
        from fabric_trace.render.html import render_comparison

        page = render_comparison(title="fabric gate", verdict=outcome.verdict, headline=headline(outcome),
                                 baseline=bi, candidate=ci, comparisons=pictures, checks=outcome.results,
                                 changes=diff.changes(), format_value=format_value)
    return GateRun(outcome, diff, bi, ci, report, exit_code, page)


def run_diff(baseline: list[str], candidate: list[str], *, config_path: str | None = None,
             lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> Report:
    """The structural diff of two sides, as a report."""
    return run_diff_pictures(baseline, candidate, config_path=config_path, lock_timeout=lock_timeout,
                             html=False)[0]


def run_diff_pictures(baseline: list[str], candidate: list[str], *, config_path: str | None = None,
                      lock_timeout: float = DEFAULT_LOCK_TIMEOUT, html: bool = True) -> tuple[Report, str | None]:
    """The structural diff as a report, and (``html``) its side-by-side page: every workflow
    whose calls per trace changed significantly, else every workflow of either side."""
    config = load_config(config_path)
    settings = gate_settings(config)

    def inside(b: Side, c: Side, base: SideMetrics, cand: SideMetrics, diff: StructuralDiff) -> Any:
        if not html:
            return None
        from fabric_trace.pictures.compare_data import compare

        changed = [i.workflow for i in diff.items if i.section == "calls" and i.significant and i.workflow]
        scopes = changed or sorted(set(base.workflows()) | set(cand.workflows()))
        return compare(b.con, c.con, scopes)

    base, cand, b, c, diff, pictures = _compare(baseline, candidate, config, settings, config_path, lock_timeout,
                                                inside)
    bi, ci = SideInfo.of(base, b.kind), SideInfo.of(cand, c.kind)
    report = diff_report(diff, bi, ci, settings.alpha)
    page = None
    if html:
        from fabric_trace.render.html import render_comparison

        page = render_comparison(title="fabric diff", verdict=None, headline=report.title, baseline=bi,
                                 candidate=ci, comparisons=pictures, checks=None, changes=diff.changes(),
                                 format_value=format_value)
    return report, page
