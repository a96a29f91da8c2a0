"""Recognise the shape of one parsed JSON value and hand it to the right decoder.

Shapes (checked in this order):

* object with ``resourceSpans`` / ``resource_spans`` / ``batches`` (Tempo), or an
  object wrapping one under ``trace`` (Tempo API v2) or ``result`` (Jaeger API v3)
  -> OTLP/JSON. ``{}`` is an empty OTLP document (what an empty export serialises to);
* object with ``data`` (a list of Jaeger traces), or with ``traceID`` and ``spans``
  -> Jaeger JSON;
* array whose first object is an OTLP document -> each element decoded as OTLP/JSON
  (a non-OTLP element is rejected as one record);
* array whose first object has ``traceId`` and ``id`` -> Zipkin v2;
  array whose first object has ``traceID`` and ``spans`` -> Jaeger traces;
  ``[]`` -> an empty Zipkin v2 list;
* anything else -> :class:`~fabric_trace.errors.DecodeError`.
"""

from __future__ import annotations

from typing import Any

from fabric_trace.errors import DecodeError
from fabric_trace.ingest.anyvalue import reject_record
from fabric_trace.ingest.batch import SpanSink
from fabric_trace.ingest.json_repair import DAMAGED
from fabric_trace.ingest.jaeger_json import decode_jaeger_json
from fabric_trace.ingest.otlp_json import decode_otlp_json
from fabric_trace.ingest.zipkin_json import decode_zipkin_json

OTLP_JSON = "otlp-json"
JAEGER_JSON = "jaeger-json"
ZIPKIN_JSON = "zipkin-json"

_OTLP_KEYS = ("resourceSpans", "resource_spans", "batches")


def _is_otlp(v: Any) -> bool:
    return type(v) is dict and any(k in v for k in _OTLP_KEYS)


def _is_jaeger_trace(v: Any) -> bool:
    return type(v) is dict and "spans" in v and ("traceID" in v or "processes" in v)


def decode_json_value(value: Any, where: str, sink: SpanSink) -> str:
    """Decode one parsed JSON value (a document or one JSON-lines record) into ``sink``.

    Returns the format name: ``"otlp-json"``, ``"jaeger-json"`` or ``"zipkin-json"``.
    Raises :class:`DecodeError` when the shape is not recognised; bad spans inside a
    recognised document are rejected through ``sink`` and the rest still load.
    """
    if type(value) is dict:
        if _is_otlp(value) or not value:
            decode_otlp_json(value, where, sink)
            return OTLP_JSON
        for wrapper in ("trace", "result"):
            inner = value.get(wrapper)
            if _is_otlp(inner):
                decode_otlp_json(inner, f"{where}, {wrapper}" if where else wrapper, sink)
                return OTLP_JSON
        data = value.get("data")
        if type(data) is list and (not data or any(_is_jaeger_trace(t) for t in data[:1])):
            decode_jaeger_json(value, where, sink)
            return JAEGER_JSON
        if _is_jaeger_trace(value):
            decode_jaeger_json(value, where, sink)
            return JAEGER_JSON
        keys = ", ".join(repr(str(k)[:40]) for k in list(value)[:5])
        raise DecodeError(f"not an OTLP, Jaeger or Zipkin JSON document (object with keys {keys})")
    if type(value) is list:
        if not value:
            return ZIPKIN_JSON
        first = next((v for v in value if type(v) is dict), None)
        if _is_otlp(first):
            prefix = f"{where}, " if where else ""
            for i, doc in enumerate(value):
                if doc is DAMAGED:  # quarantined already by the salvage of a damaged document
                    continue
                if _is_otlp(doc):
                    decode_otlp_json(doc, f"{prefix}[{i}]", sink)
                else:
                    reject_record(sink, f"{prefix}[{i}]", "array element is not an OTLP document", doc)
            return OTLP_JSON
        if first is not None and "traceId" in first and "id" in first:
            decode_zipkin_json(value, where, sink)
            return ZIPKIN_JSON
        if _is_jaeger_trace(first):
            decode_jaeger_json({"data": value}, where, sink)
            return JAEGER_JSON
        raise DecodeError("not an OTLP, Jaeger or Zipkin JSON document (array of unrecognised values)")
    raise DecodeError(f"not an OTLP, Jaeger or Zipkin JSON document (a JSON {type(value).__name__})")
