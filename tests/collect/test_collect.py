"""``fabric collect`` end to end: a real OpenTelemetry SDK exporting to the collector subprocess.

Every collector listens on an ephemeral loopback port (``--listen 127.0.0.1:0``).
"""

from __future__ import annotations

import gzip
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from typer.testing import CliRunner

from collect_helpers import CollectProcess, otlp_json, post, stored, wait_for
from fabric_trace.cli.app import app

PB = "application/x-protobuf"
JS = "application/json"


def _agent_spans(provider: TracerProvider, traces: int, calls: int) -> None:
    """A small agent workload: a root per trace, LLM and tool calls under it."""
    tracer = provider.get_tracer("tests.collect", "1.0")
    for t in range(traces):
        with tracer.start_as_current_span("invoke_agent planner", kind=SpanKind.SERVER,
                                          attributes={"gen_ai.operation.name": "invoke_agent",
                                                      "gen_ai.agent.name": "planner", "trace.no": t}):
            for i in range(calls):
                with tracer.start_as_current_span(
                        "chat gpt-4o", kind=SpanKind.CLIENT,
                        attributes={"gen_ai.system": "openai", "gen_ai.operation.name": "chat",
                                    "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 100 + i,
                                    "gen_ai.usage.output_tokens": 7}) as span:
                    span.add_event("gen_ai.content.prompt", {"len": i})
                with tracer.start_as_current_span("execute_tool search", kind=SpanKind.INTERNAL,
                                                  attributes={"gen_ai.operation.name": "execute_tool",
                                                              "gen_ai.tool.name": "search"}) as tool:
                    if i == calls - 1:
                        tool.set_status(Status(StatusCode.ERROR, "timeout"))


def _provider(*processors: object) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "agent-svc", "deployment.region": "eu-west-1"}))
    for p in processors:
        provider.add_span_processor(p)  # type: ignore[arg-type]
    return provider


_COMPARED = ("SELECT trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, status_code, content_hash, "
             "role, service_name, region, model, input_tokens, output_tokens, tool_name, agent_name, events "
             "FROM span_store ORDER BY trace_id, span_id")


def test_sdk_protobuf_gzip_stores_what_ingest_stores(tmp_path: Path) -> None:
    """The SDK's own exporter (protobuf, gzip) -> collect; same rows as ingesting the same spans from a file."""
    db = tmp_path / "live.duckdb"
    collector = CollectProcess(db)
    memory = InMemorySpanExporter()
    exporter = OTLPSpanExporter(endpoint=collector.traces_url, compression=Compression.Gzip, timeout=30)
    provider = _provider(BatchSpanProcessor(exporter, max_export_batch_size=64, schedule_delay_millis=50),
                         SimpleSpanProcessor(memory))
    _agent_spans(provider, traces=20, calls=3)
    assert provider.force_flush(30_000)
    provider.shutdown()
    code, out = collector.stop()
    assert code == 0, collector.stderr
    summary = json.loads(out)
    spans = memory.get_finished_spans()
    assert len(spans) == 20 * 7
    assert summary["spans_ingested"] == len(spans)
    assert summary["spans_rejected"] == 0 and summary["traces"] == 20 and summary["analyzed"] is True
    assert "140 new span(s)" in collector.stderr and "20 trace(s)" in collector.stderr

    # The same spans from a file, through `fabric trace ingest`.
    pb = tmp_path / "same.pb"
    pb.write_bytes(encode_spans(spans).SerializeToString())
    ref = tmp_path / "ingest.duckdb"
    res = CliRunner().invoke(app, ["trace", "ingest", str(pb), "--db", str(ref)])
    assert res.exit_code == 0, res.output
    live_rows, ref_rows = stored(db, _COMPARED), stored(ref, _COMPARED)
    assert live_rows == ref_rows
    assert {r[9] for r in live_rows} >= {"llm", "tool"}
    # one manifest row per transaction, derived tables fresh
    files = stored(db, "SELECT path, format, spans_ingested FROM files")
    assert all(p == collector.traces_url and f == "otlp-http-proto" for p, f, _ in files)
    assert sum(n for _, _, n in files) == len(spans)
    meta = dict(stored(db, "SELECT key, value FROM fabric_meta"))
    assert meta["derived_version"] == meta["data_version"]


