"""Builders for the export and HTML report tests: small OTLP/JSON traces written to a real store."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import otlp_build

from fabric_trace.service import run_ingest

_ids = itertools.count(1)
#: The time origin of these traces (2023-11-14T22:13:20Z), nanoseconds.
BASE = 1_700_000_000_000_000_000


def sid() -> str:
    return f"{next(_ids):016x}"


def span(trace_id: str, span_id: str, parent: str | None, name: str, start_ms: float, end_ms: float, *,
         kind: str = "INTERNAL", error: str | None = None, attributes: dict[str, Any] | None = None,
         events: list[tuple[float, str, dict[str, Any]]] | None = None) -> dict[str, Any]:
    """A span whose status is OK, or ERROR with ``error`` as its message."""
    return otlp_build.span(trace_id, span_id, parent, name, start_ms, end_ms, kind=kind,
                           status="OK" if error is None else "ERROR", message=error, attrs=attributes,
                           events=events, t0=BASE)


def document(by_service: dict[str, list[dict[str, Any]]], resource_extra: dict[str, Any] | None = None) -> bytes:
    """One OTLP/JSON line: one resource per service."""
    return otlp_build.jsonl(otlp_build.by_service(by_service, resource_extra, version="1")).rstrip(b"\n")


def agent_trace(trace_id: str, *, name: str = "chat", service: str = "gateway", slow: float = 1.0,
                error: str | None = None, attr_value: Any = "x", events_name: str = "retry") -> bytes:
    """A gateway -> agent trace with two parallel tool calls, an LLM call, a cache miss and a retrieval."""
    root, agent, llm, t1, t2, cache, ret, db = (sid() for _ in range(8))
    gw = [
        span(trace_id, root, None, name, 0, 1000 * slow, kind="SERVER",
             attributes={"http.route": "/chat", "enduser.id": "u1"}),
        span(trace_id, agent, root, "call agent", 5, 990 * slow, kind="CLIENT",
             attributes={"server.address": "agent.svc", "url.full": "http://agent.svc/run"}),
    ]
    ag = [
        span(trace_id, sid(), agent, "invoke_agent support", 10, 980 * slow, kind="SERVER",
             attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support"}),
        span(trace_id, cache, None, "GET", 12, 20, kind="CLIENT",
             attributes={"db.system": "redis", "server.address": "redis.svc", "cache.hit": False}),
        span(trace_id, ret, None, "retrieval docs", 22, 120, kind="CLIENT",
             attributes={"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "kb"}),
        span(trace_id, llm, None, "chat gpt-4o", 130, 130 + 700 * slow, kind="CLIENT", error=error,
             attributes={"gen_ai.operation.name": "chat", "gen_ai.system": "openai",
                         "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1200,
                         "gen_ai.usage.output_tokens": 80, "server.address": "api.openai.com",
                         "note": attr_value},
             events=[(140, events_name, {"attempt": 1})]),
        span(trace_id, t1, None, "execute_tool send_email", 840, 900, kind="INTERNAL",
             attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "send_email"}),
        span(trace_id, t2, None, "execute_tool lookup", 845, 950, kind="INTERNAL",
             attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup"}),
        span(trace_id, db, t2, "SELECT docs", 850, 940, kind="CLIENT",
             attributes={"db.system": "postgresql", "server.address": "pg.svc"}),
    ]
    agent_root = ag[0]["spanId"]
    for s in ag[1:]:
        s.setdefault("parentSpanId", agent_root)
    return document({service: gw, "agent": ag}, {"cloud.region": "eu-west-1"})


def build_store(tmp_path: Path, lines: list[bytes], name: str = "pics.duckdb") -> str:
    """Ingest ``lines`` (OTLP/JSON lines) into a new store; returns its path."""
    src = tmp_path / (name + ".jsonl")
    src.write_bytes(b"\n".join(lines) + b"\n")
    db = str(tmp_path / name)
    run_ingest(db, [str(src)])
    return db
