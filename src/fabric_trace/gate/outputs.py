"""What a gate run produces: the verdict report, JUnit XML, Markdown, GitHub annotations.

* :func:`gate_report` - the full :class:`~fabric_trace.model.Report`
  (``--format json|csv|markdown``, ``--verbose``, the ``--markdown`` file);
  its ``data`` is the JSON document of docs/ci.md ("JSON document").
* :func:`compact_report` - what ``--format table`` prints by default: the
  verdict line, one row per failed or inconclusive check with its reason,
  and the passing checks folded into a count.
* :func:`junit_xml` - the checks as JUnit XML (rendered by :mod:`fabric_trace.render.ci`).
* :func:`markdown_summary` - for ``$GITHUB_STEP_SUMMARY`` or an MR comment.
* :func:`github_annotations` - ``::error`` / ``::warning`` workflow commands (same module).
* :func:`diff_report` - the report of ``fabric diff``.

Nothing here prints; the renderers escape every string from span data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fabric_trace.gate.results import CheckResult, GateOutcome, format_value, p_text
from fabric_trace.gate.diff import StructuralDiff
from fabric_trace.gate.metrics import SideMetrics
from fabric_trace.render.formats import OutputFormat, render
from fabric_trace.model import Column, Report, Table
from fabric_trace.render import ci
from fabric_trace.render.ci import CheckCase

#: Version of the JSON document of ``fabric gate --format json``.
GATE_JSON_VERSION = 2

_VERDICT_ORDER = {"fail": 0, "inconclusive": 1, "pass": 2}


@dataclass(frozen=True)
class SideInfo:
    """What the report says about one side."""

    label: str
    source: str
    kind: str
    traces: int
    workflows: dict[str, int]
    incomplete: int

    @classmethod
    def of(cls, side: SideMetrics, kind: str) -> SideInfo:
        """Summarise a loaded side."""
        wf: dict[str, int] = {}
        for w in side.workflow.tolist():
            wf[w] = wf.get(w, 0) + 1
        return cls(side.label, side.source, kind, side.n, dict(sorted(wf.items())), side.incomplete)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"source": self.source, "kind": self.kind, "traces": self.traces, "workflows": self.workflows,
                "incomplete_traces": self.incomplete}


def _num(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def check_dict(r: CheckResult) -> dict[str, Any]:
    """One check in the JSON document."""
    return {
        "name": r.name, "kind": r.kind, "workflow": r.workflow, "metric": r.metric, "stat": r.stat,
        "role": r.role, "unit": r.unit, "baseline": _num(r.baseline), "candidate": _num(r.candidate),
        "delta": _num(r.delta), "delta_pct": _num(r.delta_pct, 4), "threshold": _num(r.threshold),
        "threshold_text": r.threshold_text, "verdict": r.verdict, "reason": r.reason, "test": r.test,
        "p_value": _num(r.p_value, 4), "p_adjusted": _num(r.p_adjusted, 4),
        "ci": [_num(r.ci[0]), _num(r.ci[1])] if r.ci else None,
        "n_baseline": r.n_baseline, "n_candidate": r.n_candidate, "origin": r.origin, "details": r.details,
    }


def summary_counts(outcome: GateOutcome) -> dict[str, int]:
    """Counts of checks by verdict."""
    rs = outcome.results
    return {"checks": len(rs), "failed": len(outcome.failed), "inconclusive": len(outcome.inconclusive),
            "passed": sum(1 for r in rs if r.verdict == "pass")}


def headline(outcome: GateOutcome) -> str:
    """One line: the verdict and the counts. An inconclusive run never reads as a pass."""
    c = summary_counts(outcome)
    if outcome.verdict == "inconclusive":
        return (f"fabric gate: INCONCLUSIVE ({c['inconclusive']} of {c['checks']} checks could not decide; "
                f"{c['failed']} failed, {c['passed']} passed; exit 0 unless fail_on_inconclusive)")
    return f"fabric gate: {outcome.verdict.upper()} ({c['failed']} failed, {c['inconclusive']} inconclusive, " \
           f"{c['passed']} passed of {c['checks']} checks)"


def _notes(outcome: GateOutcome, base: SideInfo, cand: SideInfo, tested: int) -> list[str]:
    s = outcome.settings
    notes: list[str] = []
    if outcome.inconclusive:
        consequence = ("they FAIL the gate (fail_on_inconclusive = true)" if s.fail_on_inconclusive
                       else "they do NOT fail the gate; set [gate] fail_on_inconclusive = true to make them fail")
        notes.append(f"WARNING: {len(outcome.inconclusive)} check(s) INCONCLUSIVE (not enough data to decide): "
                     f"{consequence}")
    for side in (base, cand):
        wf = ", ".join(f"{k} {v}" for k, v in side.workflows.items())
        inc = f"; {side.incomplete} incomplete" if side.incomplete else ""
        notes.append(f"{side.label}: {side.source} ({side.traces} traces: {wf}{inc})")
    notes.append(
        f"a regression fails only when beyond its threshold AND significant at alpha {s.alpha:g} "
        f"({_correction_text(s.correction, tested)}; "
        f"exact tests on small samples); fewer than {s.min_samples} traces per side is inconclusive")
    notes.extend(outcome.notes)
    return notes


def _correction_text(correction: str, tested: int) -> str:
    """How the family's p-values were adjusted, as the verdict's note says it (docs/ci.md, weighted family)."""
    if correction == "none":
        return f"not adjusted; {tested} regression test(s) could reach significance"
    return (f"{correction}-adjusted across the {tested} regression test(s) that could reach significance, "
            "weighted: end-to-end latency holds half of alpha")


def _ordered(outcome: GateOutcome) -> list[CheckResult]:
    indexed = list(enumerate(outcome.results))
    indexed.sort(key=lambda p: (_VERDICT_ORDER[p[1].verdict], p[0]))
    return [r for _, r in indexed]


def _p_cell(p: float | None) -> str | None:
    return None if p is None else p_text(p)


def _value_cell(r: CheckResult, value: float | None, *, delta: bool = False) -> str | None:
    if r.kind == "structure":
        return None if value is None else f"{value:g}"
    if value is None:
        return None
    return format_value(value, r.unit, delta=delta)


def gate_report(outcome: GateOutcome, base: SideInfo, cand: SideInfo, diff: StructuralDiff | None,
                exit_code: int) -> Report:
    """The verdict report (table for humans, ``data`` for ``--format json``)."""
    rows = []
    for r in _ordered(outcome):
        delta = _value_cell(r, r.delta, delta=True)
        if delta is not None and r.delta_pct is not None and r.kind != "structure":
            delta += f" ({r.delta_pct:+.1f}%)"
        rows.append({
            "verdict": r.verdict.upper(), "check": r.name, "workflow": r.workflow,
            "baseline": _value_cell(r, r.baseline), "candidate": _value_cell(r, r.candidate),
            "delta": delta, "threshold": r.threshold_text, "p_adjusted": _p_cell(r.p_adjusted), "reason": r.reason,
        })
    columns = [
        Column("verdict", "Verdict"), Column("check", "Check"), Column("workflow", "Workflow"),
        Column("baseline", "Baseline"), Column("candidate", "Candidate"), Column("delta", "Delta"),
        Column("threshold", "Threshold"), Column("p_adjusted", "p (adj)"), Column("reason", "Reason"),
    ]
    tested = sum(1 for r in outcome.results if r.kind == "regression" and r.p_adjusted is not None)
    s = outcome.settings
    data = {
        "version": GATE_JSON_VERSION,
        "verdict": outcome.verdict,
        "exit_code": exit_code,
        "summary": summary_counts(outcome),
        "settings": {
            "alpha": s.alpha, "correction": s.correction, "min_samples": s.min_samples,
            "min_tail_samples": s.min_tail_samples, "bootstrap_resamples": s.bootstrap_resamples, "seed": s.seed,
            "fail_on_inconclusive": s.fail_on_inconclusive, "structure_fail_on": list(s.structure.fail_on),
            "regression_tests": tested,
        },
        "baseline": base.as_dict(),
        "candidate": cand.as_dict(),
        "checks": [check_dict(r) for r in outcome.results],
        "structure": [i.as_dict() for i in diff.changes()] if diff is not None else [],
        "notes": list(outcome.notes),
    }
    notes = _notes(outcome, base, cand, tested)
    return Report(headline(outcome), [Table("checks", "Checks", columns, rows)], data, notes)


def compact_report(full: Report) -> Report:
    """The default terminal view of :func:`gate_report`: failed and inconclusive checks only, one row each
    (check, workflow, observed delta, reason); the passing checks folded into a count."""
    (table,) = full.tables
    rows = [{k: r[k] for k in ("verdict", "check", "workflow", "delta", "reason")}
            for r in table.rows if r["verdict"] != "PASS"]
    passed = len(table.rows) - len(rows)
    columns = [c for c in table.columns if c.key in ("verdict", "check", "workflow", "delta", "reason")]
    tables = [Table("checks", "Failed and inconclusive checks", columns, rows)] if rows else []
    folded = f"{passed} passing check(s) not listed (--verbose lists every check; --format json, --junit and " \
             "--markdown always carry the full table)"
    return Report(full.title, tables, full.data, [folded, *full.notes])


def markdown_summary(report: Report) -> str:
    """The report as Markdown (for ``$GITHUB_STEP_SUMMARY`` or a merge-request comment)."""
    return render(report, OutputFormat.markdown)


# -- JUnit and GitHub annotations (rendered by fabric_trace.render.ci) ------------------------------

def _case_body(r: CheckResult) -> str:
    lines = [
        f"check: {r.name}", f"workflow: {r.workflow}", f"verdict: {r.verdict}",
        f"baseline: {_value_cell(r, r.baseline) or 'n/a'} (n={r.n_baseline})",
        f"candidate: {_value_cell(r, r.candidate) or 'n/a'} (n={r.n_candidate})",
        f"delta: {_value_cell(r, r.delta, delta=True) or 'n/a'}", f"threshold: {r.threshold_text}",
    ]
    if r.test:
        lines.append(f"test: {r.test}, p={r.p_value:.3g}, adjusted p={r.p_adjusted:.3g}"
                     if r.p_value is not None and r.p_adjusted is not None else f"test: {r.test}")
    lines.append(f"reason: {r.reason}")
    return "\n".join(lines)


def _cases(results: list[CheckResult]) -> list[CheckCase]:
    return [CheckCase(r.name, r.workflow, r.verdict, r.kind, r.reason, _case_body(r)) for r in results]


def junit_xml(outcome: GateOutcome) -> str:
    """The results as JUnit XML (:func:`fabric_trace.render.ci.junit_xml`)."""
    return ci.junit_xml(_cases(outcome.results), fail_on_inconclusive=outcome.settings.fail_on_inconclusive)


def github_annotations(outcome: GateOutcome) -> list[str]:
    """``::error`` lines for failed checks, ``::warning`` for inconclusive ones (:mod:`fabric_trace.render.ci`)."""
    return ci.github_annotations(_cases(_ordered(outcome)), fail_on_inconclusive=outcome.settings.fail_on_inconclusive)


# -- fabric diff ------------------------------------------------------------------------------------

def diff_report(diff: StructuralDiff, base: SideInfo, cand: SideInfo, alpha: float) -> Report:
    """The report of ``fabric diff``: changed edges, calls per trace, finding kinds."""
    edge_rows, finding_rows = [], []
    for item in diff.changes():
        if item.section == "calls":
            continue
        row = {
            "section": item.section, "item": item.label, "change": item.change,
            "baseline_traces": item.baseline_traces, "candidate_traces": item.candidate_traces,
            "baseline_count": item.baseline_count, "candidate_count": item.candidate_count,
            "p_adjusted": _p_cell(item.p_adjusted), "significant": item.significant, "severity": item.severity,
        }
        (finding_rows if item.section == "findings" else edge_rows).append(row)
    call_rows = [{
        "workflow": i.workflow, "role": i.role, "baseline": i.baseline_per_trace, "candidate": i.candidate_per_trace,
        "delta": i.candidate_per_trace - i.baseline_per_trace, "change": i.change,
        "p_adjusted": _p_cell(i.p_adjusted), "significant": i.significant,
    } for i in diff.items if i.section == "calls" and (i.baseline_count or i.candidate_count)]
    counts = [Column("baseline_traces", "Baseline traces", "int"), Column("candidate_traces", "Candidate traces", "int"),
              Column("baseline_count", "Baseline count", "int"), Column("candidate_count", "Candidate count", "int"),
              Column("p_adjusted", "p (adj)"), Column("significant", "Significant", "bool")]
    tables = [
        Table("edges", "Edges that appear or disappear",
              [Column("section", "Kind"), Column("item", "Edge"), Column("change", "Change"), *counts], edge_rows),
        Table("calls", "Calls per trace",
              [Column("workflow", "Workflow"), Column("role", "Role"), Column("baseline", "Baseline", "float"), Column("candidate", "Candidate", "float"),
               Column("delta", "Delta", "float"), Column("change", "Change"), Column("p_adjusted", "p (adj)"),
               Column("significant", "Significant", "bool")], call_rows),
        Table("findings", "Finding kinds on one side only",
              [Column("item", "Analyzer:kind"), Column("severity", "Max severity"), Column("change", "Change"),
               *counts], finding_rows),
    ]
    significant = [i for i in diff.items if i.significant]
    changed = len(diff.changes())
    title = f"fabric diff: {len(significant)} significant of {changed} structural change(s)"
    notes = [f"{s.label}: {s.source} ({s.traces} traces)" for s in (base, cand)]
    notes.append(f"significant = beyond the practical threshold and Holm-adjusted p < {alpha:g} "
                 "(Fisher's exact test on the share of traces; Mann-Whitney U for calls per trace)")
    notes.extend(diff.notes)
    data = {
        "version": GATE_JSON_VERSION,
        "baseline": base.as_dict(),
        "candidate": cand.as_dict(),
        "alpha": alpha,
        "changes": changed,
        "significant_changes": len(significant),
        "items": [i.as_dict() for i in diff.items],
        "notes": list(diff.notes),
    }
    return Report(title, tables, data, notes)
