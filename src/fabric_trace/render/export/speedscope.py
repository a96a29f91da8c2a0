"""speedscope's file format: one evented profile per lane of each service.

An evented profile is a stack: every ``O`` (open frame) event is closed by a
``C`` of the same frame before its parent closes. Spans are spread over lanes
(:mod:`.lanes`) so that each lane is such a stack; a profile is named
``<service>`` (first lane) or ``<service> #N``. Frames are unique per
(span name, service): ``name`` = the span name, ``file`` = the service.
Times are integer nanoseconds relative to the earliest exported start.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from fabric_trace.render.export.lanes import assign_lanes
from fabric_trace.render.export.model import ExportSpan

SCHEMA = "https://www.speedscope.app/file-format-schema.json"


def speedscope_document(spans: Sequence[ExportSpan], name: str = "fabric traces") -> dict[str, Any]:
    """The speedscope document as a dict."""
    lanes = assign_lanes(spans, [s.service for s in spans])
    frames: dict[tuple[str, str], int] = {}
    per_lane: dict[tuple[str, int], list[int]] = {}
    origin = min((s.start_ns for s in spans), default=0)
    for i, s in enumerate(spans):
        frames.setdefault((s.name, s.service), len(frames))
        per_lane.setdefault((s.service, lanes[i]), []).append(i)
    first_seen = {}
    for s in sorted(spans, key=lambda s: (s.start_ns, s.depth)):
        first_seen.setdefault(s.service, len(first_seen))
    profiles = []
    for (svc, lane), members in sorted(per_lane.items(), key=lambda kv: (first_seen[kv[0][0]], kv[0][1])):
        members.sort(key=lambda i: (spans[i].start_ns, -spans[i].end_clipped, spans[i].depth, i))
        events: list[dict[str, Any]] = []
        stack: list[int] = []
        for i in members:
            s = spans[i]
            while stack and spans[stack[-1]].end_clipped <= s.start_ns:
                top = spans[stack.pop()]
                events.append({"type": "C", "frame": frames[(top.name, top.service)], "at": top.end_clipped - origin})
            events.append({"type": "O", "frame": frames[(s.name, s.service)], "at": s.start_ns - origin})
            stack.append(i)
        while stack:
            top = spans[stack.pop()]
            events.append({"type": "C", "frame": frames[(top.name, top.service)], "at": top.end_clipped - origin})
        start = events[0]["at"] if events else 0
        end = max((e["at"] for e in events), default=0)
        profiles.append({"type": "evented", "name": svc if lane == 0 else f"{svc} #{lane + 1}",
                         "unit": "nanoseconds", "startValue": start, "endValue": end, "events": events})
    return {
        "$schema": SCHEMA,
        "shared": {"frames": [{"name": n, "file": svc} for (n, svc) in frames]},
        "profiles": profiles,
        "name": name,
        "activeProfileIndex": 0,
        "exporter": "fabric",
    }


def to_speedscope(spans: Sequence[ExportSpan], name: str = "fabric traces") -> bytes:
    """speedscope JSON bytes of ``spans``."""
    return orjson.dumps(speedscope_document(spans, name))
