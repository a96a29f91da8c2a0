"""Span rows from parsed (lazy-attribute) protobuf messages: the fast path of :mod:`otlp_proto`.

Attributes arrive as raw ``KeyValue`` bytes (see :mod:`proto_schema`) and are turned
into Python values through a bounded cache keyed by those bytes: most attribute pairs
repeat (models, operation names, ports, session ids...), so a typical attribute costs
one dict lookup instead of several protobuf message-object creations.

Attribute dicts are serialised to the canonical attribute JSON as soon as a span is
complete (cached array/kvlist values are shared between spans and never modified).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

from fabric_trace.ingest.batch import (
    MAX_TIME_NS,
    SPAN_KINDS,
    STATUS_CODES,
    SpanSink,
    check_span_id,
    check_time,
    check_trace_id,
)
from fabric_trace.ingest.limits import Limits
from fabric_trace.ingest.proto_wire import BadUtf8, ValueDecoder, WireError
from fabric_trace.ingest.proto_wire import status as wire_status

_Z32 = "0" * 32
_Z16 = "0" * 16
_N_KINDS = len(SPAN_KINDS)
_N_CODES = len(STATUS_CODES)
RAW_BYTES = 2048  # bytes of a refused piece kept (as hex) in the quarantine record

#: Attribute cache: raw KeyValue bytes -> (key, value); one per (depth, string) limit pair.
_CACHES: dict[tuple[int, int], dict[bytes, tuple[str, Any]]] = {}
_CACHE_MAX_ENTRIES = 32768  # ~11 MB when full
_CACHE_MAX_KEY_BYTES = 256

#: Status cache: raw Status bytes -> (code name, message).
_STATUS_CACHE: dict[bytes, tuple[str, str | None]] = {}
_STATUS_CACHE_MAX = 4096


class Ctx:
    """Decoding state for one message: the sink, the value decoder, the attribute cache."""

    __slots__ = ("sink", "vd", "cache", "prefix", "index0", "base")

    def __init__(self, sink: SpanSink, limits: Limits, prefix: str, index0: int = 0, base: int = 0) -> None:
        self.sink = sink
        self.index0 = index0  # index of the first resourceSpans in this piece of the message
        self.base = base  # byte offset of this piece in the message
        self.vd = ValueDecoder(limits.max_value_depth, limits.max_string_bytes)
        key = (limits.max_value_depth, limits.max_string_bytes)
        cache = _CACHES.get(key)
        if cache is None:
            cache = _CACHES[key] = {}
        self.cache = cache
        self.prefix = prefix


def hex_excerpt(data: bytes, p: int, q: int) -> str:
    """The bytes ``data[p:q]`` (at most :data:`RAW_BYTES` of them) as hex, for a quarantine record."""
    return data[p : min(q, p + RAW_BYTES)].hex()


def _attrs(raw: Any, ctx: Ctx) -> dict[str, Any]:
    """Convert a repeated raw-KeyValue field; may raise BadUtf8 / WireError."""
    out = {}
    get = ctx.cache.get
    for b in raw[:]:
        r = get(b)
        if r is None:
            r = _miss(b, ctx)
        k, v = r
        out[k] = v
    if len(out) != len(raw):
        ctx.vd.notes.append(f"{len(raw) - len(out)} duplicate attribute key(s); last value kept")
    return out


def _miss(b: bytes, ctx: Ctx) -> tuple[str, Any]:
    """Convert one KeyValue not in the cache, and cache it if it needed no repair."""
    vd = ctx.vd
    before = len(vd.notes)
    r = vd.key_value(b)
    if len(vd.notes) == before and len(b) <= _CACHE_MAX_KEY_BYTES:
        cache = ctx.cache
        if len(cache) >= _CACHE_MAX_ENTRIES:
            cache.clear()
        cache[b] = r
    return r


def _status(raw: bytes, ctx: Ctx) -> tuple[str, str | None]:
    """Convert raw Status bytes not in the status cache (cached unless the code is unknown)."""
    notes = ctx.vd.notes
    before = len(notes)
    code, message = wire_status(raw, notes)
    if 0 <= code < _N_CODES and len(notes) > before:  # repaired: not cached
        return STATUS_CODES[code], message
    if 0 <= code < _N_CODES:
        r = (STATUS_CODES[code], message)
        if len(_STATUS_CACHE) >= _STATUS_CACHE_MAX:
            _STATUS_CACHE.clear()
        _STATUS_CACHE[raw] = r
        return r
    ctx.vd.notes.append(f"unknown status code {code} read as UNSET")
    return "UNSET", message


def flush_notes(ctx: Ctx, where: str, trace_id: str | None = None, span_id: str | None = None) -> None:
    notes = ctx.vd.notes
    for note in notes:
        ctx.sink.repair(where, note, trace_id=trace_id, span_id=span_id)
    notes.clear()


def resource_id(msg: Any, schema_url: str, ctx: Ctx, where: str, reject_spans: Callable[[str], None]) -> str | None:
    """Intern the resource of a ResourceSpans; if its attributes cannot be decoded, reject its spans."""
    ctx.vd.notes.clear()
    try:
        attrs = _attrs(msg.attributes, ctx)
    except (BadUtf8, WireError) as exc:
        ctx.vd.notes.clear()
        reject_spans(f"resource: {exc}")
        return None
    flush_notes(ctx, f"{where}.resource")
    return ctx.sink.resource(attrs, schema_url or None, msg.dropped_attributes_count)


def scope_id(msg: Any, schema_url: str, ctx: Ctx, where: str, reject_spans: Callable[[str], None]) -> str | None:
    """Intern the scope of a ScopeSpans; if its attributes cannot be decoded, reject its spans."""
    ctx.vd.notes.clear()
    try:
        attrs = _attrs(msg.attributes, ctx)
    except (BadUtf8, WireError) as exc:
        ctx.vd.notes.clear()
        reject_spans(f"scope: {exc}")
        return None
    flush_notes(ctx, f"{where}.scope")
    return ctx.sink.scope(
        msg.name or None, msg.version or None, attrs, schema_url or None, msg.dropped_attributes_count
    )


def _groups(rs: Any) -> tuple[tuple[str, Any], ...]:
    return (("scopeSpans", rs.scope_spans), ("instrumentationLibrarySpans", rs.instrumentation_library_spans))


def resource_spans(rs: Any, ctx: Ctx, where: str) -> None:
    """Emit the spans of one parsed ResourceSpans (scope spans, then legacy library spans)."""

    def reject_all(reason: str) -> None:
        found = False
        for label, groups in _groups(rs):
            for j, ss in enumerate(groups):
                found = reject_messages(ctx, ss.spans, f"{where}.{label}[{j}].spans[", reason) or found
        if not found:
            ctx.sink.reject(where, reason, counts_as_span=False)  # type: ignore[call-arg]

    rid = resource_id(rs.resource, rs.schema_url, ctx, where, reject_all)
    if rid is None:
        return
    for label, groups in _groups(rs):
        for j, ss in enumerate(groups):
            w = f"{where}.{label}[{j}]"

            def reject_group(reason: str, ss: Any = ss, w: str = w) -> None:
                if not reject_messages(ctx, ss.spans, f"{w}.spans[", reason):
                    ctx.sink.reject(w, reason, counts_as_span=False)  # type: ignore[call-arg]

            sid = scope_id(ss.scope, ss.schema_url, ctx, w, reject_group)
            if sid is not None:
                spans(ss.spans, 0, ctx, rid, sid, f"{w}.spans[")


def reject_messages(ctx: Ctx, msgs: Iterable[Any], pre: str, reason: str) -> bool:
    """Reject every span message in ``msgs`` with ``reason``; False if there was none."""
    found = False
    for k, s in enumerate(msgs):
        found = True
        ctx.sink.reject(f"{pre}{k}]", reason, trace_id=s.trace_id.hex() or None, span_id=s.span_id.hex() or None)
    return found


def _reject_span(ctx: Ctx, where: str, reason: str, tid: str | None, sid: str | None) -> None:
    ctx.vd.notes.clear()
    ctx.sink.reject(where, reason, trace_id=tid, span_id=sid)


def spans(msgs: Iterable[Any], first: int, ctx: Ctx, rid: str, scid: str, pre: str) -> None:
    """Emit one row per span message (the hot loop); ``first`` is the index of the first one.

    A span's location is ``f"{pre}{index}]"``; it is only built for a rejection or a repair.
    """
    sink = ctx.sink
    ak, at, asid, apar, aflags, aname, akind, astart, aend, acode, aattr = sink.group(pre, rid, scid)
    extra = sink.extra
    notes = ctx.vd.notes
    get = ctx.cache.get
    kinds = SPAN_KINDS
    status_get = _STATUS_CACHE.get
    dumps = orjson.dumps  # .decode(): see batch.attributes_json
    for k, s in enumerate(msgs, first):
        tid = s.trace_id.hex()
        sid = s.span_id.hex()
        if len(tid) != 32 or tid == _Z32 or len(sid) != 16 or sid == _Z16:
            _reject_span(ctx, f"{pre}{k}]", check_trace_id(tid) or check_span_id(sid) or "bad id", tid, sid)
            continue
        parent: str | None = s.parent_span_id.hex()
        if not parent or parent == _Z16:
            parent = None
        elif len(parent) != 16:
            _reject_span(ctx, f"{pre}{k}]", f"parent {check_span_id(parent)}", tid, sid)
            continue
        start = s.start_time_unix_nano
        end = s.end_time_unix_nano
        if start > MAX_TIME_NS or end > MAX_TIME_NS:
            reason = check_time(start, "start time") or check_time(end, "end time") or "bad time"
            _reject_span(ctx, f"{pre}{k}]", reason, tid, sid)
            continue
        raw = s.attributes
        try:
            attrs = {}
            for b in raw[:]:  # a list iterates faster than the upb container
                r = get(b)
                if r is None:
                    r = _miss(b, ctx)
                ak_, av = r
                attrs[ak_] = av
            if len(attrs) != len(raw):
                notes.append(f"{len(raw) - len(attrs)} duplicate attribute key(s); last value kept")
            events = s.events
            events = _events(events, ctx) if events else None
            links = s.links
            links = _links(links, ctx) if links else None
            st = s.status
            if st:
                stv = status_get(st)
                if stv is None:
                    stv = _status(st, ctx)
                code_name, message = stv
            else:
                code_name = "UNSET"
                message = None
        except (BadUtf8, WireError) as exc:
            _reject_span(ctx, f"{pre}{k}]", str(exc), tid, sid)
            continue
        if events is False:
            _reject_span(ctx, f"{pre}{k}]", "event time out of range (0..2^63-1 ns)", tid, sid)
            continue
        kind = s.kind
        if 0 <= kind < _N_KINDS:
            kind_name = kinds[kind]
        else:
            kind_name = "UNSPECIFIED"
            notes.append(f"unknown span kind {kind} read as UNSPECIFIED")
        if notes:
            flush_notes(ctx, f"{pre}{k}]", tid, sid)
        ak(k)
        at(tid)
        asid(sid)
        apar(parent)
        aflags(s.flags)
        aname(s.name)
        akind(kind_name)
        astart(start)
        aend(end)
        acode(code_name)
        aattr(dumps(attrs).decode())
        ts = s.trace_state
        if ts:
            extra("trace_state", ts)
        if message is not None:
            extra("status_message", message)
        if events:
            extra("events", dumps(events).decode())
        if links:
            extra("links", dumps(links).decode())
        n = s.dropped_attributes_count
        if n:
            extra("dropped_attributes_count", n)
        n = s.dropped_events_count
        if n:
            extra("dropped_events_count", n)
        n = s.dropped_links_count
        if n:
            extra("dropped_links_count", n)
    sink.end_group()


def _events(events: Any, ctx: Ctx) -> list[dict[str, Any]] | bool:
    """The span's events, or ``False`` if an event time is out of range."""
    out = []
    for e in events:
        t = e.time_unix_nano
        if t > MAX_TIME_NS:
            return False
        out.append(
            {
                "time_ns": t,
                "name": e.name,
                "attributes": _attrs(e.attributes, ctx),
                "dropped_attributes_count": e.dropped_attributes_count,
            }
        )
    return out


def _links(links: Any, ctx: Ctx) -> list[dict[str, Any]]:
    out = []
    for n, link in enumerate(links):
        tid = link.trace_id.hex()
        sid = link.span_id.hex()
        reason = check_trace_id(tid) or check_span_id(sid)
        if reason is not None:
            ctx.vd.notes.append(f"link {n} dropped: {reason}")
            continue
        out.append(
            {
                "trace_id": tid,
                "span_id": sid,
                "trace_state": link.trace_state or None,
                "flags": link.flags,
                "attributes": _attrs(link.attributes, ctx),
                "dropped_attributes_count": link.dropped_attributes_count,
            }
        )
    return out
