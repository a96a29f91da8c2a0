"""Jaeger UI JSON (the ``{"data": [trace, ...]}`` document Jaeger's UI uploads and its query API returns).

Mapping (the inverse of fabric's Jaeger reader, ``ingest/jaeger_json.py``):

* ``startTime`` = start in whole microseconds (ns // 1000), ``duration`` =
  end µs - start µs (a negative duration is written as 0);
* the parent is a ``CHILD_OF`` reference; a link becomes a ``FOLLOWS_FROM``
  reference (when the span has a parent, or the link points to another trace:
  a root's link inside its own trace would read back as its parent, so it is
  left out);
* one process per OTLP resource: ``serviceName`` = ``service.name``, the other
  resource attributes as tags;
* attributes become typed tags (``bool``, ``int64``, ``float64``, ``string``;
  arrays and maps as their JSON text);
* ``span.kind`` (lower case, unless UNSPECIFIED), ``otel.status_code`` and
  ``otel.status_description``, ``error = true`` for ERROR, ``otel.scope.name``
  and ``otel.scope.version`` as tags;
* events become logs: ``timestamp`` in µs, the name as the ``event`` field.

Reading the file back with ``fabric trace ingest`` gives the same spans, with
times truncated to whole microseconds and array/map attributes as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from fabric_trace.render.export.model import ExportSpan


def _tag(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float):
        return {"key": key, "type": "float64", "value": value}
    if isinstance(value, str) or value is None:
        return {"key": key, "type": "string", "value": value}
    return {"key": key, "type": "string", "value": orjson.dumps(value).decode()}


def _tags(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [_tag(k, v) for k, v in attrs.items()]


def jaeger_document(spans: Sequence[ExportSpan]) -> dict[str, Any]:
    """The Jaeger document as a dict: one entry of ``data`` per trace, in first-seen order."""
    by_trace: dict[str, list[ExportSpan]] = {}
    for s in spans:
        by_trace.setdefault(s.trace_id, []).append(s)
    data = []
    for tid, members in by_trace.items():
        pids: dict[str, str] = {}
        processes: dict[str, Any] = {}
        out = []
        for s in sorted(members, key=lambda s: (s.start_ns, s.depth, s.span_id)):
            pid = pids.get(s.resource_id)
            if pid is None:
                pid = pids[s.resource_id] = f"p{len(pids) + 1}"
                rest = {k: v for k, v in s.resource.items() if k != "service.name"}
                processes[pid] = {"serviceName": s.service, "tags": _tags(rest)}
            refs = []
            if s.parent_span_id:
                refs.append({"refType": "CHILD_OF", "traceID": tid, "spanID": s.parent_span_id})
            for link in s.links:
                lt, ls = link.get("trace_id"), link.get("span_id")
                if lt and ls and (s.parent_span_id or lt != tid):
                    refs.append({"refType": "FOLLOWS_FROM", "traceID": lt, "spanID": ls})
            tags = _tags(s.attributes)
            if s.kind not in ("UNSPECIFIED", "", None):
                tags.append(_tag("span.kind", s.kind.lower()))
            if s.status_code in ("OK", "ERROR"):
                tags.append(_tag("otel.status_code", s.status_code))
                if s.status_message:
                    tags.append(_tag("otel.status_description", s.status_message))
            if s.status_code == "ERROR":
                tags.append(_tag("error", True))
            if s.scope_name:
                tags.append(_tag("otel.scope.name", s.scope_name))
            if s.scope_version:
                tags.append(_tag("otel.scope.version", s.scope_version))
            logs = []
            for e in s.events:
                fields = [_tag("event", e.get("name") or "")] + _tags(e.get("attributes") or {})
                logs.append({"timestamp": int(e.get("time_ns") or 0) // 1000, "fields": fields})
            start_us = s.start_ns // 1000
            span: dict[str, Any] = {
                "traceID": tid, "spanID": s.span_id, "operationName": s.name, "references": refs,
                "startTime": start_us, "duration": max(0, s.end_ns // 1000 - start_us),
                "tags": tags, "logs": logs, "processID": pid, "warnings": None,
            }
            if s.flags is not None:
                span["flags"] = s.flags
            out.append(span)
        data.append({"traceID": tid, "spans": out, "processes": processes, "warnings": None})
    return {"data": data, "total": 0, "limit": 0, "offset": 0, "errors": None}


def to_jaeger(spans: Sequence[ExportSpan]) -> bytes:
    """Jaeger UI JSON bytes of ``spans``."""
    return orjson.dumps(jaeger_document(spans))
