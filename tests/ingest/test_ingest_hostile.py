"""Regression tests for issue 18 (ingest side): damaged and deep JSON, bombs, bad UTF-8, size
limits, NaN, literal paths, skipped-file counts. Each test names the case it pins."""

from __future__ import annotations

import gzip
import io
import json
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard
from typer.testing import CliRunner

from fabric_trace.cli.app import app
from fabric_trace.errors import InputError
from fabric_trace.ingest.batch import SPAN_FIELDS, SpanBatch
from fabric_trace.ingest.container import decode_stream
from fabric_trace.ingest.json_dispatch import decode_json_value
from fabric_trace.ingest.limits import MIB, Limits
from fabric_trace.ingest.otlp_json_fast import decode_otlp_line

F = {name: i for i, name in enumerate(SPAN_FIELDS)}


def span(i: int, attrs: list[Any] | None = None) -> dict[str, Any]:
    return {"traceId": f"{1 + i // 50:032x}", "spanId": f"{i + 1:016x}", "name": f"op{i}", "kind": 2,
            "startTimeUnixNano": str(1_700_000_000_000_000_000 + i * 1000),
            "endTimeUnixNano": str(1_700_000_000_000_000_000 + i * 1000 + 500),
            "attributes": attrs if attrs is not None else [{"key": "k", "value": {"stringValue": f"v{i}"}}]}


def document(n: int, pretty: bool = False) -> bytes:
    d = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
                            "scopeSpans": [{"scope": {"name": "s"}, "spans": [span(i) for i in range(n)]}]}]}
    return json.dumps(d, indent=2 if pretty else None).encode()


def run(data: bytes, limits: Limits | None = None) -> tuple[str, SpanBatch]:
    batch = SpanBatch()
    label = decode_stream(io.BytesIO(data), "t", batch, limits or Limits(), decode_json_value, decode_otlp_line)
    return label, batch


def names(batch: SpanBatch) -> list[str]:
    return [r[F["name"]] for r in batch.spans]


# ------------------------------------------------------------------ broken / deep JSON documents


def test_100k_deep_document_is_one_record_in_seconds() -> None:
    data = b'{"a":' * 100_000 + b"1" + b"}" * 100_000  # 600 KB
    t0 = time.perf_counter()
    _, batch = run(data)
    assert time.perf_counter() - t0 < 10
    (rej,) = batch.rejections
    assert "not an OTLP, Jaeger or Zipkin JSON document" in rej.reason and len(batch) == 0


@pytest.mark.parametrize("pretty", [True, False])
@pytest.mark.parametrize("bad", [b"\x00", b'"', b"{", b"]", b"@"])
def test_one_bad_byte_in_a_4000_span_document_loses_one_span(pretty: bool, bad: bytes) -> None:
    data = bytearray(document(4000, pretty))
    at = data.rindex(b":", 0, data.index(b'"op1234"'))  # the colon after "name"
    data[at : at + 1] = bad
    _, batch = run(bytes(data))
    assert len(batch) >= 3999 and "op1233" in names(batch) and "op1235" in names(batch)
    (rej,) = batch.rejections  # one damaged region, with its byte range
    a, b = (int(x) for x in rej.where.removeprefix("bytes ").split("-"))
    assert a <= at < b and b - a < 2000 and "damaged JSON" in rej.reason


def test_damaged_document_keeps_locations_of_later_spans() -> None:
    data = document(10, pretty=True).replace(b'"op3"', b'"op3\x01"', 1)
    _, batch = run(data)
    assert len(batch) == 9 and batch.spans[3][F["where"]].endswith("spans[4]")


def test_truncated_document_keeps_the_complete_spans() -> None:
    data = document(100, pretty=True)
    cut = data.index(b'"op90"')
    _, batch = run(data[:cut])
    assert len(batch) == 90 and len(batch.rejections) == 1


