"""Shared helpers of the JSON decoders: OTLP AnyValue, ids, int64 timestamps.

Rules (documented here once, used by the OTLP, Jaeger and Zipkin decoders):

* An invalid *value* never rejects a span: it is repaired (``sink.repair``) and
  the span is kept. A double that is not finite is emptied (:data:`NON_FINITE`). A value nested deeper than :data:`MAX_DEPTH` becomes
  ``None``; a string longer than :data:`MAX_ATTR_BYTES` UTF-8 bytes is cut on a
  character boundary; an unparseable or out-of-range ``intValue`` becomes
  ``None``; a malformed key/value entry is skipped; for a duplicate key the last
  value wins.
* An invalid *id* or *timestamp* raises :class:`~fabric_trace.errors.DecodeError`
  with a reason; the caller rejects the span.

Inputs are values produced by ``orjson.loads`` (strings are valid UTF-8).
"""

from __future__ import annotations

import base64
import binascii
import reprlib
from typing import Any

import orjson

from fabric_trace.errors import DecodeError
from fabric_trace.ingest.batch import MAX_TIME_NS, SpanBatch, SpanSink

#: Deepest AnyValue nesting kept (a top-level attribute value is depth 1).
MAX_DEPTH = 64
#: Largest string value kept, in UTF-8 bytes; longer strings are truncated.
MAX_ATTR_BYTES = 64 * 1024
#: Strings of at most this many characters cannot exceed MAX_ATTR_BYTES (4 bytes/char).
FAST_CHARS = MAX_ATTR_BYTES // 4
#: The one rule for NaN and infinities in every format: a double value that is not finite
#: (protobuf NaN/Inf; JSON ``"NaN"``, ``"Infinity"``, ``"-Infinity"``, quoted as the protobuf
#: JSON mapping writes them or bare, or a number beyond the double range) is emptied and
#: counted as a repair -- the attribute JSON cannot hold it.
NON_FINITE = "double value {!r} is not finite (JSON cannot hold it)"

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_HEXCHARS = frozenset("0123456789abcdefABCDEF")
_B64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_=")
_raw_repr = reprlib.Repr()
_raw_repr.maxstring = 2000
_raw_repr.maxother = 200


def raw_json(obj: Any) -> bytes | str:
    """Serialise a rejected record for the quarantine; never raises."""
    try:
        return orjson.dumps(obj)
    except Exception:  # noqa: BLE001 - > 64-bit ints, > 254 levels: fall back to a bounded repr
        try:
            return _raw_repr.repr(obj)
        except Exception:  # noqa: BLE001
            return f"<unserialisable {type(obj).__name__}>"


def reject_record(sink: SpanSink, where: str, reason: str, obj: Any) -> None:
    """Quarantine a container that is not one span (it is not counted as a rejected span)."""
    if isinstance(sink, SpanBatch):
        sink.reject(where, reason, raw=raw_json(obj), counts_as_span=False)
    else:
        sink.reject(where, reason, raw=raw_json(obj))


def _what(nbytes: int) -> str:
    return "trace id" if nbytes == 16 else "span id" if nbytes == 8 else f"{nbytes}-byte id"


