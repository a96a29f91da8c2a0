"""Tests for the protobuf OTLP decoder (fabric_trace.ingest.otlp_proto)."""

from __future__ import annotations

import base64
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, TracesData

from fabric_trace.fixtures_gen.protoenc import varint
from fabric_trace.ingest.batch import (
    MAX_TIME_NS,
    SPAN_FIELDS,
    SPAN_KINDS,
    STATUS_CODES,
    SpanBatch,
    check_span_id,
    check_trace_id,
)
from fabric_trace.ingest.limits import Limits
from fabric_trace.ingest.otlp_proto import decode_otlp_proto

from conftest import SAMPLES as _ALL_SAMPLES

SAMPLES = _ALL_SAMPLES / "generated"
F = {name: i for i, name in enumerate(SPAN_FIELDS)}

# ----------------------------------------------------------------------------- builders


def any_value(v: Any) -> AnyValue:
    a = AnyValue()
    if v is None:
        pass
    elif isinstance(v, bool):
        a.bool_value = v
    elif isinstance(v, int):
        a.int_value = v
    elif isinstance(v, float):
        a.double_value = v
    elif isinstance(v, str):
        a.string_value = v
    elif isinstance(v, bytes):
        a.bytes_value = v
    elif isinstance(v, list):
        a.array_value.SetInParent()
        for x in v:
            a.array_value.values.append(any_value(x))
    elif isinstance(v, dict):
        a.kvlist_value.SetInParent()
        for k, x in v.items():
            a.kvlist_value.values.append(kv(k, x))
    else:
        raise TypeError(v)
    return a


def kv(key: str, value: Any) -> KeyValue:
    return KeyValue(key=key, value=any_value(value))


def make_span(i: int = 1, **kw: Any) -> Span:
    s = Span(
        trace_id=kw.pop("trace_id", bytes([1] * 15 + [i % 256])),
        span_id=kw.pop("span_id", bytes([2] * 7 + [i % 256 or 1])),
        name=kw.pop("name", f"span-{i}"),
        kind=kw.pop("kind", 3),
        start_time_unix_nano=kw.pop("start", 1_700_000_000_000_000_000 + i),
        end_time_unix_nano=kw.pop("end", 1_700_000_000_000_000_500 + i),
    )
    for k, v in kw.pop("attrs", {"n": i, "s": "x"}).items():
        s.attributes.append(kv(k, v))
    for field, value in kw.items():
        setattr(s, field, value)
    return s


def request(*groups: list[Span], resource: dict[str, Any] | None = None) -> bytes:
    req = ExportTraceServiceRequest()
    for spans in groups:
        rs = req.resource_spans.add()
        for k, v in (resource or {"service.name": "svc"}).items():
            rs.resource.attributes.append(kv(k, v))
        ss = rs.scope_spans.add()
        ss.scope.name = "lib"
        ss.scope.version = "1.0"
        ss.spans.extend(spans)
    return req.SerializeToString()


def decode(data: bytes, limits: Limits | None = None) -> SpanBatch:
    batch = SpanBatch()
    decode_otlp_proto(data, "", batch, limits)
    return batch


def ld(field: int, payload: bytes) -> bytes:
    """A length-delimited field, written with the fixture generator's encoder (``fixtures_gen.protoenc``,
    independent of the decoder under test in ``ingest/``)."""
    return varint(field << 3 | 2) + varint(len(payload)) + payload


# ----------------------------------------------------------------------------- reference decoder


