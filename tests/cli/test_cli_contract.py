"""CLI contract: every documented exit code, help on every command, query formats, no tracebacks."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import otlp_build
import pytest
from typer.main import get_command
from typer.testing import CliRunner

from fabric_trace.cli.app import app
from fabric_trace.errors import ExitCode

runner = CliRunner()
HEALTHY = Path(__file__).resolve().parents[2] / "fixtures" / "scenarios" / "healthy.jsonl"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("cli") / "c.duckdb")
    res = runner.invoke(app, ["trace", "ingest", str(HEALTHY), "--db", path])
    assert res.exit_code == 0
    return path


def _commands(group, prefix=()):  # type: ignore[no-untyped-def]
    for name, cmd in getattr(group, "commands", {}).items():
        yield (*prefix, name), cmd
        yield from _commands(cmd, (*prefix, name))


def test_every_command_has_help() -> None:
    root = get_command(app)
    for path, cmd in _commands(root):
        assert (cmd.help or "").strip(), f"fabric {' '.join(path)} has no help"
        res = runner.invoke(app, [*path, "--help"])
        assert res.exit_code == 0, path


def test_docs_name_every_exit_code() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "exit-codes.md").read_text()
    for code in ExitCode:
        assert f"| {int(code)} | {code.name} |" in doc, code


def test_usage_error_is_2(db: str) -> None:
    assert runner.invoke(app, ["report", "latency", "--db", db, "--by", "planet"]).exit_code == ExitCode.USAGE
    assert runner.invoke(app, ["query", "--db", db, "DELETE FROM span_store"]).exit_code == ExitCode.USAGE
    assert runner.invoke(app, ["report", "latency", "--db", db, "--nope"]).exit_code == ExitCode.USAGE
    assert runner.invoke(app, ["report", "latency", "--db", db, "--since", "yesterday-ish"]).exit_code == ExitCode.USAGE


def test_config_error_is_78(db: str, tmp_path: Path) -> None:
    bad = tmp_path / "fabric.toml"
    bad.write_text("[rolez]\nx = 1\n")
    res = runner.invoke(app, ["report", "latency", "--db", db, "--config", str(bad)])
    assert res.exit_code == ExitCode.CONFIG and "unknown section" in res.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[roles\n")
    res = runner.invoke(app, ["trace", "ingest", str(HEALTHY), "--db", str(tmp_path / "x.duckdb"), "--config", str(broken)])
    assert res.exit_code == ExitCode.CONFIG and "invalid TOML" in res.stderr


def test_query_formats(db: str) -> None:
    sql = "SELECT role, count(*) AS n FROM spans GROUP BY role ORDER BY role"
    as_json = json.loads(runner.invoke(app, ["query", sql, "--db", db, "--format", "json"]).stdout)
    assert isinstance(as_json, list) and set(as_json[0]) == {"role", "n"}
    as_csv = list(csv.reader(io.StringIO(runner.invoke(app, ["query", sql, "--db", db, "--format", "csv"]).stdout)))
    assert as_csv[0] == ["role", "n"] and len(as_csv) == len(as_json) + 1
    md = runner.invoke(app, ["query", sql, "--db", db, "--format", "markdown"]).stdout
    assert md.splitlines()[0].startswith("| role | n |")
    table = runner.invoke(app, ["query", sql, "--db", db])
    assert table.exit_code == 0 and "llm" in table.stdout and "row(s)" in table.stderr


def test_reports_on_stdout_summaries_on_stderr(db: str, tmp_path: Path) -> None:
    res = runner.invoke(app, ["trace", "ingest", str(HEALTHY), "--db", str(tmp_path / "s.duckdb")])
    assert res.stdout == "" and "new span" in res.stderr


def test_subprocess_entry_points(db: str) -> None:
    for cmd in (["fabric"], [sys.executable, "-m", "fabric_trace"]):
        exe = cmd if cmd[0] != "fabric" else [str(Path(sys.executable).parent / "fabric")]
        res = subprocess.run([*exe, "query", "SELECT count(*) AS n FROM traces", "--db", db, "--format", "json"],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout) == [{"n": 24}]
    res = subprocess.run([sys.executable, "-m", "fabric_trace", "--version"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.startswith("fabric ")


def test_hostile_span_names_never_reach_the_terminal_raw(tmp_path: Path) -> None:
    evil = "\x1b[2J\x1b]8;;http://evil\x07click\x1b]8;;\x07[link=http://evil]x[/link][/x]\u202eabc\x9b31m"
    f = otlp_build.write(tmp_path / "evil.jsonl", otlp_build.by_service({evil: [
        otlp_build.span("ab" * 16, "cd" * 8, None, evil, 1000, 2000, t0=0, unit=1,
                        attrs={"gen_ai.workflow.name": evil})]}))
    db = str(tmp_path / "e.duckdb")
    assert runner.invoke(app, ["trace", "ingest", str(f), "--db", db]).exit_code == 0
    for args in (["trace", "ls"], ["trace", "show", "ab" * 16], ["report", "latency"],
                 ["query", "SELECT name, service_name FROM spans"]):
        for fmt in ("table", "markdown", "csv", "json"):
            res = runner.invoke(app, [*args, "--db", db, "--format", fmt])
            assert res.exit_code == 0, (args, fmt, res.stderr)
            out = res.stdout + res.stderr
            assert not any(ord(c) < 32 and c not in "\n" for c in out), (args, fmt)
            assert not any(0x7F <= ord(c) <= 0x9F for c in out), (args, fmt)
            assert "\u202e" not in out
