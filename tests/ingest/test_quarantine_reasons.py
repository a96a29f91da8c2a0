"""Quarantine reasons name what is wrong with the input, never Python's internal wording (issue 18)."""

from __future__ import annotations

import json
from pathlib import Path

import otlp_build
import pytest
from typer.testing import CliRunner

from fabric_trace.cli.app import app
from fabric_trace.errors import ExitCode
from fabric_trace.ingest.batch import malformed_reason

runner = CliRunner()


def quarantine_reasons(db: Path) -> list[str]:
    return [r["reason"] for r in otlp_build.rows(str(db), "SELECT reason FROM quarantine")]


def test_malformed_reason_names_the_input_not_the_recursion_limit() -> None:
    assert malformed_reason(RecursionError("maximum recursion depth exceeded")) == \
        "malformed span (a value is nested too deeply)"
    assert malformed_reason(ValueError("bad")) == "malformed span (ValueError: bad)"


def test_recursion_error_text_never_becomes_a_quarantine_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A span whose decoding recurses too deeply is quarantined with a reason about the input."""
    from fabric_trace.ingest import otlp_json

    def deep(*args: object, **kwargs: object) -> object:
        raise RecursionError("maximum recursion depth exceeded while calling a Python object")

    monkeypatch.setattr(otlp_json, "_events", deep)
    line = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "x",
        "startTimeUnixNano": "1767225600000000000", "endTimeUnixNano": "1767225600000001000",
        "events": [{"name": "e", "timeUnixNano": "1767225600000000500"}]}]}]}]})
    src = tmp_path / "deep.jsonl"
    src.write_text(line + "\n")
    db = tmp_path / "d.duckdb"
    monkeypatch.setattr("fabric_trace.ingest.pipeline.decode_otlp_line", lambda *a: None)  # the general decoder
    res = runner.invoke(app, ["trace", "ingest", str(src), "--db", str(db)])
    assert res.exit_code == ExitCode.DATA, res.stderr  # nothing usable: the only span was rejected
    reasons = quarantine_reasons(db)
    assert reasons and all("recursion" not in r for r in reasons), reasons
    assert any("nested too deeply" in r for r in reasons)
