"""Helpers for the JSON decoder tests: span/document builders, batch accessors, strategies."""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import orjson
from hypothesis import strategies as st

from fabric_trace.ingest.batch import MAX_TIME_NS, SPAN_FIELDS, SPAN_KINDS, STATUS_CODES, SpanBatch
from fabric_trace.ingest.otlp_json import decode_otlp_json

TID = "5b8efff798038103d269b633813fc60c"
SID = "eee19b7ec3c1b174"


def rows(batch: SpanBatch) -> list[dict[str, Any]]:
    return [dict(zip(SPAN_FIELDS, r)) for r in batch.spans]


def rejected(batch: SpanBatch) -> list[Any]:
    return [r for r in batch.rejections if r.action == "rejected"]


def repaired(batch: SpanBatch) -> list[Any]:
    return [r for r in batch.rejections if r.action == "repaired"]


def resource_attrs(batch: SpanBatch, rid: str) -> dict[str, Any]:
    return orjson.loads(batch.resources[rid][0])


def span(**over: Any) -> dict[str, Any]:
    """A valid canonical OTLP/JSON span; keyword arguments override fields (None deletes)."""
    s: dict[str, Any] = {
        "traceId": TID,
        "spanId": SID,
        "name": "op",
        "kind": 1,
        "startTimeUnixNano": "1000",
        "endTimeUnixNano": "2000",
        "status": {},
    }
    for k, v in over.items():
        if v is None:
            s.pop(k, None)
        else:
            s[k] = v
    return s


def doc(*spans: Any) -> dict[str, Any]:
    """One resourceSpans / one scopeSpans OTLP document holding ``spans``."""
    return {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"scope": {}, "spans": list(spans)}]}]}


def decode(d: Any, where: str = "line 1") -> SpanBatch:
    b = SpanBatch()
    decode_otlp_json(d, where, b)
    return b


def attr(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "value": value}


def read_lines(path: Path) -> list[Any]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def jaeger_span(**over: Any) -> dict[str, Any]:
    s = {"traceID": "abc", "spanID": "1", "operationName": "op", "startTime": 10, "duration": 2,
         "references": [], "tags": [], "logs": [], "processID": "p1"}  # fmt: skip
    s.update(over)
    return s


# ---------------------------------------------------------------- hypothesis strategies

ids16 = st.binary(min_size=16, max_size=16).filter(any)
ids8 = st.binary(min_size=8, max_size=8).filter(any)
times = st.integers(0, MAX_TIME_NS)
int64s = st.integers(-(2**63), 2**63 - 1)
texts = st.text(max_size=20)


def _mixed_case(raw: bytes, pattern: list[bool]) -> str:
    h = raw.hex()
    return "".join(c.upper() if pattern[i % len(pattern)] else c for i, c in enumerate(h))


def _i64(draw: Any, n: int) -> Any:
    return str(n) if draw(st.booleans()) else n


@st.composite
def anyvalues(draw: Any, depth: int = 1) -> tuple[dict[str, Any], Any]:
    """An OTLP/JSON AnyValue and the Python value it must decode to."""
    choices = ["s", "i", "d", "b", "y", "e"] + (["a", "k"] if depth < 5 else [])
    c = draw(st.sampled_from(choices))
    if c == "s":
        v = draw(texts)
        return {"stringValue": v}, v
    if c == "i":
        n = draw(int64s)
        return {"intValue": _i64(draw, n)}, n
    if c == "d":
        x = draw(st.floats(allow_nan=False, allow_infinity=False))  # non-finite ones are repaired (emptied)
        return {"doubleValue": x}, x
    if c == "b":
        v = draw(st.booleans())
        return {"boolValue": v}, v
    if c == "y":
        v = base64.b64encode(draw(st.binary(max_size=8))).decode()
        return {"bytesValue": v}, v
    if c == "e":
        return {}, None
    if c == "a":
        items = draw(st.lists(anyvalues(depth + 1), max_size=3))
        return {"arrayValue": {"values": [i[0] for i in items]}}, [i[1] for i in items]
    kv = draw(st.dictionaries(texts, anyvalues(depth + 1), max_size=3))
    return {"kvlistValue": {"values": [attr(k, v[0]) for k, v in kv.items()]}}, {k: v[1] for k, v in kv.items()}


