"""JSON inputs for :mod:`container`: JSON Lines (streamed) and whole/concatenated documents.

JSON Lines are read one line at a time (never the whole file; a line over
``max_line_bytes`` is skipped unread). When the first line is not a complete JSON
value the input is a pretty-printed document, a JSON array, or several concatenated
documents: it is read whole (bounded by ``max_document_bytes``) and parsed; what
orjson refuses is read again by :mod:`.json_repair` (the tolerant re-read, then the
salvage of damaged documents, each damaged region quarantined with its byte range).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import orjson

from fabric_trace.errors import DecodeError, FabricError, InputError
from fabric_trace.ingest.container_io import CHUNK, DECODING_ERRORS
from fabric_trace.ingest.json_repair import Rewrite, Salvage, describe, error_offset, loads_tolerant
from fabric_trace.ingest.limits import Limits

BOM = b"\xef\xbb\xbf"
JsonDecoder = Callable[[Any, str, Any], str]


#: A fast path offered each JSON line (and a whole document) first: ``(raw, where, sink)``
#: returns the flavour it decoded, or ``None`` having added nothing to the sink (the
#: general decoder then takes it).
LineDecoder = Callable[[bytes, str, Any], "str | None"]


def call_json_decoder(decoder: JsonDecoder, value: Any, where: str, sink: Any, raw: bytes | None) -> str | None:
    """Run the JSON decoder on one record; a record it cannot decode is quarantined.

    Returns the flavour it reported (e.g. ``"otlp-json"``), or ``None`` if the record was
    rejected. ``FabricError`` other than ``DecodeError`` and exceptions that are not decoding
    errors (e.g. a database error raised by the sink while it flushes) propagate.
    """
    try:
        return decoder(value, where, sink)
    except DecodeError as exc:
        reason = exc.message
    except FabricError:
        raise
    except RecursionError:
        reason = "value nested too deeply"
    except DECODING_ERRORS as exc:  # a decoder bug must not abort the file: quarantine the record
        reason = f"cannot decode record: {type(exc).__name__}: {exc}"
    sink.reject(where, reason, raw=raw, counts_as_span=False)
    return None


class _Flavours:
    def __init__(self) -> None:
        self.first: str | None = None

    def add(self, flavour: str | None) -> None:
        if self.first is None and flavour:  # the JSON decoder says "otlp-json" (or just "otlp")
            self.first = flavour.removesuffix("-json")

    def label(self, layout: str) -> str:
        return f"{self.first or 'unknown'}-{layout}"


def decode_json(reader: io.BufferedReader, sink: Any, limits: Limits, decoder: JsonDecoder,
                line_decoder: LineDecoder | None = None) -> str:
    """Decode JSON Lines or JSON document(s) from ``reader``; return the format label.

    Each JSON line is first offered to ``line_decoder`` (when given); a line it declines
    is parsed (with the tolerant re-read of :mod:`.json_repair`) and handed to ``decoder``.
    A line longer than ``max_line_bytes`` is skipped unread (never held whole), even the
    first: a JSON value on one line is a line, whatever it holds.
    """
    max_line = limits.max_line_bytes
    head: list[bytes] = []
    skipped, blank = _skip_blank(reader, bom=True, limit=max_line)  # leading whitespace: offsets only
    first = reader.readline(max_line + 1)
    lineno = blank + 1
    if len(first) > max_line and not first.endswith(b"\n"):
        _skip_long_line(reader, first, lineno, sink, max_line)
        return _jsonl_rest(reader, lineno, 1, _Flavours(), sink, limits, decoder, b"\n", line_decoder)
    fast = line_decoder(first, f"line {lineno}", sink) if line_decoder is not None else None
    value, rewrite, exc = (_BAD, None, None) if fast is not None else loads_tolerant(first)
    if exc is None:
        flavours = _Flavours()
        if fast is not None:
            flavours.add(fast)
        else:
            _note_repairs(sink, f"line {lineno}", rewrite)
            flavours.add(call_json_decoder(decoder, value, f"line {lineno}", sink, first))
        return _jsonl_rest(reader, lineno, 1, flavours, sink, limits, decoder, first, line_decoder)
    # a bad first line: is the next line with content a JSON object on its own?
    head.append(first)
    _, blank = _skip_blank(reader, head)
    second = reader.readline(max_line + 1)
    head.append(second)
    # JSON Lines start each record at column 0; a pretty-printed document indents them
    jsonl_like = second.startswith(b"{") and first.strip() not in (b"[", b"{")
    value, rewrite, _ = loads_tolerant(second) if jsonl_like and len(second) <= max_line else (None, None, None)
    if isinstance(value, dict) and value:
        _reject_line(sink, lineno, first)
        lineno += blank + 1
        flavours = _Flavours()
        _note_repairs(sink, f"line {lineno}", rewrite)
        flavours.add(call_json_decoder(decoder, value, f"line {lineno}", sink, second))
        return _jsonl_rest(reader, lineno, 2, flavours, sink, limits, decoder, second, line_decoder)
    data = _read_rest(reader, b"".join(head), limits.max_document_bytes)
    return decode_documents(data, sink, decoder, line_decoder, base=skipped)


_BAD = object()


def _skip_blank(reader: io.BufferedReader, keep: list[bytes] | None = None, bom: bool = False,
                limit: int = -1) -> tuple[int, int]:
    """Skip whitespace in bulk (a file of newlines costs no Python per line); return (bytes, newlines).

    The skipped bytes are appended to ``keep`` when given (they belong to a document). Past
    ``limit`` bytes (when given) the input is refused: nothing in a trace file is that much
    whitespace, and a newline-filled bomb is stopped without expanding it further."""
    nbytes = lines = 0
    while True:
        buf = reader.peek(CHUNK)
        if bom and buf.startswith(BOM):
            reader.read(len(BOM))
            nbytes += len(BOM)
            bom = False
            continue
        bom = False
        k = len(buf) - len(buf.lstrip())  # lstrip() is fast; it also strips \v and \f, which JSON does not
        if b"\x0b" in buf[:k] or b"\x0c" in buf[:k]:
            k = len(buf) - len(buf.lstrip(_WS))
        if not k:
            return nbytes, lines
        lines += buf.count(b"\n", 0, k)
        nbytes += k
        taken = reader.read(k)
        if keep is not None:
            keep.append(taken)
        if 0 <= limit < nbytes:
            raise InputError(f"the first {nbytes} bytes are whitespace (more than max_line_bytes {limit})",
                             hint="not a trace file")
        if k < len(buf):
            return nbytes, lines


def _note_repairs(sink: Any, where: str, rewrite: Rewrite | None) -> None:
    if rewrite is not None:
        for note in rewrite.notes:
            sink.repair(where, note)


def _skip_long_line(reader: io.BufferedReader, line: bytes, lineno: int, sink: Any, max_line: int) -> None:
    """Read past the rest of an over-long line in pieces (nothing of it is parsed) and quarantine it."""
    total = len(line)
    while True:
        more = reader.readline(1 << 20)
        total += len(more)
        if not more or more.endswith(b"\n"):
            break
    sink.reject(
        f"line {lineno}",
        f"line of {total} bytes exceeds max_line_bytes {max_line}; skipped unread",
        raw=line[:4096],
        counts_as_span=False,
    )


def _reject_line(sink: Any, lineno: int, line: bytes) -> None:
    _, rewrite, exc = loads_tolerant(line)
    reason = "invalid JSON"
    if exc is not None and rewrite is not None:
        reason = f"invalid JSON: {describe(exc)} at byte {rewrite.original(error_offset(rewrite.data, exc))}"
    sink.reject(f"line {lineno}", reason, raw=line, counts_as_span=False)


def _jsonl_rest(
    reader: io.BufferedReader,
    lineno: int,
    records: int,
    flavours: _Flavours,
    sink: Any,
    limits: Limits,
    decoder: JsonDecoder,
    last_line: bytes,
    line_decoder: LineDecoder | None = None,
) -> str:
    max_line = limits.max_line_bytes
    readline = reader.readline
    loads = orjson.loads
    newline_ended = last_line.endswith(b"\n")
    while True:
        line = readline(max_line + 1)
        if not line:
            break
        lineno += 1
        if len(line) > max_line and not line.endswith(b"\n"):
            _skip_long_line(reader, line, lineno, sink, max_line)
            records += 1
            continue
        if line.isspace():
            lineno += _skip_blank(reader)[1]
            continue
        records += 1
        newline_ended = line.endswith(b"\n")
        if line_decoder is not None:
            fast = line_decoder(line, f"line {lineno}", sink)
            if fast is not None:
                flavours.add(fast)
                continue
        try:
            value = loads(line)
        except orjson.JSONDecodeError:
            value, rewrite, exc = loads_tolerant(line)
            if exc is not None:
                reason = f"invalid JSON: {describe(exc)} at byte {rewrite.original(error_offset(rewrite.data, exc))}"
                sink.reject(f"line {lineno}", reason, raw=line, counts_as_span=False)
                continue
            _note_repairs(sink, f"line {lineno}", rewrite)
        flavours.add(call_json_decoder(decoder, value, f"line {lineno}", sink, line))
    return flavours.label("jsonl" if records > 1 or newline_ended else "json")


def _read_rest(reader: io.BufferedReader, head: bytes, limit: int) -> bytes:
    parts = [head]
    total = len(head)
    while True:
        chunk = reader.read(1 << 20)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise InputError(
                f"JSON document larger than {limit} bytes",
                hint="split the file into JSON lines, or raise max_document_bytes",
            )
        parts.append(chunk)
    return b"".join(parts)


_WS = b" \t\r\n"


def decode_documents(data: bytes, sink: Any, decoder: JsonDecoder, line_decoder: LineDecoder | None = None,
                     base: int = 0) -> str:
    """Decode one document, or several concatenated ones, held in ``data``; return the label.

    A single document is first offered to ``line_decoder`` (the fast path), then parsed
    whole (with the tolerant re-read); if it still does not parse -- several documents,
    garbage between them, a damaged document -- the salvage of :mod:`.json_repair` reads
    every document and record that can be read and quarantines each damaged region with
    its byte range. ``base`` is the offset of ``data`` in the input (for locations).
    """
    flavours = _Flavours()
    start = len(data) - len(data.lstrip(_WS))
    if start == len(data):
        raise InputError("no JSON value found (only whitespace)")
    where = f"document 1 at byte {base + start}"
    fast = line_decoder(data, where, sink) if line_decoder is not None else None
    if fast is not None:
        flavours.add(fast)
        return flavours.label("json")
    value, rewrite, exc = loads_tolerant(data)
    if exc is None:
        _note_repairs(sink, where, rewrite)
        flavours.add(call_json_decoder(decoder, value, where, sink, None))
        return flavours.label("json")
    assert rewrite is not None

    def reject(location: str, reason: str, raw: bytes) -> None:
        sink.reject(location, reason, raw=raw, counts_as_span=False)

    salvage = Salvage(rewrite.data, reject, lambda p: base + rewrite.original(p))
    docs = salvage.run()
    if rewrite.notes and docs:
        _note_repairs(sink, f"document 1 at byte {base + start}" if len(docs) == 1 else "documents", rewrite)
    for n, (offset, value) in enumerate(docs, 1):
        where = f"document {n} at byte {base + rewrite.original(offset)}"
        flavours.add(call_json_decoder(decoder, value, where, sink, None))
    return flavours.label("json")