@pytest.mark.parametrize("depth", [60, 250, 300, 1000, 5000])
def test_deep_attribute_values_have_one_rule(depth: int) -> None:
    """No 250-vs-300 cliff: any value past 64 AnyValue levels is emptied, the span kept, one repair."""
    deep = b'{"kvlistValue":{"values":[{"key":"a","value":' * (depth - 1) + b'{"stringValue":"leaf"}' + b"}]}}" * (
        depth - 1)
    marker = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
        span(0, [{"key": "deep", "value": {"stringValue": "MARK"}}])]}]}]})
    line = marker.replace(b'{"stringValue":"MARK"}', deep) + b"\n"
    _, batch = run(line + line.replace(b'"op0"', b'"op1"').replace(b"0000000000000001", b"0000000000000002"))
    assert names(batch) == ["op0", "op1"]
    repaired = [r for r in batch.rejections if r.action == "repaired"]
    assert len(repaired) == (0 if depth <= 64 else 2) and len(batch.rejections) == len(repaired)


@pytest.mark.slow
def test_30mb_fuzzed_document_finishes_in_bounded_time() -> None:
    import random

    rnd = random.Random(18)
    data = bytearray(document(40_000, pretty=True))  # ~30 MB
    for _ in range(300):
        data[rnd.randrange(len(data))] = rnd.choice(b'{}[]",:\x00x9 \n')
    t0 = time.perf_counter()
    _, batch = run(bytes(data))
    assert time.perf_counter() - t0 < 120
    assert len(batch) > 30_000 and len(batch.rejections) <= 300


# ------------------------------------------------------------------ decompression bombs


def _bomb(fill: bytes, total: int, kind: str, prefix: bytes = b"") -> bytes:
    chunk = fill * (1 << 20)
    if kind == "gzip":
        c = zlib.compressobj(9, zlib.DEFLATED, 31)
        return b"".join([c.compress(prefix)] + [c.compress(chunk) for _ in range(total >> 20)] + [c.flush()])
    out = io.BytesIO()
    w = zstandard.ZstdCompressor().stream_writer(out, closefd=False)
    w.write(prefix)
    for _ in range(total >> 20):
        w.write(chunk)
    w.flush(zstandard.FLUSH_FRAME)
    return out.getvalue()


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
@pytest.mark.parametrize("prefix", [b"", b'{"resourceSpans": []}\n'])
def test_newline_bombs_are_refused_at_the_cap(kind: str, prefix: bytes) -> None:
    data = _bomb(b"\n", 1024 * MIB, kind, prefix)
    t0 = time.perf_counter()
    with pytest.raises(InputError):
        run(data, Limits(max_decompressed_bytes=128 * MIB, max_line_bytes=16 * MIB))
    assert time.perf_counter() - t0 < 15


#: Bombs of many tiny records: each record costs the decoder microseconds, so capping only
#: while decoding would take minutes per 16 MiB (hours at the 1 GiB default).
TINY_RECORDS = {
    "framed-empty-requests": b"\x00\x00\x00\x02\x0a\x00",  # Collector frames of empty resourceSpans
    "raw-empty-resource-spans": b"\x0a\x00",
    "empty-spans-jsonl": b'{"resourceSpans":[{"scopeSpans":[{"spans":[{}]}]}]}\n',  # one rejected span each
    "empty-objects-jsonl": b"{}\n",
}