@st.composite
def valid_spans(draw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A valid OTLP/JSON span (hex ids in mixed case, int64 as str or int) and its expected row fields."""
    pattern = draw(st.lists(st.booleans(), min_size=1, max_size=4))
    tid, sid = draw(ids16), draw(ids8)
    parent = draw(st.none() | ids8)
    start, end = draw(times), draw(times)
    kind = draw(st.integers(0, 5))
    code = draw(st.integers(0, 2))
    attrs = draw(st.dictionaries(texts, anyvalues(), max_size=5))
    ev_time = draw(times)
    ltid, lsid, flags = draw(ids16), draw(ids8), draw(st.integers(0, 2**32 - 1))
    state = draw(st.sampled_from(["", "vendor=a", "k1=v1,k2=v2"]))
    lattrs = draw(st.dictionaries(texts, anyvalues(), max_size=2))
    s = {
        "traceId": _mixed_case(tid, pattern), "spanId": _mixed_case(sid, pattern),
        "parentSpanId": _mixed_case(parent, pattern) if parent else "",
        "name": draw(texts), "kind": kind,
        "startTimeUnixNano": _i64(draw, start), "endTimeUnixNano": _i64(draw, end),
        "attributes": [attr(k, v[0]) for k, v in attrs.items()],
        "events": [{"timeUnixNano": _i64(draw, ev_time), "name": "e"}],
        "status": {"code": code}, "flags": flags, "traceState": state, "droppedEventsCount": _i64(draw, 3),
        "links": [{"traceId": _mixed_case(ltid, pattern), "spanId": _mixed_case(lsid, pattern), "traceState": state,
                   "attributes": [attr(k, v[0]) for k, v in lattrs.items()]}],
    }  # fmt: skip
    want = {
        "trace_id": tid.hex(), "span_id": sid.hex(), "parent_span_id": parent.hex() if parent else None,
        "name": s["name"], "kind": SPAN_KINDS[kind], "start_ns": start, "end_ns": end,
        "status_code": STATUS_CODES[code], "attributes": {k: v[1] for k, v in attrs.items()},
        "events": [{"time_ns": ev_time, "name": "e", "attributes": {}, "dropped_attributes_count": 0}],
        "flags": flags, "trace_state": state or None, "dropped_events_count": 3,
        "links": [{"trace_id": ltid.hex(), "span_id": lsid.hex(), "trace_state": state or None, "flags": 0,
                   "attributes": {k: v[1] for k, v in lattrs.items()}, "dropped_attributes_count": 0}],
    }  # fmt: skip
    return s, want


def same_value(a: Any, b: Any) -> bool:
    """Deep equality that also compares types (1 != 1.0 != True) and treats NaN == NaN."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same_value, a, b))
    return type(a) is type(b) and a == b


#: Field names of the three formats, so garbage often reaches deep decoder paths.
GARBAGE_KEYS = [
    "resourceSpans", "scopeSpans", "spans", "resource", "scope", "attributes", "traceId", "spanId",
    "parentSpanId", "startTimeUnixNano", "endTimeUnixNano", "kind", "status", "code", "events", "links",
    "key", "value", "stringValue", "intValue", "arrayValue", "kvlistValue", "values", "data", "traceID",
    "spanID", "references", "processes", "tags", "logs", "id", "timestamp", "batches",
]  # fmt: skip
_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
)
#: Arbitrary JSON-like values (what orjson.loads can return: no NaN, str keys).
garbage = st.recursive(
    _scalars | st.sampled_from([TID, SID, "", "0" * 32, "12", "SPAN_KIND_SERVER"]),
    lambda kids: st.lists(kids, max_size=4)
    | st.dictionaries(st.sampled_from(GARBAGE_KEYS) | st.text(max_size=4), kids, max_size=5),
    max_leaves=40,
)
