"""Tree positions for the trust rules: depth-first enter/exit numbers, vectorised.

The trust rules ask "does span P come before span T in the same trace, as an
ancestor of T or inside an earlier sibling subtree of T or of one of T's
ancestors?". With children ordered by start time (then end time), that is exactly "P comes
before T in depth-first pre-order", so every such question becomes a
comparison of two integers once each span has its pre-order ``enter`` number
and its ``exit`` number (the position after its whole subtree):

* P is an ancestor of T      <=> enter(P) < enter(T) and exit(T) < exit(P);
* P's subtree is finished before T starts (an earlier sibling subtree)
                             <=> exit(P) < enter(T).

The numbers come from an Euler tour of the forest, ranked by pointer
doubling (list ranking): ``O(n log L)`` numpy work for the longest tour L,
with no recursion and no per-span Python, so a 100k-deep chain costs ~18
passes over the arrays. Parent cycles are cut first, by the graph's one policy
(:func:`fabric_trace.graph.arrays.cycle_cuts`: at the earliest-starting span of
the cycle, which becomes a root; the other spans keep their parents). Cycle members
that start together are told apart by the visiting order (end time, then a hash
of the span id) where the graph takes the smallest span id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fabric_trace.graph.arrays import cycle_cuts, jumps

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


def _tour_successors(parent: I64, group: I64, start: I64 | None, tie: I64 | None) -> I64:
    """Successor of each tour event: enter(v) = 2v, exit(v) = 2v+1, end = 2n.

    Siblings (same parent; roots: same ``group``) are visited by (start, tie),
    or in row order when ``start`` is None (rows already sorted that way).
    """
    n = len(parent)
    end = 2 * n
    rows = np.arange(n, dtype=np.int64)
    key = np.where(parent >= 0, parent, n + group)
    if start is None or tie is None:
        order = np.argsort(key, kind="stable")
    else:
        order = np.lexsort((tie, start, key))
    k = key[order]
    same = k[1:] == k[:-1]
    next_sib = np.full(n, -1, dtype=np.int64)
    next_sib[order[:-1][same]] = order[1:][same]
    first = order[np.concatenate(([True], ~same))] if n else order
    first_child = np.full(n, -1, dtype=np.int64)
    has_parent = parent[first] >= 0
    first_child[parent[first][has_parent]] = first[has_parent]
    succ = np.empty(2 * n + 1, dtype=np.int64)
    succ[0:end:2] = np.where(first_child >= 0, 2 * first_child, 2 * rows + 1)
    succ[1:end:2] = np.where(next_sib >= 0, 2 * next_sib, np.where(parent >= 0, 2 * parent + 1, end))
    succ[end] = end
    return succ


def _list_rank(succ: I64) -> I64:
    """Distance from every element to the end of its list (the last element of ``succ``).

    Wyllie's pointer jumping. While most elements are still moving, whole-array
    passes are cheaper than gathering the active ones (the end element has rank
    0 and points to itself, so it absorbs finished elements harmlessly).
    """
    end = len(succ) - 1
    dtype = np.int32 if len(succ) < 2**31 else np.int64
    succ = succ.astype(dtype)
    rank = np.ones(len(succ), dtype=dtype)
    rank[end] = 0
    while True:
        moving = succ != end
        count = int(np.count_nonzero(moving))
        if count == 0:
            break
        if count * 2 > len(succ):
            rank = rank + rank[succ]
            succ = succ[succ]
        else:
            active = np.flatnonzero(moving)
            nxt = succ[active]
            rank[active] += rank[nxt]
            succ[active] = succ[nxt]
    return rank.astype(np.int64)


def tree_positions(
    parent: I64, trace_no: I64, ident: Bool, is_tool: Bool, same_service: Bool,
    start: I64 | None = None, tie: I64 | None = None,
) -> TreePositions:
    """Compute :class:`TreePositions`.

    ``parent`` is the row of the parent (-1 for a root or a missing parent),
    ``trace_no`` a dense trace number (0..T-1) and ``same_service`` whether
    the parent runs in the same service. Siblings are visited by (``start``,
    ``tie``); without them the rows must already be in visiting order (for
    example sorted by trace, start time, span id), which is faster.
    """
    n = len(parent)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return TreePositions(empty, empty, empty, np.zeros(0, dtype=bool), empty)
    jt = jumps(parent)
    if jt.cyclic.any():  # the graph's cycle policy: cut at the earliest-starting span of each cycle
        visit = np.arange(n, dtype=np.int64)  # rank in visiting order (start, tie)
        if start is not None:
            visit[np.lexsort((visit if tie is None else tie, start))] = np.arange(n, dtype=np.int64)
        cut = cycle_cuts(parent, visit, jt.cyclic)
        parent = parent.copy()
        parent[cut] = -1
        jt = jumps(parent)
    rank = _list_rank(_tour_successors(parent, trace_no, start, tie))
    # Tour positions from the start of each trace's tour (its first root's enter event,
    # the event farthest from the end).
    rank_enter, rank_exit = rank[0 : 2 * n : 2], rank[1 : 2 * n : 2]
    n_traces = int(trace_no.max()) + 1
    first = np.zeros(n_traces, dtype=np.int64)
    np.maximum.at(first, trace_no, rank_enter)
    enter = first[trace_no] - rank_enter
    exit_ = first[trace_no] - rank_exit
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
