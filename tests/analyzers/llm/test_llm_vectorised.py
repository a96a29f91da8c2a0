"""The llm kernel's SQL path (calls without layers to fold, pricing in SQL) gives exactly the rows
of the per-call rules it replaced: :func:`~fabric_trace.analyzers.llm.calls.fold_calls` over every
candidate and :func:`~fabric_trace.analyzers.llm.cost.price_call` per call (docs/llm.md)."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from fabric_trace.analyzers.contract import Partition, _kernel_database
from fabric_trace.analyzers.llm import derive as llm_derive
from fabric_trace.analyzers.llm.calls import fold_calls
from fabric_trace.analyzers.llm.config import parse_config
from fabric_trace.analyzers.llm.cost import price_call, price_calls
from fabric_trace.config import Config
from fabric_trace.fixtures_gen import Scenario, generate, write_otlp_jsonl
from fabric_trace.service import run_ingest

CAPTURES = Path(__file__).resolve().parents[2] / "data" / "captures"


def _reference(con: duckdb.DuckDBPyConnection, settings: Any) -> list[dict[str, Any]]:
    """The calls as the per-call Python computed them before (fold every candidate, price each)."""
    cur = con.execute(llm_derive._candidates_sql())
    cols = [d[0] for d in cur.description]
    cands = []
    for row in cur.fetchall():
        c = dict(zip(cols, row))
        c["model"] = c.pop("model_reported") or c["request_model"]
        cands.append(c)
    spans = con.execute("SELECT trace_id, span_id, parent_span_id FROM span_store").fetchall()
    http = {(t, p): n for t, p, n in con.execute(llm_derive._HTTP_SQL).fetchall()}
    calls = fold_calls(spans, cands, http)
    for c in calls:
        c["cost_usd"], c["cost_note"], c["price_model"] = price_call(settings, c)
    calls.sort(key=lambda c: (c["trace_id"], c["start_ns"], c["span_id"]))
    return [{f.name: c.get(f.name) for f in llm_derive._CALL_SCHEMA} for c in calls]


def _store(tmp_path: Path, files: list[Path]) -> str:
    db = str(tmp_path / "s.duckdb")
    run_ingest(db, [str(f) for f in files], analyze=False)
    return db


@pytest.mark.parametrize("source", ["generated", "captures"])
def test_calls_equal_the_per_call_rules(tmp_path: Path, source: str) -> None:
    if source == "generated":  # layers of every convention, retries, errors, unreported cached tokens
        gen = generate(Scenario(traces=60, seed=11, retry_rate=0.4, missing_cached_tokens_rate=0.3,
                                openinference_fraction=0.3, openllmetry_fraction=0.3, error_rate=0.15,
                                max_session_turns=3))
        write_otlp_jsonl(gen, tmp_path / "g.jsonl")
        files = [tmp_path / "g.jsonl"]
    else:
        files = sorted(CAPTURES.glob("*.otlp.jsonl"))
    store = duckdb.connect(_store(tmp_path, files), read_only=True)
    part = Partition(store.sql("SELECT * FROM span_store").to_arrow_table(),
                     store.sql("SELECT * FROM resources").to_arrow_table())
    store.close()
    settings = parse_config(Config())
    con = _kernel_database(part)
    try:
        want = _reference(con, settings)
        got = llm_derive._calls(con, settings).to_pylist()
    finally:
        con.close()
    assert len(want) > 10
    assert got == want
    if source == "captures":
        assert any(len(c["span_ids"]) > 1 for c in want)  # layers were folded (both paths ran)


def test_price_calls_equal_price_call() -> None:
    cfg = Config(data={"llm": {"prices": [
        {"model": "flat-model", "per_call": 0.003},
        {"model": "in-only", "input": 0.7},
        {"model": "gpt-4o", "provider": "azure", "input": 2.2, "cached_input": 1.1, "output": 9.9},
        {"model": "both", "input": 1.3, "output": 5.7, "per_call": 0.0001},
    ]}})
    settings = parse_config(cfg)
    rng = random.Random(7)
    models = [None, "gpt-4o", "GPT-4o-2024-08-06", "openai/gpt-4o-mini", "flat-model", "in-only", "both",
              "no-such-model", "claude-3-5-sonnet-20241022", "text-embedding-3-small"]
    providers = [None, "openai", "openai.chat", "azure", "anthropic", "nobody"]
    tokens = [None, 0, 1, 17, 999, 123_456, 10**9 + 7]
    rows = []
    for model, request_model, provider in itertools.product(models, models[:4], providers):
        for _ in range(3):
            rows.append({"model": model, "request_model": request_model, "provider": provider,
                         "input_tokens": rng.choice(tokens), "output_tokens": rng.choice(tokens),
                         "cached_input_tokens": rng.choice(tokens), "k": len(rows)})
    con = duckdb.connect()
    con.register("_calls", pa.Table.from_pylist(rows, schema=pa.schema([
        ("model", pa.string()), ("request_model", pa.string()), ("provider", pa.string()),
        ("input_tokens", pa.int64()), ("output_tokens", pa.int64()), ("cached_input_tokens", pa.int64()),
        ("k", pa.int64())])))
    got = price_calls(con, settings, "_calls", "k").to_pylist()
    assert [g["k"] for g in got] == list(range(len(rows)))
    for row, g in zip(rows, got):
        assert (g["cost_usd"], g["cost_note"], g["price_model"]) == price_call(settings, row), row
    assert {g["cost_note"] for g in got} >= {None, "model not reported", "input tokens not reported",
                                             "output tokens not reported"}
