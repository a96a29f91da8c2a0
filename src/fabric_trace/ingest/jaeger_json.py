"""Decoder of Jaeger UI / query-API JSON (``{"data": [trace, ...]}`` or one trace object).

Mapping (follows the OpenTelemetry Collector's Jaeger translator where it has one):

* ids: hex of any case; shorter ids are left-padded with zeros (Jaeger writes a
  64-bit trace id as 16 hex chars, which becomes 32); all-zero ids are rejected.
* ``startTime``/``duration`` are microseconds: ``start_ns = startTime * 1000``,
  ``end_ns = start_ns + duration * 1000`` (integer math; a negative duration is kept).
* parent: the first ``CHILD_OF`` reference to the span's own trace; if there is
  none, the first ``FOLLOWS_FROM`` reference to the span's own trace (the rule of
  Jaeger's ``Span.ParentSpanID``); if there are no references, a legacy
  ``parentSpanID`` field. Every other reference becomes a link carrying the
  attribute ``opentracing.ref_type`` (``child_of``/``follows_from``).
* resource: the span's process (``processes[processID]`` or an embedded
  ``process``): ``service.name`` = ``serviceName`` plus the process tags.
* tags: typed (``string``, ``bool``, ``int64``, ``float64``, ``binary``) ->
  attributes. Consumed tags: ``span.kind`` -> kind (absent: UNSPECIFIED);
  ``error=true`` (bool or string) -> status ERROR (it wins and the tag is removed),
  else ``otel.status_code`` OK/ERROR -> status;
  ``otel.status_description`` -> status message; ``otel.scope.name``/
  ``otel.scope.version`` (or ``otel.library.*``) -> instrumentation scope.
* logs -> events: time from ``timestamp`` (µs), name from the ``event`` field
  (removed from the event attributes), else ``""``.
* ``flags`` is kept when it is a non-negative integer, else ``None``; there is no
  trace state and no dropped counts. ``warnings`` are ignored.
"""

from __future__ import annotations

from typing import Any

from fabric_trace.errors import DecodeError
from fabric_trace.ingest.anyvalue import (
    FAST_CHARS,
    NON_FINITE,
    cap_string,
    hex_id,
    parse_int64,
    parse_int_ns,
    raw_json,
    reject_record,
)
from fabric_trace.ingest.batch import MAX_TIME_NS, SpanSink, add_span, attributes_json, malformed_reason
from fabric_trace.ingest.json_repair import DAMAGED

_BAD_RECORD = (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError, RecursionError)
_HEXCHARS = frozenset("0123456789abcdefABCDEF")
_KINDS = {k.lower(): k for k in ("SERVER", "CLIENT", "PRODUCER", "CONSUMER", "INTERNAL")}


def jaeger_id(value: Any, nbytes: int, what: str) -> str:
    """A Jaeger id (hex, possibly shorter than ``2*nbytes``) as lowercase hex; raises DecodeError."""
    if type(value) is str and 0 < len(value) < 2 * nbytes and _HEXCHARS.issuperset(value):
        value = value.zfill(2 * nbytes)
    return hex_id(value, nbytes, what)


def decode_jaeger_json(doc: Any, where: str, sink: SpanSink) -> None:
    """Decode a Jaeger JSON document (``{"data": [...]}`` or a single trace) into ``sink``.

    Raises :class:`DecodeError` only if ``doc`` is not a Jaeger document; a bad
    trace or span is rejected and the rest still loads. See the module docstring
    for the mapping rules.
    """
    prefix = f"{where}, " if where else ""
    if type(doc) is dict and "data" in doc:
        traces = doc["data"]
        if type(traces) is not list:
            raise DecodeError(f"Jaeger 'data' is a {type(traces).__name__}, expected a list")
        for i, tr in enumerate(traces):
            if tr is DAMAGED:  # quarantined already by the salvage of a damaged document
                continue
            _trace(tr, f"{prefix}data[{i}]", f"{prefix}data[{i}].", sink)
    elif type(doc) is dict and "spans" in doc:
        _trace(doc, where or "trace", prefix, sink)
    else:
        raise DecodeError("not a Jaeger JSON document (expected 'data' or 'traceID'/'spans')")


