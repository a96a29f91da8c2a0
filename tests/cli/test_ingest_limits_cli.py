"""Ingest limits set on the command line (docs/cli.md, "Limits")."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
from typer.testing import CliRunner

from fabric_trace.cli.app import app

runner = CliRunner()
T0 = 1_767_225_600 * 10**9


def _line(trace: int, attr_bytes: int = 0) -> bytes:
    span = {"traceId": f"{trace:032x}", "spanId": f"{trace:016x}", "name": "s",
            "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 1000)}
    if attr_bytes:
        span["attributes"] = [{"key": "big", "value": {"stringValue": "x" * attr_bytes}}]
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode() + b"\n"


def _quarantine(db: Path) -> list[tuple[str, str]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return [(r[0], r[1]) for r in con.execute("SELECT location, reason FROM quarantine").fetchall()]
    finally:
        con.close()


def test_max_line_mb_quarantines_a_longer_line_and_loads_the_rest(tmp_path: Path) -> None:
    src = tmp_path / "long.jsonl"
    src.write_bytes(_line(1) + _line(2, attr_bytes=3 << 20) + _line(3))
    small = tmp_path / "small.duckdb"
    res = runner.invoke(app, ["trace", "ingest", str(src), "--db", str(small), "--max-line-mb", "2", "--json",
                              "--no-analyze"])
    assert res.exit_code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["spans_ingested"] == 2 and summary["records_rejected"] == 1
    [(where, reason)] = _quarantine(small)
    assert "line 2" in where and f"exceeds max_line_bytes {2 << 20}" in reason and "skipped unread" in reason
    default = tmp_path / "default.duckdb"  # 64 MiB by default: the line loads (its long value is cut, a repair)
    res = runner.invoke(app, ["trace", "ingest", str(src), "--db", str(default), "--json", "--no-analyze"])
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["spans_ingested"] == 3


def test_max_line_mb_must_be_positive(tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    src.write_bytes(_line(1))
    res = runner.invoke(app, ["trace", "ingest", str(src), "--db", str(tmp_path / "x.duckdb"), "--max-line-mb", "0"])
    assert res.exit_code == 2
    assert not (tmp_path / "x.duckdb").exists()
