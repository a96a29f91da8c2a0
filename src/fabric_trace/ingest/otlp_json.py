"""Decoder of OTLP/JSON trace documents (TracesData / ExportTraceServiceRequest).

Lenient where real files differ from the spec: snake_case keys, enum names
(``"SPAN_KIND_SERVER"``, ``"STATUS_CODE_ERROR"``), Tempo ``batches``, legacy
``instrumentationLibrarySpans``/``instrumentationLibrary``, base64 or Buffer ids,
int64 as number or string. Unknown fields are ignored.

A span is *rejected* (``sink.reject``; the other spans still load) when it is not
an object, its trace/span/parent id is invalid, a time (span or event) is not an
integer in 0..2^63-1, or its structure is wrong (attributes/events/links not
lists, an event/link/status not an object, a name that is not a string, a bad
count). A span is *repaired* (``sink.repair``; still loaded) for an unknown kind
(-> UNSPECIFIED) or status code (-> UNSET), a link with an invalid id (the link is
dropped) and for the value rules of :mod:`fabric_trace.ingest.anyvalue`.
``end < start`` and an empty name are kept as they are. Empty ``traceState``,
``status.message``, scope name/version and ``schemaUrl`` become ``None``; absent
``flags`` and counts are 0 (the protobuf default).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson

from fabric_trace.errors import DecodeError
from fabric_trace.ingest.anyvalue import (
    FAST_CHARS,
    cap_string,
    hex_id,
    json_attributes,
    json_kvlist,
    non_negative,
    parent_id,
    parse_int_ns,
    raw_json,
    reject_record,
    time_range_error,
)
from fabric_trace.ingest.json_repair import DAMAGED
from fabric_trace.ingest.batch import EMPTY_OBJECT, MAX_TIME_NS, SPAN_KINDS, STATUS_CODES, SpanSink, malformed_reason

_ZT = "0" * 32
_ZS = "0" * 16
_BAD_RECORD = (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError, RecursionError)

_KIND: dict[int | str, str] = {}
for _i, _k in enumerate(SPAN_KINDS):
    _KIND[_i] = _KIND[_k] = _KIND["SPAN_KIND_" + _k] = _k
_STATUS: dict[int | str, str] = {}
for _i, _k in enumerate(STATUS_CODES):
    _STATUS[_i] = _STATUS[_k] = _STATUS["STATUS_CODE_" + _k] = _k


@lru_cache(maxsize=512)
def _camel_key(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _maybe_camel(d: dict[str, Any]) -> dict[str, Any]:
    """Rename snake_case keys to lowerCamelCase (camelCase keys win on a clash)."""
    snake = [k for k in d if type(k) is str and "_" in k]
    if not snake:
        return d
    out = {_camel_key(k): d[k] for k in snake}
    out.update((k, v) for k, v in d.items() if k not in snake)
    return out


def _opt_str(v: Any, what: str) -> str | None:
    if v is None or v == "":
        return None
    if type(v) is str:
        return v
    raise DecodeError(f"{what} is a {type(v).__name__}, expected a string")


def _time(v: Any, what: str) -> int:
    return 0 if v is None else parse_int_ns(v, what)


def _enum(v: Any, table: dict[int | str, str], default: str, what: str, w: str, sink: SpanSink, t: str, s: str) -> str:
    if type(v) is str:
        u = v.strip().upper()
        hit = table.get(u) or table.get(u.rsplit(".", 1)[-1])  # "SpanKind.SERVER" (Python console exporter)
        if hit is not None:
            return hit
    elif type(v) is not int:
        raise DecodeError(f"{what} is a {type(v).__name__}, expected an integer or enum name")
    sink.repair(w, f"unknown {what} {str(v)[:64]!r}; set to {default}", trace_id=t, span_id=s)
    return default


def decode_otlp_json(doc: dict[str, Any], where: str, sink: SpanSink) -> None:
    """Decode one OTLP/JSON traces document into ``sink``.

    ``where`` prefixes every location (e.g. ``"line 3"``); a span's location is
    ``"line 3, resourceSpans[0].scopeSpans[1].spans[2]"``. Raises
    :class:`DecodeError` only when ``doc`` itself is unusable (not an object,
    ``resourceSpans`` not a list); bad parts inside are rejected or repaired.
    """
    if type(doc) is not dict:
        raise DecodeError(f"OTLP document is a {type(doc).__name__}, expected an object")
    for name in ("resourceSpans", "resource_spans", "batches"):
        rss = doc.get(name)
        if rss is not None:
            break
    else:
        return
    if type(rss) is not list:
        raise DecodeError(f"{name} is a {type(rss).__name__}, expected a list")
    prefix = f"{where}, {name}[" if where else f"{name}["
    for i, rs in enumerate(rss):
        if rs is not DAMAGED:  # quarantined already by the salvage of a damaged document
            _resource_spans(rs, f"{prefix}{i}]", sink)


def _resource_spans(rs: Any, path: str, sink: SpanSink) -> None:
    if type(rs) is not dict:
        reject_record(sink, path, f"resourceSpans entry is a {type(rs).__name__}, expected an object", rs)
        return
    rs = _maybe_camel(rs)
    try:
        res = rs.get("resource") or {}
        if type(res) is not dict:
            raise DecodeError(f"resource is a {type(res).__name__}, expected an object")
        res = _maybe_camel(res)
        attrs = json_attributes(res.get("attributes"), path + ".resource", sink)
        dropped = non_negative(res.get("droppedAttributesCount"), "resource droppedAttributesCount")
        rid = sink.resource(attrs, _opt_str(rs.get("schemaUrl"), "schemaUrl"), dropped)
    except DecodeError as e:
        _reject_all(rs, path, f"resource: {e.message}", sink)
        return
    key = "scopeSpans"
    sss = rs.get(key)
    if not sss and rs.get("instrumentationLibrarySpans"):
        key = "instrumentationLibrarySpans"
        sss = rs[key]
    if sss is None:
        return
    if type(sss) is not list:
        reject_record(sink, f"{path}.{key}", f"{key} is a {type(sss).__name__}, expected a list", sss)
        return
    for j, ss in enumerate(sss):
        if ss is not DAMAGED:
            _scope_spans(ss, f"{path}.{key}[{j}]", rid, sink)


def _scope_spans(ss: Any, path: str, rid: str, sink: SpanSink) -> None:
    if type(ss) is not dict:
        reject_record(sink, path, f"scopeSpans entry is a {type(ss).__name__}, expected an object", ss)
        return
    ss = _maybe_camel(ss)
    try:
        sc = ss.get("scope") or ss.get("instrumentationLibrary") or {}
        if type(sc) is not dict:
            raise DecodeError(f"scope is a {type(sc).__name__}, expected an object")
        sc = _maybe_camel(sc)
        scid = sink.scope(
            _opt_str(sc.get("name"), "scope name"),
            _opt_str(sc.get("version"), "scope version"),
            json_attributes(sc.get("attributes"), path + ".scope", sink),
            _opt_str(ss.get("schemaUrl"), "schemaUrl"),
            non_negative(sc.get("droppedAttributesCount"), "scope droppedAttributesCount"),
        )
    except DecodeError as e:
        _reject_all(ss, path, f"scope: {e.message}", sink)
        return
    spans = ss.get("spans")
    if spans is None:
        return
    if type(spans) is not list:
        reject_record(sink, path + ".spans", f"spans is a {type(spans).__name__}, expected a list", spans)
        return
    _spans(spans, path + ".spans[", rid, scid, sink)


def _spans(spans: list[Any], pre: str, rid: str, scid: str, sink: SpanSink) -> None:
    """Decode a list of span objects (the hot loop) into the sink's columns.

    A span's location is ``f"{pre}{k}]"``; it is only built for a rejection or a repair.
    A span is appended only once every field of it decoded (a rejection appends nothing).
    """
    ak, at, asid, apar, aflags, aname, akind, astart, aend, acode, aattr = sink.group(pre, rid, scid)
    extra = sink.extra
    dumps = orjson.dumps  # .decode(): see batch.attributes_json
    kinds = _KIND
    statuses = _STATUS
    idc: dict[str, str] = {}  # trace ids memoised: spans of a trace come together
    for k, s in enumerate(spans):
        if s is DAMAGED:
            continue
        try:
            if type(s) is not dict:
                raise DecodeError(f"span is a {type(s).__name__}, expected an object")
            get = s.get
            tid = get("traceId")
            st = get("startTimeUnixNano")
            if tid is None or st is None:
                s = _maybe_camel(s)
                get = s.get
                tid = get("traceId")
                st = get("startTimeUnixNano")
            # ids: fast path for canonical hex; anything else goes through hex_id (base64, Buffer, reasons)
            t = idc.get(tid) if type(tid) is str else None
            if t is None:
                try:
                    t = bytes.fromhex(tid).hex()
                except (TypeError, ValueError):
                    t = ""
                if len(t) != 32 or len(tid) != 32 or t == _ZT:
                    t = hex_id(tid, 16)
                if type(tid) is str:
                    idc[tid] = t
            sv = get("spanId")
            try:
                sp = bytes.fromhex(sv).hex()
            except (TypeError, ValueError):
                sp = ""
            if len(sp) != 16 or len(sv) != 16 or sp == _ZS:
                sp = hex_id(sv, 8)
            pv = get("parentSpanId")
            if pv:
                try:
                    parent: str | None = bytes.fromhex(pv).hex()
                except (TypeError, ValueError):
                    parent = ""
                if len(parent) != 16 or len(pv) != 16:  # type: ignore[arg-type]
                    parent = parent_id(pv)
                elif parent == _ZS:
                    parent = None
            else:
                parent = parent_id(pv) if pv is not None and pv != "" and type(pv) is not str else None
            # times: plain int() first (also takes "_"/blanks/sign; the range is checked below),
            # parse_int_ns only to explain a failure
            if type(st) is str:
                try:
                    st = int(st)
                except ValueError:
                    st = parse_int_ns(st, "startTimeUnixNano")
            else:
                st = _time(st, "startTimeUnixNano")
            en = get("endTimeUnixNano")
            if type(en) is str:
                try:
                    en = int(en)
                except ValueError:
                    en = parse_int_ns(en, "endTimeUnixNano")
            else:
                en = _time(en, "endTimeUnixNano")
            if st < 0 or st > MAX_TIME_NS or en < 0 or en > MAX_TIME_NS:
                raise time_range_error(*(("startTimeUnixNano", st) if st < 0 or st > MAX_TIME_NS else ("endTimeUnixNano", en)))
            name = get("name")
            if type(name) is not str:
                if name is not None:
                    raise DecodeError(f"name is a {type(name).__name__}, expected a string")
                name = ""
            elif len(name) > FAST_CHARS:
                name = cap_string(name, f"{pre}{k}].name", sink, t, sp)
            kv = get("kind")
            if kv is None:
                kind = "UNSPECIFIED"
            else:
                kind = kinds.get(kv) if type(kv) is int or type(kv) is str else None  # type: ignore[assignment]
                if kind is None:
                    kind = _enum(kv, kinds, "UNSPECIFIED", "kind", f"{pre}{k}]", sink, t, sp)
            stat = get("status")
            if stat is not None:
                if type(stat) is not dict:
                    raise DecodeError(f"status is a {type(stat).__name__}, expected an object")
                c = stat.get("code")
                if c is None:
                    code = "UNSET"
                else:
                    code = statuses.get(c) if type(c) is int or type(c) is str else None  # type: ignore[assignment]
                    if code is None:
                        code = _enum(c, statuses, "UNSET", "status code", f"{pre}{k}]", sink, t, sp)
                msg = stat.get("message")
                if msg is not None and type(msg) is not str:
                    raise DecodeError(f"status message is a {type(msg).__name__}, expected a string")
                msg = msg or None
            else:
                code = "UNSET"
                msg = None
            a = get("attributes")
            if a:
                if type(a) is not list:
                    raise DecodeError(f"attributes is a {type(a).__name__}, expected a list")
                attrs = dumps(json_kvlist(a, 1, f"{pre}{k}]", sink, t, sp)).decode()
            else:
                attrs = EMPTY_OBJECT
            ev = get("events")
            events = dumps(_events(ev, f"{pre}{k}]", sink, t, sp)).decode() if ev else None
            lk = get("links")
            links = _links(lk, f"{pre}{k}]", sink, t, sp) if lk else None
            links = dumps(links).decode() if links else None
            fl = get("flags")
            if type(fl) is not int or fl < 0 or fl > 0xFFFFFFFF:
                fl = non_negative(fl, "flags")
            ts = get("traceState")
            if ts is not None and type(ts) is not str:
                raise DecodeError(f"traceState is a {type(ts).__name__}, expected a string")
            da = get("droppedAttributesCount")
            de = get("droppedEventsCount")
            dl = get("droppedLinksCount")
            da = 0 if da is None else non_negative(da, "droppedAttributesCount")
            de = 0 if de is None else non_negative(de, "droppedEventsCount")
            dl = 0 if dl is None else non_negative(dl, "droppedLinksCount")
        except DecodeError as e:
            _reject_span(s, f"{pre}{k}]", e.message, sink)
            continue
        except _BAD_RECORD as e:
            _reject_span(s, f"{pre}{k}]", malformed_reason(e), sink)
            continue
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
    sink.end_group()


def _events(evs: Any, w: str, sink: SpanSink, t: str, sp: str) -> list[dict[str, Any]]:
    if type(evs) is not list:
        raise DecodeError(f"events is a {type(evs).__name__}, expected a list")
    out = []
    for i, e in enumerate(evs):
        if type(e) is not dict:
            raise DecodeError(f"events[{i}] is a {type(e).__name__}, expected an object")
        if "timeUnixNano" not in e:
            e = _maybe_camel(e)
        name = e.get("name")
        if type(name) is not str:
            if name is not None:
                raise DecodeError(f"events[{i}].name is a {type(name).__name__}, expected a string")
            name = ""
        a = e.get("attributes")
        out.append({
            "time_ns": _time(e.get("timeUnixNano"), f"events[{i}].timeUnixNano"),
            "name": name,
            "attributes": json_attributes(a, f"{w}.events[{i}]", sink, t, sp) if a else {},
            "dropped_attributes_count": non_negative(e.get("droppedAttributesCount"), "droppedAttributesCount"),
        })  # fmt: skip
    return out


def _links(lks: Any, w: str, sink: SpanSink, t: str, sp: str) -> list[dict[str, Any]]:
    if type(lks) is not list:
        raise DecodeError(f"links is a {type(lks).__name__}, expected a list")
    out = []
    for i, lk in enumerate(lks):
        if type(lk) is not dict:
            raise DecodeError(f"links[{i}] is a {type(lk).__name__}, expected an object")
        if "traceId" not in lk:
            lk = _maybe_camel(lk)
        lw = f"{w}.links[{i}]"
        try:
            lt = hex_id(lk.get("traceId"), 16, "link trace id")
            ls = hex_id(lk.get("spanId"), 8, "link span id")
        except DecodeError as e:
            sink.repair(lw, f"link dropped: {e.message}", trace_id=t, span_id=sp)
            continue
        a = lk.get("attributes")
        out.append({
            "trace_id": lt,
            "span_id": ls,
            "trace_state": _opt_str(lk.get("traceState"), "link traceState"),
            "flags": non_negative(lk.get("flags"), "link flags"),
            "attributes": json_attributes(a, lw, sink, t, sp) if a else {},
            "dropped_attributes_count": non_negative(lk.get("droppedAttributesCount"), "droppedAttributesCount"),
        })  # fmt: skip
    return out


def _reject_span(s: Any, w: str, reason: str, sink: SpanSink) -> None:
    """Quarantine one span, with its trace/span id when they are readable."""
    ids: list[str | None] = [None, None]
    if type(s) is dict:
        s2 = _maybe_camel(s)
        for i, (key, n) in enumerate((("traceId", 16), ("spanId", 8))):
            try:
                ids[i] = hex_id(s2.get(key), n)
            except DecodeError:
                pass
    sink.reject(w, reason, raw=raw_json(s), trace_id=ids[0], span_id=ids[1])


def _reject_all(container: dict[str, Any], path: str, reason: str, sink: SpanSink) -> None:
    """Reject every span below a resourceSpans/scopeSpans entry whose header is unusable."""
    groups: list[tuple[str, Any]] = []
    if "spans" in container:
        groups.append((path, container))
    else:
        for key in ("scopeSpans", "instrumentationLibrarySpans"):
            sss = container.get(key)
            if type(sss) is list:
                groups.extend((f"{path}.{key}[{j}]", ss) for j, ss in enumerate(sss))
    rejected = False
    for gpath, ss in groups:
        spans = _maybe_camel(ss).get("spans") if type(ss) is dict else None
        if type(spans) is list:
            for k, s in enumerate(spans):
                if s is not DAMAGED:
                    _reject_span(s, f"{gpath}.spans[{k}]", reason, sink)
                    rejected = True
    if not rejected:
        reject_record(sink, path, reason, container)
