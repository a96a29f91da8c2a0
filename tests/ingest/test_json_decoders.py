"""JSON decoders: OTLP/JSON, Jaeger, Zipkin v2 and the shape dispatcher.

Real samples first (exact values), then lenient inputs, bad records (rejected or
repaired with a reason while the other spans load) and property tests.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from json_helpers import (
    GARBAGE_KEYS,
    SID,
    TID,
    attr,
    decode,
    doc,
    garbage,
    jaeger_span,
    read_lines,
    rejected,
    repaired,
    resource_attrs,
    rows,
    same_value,
    span,
    valid_spans,
)

from fabric_trace.errors import DecodeError, FabricError
from fabric_trace.ingest.anyvalue import MAX_ATTR_BYTES, hex_id, json_anyvalue, parse_int_ns
from fabric_trace.ingest.batch import MAX_TIME_NS, SPAN_KINDS, STATUS_CODES, SpanBatch, check_span_id, check_trace_id
from fabric_trace.ingest.jaeger_json import decode_jaeger_json
from fabric_trace.ingest.json_dispatch import decode_json_value
from fabric_trace.ingest.otlp_json import decode_otlp_json
from fabric_trace.ingest.zipkin_json import decode_zipkin_json


# ---------------------------------------------------------------- real samples


def test_proto_example_uppercase_hex(samples: Path) -> None:
    b = SpanBatch()
    fmt = decode_json_value(orjson.loads((samples / "public/otlp_proto_examples_trace.json").read_bytes()), "f", b)
    assert fmt == "otlp-json"
    (r,) = rows(b)
    assert r["where"] == "f, resourceSpans[0].scopeSpans[0].spans[0]"
    assert (r["trace_id"], r["span_id"], r["parent_span_id"]) == (TID, SID, "eee19b7ec3c1b173")
    assert (r["name"], r["kind"]) == ("I'm a server span", "SERVER")
    assert (r["status_code"], r["status_message"]) == ("UNSET", None)
    assert (r["start_ns"], r["end_ns"]) == (1544712660000000000, 1544712661000000000)
    assert r["attributes"] == {"my.span.attr": "some value"}
    assert (r["events"], r["links"], r["flags"], r["trace_state"]) == ([], [], 0, None)
    assert resource_attrs(b, r["resource_id"]) == {"service.name": "my.service"}
    name, version, attrs, schema_url, dropped = b.scopes[r["scope_id"]]
    assert (name, version, orjson.loads(attrs), schema_url, dropped) == (
        "my.library", "1.0.0", {"my.scope.attribute": "some scope attribute"}, None, 0)  # fmt: skip
    assert b.rejections == []


def test_spec_file_exporter_empty_ids_rejected(samples: Path) -> None:
    b = SpanBatch()
    for n, d in enumerate(read_lines(samples / "public/otel_spec_file_exporter_example.traces.jsonl"), 1):
        decode_otlp_json(d, f"line {n}", b)
    assert b.spans == []
    rej = rejected(b)
    assert len(rej) == 8 and b.spans_rejected == 8
    assert rej[0].where == "line 1, resourceSpans[0].scopeSpans[0].spans[0]"
    assert rej[7].where == "line 4, resourceSpans[0].scopeSpans[0].spans[1]"
    assert {r.reason for r in rej} == {"trace id is empty"}
    assert '"name":"operationA"' in rej[0].raw and '"name":"operationB"' in rej[1].raw


def test_spec_file_exporter_with_ids_filled_in(samples: Path) -> None:
    d = read_lines(samples / "public/otel_spec_file_exporter_example.traces.jsonl")[0]
    a, bspan = d["resourceSpans"][0]["scopeSpans"][0]["spans"]
    a.update(traceId=TID.upper(), spanId=SID)  # operationB keeps its empty ids
    b = decode(d)
    (r,) = rows(b)
    assert (r["name"], r["parent_span_id"], r["status_code"], r["status_message"]) == (
        "operationA", None, "ERROR", "status-cancelled")  # fmt: skip
    assert (r["start_ns"], r["end_ns"], r["kind"]) == (1581452772000000321, 1581452773000000789, "UNSPECIFIED")
    assert (r["dropped_attributes_count"], r["dropped_events_count"], r["dropped_links_count"]) == (1, 1, 0)
    assert r["events"] == [
        {"time_ns": 1581452773000000123, "name": "event-with-attr",
         "attributes": {"span-event-attr": "span-event-attr-val"}, "dropped_attributes_count": 2},
        {"time_ns": 1581452773000000123, "name": "event", "attributes": {}, "dropped_attributes_count": 2},
    ]  # fmt: skip
    assert b.scopes[r["scope_id"]][:2] == (None, None)
    assert [x.where for x in rejected(b)] == ["line 1, resourceSpans[0].scopeSpans[0].spans[1]"]
    # operationB with ids: its two links have empty ids -> dropped (repaired), span kept
    bspan.update(traceId=TID, spanId="00000000000000aa")
    b = decode(d)
    assert len(b.spans) == 2 and rows(b)[1]["links"] == [] and rows(b)[1]["dropped_links_count"] == 3
    assert [x.reason for x in repaired(b)] == ["link dropped: link trace id is empty"] * 2


@pytest.mark.parametrize("name", ["otel", "openinference", "openllmetry"])
def test_generated_samples_load_completely(samples: Path, name: str) -> None:
    b = SpanBatch()
    for n, d in enumerate(read_lines(samples / f"generated/{name}.otlp.jsonl"), 1):
        assert decode_json_value(d, f"line {n}", b) == "otlp-json"
    assert len(b.spans) == 6 and b.rejections == []
    rs = rows(b)
    roots = [r for r in rs if r["parent_span_id"] is None]
    assert len(roots) == 1 and roots[0]["name"] == "invoke_agent weather-agent"
    assert all(r["parent_span_id"] == roots[0]["span_id"] for r in rs if r is not roots[0])
    assert len({r["trace_id"] for r in rs}) == 1 and all(r["flags"] == 256 for r in rs)
    errors = [r for r in rs if r["status_code"] == "ERROR"]
    assert len(errors) == 1 and "404" in errors[0]["status_message"]
    svc = resource_attrs(b, rs[0]["resource_id"])["service.name"]
    assert svc == f"fixture-agent-{name}"


def test_generated_otel_exact_values(samples: Path) -> None:
    b = SpanBatch()
    decode_otlp_json(read_lines(samples / "generated/otel.otlp.jsonl")[0], "line 1", b)
    r = rows(b)[0]
    assert (r["trace_id"], r["span_id"], r["parent_span_id"]) == (
        "e9c97906a21cdd60c1ba058b2e68feca", "e00a850ad10a87d4", "c178099c308b97d0")  # fmt: skip
    assert (r["kind"], r["start_ns"], r["end_ns"]) == ("CLIENT", 1795824119279428775, 1795824119362861252)
    a = r["attributes"]
    assert a["gen_ai.usage.input_tokens"] == 42 and type(a["gen_ai.usage.input_tokens"]) is int
    assert a["gen_ai.request.temperature"] == 0.2 and type(a["gen_ai.request.temperature"]) is float
    assert a["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert a["gen_ai.request.model"] == "gpt-4o-mini" and len(a) == 12
    name, version, _, schema_url, _ = b.scopes[r["scope_id"]]
    assert (name, version, schema_url) == ("opentelemetry.util.genai.handler", "1.1b0",
                                           "https://opentelemetry.io/schemas/1.37.0")  # fmt: skip
    tool = next(x for x in rows(b) if x["name"] == "execute_tool get_weather")
    assert [e["name"] for e in tool["events"]] == ["tool.result"] and tool["kind"] == "INTERNAL"
    assert tool["events"][0]["time_ns"] >= tool["start_ns"]


def test_generated_openllmetry_bool_and_embedding_vector(samples: Path) -> None:
    b = SpanBatch()
    decode_otlp_json(read_lines(samples / "generated/openllmetry.otlp.jsonl")[0], "line 1", b)
    chat = rows(b)[0]
    assert chat["attributes"]["gen_ai.is_streaming"] is False
    b = SpanBatch()
    decode_otlp_json(read_lines(samples / "generated/openinference.otlp.jsonl")[0], "line 1", b)
    emb = next(r for r in rows(b) if r["name"] == "CreateEmbeddings")
    assert emb["attributes"]["embedding.embeddings.0.embedding.vector"] == [0.1, 0.2, 0.3]
    assert emb["status_code"] == "OK"
    err = next(r for r in rows(b) if r["status_code"] == "ERROR")
    assert [e["name"] for e in err["events"]] == ["exception"]


def test_jaeger_ui_sample(samples: Path) -> None:
    b = SpanBatch()
    fmt = decode_json_value(orjson.loads((samples / "public/jaeger_ui_01.json").read_bytes()), "j", b)
    assert fmt == "jaeger-json" and b.rejections == []
    rs = rows(b)
    assert [r["span_id"] for r in rs] == ["0000000000000002", "0000000000000002", "0000000000000003",
                                          "0000000000000004", "0000000000000005"]  # fmt: skip
    assert {r["trace_id"] for r in rs} == {"0" * 31 + "1"}
    assert rs[0]["where"] == "j, spans[0]"
    assert (rs[0]["start_ns"], rs[0]["end_ns"]) == (1485467191639875000, 1485467191639880000)
    assert rs[0]["events"] == [
        {"time_ns": 1485467191639875000, "name": "some-event", "attributes": {}, "dropped_attributes_count": 0},
        {"time_ns": 1485467191639875000, "name": "", "attributes": {"x": "y"}, "dropped_attributes_count": 0},
    ]
    assert rs[1]["status_code"] == "ERROR" and "error" not in rs[1]["attributes"]
    assert rs[1]["attributes"] == {"peer.service": "service-y", "peer.ipv4": 23456, "temperature": 72.5,
                                   "javascript_limit": 9223372036854775222, "blob": "AAAwOQ=="}  # fmt: skip
    assert [r["parent_span_id"] for r in rs] == [None, None, "0000000000000002", "0000000000000002", "0000000000000004"]
    assert rs[3]["links"] == [
        {"trace_id": "0" * 30 + "ff", "span_id": "00000000000000ff", "trace_state": None, "flags": 0,
         "attributes": {"opentracing.ref_type": "child_of"}, "dropped_attributes_count": 0},
        {"trace_id": "0" * 31 + "1", "span_id": "0000000000000002", "trace_state": None, "flags": 0,
         "attributes": {"opentracing.ref_type": "follows_from"}, "dropped_attributes_count": 0},
    ]  # fmt: skip
    assert resource_attrs(b, rs[0]["resource_id"]) == {"service.name": "service-x"}
    assert resource_attrs(b, rs[2]["resource_id"]) == {"service.name": "service-y"}
    assert all(r["kind"] == "UNSPECIFIED" for r in rs)


def test_zipkin_sample(samples: Path) -> None:
    b = SpanBatch()
    fmt = decode_json_value(orjson.loads((samples / "public/zipkin_v2_sample3.json").read_bytes()), "z", b)
    assert fmt == "zipkin-json" and b.rejections == []
    (r,) = rows(b)
    assert (r["trace_id"], r["span_id"], r["parent_span_id"]) == (
        "4d1e00c0db9010db86154a4ba6e91385", "4d1e00c0db9010db", "86154a4ba6e91385")  # fmt: skip
    assert (r["kind"], r["name"]) == ("CLIENT", "get")
    assert (r["start_ns"], r["end_ns"]) == (1472470996199000000, 1472470996406000000)
    assert (r["status_code"], r["status_message"]) == ("ERROR", "Something failed")
    assert r["attributes"] == {
        "network.local.address": "7::0.128.128.127", "peer.service": "backend",
        "network.peer.address": "192.168.99.101", "network.peer.port": 9000,
        "server.address": "192.168.99.101", "server.port": 9000,
        "http.path": "/api", "clnt/finagle.version": "6.45.0",
    }  # fmt: skip
    events = [(e["name"], e["time_ns"]) for e in r["events"]]
    assert events == [("foo", 1472470996238000000), ("bar", 1472470996403000000)]
    assert r["where"] == "z, [0]" and resource_attrs(b, r["resource_id"]) == {}


# ---------------------------------------------------------------- lenient OTLP


def test_snake_case_everywhere() -> None:
    d = {"resource_spans": [{"resource": {"attributes": [{"key": "service.name", "value": {"string_value": "s"}}]},
          "scope_spans": [{"scope": {"name": "lib"}, "schema_url": "u", "spans": [{
              "trace_id": TID, "span_id": SID, "parent_span_id": "", "name": "n", "kind": 2,
              "start_time_unix_nano": 5, "end_time_unix_nano": "6", "trace_state": "a=b",
              "dropped_attributes_count": 3, "status": {"code": 2, "message": "m"},
              "attributes": [{"key": "i", "value": {"int_value": "7"}}, {"key": "d", "value": {"double_value": 1.5}},
                             {"key": "b", "value": {"bool_value": True}},
                             {"key": "a", "value": {"array_value": {"values": [{"int_value": 1}]}}},
                             {"key": "k", "value": {"kvlist_value": {"values": [
                                 {"key": "x", "value": {"bytes_value": "AA=="}}]}}}],
              "events": [{"time_unix_nano": "7", "name": "e"}],
              "links": [{"trace_id": TID, "span_id": "00000000000000aa", "trace_state": "x=y", "flags": 1}],
          }]}]}]}  # fmt: skip
    b = decode(d)
    (r,) = rows(b)
    assert b.rejections == []
    assert (r["trace_id"], r["span_id"], r["parent_span_id"], r["start_ns"], r["end_ns"]) == (TID, SID, None, 5, 6)
    assert (r["trace_state"], r["dropped_attributes_count"]) == ("a=b", 3)
    assert (r["status_code"], r["status_message"]) == ("ERROR", "m")
    assert r["attributes"] == {"i": 7, "d": 1.5, "b": True, "a": [1], "k": {"x": "AA=="}}
    assert r["events"][0]["time_ns"] == 7
    assert r["links"] == [{"trace_id": TID, "span_id": "00000000000000aa", "trace_state": "x=y", "flags": 1,
                           "attributes": {}, "dropped_attributes_count": 0}]  # fmt: skip
    assert b.scopes[r["scope_id"]][0] == "lib" and b.scopes[r["scope_id"]][3] == "u"


@pytest.mark.parametrize(
    ("kind", "status", "want"),
    [
        ("SPAN_KIND_SERVER", {"code": "STATUS_CODE_ERROR"}, ("SERVER", "ERROR")),
        ("SPAN_KIND_CONSUMER", {"code": "STATUS_CODE_OK"}, ("CONSUMER", "OK")),
        ("client", {"code": "error"}, ("CLIENT", "ERROR")),
        (0, {"code": 0}, ("UNSPECIFIED", "UNSET")),
        (5, None, ("CONSUMER", "UNSET")),
        (None, {}, ("UNSPECIFIED", "UNSET")),
    ],
)
def test_enum_names_and_ints(kind: Any, status: Any, want: tuple[str, str]) -> None:
    b = decode(doc(span(kind=kind, status=status) if kind is not None else span(kind=None, status=status)))
    r = rows(b)[0]
    assert (r["kind"], r["status_code"]) == want and b.rejections == []


def test_tempo_batches_legacy_library_base64_ids() -> None:
    d = {"batches": [{"resource": {"attributes": [attr("service.name", {"stringValue": "tempo"})]},
          "instrumentationLibrarySpans": [{"instrumentationLibrary": {"name": "old", "version": "0.1"}, "spans": [
              {"traceId": "AAAAAAAAAABguiq7RPE+rg==", "spanId": "YLoqu0TxPq4=", "parentSpanId": "AAAAAAAAAAA=",
               "name": "HTTP GET", "kind": "SPAN_KIND_SERVER", "startTimeUnixNano": 1, "endTimeUnixNano": 2,
               "status": {"code": "STATUS_CODE_OK"}}]}]}]}  # fmt: skip
    b = decode(d)
    (r,) = rows(b)
    assert r["where"] == "line 1, batches[0].instrumentationLibrarySpans[0].spans[0]"
    assert (r["trace_id"], r["span_id"]) == ("000000000000000060ba2abb44f13eae", "60ba2abb44f13eae")
    assert r["parent_span_id"] is None
    assert (r["kind"], r["status_code"]) == ("SERVER", "OK")
    assert b.scopes[r["scope_id"]][:2] == ("old", "0.1")
    assert resource_attrs(b, r["resource_id"]) == {"service.name": "tempo"}


def test_buffer_ids_and_int64_numbers() -> None:
    buf = {"type": "Buffer", "data": list(bytes.fromhex(TID))}
    s = span(traceId=buf, spanId={"type": "Buffer", "data": list(bytes.fromhex(SID))},
             startTimeUnixNano=1795824119279428775, endTimeUnixNano=1795824119279428776,
             attributes=[attr("n", {"intValue": 9223372036854775807}),
                         attr("m", {"intValue": "-9223372036854775808"})])  # fmt: skip
    r = rows(decode(doc(s)))[0]
    assert (r["trace_id"], r["span_id"]) == (TID, SID)
    assert (r["start_ns"], r["end_ns"]) == (1795824119279428775, 1795824119279428776)
    assert r["attributes"] == {"n": 2**63 - 1, "m": -(2**63)}


@pytest.mark.parametrize("parent", ["", None, "0000000000000000", "0" * 32, "AAAAAAAAAAA="])
def test_root_parent_forms(parent: Any) -> None:
    r = rows(decode(doc(span(parentSpanId=parent))))[0]
    assert r["parent_span_id"] is None


def test_anyvalue_forms() -> None:
    vals = [
        attr("nan", {"doubleValue": "NaN"}), attr("inf", {"doubleValue": "Infinity"}),
        attr("ninf", {"doubleValue": "-Infinity"}), attr("dint", {"doubleValue": 3}),
        attr("empty", {}), attr("bytes", {"bytesValue": "AAECAw=="}),
        attr("arr", {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "2"}, {"arrayValue": {}}, {}]}}),
        attr("kv", {"kvlistValue": {"values": [
            attr("x", {"kvlistValue": {"values": [attr("y", {"boolValue": False})]}})]}}),
        attr("novalue", {"arrayValue": {}}), {"key": "absent"},
    ]  # fmt: skip
    b = decode(doc(span(attributes=vals, unknownField={"x": 1}, status={"code": 1, "futureField": 2})))
    a = rows(b)[0]["attributes"]
    # non-finite doubles are emptied and counted (the one NaN rule, docs/cli.md "Bad JSON")
    assert a.pop("nan") is None and a.pop("inf") is None and a.pop("ninf") is None
    repaired = [r for r in b.rejections if r.action == "repaired"]
    assert [r.where.rsplit("[", 1)[1] for r in repaired] == ["'nan']", "'inf']", "'ninf']"]
    assert all("is not finite" in r.reason for r in repaired)
    b.rejections = [r for r in b.rejections if r not in repaired]
    assert a == {"dint": 3.0, "empty": None, "bytes": "AAECAw==", "arr": ["a", 2, [], None],
                 "kv": {"x": {"y": False}}, "novalue": [], "absent": None}  # fmt: skip
    assert type(a["dint"]) is float and b.rejections == []


def test_end_before_start_and_empty_name_are_kept() -> None:
    r = rows(decode(doc(span(startTimeUnixNano="5000", endTimeUnixNano="10", name=""))))[0]
    assert (r["start_ns"], r["end_ns"], r["name"]) == (5000, 10, "")
    r = rows(decode(doc(span(name=None, startTimeUnixNano=None, endTimeUnixNano=None))))[0]
    assert (r["start_ns"], r["end_ns"], r["name"]) == (0, 0, "")


# ---------------------------------------------------------------- bad records


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("traceId", TID[:30], "trace id has 30 hex chars, expected 32"),
        ("traceId", TID[:31], "odd number (31) of hex chars"),
        ("traceId", "0" * 32, "trace id is all zeros"),
        ("traceId", "z" * 32, "is not hex"),
        ("traceId", 12, "trace id is a int"),
        ("traceId", None, "trace id is missing"),
        ("spanId", "0" * 16, "span id is all zeros"),
        ("spanId", SID + "00", "span id has 18 hex chars, expected 16"),
        ("parentSpanId", "abc", "parent span id has an odd number (3) of hex chars"),
        ("startTimeUnixNano", "-5", "startTimeUnixNano -5 is negative"),
        ("startTimeUnixNano", -5, "startTimeUnixNano -5 is negative"),
        ("endTimeUnixNano", str(2**63), f"endTimeUnixNano {2**63} is above 2^63-1"),
        ("endTimeUnixNano", 2**63, f"endTimeUnixNano {2**63} is above 2^63-1"),
        ("startTimeUnixNano", 1.5, "startTimeUnixNano 1.5 is not an integer"),
        ("startTimeUnixNano", "1e9", "startTimeUnixNano '1e9' is not a decimal integer"),
        ("startTimeUnixNano", True, "startTimeUnixNano is a bool"),
        ("attributes", {"a": 1}, "attributes is a dict, expected a list"),
        ("events", [{"timeUnixNano": "x"}], "events[0].timeUnixNano 'x' is not a decimal integer"),
        ("events", [5], "events[0] is a int, expected an object"),
        ("links", "x", "links is a str, expected a list"),
        ("status", [], "status is a list"),
        ("name", 5, "name is a int"),
        ("kind", [1], "kind is a list"),
        ("droppedAttributesCount", -1, "droppedAttributesCount -1 is not a non-negative integer"),
    ],
)
def test_bad_span_rejected_others_load(field: str, value: Any, reason: str) -> None:
    bad = span(spanId="00000000000000bb")
    bad[field] = value
    b = decode(doc(span(), bad, span(spanId="00000000000000cc")))
    assert [r["span_id"] for r in rows(b)] == [SID, "00000000000000cc"]
    (rej,) = rejected(b)
    assert rej.where == "line 1, resourceSpans[0].scopeSpans[0].spans[1]"
    assert reason in rej.reason
    assert rej.raw is not None and b.spans_rejected == 1


@pytest.mark.parametrize("bad", [42, "span", [1, 2], None, True])
def test_non_dict_span_rejected(bad: Any) -> None:
    b = decode(doc(bad, span()))
    assert len(b.spans) == 1
    (rej,) = rejected(b)
    assert rej.where.endswith("spans[0]") and "span is a" in rej.reason


def test_deep_kvlist_emptied_at_depth_64() -> None:
    v: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(200):
        v = {"kvlistValue": {"values": [{"key": "k", "value": v}]}}
    b = decode(doc(span(attributes=[attr("deep", v), attr("ok", {"intValue": "1"})])))
    (r,) = rows(b)
    x, depth = r["attributes"]["deep"], 1
    while isinstance(x, dict):
        x, depth = x["k"], depth + 1
    assert x is None and depth == 65  # depths 1..64 kept, the 65th level emptied
    assert r["attributes"]["ok"] == 1
    (rep,) = repaired(b)
    assert "deeper than 64" in rep.reason and rep.where.endswith("spans[0].attributes['deep']")
    assert (rep.trace_id, rep.span_id) == (TID, SID)
    orjson.dumps(r["attributes"])  # storable


def test_deep_array_emptied() -> None:
    v: dict[str, Any] = {"intValue": "1"}
    for _ in range(100):
        v = {"arrayValue": {"values": [v]}}
    b = decode(doc(span(attributes=[attr("deep", v)])))
    assert len(b.spans) == 1 and "deeper than 64" in repaired(b)[0].reason


def test_one_megabyte_string_truncated_on_char_boundary() -> None:
    big = "é" * 600_000  # 1.2 MB in UTF-8, 2 bytes per char
    b = decode(doc(span(attributes=[attr("big", {"stringValue": big}), attr("small", {"stringValue": "s"})])))
    a = rows(b)[0]["attributes"]
    assert a["small"] == "s" and a["big"] == "é" * (MAX_ATTR_BYTES // 2)
    assert len(a["big"].encode()) <= MAX_ATTR_BYTES
    (rep,) = repaired(b)
    assert "truncated" in rep.reason and "1200000 bytes" in rep.reason
    emoji = "a" + "😀" * 300_000  # 4-byte chars, odd offset: the cut must step back
    a = rows(decode(doc(span(attributes=[attr("e", {"stringValue": emoji})]))))[0]["attributes"]
    assert a["e"] == "a" + "😀" * ((MAX_ATTR_BYTES - 1) // 4)


def test_duplicate_keys_last_wins_with_repair() -> None:
    kvs = [attr("k", {"stringValue": "a"}), attr("j", {"intValue": 1}), attr("k", {"stringValue": "b"})]
    b = decode(doc(span(attributes=kvs)))
    assert rows(b)[0]["attributes"] == {"k": "b", "j": 1}
    (rep,) = repaired(b)
    assert "duplicate attribute key(s) 'k'" in rep.reason


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"intValue": "12abc"}, "intValue '12abc' is not an int64"),
        ({"intValue": str(2**63)}, "is not an int64"),
        ({"intValue": 1.5}, "is not an int64"),
        ({"doubleValue": "fast"}, "doubleValue 'fast' is not a number"),
        ({"boolValue": "yes"}, "boolValue 'yes' is not a boolean"),
        ({"arrayValue": {"values": 3}}, "arrayValue.values is not a list"),
        ({"mysteryValue": 1}, "unsupported AnyValue field 'mysteryValue'"),
        ("plain", "AnyValue is a str"),
    ],
)
def test_bad_value_repaired_span_kept(value: Any, reason: str) -> None:
    b = decode(doc(span(attributes=[attr("x", value), attr("y", {"stringValue": "ok"})])))
    assert rows(b)[0]["attributes"] == {"x": None, "y": "ok"}
    (rep,) = repaired(b)
    assert reason in rep.reason and rep.where.endswith(".attributes['x']")


def test_bad_attribute_entries_skipped() -> None:
    b = decode(doc(span(attributes=[5, {"key": 7, "value": {}}, attr("y", {"stringValue": "ok"})])))
    assert rows(b)[0]["attributes"] == {"y": "ok"} and len(repaired(b)) == 2


def test_unknown_enum_values_repaired() -> None:
    b = decode(doc(span(kind=9, status={"code": 7})))
    r = rows(b)[0]
    assert (r["kind"], r["status_code"]) == ("UNSPECIFIED", "UNSET")
    assert [x.reason for x in repaired(b)] == ["unknown kind '9'; set to UNSPECIFIED",
                                               "unknown status code '7'; set to UNSET"]  # fmt: skip


def test_container_rejections_do_not_count_as_spans() -> None:
    d = doc(span())
    d["resourceSpans"] += [7, {"scopeSpans": "x"}, {"scopeSpans": [{"spans": {"not": "a list"}}]}]
    b = decode(d)
    assert len(b.spans) == 1 and b.spans_rejected == 0
    assert [r.where for r in rejected(b)] == [
        "line 1, resourceSpans[1]",
        "line 1, resourceSpans[2].scopeSpans",
        "line 1, resourceSpans[3].scopeSpans[0].spans",
    ]


def test_bad_resource_rejects_its_spans_only() -> None:
    d = doc(span(), span(spanId="00000000000000cc"))
    d["resourceSpans"].append({"resource": {"attributes": "nope"}, "scopeSpans": [{"spans": [span()]}]})
    d["resourceSpans"].append("garbage")
    b = decode(d)
    assert len(b.spans) == 2
    assert [(r.where, r.reason) for r in rejected(b)] == [
        ("line 1, resourceSpans[1].scopeSpans[0].spans[0]", "resource: attributes is a str, expected a list"),
        ("line 1, resourceSpans[2]", "resourceSpans entry is a str, expected an object"),
    ]


@pytest.mark.parametrize("bad", [{"resourceSpans": 5}, {"resourceSpans": {"a": 1}}, [1], "x"])
def test_unusable_document_raises_decode_error(bad: Any) -> None:
    with pytest.raises(DecodeError):
        decode(bad)


# ---------------------------------------------------------------- helpers: ids and ints


@pytest.mark.parametrize(
    ("value", "nbytes", "want"),
    [
        (TID.upper(), 16, TID),
        ("5B8efff798038103D269b633813fc60c", 16, TID),
        (base64.b64encode(bytes.fromhex(TID)).decode(), 16, TID),
        (base64.urlsafe_b64encode(bytes.fromhex(TID)).decode().rstrip("="), 16, TID),
        (base64.b64encode(bytes.fromhex(SID)).decode(), 8, SID),
        ({"type": "Buffer", "data": list(bytes.fromhex(SID))}, 8, SID),
    ],
)
def test_hex_id_accepts(value: Any, nbytes: int, want: str) -> None:
    assert hex_id(value, nbytes) == want


@pytest.mark.parametrize(
    ("value", "nbytes", "reason"),
    [
        ("", 16, "trace id is empty"),
        ("0" * 32, 16, "trace id is all zeros"),
        ("AAAAAAAAAAAAAAAAAAAAAA==", 16, "trace id is all zeros"),
        ("abc", 8, "odd number (3)"),
        ("ab" * 9, 8, "span id has 18 hex chars"),
        ("g" * 16, 8, "is not hex"),
        ("!" * 12, 8, "neither 16 hex chars nor base64"),
        ({"type": "Buffer", "data": [1, 2]}, 8, "Buffer is not 8 bytes"),
        ("0123456789abcdef012345", 16, "trace id has 22 hex chars"),  # hex-only: not read as base64
        ([1], 8, "span id is a list"),
    ],
)
def test_hex_id_rejects(value: Any, nbytes: int, reason: str) -> None:
    with pytest.raises(DecodeError, match=None) as info:
        hex_id(value, nbytes)
    assert reason in info.value.message


@pytest.mark.parametrize(
    ("value", "want"), [(0, 0), ("0012", 12), (2.0, 2), (MAX_TIME_NS, MAX_TIME_NS), (str(MAX_TIME_NS), MAX_TIME_NS)]
)
def test_parse_int_ns_accepts(value: Any, want: int) -> None:
    assert parse_int_ns(value) == want


@pytest.mark.parametrize(
    "value", [-1, "-1", 1.5, True, None, "1.0", "", "12x", MAX_TIME_NS + 1, str(MAX_TIME_NS + 1), "9" * 5000, [1]]
)
def test_parse_int_ns_rejects(value: Any) -> None:
    with pytest.raises(DecodeError):
        parse_int_ns(value)


def test_json_anyvalue_direct() -> None:
    b = SpanBatch()
    assert json_anyvalue({"kvlistValue": {"values": [attr("a", {"intValue": "5"})]}}, 1, "w", b, None, None) == {"a": 5}
    assert json_anyvalue({"stringValue": "x"}, 65, "w", b, None, None) is None
    assert "deeper than 64" in b.rejections[0].reason


# ---------------------------------------------------------------- Jaeger and Zipkin details


def test_jaeger_rules() -> None:
    tags = [{"key": "span.kind", "type": "string", "value": "server"},
            {"key": "otel.status_code", "type": "string", "value": "ERROR"},
            {"key": "otel.status_description", "type": "string", "value": "boom"},
            {"key": "otel.scope.name", "type": "string", "value": "lib"},
            {"key": "n", "type": "int64", "value": "12"}, {"key": "f", "type": "float64", "value": 1},
            {"key": "b", "type": "bool", "value": "true"}]  # fmt: skip
    refs = [{"refType": "FOLLOWS_FROM", "traceID": "abc", "spanID": "7"},
            {"refType": "FOLLOWS_FROM", "traceID": "abc", "spanID": "8"}]  # fmt: skip
    d = {"data": [{"traceID": "abc", "spans": [jaeger_span(tags=tags, references=refs), jaeger_span(spanID="0"), "bad"],
                   "processes": {"p1": {"serviceName": "svc",
                                        "tags": [{"key": "host", "type": "string", "value": "h"}]}}}]}  # fmt: skip
    b = SpanBatch()
    decode_jaeger_json(d, "x", b)
    (r,) = rows(b)
    assert (r["trace_id"], r["span_id"]) == ("0" * 29 + "abc", "0" * 15 + "1")
    assert (r["kind"], r["status_code"], r["status_message"]) == ("SERVER", "ERROR", "boom")
    assert (r["start_ns"], r["end_ns"]) == (10_000, 12_000)
    assert r["parent_span_id"] == "0" * 15 + "7"  # no CHILD_OF: the first same-trace FOLLOWS_FROM
    assert [lk["span_id"] for lk in r["links"]] == ["0" * 15 + "8"]
    assert r["attributes"] == {"n": 12, "f": 1.0, "b": True}
    assert b.scopes[r["scope_id"]][0] == "lib"
    assert resource_attrs(b, r["resource_id"]) == {"service.name": "svc", "host": "h"}
    assert [(x.where, x.reason) for x in rejected(b)] == [
        ("x, data[0].spans[1]", "span id is all zeros"), ("x, data[0].spans[2]", "span is a str, expected an object")]


def test_jaeger_tag_type_mismatch_repaired() -> None:
    tags = [{"key": "n", "type": "int64", "value": "twelve"}, {"key": "s", "type": "string", "value": 5},
            {"key": "big", "type": "int64", "value": str(2**63)}, {"key": "u", "value": 1.5}]  # fmt: skip
    b = SpanBatch()
    decode_jaeger_json({"traceID": "1", "spans": [jaeger_span(tags=tags, processID="missing")]}, "", b)
    (r,) = rows(b)
    assert r["attributes"] == {"n": None, "s": None, "big": None, "u": 1.5}
    assert len(repaired(b)) == 3 and resource_attrs(b, r["resource_id"]) == {}
    assert r["where"] == "spans[0]"


def test_zipkin_rules() -> None:
    spans = [
        {"traceId": "a" * 16, "id": "b" * 16, "kind": "SERVER", 'shared': True, "timestamp": 5, "duration": 1,
         "localEndpoint": {"serviceName": "api"}, "tags": {"error": "bad thing", "n": 3}},
        {"traceId": "a" * 16, "id": "c" * 16, "parentId": "0" * 16, "timestamp": 5, "tags": {"span.kind": "producer"}},
        {"traceId": "a" * 16, "id": "x"},
        {"traceId": "a" * 16, "id": "d" * 16, "timestamp": -1},
    ]  # fmt: skip
    b = SpanBatch()
    decode_zipkin_json(spans, "z", b)
    r1, r2 = rows(b)
    assert r1["trace_id"] == "0" * 16 + "a" * 16 and r1["parent_span_id"] == "b" * 16
    assert r1["span_id"] != "b" * 16 and check_span_id(r1["span_id"]) is None
    assert r1["attributes"] == {"n": "3", "zipkin.shared": True, "zipkin.original_span_id": "b" * 16}
    assert (r1["status_code"], r1["status_message"]) == ("ERROR", "bad thing")
    assert resource_attrs(b, r1["resource_id"]) == {"service.name": "api"}
    assert (r2["parent_span_id"], r2["kind"], r2["start_ns"], r2["end_ns"]) == (None, "PRODUCER", 5000, 5000)
    assert [x.where for x in rejected(b)] == ["z, [2]", "z, [3]"]


# ---------------------------------------------------------------- dispatch


@pytest.mark.parametrize(
    ("value", "fmt", "nspans"),
    [
        (doc(span()), "otlp-json", 1),
        ([doc(span()), doc(span(spanId="00000000000000cc"))], "otlp-json", 2),
        ({"trace": doc(span())}, "otlp-json", 1),
        ({}, "otlp-json", 0),
        ({"data": [{"traceID": "1", "spans": [jaeger_span()], "processes": {}}]}, "jaeger-json", 1),
        ({"traceID": "1", "spans": [jaeger_span()]}, "jaeger-json", 1),
        ({"data": []}, "jaeger-json", 0),
        ([{"traceId": "1" * 32, "id": "2" * 16, "name": "z"}], "zipkin-json", 1),
        ([], "zipkin-json", 0),
    ],
)
def test_dispatch_shapes(value: Any, fmt: str, nspans: int) -> None:
    b = SpanBatch()
    assert decode_json_value(value, "w", b) == fmt
    assert len(b.spans) == nspans and b.rejections == []


@pytest.mark.parametrize("value", [None, 1, "x", 2.5, True, {"foo": 1}, [1, 2], [{"a": 1}], {"data": [1]}])
def test_dispatch_unrecognised(value: Any) -> None:
    with pytest.raises(DecodeError, match="not an OTLP, Jaeger or Zipkin JSON document"):
        decode_json_value(value, "w", SpanBatch())


def test_dispatch_array_with_non_otlp_element() -> None:
    b = SpanBatch()
    assert decode_json_value([doc(span()), 5], "w", b) == "otlp-json"
    assert len(b.spans) == 1 and [r.where for r in rejected(b)] == ["w, [1]"]


# ---------------------------------------------------------------- property tests


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(valid_spans(), min_size=1, max_size=4))
def test_property_valid_spans_round_trip(cases: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    payload = orjson.dumps(doc(*[c[0] for c in cases]))
    b = SpanBatch()
    assert decode_json_value(orjson.loads(payload), "p", b) == "otlp-json"
    assert b.rejections == []
    got = rows(b)
    assert len(got) == len(cases)
    for r, (_, want) in zip(got, cases):
        for k, v in want.items():
            assert same_value(r[k], v), (k, r[k], v)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    garbage,
    st.builds(lambda s: doc(s), garbage),
    st.builds(lambda s: doc(span(**s)), st.dictionaries(st.sampled_from(GARBAGE_KEYS), garbage, max_size=4)),
    st.builds(lambda s: {"data": [{"traceID": "1", "spans": [s], "processes": {"p1": s}}]}, garbage),
    st.builds(lambda s: [{"traceId": "1" * 32, "id": "2" * 16, **s}],
              st.dictionaries(st.sampled_from(GARBAGE_KEYS), garbage)),
))  # fmt: skip
def test_property_garbage_never_crashes(value: Any) -> None:
    b = SpanBatch()
    try:
        decode_json_value(value, "g", b)
    except DecodeError:
        pass
    except FabricError:  # pragma: no cover - any fabric error is acceptable, nothing else
        pass
    for r in rows(b):  # whatever loaded is well-formed and storable
        assert check_trace_id(r["trace_id"]) is None and check_span_id(r["span_id"]) is None
        assert r["parent_span_id"] is None or check_span_id(r["parent_span_id"]) is None
        assert 0 <= r["start_ns"] <= MAX_TIME_NS and 0 <= r["end_ns"] <= MAX_TIME_NS
        assert r["kind"] in SPAN_KINDS and r["status_code"] in STATUS_CODES and type(r["name"]) is str
        orjson.dumps([r["attributes"], r["events"], r["links"]])
