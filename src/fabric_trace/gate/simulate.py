"""Gate runs on generated workloads: how the defaults were measured (bench/bench_gate_power.py, tests).

:func:`generated_side` writes one run of the fixture generator with the same
number of traces in every workflow (each workflow is generated on its own,
from its own seed, and the traces written to one OTLP JSON file), ingests it
with the real pipeline and loads it as the gate does. :func:`gate_sides`
evaluates the ``[gate]`` checks and the structural diff on two loaded runs,
exactly as ``fabric gate`` does after opening its inputs.

For many comparisons (bench/bench_gate_power.py), :func:`generated_side` with
``keep_edges`` loads one large run once and :func:`sample_side` draws runs
from it: ``n`` traces of each workflow, at random, as another run of the same
workload would have them (a :meth:`SideMetrics.subset` and the edge counts of
those traces).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from fabric_trace.fixtures_gen import Scenario, generate, write_otlp_jsonl
from fabric_trace.fixtures_gen.scenario import WORKFLOWS
from fabric_trace.gate.budgets import parse_gate_section
from fabric_trace.gate.checks import GateOutcome, evaluate
from fabric_trace.gate.diff import TraceEdges, structural_diff, trace_edges
from fabric_trace.gate.metrics import SideMetrics, load_side

__all__ = ["LoadedSide", "gate_sides", "generated_side", "sample_side"]


@dataclass
class LoadedSide:
    """One generated, ingested and loaded run."""

    metrics: SideMetrics
    edges: dict[tuple[str, str], tuple[int, int]]
    db: str
    """The fabric database it was ingested into."""
    per_trace_edges: TraceEdges | None = None
    """The edges per trace (``keep_edges``), to draw runs from this one with :func:`sample_side`."""


def generated_side(root: str | Path, name: str, per_workflow: int, seed: int,
                   workflows: tuple[str, ...] = WORKFLOWS, keep_edges: bool = False, **knobs: Any) -> LoadedSide:
    """Generate ``per_workflow`` traces of each workflow (``knobs``: :class:`Scenario` fields), ingest, load."""
    from fabric_trace.service import run_ingest

    root = Path(root)
    traces, db = root / f"{name}.jsonl", root / f"{name}.duckdb"
    with open(traces, "w", encoding="utf-8"):
        pass
    for i, workflow in enumerate(workflows):
        scenario = Scenario(traces=per_workflow, seed=seed * 101 + i, workflows=(workflow,), **knobs)
        part = root / f"{name}.{i}.jsonl"
        write_otlp_jsonl(generate(scenario), part)
        with open(traces, "a", encoding="utf-8") as out:
            out.write(part.read_text(encoding="utf-8"))
        part.unlink()
    run_ingest(str(db), [str(traces)])
    traces.unlink()
    con = duckdb.connect(str(db))
    try:
        edges = trace_edges(con)
        return LoadedSide(load_side(con, "side", str(db)), edges.counts(), str(db), edges if keep_edges else None)
    finally:
        con.close()


def sample_side(pool: LoadedSide, per_workflow: int, rng: np.random.Generator,
                exclude: np.ndarray | None = None) -> tuple[LoadedSide, np.ndarray]:
    """``per_workflow`` random traces of each workflow of ``pool`` (not among the ``exclude`` mask) as one
    run; returns it and the mask of the traces taken."""
    assert pool.per_trace_edges is not None, "load the pool with keep_edges=True"
    m = pool.metrics
    taken = np.zeros(m.n, dtype=bool)
    for workflow in m.workflows():
        candidates = np.flatnonzero((m.workflow == workflow) & ~(exclude if exclude is not None else taken))
        taken[rng.choice(candidates, size=min(per_workflow, len(candidates)), replace=False)] = True
    side = LoadedSide(m.subset(taken), pool.per_trace_edges.counts(taken), pool.db)
    return side, taken


def gate_sides(base: LoadedSide, cand: LoadedSide, section: Mapping[str, Any] | None = None) -> GateOutcome:
    """The gate's checks on two loaded runs (``section``: a ``[gate]`` table; default: the defaults)."""
    settings = parse_gate_section(dict(section or {}))
    b, c = base.metrics, cand.metrics
    b.label, c.label = "baseline", "candidate"
    diff = structural_diff(b, c, base.edges, cand.edges, alpha=settings.alpha, correction=settings.correction)
    return evaluate(settings, b, c, diff)
