"""The fast path of OTLP/JSON lines: typed decoding with msgspec, for lines in the canonical form.

:mod:`.otlp_json` decodes any OTLP/JSON value ``orjson.loads`` produced, with every
lenient reading and every repair; turning each line into dicts and walking them
costs about 10 s of one core per million spans. Most lines come from OTLP
encoders (the Collector's file exporter, the SDK exporters) and have one shape.
For them, :func:`decode_otlp_line` decodes the line straight into typed
``msgspec`` structs (no intermediate dicts, types checked in C) and walks those.

**Same rows, or the line goes to the general decoder.** The fast path never
rejects or repairs anything. It accepts a line only when it would give exactly
what :func:`~fabric_trace.ingest.otlp_json.decode_otlp_json` gives -- the same span
columns, extras, resources, scopes and groups, in the same order -- and returns
``None`` otherwise, having added nothing to the sink; the caller then decodes the
line with the general decoder. A line is refused when:

* it is not valid JSON for the schema below: invalid JSON or UTF-8, a field of
  another JSON type (a string where a number belongs, ``null``...), a key the
  schema does not name (snake_case spellings, ``instrumentationLibrarySpans``,
  Tempo's ``batches``, fields newer than this schema), a missing ``traceId``,
  ``spanId``, start or end time, event time or link id;
* the general decoder would repair or reject something in it: an invalid id or
  time, an unknown kind or status code, a count out of range, a duplicate attribute
  key, a string longer than :data:`~fabric_trace.ingest.anyvalue.FAST_CHARS`
  characters, an ``intValue`` that is not an int64, values nested more than
  :data:`NEST_LIMIT` deep;
* its value could depend on key order: an ``AnyValue`` with more than one field set
  (other than ``stringValue``, which wins in both decoders).

Duplicate JSON keys behave alike (the last one wins in orjson and msgspec).
The equivalence is tested on the real samples and by property tests that mutate
canonical lines at random and compare both decoders' output.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from msgspec import Struct

from fabric_trace.ingest.anyvalue import FAST_CHARS, INT64_MAX, hex_id, parse_int64, parse_int_ns
from fabric_trace.ingest.batch import EMPTY_OBJECT, MAX_TIME_NS, SPAN_KINDS, STATUS_CODES, SpanBatch

#: Deepest AnyValue nesting taken by the fast path (the general decoder's limit is 64).
NEST_LIMIT = 32


class _AnyValue(Struct, forbid_unknown_fields=True, gc=False):
    stringValue: str | None = None
    intValue: int | str | None = None
    doubleValue: float | None = None
    boolValue: bool | None = None
    bytesValue: str | None = None
    arrayValue: _ArrayValue | None = None
    kvlistValue: _KvList | None = None


class _KeyValue(Struct, forbid_unknown_fields=True, gc=False):
    key: str
    value: _AnyValue


class _ArrayValue(Struct, forbid_unknown_fields=True, gc=False):
    values: list[_AnyValue] | None = None


class _KvList(Struct, forbid_unknown_fields=True, gc=False):
    values: list[_KeyValue] | None = None


class _Status(Struct, forbid_unknown_fields=True, gc=False):
    code: int | None = None
    message: str | None = None


class _Event(Struct, forbid_unknown_fields=True, gc=False):
    timeUnixNano: int | str
    name: str = ""
    attributes: list[_KeyValue] | None = None
    droppedAttributesCount: int = 0


class _Link(Struct, forbid_unknown_fields=True, gc=False):
    traceId: str
    spanId: str
    traceState: str = ""
    flags: int = 0
    attributes: list[_KeyValue] | None = None
    droppedAttributesCount: int = 0


class _Span(Struct, forbid_unknown_fields=True, gc=False, kw_only=True):
    # in the order of the proto definition, which encoders follow (msgspec looks there first)
    traceId: str
    spanId: str
    traceState: str = ""
    parentSpanId: str = ""
    flags: int = 0
    name: str = ""
    kind: int = 0
    startTimeUnixNano: int | str
    endTimeUnixNano: int | str
    attributes: list[_KeyValue] | None = None
    droppedAttributesCount: int = 0
    events: list[_Event] | None = None
    droppedEventsCount: int = 0
    links: list[_Link] | None = None
    droppedLinksCount: int = 0
    status: _Status | None = None


class _Scope(Struct, forbid_unknown_fields=True, gc=False):
    name: str = ""
    version: str = ""
    attributes: list[_KeyValue] | None = None
    droppedAttributesCount: int = 0


class _Resource(Struct, forbid_unknown_fields=True, gc=False):
    attributes: list[_KeyValue] | None = None
    droppedAttributesCount: int = 0


class _ScopeSpans(Struct, forbid_unknown_fields=True, gc=False):
    scope: _Scope | None = None
    spans: list[_Span] | None = None
    schemaUrl: str = ""


class _ResourceSpans(Struct, forbid_unknown_fields=True, gc=False):
    resource: _Resource | None = None
    scopeSpans: list[_ScopeSpans] | None = None
    schemaUrl: str = ""


class _TracesData(Struct, forbid_unknown_fields=True, gc=False):
    resourceSpans: list[_ResourceSpans]


_DECODER = msgspec.json.Decoder(_TracesData)
_KIND = dict(enumerate(SPAN_KINDS))
_STATUS = dict(enumerate(STATUS_CODES))
_ZT = "0" * 32
_ZS = "0" * 16
_LOWER_HEX = "0123456789abcdef"


class _Refused(Exception):
    """The line is not in the canonical form: the general decoder takes it."""


def decode_otlp_line(line: bytes, where: str, sink: SpanBatch) -> str | None:
    """Decode one JSON line (or a whole JSON document) into ``sink`` if it is a canonical
    OTLP/JSON document.

    Returns ``"otlp-json"`` when it was decoded, or ``None`` when it was not (``sink`` is
    then exactly as before the call). ``where`` is its location, e.g. ``"line 7"`` or
    ``"document 1 at byte 0"``.
    """
    try:
        doc = _DECODER.decode(line)
    except (msgspec.DecodeError, ValueError, RecursionError):
        return None
    mark = sink.mark()
    try:
        _document(doc, where, sink)
    except Exception:  # noqa: BLE001 - _Refused, DecodeError, int() errors...: the general decoder decides
        sink.rollback(mark)
        return None
    sink.end_group()
    return "otlp-json"


def _document(doc: _TracesData, where: str, sink: SpanBatch) -> None:
    prefix = f"{where}, resourceSpans[" if where else "resourceSpans["
    for i, rs in enumerate(doc.resourceSpans):
        path = f"{prefix}{i}]"
        res = rs.resource
        if res is None:
            rid = sink.resource({}, rs.schemaUrl or None, 0)
        else:
            rid = sink.resource(_attributes(res.attributes), rs.schemaUrl or None, _count(res.droppedAttributesCount))
        sss = rs.scopeSpans
        if sss is None:
            continue
        for j, ss in enumerate(sss):
            sc = ss.scope
            if sc is None:
                scid = sink.scope(None, None, {}, ss.schemaUrl or None, 0)
            else:
                scid = sink.scope(sc.name or None, sc.version or None, _attributes(sc.attributes),
                                  ss.schemaUrl or None, _count(sc.droppedAttributesCount))
            if ss.spans is not None:
                _spans(ss.spans, f"{path}.scopeSpans[{j}].spans[", rid, scid, sink)


def _spans(spans: list[_Span], pre: str, rid: str, scid: str, sink: SpanBatch) -> None:
    """The twin of :func:`fabric_trace.ingest.otlp_json._spans` for typed spans (no repairs)."""
    ak, at, asid, apar, aflags, aname, akind, astart, aend, acode, aattr = sink.group(pre, rid, scid)
    extra = sink.extra
    dumps = orjson.dumps
    kinds = _KIND
    statuses = _STATUS
    fromhex = bytes.fromhex
    idc: dict[str, str] = {}
    for k, s in enumerate(spans):
        tid = s.traceId
        t = idc.get(tid)
        if t is None:
            t = fromhex(tid).hex() if len(tid) == 32 else ""
            if len(t) != 32 or t == _ZT:
                t = hex_id(tid, 16)
            idc[tid] = t
        sv = s.spanId
        if len(sv) == 16 and not sv.strip(_LOWER_HEX) and sv != _ZS:  # already canonical
            sp = sv
        else:
            sp = fromhex(sv).hex() if len(sv) == 16 else ""
            if len(sp) != 16 or sp == _ZS:
                sp = hex_id(sv, 8)
        pv = s.parentSpanId
        if not pv:
            parent: str | None = None
        elif len(pv) == 16 and not pv.strip(_LOWER_HEX):
            parent = None if pv == _ZS else pv
        else:
            parent = fromhex(pv).hex() if len(pv) == 16 else ""
            if len(parent) != 16:  # type: ignore[arg-type]
                raise _Refused
            if parent == _ZS:
                parent = None
        st = s.startTimeUnixNano
        if type(st) is str:
            st = int(st)
        en = s.endTimeUnixNano
        if type(en) is str:
            en = int(en)
        if st < 0 or st > MAX_TIME_NS or en < 0 or en > MAX_TIME_NS:
            raise _Refused
        name = s.name
        if len(name) > FAST_CHARS:
            raise _Refused
        kind = kinds.get(s.kind)
        if kind is None:
            raise _Refused
        stat = s.status
        if stat is None:
            code = "UNSET"
            msg = None
        else:
            code = "UNSET" if stat.code is None else statuses.get(stat.code)  # type: ignore[assignment]
            if code is None:
                raise _Refused
            msg = stat.message or None
        a = s.attributes
        attrs = dumps(_kvlist(a, 1)).decode() if a else EMPTY_OBJECT
        ev = s.events
        events = dumps(_events(ev)).decode() if ev else None
        lk = s.links
        links = dumps(_links(lk)).decode() if lk else None
        fl = s.flags
        ts = s.traceState
        da = s.droppedAttributesCount
        de = s.droppedEventsCount
        dl = s.droppedLinksCount
        x = fl | da | de | dl  # negative if one is, above INT64_MAX if one is
        if x < 0 or x > INT64_MAX:
            raise _Refused
        ak(k)
        at(t)
        asid(sp)
        apar(parent)
        aflags(fl)
        aname(name)
        akind(kind)
        astart(st)
        aend(en)
        acode(code)
        aattr(attrs)
        if ts:
            extra("trace_state", ts)
        if msg is not None:
            extra("status_message", msg)
        if events is not None:
            extra("events", events)
        if links is not None:
            extra("links", links)
        if da:
            extra("dropped_attributes_count", da)
        if de:
            extra("dropped_events_count", de)
        if dl:
            extra("dropped_links_count", dl)


def _count(n: int) -> int:
    if n < 0 or n > INT64_MAX:
        raise _Refused
    return n


def _attributes(kvs: list[_KeyValue] | None) -> dict[str, Any]:
    return _kvlist(kvs, 1) if kvs else {}


def _kvlist(kvs: list[_KeyValue], depth: int) -> dict[str, Any]:
    """Attributes as a dict, with the general decoder's precedence among the value fields."""
    out: dict[str, Any] = {}
    for kv in kvs:
        v = kv.value
        x = v.stringValue
        if x is not None:  # a string value wins in both decoders
            if len(x) > FAST_CHARS:
                raise _Refused
        else:
            x = v.intValue
            if x is not None:  # a short decimal string wins in both; anything else must be alone
                if type(x) is not str or len(x) >= 19 or not x.isdigit() or not x.isascii():
                    x = _value(v, depth)
                else:
                    x = int(x)
            elif v.doubleValue is not None or v.boolValue is None:
                x = _value(v, depth)
            else:  # boolValue wins when intValue and doubleValue are absent
                x = v.boolValue
        out[kv.key] = x
    if len(out) != len(kvs):
        raise _Refused  # duplicate keys: the general decoder reports a repair
    return out