def _trace(tr: Any, path: str, span_prefix: str, sink: SpanSink) -> None:
    if type(tr) is not dict:
        reject_record(sink, path, f"Jaeger trace is a {type(tr).__name__}, expected an object", tr)
        return
    spans = tr.get("spans")
    if type(spans) is not list:
        reject_record(sink, path, "Jaeger trace has no 'spans' list", tr)
        return
    procs = tr.get("processes")
    procs = procs if type(procs) is dict else {}
    rids: dict[str, str | DecodeError] = {}
    scids: dict[tuple[Any, Any], str] = {}
    tr_tid = tr.get("traceID")
    pre = f"{span_prefix}spans["
    for j, s in enumerate(spans):
        if s is DAMAGED:
            continue
        w = f"{pre}{j}]"
        try:
            (t, sp, parent, flags, name, kind, start, end, code, msg, attrs, events, links, rid,
             scid) = _span(s, w, tr_tid, procs, rids, scids, sink)  # fmt: skip
            attrs_json = attributes_json(attrs)
            events_json = attributes_json(events)
            links_json = attributes_json(links)
        except DecodeError as e:
            _reject(s, w, e.message, sink)
        except _BAD_RECORD as e:
            _reject(s, w, malformed_reason(e), sink)
        else:
            add_span(sink, pre, j, rid, scid, t, sp, parent, flags, name, kind, start, end, code, attrs_json,
                     status_message=msg, events=events_json, links=links_json)


def _reject(s: Any, w: str, reason: str, sink: SpanSink) -> None:
    reject_span(s, w, reason, sink, "traceID", "spanID")


def typed_tags(tags: Any, where: str, sink: SpanSink, tid: str | None, sid: str | None) -> dict[str, Any]:
    """Convert Jaeger typed tags ``[{key, type, value}]`` to attributes; bad entries are repaired."""
    if tags is None:
        return {}
    if type(tags) is not list:
        raise DecodeError(f"tags is a {type(tags).__name__}, expected a list")
    out: dict[str, Any] = {}
    for tag in tags:
        k = tag.get("key") if type(tag) is dict else None
        if type(k) is not str:
            sink.repair(where, "tag without a string key skipped", trace_id=tid, span_id=sid)
            continue
        if k in out:
            sink.repair(f"{where}[{k[:100]!r}]", "duplicate tag key: last value kept", trace_id=tid, span_id=sid)
        out[k] = _tag_value(tag, k, where, sink, tid, sid)
    return out


def _tag_value(tag: dict[str, Any], k: str, where: str, sink: SpanSink, tid: str | None, sid: str | None) -> Any:
    typ = tag.get("type")
    v = tag.get("value")
    typ = typ.lower() if type(typ) is str else None
    if typ in (None, "string", "binary") and type(v) is str:
        return cap_string(v, f"{where}[{k[:100]!r}]", sink, tid, sid) if len(v) > FAST_CHARS else v
    if typ in (None, "bool") and type(v) is bool:
        return v
    if typ == "bool" and v in ("true", "false"):
        return v == "true"
    if typ in (None, "int64") and type(v) is int or typ == "int64" and type(v) in (str, float):
        n = parse_int64(v)
        if n is not None:
            return n
    if typ in (None, "float64") and type(v) is float or typ == "float64" and type(v) in (int, str):
        try:
            d = float(v)
        except (ValueError, OverflowError):
            pass
        else:
            if d - d == 0.0:  # finite
                return d
            sink.repair(f"{where}[{k[:100]!r}]", NON_FINITE.format(str(v)[:64]) + "; emptied", trace_id=tid, span_id=sid)
            return None
    if v is None:
        return None
    sink.repair(f"{where}[{k[:100]!r}]", f"tag value {str(v)[:64]!r} does not match type {str(typ)[:20]!r}; emptied",
                trace_id=tid, span_id=sid)
    return None


