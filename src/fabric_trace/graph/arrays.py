"""Vectorised building blocks over span arrays (numpy, no recursion, no per-span Python).

A bucket of spans is a set of arrays sorted by (trace, span id); ``parent`` holds
the row index of the parent in the same bucket, -1 for none. Path aggregates
(depth, root, clipped windows, "every ancestor is on the critical path") use
pointer doubling: ``O(n log depth)`` whatever the shape, so a 100k-deep chain
costs 17 passes over the arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

I64 = NDArray[np.int64]
Bool = NDArray[np.bool_]


@dataclass(frozen=True)
class Jumps:
    """Pointer-doubling tables of a forest.

    ``tables[k][i]`` is the 2**k-th ancestor of ``i`` (roots point to
    themselves); the last table maps every node to its root.
    """

    tables: tuple[I64, ...]
    """Jump tables, finest first."""
    depth: I64
    """Edges from the root."""
    cyclic: Bool
    """Nodes that never reach a root (in a parent cycle or below one)."""

    @property
    def root(self) -> I64:
        """Row of every node's root."""
        return self.tables[-1]

    def path_max(self, x: I64) -> I64:
        """Max of ``x`` over every node and its ancestors."""
        out = np.maximum(x, x[self.tables[0]])
        for q in self.tables[:-1]:
            out = np.maximum(out, out[q])
        return out

    def path_min(self, x: I64) -> I64:
        """Min of ``x`` over every node and its ancestors."""
        out = np.minimum(x, x[self.tables[0]])
        for q in self.tables[:-1]:
            out = np.minimum(out, out[q])
        return out

    def path_any(self, x: Bool) -> Bool:
        """Whether ``x`` holds for the node or any ancestor."""
        out = x | x[self.tables[0]]
        for q in self.tables[:-1]:
            out = out | out[q]
        return out


def jumps(parent: I64) -> Jumps:
    """Build the doubling tables of ``parent`` (-1 = root)."""
    n = len(parent)
    q = np.where(parent < 0, np.arange(n, dtype=np.int64), parent)
    depth = (parent >= 0).astype(np.int64)
    tables = [q]
    for _ in range(max(n, 1).bit_length() + 1):
        qq = q[q]
        if np.array_equal(qq, q):
            break
        depth = depth + depth[q]
        q = qq
        tables.append(q)
    cyclic = parent[q] >= 0 if n else np.zeros(0, dtype=bool)
    return Jumps(tuple(tables), depth, cyclic)


def cycle_cuts(parent: I64, start: I64, cyclic: Bool | None = None, tie: I64 | None = None) -> I64:
    """The one cycle policy of every span tree (the graph's repairs, the trust rules): the rows
    whose parent edge is cut, one per parent cycle, at its earliest-starting span (ties: the
    smallest span id, docs/critical-path.md: ``tie``, the rank of the span id, or the smallest
    row when the rows are sorted by span id within a trace).

    ``cyclic`` (from :func:`jumps`) marks the nodes that never reach a root; spans hanging
    below a cycle keep their parents. An iterative walk with colours (no recursion).
    """
    if cyclic is None:
        cyclic = jumps(parent).cyclic
    colour = dict.fromkeys(np.flatnonzero(cyclic).tolist(), 0)
    cuts: list[int] = []
    for v0 in sorted(colour):
        path, v = [], v0
        while v in colour and colour[v] == 0:
            colour[v] = 1
            path.append(v)
            v = int(parent[v])
        if v in colour and colour[v] == 1:
            cycle = path[path.index(v):]
            cuts.append(min(cycle, key=lambda c: (int(start[c]), c if tie is None else int(tie[c]))))
        for u in path:
            colour[u] = 2
    return np.array(sorted(cuts), dtype=np.int64)


def order_by(*keys: I64) -> I64:
    """Stable sort order by several int64 keys, most significant first (like
    ``np.lexsort(keys[::-1])``, which is ~10x slower).

    Each key is shifted to start at 0, or replaced by its rank when its range
    is much wider than its length; if the product of the key ranges fits in
    62 bits the keys are packed into one int64 and sorted once.
    """
    parts: list[tuple[I64, int]] = []
    total = 1
    for k in keys:
        if len(k) == 0:
            return np.zeros(0, dtype=np.int64)
        lo, hi = int(k.min()), int(k.max())
        width = hi - lo + 1
        if width > 4 * len(k):
            uniq, inv = np.unique(k, return_inverse=True)
            parts.append((inv.astype(np.int64), len(uniq)))
            total *= len(uniq)
        else:
            parts.append((k - lo, width))
            total *= width
    if total >= 1 << 62:
        return np.lexsort(tuple(reversed(keys)))
    packed = np.zeros(len(keys[0]), dtype=np.int64)
    for k, width in parts:
        packed = packed * width + k
    return np.argsort(packed, kind="stable")


