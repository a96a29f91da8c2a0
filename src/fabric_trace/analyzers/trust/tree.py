"""Tree positions for the trust rules, on the graph's span-tree index (:mod:`fabric_trace.graph.tree`).

The trust rules ask "does span P come before span T in the same trace, as an
ancestor of T or inside an earlier sibling subtree of T or of one of T's
ancestors?". With children ordered by start time (then end time), that is exactly "P comes
before T in depth-first pre-order", so every such question becomes a
comparison of two integers once each span has its pre-order ``enter`` number
and its ``exit`` number (the position after its whole subtree):

* P is an ancestor of T      <=> enter(P) < enter(T) and exit(T) < exit(P);
* P's subtree is finished before T starts (an earlier sibling subtree)
                             <=> exit(P) < enter(T).

The parents, the cycle policy and the tour are the graph module's
(:func:`fabric_trace.graph.tree.parent_rows`, :func:`~fabric_trace.graph.arrays.cycle_cuts`:
a parent cycle is cut at its earliest-starting span, ties to the smallest span id, which
becomes a root; :func:`~fabric_trace.graph.tree.tour_positions`): the trust rules see the
tree the latency analyzer repairs. This module adds the trust flags along it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fabric_trace.graph.arrays import cycle_cuts, jumps
from fabric_trace.graph.tree import tour_positions

I64 = NDArray[np.int64]
Bool = NDArray[np.bool_]


@dataclass(frozen=True)
class TreePositions:
    """Per span (same row order as the input)."""

    enter: I64
    """Pre-order position in its trace's tour (0 for the first root)."""
    exit: I64
    """Tour position after its subtree (always > ``enter``)."""
    depth: I64
    """Edges from its root (after cutting cycles)."""
    ident_up: Bool
    """The span or an ancestor in the same service run carries end-user identity."""
    tool_ancestor: I64
    """Row of the nearest strict ancestor that is a tool execution, -1 if none."""


def tree_positions(
    parent: I64, trace_no: I64, ident: Bool, is_tool: Bool, same_service: Bool,
    start: I64, id_rank: I64,
) -> TreePositions:
    """Compute :class:`TreePositions`.

    ``parent`` is the row of the parent (-1 for a root or a missing parent; from
    :func:`fabric_trace.graph.tree.parent_rows`), ``trace_no`` a dense trace number (0..T-1),
    ``same_service`` whether the parent runs in the same service, ``start`` the start times
    and ``id_rank`` the rank of the span ids (the cycle policy's tie-break). The rows must be
    in visiting order (for example sorted by trace, start time, end time): siblings are
    visited in row order.
    """
    n = len(parent)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return TreePositions(empty, empty, empty, np.zeros(0, dtype=bool), empty)
    jt = jumps(parent)
    if jt.cyclic.any():  # the graph's cycle policy: cut at the earliest-starting span of each cycle
        cut = cycle_cuts(parent, start, jt.cyclic, tie=id_rank)
        parent = parent.copy()
        parent[cut] = -1
        jt = jumps(parent)
    enter, exit_ = tour_positions(parent, trace_no)
    n_traces = int(trace_no.max()) + 1
    depth = jt.depth
    has_parent = parent >= 0
    safe_parent = np.where(has_parent, parent, 0)
    # identity in the same service run: the nearest identity-carrying ancestor-or-self
    # is at least as deep as the top of the run
    run_top = ~has_parent | ~same_service
    near_ident = jt.path_max(np.where(ident, depth, -1))
    near_top = jt.path_max(np.where(run_top, depth, -1))
    ident_up = near_ident >= near_top
    # nearest strict tool ancestor: enter numbers grow along every ancestor chain, so the
    # deepest tool among the parent's ancestors-or-self has the largest enter number
    tool_enter = jt.path_max(np.where(is_tool, enter, -1))
    anc_enter = np.where(has_parent, tool_enter[safe_parent], -1)
    sizes = np.bincount(trace_no, minlength=n_traces)
    offset = (2 * (np.cumsum(sizes) - sizes))[trace_no]  # tour slots of the traces before
    row_at = np.full(2 * n, -1, dtype=np.int64)
    row_at[offset + enter] = np.arange(n, dtype=np.int64)
    tool_ancestor = np.where(anc_enter >= 0, row_at[offset + np.maximum(anc_enter, 0)], -1)
    return TreePositions(enter, exit_, depth, ident_up, tool_ancestor)
