"""JSON that orjson refuses: the tolerant re-read of a record and the salvage of a damaged document.

Rules (docs/cli.md, "Bad JSON"), applied only to a record (a JSON line or a document)
that orjson refused, so valid input never pays for them:

1. **Tolerant re-read.** The record is read again once with these repairs, each counted
   as one repair of the record (``sink.repair``) with the byte offsets, in the file's
   bytes, of the first few places it was made:

   * invalid UTF-8 -> U+FFFD (each maximal invalid byte sequence, as Python's
     ``"replace"``), and a lone UTF-16 surrogate escape (``"\\ud800"`` without its pair)
     -> ``"\\ufffd"``;
   * the bare tokens ``NaN``, ``Infinity``, ``-Infinity`` (not JSON, but written by
     Python's ``json`` and JavaScript encoders) and numbers beyond the double range
     (``1e400``) -> the same token as a string (``"NaN"``): the string form the
     protobuf JSON mapping uses. Each field's own rule then applies to that string, as
     to one written quoted (a ``doubleValue`` becomes the non-finite double, which is
     emptied and counted; a timestamp is rejected);
   * nesting deeper than :data:`MAX_JSON_DEPTH` levels: the deeper value is read as
     ``null`` (no separate repair: in OTLP that only happens inside an attribute value
     nested far beyond the 64-level ``AnyValue`` limit, which empties and counts it).

2. **Salvage of a document** that still does not parse (a syntax error: a bad byte, a
   truncated or spliced file). One pass over the bytes (:class:`_Salvage`) reads the
   document's skeleton -- OTLP ``resourceSpans`` -> ``scopeSpans`` -> ``spans``, Jaeger
   ``data`` -> ``spans``, a top-level array, concatenated documents -- and parses each
   span (each record of a list) on its own. A record that does not parse, or a break in
   the skeleton's own syntax, starts a *damaged region*; the region ends where the next
   record at any open level (span, scope, resource, document) starts, found by its first
   key (``{"traceId":``, ``{"scope":``, ``{"resource":``, ``{"resourceSpans":``...; a
   span must also parse and have both ids and a name or a start time). Each region is one quarantine
   record with its byte range (``bytes A-B``); everything outside it loads, at the
   locations a whole parse would give. Time is linear in the input: every byte is
   scanned a bounded number of times.
"""

from __future__ import annotations

import bisect
import codecs
import math
import re
from typing import Any

import orjson

#: JSON nesting kept by the tolerant re-read (orjson itself stops at 1024 levels).
MAX_JSON_DEPTH = 512

#: Placed in a list where the salvage dropped a damaged record (decoders skip it), so the
#: records after it keep the index a whole parse would give them.
DAMAGED: Any = type("Damaged", (), {"__repr__": lambda self: "<damaged record>"})()

_SHOWN = 5  # offsets listed in one repair note
RAW_BYTES = 4096  # bytes of a damaged region kept in its quarantine record


class _Shifts:
    """Maps byte offsets of a rewritten buffer back to the buffer it was made from."""

    def __init__(self) -> None:
        self.new: list[int] = []  # offsets in the new buffer where a change ends
        self.delta: list[int] = []  # old - new from there on

    def add(self, new_end: int, old_end: int) -> None:
        self.new.append(new_end)
        self.delta.append(old_end - new_end)

    def old(self, pos: int) -> int:
        i = bisect.bisect_right(self.new, pos) - 1
        return pos if i < 0 else pos + self.delta[i]