def ref_value(a: AnyValue) -> Any:
    which = a.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [ref_value(x) for x in a.array_value.values]
    if which == "kvlist_value":
        return {x.key: ref_value(x.value) for x in a.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(a.bytes_value).decode()
    if which == "double_value" and not math.isfinite(a.double_value):
        return None
    return getattr(a, which)


def ref_attrs(kvs: Any) -> dict[str, Any]:
    return {x.key: ref_value(x.value) for x in kvs}


def ref_rows(data: bytes) -> list[tuple[Any, ...]]:
    """The naive decoder with the official classes, as the oracle."""
    rows = []
    for rs in ExportTraceServiceRequest.FromString(data).resource_spans:
        for ss in rs.scope_spans:
            for s in ss.spans:
                rows.append(
                    (
                        s.trace_id.hex(),
                        s.span_id.hex(),
                        s.parent_span_id.hex() or None,
                        s.trace_state or None,
                        s.flags,
                        s.name,
                        SPAN_KINDS[s.kind],
                        s.start_time_unix_nano,
                        s.end_time_unix_nano,
                        STATUS_CODES[s.status.code],
                        s.status.message or None,
                        ref_attrs(s.attributes),
                        [
                            {
                                "time_ns": e.time_unix_nano,
                                "name": e.name,
                                "attributes": ref_attrs(e.attributes),
                                "dropped_attributes_count": e.dropped_attributes_count,
                            }
                            for e in s.events
                        ],
                        [
                            {
                                "trace_id": x.trace_id.hex(),
                                "span_id": x.span_id.hex(),
                                "trace_state": x.trace_state or None,
                                "flags": x.flags,
                                "attributes": ref_attrs(x.attributes),
                                "dropped_attributes_count": x.dropped_attributes_count,
                            }
                            for x in s.links
                        ],
                        s.dropped_attributes_count,
                        s.dropped_events_count,
                        s.dropped_links_count,
                    )
                )
    return rows


def content(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row without where / resource_id / scope_id."""
    return row[1:18]


# ----------------------------------------------------------------------------- real files


@pytest.mark.parametrize("name", ["otel", "openinference", "openllmetry"])
def test_real_samples_match_reference(name: str) -> None:
    data = (SAMPLES / f"{name}.otlp.pb").read_bytes()
    batch = decode(data)
    assert len(batch) == 6
    assert batch.rejections == []
    assert [content(r) for r in batch.spans] == ref_rows(data)
    assert len(batch.resources) == 1 and len(batch.scopes) >= 1
    row = batch.spans[0]
    assert len(row) == len(SPAN_FIELDS)
    assert row[F["where"]] == "resourceSpans[0].scopeSpans[0].spans[0]"
    assert row[F["resource_id"]] in batch.resources and row[F["scope_id"]] in batch.scopes
    assert any(r[F["status_code"]] == "ERROR" for r in batch.spans)
    assert any(r[F["events"]] for r in batch.spans)


def test_traces_data_bytes_decode_the_same() -> None:
    req = ExportTraceServiceRequest.FromString((SAMPLES / "otel.otlp.pb").read_bytes())
    td = TracesData()
    td.resource_spans.extend(req.resource_spans)
    assert [content(r) for r in decode(td.SerializeToString()).spans] == [
        content(r) for r in decode(req.SerializeToString()).spans
    ]


def test_where_prefix_and_resource_scope() -> None:
    data = request([make_span(1), make_span(2)], resource={"service.name": "checkout", "k": 3})
    batch = SpanBatch()
    decode_otlp_proto(data, "frame 2 at byte 10", batch)
    assert [r[0] for r in batch.spans] == [
        "frame 2 at byte 10 resourceSpans[0].scopeSpans[0].spans[0]",
        "frame 2 at byte 10 resourceSpans[0].scopeSpans[0].spans[1]",
    ]
    ((attrs, schema, dropped),) = batch.resources.values()
    assert attrs == '{"service.name":"checkout","k":3}' and schema is None and dropped == 0
    ((name, version, sattrs, _, _),) = batch.scopes.values()
    assert (name, version, sattrs) == ("lib", "1.0", "{}")


# ----------------------------------------------------------------------------- values


def test_attribute_value_types() -> None:
    attrs = {
        "s": "héllo",
        "i": -42,
        "big": 2**63 - 1,
        "b": False,
        "d": 0.25,
        "bytes": b"\x00\xff",
        "arr": ["a", 1, True, None],
        "kv": {"x": {"y": [1.5]}},
        "empty": None,
    }
    batch = decode(request([make_span(1, attrs=attrs)]))
    got = batch.spans[0][F["attributes"]]
    assert got == {**attrs, "bytes": "AP8="}
    assert batch.rejections == []


def test_nan_and_infinity_become_none_with_repair() -> None:
    batch = decode(request([make_span(1, attrs={"nan": math.nan, "inf": -math.inf, "ok": 1.0})]))
    assert batch.spans[0][F["attributes"]] == {"nan": None, "inf": None, "ok": 1.0}
    reasons = [r.reason for r in batch.rejections]
    assert all(r.action == "repaired" for r in batch.rejections) and len(reasons) == 2
    assert "is not finite" in reasons[0]


def test_long_string_truncated_on_char_boundary() -> None:
    value = "é" * 40_000  # 80,000 bytes
    batch = decode(request([make_span(1, attrs={"long": value})]))
    got = batch.spans[0][F["attributes"]]["long"]
    assert len(got.encode()) <= 65536 and value.startswith(got) and len(got) == 32768
    assert [r.action for r in batch.rejections] == ["repaired"]
    small = decode(request([make_span(1, attrs={"long": "abcdef"})]), Limits(max_string_bytes=4))
    assert small.spans[0][F["attributes"]]["long"] == "abcd"


def test_repairs_are_recorded_every_time_not_cached() -> None:
    data = request([make_span(1, attrs={"nan": math.nan}), make_span(2, attrs={"nan": math.nan})])
    for _ in range(2):
        batch = decode(data)
        assert len(batch) == 2 and len([r for r in batch.rejections if r.action == "repaired"]) == 2


def test_duplicate_keys_last_wins_with_repair() -> None:
    s = make_span(1, attrs={})
    s.attributes.extend([kv("a", 1), kv("a", 2), kv("b", 3)])
    batch = decode(request([s]))
    assert batch.spans[0][F["attributes"]] == {"a": 2, "b": 3}
    assert "duplicate" in batch.rejections[0].reason


def _nested_kvlist(depth: int) -> bytes:
    value = ld(1, b"leaf")  # AnyValue{string_value}
    for _ in range(depth):
        value = ld(6, ld(1, ld(1, b"k") + ld(2, value)))  # AnyValue{kvlist{[KeyValue{k, value}]}}
    return ld(1, b"deep") + ld(2, value)  # KeyValue


def test_kvlist_200_deep_is_cut_at_64_and_span_kept() -> None:
    span = make_span(1).SerializeToString() + ld(9, _nested_kvlist(200))
    data = ld(1, ld(2, ld(2, span)))  # request{resource_spans{scope_spans{spans}}}
    with pytest.raises(Exception):
        ExportTraceServiceRequest.FromString(data)  # upb refuses it whole
    batch = decode(data)
    assert len(batch) == 1
    v = batch.spans[0][F["attributes"]]["deep"]
    depth = 1
    while isinstance(v, dict):
        v = v["k"]
        depth += 1
    assert depth == 65 and v is None
    assert [r.action for r in batch.rejections] == ["repaired"]
    assert "deeper than 64" in batch.rejections[0].reason


def test_unknown_enums_with_repair() -> None:
    s = make_span(1, kind=9)
    s.status.code = 7
    batch = decode(request([s]))
    row = batch.spans[0]
    assert row[F["kind"]] == "UNSPECIFIED" and row[F["status_code"]] == "UNSET"
    assert len(batch.rejections) == 2 and all(r.action == "repaired" for r in batch.rejections)


def test_events_links_status_and_counts() -> None:
    s = make_span(1, trace_state="a=b", flags=0x301, dropped_attributes_count=2)
    s.status.code = 2
    s.status.message = "boom"
    e = s.events.add(time_unix_nano=5, name="exception", dropped_attributes_count=1)
    e.attributes.append(kv("exception.type", "ValueError"))
    s.links.add(trace_id=b"\x03" * 16, span_id=b"\x04" * 8, trace_state="x=y", flags=1)
    s.links.add(trace_id=b"\x00" * 16, span_id=b"\x04" * 8)  # invalid: dropped with a repair
    s.dropped_events_count = 3
    s.dropped_links_count = 4
    batch = decode(request([s]))
    row = batch.spans[0]
    assert row[F["trace_state"]] == "a=b" and row[F["flags"]] == 0x301
    assert (row[F["status_code"]], row[F["status_message"]]) == ("ERROR", "boom")
    assert row[F["events"]] == [
        {"time_ns": 5, "name": "exception", "attributes": {"exception.type": "ValueError"}, "dropped_attributes_count": 1}
    ]
    assert row[F["links"]] == [
        {
            "trace_id": "03" * 16,
            "span_id": "04" * 8,
            "trace_state": "x=y",
            "flags": 1,
            "attributes": {},
            "dropped_attributes_count": 0,
        }
    ]
    assert row[F["dropped_attributes_count"] :][:3] == (2, 3, 4)
    assert [r.action for r in batch.rejections] == ["repaired"] and "all zeros" in batch.rejections[0].reason


# ----------------------------------------------------------------------------- ids and times


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"trace_id": b"\x01" * 8}, "trace id has 16 hex chars"),
        ({"trace_id": b""}, "trace id has 0 hex chars"),
        ({"trace_id": b"\x00" * 16}, "trace id is all zeros"),
        ({"span_id": b"\x00" * 8}, "span id is all zeros"),
        ({"span_id": b"\x01" * 9}, "span id has 18 hex chars"),
        ({"parent_span_id": b"\x01" * 3}, "parent span id has 6 hex chars"),
        ({"start": 2**63}, "start time"),
        ({"end": 2**64 - 1}, "end time"),
    ],
)
def test_invalid_span_rejected_others_kept(fields: dict[str, Any], reason: str) -> None:
    batch = decode(request([make_span(1), make_span(2, **fields), make_span(3)]))
    assert [r[F["name"]] for r in batch.spans] == ["span-1", "span-3"]
    (rej,) = batch.rejections
    assert rej.action == "rejected" and reason in rej.reason and rej.where.endswith("spans[1]")
    assert batch.spans_rejected == 1


def test_parent_empty_or_zero_is_root() -> None:
    batch = decode(request([make_span(1), make_span(2, parent_span_id=b"\x00" * 8), make_span(3, parent_span_id=b"\x05" * 8)]))
    assert [r[F["parent_span_id"]] for r in batch.spans] == [None, None, "05" * 8]


# ----------------------------------------------------------------------------- damaged messages


def test_bad_utf8_in_one_attribute_is_repaired() -> None:
    data = request([make_span(1), make_span(2, attrs={"bad": "XXXXMARK"}), make_span(3)], [make_span(4)])
    data = data.replace(b"XXXXMARK", b"\xff\xfeXXMARK")
    batch = decode(data)
    assert [r[F["name"]] for r in batch.spans] == ["span-1", "span-2", "span-3", "span-4"]
    assert batch.spans[1][F["attributes"]]["bad"] == "\ufffd\ufffdXXMARK"
    (rep,) = batch.rejections
    assert rep.action == "repaired" and rep.where.endswith("resourceSpans[0].scopeSpans[0].spans[1]")
    assert rep.reason == "invalid UTF-8 in attribute 'bad' (from byte 0 of the value) replaced with U+FFFD"
    assert rep.span_id == make_span(2).span_id.hex() and batch.spans_rejected == 0


def test_bad_utf8_in_span_name_is_repaired() -> None:
    data = request([make_span(1), make_span(2, name="NAMEMARK"), make_span(3)], [make_span(4)])
    data = data.replace(b"NAMEMARK", b"\xc3NAMEMAR")
    with pytest.raises(Exception):
        ExportTraceServiceRequest.FromString(data)
    batch = decode(data)
    assert [r[F["name"]] for r in batch.spans] == ["span-1", "\ufffdNAMEMAR", "span-3", "span-4"]
    (rep,) = batch.rejections
    at = data.index(b"\xc3NAMEMAR")
    assert rep.action == "repaired" and rep.reason == f"invalid UTF-8 in name at message byte {at} replaced with U+FFFD"
    assert rep.where == "resourceSpans[0].scopeSpans[0].spans[1]" and rep.trace_id == make_span(2).trace_id.hex()
    assert batch.spans[3][F["where"]] == "resourceSpans[1].scopeSpans[0].spans[0]"


def test_bad_utf8_in_resource_attribute_is_repaired() -> None:
    data = request([make_span(1)], resource={"service.name": "RESMARK"}) + request([make_span(2)])
    batch = decode(data.replace(b"RESMARK", b"\xffRESMAR"))
    assert [r[F["name"]] for r in batch.spans] == ["span-1", "span-2"]
    (rep,) = batch.rejections
    assert rep.where == "resourceSpans[0].resource" and rep.action == "repaired" and "U+FFFD" in rep.reason
    assert batch.spans_rejected == 0


def test_bad_utf8_in_scope_name_is_repaired() -> None:
    data = request([make_span(1), make_span(2)]) + request([make_span(3)])
    data = data.replace(b"lib", b"\xffib", 1)
    batch = decode(data)
    assert [r[F["name"]] for r in batch.spans] == ["span-1", "span-2", "span-3"]
    (rep,) = batch.rejections
    assert rep.where == "resourceSpans[0].scopeSpans[0].scope" and rep.action == "repaired"
    assert rep.reason.startswith("invalid UTF-8 in scope.name at message byte ")
    assert batch.scopes[batch.spans[0][F["scope_id"]]][0] == "\ufffdib" and batch.spans_rejected == 0


def test_truncated_message_keeps_complete_resource_spans() -> None:
    data = request([make_span(1)], [make_span(2)], [make_span(3)])
    batch = decode(data[:-7])
    assert [r[F["name"]] for r in batch.spans] == ["span-1", "span-2"]
    (rej,) = batch.rejections
    assert "malformed protobuf" in rej.reason and rej.where.startswith("byte ")


def test_legacy_instrumentation_library_spans_field_1000() -> None:
    span = make_span(7).SerializeToString()
    library = ld(1, b"old-lib") + ld(2, b"0.9")  # InstrumentationLibrary{name, version}
    ils = ld(1, library) + ld(2, span)  # InstrumentationLibrarySpans
    rs = ld(1, ResourceSpans().resource.SerializeToString()) + ld(1000, ils)
    data = ld(1, rs)
    assert len(ExportTraceServiceRequest.FromString(data).resource_spans[0].scope_spans) == 0
    batch = decode(data)
    assert [r[F["name"]] for r in batch.spans] == ["span-7"]
    assert batch.spans[0][F["where"]] == "resourceSpans[0].instrumentationLibrarySpans[0].spans[0]"
    ((name, version, *_),) = batch.scopes.values()
    assert (name, version) == ("old-lib", "0.9")


def test_empty_message_decodes_nothing() -> None:
    batch = decode(b"")
    assert len(batch) == 0 and batch.rejections == []


# ----------------------------------------------------------------------------- properties

_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.binary(max_size=10),
)
_values = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_spans = st.fixed_dictionaries(
    {
        "trace_id": st.binary(min_size=16, max_size=16).filter(any),
        "span_id": st.binary(min_size=8, max_size=8).filter(any),
        "parent": st.one_of(st.just(b""), st.binary(min_size=8, max_size=8).filter(any)),
        "name": st.text(max_size=30),
        "kind": st.integers(0, 5),
        "code": st.integers(0, 2),
        "start": st.integers(0, 2**63 - 1),
        "end": st.integers(0, 2**63 - 1),
        "attrs": st.dictionaries(st.text(max_size=12), _values, max_size=8),
    }
)


def _expected(v: Any) -> Any:
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    if isinstance(v, list):
        return [_expected(x) for x in v]
    if isinstance(v, dict):
        return {k: _expected(x) for k, x in v.items()}
    return v


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_spans, min_size=1, max_size=6))
def test_property_roundtrip_exact(specs: list[dict[str, Any]]) -> None:
    spans = []
    for i, sp in enumerate(specs):
        s = make_span(
            i,
            trace_id=sp["trace_id"],
            span_id=sp["span_id"],
            parent_span_id=sp["parent"],
            name=sp["name"],
            kind=sp["kind"],
            start=sp["start"],
            end=sp["end"],
            attrs=sp["attrs"],
        )
        s.status.code = sp["code"]
        spans.append(s)
    data = request(spans)
    batch = decode(data)
    assert batch.rejections == []
    assert len(batch) == len(specs)
    for row, sp in zip(batch.spans, specs):
        assert row[F["trace_id"]] == sp["trace_id"].hex()
        assert row[F["span_id"]] == sp["span_id"].hex()
        assert row[F["parent_span_id"]] == (sp["parent"].hex() or None)
        assert (row[F["start_ns"]], row[F["end_ns"]]) == (sp["start"], sp["end"])
        assert row[F["name"]] == sp["name"]
        assert row[F["kind"]] == SPAN_KINDS[sp["kind"]] and row[F["status_code"]] == STATUS_CODES[sp["code"]]
        assert row[F["attributes"]] == _expected(sp["attrs"])
    assert [content(r) for r in batch.spans] == ref_rows(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_property_mutations_never_raise(data: st.DataObject) -> None:
    base = bytearray(request([make_span(1, attrs={"a": "x", "b": [1, 2], "c": {"d": 1.5}}), make_span(2)], [make_span(3)]))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(base) - 1))
        base[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(base)))
    batch = decode(bytes(base[:cut]))  # must not raise
    for row in batch.spans:
        assert len(row) == len(SPAN_FIELDS)
        assert check_trace_id(row[F["trace_id"]]) is None and check_span_id(row[F["span_id"]]) is None
        assert 0 <= row[F["start_ns"]] <= MAX_TIME_NS and 0 <= row[F["end_ns"]] <= MAX_TIME_NS
