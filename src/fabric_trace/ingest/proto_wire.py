"""A tiny protobuf wire-format walker and the ``KeyValue``/``AnyValue`` converter.

Used by :mod:`otlp_proto` for what upb does not do for us:

* converting the raw ``KeyValue`` bytes of attributes (see :mod:`proto_schema`) into
  Python values, with the value-depth cap and the string-size cap applied;
* splitting a message that upb refused into its top-level pieces, so only the
  bad piece is quarantined, and saying why a piece was refused.

Errors are signalled with :class:`WireError` / :class:`BadUtf8`, internal to the
ingest package (callers turn them into quarantine records).
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Iterator
from typing import Any

from fabric_trace.ingest.anyvalue import NON_FINITE

_unpack_double = struct.Struct("<d").unpack_from
_PROTO_JSON = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}  # as the protobuf JSON mapping spells them


class WireError(Exception):
    """Malformed protobuf wire data (truncated, bad varint, unsupported wire type)."""

    def __init__(self, offset: int, message: str, truncated: bool = False) -> None:
        super().__init__(f"{message} at byte {offset}")
        self.offset = offset
        self.message = message
        self.truncated = truncated  # the data ends inside the field (more bytes might complete it)

    def at(self, base: int) -> str:
        """The error with its offset counted from ``base`` bytes earlier (a piece of a message)."""
        return f"{self.message} at byte {self.offset + base}"


class BadUtf8(Exception):
    """A protobuf string field holds bytes that are not valid UTF-8."""

    def __init__(self, what: str) -> None:
        super().__init__(f"bad UTF-8 in a string field ({what})")
        self.what = what


def read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read a base-128 varint at ``pos``; return (value, next position)."""
    result = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise WireError(start, "truncated varint", truncated=True)
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError(start, "varint longer than 10 bytes")


def iter_fields(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int, int]]:
    """Walk the fields of the message in ``buf[start:end]``.

    Yields ``(field_number, wire_type, value, payload_start, payload_end)``: for a
    length-delimited field ``value`` is the length and the payload is its bytes; for a
    varint ``value`` is the number; for fixed64/fixed32 the payload holds the 8/4 bytes.
    Raises :class:`WireError` (with the byte offset) on malformed data.
    """
    pos = start
    while pos < end:
        tag_at = pos
        tag, pos = read_varint(buf, pos, end)
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise WireError(tag_at, "field number 0")
        if wire == 2:
            length, pos = read_varint(buf, pos, end)
            stop = pos + length
            if stop > end:
                raise WireError(tag_at, f"field {field} length {length} runs past the end", truncated=True)
            yield field, wire, length, pos, stop
            pos = stop
        elif wire == 0:
            value, nxt = read_varint(buf, pos, end)
            yield field, wire, value, pos, nxt
            pos = nxt
        elif wire == 1 or wire == 5:
            stop = pos + (8 if wire == 1 else 4)
            if stop > end:
                raise WireError(tag_at, f"fixed field {field} runs past the end", truncated=True)
            yield field, wire, 0, pos, stop
            pos = stop
        else:
            raise WireError(tag_at, f"unsupported wire type {wire} (field {field})")


def _text(buf: bytes, p: int, q: int, what: str) -> str:
    try:
        return buf[p:q].decode()
    except UnicodeDecodeError:
        raise BadUtf8(what) from None


