"""The turns of a session and the session's critical path across them (docs/llm.md, "Sessions").

A session is the traces that share a session id (a trace's session id: docs/schema.md,
``traces``); traces without one are not a session. Its turns are its traces in order of start
(then trace id). ``gap_ns`` is the time from the end of the earlier turns (the latest end so
far) to this turn's start: the user's think time, negative when turns overlap. A trace of
unknown extent (no plausible span time, docs/critical-path.md repair 1b) is a turn after the
others, with NULL ``gap_ns`` and ``session_path_ns``.

The session's critical path covers the session from its first start to its last end with the
turns that run longest: walking forward, at each moment the turn that has started and runs
furthest is on the path; time no turn covers is idle. ``session_path_ns`` is the time a turn
spends on it (0 for a turn that ran entirely under another)::

    turn 1 |--------|                       path: turn 1 [0, 8)
    turn 2     |--|                               (turn 2 is under turn 1: 0)
    turn 3             |------|                   idle [8, 11), turn 3 [11, 17)
    turn 4                 |-------|              turn 4 [17, 20)
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pyarrow as pa

SCHEMA = pa.schema([("trace_id", pa.string()), ("session_id", pa.string()), ("user_id", pa.string()),
                    ("turn", pa.int64()), ("start_ns", pa.int64()), ("end_ns", pa.int64()),
                    ("gap_ns", pa.int64()), ("session_path_ns", pa.int64())])


def turns(rows: list[tuple[Any, ...]]) -> pa.Table:
    """Turn rows from ``(trace_id, session_id, user_id, start_ns, end_ns)`` of sessions' traces."""
    by_session: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        by_session[row[1]].append(row)
    out: list[dict[str, Any]] = []
    for session in sorted(by_session):
        rows_s = by_session[session]
        ordered = sorted((r for r in rows_s if r[3] is not None and r[4] is not None), key=lambda r: (r[3], r[0]))
        path = _path([(r[3], r[4]) for r in ordered])
        latest_end: int | None = None
        for k, (trace_id, _, user_id, start, end) in enumerate(ordered):
            out.append({"trace_id": trace_id, "session_id": session, "user_id": user_id, "turn": k + 1,
                        "start_ns": start, "end_ns": end,
                        "gap_ns": None if latest_end is None else start - latest_end,
                        "session_path_ns": path[k]})
            latest_end = end if latest_end is None else max(latest_end, end)
        # a trace of unknown extent (no plausible span time, docs/critical-path.md 1b): last, no timing
        unknown = sorted((r for r in rows_s if r[3] is None or r[4] is None), key=lambda r: r[0])
        for j, (trace_id, _, user_id, start, end) in enumerate(unknown):
            out.append({"trace_id": trace_id, "session_id": session, "user_id": user_id,
                        "turn": len(ordered) + j + 1, "start_ns": start, "end_ns": end,
                        "gap_ns": None, "session_path_ns": None})
    return pa.Table.from_pylist(out, schema=SCHEMA)


def _path(intervals: list[tuple[int, int]]) -> list[int]:
    """Time each interval (sorted by start) spends on the forward greedy cover (module docstring)."""
    on_path = [0] * len(intervals)
    if not intervals:
        return on_path
    cursor = intervals[0][0]
    i, n = 0, len(intervals)
    while i < n:
        best, best_end = -1, cursor
        while i < n and intervals[i][0] <= cursor:  # started by now: the one running furthest
            if intervals[i][1] > best_end:
                best, best_end = i, intervals[i][1]
            i += 1
        if best < 0:  # idle until the next turn starts
            cursor = intervals[i][0] if i < n else cursor
            continue
        on_path[best] += best_end - cursor
        cursor = best_end
    return on_path
