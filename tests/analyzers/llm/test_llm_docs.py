"""docs/llm.md is a contract: the views' columns and types, the attribute keys and the report's
JSON keys are pinned here to the code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from doc_tables import describe, doc_columns

from fabric_trace.analyzers.llm import derive
from fabric_trace.cli.app import app

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "llm.md").read_text()

CONTRACT: dict[str, list[tuple[str, str]]] = {
    "llm_calls": [
        ("trace_id", "VARCHAR"), ("span_id", "VARCHAR"), ("session_id", "VARCHAR"), ("user_id", "VARCHAR"),
        ("workflow", "VARCHAR"), ("service", "VARCHAR"), ("provider", "VARCHAR"), ("operation", "VARCHAR"),
        ("request_model", "VARCHAR"), ("model", "VARCHAR"), ("input_tokens", "BIGINT"), ("output_tokens", "BIGINT"),
        ("cached_input_tokens", "BIGINT"), ("reasoning_tokens", "BIGINT"), ("cost_usd", "DOUBLE"),
        ("cost_note", "VARCHAR"), ("price_model", "VARCHAR"), ("status_code", "VARCHAR"), ("error_type", "VARCHAR"),
        ("start_ns", "BIGINT"), ("duration_ns", "BIGINT"), ("ttft_ns", "BIGINT"), ("on_critical_path_ns", "BIGINT"),
        ("attempts", "BIGINT"), ("span_ids", "VARCHAR[]"),
    ],
    "session_turns": [
        ("session_id", "VARCHAR"), ("turn", "BIGINT"), ("trace_id", "VARCHAR"), ("workflow", "VARCHAR"),
        ("start_ns", "BIGINT"), ("end_ns", "BIGINT"), ("duration_ns", "BIGINT"), ("gap_ns", "BIGINT"),
        ("session_path_ns", "BIGINT"), ("spans", "BIGINT"), ("errors", "BIGINT"), ("llm_calls", "BIGINT"),
        ("cost_usd", "DOUBLE"), ("findings", "BIGINT"),
    ],
    "sessions": [
        ("session_id", "VARCHAR"), ("user_id", "VARCHAR"), ("traces", "BIGINT"), ("spans", "BIGINT"),
        ("start_ns", "BIGINT"), ("end_ns", "BIGINT"), ("duration_ns", "BIGINT"), ("llm_calls", "BIGINT"),
        ("input_tokens", "BIGINT"), ("output_tokens", "BIGINT"), ("cost_usd", "DOUBLE"),
        ("unpriced_calls", "BIGINT"), ("errors", "BIGINT"), ("findings", "BIGINT"), ("idle_ns", "BIGINT"),
    ],
}


@pytest.fixture(scope="module")
def db(healthy_store: str) -> str:
    return healthy_store


@pytest.mark.parametrize("view", sorted(CONTRACT))
def test_view_columns_and_types(db: str, view: str) -> None:
    assert describe(db, view) == CONTRACT[view]


@pytest.mark.parametrize("view", sorted(CONTRACT))
def test_view_documented_in_order(view: str) -> None:
    heading = f"### `{view}`" if view != "llm_calls" else "## `llm_calls`"
    assert doc_columns(DOC, heading) == [c for c, _ in CONTRACT[view]]


def test_attribute_keys_are_documented() -> None:
    for key in (*derive.REQUEST_MODEL_KEYS, *derive.REASONING_KEYS, *derive.TTFT_SECONDS_KEYS, *derive.TTFT_MS_KEYS,
                derive.TTFT_EVENT):
        assert f"`{key}`" in DOC, key


def test_report_json_keys_are_documented(db: str) -> None:
    res = CliRunner().invoke(app, ["report", "llm", "--db", db, "--format", "json"])
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    for key in data:
        assert f"`{key}`" in DOC, key
    for key in (*data["totals"], *data["groups"][0], *data["top_traces"][0], *data["top_sessions"][0]):
        assert f"`{key}`" in DOC or key in DOC, key


def test_session_json_keys_are_documented(db: str) -> None:
    data = json.loads(CliRunner().invoke(app, ["session", "ls", "--db", db, "--format", "json"]).stdout)
    sid = data["sessions"][0]["session_id"]
    show = json.loads(CliRunner().invoke(app, ["session", "show", sid, "--db", db, "--format", "json"]).stdout)
    section = DOC.split("## `fabric session ls`", 1)[1].split("\n## ", 1)[0]
    for obj in (data["sessions"][0], show["session"], show["turns"][0], show["calls"][0], show["path"][0]):
        for key in obj:
            assert f"`{key}`" in section, key