def test_json_gzip_then_protobuf_is_idempotent(tmp_path: Path) -> None:
    """OTLP/JSON (gzip) is stored like protobuf: resending the same spans as protobuf adds only duplicates."""
    memory = InMemorySpanExporter()
    provider = _provider(SimpleSpanProcessor(memory))
    _agent_spans(provider, traces=5, calls=2)
    request = encode_spans(memory.get_finished_spans())
    db = tmp_path / "live.duckdb"
    collector = CollectProcess(db)
    try:
        status, headers, body = post(collector.port, otlp_json(request), JS, gzipped=True)
        assert status == 200 and headers["content-type"] == JS
        assert json.loads(body) == {}  # full success: no partial_success
        status, headers, body = post(collector.port, request.SerializeToString(), PB)
        assert status == 200 and headers["content-type"] == PB
        assert not ExportTraceServiceResponse.FromString(body).HasField("partial_success")
    finally:
        code, out = collector.stop(signal.SIGINT)
    assert code == 0, collector.stderr
    summary = json.loads(out)
    assert summary["spans_ingested"] == 25 and summary["spans_duplicate"] == 25 and summary["requests"] == 2
    assert [f for (f,) in stored(db, "SELECT format FROM files ORDER BY file_id")] == ["otlp-http-json",
                                                                                       "otlp-http-proto"]


def _bad_span_request() -> bytes:
    good = {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "ok",
            "kind": 1, "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000100000000"}
    bad = {**good, "spanId": "b7ad6b71", "name": "short id"}
    return json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [good, bad]}]}]}).encode()


def test_malformed_and_refused_requests(tmp_path: Path) -> None:
    db = tmp_path / "live.duckdb"
    collector = CollectProcess(db, "--max-body-mb", "1")
    port = collector.port
    try:
        # partial success: one span of two quarantined, reported back with the count and a message
        status, _, body = post(port, _bad_span_request(), JS)
        assert status == 200
        partial = json.loads(body)["partialSuccess"]
        assert partial["rejectedSpans"] == "1" and "quarantine" in partial["errorMessage"]
        # undecodable bodies: 400 with a google.rpc.Status in the request's encoding
        status, headers, body = post(port, b'{"resourceSpans": [', JS)
        assert status == 400 and json.loads(body)["code"] == 3 and "invalid JSON" in json.loads(body)["message"]
        status, _, body = post(port, b'{"data": []}', JS)
        assert status == 400 and "not an OTLP" in json.loads(body)["message"]
        truncated = b"\x0a\x80\x01" + b"\x00" * 10  # resourceSpans of 128 bytes, 10 present
        status, headers, body = post(port, truncated, PB)
        assert status == 400 and headers["content-type"] == PB
        assert "malformed protobuf" in status_pb2.Status.FromString(body).message
        status, _, body = post(port, b"\x1f\x8b\x08\x00garbage", PB, headers={"Content-Encoding": "gzip"})
        assert status == 400 and "gzip" in status_pb2.Status.FromString(body).message
        # 413: over the limit on the wire, and after decompression (a bomb)
        assert post(port, b"\x0a\x00" * (600 * 1024), PB)[0] == 413
        bomb = gzip.compress(b"\x0a\x00" * (4 << 20))
        assert len(bomb) < (1 << 20)
        status, _, body = post(port, bomb, PB, headers={"Content-Encoding": "gzip"})
        assert status == 413 and "limit" in status_pb2.Status.FromString(body).message
        # 415: other content types and encodings
        assert post(port, b"hello", "text/plain")[0] == 415
        assert post(port, b"{}", JS, headers={"Content-Encoding": "br"})[0] == 415
        # only POST /v1/traces takes data; request paths never name files
        assert post(port, b"{}", JS, path="/v1/metrics")[0] == 404
        status, _, body = post(port, b"{}", JS, path="/../../etc/passwd")
        assert status == 404 and "POST /v1/traces" in json.loads(body)["message"]
        # an empty protobuf request is a valid empty export
        status, _, body = post(port, b"", PB)
        assert status == 200 and ExportTraceServiceResponse.FromString(body) == ExportTraceServiceResponse()
    finally:
        code, out = collector.stop()
    assert code == 0, collector.stderr
    summary = json.loads(out)
    assert summary["spans_ingested"] == 1 and summary["spans_rejected"] == 1
    assert summary["requests_refused"] == {"400": 4, "404": 2, "413": 2, "415": 2}
    rows = stored(db, "SELECT location, reason FROM quarantine ORDER BY quarantine_id")
    assert rows[0][0].startswith("request 1") and "span id" in rows[0][1]
    assert sum("HTTP 400" in r for _, r in rows) == 4  # refused bodies are kept for diagnosis
    assert not list(tmp_path.glob("**/passwd"))
    assert "refused (400): invalid JSON" in collector.stderr, collector.stderr[-3000:]


def test_bearer_token(tmp_path: Path) -> None:
    collector = CollectProcess(tmp_path / "t.duckdb", env={"FABRIC_COLLECT_TOKEN": "s3cret-token-value"})
    try:
        status, headers, _ = post(collector.port, b"", PB)
        assert status == 401 and headers["www-authenticate"].startswith("Bearer")
        assert post(collector.port, b"", PB, headers={"Authorization": "Bearer wrong"})[0] == 401
        assert post(collector.port, b"", PB, headers={"Authorization": "Bearer s3cret-token-value"})[0] == 200
    finally:
        code, _ = collector.stop()
    assert code == 0


