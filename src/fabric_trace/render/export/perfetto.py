"""Chrome trace-event JSON (opens in Perfetto UI and chrome://tracing).

* one *process* per service (``process_name`` metadata = the service name),
  sorted by first appearance;
* one *thread* per lane of that service (:mod:`.lanes`): concurrently running
  siblings get their own lane, so the slices of every thread nest;
  ``thread_name`` = ``<service>`` for the first lane, ``<service> #2``... after;
* one complete event (``ph: "X"``) per span: ``ts`` and ``dur`` in microseconds
  relative to the earliest exported start (``otherData.origin_unix_ns``),
  with nanosecond precision (three decimals); ``cat`` = the span's AI role;
  ``args`` carry ids, kind, status, self and critical-path time and the attributes;
* a flow (``ph: "s"`` on the caller's lane, ``ph: "f"``, ``bp: "e"`` on the
  callee's) for every parent -> child edge whose two spans are in different
  services: Perfetto draws it as an arrow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from fabric_trace.render.export.lanes import assign_lanes
from fabric_trace.render.export.model import ExportSpan


def _us(ns: int) -> float:
    """Nanoseconds as microseconds with three decimals (exact for the relative times used)."""
    return round(ns / 1000, 3)


def perfetto_events(spans: Sequence[ExportSpan]) -> dict[str, Any]:
    """The trace-event document as a dict (see the module docstring)."""
    if not spans:
        return {"traceEvents": [], "displayTimeUnit": "ms", "otherData": {"origin_unix_ns": None, "traces": 0}}
    services: dict[str, int] = {}
    for s in sorted(spans, key=lambda s: (s.start_ns, s.depth)):
        services.setdefault(s.service, len(services) + 1)
    lanes = assign_lanes(spans, [s.service for s in spans])
    origin = min(s.start_ns for s in spans)
    events: list[dict[str, Any]] = []
    for svc, pid in services.items():
        events.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": svc}})
        events.append({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0, "args": {"sort_index": pid}})
    seen_lanes = sorted({(services[s.service], lanes[i]) for i, s in enumerate(spans)})
    names = {pid: svc for svc, pid in services.items()}
    for pid, lane in seen_lanes:
        label = names[pid] if lane == 0 else f"{names[pid]} #{lane + 1}"
        events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": lane + 1, "args": {"name": label}})
        events.append({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": lane + 1,
                       "args": {"sort_index": lane + 1}})
    order = sorted(range(len(spans)), key=lambda i: (spans[i].start_ns, -spans[i].end_clipped, spans[i].depth, i))
    index = {(s.trace_id, s.span_id): i for i, s in enumerate(spans)}
    flow_id = 0
    for i in order:
        s = spans[i]
        pid, tid = services[s.service], lanes[i] + 1
        start = s.start_ns - origin
        args: dict[str, Any] = {
            "trace_id": s.trace_id, "span_id": s.span_id, "parent_span_id": s.parent_span_id,
            "service": s.service, "kind": s.kind, "role": s.role, "status": s.status_code,
        }
        if s.status_message:
            args["status_message"] = s.status_message
        if s.self_ns is not None:
            args["self_ms"] = round(s.self_ns / 1e6, 3)
        if s.critical_ns is not None:
            args["critical_path_ms"] = round(s.critical_ns / 1e6, 3)
        if s.attributes:
            args["attributes"] = s.attributes
        events.append({"ph": "X", "name": s.name, "cat": s.role, "pid": pid, "tid": tid, "ts": _us(start),
                       "dur": _us(s.end_clipped - s.start_ns), "args": args})
        p = index.get((s.trace_id, s.parent_span_id)) if s.parent_span_id else None
        if p is not None and spans[p].service != s.service:
            ps = spans[p]
            # bind the start of the arrow inside the caller's slice, even under clock skew
            at = min(max(s.start_ns, ps.start_ns), ps.end_clipped) - origin
            flow_id += 1
            events.append({"ph": "s", "name": "call", "cat": "call", "id": flow_id, "pid": services[ps.service],
                           "tid": lanes[p] + 1, "ts": _us(at)})
            events.append({"ph": "f", "bp": "e", "name": "call", "cat": "call", "id": flow_id, "pid": pid,
                           "tid": tid, "ts": _us(start)})
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {"origin_unix_ns": origin, "traces": len({s.trace_id for s in spans}), "exporter": "fabric"},
    }


def to_perfetto(spans: Sequence[ExportSpan]) -> bytes:
    """Chrome trace-event JSON bytes of ``spans`` (one or many traces)."""
    return orjson.dumps(perfetto_events(spans))
