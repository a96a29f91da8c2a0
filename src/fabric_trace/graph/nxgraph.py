"""A networkx view of one repaired trace, for structural analyses.

The graph is a copy: analyses may read it freely and never change the spans.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import networkx as nx

from fabric_trace.graph.reference import SpanLike
from fabric_trace.graph.repair import is_async_edge, repair_trace


def build_graph(spans: Iterable[SpanLike], *, max_clock_skew_ns: int | None = None) -> nx.DiGraph:
    """Build a ``DiGraph`` of one trace after the repairs of docs/critical-path.md.

    * nodes: span ids, carrying every :class:`~fabric_trace.graph.model.Span`
      field (``start_ns``/``end_ns`` after repairs, ``raw_start_ns``/``raw_end_ns``
      as recorded) plus ``depth`` and ``root_span_id``;
    * parent -> child edges with ``kind='call'``, or ``kind='async'`` for a
      PRODUCER parent and CONSUMER child; orphans and cut cycle members are roots;
    * link edges, linked span -> linking span, ``kind='async'`` and
      ``link=True``, for links to spans of the same trace (a parent edge
      between the same two spans wins);
    * graph attributes ``trace_id``, ``main_root`` and ``repairs``.
    """
    rt = repair_trace(spans, max_clock_skew_ns=max_clock_skew_ns)
    g = nx.DiGraph(trace_id=rt.trace_id, main_root=rt.main_root, repairs=tuple(rt.repairs))
    for sid, span in rt.spans.items():
        attrs = dataclasses.asdict(span)
        attrs.update(raw_start_ns=span.start_ns, raw_end_ns=span.end_ns, start_ns=rt.start[sid],
                     end_ns=rt.end[sid], depth=rt.depth[sid], root_span_id=rt.root_of[sid])
        g.add_node(sid, **attrs)
    for sid, p in rt.parent.items():
        if p is not None:
            kind = "async" if is_async_edge(rt.spans[p], rt.spans[sid]) else "call"
            g.add_edge(p, sid, kind=kind, link=False)
    for sid, span in rt.spans.items():
        for trace_id, linked in span.links:
            if trace_id in ("", rt.trace_id) and linked in rt.spans and linked != sid \
                    and not g.has_edge(linked, sid):
                g.add_edge(linked, sid, kind="async", link=True)
    return g


__all__ = ["build_graph"]