def repaired_text(buf: bytes, p: int, q: int, what: str, notes: list[str]) -> str:
    """A string field, invalid UTF-8 replaced with U+FFFD (and a note in ``notes``)."""
    try:
        return buf[p:q].decode()
    except UnicodeDecodeError as exc:
        notes.append(f"invalid UTF-8 in {what} (from byte {exc.start} of the value) replaced with U+FFFD")
        return buf[p:q].decode("utf-8", "replace")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def repair_strings(buf: bytes, start: int, end: int, strings: dict[int, Any], base: int = 0,
                   notes: list[str] | None = None) -> tuple[bytes, list[str]]:
    """The message in ``buf[start:end]`` with invalid UTF-8 in its string fields (``strings``, as
    for :func:`diagnose`) replaced with U+FFFD; and one note per repaired field, with its byte
    offset (counted from ``base`` bytes before ``buf``). Raises :class:`WireError` if malformed."""
    notes = [] if notes is None else notes
    out: list[bytes] = []
    prev = start  # buf[prev:] not copied yet
    next_field = start  # fields are contiguous: each starts where the previous one ended
    for field, wire, _n, p, q in iter_fields(buf, start, end):
        here, next_field = next_field, q
        spec = strings.get(field)
        if spec is None or wire != 2:
            continue
        if isinstance(spec, dict):
            inner, _ = repair_strings(buf, p, q, spec, base, notes)
            if inner == buf[p:q]:
                continue
            fixed = inner
        else:
            try:
                buf[p:q].decode()
                continue
            except UnicodeDecodeError as exc:
                notes.append(f"invalid UTF-8 in {spec} at message byte {p + exc.start + base} replaced with U+FFFD")
                fixed = buf[p:q].decode("utf-8", "replace").encode()
        out.append(buf[prev:here])
        out.append(_varint(field << 3 | 2) + _varint(len(fixed)) + fixed)
        prev = q
    out.append(buf[prev:end])
    return b"".join(out), notes


