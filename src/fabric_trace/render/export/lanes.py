"""Lanes: place spans on tracks so that the spans of one track nest strictly.

Trace viewers that draw a track as a stack of slices (Perfetto, Chrome's
trace viewer, speedscope's evented profiles) need every two slices on one
track to be either disjoint or nested. Concurrent siblings (parallel tool
calls, fan-out retrievals) overlap without nesting, so each group (a service,
for the exporters) is spread over several lanes:

* spans are visited by start time, longer (and then shallower) spans first,
  so a parent is placed before a child that starts with it;
* a span goes on its parent's lane when the parent is in the same group and
  the span fits there (nested in the innermost slice still open at its start,
  or the lane is idle); otherwise on the first lane where it fits; otherwise
  on a new lane;
* a span whose end is before its start is placed as zero-length.

One pass, no recursion: each lane keeps the stack of its open slices, and
slices that ended at or before the current start are popped.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from fabric_trace.render.export.model import ExportSpan


def assign_lanes(spans: Sequence[ExportSpan], group: Sequence[Hashable]) -> list[int]:
    """The lane (0-based, per group) of each span; ``group[i]`` is span i's group (e.g. its service)."""
    n = len(spans)
    index = {(s.trace_id, s.span_id): i for i, s in enumerate(spans)}
    parent = [index.get((s.trace_id, s.parent_span_id), -1) if s.parent_span_id else -1 for s in spans]
    order = sorted(range(n), key=lambda i: (spans[i].start_ns, -spans[i].end_clipped, spans[i].depth, i))
    lane_of = [-1] * n
    stacks: dict[Hashable, list[list[int]]] = {}
    for i in order:
        s = spans[i]
        start, end = s.start_ns, s.end_clipped
        lanes = stacks.setdefault(group[i], [])
        p = parent[i]
        preferred = lane_of[p] if p >= 0 and group[p] == group[i] and lane_of[p] >= 0 else -1
        chosen = -1
        if preferred >= 0 and _fits(lanes[preferred], start, end):
            chosen = preferred
        else:
            for k, stack in enumerate(lanes):
                if k != preferred and _fits(stack, start, end):
                    chosen = k
                    break
        if chosen < 0:
            chosen = len(lanes)
            lanes.append([])
        lanes[chosen].append(end)
        lane_of[i] = chosen
    return lane_of


def _fits(stack: list[int], start: int, end: int) -> bool:
    """Pop the slices that ended by ``start``; True when [start, end] nests in what is left."""
    while stack and stack[-1] <= start:
        stack.pop()
    return not stack or stack[-1] >= end
