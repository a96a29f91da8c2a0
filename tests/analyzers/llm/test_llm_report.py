"""``fabric report llm``: every format, every ``--by``, figures equal to sums computed from the
generator's ground truth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fabric_trace.cli.app import app
from fabric_trace.fixtures_gen import Scenario, generate, write_otlp_jsonl
from fabric_trace.service import run_ingest


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, str]:
    root = tmp_path_factory.mktemp("llmreport")
    gen = generate(Scenario(traces=30, seed=9, retry_rate=0.2, openinference_fraction=0.3, openllmetry_fraction=0.3))
    write_otlp_jsonl(gen, root / "g.jsonl")
    db = str(root / "g.duckdb")
    run_ingest(db, [str(root / "g.jsonl")])
    return gen, db


def _run(*args: str) -> Any:
    return CliRunner().invoke(app, ["report", "llm", *args])


@pytest.mark.parametrize("by", ["model", "provider", "workflow", "operation", "service", "request_model"])
def test_json_groups_add_up_to_the_ground_truth(corpus: tuple[Any, str], by: str) -> None:
    gen, db = corpus
    res = _run("--db", db, "--format", "json", "--by", by)
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    calls = [c for t in gen.truth.traces for c in t.llm_calls]
    ok = [c for c in calls if c.status == "ok"]
    assert data["by"] == by and data["totals"]["calls"] == len(calls)
    assert data["totals"]["errors"] == len(calls) - len(ok) > 0
    assert data["totals"]["input_tokens"] == sum(c.input_tokens for c in ok)
    assert data["totals"]["output_tokens"] == sum(c.output_tokens for c in ok if c.operation == "chat")
    assert sum(g["calls"] for g in data["groups"]) == len(calls)
    assert sum(g["input_tokens"] or 0 for g in data["groups"]) == data["totals"]["input_tokens"]
    assert data["totals"]["unpriced_calls"] == len(calls) - len(ok)  # failed calls report no tokens
    assert data["totals"]["cost_usd"] == pytest.approx(sum(g["cost_usd"] or 0 for g in data["groups"]), abs=1e-8)
    if by == "model":
        assert {g["key"] for g in data["groups"]} >= {"gpt-4o-mini-2024-07-18", "text-embedding-3-small"}


def test_top_traces_are_ordered_by_cost(corpus: tuple[Any, str]) -> None:
    _, db = corpus
    data = json.loads(_run("--db", db, "--format", "json", "--top", "3").stdout)
    costs = [t["cost_usd"] for t in data["top_traces"]]
    assert len(costs) == 3 and costs == sorted(costs, reverse=True)
    assert len(data["top_sessions"]) == 3


@pytest.mark.parametrize("fmt", ["table", "csv", "markdown"])
def test_every_format(corpus: tuple[Any, str], fmt: str) -> None:
    _, db = corpus
    res = _run("--db", db, "--format", fmt)
    assert res.exit_code == 0, res.stderr
    assert "gpt-4o-mini-2024-07-18" in res.stdout


def test_bad_by_is_a_usage_error(corpus: tuple[Any, str]) -> None:
    _, db = corpus
    res = _run("--db", db, "--by", "colour")
    assert res.exit_code == 2 and "--by must be one of" in res.stderr


def test_filters_select_traces(corpus: tuple[Any, str]) -> None:
    gen, db = corpus
    wf = gen.truth.traces[0].workflow
    data = json.loads(_run("--db", db, "--format", "json", "--workflow", wf).stdout)
    want = sum(len(t.llm_calls) for t in gen.truth.traces if t.workflow == wf)
    assert data["totals"]["calls"] == want


def test_no_calls(tmp_path: Path) -> None:
    src = tmp_path / "e.jsonl"
    src.write_text('{"resourceSpans": [{"resource": {}, "scopeSpans": [{"scope": {}, "spans": [{"traceId": '
                   '"0af7651916cd43dd8448eb211c80319c", "spanId": "1000000000000001", "name": "x", "kind": 1, '
                   '"startTimeUnixNano": "1", "endTimeUnixNano": "2"}]}]}]}\n')
    db = str(tmp_path / "e.duckdb")
    run_ingest(db, [str(src)])
    res = _run("--db", db)
    assert res.exit_code == 0 and "no LLM calls" in res.stdout + res.stderr
    data = json.loads(_run("--db", db, "--format", "json").stdout)
    assert data["totals"] == {"calls": 0, "traces": 1} and data["groups"] == []