class Rewrite:
    """The tolerant re-read of one record: the repaired bytes, the notes, the offset maps."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.notes: list[str] = []
        self._maps: list[_Shifts] = []  # applied in order; mapped back in reverse

    def original(self, pos: int) -> int:
        """The offset in the record as read of offset ``pos`` of :attr:`data`."""
        for m in reversed(self._maps):
            pos = m.old(pos)
        return pos

    # -- 1: UTF-8 -------------------------------------------------------------------
    def fix_utf8(self) -> None:
        data = self.data
        try:
            data.decode("utf-8")
            return
        except UnicodeDecodeError:
            pass
        bad: list[tuple[int, int]] = []
        _ERRORS.append(bad)
        try:
            text = data.decode("utf-8", _HANDLER)
        finally:
            _ERRORS.pop()
        out = text.encode("utf-8")
        shifts = _Shifts()
        grow = 0
        for s, e in bad:
            grow += 3 - (e - s)
            shifts.add(e + grow, e)
        self._maps.append(shifts)
        self.data = out
        self.notes.append(f"invalid UTF-8 ({_count(len(bad), 'byte sequence')}) at {_at([s for s, _ in bad])} "
                          "replaced with U+FFFD")

    # -- 2: literals and surrogate escapes --------------------------------------------
    def fix_literals(self) -> None:
        data = self.data
        if not _LITERAL_HINT.search(data):
            return
        shifts = _Shifts()
        found: dict[str, list[int]] = {}
        grow = 0

        def sub(m: re.Match[bytes]) -> bytes:
            nonlocal grow
            tok = m.group()
            if tok[:1] == b'"':
                if b"\\u" not in tok:
                    return tok
                fixed = _SURROGATE.sub(_fix_surrogate, tok)
                if fixed != tok:
                    found.setdefault("surrogate", []).append(m.start())
                return fixed
            if tok not in (b"NaN", b"Infinity", b"-Infinity"):
                try:
                    if not math.isinf(float(tok)):
                        return tok
                except ValueError:
                    return tok
            found.setdefault(tok.decode(), []).append(m.start())
            grow += 2
            shifts.add(m.end() + grow, m.end())
            return b'"' + tok + b'"'

        self.data = _LITERALS.sub(sub, data)
        self._maps.append(shifts)
        for what, where in found.items():
            at = _at([self.original_before(shifts, p) for p in where])
            if what == "surrogate":
                self.notes.append(f"lone UTF-16 surrogate escape at {at} replaced with U+FFFD")
            else:
                self.notes.append(f"bare {what} ({_count(len(where), 'time')}) at {at} read as the string \"{what}\"")

    def original_before(self, last: _Shifts, pos: int) -> int:
        """Original offset of ``pos`` in the buffer the map ``last`` (the newest) was made from."""
        for m in reversed(self._maps):
            if m is last:
                continue
            pos = m.old(pos)
        return pos

    # -- 3: depth ---------------------------------------------------------------------
    def cut_depth(self, limit: int = MAX_JSON_DEPTH) -> None:
        data = self.data
        out: list[bytes] = []
        shifts = _Shifts()
        depth = 0
        skip_from = -1  # start of the value being cut, -1 when not cutting
        kept = 0  # data[kept:] not copied yet
        grow = 0
        for m in _RUNS.finditer(data):
            c = data[m.start()]
            if c in _OPEN:
                depth += 1
                if depth == limit + 1 and skip_from < 0:
                    skip_from = m.start()
            elif c in _CLOSE:
                if depth == limit + 1 and skip_from >= 0:
                    out.append(data[kept:skip_from])
                    out.append(b"null")
                    grow += 4 - (m.end() - skip_from)
                    kept = m.end()
                    shifts.add(m.end() + grow, m.end())
                    skip_from = -1
                depth = max(0, depth - 1)
        if skip_from >= 0:  # the document ends inside the cut value: cut to the end
            out.append(data[kept:skip_from])
            out.append(b"null")
            kept = len(data)
        out.append(data[kept:])
        self.data = b"".join(out)
        self._maps.append(shifts)


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _at(offsets: list[int]) -> str:
    shown = ", ".join(str(p) for p in offsets[:_SHOWN])
    more = f" and {len(offsets) - _SHOWN} more" if len(offsets) > _SHOWN else ""
    return f"byte{'s' if len(offsets) > 1 else ''} {shown}{more}"


_ERRORS: list[list[tuple[int, int]]] = []


def _note_utf8(exc: UnicodeError) -> tuple[str, int]:
    assert isinstance(exc, UnicodeDecodeError)
    _ERRORS[-1].append((exc.start, exc.end))
    return "\ufffd", exc.end


_HANDLER = "fabric-json-utf8"
codecs.register_error(_HANDLER, _note_utf8)

_NUM_BIG = rb"-?\d+(?:\.\d+)?[eE][+-]?\d{3,}|-?\d{300,}(?:\.\d*)?(?:[eE][+-]?\d+)?"
_LITERALS = re.compile(
    rb'"(?:[^"\\]++|\\.)*+"|(?<![\w.+\-])(?:-?Infinity|NaN|' + _NUM_BIG + rb")(?![\w.])", re.S
)
_LITERAL_HINT = re.compile(rb"NaN|Infinity|\\u[dD][89a-fA-F]|[eE][+-]?\d{3}|\d{300}")
_SURROGATE = re.compile(
    rb"\\u([dD][89abAB][0-9a-fA-F]{2})(\\u[dD][c-fC-F][0-9a-fA-F]{2})?|\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\.", re.S
)


def _fix_surrogate(m: re.Match[bytes]) -> bytes:
    tok = m.group()
    if len(tok) == 2 or m.group(2):  # another escape, or a valid surrogate pair
        return tok
    return b"\\ufffd"


#: Runs of anything but brackets (strings whole, so brackets inside them do not count), or one bracket.
_RUNS = re.compile(rb'(?:[^\[\]{}"]++|"(?:[^"\\]++|\\.)*+"?)++|.', re.S)
_OPEN = (0x7B, 0x5B)
_CLOSE = (0x7D, 0x5D)


def loads_tolerant(raw: bytes) -> tuple[Any, Rewrite | None, orjson.JSONDecodeError | None]:
    """Parse ``raw``; if orjson refuses it, re-read it with the repairs of rule 1.

    Returns ``(value, rewrite, None)`` -- ``rewrite`` is ``None`` when no repair was
    needed, else it holds the notes -- or ``(None, rewrite, error)`` when the record has a
    syntax error even so (``rewrite.data`` is then the repaired bytes, for the salvage).
    """
    try:
        return orjson.loads(raw), None, None
    except orjson.JSONDecodeError:
        pass
    rw = Rewrite(raw)
    rw.fix_utf8()
    rw.fix_literals()
    try:
        return orjson.loads(rw.data), rw, None
    except orjson.JSONDecodeError as exc:
        if "depth" not in str(exc) and "recursion" not in str(exc):
            return None, rw, exc
    rw.cut_depth()
    try:
        return orjson.loads(rw.data), rw, None
    except orjson.JSONDecodeError as exc:
        return None, rw, exc


def error_offset(data: bytes, exc: orjson.JSONDecodeError) -> int:
    """The byte offset in ``data`` (valid UTF-8) of orjson's error (which counts characters)."""
    pos = int(getattr(exc, "pos", 0) or 0)
    head = data[: pos * 4]
    try:
        return len(head.decode("utf-8", "replace")[:pos].encode("utf-8"))
    except (UnicodeError, ValueError):
        return pos


