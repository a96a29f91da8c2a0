"""The data of ``fabric gate --html`` and ``fabric diff --html``: both sides of the workflows that changed.

Collected while both stores are open (see :func:`fabric_trace.gate.run_gate`);
rules in docs/html-report.md ("gate and diff").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

from fabric_trace.model import ReportFilter
from fabric_trace.pictures.report_data import HtmlOptions, Waterfall, select, waterfalls, workflows

#: At most this many workflows are drawn side by side.
MAX_WORKFLOWS = 8
#: Bins of the overlaid duration histograms (equal width in ln(duration) over both sides).
BINS = 24


@dataclass
class SidePictures:
    """One side of one workflow."""

    traces: int
    p50_ns: float | None
    p95_ns: float | None
    p99_ns: float | None
    counts: list[int]
    by_role: list[dict[str, Any]]
    median: Waterfall | None


@dataclass
class WorkflowComparison:
    """One workflow (or a pooled scope), both sides, and the checks about it."""

    scope: str
    workflows: tuple[str, ...] | None
    edges_ns: list[float]
    baseline: SidePictures
    candidate: SidePictures
    checks: list[Any] = field(default_factory=list)

    @property
    def scale_ns(self) -> int:
        """The longer median trace: both waterfalls are drawn on this time scale."""
        return max((int(s.median.summary.get("duration_ns") or 0) for s in (self.baseline, self.candidate)
                    if s.median is not None), default=0)


def scope_workflows(label: str, known: set[str]) -> tuple[str, ...] | None:
    """The workflows a check's scope label means: itself, ``(all)`` = every trace, ``a+b`` = those named."""
    if label in known:
        return (label,)
    if label == "(all)" or not label:
        return None
    parts = tuple(p for p in label.split("+") if p in known)
    return parts or None


def _durations(con: duckdb.DuckDBPyConnection, wfs: tuple[str, ...] | None) -> np.ndarray:
    sql = "SELECT duration_ns FROM traces WHERE duration_ns IS NOT NULL"  # unknown extent: left out
    params: list[Any] = []
    if wfs is not None:
        sql += f" AND workflow IN ({', '.join('?' for _ in wfs)})"
        params = list(wfs)
    return np.array([r[0] for r in con.execute(sql, params).fetchall()], dtype=np.float64)


def _side(con: duckdb.DuckDBPyConnection, wfs: tuple[str, ...] | None, durations: np.ndarray,
          edges: np.ndarray) -> SidePictures:
    n = len(durations)
    counts = np.histogram(np.log(np.maximum(durations, 1)), bins=edges)[0].tolist() if n else [0] * (len(edges) - 1)
    select(con, ReportFilter(workflows=wfs or ()))
    rows = workflows(con, 2)
    by_role: dict[str, float] = {}
    for w in rows:  # a pooled scope adds its workflows' totals, then divides by all its traces
        for r in w["by_role"]:
            by_role[r["role"]] = by_role.get(r["role"], 0.0) + r["mean_all_ns"] * w["traces"]
    roles = [{"role": k, "mean_all_ns": v / n} for k, v in sorted(by_role.items(), key=lambda kv: -kv[1])] if n else []
    median = None
    if n:
        p50 = float(np.quantile(durations, 0.5))
        tid = con.execute("SELECT trace_id FROM traces JOIN _html_sel USING (trace_id) "
                          "ORDER BY abs(duration_ns - ?) NULLS LAST, trace_id LIMIT 1", [p50]).fetchone()[0]
        drawn = waterfalls(con, {tid: ["median"]}, HtmlOptions())
        median = drawn[0] if drawn else None
    con.execute("DROP TABLE IF EXISTS _html_sel")
    q = (lambda p: float(np.quantile(durations, p)) if n else None)  # noqa: E731 - linear, as quantile_cont
    return SidePictures(n, q(0.5), q(0.95), q(0.99), counts, roles, median)


def compare(base: duckdb.DuckDBPyConnection, cand: duckdb.DuckDBPyConnection, scopes: list[str]) -> list[WorkflowComparison]:
    """Both sides of each scope (a workflow name, ``(all)`` or ``a+b``), at most :data:`MAX_WORKFLOWS`."""
    known = {r[0] for r in base.execute("SELECT DISTINCT workflow FROM traces").fetchall()} | {
        r[0] for r in cand.execute("SELECT DISTINCT workflow FROM traces").fetchall()}
    out: list[WorkflowComparison] = []
    seen: set[tuple[str, ...] | None] = set()
    for label in scopes:
        wfs = scope_workflows(label, known)
        if wfs in seen or len(out) >= MAX_WORKFLOWS:
            continue
        seen.add(wfs)
        db, dc = _durations(base, wfs), _durations(cand, wfs)
        both = np.concatenate([db, dc])
        if both.size:
            lo, hi = np.log(np.maximum(both.min(), 1)), np.log(np.maximum(both.max(), 1))
        else:
            lo = hi = 0.0
        if hi <= lo:
            hi = lo + 1e-9
        edges = np.linspace(lo, hi, BINS + 1)
        out.append(WorkflowComparison(label if wfs is None or len(wfs) > 1 else wfs[0], wfs, edges.tolist(),
                                      _side(base, wfs, db, edges), _side(cand, wfs, dc, edges)))
    return out
