"""Decode one protobuf ``ExportTraceServiceRequest`` / ``TracesData`` into a span sink.

Fast path (:mod:`proto_rows`): upb parses the whole message with the lazy-attribute
classes of :mod:`proto_schema`, and rows are built with cached attribute values.

Slow path (:mod:`proto_salvage`), only when upb refuses the message (bad UTF-8 in a
name, malformed bytes): the message is split into its ``resource_spans``, scope spans
and spans, and only the pieces that still fail are quarantined, with reason and offset.
"""

from __future__ import annotations

import gc

from fabric_trace.ingest.batch import SpanSink
from fabric_trace.ingest.limits import DEFAULT_LIMITS, Limits
from fabric_trace.ingest.proto_rows import Ctx, resource_spans
from fabric_trace.ingest.proto_salvage import salvage_request
from fabric_trace.ingest.proto_schema import TracesDataMsg


def decode_otlp_proto(data: bytes, where: str, sink: SpanSink, limits: Limits | None = None,
                      index0: int = 0, base: int = 0) -> None:
    """Decode the protobuf ``ExportTraceServiceRequest`` (or ``TracesData``) in ``data``.

    Spans go to the sink's columns (:mod:`.batch`; their location is like
    ``"{where} resourceSpans[i].scopeSpans[j].spans[k]"``), resources and scopes to
    ``sink.resource`` / ``sink.scope`` (once per ResourceSpans / ScopeSpans), bad pieces
    to ``sink.reject`` and value repairs to ``sink.repair``. ``limits`` gives the value
    depth and string size caps (default :class:`Limits`). Never raises on bad data.

    ``data`` may be a piece of a bigger message (whole top-level fields): ``index0`` is
    the index of its first resourceSpans and ``base`` its byte offset in the message.
    """
    ctx = Ctx(sink, limits or DEFAULT_LIMITS, f"{where} " if where else "", index0, base)
    # Every object made here is acyclic (dicts, lists, tuples of plain values), so the
    # cyclic GC has nothing to find; pausing it saves ~25% on large messages.
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        try:
            msg = TracesDataMsg.FromString(data)
        except Exception:  # upb DecodeError: fall back to piece-by-piece decoding
            salvage_request(bytes(data), ctx)
            return
        for i, rs in enumerate(msg.resource_spans):
            resource_spans(rs, ctx, f"{ctx.prefix}resourceSpans[{index0 + i}]")
    finally:
        if paused:
            gc.enable()