def _members(fill: bytes, total: int, kind: str) -> bytes:
    """``total`` bytes of ``fill`` repeated, as one gzip member / zstd frame per MiB (built in milliseconds)."""
    chunk = fill * ((1 << 20) // len(fill))
    one = gzip.compress(chunk, 1) if kind == "gzip" else zstandard.ZstdCompressor().compress(chunk)
    return one * (total // len(chunk) + 1)


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
@pytest.mark.parametrize("record", sorted(TINY_RECORDS))
def test_bombs_of_tiny_records_are_refused_before_decoding(tmp_path: Path, kind: str, record: str) -> None:
    path = tmp_path / "bomb"
    path.write_bytes(_members(TINY_RECORDS[record], 96 * MIB, kind))
    batch = SpanBatch()
    t0 = time.perf_counter()
    with path.open("rb") as f, pytest.raises(InputError, match="decompressed size exceeds"):
        decode_stream(f, "bomb", batch, Limits(max_decompressed_bytes=64 * MIB), decode_json_value, decode_otlp_line)
    assert time.perf_counter() - t0 < 10  # measured before, not after ~10 M records
    assert not batch.spans and not batch.rejections  # nothing decoded, nothing quarantined


def test_a_tiny_record_bomb_is_refused_fast_through_the_cli_and_stdin(tmp_path: Path) -> None:
    path = tmp_path / "bomb.bin.gz"
    path.write_bytes(_members(TINY_RECORDS["framed-empty-requests"], 96 * MIB, "gzip"))
    for args, stdin in (([str(path)], None), (["-"], path.read_bytes())):
        t0 = time.perf_counter()
        res = CliRunner().invoke(app, ["trace", "ingest", *args, "--db", str(tmp_path / "b.duckdb"),
                                       "--max-decompressed-mb", "64", "--no-analyze"], input=stdin)
        assert res.exit_code == 65, res.stderr
        assert "decompressed size exceeds 67108864 bytes" in res.stderr
        assert time.perf_counter() - t0 < 15


def test_measuring_first_keeps_a_genuine_compressed_file_whole(tmp_path: Path) -> None:
    """The size check rewinds the file: the records, the label and the file's hash are those of one pass."""
    import hashlib

    raw = b"".join(orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span(i)]}]}]}) + b"\n"
                   for i in range(50))
    path = tmp_path / "ok.jsonl.gz"
    path.write_bytes(gzip.compress(raw))
    batch = SpanBatch()
    with path.open("rb") as f:
        label = decode_stream(f, "ok", batch, Limits(max_decompressed_bytes=len(raw)), decode_json_value,
                              decode_otlp_line)
    assert label == "otlp-jsonl+gzip" and len(batch.spans) == 50
    db = tmp_path / "ok.duckdb"
    res = CliRunner().invoke(app, ["trace", "ingest", str(path), "--db", str(db), "--json", "--no-analyze"])
    assert res.exit_code == 0, res.stderr
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT sha256 FROM files").fetchone()[0] == hashlib.sha256(path.read_bytes()).hexdigest()
    finally:
        con.close()


# ------------------------------------------------------------------ invalid UTF-8


def test_bad_utf8_in_a_json_document_is_repaired() -> None:
    data = document(3, pretty=True).replace(b'"op1"', b'"op\xff1"')
    _, batch = run(data)
    assert names(batch) == ["op0", "op\ufffd1", "op2"]
    (rep,) = batch.rejections
    at = data.index(b"\xff")
    assert rep.action == "repaired" and "invalid UTF-8" in rep.reason and f"byte {at} " in rep.reason


@pytest.mark.parametrize("flavour", ["jaeger", "zipkin"])
def test_bad_utf8_in_jaeger_and_zipkin_is_repaired(flavour: str) -> None:
    tid, sid = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    if flavour == "jaeger":
        doc: Any = {"data": [{"traceID": tid, "spans": [{
            "traceID": tid, "spanID": sid, "operationName": "opXX", "startTime": 1767225600000000,
            "duration": 1000, "processID": "p1", "references": [], "tags": []}],
            "processes": {"p1": {"serviceName": "svc", "tags": []}}}]}
    else:
        doc = [{"traceId": tid, "id": sid, "name": "opXX", "timestamp": 1767225600000000, "duration": 1000,
                "localEndpoint": {"serviceName": "svc"}}]
    data = json.dumps(doc).encode().replace(b"opXX", b"op\xff1")
    label, batch = run(data)
    assert label.startswith(flavour) and names(batch) == ["op\ufffd1"] and batch.spans_rejected == 0
    (rep,) = batch.rejections
    at = data.index(b"\xff")
    assert rep.action == "repaired" and f"at byte {at} replaced with U+FFFD" in rep.reason


