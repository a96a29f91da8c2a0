"""Helpers for the trust tests: hand-built OTLP traces, databases, and expectations from ground truth.

(No tests here; the name keeps it with the other trust test modules.)
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import otlp_build

from fabric_trace.analyzers.trust.config import DEFAULT_PRIVILEGED_TOOLS
from fabric_trace.fixtures_gen import GeneratedTraces, write_otlp_jsonl
from fabric_trace.fixtures_gen.topology import SERVICES
from fabric_trace.fixtures_gen.truth import GroundTruth
from fabric_trace.service import run_ingest
from fabric_trace.store import db as store

#: The time origin of these traces (2026-01-01T00:00:00Z), nanoseconds.
T0 = 1_767_225_600_000_000_000
MS = otlp_build.MS


@dataclass
class Svc:
    """One instrumented service (an OTLP resource)."""

    name: str
    namespace: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def attributes(self) -> dict[str, Any]:
        out: dict[str, Any] = {"service.name": self.name}
        if self.namespace:
            out["service.namespace"] = self.namespace
        out.update(self.extra)
        return out


@dataclass
class S:
    """One hand-made span. Times are milliseconds after :data:`T0`."""

    span_id: str
    parent: str | None
    name: str
    svc: Svc
    start: float
    end: float
    kind: str = "INTERNAL"
    attrs: dict[str, Any] = field(default_factory=dict)
    error: bool = False


class TraceSet:
    """Collects hand-made traces and writes them as one OTLP/JSON lines file."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, S]] = []

    def trace(self, trace_id: str, spans: Iterable[S]) -> None:
        for s in spans:
            self.spans.append((trace_id, s))

    def write(self, path: Path) -> Path:
        by_svc: dict[str, tuple[Svc, list[dict[str, Any]]]] = {}
        for trace_id, s in self.spans:
            span = otlp_build.span(trace_id, s.span_id, s.parent, s.name, s.start, s.end, kind=s.kind,
                                   status="ERROR" if s.error else None, attrs=s.attrs, t0=T0)
            key = json.dumps(s.svc.attributes(), sort_keys=True)
            by_svc.setdefault(key, (s.svc, []))[1].append(span)
        return otlp_build.write(path, otlp_build.document(
            *(otlp_build.resource_spans(svc.attributes(), {"test": spans}) for svc, spans in by_svc.values())))


def tid(n: int) -> str:
    """A trace id."""
    return f"{n:032x}"


def sid(n: int) -> str:
    """A span id."""
    return f"{n:016x}"


def ingest(db_path: str | Path, files: list[Path], config: Path | None = None) -> None:
    """Ingest and analyse (refresh every analyzer) through the library entry point."""
    run_ingest(str(db_path), [str(f) for f in files], config_path=str(config) if config else None)


def build(tmp_path: Path, ts: TraceSet, config: str | None = None) -> duckdb.DuckDBPyConnection:
    """Write, ingest and analyse ``ts``; returns an open connection."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = None
    if config is not None:
        cfg = tmp_path / "fabric.toml"
        cfg.write_text(config, encoding="utf-8")
    db = tmp_path / "t.duckdb"
    ingest(db, [ts.write(tmp_path / "t.jsonl")], cfg)
    return store.connect(str(db))


def build_generated(tmp_path: Path, gen: GeneratedTraces) -> duckdb.DuckDBPyConnection:
    """Write a generated data set as OTLP/JSON lines, ingest and analyse it."""
    path = tmp_path / "gen.jsonl"
    write_otlp_jsonl(gen, str(path))
    db = tmp_path / "gen.duckdb"
    ingest(db, [path])
    return store.connect(str(db))


def trust_findings(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every trust finding as a dict (details parsed)."""
    cur = con.execute("SELECT kind, severity, trace_id, span_id, message, details FROM findings "
                      "WHERE analyzer = 'trust' ORDER BY kind, trace_id, span_id")
    cols = [d[0] for d in cur.description]
    rows = [dict(zip(cols, r)) for r in cur.fetchall()]
    for r in rows:
        r["details"] = json.loads(r["details"]) if r["details"] else None
    return rows


def keyset(rows: Iterable[dict[str, Any]], *kinds: str) -> set[tuple[str, str, str, str]]:
    """(kind, severity, trace_id, span_id) of the rows of ``kinds`` (all if none given)."""
    return {(r["kind"], r["severity"], r["trace_id"], r["span_id"]) for r in rows if not kinds or r["kind"] in kinds}


# -- expectations from the generator's ground truth ---------------------------------------------
NAMESPACE = {name: ns for _, name, ns, _ in SERVICES}


def privileged(tool: str) -> bool:
    """The documented default privileged-tool rule."""
    return any(fnmatch.fnmatchcase(tool.lower(), p) for p in DEFAULT_PRIVILEGED_TOOLS)


@dataclass
class Expected:
    """Exact expected trust findings of a generated data set."""

    keys: set[tuple[str, str, str, str]] = field(default_factory=set)
    anonymous: dict[str, tuple[str, set[str]]] = field(default_factory=dict)
    """trace id -> (severity, span ids the finding may hang on: the workflow's actions)."""
    untrusted: set[tuple[str, str]] = field(default_factory=set)
    """(trace id, tool span id) of untrusted_input_to_privileged_tool."""


def expected_from_truth(truth: GroundTruth) -> Expected:
    """Derive every trust finding from the ground truth, by the documented rules."""
    exp = Expected()
    for tr in truth.traces:
        executions: list[tuple[str, Any]] = []  # (span id, tool execution) incl. failed first attempts
        retried = {r.retry_span_id: r.failed_span_id for r in tr.retries if r.operation == "execute_tool"}
        for te in tr.tool_executions:
            if te.span_id is None:
                continue
            executions.append((te.span_id, te))
            if te.span_id in retried:
                executions.append((retried[te.span_id], te))
        actions: set[str] = set()
        n_priv = 0
        for span_id, te in executions:
            priv = privileged(te.tool_name)
            if te.verdict == "unguarded":
                exp.keys.add(("unguarded_tool_call", "high" if priv else "medium", tr.trace_id, span_id))
                if priv and tr.workflow == "support-agent":
                    # a retrieval always precedes the chat that asked for the tool
                    exp.untrusted.add((tr.trace_id, span_id))
            elif te.verdict == "denied_executed":
                exp.keys.add(("denied_tool_executed", "critical", tr.trace_id, span_id))
            if priv:
                actions.add(span_id)
                n_priv += 1
        for ec in tr.external_calls:
            if ec.purpose == "model":
                exp.keys.add(("provider_egress", "info", tr.trace_id, ec.span_id))
            else:
                exp.keys.add(("external_egress", "medium", tr.trace_id, ec.span_id))
                actions.add(ec.span_id)
                if ec.scheme == "http":
                    exp.keys.add(("plaintext_crossing", "high", tr.trace_id, ec.span_id))
        for rc in tr.remote_calls:
            if NAMESPACE[rc.caller_service] != NAMESPACE[rc.callee_service]:
                # every service-to-service hop of the generator uses http:// inside the cluster
                exp.keys.add(("plaintext_crossing", "low", tr.trace_id, rc.client_span_id))
        if tr.anonymous and actions:
            exp.anonymous[tr.trace_id] = ("high" if n_priv else "medium", actions)
    for trace_id, span_id in exp.untrusted:
        exp.keys.add(("untrusted_input_to_privileged_tool", "high", trace_id, span_id))
    return exp