def group_starts(keys: I64) -> I64:
    """Start offsets of the runs of equal values in sorted ``keys``."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1]))).astype(np.int64)


def _packable(group: I64, *times: I64) -> tuple[tuple[I64, ...], int, I64 | None]:
    """Make ``group * width + time`` fit in an int64 for non-negative ``times``.

    Times relative to a parent are usually small; when they are not, they are
    replaced by their exact joint ranks (order and equality are kept) and the
    sorted distinct values are returned to map ranks back to times.
    """
    width = max(int(t.max()) for t in times) + 1
    if (int(group.max()) + 1) * width < 1 << 62:
        return times, width, None
    values, inv = np.unique(np.concatenate(times), return_inverse=True)
    bounds = np.cumsum([len(t) for t in times])[:-1]
    return tuple(np.split(inv.astype(np.int64), bounds)), len(values), values


def union_length(group: I64, lo: I64, hi: I64, base: I64, n_groups: int) -> I64:
    """Per group, the length of the union of intervals [lo, hi) (all base <= lo < hi).

    Sort by (group, lo) and take a running max of hi: an interval adds what
    sticks out beyond the furthest end seen so far in its group. Packing the
    group into the high part of the key lets one global running max restart
    at every group.
    """
    out = np.zeros(n_groups, dtype=np.int64)
    if len(group) == 0:
        return out
    (rlo, rhi), width, values = _packable(group, lo - base, hi - base)
    order = np.argsort(group * width + rlo)  # any order of equal keys will do
    g, rlo, rhi = group[order], rlo[order], rhi[order]
    floor = g * width
    reach = np.maximum.accumulate(floor + rhi)
    prev = np.concatenate(([-1], reach[:-1]))
    prev = np.where(prev >= floor, prev - floor, rlo)  # furthest end so far in the group
    a, b = np.maximum(rlo, prev), rhi
    if values is not None:
        a, b = values[a], values[b]
    np.add.at(out, g, np.maximum(b - a, 0))
    return out


def chain_predecessor(group: I64, ws: I64, we: I64, base: I64, order_key: I64) -> tuple[I64, I64]:
    """For sibling windows, the child the critical-path walk visits next.

    Siblings share ``group`` (their parent, whose window starts at ``base``).
    Returns ``(order, pred)``: ``order`` sorts the siblings by (group, end)
    with, among equal ends, the earliest start and then the smallest key last;
    ``pred[k]`` is the position (in that order) of the last sibling ending at
    or before the start of the sibling at position ``k`` (-1 if none): where
    the walk goes after returning from ``k``.
    """
    if len(group) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    (rs, re_), width, _ = _packable(group, ws - base, we - base)
    key_end = group * width + re_
    order = np.argsort(key_end)  # equal ends are put in order just below
    key_end = key_end[order]
    tie = np.flatnonzero(key_end[1:] == key_end[:-1])
    if len(tie):  # only the last of equal ends can be chosen: put the winner there
        pos = np.union1d(tie, tie + 1)
        sub = order[pos]
        order[pos] = sub[np.lexsort((-order_key[sub], -ws[sub], key_end[pos]))]
    pred = np.searchsorted(key_end, group[order] * width + rs[order], side="right") - 1
    g = group[order]
    pred[(pred < 0) | (g[np.maximum(pred, 0)] != g)] = -1
    return order, pred


def packed_order(group: I64, time: I64) -> I64:
    """Order by (group, time) for non-negative ``time`` (one int64 sort; equal
    keys come in no particular order)."""
    if len(group) == 0:
        return np.zeros(0, dtype=np.int64)
    (t,), width, _ = _packable(group, time)
    return np.argsort(group * width + t)


def walk_chains(heads: I64, pred: I64) -> Bool:
    """Mark every position reachable from ``heads`` by following ``pred``.

    A plain loop over the chosen positions only (each is visited once).
    """
    chosen = bytearray(len(pred))
    pl = pred.tolist()
    for h in heads.tolist():
        j = h
        while j >= 0 and not chosen[j]:
            chosen[j] = 1
            j = pl[j]
    return np.frombuffer(bytes(chosen), dtype=np.uint8).astype(bool)