def test_lone_surrogate_escape_is_repaired() -> None:
    line = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span(0)]}]}]}).replace(b'"op0"', b'"op\\ud800"')
    _, batch = run(line + b"\n")
    assert names(batch) == ["op\ufffd"] and batch.rejections[0].action == "repaired"


# ------------------------------------------------------------------ size limits before parsing


def test_long_first_line_is_skipped_unread_with_a_small_limit() -> None:
    big = b'{"resourceSpans": [], "x": "' + b"a" * (32 * MIB) + b'"}'
    small = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span(50_000)]}]}]})
    limit = 64 * 1024
    data = big + b"\n" + small + b"\n"
    tracemalloc.start()
    _, batch = run(data, Limits(max_line_bytes=limit))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert names(batch) == ["op50000"]
    (rej,) = batch.rejections
    assert rej.where == "line 1" and f"exceeds max_line_bytes {limit}" in rej.reason
    assert peak < 8 * MIB  # the 32 MB line is never held whole, let alone parsed (read in 1 MiB pieces)


# ------------------------------------------------------------------ NaN / Infinity: one rule


def test_bare_and_quoted_nan_follow_one_rule() -> None:
    attrs = '[{"key":"x","value":{"doubleValue":%s}},{"key":"ok","value":{"doubleValue":1.5}}]'
    base = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span(0, [])]}]}]})
    results = []
    for token in ("NaN", '"NaN"', "Infinity", '"-Infinity"', "1e400"):
        line = base.replace(b'"attributes":[]', b'"attributes":' + (attrs % token).encode())
        _, batch = run(line + b"\n")
        assert names(batch) == ["op0"]  # never rejects the line
        assert batch.spans[0][F["attributes"]] == {"x": None, "ok": 1.5}
        repaired = [r.reason for r in batch.rejections if r.action == "repaired"]
        assert any("is not finite" in r for r in repaired)
        results.append(len(batch.rejections) - (0 if token.startswith('"') else 1))
    assert len(set(results)) == 1  # the bare form adds only the note that it was bare


# ------------------------------------------------------------------ CLI: literal paths, skipped counts


def test_existing_path_with_glob_characters_is_taken_literally(tmp_path: Path) -> None:
    f = tmp_path / "a[1].jsonl"
    f.write_bytes(orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span(0)]}]}]}) + b"\n")
    (tmp_path / "a1.jsonl").write_bytes(b"not json\n")  # what the glob would have matched
    res = CliRunner().invoke(app, ["trace", "ingest", str(f), "--db", str(tmp_path / "t.duckdb"), "--json",
                                   "--no-analyze"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["spans_ingested"] == 1 and summary["per_file"][0]["path"] == str(f)


def test_skipped_file_counts_add_up(tmp_path: Path) -> None:
    f = tmp_path / "x.jsonl.gz"
    lines = [orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span(i)]}]}]}) for i in range(5)]
    lines.append(orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [dict(span(9), traceId="zz")]}]}]}))
    f.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    db = str(tmp_path / "t.duckdb")
    out = []
    for _ in range(2):
        res = CliRunner().invoke(app, ["trace", "ingest", str(f), "--db", db, "--json", "--no-analyze"])
        assert res.exit_code == 0, res.output
        out.append(json.loads(res.stdout))
    first, again = out
    assert again["files_skipped"] == 1 and again["spans_ingested"] == 0
    for s in (first, again):
        assert s["spans_decoded"] == s["spans_ingested"] + s["spans_duplicate"] + s["spans_rejected"]
    assert (again["spans_decoded"], again["spans_duplicate"], again["spans_rejected"]) == (6, 5, 1)
