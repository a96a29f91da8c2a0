"""Decoder of Zipkin v2 JSON span lists (openzipkin ``zipkin2-api.yaml``).

Mapping (follows the OpenTelemetry Collector's Zipkin receiver where it has one):

* ``traceId`` 16 or 32 hex (16 is left-padded to 32), ``id``/``parentId`` 16 hex
  (shorter hex is left-padded); any case. Invalid or all-zero ids reject the span;
  an all-zero ``parentId`` means a root.
* ``timestamp``/``duration`` are microseconds -> ns (integer math); absent -> 0.
* ``kind`` CLIENT/SERVER/PRODUCER/CONSUMER; absent -> the ``span.kind`` tag, else
  UNSPECIFIED.
* ``localEndpoint.serviceName`` -> resource ``service.name``; local ip/port ->
  ``network.local.address``/``network.local.port``.
* ``remoteEndpoint``: ``serviceName`` -> ``peer.service``; ipv4/ipv6 ->
  ``network.peer.address``; port -> ``network.peer.port``; for CLIENT and
  PRODUCER spans (the remote side is the server) also ``server.address``/``server.port``.
  Tags with the same names win.
* ``tags`` -> string attributes (a non-string tag value is kept as its JSON text).
  Consumed tags: ``otel.status_code`` -> status; ``otel.status_description`` ->
  status message; otherwise an ``error`` tag -> status ERROR with its value as the
  message; ``otel.scope.name``/``otel.scope.version`` (or ``otel.library.*``) -> scope.
* ``annotations`` -> events named by ``value`` at ``timestamp``.
* ``shared: true`` on a SERVER span (the server half of a span id shared with its
  client, old B3 style) gets a new span id derived from (trace id, id), its
  parent becomes the shared id, and attributes ``zipkin.shared = true`` and
  ``zipkin.original_span_id`` record it (Jaeger's "ZipkinSpanIDUniquifier" rule);
  on other spans ``shared: true`` is kept as the attribute ``zipkin.shared``.
* ``debug`` is ignored; ``flags`` is ``None`` (Zipkin has none).
"""

from __future__ import annotations

import hashlib
from typing import Any

from fabric_trace.errors import DecodeError
from fabric_trace.ingest.anyvalue import FAST_CHARS, cap_string, raw_json
from fabric_trace.ingest.batch import SPAN_KINDS, SpanSink, add_span, attributes_json, malformed_reason
from fabric_trace.ingest.jaeger_json import end_ns, jaeger_id, reject_span, span_name, us_to_ns
from fabric_trace.ingest.json_repair import DAMAGED

_BAD_RECORD = (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError, RecursionError)
_KINDS = {k: k for k in SPAN_KINDS if k != "UNSPECIFIED"}


def decode_zipkin_json(spans: list[Any], where: str, sink: SpanSink) -> None:
    """Decode a Zipkin v2 JSON span list into ``sink``; bad spans are rejected, the rest load.

    Raises :class:`DecodeError` only if ``spans`` is not a list. See the module
    docstring for the mapping rules.
    """
    if type(spans) is not list:
        raise DecodeError(f"Zipkin v2 document is a {type(spans).__name__}, expected a list of spans")
    prefix = f"{where}, " if where else ""
    rids: dict[Any, str] = {}
    scids: dict[tuple[Any, Any], str] = {}
    pre = f"{prefix}["
    for i, s in enumerate(spans):
        if s is DAMAGED:  # quarantined already by the salvage of a damaged document
            continue
        w = f"{pre}{i}]"
        try:
            t, sp, parent, name, kind, start, end, code, msg, attrs, events, rid, scid = _span(s, w, rids, scids, sink)
            attrs_json = attributes_json(attrs)
            events_json = attributes_json(events)
        except DecodeError as e:
            _reject(s, w, e.message, sink)
        except _BAD_RECORD as e:
            _reject(s, w, malformed_reason(e), sink)
        else:
            add_span(sink, pre, i, rid, scid, t, sp, parent, None, name, kind, start, end, code, attrs_json,
                     status_message=msg, events=events_json)


def _reject(s: Any, w: str, reason: str, sink: SpanSink) -> None:
    reject_span(s, w, reason, sink, "traceId", "id")


def _us_to_ns(v: Any, what: str) -> int:
    """Zipkin omits absent timestamps: missing means 0."""
    return 0 if v is None else us_to_ns(v, what)


def _endpoint(ep: Any, what: str) -> dict[str, Any]:
    if ep is None:
        return {}
    if type(ep) is not dict:
        raise DecodeError(f"{what} is a {type(ep).__name__}, expected an object")
    return ep


def _text(v: Any, where: str, key: str | None, sink: SpanSink, t: str, sp: str) -> str:
    """A tag or annotation value as a string (non-strings as JSON text), capped in size."""
    if type(v) is not str:
        v = raw_json(v)
        v = v.decode() if type(v) is bytes else v
    if len(v) <= FAST_CHARS:
        return v
    return cap_string(v, where if key is None else f"{where}[{key[:100]!r}]", sink, t, sp)