def describe(exc: orjson.JSONDecodeError) -> str:
    """orjson's message without its ``line 1 column N (char N)`` tail (the byte offset is given instead)."""
    msg = getattr(exc, "msg", None) or str(exc)
    return msg.split(": line ")[0]


# ---------------------------------------------------------------------------------------
# Salvage of a damaged document (rule 2)
# ---------------------------------------------------------------------------------------

_WS = re.compile(rb"[ \t\r\n]*")
_KEY = re.compile(rb'"((?:[^"\\]++|\\.)*+)"[ \t\r\n]*:[ \t\r\n]*', re.S)
_STRING = re.compile(rb'"(?:[^"\\\x00-\x1f]++|\\.)*+"', re.S)
_SCALAR = re.compile(rb'[^ \t\r\n,\]}{\["]+')

# What each skeleton object holds: key -> kind of the list under it (or of the object, for a wrapper).
_DOC_KEYS = {"resourceSpans": "rs", "resource_spans": "rs", "batches": "rs", "data": "jtrace",
             "trace": "doc", "result": "doc"}
_SKELETON: dict[str, dict[str, str]] = {
    "doc": _DOC_KEYS,
    "rs": {"scopeSpans": "ss", "scope_spans": "ss", "instrumentationLibrarySpans": "ss",
           "instrumentation_library_spans": "ss"},
    "ss": {"spans": "span"},
    "jtrace": {"spans": "jspan"},
}
#: Kinds read as skeleton objects (the others -- spans, records of a top-level list -- are parsed whole).
_OBJECT_KINDS = frozenset(_SKELETON)
#: Keys by which a record of each kind is recognised where it starts (its first key).
_FIRST_KEYS: dict[str, tuple[str, ...]] = {
    "top": tuple(_DOC_KEYS),
    "item": tuple(_DOC_KEYS) + ("traceId", "traceID"),
    "doc": tuple(_DOC_KEYS),
    "rs": ("resource", "scopeSpans", "scope_spans", "instrumentationLibrarySpans", "instrumentation_library_spans"),
    "ss": ("scope", "spans", "instrumentationLibrary", "instrumentation_library"),
    "span": ("traceId", "trace_id", "spanId", "span_id"),
    "jtrace": ("traceID",),
    "jspan": ("traceID", "spanID"),
}
_SPAN_FIELDS = frozenset(("name", "startTimeUnixNano", "start_time_unix_nano", "endTimeUnixNano",
                          "end_time_unix_nano", "kind", "parentSpanId", "parent_span_id"))


