"""Call-graph algorithms: repairs, critical path, self time (docs/critical-path.md).

* :func:`analyze_trace`, :func:`critical_path`, :func:`self_times`: the pure-Python
  reference on one trace;
* :func:`compute_trace_metrics`, :func:`iter_trace_metrics`, :func:`metrics_from_arrow`:
  the fast batch implementation over a whole DuckDB store or an Arrow table;
* :func:`build_graph`: a networkx view for structural analyses;
* :mod:`fabric_trace.graph.tree`: the one span-tree index (parents from ids, the cycle
  policy, depth-first tour positions) the call graph and the trust rules share.
"""

from __future__ import annotations

from fabric_trace.graph.batch import (
    compute_trace_metrics,
    concat_batches,
    iter_trace_metrics,
    metrics_from_arrow,
)
from fabric_trace.graph.kernel import MetricsBatch
from fabric_trace.graph.model import (
    REPAIR_KINDS,
    Repair,
    Segment,
    Span,
    SpanMetrics,
    TraceAnalysis,
    TraceFacts,
)
from fabric_trace.graph.nxgraph import build_graph
from fabric_trace.graph.reference import analyze_trace, critical_path, self_times

__all__ = [
    "REPAIR_KINDS",
    "MetricsBatch",
    "Repair",
    "Segment",
    "Span",
    "SpanMetrics",
    "TraceAnalysis",
    "TraceFacts",
    "analyze_trace",
    "build_graph",
    "compute_trace_metrics",
    "concat_batches",
    "critical_path",
    "iter_trace_metrics",
    "metrics_from_arrow",
    "self_times",
]