class ValueDecoder:
    """Converts raw ``KeyValue`` / ``AnyValue`` bytes into Python values.

    ``notes`` collects the repairs made while converting one value (value emptied
    past ``max_depth``, string truncated, NaN/Infinity dropped); the caller records
    them with ``sink.repair`` and must not cache such a value.
    """

    __slots__ = ("max_depth", "max_str", "notes")

    def __init__(self, max_depth: int, max_str: int) -> None:
        self.max_depth = max_depth
        self.max_str = max_str
        self.notes: list[str] = []

    def key_value(self, buf: bytes) -> tuple[str, Any]:
        """Decode one ``KeyValue`` message: (key, converted value)."""
        # Fast case: short key, one short scalar value (the usual attribute), all lengths one byte.
        n = len(buf)
        if n > 4 and buf[0] == 0x0A and buf[1] < 0x80:
            p = buf[1] + 2  # end of the key
            if p + 3 < n and buf[p] == 0x12 and buf[p + 1] < 0x80 and buf[p + 1] == n - p - 2:
                tag = buf[p + 2]
                try:
                    if tag == 0x0A:  # string_value
                        size = n - p - 4
                        if buf[p + 3] == size and size <= self.max_str:
                            return buf[2:p].decode(), buf[p + 4 :].decode()
                    elif tag == 0x18:  # int_value
                        if buf[n - 1] < 0x80:
                            num, end = read_varint(buf, p + 3, n)
                            if end == n:
                                return buf[2:p].decode(), num - (1 << 64) if num >= (1 << 63) else num
                    elif tag == 0x10:  # bool_value
                        if n == p + 4 and buf[p + 3] < 0x80:
                            return buf[2:p].decode(), buf[p + 3] != 0
                except UnicodeDecodeError:
                    pass  # the general path below says which field
        key = ""
        value: Any = None
        for field, wire, _n, p, q in iter_fields(buf, 0, len(buf)):
            if wire != 2:
                continue
            if field == 1:
                key = repaired_text(buf, p, q, "attribute key", self.notes)
            elif field == 2:
                value = self.any_value(buf, p, q, 1, key)
        return key, value

    def any_value(self, buf: bytes, start: int, end: int, depth: int, key: str) -> Any:
        """Decode the ``AnyValue`` in ``buf[start:end]`` found at nesting ``depth`` (1 = top)."""
        if depth > self.max_depth:
            note = f"attribute {key!r}: value nested deeper than {self.max_depth} levels emptied"
            if note not in self.notes:
                self.notes.append(note)
            return None
        value: Any = None
        for field, wire, num, p, q in iter_fields(buf, start, end):
            if wire == 2:
                if field == 1:
                    value = self._string(buf, p, q, key)
                elif field == 5:
                    value = [
                        self.any_value(buf, ip, iq, depth + 1, key)
                        for f, w, _n, ip, iq in iter_fields(buf, p, q)
                        if f == 1 and w == 2
                    ]
                elif field == 6:
                    value = self._kvlist(buf, p, q, depth, key)
                elif field == 7:
                    value = base64.b64encode(buf[p:q]).decode("ascii")
            elif wire == 0:
                if field == 2:
                    value = num != 0
                elif field == 3:
                    value = num - (1 << 64) if num >= (1 << 63) else num
            elif wire == 1 and field == 4:
                value = _unpack_double(buf, p)[0]
                if not math.isfinite(value):
                    self.notes.append(f"attribute {key!r}: {NON_FINITE.format(_PROTO_JSON.get(str(value), value))}; "
                                      "value emptied")
                    value = None
        return value

    def _kvlist(self, buf: bytes, start: int, end: int, depth: int, key: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f, w, _n, p, q in iter_fields(buf, start, end):
            if f != 1 or w != 2:
                continue
            k = ""
            v: Any = None
            for f2, w2, _n2, p2, q2 in iter_fields(buf, p, q):
                if w2 != 2:
                    continue
                if f2 == 1:
                    k = repaired_text(buf, p2, q2, f"key inside attribute {key!r}", self.notes)
                elif f2 == 2:
                    v = self.any_value(buf, p2, q2, depth + 1, key)
            out[k] = v
        return out

    def _string(self, buf: bytes, p: int, q: int, key: str) -> str:
        text = repaired_text(buf, p, q, f"attribute {key!r}", self.notes)
        if q - p > self.max_str:
            text = buf[p : p + self.max_str].decode("utf-8", "ignore")
            self.notes.append(f"attribute {key!r}: string of {q - p} bytes truncated to {self.max_str}")
        return text


def status(buf: bytes, notes: list[str]) -> tuple[int, str | None]:
    """Decode a ``Status`` message: (code as int32, message or None); repairs are noted in ``notes``."""
    code = 0
    message = None
    for field, wire, num, p, q in iter_fields(buf, 0, len(buf)):
        if field == 3 and wire == 0:
            code = num & 0xFFFFFFFF
            if code >= 1 << 31:
                code -= 1 << 32
        elif field == 2 and wire == 2:
            message = repaired_text(buf, p, q, "status.message", notes) or None
    return code, message


#: String fields of a Span (and its nested messages) that upb validates as UTF-8,
#: by field number; a dict is a nested message.
SPAN_STRINGS: dict[int, Any] = {
    3: "trace_state",
    5: "name",
    11: {2: "events.name"},
    13: {3: "links.trace_state"},
    15: {2: "status.message"},
}
#: Same for InstrumentationScope (name, version) and for ScopeSpans / ResourceSpans.
SCOPE_STRINGS: dict[int, Any] = {1: "scope.name", 2: "scope.version"}


def diagnose(buf: bytes, start: int, end: int, strings: dict[int, Any], base: int = 0) -> str:
    """Say why upb refused the message in ``buf[start:end]`` (bad UTF-8 or malformed);
    offsets are counted from ``base`` bytes before ``buf``."""
    try:
        _check_strings(buf, start, end, strings)
    except BadUtf8 as exc:
        return str(exc)
    except WireError as exc:
        return f"malformed protobuf: {exc.at(base)}"
    return "malformed protobuf"


def _check_strings(buf: bytes, start: int, end: int, strings: dict[int, Any]) -> None:
    for field, wire, _n, p, q in iter_fields(buf, start, end):
        spec = strings.get(field)
        if spec is None or wire != 2:
            continue
        if isinstance(spec, dict):
            _check_strings(buf, p, q, spec)
        else:
            _text(buf, p, q, spec)


def span_ids(buf: bytes, start: int, end: int) -> tuple[str | None, str | None]:
    """Best-effort (trace id, span id) hex of a span whose message could not be decoded."""
    trace_id = span_id = None
    try:
        for field, wire, _n, p, q in iter_fields(buf, start, end):
            if wire == 2 and field == 1:
                trace_id = buf[p:q].hex()
            elif wire == 2 and field == 2:
                span_id = buf[p:q].hex()
    except WireError:
        pass
    return trace_id, span_id