def _resource(s: dict[str, Any], procs: dict[str, Any], rids: dict[str, Any], w: str, sink: SpanSink) -> str:
    pid = s.get("processID")
    proc = s.get("process")
    key = pid if type(pid) is str and proc is None else None
    if key is not None and key in rids:
        hit = rids[key]
        if isinstance(hit, DecodeError):
            raise hit
        return hit  # type: ignore[no-any-return]
    if proc is None:
        proc = procs.get(pid) if type(pid) is str else None
    try:
        if proc is None:
            attrs: dict[str, Any] = {}
        elif type(proc) is not dict:
            raise DecodeError(f"process is a {type(proc).__name__}, expected an object")
        else:
            attrs = typed_tags(proc.get("tags"), f"{w}.process.tags", sink, None, None)
            svc = proc.get("serviceName")
            if type(svc) is str and svc:
                attrs = {"service.name": svc, **attrs}
        rid: Any = sink.resource(attrs, None, 0)
    except DecodeError as e:
        rid = DecodeError(f"process {pid!r}: {e.message}")
    if key is not None:
        rids[key] = rid
    if isinstance(rid, DecodeError):
        raise rid
    return rid  # type: ignore[no-any-return]


def us_to_ns(v: Any, what: str) -> int:
    """Epoch microseconds (Jaeger/Zipkin) to nanoseconds, range-checked, integer math only."""
    n = parse_int_ns(v, what)
    if n > MAX_TIME_NS // 1000:
        raise DecodeError(f"{what} {n} µs is above 2^63-1 ns")
    return n * 1000


def end_ns(start: int, duration: Any, what: str) -> int:
    """End = start + a microsecond duration (``duration`` as given: int or string)."""
    dur = parse_int64(duration)
    if dur is None:
        raise DecodeError(f"duration {str(duration)[:64]!r} is not an integer")
    end = start + dur * 1000
    if end < 0 or end > MAX_TIME_NS:
        raise DecodeError(f"{what} + duration = {end} ns is outside 0..2^63-1 ns")
    return end


def span_name(value: Any, field: str, where: str, sink: SpanSink, t: str, sp: str) -> str:
    """The span name: a string (capped like any attribute string), or "" when absent."""
    if type(value) is not str:
        if value is not None:
            raise DecodeError(f"{field} is a {type(value).__name__}, expected a string")
        return ""
    if len(value) > FAST_CHARS:
        return cap_string(value, f"{where}.{field}", sink, t, sp)
    return value


def reject_span(s: Any, w: str, reason: str, sink: SpanSink, trace_key: str, span_key: str) -> None:
    """Quarantine one span object, with its ids when they can be read."""
    t = sp = None
    if type(s) is dict:
        try:
            t = jaeger_id(s.get(trace_key), 16, "trace id")
            sp = jaeger_id(s.get(span_key), 8, "span id")
        except DecodeError:
            pass
    sink.reject(w, reason, raw=raw_json(s), trace_id=t, span_id=sp)


def _span(
    s: Any,
    w: str,
    tr_tid: Any,
    procs: dict[str, Any],
    rids: dict[str, Any],
    scids: dict[tuple[Any, Any], str],
    sink: SpanSink,
) -> tuple[Any, ...]:
    if type(s) is not dict:
        raise DecodeError(f"span is a {type(s).__name__}, expected an object")
    t = jaeger_id(s.get("traceID", tr_tid), 16, "trace id")
    sp = jaeger_id(s.get("spanID"), 8, "span id")
    start = us_to_ns(s.get("startTime", 0), "startTime")
    end = end_ns(start, s.get("duration", 0), "startTime")
    name = span_name(s.get("operationName"), "operationName", w, sink, t, sp)
    parent, links = _references(s, t, w, sink, sp)
    attrs = typed_tags(s.get("tags"), w + ".tags", sink, t, sp)
    kind_tag = attrs.get("span.kind")
    kind = _KINDS.get(kind_tag.lower(), "UNSPECIFIED") if type(kind_tag) is str else "UNSPECIFIED"
    if kind != "UNSPECIFIED":
        del attrs["span.kind"]  # consumed as the kind
    code, msg = "UNSET", None
    otel_code = attrs.pop("otel.status_code", None)
    desc = attrs.pop("otel.status_description", None)
    if attrs.get("error") in (True, "true"):
        del attrs["error"]
        code = "ERROR"
    elif type(otel_code) is str and otel_code.upper() in ("OK", "ERROR"):
        code = otel_code.upper()
    elif otel_code is not None and not (type(otel_code) is str and otel_code.upper() == "UNSET"):
        attrs["otel.status_code"] = otel_code  # not understood: keep it as an attribute
    if code != "UNSET" and type(desc) is str and desc:
        msg = desc
    elif desc is not None:
        attrs["otel.status_description"] = desc
    scope_name = attrs.pop("otel.scope.name", None) or attrs.pop("otel.library.name", None)
    scope_version = attrs.pop("otel.scope.version", None) or attrs.pop("otel.library.version", None)
    skey = (scope_name if type(scope_name) is str else None, scope_version if type(scope_version) is str else None)
    scid = scids.get(skey)
    if scid is None:
        scid = scids[skey] = sink.scope(skey[0], skey[1], {}, None, 0)
    rid = _resource(s, procs, rids, w, sink)
    flags = s.get("flags")
    flags = flags if type(flags) is int and 0 <= flags <= 0xFFFFFFFF else None
    events = _logs(s.get("logs"), w, sink, t, sp)
    return (t, sp, parent, flags, name, kind, start, end, code, msg, attrs, events, links, rid, scid)


