"""The file layer: detect a trace file's container and encoding by content, and decode it.

Handled, in any combination that occurs in practice:

* compression: gzip (``1f 8b``, multi-member) and zstd (``28 b5 2f fd``, multi-frame),
  streaming with a cap on the decompressed size (a bomb is refused whole);
* JSON: JSON Lines (streamed line by line), a single (pretty-printed) document, a JSON
  array, concatenated documents — each record handed to the JSON decoder;
* protobuf: a raw ``ExportTraceServiceRequest`` (``.pb``), and the Collector file
  exporter's framing ``[uint32 big-endian length][message]...``, including the legacy
  per-message zstd variant (each payload zstd-compressed, even JSON ones).

Format labels returned by :func:`decode_stream`: ``{flavour}-jsonl`` (JSON Lines; one
newline-terminated record counts), ``{flavour}-json`` (a document, an array, concatenated
documents, or one record without a newline), ``otlp-proto``, ``otlp-proto-framed``,
``{flavour}-json-framed``; framed ones get ``+zstd-per-message`` when payloads are
compressed, and ``+gzip`` / ``+zstd`` is appended for a compressed file (e.g.
``otlp-jsonl+gzip``, ``otlp-proto-framed+zstd``). The flavour is what the JSON decoder
returned for the first record it decoded, without a ``-json`` suffix (``otlp``, ``jaeger``,
``zipkin``), or ``unknown`` if it decoded none.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, BinaryIO

import orjson

from fabric_trace.errors import FabricError, InputError
from fabric_trace.ingest.container_io import (
    CHUNK,
    DECODING_ERRORS,
    GZIP_MAGIC,
    ZSTD_MAGIC,
    FrameTooBig,
    GzipReader,
    Stream,
    ZstdReader,
    source_reader,
    zstd_decompress,
)
from fabric_trace.ingest.container_json import BOM, LineDecoder, call_json_decoder, decode_json
from fabric_trace.ingest.limits import Limits
from fabric_trace.ingest.otlp_proto import decode_otlp_proto
from fabric_trace.ingest.proto_wire import WireError, iter_fields, read_varint

HEAD = 64 * 1024  # bytes looked at to detect the format
_JSON_WS = b" \t\r\n"


def decode_stream(
    stream: BinaryIO,
    name: str,
    sink: Any,
    limits: Limits,
    json_decoder: Callable[[Any, str, Any], str],
    line_decoder: LineDecoder | None = None,
) -> str:
    """Detect the format of ``stream`` by content, decode every record into ``sink``, return the label.

    ``stream`` is read sequentially (stdin works; nothing seeks). Undecodable records are
    quarantined with ``sink.reject`` and decoding goes on. Raises ``InputError`` for input
    that cannot be used at all (empty, unknown format, decompressed size over the cap, a
    document over ``max_document_bytes``); bad input never makes anything but a
    ``FabricError`` escape. Exceptions raised by the sink itself (e.g. a database error
    while it flushes a batch) and ``KeyboardInterrupt`` propagate unchanged.
    """
    try:
        return _decode(stream, name, sink, limits, json_decoder, line_decoder)
    except FabricError:
        raise
    except RecursionError as exc:
        raise InputError("input nested too deeply to decode") from exc
    except MemoryError as exc:
        raise InputError("not enough memory to decode the input") from exc
    except DECODING_ERRORS as exc:  # a decoder bug must surface as a data error, not a traceback
        raise InputError(f"cannot decode input ({type(exc).__name__}: {exc})") from exc


class _Problems:
    """A sink for :func:`check_decompressed_size`: the normal pass records the problems."""

    def reject(self, *args: Any, **kwargs: Any) -> None:
        pass


def check_decompressed_size(stream: BinaryIO, name: str, limits: Limits) -> None:
    """Refuse a compressed ``stream`` that expands beyond ``max_decompressed_bytes``, before decoding.

    Only for a seekable stream (a file): its compression layers (up to 3) are
    decompressed once, at the speed of zlib/zstd, with the output counted and
    dropped; past the cap :class:`InputError` is raised at once, whatever the
    bytes hold (so a bomb of millions of tiny records is refused in seconds, not
    after decoding each of them). The stream is then rewound. A stream that is
    not compressed, or cannot seek (a pipe), is left to the cap applied while
    decoding. A :class:`~fabric_trace.ingest.sources.HashingReader` is measured
    through the stream it wraps, so the hash still sees the input once.
    """
    stream = getattr(stream, "unhashed", stream)
    try:
        if not stream.seekable():
            return
        start = stream.tell()
    except (AttributeError, OSError, ValueError):
        return
    try:
        src = Stream(source_reader(stream, name))
        layers = 0
        while layers < 3:
            head = src.peek(len(ZSTD_MAGIC))
            if head.startswith(GZIP_MAGIC):
                src = Stream(GzipReader(src, name, _Problems(), limits.max_decompressed_bytes).read)
            elif head.startswith(ZSTD_MAGIC):
                src = Stream(ZstdReader(src, name, _Problems(), limits.max_decompressed_bytes).read)
            else:
                break
            layers += 1
        while layers and src.read_upto(CHUNK):
            pass
    finally:
        stream.seek(start)


def _decode(stream: BinaryIO, name: str, sink: Any, limits: Limits, json_decoder: Callable[..., str],
            line_decoder: LineDecoder | None) -> str:
    check_decompressed_size(stream, name, limits)
    base = src = Stream(source_reader(stream, name))
    suffix = ""
    layer = 0
    reader: GzipReader | ZstdReader | None = None
    while True:  # gzip/zstd, possibly nested
        head = src.peek(HEAD)
        if not head:
            if reader is None:
                raise InputError("empty input")
            problem = f" ({reader.problem})" if reader.problem else ""
            raise InputError(f"empty after decompression{problem}")
        if head.startswith(GZIP_MAGIC):
            reader = GzipReader(src, name, sink, limits.max_decompressed_bytes)
            suffix = "+gzip" + suffix
        elif head.startswith(ZSTD_MAGIC):
            reader = ZstdReader(src, name, sink, limits.max_decompressed_bytes)
            suffix = "+zstd" + suffix
        else:
            break
        src = Stream(reader.read)
        layer += 1
        if layer > 3:
            raise InputError("more than 3 nested compression layers")
    label = _dispatch(src, head, sink, limits, json_decoder, line_decoder)
    while base.read_upto(CHUNK):  # read what was skipped, so a hashing stream sees the whole input
        pass
    return label + suffix


def _dispatch(src: Stream, head: bytes, sink: Any, limits: Limits, json_decoder: Callable[..., str],
              line_decoder: LineDecoder | None = None) -> str:
    complete = len(head) < HEAD
    body = head[len(BOM) :] if head.startswith(BOM) else head
    first = body.lstrip(_JSON_WS)[:1]
    if complete and not first:
        raise InputError("the input holds only whitespace")
    if not first:  # 64 KiB of JSON whitespace (0x0a is also a protobuf tag; a message never looks like this)
        return decode_json(io.BufferedReader(src, CHUNK), sink, limits, json_decoder, line_decoder)
    if head[:1] == b"\x0a" and _plausible_raw_proto(head, complete):
        return _raw_proto(src, sink, limits)
    if first in (b"{", b"[") or _json_after_first_line(body):
        return decode_json(io.BufferedReader(src, CHUNK), sink, limits, json_decoder, line_decoder)
    if head[:1] == b"\x0a":
        return _raw_proto(src, sink, limits)
    if _plausible_framed(head, limits):
        return _frames(src, sink, limits, json_decoder)
    raise InputError(
        f"first bytes {head[:4].hex(' ')}: not OTLP JSON, OTLP protobuf, gzip or zstd",
        hint="fabric reads OTLP JSON/JSON Lines, OTLP protobuf (raw or Collector-framed), Jaeger and Zipkin JSON",
    )


def _plausible_raw_proto(head: bytes, complete: bool) -> bool:
    """Does ``head`` look like the start of a raw ExportTraceServiceRequest (repeated field 1)?"""
    pos = 0
    first = True
    try:
        while pos < len(head):
            if head[pos] != 0x0A:
                return False
            length, body = read_varint(head, pos + 1, len(head))
            if first and body < len(head):  # the first ResourceSpans must start with a known field
                tag = head[body]
                if length and tag not in (0x0A, 0x12, 0x1A, 0xC2):
                    return False
                if tag == 0x0A and body + 2 < len(head):
                    _, inner = read_varint(head, body + 1, len(head))
                    if inner < len(head) and head[inner] not in (0x0A, 0x10, 0x1A):
                        return False
            first = False
            pos = body + length
    except WireError:
        return not complete
    return pos == len(head) or not complete


def _plausible_framed(head: bytes, limits: Limits) -> bool:
    """Does ``head`` start with a Collector frame: [uint32 BE length][protobuf / zstd / JSON]?

    The length must be within ``max_frame_bytes`` and the payload must start like a
    message; a length running past the end of the file still counts (the frame reader
    then reports the truncated frame with its offset).
    """
    pos = 0
    while len(head) - pos >= 4:
        length = int.from_bytes(head[pos : pos + 4], "big")
        if length > limits.max_frame_bytes:
            return False
        if length:
            payload = head[pos + 4 : pos + 8]
            return payload[:1] in (b"\x0a", b"{", b"[") or (len(payload) > 0 and ZSTD_MAGIC.startswith(payload))
        pos += 4  # an empty message: look at the next frame
    return False


def _json_after_first_line(head: bytes) -> bool:
    """A text first line (e.g. the tail of a record cut by rotation) followed by JSON lines?"""
    nl = head.find(b"\n")
    if nl < 0 or nl + 1 >= len(head):
        return False
    first = head[:nl]
    if any(c < 0x20 and c not in (0x09, 0x0D) for c in first):
        return False
    return head[nl + 1 :].lstrip(_JSON_WS)[:1] == b"{"


#: A raw protobuf message bigger than this is decoded in pieces (see :func:`_raw_proto_pieces`).
RAW_WHOLE_BYTES = 64 << 20
_RAW_PIECE_BYTES = 2 << 20


def _raw_proto(src: Stream, sink: Any, limits: Limits) -> str:
    data = src.read_upto(RAW_WHOLE_BYTES + 1)
    if len(data) <= RAW_WHOLE_BYTES:
        decode_otlp_proto(data, "", sink, limits)
    else:
        _raw_proto_pieces(data, src, sink, limits)
    return "otlp-proto"


def _raw_proto_pieces(buf: bytes, src: Stream, sink: Any, limits: Limits) -> None:
    """Decode a big raw message a piece at a time, so memory does not grow with it.

    A protobuf message is the concatenation of its fields, and a repeated field may be
    split anywhere between elements: any run of whole top-level fields (resourceSpans)
    is a valid ``TracesData`` with the same spans. Runs of about :data:`_RAW_PIECE_BYTES`
    are decoded like a whole message, with their resourceSpans indexes and byte offsets
    given relative to the whole message, so locations and reasons are those of a whole
    decode. From a top-level field the wire walker cannot read (malformed, or cut off at
    the end of the input) the rest is decoded as one piece, as a whole decode would.
    A field larger than ``max_document_bytes`` makes the input unusable, like a whole
    message of that size.
    """
    base = 0  # offset of buf[0] in the message
    start = 0  # next top-level field in buf
    index = 0  # resourceSpans decoded so far
    eof = False
    while True:
        pos = start
        count = 0
        full = False
        error: WireError | None = None
        try:
            for field, wire, _v, _p, q in iter_fields(buf, start, len(buf)):
                pos = q
                count += field == 1 and wire == 2
                if pos - start >= _RAW_PIECE_BYTES:
                    full = True
                    break
        except WireError as exc:
            error = exc
        if pos > start:
            decode_otlp_proto(buf[start:pos], "", sink, limits, index, base + start)
            index += count
            start = pos
        if full:
            continue
        if error is not None and (eof or not error.truncated):  # the rest in one piece, as a whole decode would
            rest = buf[start:] + src.read_upto(max(0, limits.max_document_bytes + 1 - (len(buf) - start)))
            _check_piece(rest, base + start, limits)
            decode_otlp_proto(rest, "", sink, limits, index, base + start)
            return
        if eof:
            return
        more = src.read_upto(_RAW_PIECE_BYTES)
        eof = not more
        buf = buf[start:] + more
        base += start
        start = 0
        _check_piece(buf, base, limits)


def _check_piece(buf: bytes, base: int, limits: Limits) -> None:
    if len(buf) > limits.max_document_bytes:
        raise InputError(
            f"protobuf field of more than {limits.max_document_bytes} bytes at byte {base}",
            hint="raise max_document_bytes, or write Collector length-prefixed files",
        )


def _frames(src: Stream, sink: Any, limits: Limits, json_decoder: Callable[..., str]) -> str:
    """Read length-prefixed frames one at a time."""
    offset = 0
    n = 0
    compressed = False
    json_flavour: str | None = None
    proto = False
    budget = limits.max_decompressed_bytes
    while True:
        header = src.read_upto(4)
        if not header:
            break
        n += 1
        where = f"frame {n} at byte {offset}"
        if len(header) < 4:
            sink.reject(where, f"truncated frame header ({len(header)} of 4 bytes)", counts_as_span=False)
            break
        length = int.from_bytes(header, "big")
        if length > limits.max_frame_bytes:
            sink.reject(
                where,
                f"frame length {length} exceeds max_frame_bytes {limits.max_frame_bytes}; rest of the file skipped",
                raw=header,
                counts_as_span=False,
            )
            break
        payload = src.read_upto(length)
        if len(payload) < length:
            sink.reject(
                where,
                f"truncated frame: {len(payload)} of {length} bytes",
                raw=payload[:2048].hex(),
                counts_as_span=False,
            )
            break
        offset += 4 + length
        if not payload:
            continue  # an empty message holds no spans
        if payload.startswith(ZSTD_MAGIC):
            compressed = True
            try:
                payload = zstd_decompress(payload, min(limits.max_frame_bytes, budget))
            except FrameTooBig as exc:
                if budget <= limits.max_frame_bytes:
                    raise InputError(f"decompressed size exceeds {limits.max_decompressed_bytes} bytes") from None
                sink.reject(where, f"zstd frame {exc}", counts_as_span=False)
                continue
            except ValueError as exc:
                sink.reject(where, str(exc), raw=payload[:2048].hex(), counts_as_span=False)
                continue
            budget -= len(payload)
        if payload[:1] in (b"{", b"["):  # the Collector writes JSON payloads compact
            try:
                value = orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                sink.reject(where, f"invalid JSON: {exc}", raw=payload, counts_as_span=False)
                continue
            flavour = call_json_decoder(json_decoder, value, where, sink, payload)
            json_flavour = json_flavour or (flavour.removesuffix("-json") if flavour else None)
        else:
            proto = True
            decode_otlp_proto(payload, where, sink, limits)
    label = "otlp-proto-framed" if proto or json_flavour is None else f"{json_flavour}-json-framed"
    return label + ("+zstd-per-message" if compressed else "")
