"""The one span-tree index of fabric: parents from ids, the cycle policy, tour positions.

Every analysis that walks a span tree builds it here, so the call graph
(:mod:`fabric_trace.graph.batch`, :mod:`fabric_trace.graph.kernel`) and the trust
rules (:mod:`fabric_trace.analyzers.trust.tree`) see the same tree:

* :func:`parent_rows`: the row of every span's parent, by an exact match of
  (trace id, parent span id) on (trace id, span id), and the (trace id, span id)
  order of the rows (the order in which cycle ties and root ties are broken);
* the cycle policy, :func:`fabric_trace.graph.arrays.cycle_cuts` (re-exported):
  one cut per parent cycle, at its earliest-starting span (ties: the smallest
  span id), which becomes a root;
* :func:`tour_positions`: depth-first enter/exit numbers of a forest (an Euler
  tour ranked by pointer doubling), so "P is an ancestor of T" and "P's subtree
  ends before T" are comparisons of two integers.

All of it is numpy over whole arrays: no recursion and no per-span Python, so a
100k-deep chain costs a few dozen passes over the arrays.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from fabric_trace.graph.arrays import cycle_cuts, jumps

I64 = NDArray[np.int64]


def sorted_ranks(values: pa.Array) -> I64:
    """Dense ranks of strings in sorted order (exact, any content; null -> -1)."""
    enc = pc.dictionary_encode(values)
    rank = np.empty(len(enc.dictionary) + 1, dtype=np.int64)
    rank[np.asarray(pc.sort_indices(enc.dictionary))] = np.arange(len(enc.dictionary))
    rank[-1] = -1
    return rank[np.asarray(enc.indices.fill_null(-1))]


def _hex_key(values: pa.Array) -> I64 | None:
    """Order-preserving int64 of 16-char lowercase hex ids, ``None`` if any is not one."""
    if values.null_count or len(values) == 0 or values.type != pa.string():
        return None
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)[values.offset:values.offset + len(values) + 1]
    if offsets[-1] - offsets[0] != 16 * len(values) or not np.all(np.diff(offsets) == 16):
        return None
    raw = np.frombuffer(values.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
    if not (((raw >= 48) & (raw <= 57)) | ((raw >= 97) & (raw <= 102))).all():
        return None
    key = np.frombuffer(bytes.fromhex(raw.tobytes().decode("ascii")), dtype=">u8")
    return (key.astype(np.uint64) ^ np.uint64(1 << 63)).view(np.int64)


def id_keys(span: pa.Array, parent: pa.Array) -> tuple[I64, I64]:
    """int64 keys of span and parent ids: equal iff the strings are, in the strings' order
    (a null parent gets the smallest int64)."""
    has = np.asarray(parent.is_valid())
    skey = _hex_key(span)
    pkey = _hex_key(parent.fill_null("0" * 16)) if skey is not None else None
    if skey is None or pkey is None:
        both = sorted_ranks(pa.concat_arrays([span, parent.fill_null(span[0] if len(span) else "")]))
        skey, pkey = both[: len(span)], both[len(span):]
    return skey, np.where(has, pkey, np.iinfo(np.int64).min)


def _one_chunk(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.chunk(0) if values.num_chunks == 1 else pa.concat_arrays(values.chunks)
    return values


def parent_rows(trace: pa.Array | pa.ChunkedArray, span: pa.Array | pa.ChunkedArray,
                parent: pa.Array | pa.ChunkedArray) -> tuple[I64, I64, I64]:
    """The span-tree index of rows whose (trace id, span id) are unique.

    Returns ``(order, parent, trace_key)``: ``order`` sorts the rows by (trace id, span id);
    ``parent[i]`` is the row of the span of row ``i``'s trace whose span id is row ``i``'s parent
    id, -1 when the parent id is null or not in the trace (a self-parent points to itself: the
    cycle policy cuts it); ``trace_key`` ranks the trace ids. Exact on the strings (ids are
    compared as 64-bit keys only when all are 16-character hex, which map one-to-one).
    """
    trace, span, parent = _one_chunk(trace), _one_chunk(span), _one_chunk(parent)
    n = len(span)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    tkey = sorted_ranks(trace)
    skey, pkey = id_keys(span, parent)
    # joint ranks of span and parent ids, then (trace, id) packs into one int64
    _, inv = np.unique(np.concatenate((skey, pkey)), return_inverse=True)
    width = int(inv.max()) + 1
    key = tkey * width + inv[:n]  # unique per row: (trace_id, span_id) is unique
    order = np.argsort(key)
    key = key[order]
    wanted = tkey * width + inv[n:]  # (trace, parent id) of every row
    by_wanted = np.argsort(wanted)  # sorted needles make the search cache-friendly
    pos = np.empty(n, dtype=np.int64)
    pos[by_wanted] = np.minimum(np.searchsorted(key, wanted[by_wanted]), n - 1)
    found = np.asarray(parent.is_valid()) & (key[pos] == wanted)
    return order, np.where(found, order[pos], -1).astype(np.int64), tkey


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


def tour_positions(parent: I64, group: I64, start: I64 | None = None,
                   tie: I64 | None = None) -> tuple[I64, I64]:
    """Depth-first ``(enter, exit)`` numbers of every node of an acyclic forest, per ``group``.

    ``parent`` is the row of the parent (-1 for a root; no cycles: cut them first with
    :func:`cycle_cuts`), ``group`` a dense number (0..G-1) of each node's tree set (a trace)
    whose roots are visited one after another. Siblings are visited by (``start``, ``tie``);
    without them the rows must already be in visiting order. ``enter`` is the pre-order position
    in the group's tour (0 for its first root), ``exit`` the position after the node's subtree:
    P is an ancestor of T iff ``enter(P) < enter(T)`` and ``exit(T) < exit(P)``; P's subtree ends
    before T starts iff ``exit(P) < enter(T)``.
    """
    n = len(parent)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    rank = _list_rank(_tour_successors(parent, group, start, tie))
    # positions from the start of each group's tour (its first root's enter event, the event
    # farthest from the end)
    rank_enter, rank_exit = rank[0 : 2 * n : 2], rank[1 : 2 * n : 2]
    first = np.zeros(int(group.max()) + 1, dtype=np.int64)
    np.maximum.at(first, group, rank_enter)
    return first[group] - rank_enter, first[group] - rank_exit


__all__ = ["cycle_cuts", "id_keys", "jumps", "parent_rows", "sorted_ranks", "tour_positions"]
