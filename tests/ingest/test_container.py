"""Tests for the file layer (fabric_trace.ingest.container): detection, framing, compression."""

from __future__ import annotations

import gzip
import io
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from fabric_trace.errors import DatabaseError, DecodeError, FabricError, InputError
from fabric_trace.ingest.batch import SPAN_FIELDS, SpanBatch
from fabric_trace.ingest.container import decode_stream
from fabric_trace.ingest.limits import MIB, Limits

from conftest import SAMPLES as DATA  # tests/data/otlp-samples (or $FABRIC_SAMPLES)
GEN = DATA / "generated"
F = {name: i for i, name in enumerate(SPAN_FIELDS)}


def fake_json(value: Any, where: str, sink: Any) -> str:
    """Stand-in for json_dispatch.decode_json_value: one row per OTLP span, by name."""
    if isinstance(value, dict) and "resourceSpans" in value:
        for rs in value["resourceSpans"]:
            for ss in rs.get("scopeSpans", []):
                for sp in ss.get("spans", []):
                    sink.span((where, "1" * 32, sp.get("spanId"), None, None, 0, sp.get("name"), "UNSPECIFIED",
                               0, 0, "UNSET", None, {}, [], [], 0, 0, 0, "r", "s"))
        return "otlp-json"
    if isinstance(value, dict) and "data" in value:
        return "jaeger-json"
    if isinstance(value, list):
        return "zipkin"  # a bare flavour works too
    if isinstance(value, dict) and value.get("boom"):
        raise KeyError("boom")
    raise DecodeError("not a known JSON trace format")


class OneWay(io.RawIOBase):
    """A pipe-like stream: read() only, small irregular chunks, no seek/tell/peek."""

    def __init__(self, data: bytes, chunk: int = 7) -> None:
        self._data = data
        self._pos = 0
        self._chunk = chunk

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def seek(self, *a: Any) -> int:
        raise OSError("not seekable")

    def tell(self) -> int:
        raise OSError("not seekable")

    def readinto(self, b: Any) -> int:
        n = min(len(b), self._chunk)
        out = self._data[self._pos : self._pos + n]
        self._pos += len(out)
        b[: len(out)] = out
        return len(out)


def run(data: bytes, limits: Limits | None = None, stream: Any = None) -> tuple[str, SpanBatch]:
    batch = SpanBatch()
    label = decode_stream(stream or io.BytesIO(data), "test-input", batch, limits or Limits(), fake_json)
    return label, batch


def rows_without_where(batch: SpanBatch) -> list[tuple[Any, ...]]:
    return [r[1:] for r in batch.spans]


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def jsonl(n: int) -> bytes:
    return b"".join(
        orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": f"{i:016x}", "name": f"s{i}"}]}]}]})
        + b"\n"
        for i in range(n)
    )


