"""OTLP/HTTP trace requests and responses, without any HTTP server in them.

:func:`decode_request` turns the body of a ``POST /v1/traces`` into a
:class:`~fabric_trace.ingest.batch.SpanBatch` with the decoders of ``fabric trace
ingest`` (the typed OTLP/JSON fast path, the general OTLP/JSON decoder, the
protobuf decoder with its salvage path), so a span received over HTTP is decoded,
repaired and quarantined exactly like the same span read from a file.
:func:`success_body` and :func:`status_body` build the response bodies the OTLP
specification asks for (``ExportTraceServiceResponse`` / ``google.rpc.Status``) in
the request's encoding.

A body is refused as a whole (:class:`BadRequest`, HTTP 400) only when it cannot be
read as the declared encoding at all: corrupt gzip/deflate, invalid JSON, JSON that
is not an OTLP ``ExportTraceServiceRequest`` object, or protobuf whose top-level
fields cannot be walked. Anything inside a readable request that is bad (a span with
a wrong-length id, bad UTF-8 in one span...) is quarantined span by span and reported
back in ``partial_success``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from fabric_trace.errors import DecodeError
from fabric_trace.fixtures_gen.protoenc import ld, varint
from fabric_trace.ingest.batch import SpanBatch
from fabric_trace.ingest.container_io import DECODING_ERRORS
from fabric_trace.ingest.container_json import BOM
from fabric_trace.ingest.limits import Limits
from fabric_trace.ingest.otlp_json import decode_otlp_json
from fabric_trace.ingest.otlp_json_fast import decode_otlp_line
from fabric_trace.ingest.otlp_proto import decode_otlp_proto
from fabric_trace.ingest.proto_wire import WireError, iter_fields

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
#: Accepted ``Content-Type`` values (parameters such as ``charset`` are ignored).
CONTENT_TYPES = (PROTOBUF, JSON)
#: Accepted ``Content-Encoding`` values; an absent header means identity.
CONTENT_ENCODINGS = ("identity", "gzip", "deflate")

_OTLP_KEYS = ("resourceSpans", "resource_spans")

# google.rpc.Code values used in error bodies.
RPC_INVALID_ARGUMENT = 3
RPC_NOT_FOUND = 5
RPC_RESOURCE_EXHAUSTED = 8
RPC_UNIMPLEMENTED = 12
RPC_UNAVAILABLE = 14
RPC_UNAUTHENTICATED = 16


class BadRequest(Exception):
    """The body cannot be read at all (HTTP 400)."""


class TooLarge(Exception):
    """The body is larger than the limit after decompression (HTTP 413)."""


def decompress(body: bytes, encoding: str, cap: int) -> bytes:
    """Undo ``Content-Encoding`` (``identity``, ``gzip`` incl. several members, ``deflate``).

    Raises :class:`TooLarge` as soon as the output would exceed ``cap`` bytes (a
    decompression bomb is never expanded beyond it) and :class:`BadRequest` for
    corrupt or truncated data.
    """
    if encoding == "identity":
        if len(body) > cap:
            raise TooLarge(f"body of {len(body)} bytes exceeds the limit of {cap} bytes")
        return body
    parts: list[bytes] = []
    total = 0
    data = body
    while True:
        # gzip: RFC 1952 members; deflate: RFC 1950 zlib data, as HTTP defines it
        d = zlib.decompressobj(31 if encoding == "gzip" else 15)
        try:
            chunk = d.decompress(data, cap + 1 - total)
        except zlib.error as exc:
            raise BadRequest(f"corrupt {encoding} body: {exc}") from None
        total += len(chunk)
        if total > cap or d.unconsumed_tail:
            raise TooLarge(f"body expands beyond the limit of {cap} bytes ({encoding})")
        parts.append(chunk)
        if not d.eof:
            raise BadRequest(f"truncated {encoding} body")
        data = d.unused_data
        if not data or (encoding == "gzip" and not data.strip(b"\0")):
            return b"".join(parts)
        if encoding != "gzip":
            raise BadRequest(f"{len(data)} bytes of garbage after the {encoding} data")


@dataclass
class Decoded:
    """One request decoded into a batch: its spans, rejections and repairs."""

    batch: SpanBatch
    body_bytes: int

    @property
    def spans(self) -> int:
        return len(self.batch)

    @property
    def rejected(self) -> int:
        """Spans the decoders refused (each is a quarantine row)."""
        return self.batch.spans_rejected

    @property
    def records_rejected(self) -> int:
        return sum(1 for r in self.batch.rejections if r.action == "rejected")


def decode_request(body: bytes, content_type: str, where: str, limits: Limits) -> Decoded:
    """Decode an (already decompressed) request body into a new batch.

    ``where`` prefixes every location (``"request 17"`` gives
    ``"request 17 resourceSpans[0].scopeSpans[0].spans[3]"``). Raises
    :class:`BadRequest` when the body is unreadable as a whole.
    """
    batch = SpanBatch()
    try:
        if content_type == JSON:
            _decode_json(body, where, batch)
        else:
            _decode_proto(body, where, batch, limits)
    except BadRequest:
        raise
    except RecursionError:
        raise BadRequest("request nested too deeply to decode") from None
    except DECODING_ERRORS as exc:  # a decoder bug must surface as a refused request, not a crash
        raise BadRequest(f"cannot decode request ({type(exc).__name__}: {exc})") from None
    return Decoded(batch, len(body))


def _decode_json(body: bytes, where: str, batch: SpanBatch) -> None:
    if body.startswith(BOM):
        body = body[len(BOM):]
    if decode_otlp_line(body, where, batch):  # canonical OTLP/JSON: the typed fast path
        return
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"invalid JSON: {exc}") from None
    if type(value) is not dict or (value and not any(k in value for k in _OTLP_KEYS)):
        shape = f"object with keys {', '.join(repr(str(k)[:40]) for k in list(value)[:5])}" \
            if type(value) is dict else f"a JSON {type(value).__name__}"
        raise BadRequest(f"not an OTLP ExportTraceServiceRequest ({shape})")
    try:
        decode_otlp_json(value, where, batch)
    except DecodeError as exc:
        raise BadRequest(exc.message) from None
    batch.end_group()


def _decode_proto(body: bytes, where: str, batch: SpanBatch, limits: Limits) -> None:
    try:
        for _ in iter_fields(body, 0, len(body)):
            pass
    except WireError as exc:
        raise BadRequest(f"malformed protobuf: {exc}") from None
    decode_otlp_proto(body, where, batch, limits)
    batch.end_group()


def success_body(content_type: str, rejected: int, message: str) -> bytes:
    """An ``ExportTraceServiceResponse``; ``partial_success`` set when spans were rejected."""
    resp = ExportTraceServiceResponse()
    if rejected or message:
        resp.partial_success.rejected_spans = rejected
        resp.partial_success.error_message = message
    if content_type == JSON:
        return orjson.dumps(json_format.MessageToDict(resp))
    return resp.SerializeToString()


def status_body(content_type: str, code: int, message: str) -> bytes:
    """A ``google.rpc.Status`` (code, message) for a 4xx/5xx answer."""
    if content_type == JSON:
        return orjson.dumps({"code": code, "message": message})
    # Status { int32 code = 1; string message = 2; } (google/rpc/status.proto)
    return b"\x08" + varint(code) + ld(0x12, message.encode("utf-8", "replace"))