def id_bytes(value: Any, nbytes: int, what: str | None = None) -> str:
    """Decode an id to lowercase hex without rejecting all-zero ids.

    Accepts hex (any case), standard or URL-safe base64 (Tempo/Grafana), or a JS
    ``{"type": "Buffer", "data": [...]}`` object. Raises :class:`DecodeError`.
    """
    what = what or _what(nbytes)
    if type(value) is str:
        n = len(value)
        if n == 2 * nbytes:
            try:
                out = bytes.fromhex(value).hex()
            except ValueError:
                out = ""
            if len(out) == 2 * nbytes:
                return out
            raise DecodeError(f"{what} {value[:64]!r} is not hex")
        is_hex = n <= 256 and _HEXCHARS.issuperset(value)
        if not is_hex and n in (4 * ((nbytes + 2) // 3), (4 * nbytes + 2) // 3) and _B64.issuperset(value):
            try:  # base64 (Tempo/Grafana), padded or not, standard or URL-safe alphabet
                raw = base64.b64decode(value.replace("-", "+").replace("_", "/") + "=" * (-n % 4), validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) == nbytes:
                return raw.hex()
        if n == 0:
            raise DecodeError(f"{what} is empty")
        if is_hex:
            odd = "an odd number (%d) of" % n if n % 2 else str(n)
            raise DecodeError(f"{what} has {odd} hex chars, expected {2 * nbytes}")
        raise DecodeError(f"{what} {value[:64]!r} is neither {2 * nbytes} hex chars nor base64 of {nbytes} bytes")
    if type(value) is dict and value.get("type") == "Buffer" and type(value.get("data")) is list:
        data = value["data"]
        if len(data) != nbytes or not all(type(b) is int and 0 <= b <= 255 for b in data):
            raise DecodeError(f"{what} Buffer is not {nbytes} bytes 0..255")
        return bytes(data).hex()
    if value is None:
        raise DecodeError(f"{what} is missing")
    raise DecodeError(f"{what} is a {type(value).__name__}, expected a hex string")


def hex_id(value: Any, nbytes: int, what: str | None = None) -> str:
    """Return a trace (``nbytes=16``) or span (``nbytes=8``) id as lowercase hex.

    Raises :class:`DecodeError` with a reason for an empty, wrong-length, non-hex
    or all-zero id. See :func:`id_bytes` for the accepted encodings.
    """
    out = id_bytes(value, nbytes, what)
    if not out.strip("0"):
        raise DecodeError(f"{what or _what(nbytes)} is all zeros")
    return out


def parent_id(value: Any, nbytes: int = 8) -> str | None:
    """A parent span id: ``None`` for absent, ``""`` or all zeros (any length); else as :func:`hex_id`."""
    if value is None or value == "" or (type(value) is str and not value.strip("0")):
        return None
    out = id_bytes(value, nbytes, "parent span id")
    return None if not out.strip("0") else out


def parse_int_ns(value: Any, what: str = "time") -> int:
    """Parse an unsigned int64 nanosecond value given as int, decimal string or integral float.

    Raises :class:`DecodeError` for a bool, a fraction, a negative value or one above 2^63-1.
    """
    t = type(value)
    if t is int:
        n = value
    elif t is str:
        v = value.strip()
        if not (v.isascii() and v.isdigit()):
            if v[:1] == "-" and v[1:].isascii() and v[1:].isdigit() and v[1:].strip("0"):
                raise time_range_error(what, -1 if len(v) > 20 else int(v))
            raise DecodeError(f"{what} {value[:64]!r} is not a decimal integer")
        v = v.lstrip("0") or "0"
        if len(v) > 19:
            raise DecodeError(f"{what} {v[:64]} is above 2^63-1 (valid: 0..2^63-1 ns)")
        n = int(v)
    elif t is float:
        if value != value or value in (float("inf"), float("-inf")) or not value.is_integer():
            raise DecodeError(f"{what} {value!r} is not an integer")
        n = int(value)
    else:
        raise DecodeError(f"{what} is a {t.__name__}, expected an integer")
    if n < 0 or n > MAX_TIME_NS:
        raise time_range_error(what, n)
    return n


def time_range_error(what: str, n: int) -> DecodeError:
    """The error for a nanosecond value outside 0..2^63-1."""
    return DecodeError(f"{what} {n} is {'negative' if n < 0 else 'above 2^63-1'} (valid: 0..2^63-1 ns)")


def parse_int64(value: Any) -> int | None:
    """A signed int64 from int, decimal string or integral float; ``None`` if invalid."""
    t = type(value)
    if t is int:
        n = value
    elif t is str:
        v = value.strip()
        body = v[1:] if v[:1] in ("-", "+") else v
        if not (body.isascii() and body.isdigit()) or len(body.lstrip("0")) > 19:
            return None
        n = int(v)
    elif t is float and value == value and abs(value) != float("inf") and value.is_integer():
        n = int(value)
    else:
        return None
    return n if INT64_MIN <= n <= INT64_MAX else None


def cap_string(s: str, where: str, sink: SpanSink, trace_id: str | None, span_id: str | None) -> str:
    """Return ``s`` cut to at most :data:`MAX_ATTR_BYTES` UTF-8 bytes on a character boundary."""
    if len(s) <= FAST_CHARS:
        return s
    b = s.encode("utf-8", "surrogatepass")
    if len(b) <= MAX_ATTR_BYTES:
        return s
    i = MAX_ATTR_BYTES
    while i > 0 and (b[i] & 0xC0) == 0x80:
        i -= 1
    reason = f"string value of {len(b)} bytes truncated to {i} bytes (limit {MAX_ATTR_BYTES})"
    sink.repair(where, reason, trace_id=trace_id, span_id=span_id)
    return b[:i].decode("utf-8", "surrogatepass")


def _loc(where: str, key: Any) -> str:
    """Location of attribute ``key`` of the object at ``where`` (for repair notes only)."""
    return f"{where}.attributes" if key is None else f"{where}.attributes[{str(key)[:100]!r}]"


def _bad(where: str, key: Any, reason: str, sink: SpanSink, tid: str | None, sid: str | None) -> None:
    sink.repair(_loc(where, key), reason + "; value emptied", trace_id=tid, span_id=sid)


def json_anyvalue(v: Any, depth: int, where: str, sink: SpanSink, trace_id: str | None = None,
                  span_id: str | None = None, key: Any = None) -> Any:  # fmt: skip
    """Convert an OTLP/JSON ``AnyValue`` object to a Python value; never raises for bad data.

    ``depth`` is the nesting level of ``v`` (1 for an attribute value). ``where``
    locates the object that owns the attributes and ``key`` the attribute: a repair
    is reported at ``<where>.attributes[<key>]`` with ``trace_id``/``span_id``.
    """
    if depth > MAX_DEPTH:
        return _bad(where, key, f"value nested deeper than {MAX_DEPTH} levels", sink, trace_id, span_id)
    if type(v) is not dict:
        if v is None:
            return None
        return _bad(where, key, f"AnyValue is a {type(v).__name__}, expected an object", sink, trace_id, span_id)
    x = v.get("stringValue")
    if type(x) is str:
        return cap_string(x, _loc(where, key), sink, trace_id, span_id) if len(x) > FAST_CHARS else x
    kind = None
    for name, x in v.items():
        if x is not None:
            kind = _KINDS.get(name)
            if kind is not None:
                break
    if kind is None:
        for name, x in v.items():
            if x is not None:
                return _bad(where, key, f"unsupported AnyValue field {name[:64]!r}", sink, trace_id, span_id)
        return None  # {} (or only nulls): the empty value
    if kind == "s":
        if type(x) is str:
            return cap_string(x, _loc(where, key), sink, trace_id, span_id)
        return _bad(where, key, f"stringValue is a {type(x).__name__}", sink, trace_id, span_id)
    if kind == "i":
        n = parse_int64(x)
        if n is None:
            return _bad(where, key, f"intValue {str(x)[:64]!r} is not an int64", sink, trace_id, span_id)
        return n
    if kind == "d":
        if type(x) is float:
            return x
        if type(x) is int or type(x) is str:
            try:
                d = float(x)
            except (ValueError, OverflowError):
                pass
            else:
                if d - d == 0.0:  # finite
                    return d
                return _bad(where, key, NON_FINITE.format(str(x)[:64]), sink, trace_id, span_id)
        return _bad(where, key, f"doubleValue {str(x)[:64]!r} is not a number", sink, trace_id, span_id)
    if kind == "b":
        if type(x) is bool:
            return x
        return _bad(where, key, f"boolValue {str(x)[:64]!r} is not a boolean", sink, trace_id, span_id)
    if kind == "y":
        if type(x) is str:
            return cap_string(x, _loc(where, key), sink, trace_id, span_id)
        return _bad(where, key, "bytesValue is not a base64 string", sink, trace_id, span_id)
    if type(x) is not dict:
        return _bad(where, key, f"{name} is not an object", sink, trace_id, span_id)
    vals = x.get("values")
    if vals is None:
        return [] if kind == "a" else {}
    if type(vals) is not list:
        return _bad(where, key, f"{name}.values is not a list", sink, trace_id, span_id)
    if kind == "a":
        d = depth + 1
        if d > MAX_DEPTH and vals:  # one repair note for the whole list, not one per element
            _bad(where, key, f"value nested deeper than {MAX_DEPTH} levels", sink, trace_id, span_id)
            return [None] * len(vals)
        return [json_anyvalue(e, d, where, sink, trace_id, span_id, key) for e in vals]
    return json_kvlist(vals, depth + 1, where, sink, trace_id, span_id, key)


#: AnyValue field (camelCase and snake_case) -> a one-letter kind.
_KINDS: dict[str, str] = {}
for _n, _c in (("string", "s"), ("int", "i"), ("double", "d"), ("bool", "b"), ("bytes", "y"), ("array", "a"),
               ("kvlist", "k")):  # fmt: skip
    _KINDS[_n + "Value"] = _KINDS[_n + "_value"] = _c


def json_kvlist(kvs: list[Any], depth: int, where: str, sink: SpanSink, trace_id: str | None = None,
                span_id: str | None = None, parent_key: Any = None) -> dict[str, Any]:  # fmt: skip
    """Convert a list of OTLP/JSON ``KeyValue`` objects (values at ``depth``) to a dict.

    A malformed entry is skipped and a duplicate key keeps its last value; both are repaired.
    """
    out: dict[str, Any] = {}
    skipped = 0
    if depth > MAX_DEPTH:  # every value here is too deep: no fast path
        for kv in kvs:
            k = kv.get("key", "") if type(kv) is dict else None
            if type(k) is str:
                out[k] = None
            else:
                skipped += 1
        if out:
            _bad(where, parent_key, f"value nested deeper than {MAX_DEPTH} levels", sink, trace_id, span_id)
        return out
    for kv in kvs:
        try:
            k = kv["key"]
            v = kv["value"]
            s = v.get("stringValue")
        except (KeyError, TypeError, AttributeError):
            if type(kv) is not dict:
                reason = f"attribute entry is a {type(kv).__name__}, not a KeyValue; skipped"
                sink.repair(_loc(where, parent_key), reason, trace_id=trace_id, span_id=span_id)
                skipped += 1
                continue
            k = kv.get("key", "")
            v = kv.get("value")
            s = None
        if type(k) is not str:
            reason = f"attribute key {str(k)[:64]!r} is not a string; entry skipped"
            sink.repair(_loc(where, parent_key), reason, trace_id=trace_id, span_id=span_id)
            skipped += 1
            continue
        # inline fast paths for the canonical forms; everything else goes through json_anyvalue
        if type(s) is str:
            if len(s) <= FAST_CHARS:
                out[k] = s
                continue
        elif s is None and type(v) is dict:
            x = v.get("intValue")
            if x is not None:
                if type(x) is str and len(x) < 19 and x.isdigit() and x.isascii():
                    out[k] = int(x)
                    continue
            else:
                x = v.get("doubleValue")
                if type(x) is float:
                    out[k] = x
                    continue
                x = v.get("boolValue")
                if type(x) is bool:
                    out[k] = x
                    continue
        out[k] = json_anyvalue(v, depth, where, sink, trace_id, span_id, k if parent_key is None else parent_key)
    if len(out) + skipped != len(kvs):
        _note_duplicates(kvs, where, sink, trace_id, span_id, parent_key)
    return out


def json_attributes(
    kvs: Any, where: str, sink: SpanSink, trace_id: str | None = None, span_id: str | None = None
) -> dict[str, Any]:
    """Convert an OTLP/JSON attribute list; ``None``/absent gives ``{}``.

    Raises :class:`DecodeError` if ``kvs`` is not a list (bad structure).
    """
    if type(kvs) is list:
        return json_kvlist(kvs, 1, where, sink, trace_id, span_id) if kvs else {}
    if kvs is None:
        return {}
    raise DecodeError(f"attributes is a {type(kvs).__name__}, expected a list")


def _note_duplicates(kvs: list[Any], where: str, sink: SpanSink, tid: str | None, sid: str | None, pk: Any) -> None:
    seen: set[str] = set()
    dups: list[str] = []
    for kv in kvs:
        k = kv.get("key", "") if type(kv) is dict else None
        if type(k) is str:
            if k in seen and k not in dups:
                dups.append(k)
            seen.add(k)
    shown = ", ".join(repr(k[:64]) for k in dups[:5]) + (" ..." if len(dups) > 5 else "")
    sink.repair(_loc(where, pk), f"duplicate attribute key(s) {shown}: last value kept", trace_id=tid, span_id=sid)


def non_negative(value: Any, what: str) -> int:
    """A uint32-ish count or flags field: absent -> 0; raises :class:`DecodeError` if invalid."""
    if value is None:
        return 0
    if type(value) is int and 0 <= value <= INT64_MAX:
        return value
    n = parse_int64(value) if type(value) is not bool else None
    if n is None or n < 0:
        raise DecodeError(f"{what} {str(value)[:64]} is not a non-negative integer")
    return n
