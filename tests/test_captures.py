"""Real instrumentation captures (tests/data/captures/README.md) against the capturing program's own log.

For each convention, fabric's roles, sessions, users, LLM calls with their tokens, and trust findings
must match what the program recorded that it did, at precision and recall of at least 0.95.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from fabric_trace.cli.app import app

CAPTURES = Path(__file__).resolve().parent / "data" / "captures"
CONVENTIONS = sorted(p.name[: -len(".truth.json")] for p in CAPTURES.glob("*.truth.json"))
FLOOR = 0.95
TRUST_KINDS = ("unguarded_tool_call", "denied_tool_executed")


def pr(predicted: Counter, truth: Counter) -> tuple[float, float]:
    """Precision and recall of two multisets (1.0 when both are empty)."""
    hit = sum((predicted & truth).values())
    p = hit / sum(predicted.values()) if predicted else float(not truth)
    r = hit / sum(truth.values()) if truth else float(not predicted)
    return p, r


def scores(con: duckdb.DuckDBPyConnection, truth: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Precision and recall per aspect (see the module docstring)."""
    out: dict[str, tuple[float, float]] = {}
    # spans the program saw by id, and spans it knows only by trace and name (LangChain's callbacks
    # do not make their spans current); every span of fabric with one of those roles counts
    known_roles = sorted(set(truth["spans"].values()) | {r for _, _, r in truth["named_spans"]})
    if truth["spans"]:
        rows = con.execute("SELECT span_id, role FROM spans WHERE role IN (SELECT unnest(?))", [known_roles]).fetchall()
        want = Counter(truth["spans"].items())
    else:
        rows = con.execute("SELECT trace_id, name, role FROM spans WHERE role IN (SELECT unnest(?))",
                           [known_roles]).fetchall()
        want = Counter(tuple(x) for x in truth["named_spans"])
    out["roles"] = pr(Counter(rows), want)
    sessions = con.execute("SELECT DISTINCT trace_id, session_id FROM spans WHERE session_id IS NOT NULL").fetchall()
    out["sessions"] = pr(Counter(sessions), Counter((t["trace_id"], t["session_id"]) for t in truth["traces"]))
    users = con.execute("SELECT DISTINCT trace_id, user_id FROM spans WHERE user_id IS NOT NULL").fetchall()
    out["users"] = pr(Counter(users), Counter((t["trace_id"], t["user_id"]) for t in truth["traces"] if t["user_id"]))
    # a model call is a row of the llm analyzer's llm_calls (one per call across instrumentation layers:
    # langchain-openai-layers reports each call twice), embeddings apart
    calls = con.execute("SELECT trace_id, input_tokens, output_tokens FROM llm_calls "
                        "WHERE operation IS DISTINCT FROM 'embeddings'").fetchall()
    out["llm_calls_tokens"] = pr(Counter(calls), Counter((c["trace_id"], c["input_tokens"], c["output_tokens"])
                                                         for c in truth["llm_calls"]))
    if truth.get("embedding_calls"):
        emb = con.execute("SELECT trace_id, input_tokens FROM spans WHERE role = 'embedding'").fetchall()
        out["embedding_calls"] = pr(Counter(emb), Counter((c["trace_id"], c["input_tokens"])
                                                          for c in truth["embedding_calls"]))
    # a finding is the tool call it names: (kind, trace, tool); each request calls distinct tools
    found = con.execute("SELECT kind, trace_id, details->>'tool_name' FROM findings "
                        "WHERE analyzer = 'trust' AND kind IN (SELECT unnest(?))", [list(TRUST_KINDS)]).fetchall()
    out["trust_findings"] = pr(Counter(found), Counter((f["kind"], f["trace_id"], f["tool"]) for f in truth["findings"]))
    spans = con.execute("SELECT kind, span_id FROM findings WHERE analyzer = 'trust' AND kind IN (SELECT unnest(?))",
                        [list(TRUST_KINDS)]).fetchall()
    if all(f["span_id"] for f in truth["findings"]):  # and the very span, where the program saw it
        out["trust_finding_spans"] = pr(Counter(spans), Counter((f["kind"], f["span_id"]) for f in truth["findings"]))
    return out


@pytest.fixture(scope="module", params=CONVENTIONS)
def capture(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    name = request.param
    db = str(tmp_path_factory.mktemp(name) / "c.duckdb")
    res = CliRunner().invoke(app, ["trace", "ingest", str(CAPTURES / f"{name}.otlp.jsonl"), "--db", db])
    assert res.exit_code == 0, res.output
    truth = json.loads((CAPTURES / f"{name}.truth.json").read_text())
    con = duckdb.connect(db, read_only=True)
    yield name, con, truth
    con.close()


def test_every_convention_is_captured() -> None:
    assert {"openllmetry", "openinference", "otel-genai-old", "otel-genai-new", "vercel-ai", "llamaindex",
            "langgraph", "langchain-openinference"} <= set(CONVENTIONS)
    readme = (CAPTURES / "README.md").read_text()
    for name in CONVENTIONS:
        assert f"`{name}`" in readme
        truth = json.loads((CAPTURES / f"{name}.truth.json").read_text())
        for lib, version in truth["libraries"].items():
            assert f"{lib} {version}" in readme, (name, lib)


def test_capture_matches_the_programs_own_log(capture) -> None:
    name, con, truth = capture
    assert truth["llm_calls"] and truth["tool_calls"] and truth["findings"], "the log records real work"
    got = scores(con, truth)
    low = {k: v for k, v in got.items() if min(v) < FLOOR}
    assert not low, f"{name}: precision/recall below {FLOOR}: {low}"


def test_conflicting_evidence_is_queryable(capture) -> None:
    name, con, truth = capture
    rows = con.execute("SELECT span_id, role, rival_role FROM role_conflicts").fetchall()
    for span_id, role, rival in rows:
        assert role != rival
        if span_id in truth["spans"]:
            assert truth["spans"][span_id] == role  # the evidence fabric chose is the program's truth


def test_parallel_tool_calls_overlap_on_the_critical_path(capture) -> None:
    """Tool calls run in threads: the critical path takes at most one of two concurrent siblings."""
    name, con, truth = capture
    tools = {t["span_id"] for t in truth["tool_calls"] if t["span_id"]}
    bad = con.execute(
        """
        SELECT a.span_id, b.span_id FROM span_store a JOIN span_store b
          ON a.trace_id = b.trace_id AND a.parent_span_id = b.parent_span_id AND a.span_id < b.span_id
         AND a.start_ns < b.end_ns AND b.start_ns < a.end_ns
        JOIN span_metrics ma ON ma.trace_id = a.trace_id AND ma.span_id = a.span_id
        JOIN span_metrics mb ON mb.trace_id = b.trace_id AND mb.span_id = b.span_id
        WHERE a.span_id IN (SELECT unnest(?)) AND b.span_id IN (SELECT unnest(?))
          AND ma.on_critical_path_ns + mb.on_critical_path_ns > greatest(a.end_ns, b.end_ns) - least(a.start_ns, b.start_ns)
        """, [sorted(tools), sorted(tools)]).fetchall()
    assert bad == []