def _references(s: dict[str, Any], t: str, w: str, sink: SpanSink, sp: str) -> tuple[str | None, list[dict[str, Any]]]:
    refs = s.get("references")
    if refs is None or refs == []:
        p = s.get("parentSpanID")
        if p in (None, "", "0", 0) or (type(p) is str and not p.strip("0")):
            return None, []
        return jaeger_id(p, 8, "parentSpanID"), []
    if type(refs) is not list:
        raise DecodeError(f"references is a {type(refs).__name__}, expected a list")
    decoded: list[tuple[str, str, str]] = []
    for i, r in enumerate(refs):
        if type(r) is not dict:
            raise DecodeError(f"references[{i}] is a {type(r).__name__}, expected an object")
        rtype = r.get("refType", "CHILD_OF")
        rtype = rtype.upper() if type(rtype) is str else "CHILD_OF"
        try:
            rt = jaeger_id(r.get("traceID", t), 16, "reference trace id")
            rs = jaeger_id(r.get("spanID"), 8, "reference span id")
        except DecodeError as e:
            sink.repair(f"{w}.references[{i}]", f"reference dropped: {e.message}", trace_id=t, span_id=sp)
            continue
        decoded.append((rtype, rt, rs))
    parent_at = next((i for i, (ty, rt, _) in enumerate(decoded) if ty == "CHILD_OF" and rt == t), None)
    if parent_at is None:
        parent_at = next((i for i, (ty, rt, _) in enumerate(decoded) if ty == "FOLLOWS_FROM" and rt == t), None)
    links = [
        {
            "trace_id": rt,
            "span_id": rs,
            "trace_state": None,
            "flags": 0,
            "attributes": {"opentracing.ref_type": ty.lower()},
            "dropped_attributes_count": 0,
        }
        for i, (ty, rt, rs) in enumerate(decoded)
        if i != parent_at
    ]
    return (decoded[parent_at][2] if parent_at is not None else None), links


def _logs(logs: Any, w: str, sink: SpanSink, t: str, sp: str) -> list[dict[str, Any]]:
    if not logs:
        return []
    if type(logs) is not list:
        raise DecodeError(f"logs is a {type(logs).__name__}, expected a list")
    out = []
    for i, lg in enumerate(logs):
        if type(lg) is not dict:
            raise DecodeError(f"logs[{i}] is a {type(lg).__name__}, expected an object")
        attrs = typed_tags(lg.get("fields"), f"{w}.logs[{i}].fields", sink, t, sp)
        name = attrs.pop("event", "") if type(attrs.get("event")) is str else ""
        out.append(
            {
                "time_ns": us_to_ns(lg.get("timestamp", 0), f"logs[{i}].timestamp"),
                "name": name,
                "attributes": attrs,
                "dropped_attributes_count": 0,
            }
        )
    return out