def test_burst_beyond_the_queue_gets_503_and_the_exporter_retry_succeeds(tmp_path: Path) -> None:
    """Four SDK exporters at once into a 20-span queue: refused with 503 + Retry-After, all stored in the end."""
    memory = InMemorySpanExporter()
    provider = _provider(SimpleSpanProcessor(memory))
    _agent_spans(provider, traces=4, calls=2)  # 4 x 5 spans
    spans = memory.get_finished_spans()
    chunks = [[s for s in spans if s.context.trace_id == tid] for tid in sorted({s.context.trace_id for s in spans})]
    db = tmp_path / "burst.duckdb"
    collector = CollectProcess(db, "--queue-spans", "6", "--batch-wait", "0.5")
    results: list[SpanExportResult] = []
    try:
        exporters = [OTLPSpanExporter(endpoint=collector.traces_url, timeout=30) for _ in chunks]
        threads = [threading.Thread(target=lambda e=e, c=c: results.append(e.export(c)))
                   for e, c in zip(exporters, chunks)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        code, out = collector.stop()
    assert code == 0, collector.stderr
    assert results == [SpanExportResult.SUCCESS] * 4
    summary = json.loads(out)
    assert summary["requests_refused"].get("503", 0) >= 1
    assert summary["spans_ingested"] == len(spans) == 20


def _request(trace_no: int, spans: int) -> bytes:
    req = ExportTraceServiceRequest()
    scope = req.resource_spans.add().scope_spans.add()
    tid = (trace_no + 1).to_bytes(16, "big")
    for i in range(spans):
        s = scope.spans.add()
        s.trace_id = tid
        s.span_id = (i + 1).to_bytes(8, "big")
        s.name = f"op {i}"
        s.kind = 1
        s.start_time_unix_nano = 1_700_000_000_000_000_000 + i
        s.end_time_unix_nano = 1_700_000_000_000_000_000 + i + 1000
    return req.SerializeToString()


def _load(port: int, acked: list[int], stop: threading.Event, first: int, count: int) -> None:
    """Post requests of 50 spans (one trace each) until refused or stopped; record acknowledged traces."""
    for n in range(first, first + count):
        if stop.is_set():
            return
        try:
            status, _, _ = post(port, _request(n, 50), timeout=30)
        except OSError:
            return
        if status == 200:
            acked.append(n + 1)
        elif status != 503:
            return


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_signal_during_load_loses_no_acknowledged_span(tmp_path: Path, sig: int) -> None:
    """SIGTERM: clean exit 0 with everything acknowledged stored; SIGKILL: acknowledged spans survive the crash."""
    db = tmp_path / "load.duckdb"
    collector = CollectProcess(db, "--batch-wait", "0.05")
    acked: list[int] = []
    stop = threading.Event()
    threads = [threading.Thread(target=_load, args=(collector.port, acked, stop, k * 10_000, 400)) for k in range(3)]
    for t in threads:
        t.start()
    assert wait_for(lambda: len(acked) >= 20, timeout=60)
    collector.proc.send_signal(sig)
    for t in threads:
        t.join(120)
    stop.set()
    code, out = collector.stop()
    if sig == signal.SIGTERM:
        assert code == 0, collector.stderr
        assert json.loads(out)["spans_ingested"] >= 50 * len(acked)
    else:
        assert code == -signal.SIGKILL
        from fabric_trace.store.db import connect

        connect(str(db)).close()  # replays the write-ahead log, like any next fabric command
    tids = {f"{n:032x}" for n in acked}
    rows = stored(db, "SELECT trace_id, count(*) FROM span_store GROUP BY trace_id")
    got = {t: c for t, c in rows}
    missing = [t for t in tids if got.get(t) != 50]
    assert not missing, f"{len(missing)} acknowledged trace(s) lost of {len(tids)}"


def test_snapshot_is_readable_while_collecting(tmp_path: Path) -> None:
    """Reports and queries read the snapshot while the collector holds the database."""
    db = tmp_path / "live.duckdb"
    snap = tmp_path / "live.snapshot.duckdb"
    collector = CollectProcess(db, "--snapshot-interval", "0.5")
    try:
        assert post(collector.port, _request(1, 10))[0] == 200
        assert wait_for(snap.exists, timeout=30)
        res = subprocess.run([sys.executable, "-m", "fabric_trace", "query", "--db", str(snap),
                              "SELECT count(*) AS n FROM spans", "--format", "csv"],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert res.stdout.split() == ["n", "10"]
        busy = subprocess.run([sys.executable, "-m", "fabric_trace", "query", "--db", str(db), "--lock-timeout",
                               "0", "SELECT 1"], capture_output=True, text=True, timeout=120)
        assert busy.returncode == 75
        assert str(snap) in busy.stderr
    finally:
        code, _ = collector.stop()
    assert code == 0
    assert not snap.exists()  # removed at exit: the database itself is readable again


def test_snapshot_path_checks(tmp_path: Path) -> None:
    """The snapshot never replaces the database or a file that is not a DuckDB database."""
    runner = CliRunner()
    db = tmp_path / "x.duckdb"
    res = runner.invoke(app, ["collect", "--listen", "127.0.0.1:0", "--db", str(db), "--snapshot", str(db)])
    assert res.exit_code == 2 and "is the database itself" in res.output
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    res = runner.invoke(app, ["collect", "--listen", "127.0.0.1:0", "--db", str(db), "--snapshot", str(notes)])
    assert res.exit_code == 2 and "refusing to overwrite" in res.output
    assert notes.read_text() == "keep me"


def test_listen_address_checks() -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["collect", "--listen", "0.0.0.0:0", "--db", ":memory:"])
    assert res.exit_code == 2 and "not a loopback address" in res.output and "--allow-remote" in res.output
    res = runner.invoke(app, ["collect", "--listen", "localhost", "--db", ":memory:"])
    assert res.exit_code == 2 and "bad --listen" in res.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        res = runner.invoke(app, ["collect", "--listen", f"127.0.0.1:{taken.getsockname()[1]}", "--db",
                                  ":memory:"])
    assert res.exit_code == 69 and "cannot listen" in res.output


def test_healthz_methods_and_idle_keepalive_at_stop(tmp_path: Path) -> None:
    """GET /healthz answers; other methods and paths are refused; an idle keep-alive
    connection does not hold up a stop (it is closed, not waited for)."""
    import http.client

    collector = CollectProcess(tmp_path / "h.duckdb")
    idle = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=30)
    try:
        for method, path, want in (("GET", "/healthz", 200), ("GET", "/v1/traces", 405),
                                   ("GET", "/etc/passwd", 404), ("DELETE", "/v1/traces", 405)):
            conn = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=30)
            conn.request(method, path)
            resp = conn.getresponse()
            assert resp.status == want
            resp.read()
            conn.close()
        idle.request("POST", "/v1/traces", body=_request(7, 3), headers={"Content-Type": PB})
        resp = idle.getresponse()
        assert resp.status == 200 and resp.getheader("Connection") != "close"
        resp.read()  # the connection stays open, idle
        t0 = time.monotonic()
    finally:
        code, out = collector.stop()
    assert code == 0 and json.loads(out)["spans_ingested"] == 3
    assert time.monotonic() - t0 < 20  # the 30 s idle timeout was not waited for
    idle.close()