def gzip_bomb(prefix: bytes, total: int) -> bytes:
    """gzip of ``prefix`` followed by ``total`` zero bytes, built without holding them."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    parts = [c.compress(prefix)] + [c.compress(chunk) for _ in range(total >> 20)]
    return b"".join(parts) + c.flush()


# ----------------------------------------------------------------------------- real files


@pytest.mark.parametrize(
    ("path", "label", "spans"),
    [
        ("generated/otel.otlp.pb", "otlp-proto", 6),
        ("generated/otel.otlp.pb.gz", "otlp-proto+gzip", 6),
        ("generated/otel.otlp.jsonl", "otlp-jsonl", 6),
        ("generated/openinference.otlp.pb", "otlp-proto", 6),
        ("generated/openinference.otlp.pb.gz", "otlp-proto+gzip", 6),
        ("generated/openinference.otlp.jsonl", "otlp-jsonl", 6),
        ("generated/openllmetry.otlp.pb", "otlp-proto", 6),
        ("generated/openllmetry.otlp.pb.gz", "otlp-proto+gzip", 6),
        ("generated/openllmetry.otlp.jsonl", "otlp-jsonl", 6),
        ("generated/all3.collector-fileexporter-proto.bin", "otlp-proto-framed", 18),
        ("generated/all3.collector-fileexporter-proto-zstd-legacy.bin", "otlp-proto-framed+zstd-per-message", 18),
        ("public/otel_spec_file_exporter_example.traces.jsonl", "otlp-jsonl", 8),
        ("public/otlp_proto_examples_trace.json", "otlp-json", 1),
        ("public/zipkin_v2_sample3.json", "zipkin-json", 0),
        ("public/openinference_vercel_ai_sdk_v6_all-spans.json", "zipkin-json", 0),
    ],
)
def test_real_files(path: str, label: str, spans: int) -> None:
    got_label, batch = run((DATA / path).read_bytes())
    assert got_label == label
    assert len(batch) == spans
    assert [r for r in batch.rejections if r.action == "rejected"] == []


def test_jaeger_document_goes_to_json_decoder() -> None:
    _, batch = run((DATA / "public/jaeger_ui_01.json").read_bytes())
    (rej,) = batch.rejections  # the fake decoder does not know Jaeger's single-trace object
    assert rej.where == "document 1 at byte 0" and "not a known JSON" in rej.reason


def test_pb_gz_and_framed_give_identical_rows() -> None:
    framed = run((GEN / "all3.collector-fileexporter-proto.bin").read_bytes())[1]
    legacy = run((GEN / "all3.collector-fileexporter-proto-zstd-legacy.bin").read_bytes())[1]
    singles = []
    for name in ("otel", "openinference", "openllmetry"):
        pb = run((GEN / f"{name}.otlp.pb").read_bytes())[1]
        gz = run((GEN / f"{name}.otlp.pb.gz").read_bytes())[1]
        assert pb.spans == gz.spans and pb.resources == gz.resources and pb.scopes == gz.scopes
        singles.extend(rows_without_where(pb))
    assert rows_without_where(framed) == singles
    assert rows_without_where(framed) == rows_without_where(legacy)
    assert framed.spans[6][0].startswith("frame 2 at byte ")


@pytest.mark.parametrize("name", ["otel", "openinference", "openllmetry"])
def test_with_real_json_decoder_jsonl_and_pb_rows_are_identical(name: str) -> None:
    dispatch = pytest.importorskip("fabric_trace.ingest.json_dispatch")
    batches = {}
    for ext in ("jsonl", "pb"):
        batch = SpanBatch()
        label = decode_stream(io.BytesIO((GEN / f"{name}.otlp.{ext}").read_bytes()), ext, batch, Limits(), dispatch.decode_json_value)
        assert label == {"jsonl": "otlp-jsonl", "pb": "otlp-proto"}[ext]
        batches[ext] = batch
    assert batches["jsonl"].rejections == batches["pb"].rejections == []
    assert rows_without_where(batches["jsonl"]) == rows_without_where(batches["pb"])
    assert batches["jsonl"].resources == batches["pb"].resources and batches["jsonl"].scopes == batches["pb"].scopes


def test_native_zstd_file_of_frames_and_of_jsonl() -> None:
    raw = (GEN / "all3.collector-fileexporter-proto.bin").read_bytes()
    label, batch = run(zstandard.ZstdCompressor().compress(raw))
    assert label == "otlp-proto-framed+zstd" and len(batch) == 18
    two_frames = zstandard.ZstdCompressor().compress(jsonl(3)) + zstandard.ZstdCompressor().compress(jsonl(2))
    label, batch = run(two_frames)
    assert label == "otlp-jsonl+zstd" and len(batch) == 5


def test_non_seekable_stream() -> None:
    for path, spans in [
        ("generated/otel.otlp.pb.gz", 6),
        ("generated/all3.collector-fileexporter-proto.bin", 18),
        ("generated/all3.collector-fileexporter-proto-zstd-legacy.bin", 18),
        ("generated/otel.otlp.jsonl", 6),
        ("public/otlp_proto_examples_trace.json", 1),
    ]:
        data = (DATA / path).read_bytes()
        label, batch = run(b"", stream=io.BufferedReader(OneWay(data), 5))
        assert len(batch) == spans, path
        assert label == run(data)[0]


# ----------------------------------------------------------------------------- compression


def test_gzip_bomb_refused_quickly_with_little_memory() -> None:
    bomb = gzip_bomb(jsonl(1), 200 * MIB)  # a valid first line, then 200 MiB of zeros
    assert len(bomb) < 1 * MIB
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        started = time.perf_counter()
        with pytest.raises(InputError, match="decompressed size exceeds 1048576 bytes"):
            run(bomb, Limits(max_decompressed_bytes=1 * MIB))
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 5 and peak < 32 * MIB
    with pytest.raises(InputError, match="decompressed size exceeds"):  # zeros framed as protobuf
        run(gzip_bomb(frame((GEN / "otel.otlp.pb").read_bytes()), 20 * MIB), Limits(max_decompressed_bytes=1 * MIB))


def test_zstd_bombs_refused() -> None:
    zeros = bytes(64 * MIB)
    whole = zstandard.ZstdCompressor().compress(zeros)
    with pytest.raises(InputError, match="decompressed size exceeds"):
        run(whole, Limits(max_decompressed_bytes=1 * MIB))
    framed = frame(zstandard.ZstdCompressor().compress(b"\x0a" + zeros))
    with pytest.raises(InputError, match="decompressed size exceeds"):
        run(framed, Limits(max_decompressed_bytes=1 * MIB))
    label, batch = run(framed, Limits(max_frame_bytes=1 * MIB))  # one oversized frame: rejected, not fatal
    assert "decompresses to more than" in batch.rejections[0].reason


def test_truncated_gzip_keeps_complete_lines() -> None:
    content = jsonl(200)
    gz = gzip.compress(content)
    cut = gz[: len(gz) * 2 // 3]
    label, batch = run(cut)
    complete = zlib.decompressobj(31).decompress(cut)
    whole_lines = complete.count(b"\n")
    assert label == "otlp-jsonl+gzip"
    assert 0 < len(batch) and len(batch) == whole_lines
    reasons = {r.where.split()[0]: r.reason for r in batch.rejections}
    assert "truncated gzip stream" in reasons["byte"]
    assert any(r.where == f"line {whole_lines + 1}" for r in batch.rejections)  # the cut line


def test_multi_member_gzip_and_trailing_garbage() -> None:
    data = gzip.compress(jsonl(2)) + gzip.compress(jsonl(3))
    label, batch = run(data)
    assert (label, len(batch)) == ("otlp-jsonl+gzip", 5) and batch.rejections == []
    _, batch = run(data + b"\x00\x00\x00")  # zero padding is fine
    assert batch.rejections == []
    _, batch = run(data + b"junk!")
    assert len(batch) == 5 and "trailing bytes" in batch.rejections[0].reason


def test_corrupt_gzip_keeps_what_was_read() -> None:
    gz = bytearray(gzip.compress(jsonl(300)))
    gz[len(gz) // 2 :] = bytes(len(gz) - len(gz) // 2)
    _, batch = run(bytes(gz))
    assert len(batch) > 0 and any("gzip stream" in r.reason for r in batch.rejections)


def test_truncated_zstd_stream() -> None:
    content = jsonl(20000)
    z = zstandard.ZstdCompressor().compress(content)
    _, batch = run(z[: len(z) * 2 // 3])
    assert 0 < len(batch) < 20000
    assert any("truncated zstd stream" in r.reason for r in batch.rejections)
    with pytest.raises(InputError, match=r"empty after decompression \(truncated zstd stream"):
        run(zstandard.ZstdCompressor().compress(jsonl(100))[:-20])


# ----------------------------------------------------------------------------- framing


def test_huge_length_prefix_rejected_without_allocating() -> None:
    good = (GEN / "otel.otlp.pb").read_bytes()
    data = frame(good) + b"\xff\xff\xff\xff" + b"\x0a\x00" * 8
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        label, batch = run(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert label == "otlp-proto-framed" and len(batch) == 6 and peak < 16 * MIB
    (rej,) = batch.rejections
    assert rej.where == f"frame 2 at byte {4 + len(good)}" and "exceeds max_frame_bytes" in rej.reason
    with pytest.raises(InputError, match="first bytes ff ff ff ff"):
        run(b"\xff\xff\xff\xff" + good)


def test_truncated_last_frame() -> None:
    good = (GEN / "otel.otlp.pb").read_bytes()
    data = frame(good) + frame(good)[:-100]
    _, batch = run(data)
    assert len(batch) == 6
    (rej,) = batch.rejections
    assert rej.where == f"frame 2 at byte {4 + len(good)}" and "truncated frame" in rej.reason
    _, batch = run(frame(good) + b"\x00\x00")
    assert "truncated frame header" in batch.rejections[0].reason


def test_truncated_first_frame() -> None:
    label, batch = run(b"\x00\x00\x10\x00\x0a\x02\x0a\x00")
    assert (label, len(batch)) == ("otlp-proto-framed", 0)
    assert batch.rejections[0].where == "frame 1 at byte 0" and "truncated frame: 4 of 4096" in batch.rejections[0].reason
    with pytest.raises(InputError, match="first bytes 00 00 10 00"):
        run(b"\x00\x00\x10\x00\x7f\x02\x0a\x00")  # payload does not start like a message


def test_json_payloads_in_legacy_zstd_frames() -> None:
    z = zstandard.ZstdCompressor()
    data = b"".join(frame(z.compress(line)) for line in jsonl(3).splitlines())
    label, batch = run(data)
    assert (label, len(batch)) == ("otlp-json-framed+zstd-per-message", 3)
    assert batch.spans[1][0] == f"frame 2 at byte {len(frame(z.compress(jsonl(3).splitlines()[0])))}"


def test_bad_utf8_span_inside_a_frame() -> None:
    req = ExportTraceServiceRequest.FromString((GEN / "otel.otlp.pb").read_bytes())
    req.resource_spans[0].scope_spans[0].spans[1].attributes.append(KeyValue(key="bad"))
    req.resource_spans[0].scope_spans[0].spans[1].attributes[-1].value.string_value = "XMARKX"
    payload = req.SerializeToString().replace(b"XMARKX", b"\xffMARKX")
    _, batch = run(frame(payload))
    assert len(batch) == 6 and batch.spans_rejected == 0  # repaired with U+FFFD, not dropped
    (rep,) = batch.rejections
    assert rep.action == "repaired" and "invalid UTF-8 in attribute 'bad'" in rep.reason
    assert rep.where.startswith("frame 1 at byte 0 ")


# ----------------------------------------------------------------------------- JSON


def test_garbage_line_in_jsonl() -> None:
    lines = jsonl(5).splitlines(keepends=True)
    lines.insert(2, b"this is not json\n")
    lines.insert(4, b"\n")
    lines.append(b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "x", "name": "last"')  # truncated
    label, batch = run(b"".join(lines))
    assert label == "otlp-jsonl" and len(batch) == 5
    assert [r.where for r in batch.rejections] == ["line 3", "line 8"]
    assert batch.rejections[0].raw == "this is not json\n" and batch.spans[2][0] == "line 4"


def test_garbage_first_line_then_jsonl() -> None:
    label, batch = run(b"oops {\n" + jsonl(3))
    assert (label, len(batch)) == ("otlp-jsonl", 3)
    assert batch.rejections[0].where == "line 1" and batch.spans[0][0] == "line 2"


def test_bad_utf8_line_repaired() -> None:
    lines = jsonl(3).splitlines(keepends=True)
    at = lines[1].index(b'"s1"') + 2
    lines[1] = lines[1].replace(b'"s1"', b'"s\xff1"')
    _, batch = run(b"".join(lines))
    assert len(batch) == 3 and batch.spans[1][F["name"]] == "s\ufffd1"
    (r,) = batch.rejections
    assert (r.where, r.action) == ("line 2", "repaired")
    assert r.reason == f"invalid UTF-8 (1 byte sequence) at byte {at} replaced with U+FFFD"


def test_bom_and_blank_lines() -> None:
    label, batch = run(b"\xef\xbb\xbf\n\n" + jsonl(2))
    assert (label, len(batch)) == ("otlp-jsonl", 2) and batch.spans[0][0] == "line 3"


def test_overlong_line_rejected_and_skipped() -> None:
    long_line = b'{"x": "' + b"a" * 5000 + b'"}\n'
    data = jsonl(1) + long_line + jsonl(2)
    _, batch = run(data, Limits(max_line_bytes=1000))
    assert len(batch) == 3
    (rej,) = batch.rejections
    assert rej.where == "line 2" and "exceeds max_line_bytes" in rej.reason


def test_decoder_errors_are_quarantined_but_database_errors_propagate() -> None:
    _, batch = run(b'{"boom": 1}\n' + jsonl(1))
    assert len(batch) == 1 and "KeyError" in batch.rejections[0].reason

    def failing(value: Any, where: str, sink: Any) -> str:
        raise DatabaseError("disk full")

    with pytest.raises(DatabaseError):
        decode_stream(io.BytesIO(jsonl(1)), "x", SpanBatch(), Limits(), failing)

    class DbFailure(Exception):
        """Like duckdb.Error: not a decoding error."""

    class FailingSink(SpanBatch):
        def end_group(self) -> None:  # where a pipeline batch hands itself to the writer
            raise DbFailure("disk full")

    for data in (jsonl(1), (GEN / "otel.otlp.pb").read_bytes()):
        with pytest.raises(DbFailure):  # a sink failure is not quarantined as bad input
            decode_stream(io.BytesIO(data), "x", FailingSink(), Limits(), fake_json)


def test_pretty_document_array_and_concatenated_documents() -> None:
    doc = orjson.dumps(orjson.loads(jsonl(1)), option=orjson.OPT_INDENT_2)
    label, batch = run(b"  \n" + doc)
    assert (label, len(batch)) == ("otlp-json", 1) and batch.spans[0][0] == "document 1 at byte 3"
    label, _ = run(b"[\n  {\"traceId\": \"1\"}\n]\n")
    assert label == "zipkin-json"
    parts = [orjson.dumps(orjson.loads(line), option=orjson.OPT_INDENT_2) for line in jsonl(3).splitlines()]
    data = parts[0] + b"\n" + parts[1] + b"\n<<garbage>>\n" + parts[2]
    label, batch = run(data)
    assert (label, len(batch)) == ("otlp-json", 3)
    assert [r[0] for r in batch.spans] == [
        "document 1 at byte 0",
        f"document 2 at byte {len(parts[0]) + 1}",
        f"document 3 at byte {len(parts[0]) + len(parts[1]) + 14}",
    ]
    (rej,) = batch.rejections
    at = len(parts[0]) + len(parts[1]) + 2
    assert rej.where == f"bytes {at}-{at + 12}" and "damaged JSON" in rej.reason and rej.raw == "<<garbage>>\n"


def test_concatenated_compact_documents_with_multibyte_text() -> None:
    one = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "é" * 3}]}]}]})
    label, batch = run(one + one + b" " + one)
    assert (label, len(batch)) == ("otlp-json", 3)
    assert batch.spans[2][0] == f"document 3 at byte {2 * len(one) + 1}"


# ----------------------------------------------------------------------------- refusals


def test_empty_and_unknown_inputs() -> None:
    with pytest.raises(InputError, match="empty input"):
        run(b"")
    with pytest.raises(InputError, match="first bytes 7f 45 4c 46: not OTLP JSON, OTLP protobuf, gzip or zstd"):
        run(b"\x7fELF\x02\x01\x01" + bytes(100))
    with pytest.raises(InputError, match="empty after decompression"):
        run(gzip.compress(b""))


def test_read_errors_become_fabric_errors() -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, b: Any) -> int:
            raise OSError(5, "Input/output error")

    with pytest.raises(FabricError, match="cannot read"):
        run(b"", stream=Broken())


_SEEDS = [
    (GEN / "otel.otlp.pb").read_bytes(),
    (GEN / "otel.otlp.pb.gz").read_bytes(),
    (GEN / "all3.collector-fileexporter-proto.bin").read_bytes()[:6000],
    (GEN / "all3.collector-fileexporter-proto-zstd-legacy.bin").read_bytes()[:4000],
    (GEN / "otel.otlp.jsonl").read_bytes()[:3000] + b"\n" + jsonl(2),
    orjson.dumps(orjson.loads(jsonl(2).splitlines()[0]), option=orjson.OPT_INDENT_2) * 2,
]


def _never_raises_other_than_fabric(data: bytes) -> None:
    try:
        run(data, Limits(max_decompressed_bytes=4 * MIB, max_frame_bytes=1 * MIB))
    except FabricError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_property_random_bytes(data: bytes) -> None:
    _never_raises_other_than_fabric(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(range(len(_SEEDS))), st.data())
def test_property_mutated_real_files(seed: int, data: st.DataObject) -> None:
    buf = bytearray(_SEEDS[seed])
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["set", "insert", "delete"]))
        pos = data.draw(st.integers(0, len(buf) - 1))
        if op == "set":
            buf[pos] = data.draw(st.integers(0, 255))
        elif op == "insert":
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del buf[pos : pos + data.draw(st.integers(1, 16))]
        if not buf:
            break
    cut = data.draw(st.integers(0, len(buf)))
    _never_raises_other_than_fabric(bytes(buf[:cut]))
