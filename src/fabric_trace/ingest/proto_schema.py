"""Protobuf message classes for fast OTLP trace decoding ("lazy attributes").

The classes are built at import time from the descriptors shipped in
``opentelemetry-proto`` (so they follow its field numbers exactly), with two
changes, both wire-compatible:

* every ``repeated KeyValue attributes`` field (Resource, InstrumentationScope,
  Span, Span.Event, Span.Link) is declared ``repeated bytes``: upb hands back the
  raw ``KeyValue`` bytes instead of building one Python message object per
  attribute (the dominant cost of a naive decoder). :mod:`proto_wire` turns those
  bytes into Python values, with a cache for repeated identical pairs;
* ``Span.status`` is declared ``bytes`` too (a tiny message, cached the same way);
* ``ResourceSpans`` gets the legacy field ``instrumentation_library_spans = 1000``
  (reserved in current protos) typed as ``ScopeSpans``: ``InstrumentationLibrarySpans``
  has the same wire layout (library = 1 {name = 1, version = 2}, spans = 2, schema_url = 3).

Because attributes are opaque here, neither bad UTF-8 inside an attribute nor
deeply nested ``AnyValue`` makes upb refuse a whole message.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

_PREFIX = "fabric_lazy"
_TYPE_BYTES = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
_TYPE_MESSAGE = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
_LABEL_REPEATED = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED


def _fix_message(msg: descriptor_pb2.DescriptorProto) -> None:
    for f in msg.field:
        if f.type_name.startswith(".opentelemetry."):
            f.type_name = f".{_PREFIX}{f.type_name}"
        lazy = f.name == "attributes" or (msg.name == "Span" and f.name == "status")
        if lazy and f.type == _TYPE_MESSAGE:
            f.type = _TYPE_BYTES
            f.ClearField("type_name")
    for nested in msg.nested_type:
        _fix_message(nested)
    if msg.name == "ResourceSpans":
        del msg.reserved_range[:]
        del msg.reserved_name[:]
        msg.field.add(
            name="instrumentation_library_spans",
            number=1000,
            label=_LABEL_REPEATED,
            type=_TYPE_MESSAGE,
            type_name=f".{_PREFIX}.opentelemetry.proto.trace.v1.ScopeSpans",
        )


def _build_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for module in (common_pb2, resource_pb2, trace_pb2):
        fd = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(fd)
        fd.name = f"{_PREFIX}/{fd.name}"
        fd.package = f"{_PREFIX}.{fd.package}"
        fd.dependency[:] = [f"{_PREFIX}/{dep}" for dep in fd.dependency]
        fd.ClearField("options")
        for msg in fd.message_type:
            _fix_message(msg)
        pool.Add(fd)
    return pool


_POOL = _build_pool()


def _cls(name: str) -> Any:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PREFIX}.opentelemetry.proto.{name}"))


#: ``TracesData`` / ``ExportTraceServiceRequest`` (same wire layout: resource_spans = 1).
TracesDataMsg: Any = _cls("trace.v1.TracesData")
ResourceSpansMsg: Any = _cls("trace.v1.ResourceSpans")
ScopeSpansMsg: Any = _cls("trace.v1.ScopeSpans")
SpanMsg: Any = _cls("trace.v1.Span")
ResourceMsg: Any = _cls("resource.v1.Resource")
ScopeMsg: Any = _cls("common.v1.InstrumentationScope")
