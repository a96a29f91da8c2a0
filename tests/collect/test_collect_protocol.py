"""OTLP/HTTP bodies without a server: decompression limits, 400 vs quarantine, response encodings."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from google.rpc import status_pb2
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from fabric_trace.collect.protocol import (
    JSON,
    PROTOBUF,
    BadRequest,
    TooLarge,
    decode_request,
    decompress,
    status_body,
    success_body,
)
from fabric_trace.ingest.batch import SpanBatch
from fabric_trace.ingest.limits import Limits
from fabric_trace.ingest.otlp_proto import decode_otlp_proto


def _request(n: int) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "svc"
    scope = rs.scope_spans.add()
    for i in range(n):
        s = scope.spans.add()
        s.trace_id = bytes(range(1, 17))
        s.span_id = (i + 1).to_bytes(8, "big")
        s.name = f"op{i}"
        s.kind = 2
        s.start_time_unix_nano = 1_700_000_000_000_000_000
        s.end_time_unix_nano = 1_700_000_000_000_001_000
    return req


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=2000), min_size=1, max_size=4), st.sampled_from(["gzip", "deflate", "identity"]))
def test_decompress_round_trips_within_the_cap(parts: list[bytes], encoding: str) -> None:
    data = b"".join(parts)
    if encoding == "gzip":
        body = b"".join(gzip.compress(p) for p in parts)  # several members
    elif encoding == "deflate":
        body = zlib.compress(data)
    else:
        body = data
    assert decompress(body, encoding, max(len(data), 1)) == data
    if data:
        with pytest.raises(TooLarge):
            decompress(body, encoding, len(data) - 1)


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=200))
def test_corrupt_compressed_bodies_are_bad_requests_never_crashes(junk: bytes) -> None:
    for encoding in ("gzip", "deflate"):
        try:
            decompress(junk, encoding, 1 << 20)
        except (BadRequest, TooLarge):
            pass


def test_a_bomb_is_never_expanded_beyond_the_cap() -> None:
    bomb = gzip.compress(b"\0" * (64 << 20))
    with pytest.raises(TooLarge):
        decompress(bomb, "gzip", 1 << 20)
    with pytest.raises(BadRequest, match="truncated"):
        decompress(gzip.compress(b"abc" * 1000)[:-12], "gzip", 1 << 20)
    with pytest.raises(BadRequest, match="garbage"):
        decompress(zlib.compress(b"abc") + b"xyz", "deflate", 1 << 20)


def test_protobuf_request_decodes_like_the_ingest_decoder() -> None:
    body = _request(5).SerializeToString()
    got = decode_request(body, PROTOBUF, "request 3", Limits())
    ref = SpanBatch()
    decode_otlp_proto(body, "request 3", ref)
    assert got.spans == 5 and got.rejected == 0
    assert got.batch.spans == ref.spans
    assert got.batch.wheres()[0].startswith("request 3 resourceSpans[0]")


def test_bad_spans_are_quarantined_not_refused() -> None:
    req = _request(3)
    req.resource_spans[0].scope_spans[0].spans[1].span_id = b"\x01\x02"
    got = decode_request(req.SerializeToString(), PROTOBUF, "request 1", Limits())
    assert got.spans == 2 and got.rejected == 1
    assert "span id" in got.batch.rejections[0].reason


@pytest.mark.parametrize("body, ctype, reason", [
    (b"\x0a\x05\x0a\x03", PROTOBUF, "malformed protobuf"),
    (b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", PROTOBUF, "malformed protobuf"),
    (b"not json", JSON, "invalid JSON"),
    (b"[1, 2]", JSON, "not an OTLP"),
    (b'{"spans": []}', JSON, "not an OTLP"),
    (b'{"resourceSpans": 7}', JSON, "resourceSpans"),
])
def test_unreadable_bodies_are_bad_requests(body: bytes, ctype: str, reason: str) -> None:
    with pytest.raises(BadRequest, match=reason):
        decode_request(body, ctype, "request 1", Limits())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([PROTOBUF, JSON]))
def test_any_body_decodes_or_is_refused_cleanly(body: bytes, ctype: str) -> None:
    try:
        decode_request(body, ctype, "request 1", Limits())
    except BadRequest:
        pass


def test_empty_json_object_and_empty_protobuf_are_empty_exports() -> None:
    assert decode_request(b"{}", JSON, "request 1", Limits()).spans == 0
    assert decode_request(b"", PROTOBUF, "request 1", Limits()).spans == 0


def test_response_bodies() -> None:
    ok = ExportTraceServiceResponse.FromString(success_body(PROTOBUF, 0, ""))
    assert not ok.HasField("partial_success")
    partial = ExportTraceServiceResponse.FromString(success_body(PROTOBUF, 2, "two bad"))
    assert partial.partial_success.rejected_spans == 2 and partial.partial_success.error_message == "two bad"
    assert json.loads(success_body(JSON, 0, "")) == {}
    assert json.loads(success_body(JSON, 2, "two bad")) == {
        "partialSuccess": {"rejectedSpans": "2", "errorMessage": "two bad"}}
    status = status_pb2.Status.FromString(status_body(PROTOBUF, 3, "bad \u00e9" * 100))
    assert status.code == 3 and status.message == "bad \u00e9" * 100
    assert json.loads(status_body(JSON, 14, "busy")) == {"code": 14, "message": "busy"}