def _span(s: Any, w: str, rids: dict[Any, str], scids: dict[tuple[Any, Any], str], sink: SpanSink) -> tuple[Any, ...]:
    if type(s) is not dict:
        raise DecodeError(f"span is a {type(s).__name__}, expected an object")
    t = jaeger_id(s.get("traceId"), 16, "trace id")
    sp = jaeger_id(s.get("id"), 8, "span id")
    p = s.get("parentId")
    parent = None if p is None or p == "" or (type(p) is str and not p.strip("0")) else jaeger_id(p, 8, "parentId")
    start = _us_to_ns(s.get("timestamp"), "timestamp")
    dur = s.get("duration")
    end = end_ns(start, 0 if dur is None else dur, "timestamp")
    name = span_name(s.get("name"), "name", w, sink, t, sp)
    tags = s.get("tags")
    if tags is None:
        tags = {}
    elif type(tags) is not dict:
        raise DecodeError(f"tags is a {type(tags).__name__}, expected an object")
    k = s.get("kind")
    kind_tag = tags.get("span.kind")
    if type(k) is str and k.upper() in _KINDS:
        kind = _KINDS[k.upper()]
    elif k is None and type(kind_tag) is str and kind_tag.upper() in _KINDS:
        kind = _KINDS[kind_tag.upper()]
    elif k is None:
        kind = "UNSPECIFIED"
    else:
        sink.repair(w, f"unknown kind {str(k)[:64]!r}; set to UNSPECIFIED", trace_id=t, span_id=sp)
        kind = "UNSPECIFIED"

    local = _endpoint(s.get("localEndpoint"), "localEndpoint")
    remote = _endpoint(s.get("remoteEndpoint"), "remoteEndpoint")
    attrs: dict[str, Any] = {}
    lip = local.get("ipv4") or local.get("ipv6")
    if type(lip) is str:
        attrs["network.local.address"] = lip
    if type(local.get("port")) is int:
        attrs["network.local.port"] = local["port"]
    rsvc = remote.get("serviceName")
    if type(rsvc) is str and rsvc:
        attrs["peer.service"] = rsvc
    rip = remote.get("ipv4") or remote.get("ipv6")
    rport = remote.get("port")
    if type(rip) is str:
        attrs["network.peer.address"] = rip
    if type(rport) is int:
        attrs["network.peer.port"] = rport
    if kind in ("CLIENT", "PRODUCER"):
        if type(rip) is str:
            attrs["server.address"] = rip
        if type(rport) is int:
            attrs["server.port"] = rport
    for key, v in tags.items():
        if type(key) is str:
            attrs[key] = _text(v, w + ".tags", key, sink, t, sp)
    if k is None and type(kind_tag) is str and kind_tag.upper() in _KINDS:
        attrs.pop("span.kind", None)  # consumed as the kind

    code, msg = "UNSET", None
    otel_code = attrs.pop("otel.status_code", None)
    desc = attrs.pop("otel.status_description", None)
    if otel_code is not None and otel_code.upper() in ("OK", "ERROR", "UNSET"):
        code = otel_code.upper()
        msg = (desc or None) if code == "ERROR" else None
    else:
        if otel_code is not None:
            attrs["otel.status_code"] = otel_code
        if "error" in attrs:
            code = "ERROR"
            msg = attrs.pop("error") or desc or None
    if desc is not None and msg != desc:
        attrs["otel.status_description"] = desc

    shared = s.get("shared")
    if shared is True and kind == "SERVER":
        attrs["zipkin.shared"] = True
        attrs["zipkin.original_span_id"] = sp
        parent = sp
        sp = hashlib.blake2b(f"{t}/{sp}/server".encode(), digest_size=8).hexdigest()
    elif shared is True:
        attrs["zipkin.shared"] = True

    sname = attrs.pop("otel.scope.name", None) or attrs.pop("otel.library.name", None)
    sver = attrs.pop("otel.scope.version", None) or attrs.pop("otel.library.version", None)
    skey = (sname, sver)
    scid = scids.get(skey)
    if scid is None:
        scid = scids[skey] = sink.scope(sname, sver, {}, None, 0)
    svc = local.get("serviceName")
    svc = svc if type(svc) is str and svc else None
    rid = rids.get(svc)
    if rid is None:
        rid = rids[svc] = sink.resource({"service.name": svc} if svc else {}, None, 0)
    events = _annotations(s.get("annotations"), w, t, sp, sink)
    return (t, sp, parent, name, kind, start, end, code, msg, attrs, events, rid, scid)


def _annotations(anns: Any, w: str, t: str, sp: str, sink: SpanSink) -> list[dict[str, Any]]:
    if not anns:
        return []
    if type(anns) is not list:
        raise DecodeError(f"annotations is a {type(anns).__name__}, expected a list")
    out = []
    for i, a in enumerate(anns):
        if type(a) is not dict:
            raise DecodeError(f"annotations[{i}] is a {type(a).__name__}, expected an object")
        v = a.get("value")
        out.append(
            {
                "time_ns": _us_to_ns(a.get("timestamp"), f"annotations[{i}].timestamp"),
                "name": "" if v is None else _text(v, f"{w}.annotations[{i}]", None, sink, t, sp),
                "attributes": {},
                "dropped_attributes_count": 0,
            }
        )
    return out

