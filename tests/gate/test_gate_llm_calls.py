"""The gate counts model calls where the llm analyzer does: once per call across instrumentation layers.

``tests/data/captures/langchain-openai-layers`` is a real capture (README there) in which every model call
is reported by two layers: LangChain's ``ChatOpenAI`` span and the OpenAI SDK's ``ChatCompletion`` span,
both of role ``llm``. The gate's ``llm_calls`` and ``llm_tokens`` read the llm analyzer's ``llm_calls``
view (docs/llm.md, "One call, one row"), so they equal the view's per-trace figures and the program's own
log, not the number of ``llm`` spans (twice as many).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import pytest

from fabric_trace.gate import run_gate
from fabric_trace.gate.budgets import parse_gate_section
from fabric_trace.gate.checks import evaluate
from fabric_trace.gate.metrics import load_side
from fabric_trace.service import run_ingest

CAPTURE = Path(__file__).resolve().parents[1] / "data" / "captures" / "langchain-openai-layers"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    db = str(tmp_path_factory.mktemp("layers") / "layers.duckdb")
    run_ingest(db, [str(CAPTURE.with_suffix(".otlp.jsonl"))])
    return db


def test_gate_counts_each_call_once_as_the_llm_calls_view(store: str) -> None:
    truth = json.loads(CAPTURE.with_suffix(".truth.json").read_text())
    con = duckdb.connect(store, read_only=True)
    try:
        side = load_side(con, "baseline", store)
        view = con.execute("""
            SELECT t.trace_id, count(c.trace_id), coalesce(sum(coalesce(c.input_tokens, 0)
                                                                + coalesce(c.output_tokens, 0)), 0)
            FROM traces t LEFT JOIN llm_calls c USING (trace_id) GROUP BY t.trace_id ORDER BY t.trace_id
        """).fetchall()
        llm_spans = dict(con.execute("SELECT trace_id, count(*) FROM spans WHERE role = 'llm' GROUP BY ALL"
                                     ).fetchall())
    finally:
        con.close()
    assert side.llm_calls is not None
    assert side.llm_calls.tolist() == [float(r[1]) for r in view]
    assert side.llm_tokens.tolist() == [float(r[2]) for r in view]
    # the program's own log: two model calls per request, each with the tokens the server charged
    logged: dict[str, list[int]] = {}
    for c in truth["llm_calls"]:
        logged.setdefault(c["trace_id"], []).append(c["input_tokens"] + c["output_tokens"])
    assert {r[0]: (r[1], r[2]) for r in view} == {t: (len(v), sum(v)) for t, v in logged.items()}
    # both layers are there: twice as many llm spans as calls (what the gate used to count)
    assert all(llm_spans[r[0]] == 2 * r[1] for r in view)


def test_a_budget_on_calls_sees_the_view_count(store: str, tmp_path: Path) -> None:
    calls = 8  # 4 requests x 2 model calls; 16 llm spans
    cfg = tmp_path / "fabric.toml"
    cfg.write_text(f"""
[gate]
defaults = false
[[gate.budget]]
metric = "llm_calls"
stat = "total"
max = {calls}
pooled = true
""")
    run = run_gate([store], [store], config_path=str(cfg))
    got = {r.stat: (r.verdict, r.candidate) for r in run.outcome.results if r.metric == "llm_calls"}
    assert got == {"total": ("pass", calls)}
    cfg.write_text(cfg.read_text().replace(f"max = {calls}", f"max = {calls - 1}"))
    run = run_gate([store], [store], config_path=str(cfg))
    assert [r.verdict for r in run.outcome.results if r.stat == "total"] == ["fail"]


def test_without_the_llm_tables_the_checks_say_so(store: str) -> None:
    con = duckdb.connect(store, read_only=True)
    try:
        side = load_side(con, "baseline", store)
    finally:
        con.close()
    bare = replace(side, capabilities=side.capabilities - {"llm"}, llm_calls=None,
                   llm_tokens=np.zeros(side.n))
    outcome = evaluate(parse_gate_section({}), bare, replace(bare, label="candidate"))
    assert not [r for r in outcome.results if r.metric in ("llm_calls", "llm_tokens")]
    assert "llm_calls checks skipped: the llm analyzer's tables are missing on the baseline and candidate" \
        in outcome.notes
    configured = parse_gate_section({"regression": [{"metric": "llm_tokens", "stat": "mean", "pooled": True}]})
    results = evaluate(configured, bare, replace(bare, label="candidate")).results
    assert [(r.verdict, r.reason) for r in results if r.metric == "llm_tokens"] == [
        ("inconclusive", "cannot be computed: the llm analyzer's tables are missing on the baseline and candidate")]