_MAX_SKELETON = 16  # open lists before everything deeper is read as a plain value (wrappers cannot recurse)


class _Syntax(Exception):
    def __init__(self, pos: int, reason: str) -> None:
        super().__init__(reason)
        self.pos = pos
        self.reason = reason


class Salvage:
    """One pass over a damaged document (rule 2 of the module docstring).

    :meth:`run` returns the documents found, as ``(byte offset, value)``; damaged
    regions were reported with ``reject(location, reason, raw)`` as they were found.
    ``original`` maps an offset in ``data`` to the offset reported (the record's own
    bytes, before the repairs of rule 1, plus ``base``).
    """

    def __init__(self, data: bytes, reject: Any, original: Any) -> None:
        self.data = data
        self.n = len(data)
        self.reject = reject
        self.original = original
        self.kinds: list[str] = []  # element kind of each open list (index 0: the top level)
        self.resume: tuple[int, int] | None = None  # (list index, offset) to continue at
        self.regions = 0

    # -- scanning helpers ---------------------------------------------------------
    def _ws(self, pos: int) -> int:
        return _WS.match(self.data, pos).end()  # type: ignore[union-attr]

    def _end_of_value(self, pos: int) -> int:
        """Where the value starting at ``pos`` ends (brackets matched, strings skipped)."""
        data = self.data
        if pos >= self.n:
            raise _Syntax(pos, "unexpected end of the document")
        c = data[pos]
        if c == 0x22:
            m = _STRING.match(data, pos)
            if m is None:
                raise _Syntax(pos, "unterminated string")
            return m.end()
        if c not in _OPEN:
            m = _SCALAR.match(data, pos)
            if m is None:
                raise _Syntax(pos, "expected a JSON value")
            return m.end()
        depth = 0
        for m in _RUNS.finditer(data, pos):
            b = data[m.start()]
            if b in _OPEN:
                depth += 1
            elif b in _CLOSE:
                depth -= 1
                if depth == 0:
                    return m.end()
        raise _Syntax(self.n, "unexpected end of the document")

    def _leaf(self, pos: int) -> tuple[Any, int]:
        end = self._end_of_value(pos)
        try:
            return orjson.loads(self.data[pos:end]), end
        except orjson.JSONDecodeError as exc:
            raise _Syntax(pos + error_offset(self.data[pos:end], exc), describe(exc)) from None

    # -- the skeleton -----------------------------------------------------------
    def run(self) -> list[tuple[int, Any]]:
        docs: list[tuple[int, Any]] = []
        self.kinds = ["top"]
        pos = self._ws(0)
        while pos < self.n:
            start = pos
            try:
                whole = self._whole(pos)
                if whole is not None:
                    docs.append((start, whole[0]))
                    pos = self._ws(whole[1])
                    continue
                c = self.data[pos]
                if c == 0x7B:
                    value, pos = self._object(pos, "doc")
                elif c == 0x5B:
                    value, pos = self._array(pos, "item")
                else:
                    raise _Syntax(pos, "expected a JSON document")
                docs.append((start, value))
            except _Syntax as err:
                self._damaged(start, start + 1, err)
            if self.resume is not None:
                _, pos = self.resume
                self.resume = None
            pos = self._ws(pos)
        return docs

    def _whole(self, pos: int) -> tuple[Any, int] | None:
        """A document that parses on its own (concatenated documents): (value, end), else None."""
        try:
            end = self._end_of_value(pos)
        except _Syntax:
            return None
        try:
            return orjson.loads(self.data[pos:end]), end
        except orjson.JSONDecodeError:
            return None

    def _object(self, pos: int, kind: str) -> tuple[dict[str, Any], int]:
        data = self.data
        out: dict[str, Any] = {}
        pos = self._ws(pos + 1)
        if pos < self.n and data[pos] == 0x7D:
            return out, pos + 1
        children = _SKELETON.get(kind, {}) if len(self.kinds) < _MAX_SKELETON else {}
        while True:
            m = _KEY.match(data, pos)
            if m is None:
                return out, self._broken(pos, "expected a key")
            try:
                key = orjson.loads(b'"' + m.group(1) + b'"')
            except orjson.JSONDecodeError:
                return out, self._broken(pos, "bad key")
            pos = m.end()
            child = children.get(key)
            first = data[pos] if pos < self.n else 0
            if child is not None and first == 0x5B:
                value, pos = self._array(pos, child)
            elif child == "doc" and first == 0x7B:
                self.kinds.append("doc")  # a wrapper counts as a level (bounds the recursion)
                try:
                    value, pos = self._object(pos, "doc")
                finally:
                    self.kinds.pop()
            else:
                value, pos = self._leaf(pos)
            out[key] = value
            if self.resume is not None:
                return out, pos
            pos = self._ws(pos)
            c = data[pos] if pos < self.n else 0
            if c == 0x2C:
                pos = self._ws(pos + 1)
            elif c == 0x7D:
                return out, pos + 1
            else:
                return out, self._broken(pos, "expected ',' or '}'")

    def _array(self, pos: int, kind: str) -> tuple[list[Any], int]:
        data = self.data
        out: list[Any] = []
        me = len(self.kinds)
        self.kinds.append(kind)
        try:
            pos = self._ws(pos + 1)
            if pos < self.n and data[pos] == 0x5D:
                return out, pos + 1
            while True:
                start = pos
                try:
                    if pos < self.n and data[pos] == 0x7B and (kind in _OBJECT_KINDS or (
                            kind == "item" and self._first_key(pos) in _DOC_KEYS)):
                        value, pos = self._object(pos, kind if kind != "item" else "doc")
                    else:
                        value, pos = self._leaf(pos)
                    out.append(value)
                except _Syntax as err:
                    out.append(DAMAGED)
                    self._damaged(start, start + 1, err)
                if self.resume is not None:
                    target, at = self.resume
                    if target != me:
                        return out, at
                    self.resume = None
                    pos = at
                    continue
                pos = self._ws(pos)
                c = data[pos] if pos < self.n else 0
                if c == 0x2C:
                    pos = self._ws(pos + 1)
                elif c == 0x5D:
                    return out, pos + 1
                else:
                    if kind in _LEAF_KINDS and out and out[-1] is not DAMAGED and not _record_like(out[-1], kind):
                        # an element that is not a record, then no ',' or ']': it is part of the damage
                        out[-1] = DAMAGED
                        self._damaged(start, start + 1, _Syntax(pos, "expected ',' or ']'"))
                    else:
                        self._broken(pos, "expected ',' or ']'")
                    target, at = self.resume  # type: ignore[misc]
                    if target != me:
                        return out, at
                    self.resume = None
                    pos = at
        finally:
            self.kinds.pop()

    def _first_key(self, pos: int) -> str | None:
        m = _KEY.match(self.data, self._ws(pos + 1))
        return m.group(1).decode("utf-8", "replace") if m else None

    # -- damage -------------------------------------------------------------------
    def _broken(self, pos: int, reason: str) -> int:
        """The skeleton's own syntax is broken at ``pos``: a region starts there."""
        self._damaged(pos, pos, _Syntax(pos, reason))
        assert self.resume is not None
        return self.resume[1]

    def _damaged(self, start: int, search: int, err: _Syntax) -> None:
        """Record the region from ``start`` to the next readable record; set :attr:`resume`."""
        target, at = self._resync(search)
        if at < 0:
            target, at = -1, self.n
        self.regions += 1
        a, b = self.original(start), self.original(at)
        self.reject(f"bytes {a}-{b}", f"damaged JSON ({err.reason} at byte {self.original(err.pos)}); "
                    f"{b - a} bytes skipped", self.data[start : min(at, start + RAW_BYTES)])
        self.resume = (target, at)

    def _resync(self, pos: int) -> tuple[int, int]:
        """The next record start, at any open level, at or after ``pos``: (list index, offset); -1 if none."""
        levels = list(enumerate(self.kinds))
        keys = sorted({k for _, kind in levels for k in _FIRST_KEYS[kind]}, key=len, reverse=True)
        pattern = _resync_pattern(tuple(keys))
        data = self.data
        while True:
            m = pattern.search(data, pos)
            if m is None:
                return -1, -1
            key = m.group(1).decode()
            start = m.start()
            for index, kind in reversed(levels):
                if key not in _FIRST_KEYS[kind]:
                    continue
                if kind in _OBJECT_KINDS or kind == "top" or (kind == "item" and key in _DOC_KEYS):
                    return index, start
                if self._is_record(start, kind):
                    return index, start
            pos = m.end()

    def _is_record(self, pos: int, kind: str) -> bool:
        try:
            value, _ = self._leaf(pos)
        except _Syntax:
            return False
        return _record_like(value, kind)