def test_sdk_grpc_exporter(tmp_path: Path) -> None:
    """OTLP/gRPC (--grpc) stores like OTLP/HTTP; bad messages are INVALID_ARGUMENT; the token is checked."""
    pytest.importorskip("grpc")
    import re

    import grpc
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

    db = tmp_path / "g.duckdb"
    collector = CollectProcess(db, "--grpc", "127.0.0.1:0", env={"FABRIC_COLLECT_TOKEN": "tok-123"})
    m = re.search(r"OTLP/gRPC on 127\.0\.0\.1:(\d+)", collector.stderr)
    assert m, collector.stderr
    target = f"127.0.0.1:{m.group(1)}"
    memory = InMemorySpanExporter()
    provider = _provider(SimpleSpanProcessor(memory))
    _agent_spans(provider, traces=3, calls=2)
    spans = memory.get_finished_spans()
    try:
        exporter = GrpcExporter(endpoint=target, insecure=True, headers={"authorization": "Bearer tok-123"},
                                compression=grpc.Compression.Gzip, timeout=30)
        assert exporter.export(spans) == SpanExportResult.SUCCESS
        exporter.shutdown()
        with grpc.insecure_channel(target) as channel:
            call = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            with pytest.raises(grpc.RpcError) as err:
                call(b"\x0a\x80\x01", metadata=[("authorization", "Bearer tok-123")], timeout=30)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(grpc.RpcError) as err:
                call(b"", timeout=30)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            reply = ExportTraceServiceResponse.FromString(
                call(encode_spans(spans).SerializeToString(), metadata=[("authorization", "Bearer tok-123")],
                     timeout=30))
            assert not reply.HasField("partial_success")
    finally:
        code, out = collector.stop()
    assert code == 0, collector.stderr
    summary = json.loads(out)
    assert summary["spans_ingested"] == len(spans) == 15 and summary["spans_duplicate"] == 15
    assert summary["requests_refused"] == {"400": 1, "401": 1}
