"""JSON inputs for :mod:`container`: JSON Lines (streamed) and whole/concatenated documents.

JSON Lines are read one line at a time (never the whole file). When the first
line is not a complete JSON value the input is a pretty-printed document, a JSON
array, or several concatenated documents: it is read whole (bounded by
``max_document_bytes``) and split into documents; garbage between documents is
quarantined with its byte offset and reading goes on at the next ``{``.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from typing import Any

import orjson

from fabric_trace.errors import DecodeError, FabricError, InputError
from fabric_trace.ingest.container_io import DECODING_ERRORS
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
    is parsed and handed to ``decoder``.
    """
    max_line = limits.max_line_bytes
    lines: list[bytes] = []
    while True:  # leading blank lines, then the first line with content
        line = reader.readline(max_line + 1)
        if not lines and line.startswith(BOM):
            line = line[len(BOM) :]
        lines.append(line)
        if not line or not line.isspace():
            break
    first = lines[-1]
    lineno = len(lines)
    if len(first) > max_line and not first.endswith(b"\n"):  # one huge line: a whole document
        return decode_documents(_read_rest(reader, b"".join(lines), limits.max_document_bytes), sink, decoder,
                                line_decoder)
    fast = line_decoder(first, f"line {lineno}", sink) if line_decoder is not None else None
    value = _BAD if fast is not None else _loads(first)
    if fast is not None or value is not _BAD:
        flavours = _Flavours()
        flavours.add(fast if fast is not None else call_json_decoder(decoder, value, f"line {lineno}", sink, first))
        return _jsonl_rest(reader, lineno, 1, flavours, sink, limits, decoder, first, line_decoder)
    while True:  # a bad first line: is the next line with content a JSON object on its own?
        line = reader.readline(max_line + 1)
        lines.append(line)
        if not line or not line.isspace():
            break
    second = lines[-1]
    # JSON Lines start each record at column 0; a pretty-printed document indents them
    jsonl_like = second.startswith(b"{") and first.strip() not in (b"[", b"{")
    value = _loads(second) if jsonl_like and len(second) <= max_line else _BAD
    if isinstance(value, dict) and value:
        _reject_line(sink, lineno, first)
        lineno = len(lines)
        flavours = _Flavours()
        flavours.add(call_json_decoder(decoder, value, f"line {lineno}", sink, second))
        return _jsonl_rest(reader, lineno, 2, flavours, sink, limits, decoder, second, line_decoder)
    return decode_documents(_read_rest(reader, b"".join(lines), limits.max_document_bytes), sink, decoder,
                            line_decoder)


_BAD = object()


def _loads(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return _BAD


def _reject_line(sink: Any, lineno: int, line: bytes) -> None:
    try:
        orjson.loads(line)
        reason = "invalid JSON"
    except orjson.JSONDecodeError as exc:
        reason = f"invalid JSON: {exc}"
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
            total = len(line)
            while True:  # skip the rest of the over-long line
                more = readline(1 << 20)
                total += len(more)
                if not more or more.endswith(b"\n"):
                    break
            sink.reject(
                f"line {lineno}",
                f"line of {total} bytes exceeds max_line_bytes {max_line}; skipped",
                raw=line[:4096],
                counts_as_span=False,
            )
            records += 1
            continue
        if line.isspace():
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
        except orjson.JSONDecodeError as exc:
            sink.reject(f"line {lineno}", f"invalid JSON: {exc}", raw=line, counts_as_span=False)
            continue
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
_NON_WS = re.compile(r"[^ \t\r\n]")


def decode_documents(data: bytes, sink: Any, decoder: JsonDecoder, line_decoder: LineDecoder | None = None) -> str:
    """Decode one document, or several concatenated ones, held in ``data``; return the label.

    A single document is first offered to ``line_decoder`` (the fast path)."""
    flavours = _Flavours()
    start = len(data) - len(data.lstrip(_WS))
    if start == len(data):
        raise InputError("no JSON value found (only whitespace)")
    fast = line_decoder(data, f"document 1 at byte {start}", sink) if line_decoder is not None else None
    if fast is not None:
        flavours.add(fast)
        return flavours.label("json")
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    else:
        flavours.add(call_json_decoder(decoder, value, f"document 1 at byte {start}", sink, None))
        return flavours.label("json")
    _split_documents(data, flavours, sink, decoder)
    return flavours.label("json")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _split_documents(data: bytes, flavours: _Flavours, sink: Any, decoder: JsonDecoder) -> None:
    # json's C scanner finds where each document ends (orjson cannot parse a prefix);
    # orjson then parses the document's own bytes so strictness matches the JSONL path.
    text = data.decode("utf-8", "surrogateescape")
    scan = json.JSONDecoder(parse_constant=_reject_constant).raw_decode
    cpos = 0  # char offset in text
    bpos = 0  # byte offset of text[cpos] in data
    n = 0

    def advance(to: int) -> None:
        nonlocal cpos, bpos
        bpos += len(text[cpos:to].encode("utf-8", "surrogateescape"))
        cpos = to

    while True:
        m = _NON_WS.search(text, cpos)
        if m is None:
            break
        advance(m.start())
        try:
            _, end = scan(text, cpos)
            failure = None
        except (ValueError, RecursionError) as exc:
            end = cpos
            failure = exc
        if failure is None:
            blen = len(text[cpos:end].encode("utf-8", "surrogateescape"))
            raw = data[bpos : bpos + blen]
            n += 1
            where = f"document {n} at byte {bpos}"
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                sink.reject(where, f"invalid JSON: {exc}", raw=raw, counts_as_span=False)
            else:
                flavours.add(call_json_decoder(decoder, value, where, sink, raw))
            advance(end)
            continue
        err_at = getattr(failure, "pos", cpos) or cpos
        nxt = text.find("\n{", cpos + 1)
        nxt = nxt + 1 if nxt >= 0 else text.find("{", max(err_at, cpos + 1))
        if nxt < 0:
            nxt = len(text)
        start_b = bpos
        skipped = text[cpos:nxt].encode("utf-8", "surrogateescape")
        reason = failure.msg if isinstance(failure, json.JSONDecodeError) else str(failure)
        sink.reject(
            f"byte {start_b}",
            f"not a JSON document ({reason}); {len(skipped)} bytes skipped",
            raw=skipped,
            counts_as_span=False,
        )
        advance(nxt)