_LEAF_KINDS = frozenset(("span", "jspan", "item"))


def _record_like(value: Any, kind: str) -> bool:
    """Does a parsed value look like a record of ``kind`` (where a resync may land)?"""
    if type(value) is not dict:
        return False
    if kind == "span":  # both ids (a fragment of a damaged span lacks the first) and a span field
        return (("traceId" in value and "spanId" in value) or ("trace_id" in value and "span_id" in value)) and (
            not _SPAN_FIELDS.isdisjoint(value))
    if kind == "jspan":
        return "spanID" in value and ("operationName" in value or "startTime" in value)
    return ("traceId" in value and "id" in value) or ("traceID" in value and "spans" in value) or (
        not _DOC_KEYS.keys().isdisjoint(value))  # item: a Zipkin span, a Jaeger trace, an OTLP document


_PATTERNS: dict[tuple[str, ...], re.Pattern[bytes]] = {}


def _resync_pattern(keys: tuple[str, ...]) -> re.Pattern[bytes]:
    p = _PATTERNS.get(keys)
    if p is None:
        alt = b"|".join(re.escape(k.encode()) for k in keys)
        p = _PATTERNS[keys] = re.compile(rb'\{[ \t\r\n]*"(' + alt + rb')"[ \t\r\n]*:')
    return p
