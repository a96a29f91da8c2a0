"""Seed inputs and mutations for the ingest fuzz campaign (tests/ingest/test_ingest_fuzz.py, bench/fuzz_ingest.py).

One seed per decoder family, built from real-shaped OTLP/Jaeger/Zipkin data, and byte
mutations of the kinds that damage files in practice: a byte replaced (by a structural
character, a control character, invalid UTF-8), bytes inserted or deleted, a cut, a
splice of two places, a run duplicated.
"""

from __future__ import annotations

import gzip
import io
import json
import random
from collections.abc import Callable
from typing import Any

import zstandard
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from fabric_trace.errors import FabricError
from fabric_trace.ingest.batch import SpanBatch
from fabric_trace.ingest.container import decode_stream
from fabric_trace.ingest.json_dispatch import decode_json_value
from fabric_trace.ingest.limits import MIB, Limits
from fabric_trace.ingest.otlp_json_fast import decode_otlp_line

LIMITS = Limits(max_decompressed_bytes=64 * MIB, max_line_bytes=4 * MIB, max_document_bytes=64 * MIB)


def otlp_span(i: int) -> dict[str, Any]:
    return {"traceId": f"{1 + i // 7:032x}", "spanId": f"{i + 1:016x}",
            "parentSpanId": "" if i % 7 == 0 else f"{i:016x}", "name": f"op-{i} ✓", "kind": 1 + i % 5,
            "startTimeUnixNano": str(1_700_000_000_000_000_000 + i * 1000),
            "endTimeUnixNano": str(1_700_000_000_000_000_000 + i * 1000 + 900),
            "attributes": [{"key": "s", "value": {"stringValue": f"v{i}"}},
                           {"key": "n", "value": {"intValue": str(i)}},
                           {"key": "d", "value": {"doubleValue": i / 3}},
                           {"key": "l", "value": {"arrayValue": {"values": [{"boolValue": True}]}}}],
            "events": [{"timeUnixNano": str(1_700_000_000_000_000_000 + i * 1000 + 5), "name": "e"}],
            "status": {"code": i % 3}}


def otlp_doc(n: int, first: int = 0) -> dict[str, Any]:
    return {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
                               "scopeSpans": [{"scope": {"name": "lib", "version": "1"},
                                               "spans": [otlp_span(first + i) for i in range(n)]}]}]}


def _proto(n: int) -> bytes:
    from google.protobuf import json_format

    d = otlp_doc(n)
    for rs in d["resourceSpans"]:  # json_format reads ids as base64: give them as such
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                for k in ("traceId", "spanId", "parentSpanId"):
                    s[k] = __import__("base64").b64encode(bytes.fromhex(s[k])).decode()
    return json_format.ParseDict(d, ExportTraceServiceRequest()).SerializeToString()


def seeds() -> dict[str, bytes]:
    """One seed per decoder family."""
    jaeger = {"data": [{"traceID": "a" * 32, "processes": {"p1": {"serviceName": "svc", "tags": []}},
                        "spans": [{"traceID": "a" * 32, "spanID": f"{i + 1:016x}", "operationName": f"op{i}",
                                   "references": [], "startTime": 1_700_000_000_000_000 + i, "duration": 5,
                                   "processID": "p1", "tags": [{"key": "x", "type": "float64", "value": 1.5}]}
                                  for i in range(6)]}]}
    zipkin = [{"traceId": "b" * 32, "id": f"{i + 1:016x}", "name": f"op{i}", "timestamp": 1_700_000_000_000_000,
               "duration": 3, "localEndpoint": {"serviceName": "svc"}, "tags": {"k": "v"}} for i in range(6)]
    jsonl = b"".join(json.dumps(otlp_doc(3, 3 * i)).encode() + b"\n" for i in range(4))
    return {
        "otlp-jsonl": jsonl,
        "otlp-json": json.dumps(otlp_doc(12), indent=2).encode(),
        "jaeger-json": json.dumps(jaeger, indent=1).encode(),
        "zipkin-json": json.dumps(zipkin).encode(),
        "otlp-proto": _proto(6),
        "otlp-jsonl+gzip": gzip.compress(jsonl),
        "otlp-jsonl+zstd": zstandard.ZstdCompressor().compress(jsonl),
    }


_BYTES = b'{}[]",:\\ \n\x00\x1f\x7f\x80\xc3\xff0-eE.NaIfty'


def mutate(data: bytes, rnd: random.Random, count: int = 1) -> bytes:
    """Apply ``count`` random mutations."""
    b = bytearray(data)
    for _ in range(count):
        if not b:
            b += bytes([rnd.choice(_BYTES)])
            continue
        op = rnd.randrange(7)
        i = rnd.randrange(len(b))
        if op == 0:
            b[i] = rnd.choice(_BYTES)
        elif op == 1:
            b[i] = rnd.randrange(256)
        elif op == 2:
            b[i:i] = bytes(rnd.choice(_BYTES) for _ in range(rnd.randint(1, 4)))
        elif op == 3:
            del b[i : i + rnd.randint(1, 16)]
        elif op == 4:
            del b[i:]
        elif op == 5:
            j = rnd.randrange(len(b))
            b[i:] = b[j : j + rnd.randint(1, 200)] + b[i:]
        else:
            b[i:i] = b[i : i + rnd.randint(1, 64)] * rnd.randint(1, 50)
    return bytes(b)


def decode(data: bytes, limits: Limits = LIMITS) -> tuple[SpanBatch, FabricError | None]:
    """Decode ``data`` like ``fabric trace ingest``; only a FabricError may escape (returned)."""
    batch = SpanBatch()
    try:
        decode_stream(io.BytesIO(data), "fuzz", batch, limits, decode_json_value, decode_otlp_line)
    except FabricError as exc:
        return batch, exc
    return batch, None


def check(batch: SpanBatch) -> None:
    """Invariants of any decode: every quarantine record is located and explained."""
    for r in batch.rejections:
        assert r.where and r.reason and r.action in ("rejected", "repaired"), r
        assert "RecursionError" not in r.reason and "Traceback" not in r.reason, r


MutateFn = Callable[[bytes, random.Random, int], bytes]