def _value(v: _AnyValue, depth: int) -> Any:
    """An AnyValue as a Python value; refused unless exactly one field is set (or none)."""
    s = v.stringValue
    if s is not None:
        if len(s) > FAST_CHARS:
            raise _Refused
        return s
    fields = (v.intValue, v.doubleValue, v.boolValue, v.bytesValue, v.arrayValue, v.kvlistValue)
    present = [i for i, x in enumerate(fields) if x is not None]
    if not present:
        return None
    if len(present) > 1:
        raise _Refused
    i = present[0]
    x = fields[i]
    if i == 0:  # intValue
        n = parse_int64(x)
        if n is None:
            raise _Refused
        return n
    if i <= 2:  # doubleValue (msgspec gives a float for a JSON int too, as float() does), boolValue
        return x
    if i == 3:  # bytesValue
        if len(x) > FAST_CHARS:
            raise _Refused
        return x
    if depth >= NEST_LIMIT:
        raise _Refused
    vals = x.values
    if i == 4:  # arrayValue
        return [] if vals is None else [_value(e, depth + 1) for e in vals]
    return _kvlist(vals, depth + 1) if vals else {}


def _events(evs: list[_Event]) -> list[dict[str, Any]]:
    out = []
    for e in evs:
        a = e.attributes
        out.append({
            "time_ns": parse_int_ns(e.timeUnixNano),
            "name": e.name,
            "attributes": _kvlist(a, 1) if a else {},
            "dropped_attributes_count": _count(e.droppedAttributesCount),
        })  # fmt: skip
    return out


def _links(lks: list[_Link]) -> list[dict[str, Any]]:
    out = []
    for lk in lks:
        a = lk.attributes
        out.append({
            "trace_id": hex_id(lk.traceId, 16),
            "span_id": hex_id(lk.spanId, 8),
            "trace_state": lk.traceState or None,
            "flags": _count(lk.flags),
            "attributes": _kvlist(a, 1) if a else {},
            "dropped_attributes_count": _count(lk.droppedAttributesCount),
        })  # fmt: skip
    return out
