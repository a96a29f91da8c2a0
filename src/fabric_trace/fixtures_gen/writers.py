"""OTLP writers: collector-style JSON lines and protobuf (framed or one raw message).

Spans are cut into requests of ``spans_per_request`` in export order and, in each
request, grouped by resource then by instrumentation scope (first appearance
first), as the Collector's batch processor + file exporter do. JSON follows the
OTLP/JSON rules: lowerCamelCase keys, lowercase hex ids, 64-bit integers as
decimal strings, enums as integers, ``"status": {}`` always present.

Both writers stream: given a :class:`Scenario` they generate and write batch
by batch, so millions of spans never sit in memory.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .builder import Topology
from .model import GeneratedTraces, GenSpan
from .protoenc import ProtoWriter
from .scenario import Scenario
from .topology import Instance
from .workflow import iter_traces


@dataclass
class RequestBatch:
    """The spans of one ExportTraceServiceRequest, with the tables their indices refer to."""

    spans: list[GenSpan]
    resources: list[Instance]
    scopes: list[tuple[str, str]]

    def groups(self) -> list[tuple[int, list[tuple[int, list[GenSpan]]]]]:
        """``[(resource, [(scope, spans), ...]), ...]`` in order of first appearance."""
        by_res: dict[int, dict[int, list[GenSpan]]] = {}
        for s in self.spans:
            by_res.setdefault(s.resource, {}).setdefault(s.scope, []).append(s)
        return [(r, list(scopes.items())) for r, scopes in by_res.items()]


@dataclass
class WriteStats:
    """What a writer wrote."""

    spans: int = 0
    traces: int = 0
    requests: int = 0
    bytes: int = 0


def _span_source(source: GeneratedTraces | Scenario) -> tuple[Iterable[list[GenSpan]], list[Instance],
                                                               list[tuple[str, str]]]:
    if isinstance(source, GeneratedTraces):
        per_trace: dict[str, list[GenSpan]] = {}
        for s in source.spans:
            per_trace.setdefault(s.trace_id, []).append(s)
        return per_trace.values(), source.resources, source.scopes
    topo = Topology(source)
    return (spans for spans, _ in iter_traces(source)), topo.instances, topo.scopes


def iter_requests(source: GeneratedTraces | Scenario, spans_per_request: int = 512) -> Iterator[RequestBatch]:
    """Cut the spans of ``source`` into request batches of at most ``spans_per_request`` spans.

    With a :class:`Scenario` the traces are generated lazily (constant memory).
    """
    if spans_per_request < 1:
        raise ValueError("spans_per_request must be >= 1")
    traces, resources, scopes = _span_source(source)
    buf: list[GenSpan] = []
    for spans in traces:
        buf.extend(spans)
        while len(buf) >= spans_per_request:
            yield RequestBatch(buf[:spans_per_request], resources, scopes)
            buf = buf[spans_per_request:]
    if buf:
        yield RequestBatch(buf, resources, scopes)


# -- JSON ------------------------------------------------------------------------------------------
def _any_json(v: Any) -> dict[str, Any]:
    if v is True or v is False:
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, (list, tuple)):
        return {"arrayValue": {"values": [_any_json(x) for x in v]}}
    return {"stringValue": str(v)}


_KV_CACHE: dict[tuple[str, type, Any], dict[str, Any]] = {}


def _kv_json(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    cache = _KV_CACHE
    for k, v in attrs.items():
        if isinstance(v, list):
            out.append({"key": k, "value": _any_json(v)})
            continue
        kv = cache.get((k, type(v), v))  # type(v) keeps True and 1 apart
        if kv is None:
            if len(cache) > 200_000:
                cache.clear()
            kv = cache[(k, type(v), v)] = {"key": k, "value": _any_json(v)}
        out.append(kv)
    return out


def _span_json(s: GenSpan) -> dict[str, Any]:
    d: dict[str, Any] = {"traceId": s.trace_id, "spanId": s.span_id}
    if s.parent_span_id:
        d["parentSpanId"] = s.parent_span_id
    d.update(flags=s.flags, name=s.name, kind=s.kind, startTimeUnixNano=str(s.start_ns),
             endTimeUnixNano=str(s.end_ns), attributes=_kv_json(s.attributes))
    if s.events:
        d["events"] = [{"timeUnixNano": str(e.time_ns), "name": e.name, "attributes": _kv_json(e.attributes)}
                       if e.attributes else {"timeUnixNano": str(e.time_ns), "name": e.name} for e in s.events]
    if s.links:
        d["links"] = [{"traceId": ln.trace_id, "spanId": ln.span_id, "attributes": _kv_json(ln.attributes),
                       "flags": 0x101} for ln in s.links]
    status: dict[str, Any] = {}
    if s.status_message:
        status["message"] = s.status_message
    if s.status_code:
        status["code"] = s.status_code
    d["status"] = status
    return d


def encode_request_json(batch: RequestBatch) -> bytes:
    """One OTLP/JSON ExportTraceServiceRequest (no trailing newline)."""
    rs = []
    for res, scopes in batch.groups():
        rs.append({
            "resource": {"attributes": _kv_json(batch.resources[res].attributes)},
            "scopeSpans": [
                {"scope": {"name": batch.scopes[sc][0], "version": batch.scopes[sc][1]},
                 "spans": [_span_json(s) for s in spans]}
                for sc, spans in scopes
            ],
        })
    return orjson.dumps({"resourceSpans": rs})


def write_otlp_jsonl(source: GeneratedTraces | Scenario, path: str | Path, spans_per_request: int = 512) -> WriteStats:
    """Write one ExportTraceServiceRequest JSON per line (Collector ``fileexporter`` ``format: json``)."""
    stats = WriteStats()
    traces: set[str] = set()
    with open(path, "wb") as f:
        for batch in iter_requests(source, spans_per_request):
            line = encode_request_json(batch) + b"\n"
            f.write(line)
            _count(stats, batch, len(line), traces)
    return stats


def _count(stats: WriteStats, batch: RequestBatch, nbytes: int, traces: set[str]) -> None:
    stats.requests += 1
    stats.spans += len(batch.spans)
    stats.bytes += nbytes
    for s in batch.spans:
        if s.trace_id not in traces:
            traces.add(s.trace_id)
            stats.traces += 1
    if len(traces) > 100_000:  # traces are contiguous in the stream: forget old ones
        traces.clear()
        traces.update(s.trace_id for s in batch.spans)


# -- protobuf --------------------------------------------------------------------------------------
def _proto_groups(batch: RequestBatch, pw: ProtoWriter, res_cache: dict[int, bytes]) -> list[
        tuple[bytes, list[tuple[str, str, list[GenSpan]]]]]:
    out = []
    for res, scopes in batch.groups():
        enc = res_cache.get(res)
        if enc is None:
            enc = res_cache[res] = pw.attrs(0x0A, batch.resources[res].attributes)
        out.append((enc, [(batch.scopes[sc][0], batch.scopes[sc][1], spans) for sc, spans in scopes]))
    return out


def encode_request_proto(batch: RequestBatch) -> bytes:
    """One serialized ExportTraceServiceRequest."""
    pw = ProtoWriter()
    return pw.request(_proto_groups(batch, pw, {}))


def write_otlp_proto(source: GeneratedTraces | Scenario, path: str | Path, *, framed: bool = True,
                     spans_per_request: int = 512) -> WriteStats:
    """Write protobuf ExportTraceServiceRequests.

    ``framed=True``: Collector ``fileexporter`` ``format: proto`` layout, each message
    preceded by its 4-byte big-endian length. ``framed=False``: one raw message
    (what an OTLP/HTTP exporter POSTs); it is written as the concatenation of the
    batches' encodings, which protobuf parses as a single message whose
    ``resource_spans`` are the union of all batches.
    """
    pw, res_cache = ProtoWriter(), {}
    stats = WriteStats()
    traces: set[str] = set()
    with open(path, "wb") as f:
        for batch in iter_requests(source, spans_per_request):
            data = pw.request(_proto_groups(batch, pw, res_cache))
            if framed:
                data = struct.pack(">I", len(data)) + data
            f.write(data)
            _count(stats, batch, len(data), traces)
    return stats
