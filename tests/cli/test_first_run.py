"""First run and everyday use: --db validation, paste-able hints, help, colour, errors in plain words."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from pathlib import Path

import duckdb
import pytest
from typer.main import get_command
from typer.testing import CliRunner

from conftest import SAMPLES
from terminal import ANSI, run_in_terminal

from fabric_trace.cli.app import app
from fabric_trace.cli.command import plain_error
from fabric_trace.errors import ExitCode
from fabric_trace.store import db as store

runner = CliRunner()
OTEL = str(SAMPLES / "generated" / "otel.otlp.jsonl")
HEALTHY = str(Path(__file__).resolve().parents[2] / "fixtures" / "scenarios" / "healthy.jsonl")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _not_duckdb_files(folder: Path) -> dict[str, Path]:
    files = {
        "csv": folder / "notes.csv",
        "json": folder / "notes.json",
        "sqlite": folder / "app.sqlite",
        "empty": folder / "empty.duckdb",
        "text-named-duckdb": folder / "text.duckdb",
    }
    files["csv"].write_text("a,b\n1,2\n")
    files["json"].write_text('{"traces": []}\n')
    con = sqlite3.connect(files["sqlite"])
    con.execute("CREATE TABLE t (a)")
    con.execute("INSERT INTO t VALUES (1)")
    con.commit()
    con.close()
    files["empty"].write_bytes(b"")
    files["text-named-duckdb"].write_text("hello\n" * 100)
    return files


@pytest.mark.parametrize("command", [
    ["trace", "ingest", OTEL], ["trace", "ls"], ["report", "latency"], ["query", "SELECT 1"], ["analyze"],
    ["trace", "show", "abc"],
])
def test_a_db_that_is_not_duckdb_is_refused_and_left_untouched(tmp_path: Path, command: list[str]) -> None:
    for kind, path in _not_duckdb_files(tmp_path).items():
        before = _sha(path)
        listing = sorted(p.name for p in tmp_path.iterdir())
        res = runner.invoke(app, [*command, "--db", str(path)])
        assert res.exit_code == ExitCode.USAGE, (kind, command, res.stderr)
        assert "not a DuckDB database" in res.stderr and "untouched" in res.stderr, (kind, res.stderr)
        assert "Traceback" not in res.stderr and "extension" not in res.stderr.lower()
        assert _sha(path) == before, kind
        assert sorted(p.name for p in tmp_path.iterdir()) == listing, kind  # no .wal, no new file


def test_a_directory_as_db_is_refused(tmp_path: Path) -> None:
    res = runner.invoke(app, ["trace", "ingest", OTEL, "--db", str(tmp_path)])
    assert res.exit_code == ExitCode.USAGE and "is a directory" in res.stderr


def test_no_database_is_created_when_every_input_is_missing(tmp_path: Path) -> None:
    db = tmp_path / "new.duckdb"
    res = runner.invoke(app, ["trace", "ingest", str(tmp_path / "missing.jsonl"), "--db", str(db)])
    assert res.exit_code == ExitCode.NO_INPUT and "does not exist" in res.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.md").write_text("not a trace")
    res = runner.invoke(app, ["trace", "ingest", str(empty), "--db", str(db)])
    assert res.exit_code == ExitCode.NO_INPUT and "no trace files" in res.stderr
    res = runner.invoke(app, ["trace", "ingest", str(tmp_path / "nothing-*.jsonl"), "--db", str(db)])
    assert res.exit_code == ExitCode.NO_INPUT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_store_connections_never_load_or_install_extensions(tmp_path: Path) -> None:
    con = store.connect(str(tmp_path / "x.duckdb"))
    try:
        settings = dict(con.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('autoinstall_known_extensions', 'autoload_known_extensions')").fetchall())
    finally:
        con.close()
    assert settings == {"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}


def test_a_real_duckdb_file_is_still_accepted(tmp_path: Path) -> None:
    db = tmp_path / "fresh.duckdb"
    assert runner.invoke(app, ["trace", "ingest", OTEL, "--db", str(db)]).exit_code == 0
    assert store.is_duckdb_file(db)
    assert runner.invoke(app, ["trace", "ls", "--db", str(db)]).exit_code == 0


# -- hints are paste-able and carry --db ------------------------------------------------------

def test_hints_carry_the_db_that_was_given(tmp_path: Path) -> None:
    db = str(tmp_path / "my traces.duckdb")
    res = runner.invoke(app, ["trace", "ls", "--db", db])
    assert res.exit_code == ExitCode.DB_ERROR
    assert f"fabric trace ingest PATH --db '{db}'" in res.stderr
    assert runner.invoke(app, ["trace", "ingest", OTEL, "--db", db]).exit_code == 0
    res = runner.invoke(app, ["trace", "show", "ffffffff", "--db", db])
    assert res.exit_code == ExitCode.USAGE
    assert f"fabric trace ls --db '{db}'" in res.stderr


def test_hints_without_db_when_the_default_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FABRIC_DB", raising=False)
    res = runner.invoke(app, ["trace", "ls"])
    assert res.exit_code == ExitCode.DB_ERROR
    assert "fabric trace ingest PATH" in res.stderr and "--db" not in res.stderr.split("hint:")[1]


# -- trace id prefixes -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def healthy_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("first") / "h.duckdb")
    assert runner.invoke(app, ["trace", "ingest", HEALTHY, "--db", path]).exit_code == 0
    return path


def test_an_ambiguous_prefix_lists_the_candidates(healthy_db: str) -> None:
    con = duckdb.connect(healthy_db, read_only=True)
    ids = [r[0] for r in con.execute("SELECT trace_id FROM traces ORDER BY trace_id").fetchall()]
    con.close()
    prefix = next(a[0] for a, b in zip(ids, ids[1:]) if a[0] == b[0])
    matching = [i for i in ids if i.startswith(prefix)]
    res = runner.invoke(app, ["trace", "show", prefix, "--db", healthy_db])
    assert res.exit_code == ExitCode.USAGE
    assert "ambiguous" in res.stderr and f"matches {len(matching)} traces" in res.stderr
    for candidate in matching[:10]:
        assert candidate in res.stderr
    if len(matching) > 10:
        assert f"and {len(matching) - 10} more" in res.stderr
    unique = next(i for i in ids if sum(j.startswith(i[:12]) for j in ids) == 1)
    res = runner.invoke(app, ["trace", "show", unique[:12], "--db", healthy_db, "--format", "json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["trace_id"] == unique


def test_an_unknown_trace_says_no_trace(healthy_db: str) -> None:
    res = runner.invoke(app, ["trace", "show", "zz", "--db", healthy_db])
    assert res.exit_code == ExitCode.USAGE and "no trace 'zz'" in res.stderr


# -- help, completion, errors ------------------------------------------------------------------

def _commands(group, prefix=()):  # type: ignore[no-untyped-def]
    for name, cmd in getattr(group, "commands", {}).items():
        yield (*prefix, name), cmd
        yield from _commands(cmd, (*prefix, name))


ALL_COMMANDS = [list(path) for path, _ in _commands(get_command(app))]


@pytest.mark.parametrize("path", [[], *ALL_COMMANDS], ids=lambda p: " ".join(p) or "fabric")
def test_dash_h_is_help_and_metavars_are_plain_words(path: list[str]) -> None:
    long = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
    short = runner.invoke(app, [*path, "-h"], env={"COLUMNS": "100"})
    assert long.exit_code == short.exit_code == 0
    assert short.stdout == long.stdout
    text = long.stdout
    assert not re.search(r"<[a-z][a-z ]*(\[[^]]*\])?>", text) and "list[" not in text, text  # <str>, <int range>
    assert not any("{" in line for line in text.splitlines() if line.startswith("Usage:"))


def test_argument_metavars() -> None:
    def usage(*args: str) -> str:
        return runner.invoke(app, [*args, "--help"]).stdout.splitlines()[0]

    assert usage("trace", "ingest") == "Usage: fabric trace ingest [OPTIONS] PATH..."
    assert usage("query") == "Usage: fabric query [OPTIONS] SQL"
    assert usage("trace", "show") == "Usage: fabric trace show [OPTIONS] TRACE_ID"
    assert usage("diff") == "Usage: fabric diff [OPTIONS] BASELINE CANDIDATE"
    help_text = runner.invoke(app, ["report", "latency", "--help"], env={"COLUMNS": "200"}).stdout
    for option in ("--db FILE", "--format FORMAT", "--where EXPR", "--since TIME", "--workflow NAME",
                   "--top N", "--lock-timeout SECONDS"):
        assert option in help_text, option


def test_where_help_documents_every_operator() -> None:
    text = " ".join(runner.invoke(app, ["report", "latency", "--help"], env={"COLUMNS": "300"}).stdout.split())
    for operator in ("= != < <= > >=", "~ (glob over the whole value, case-insensitive", "in (a, b)", "is null",
                     "is not null", "and, or, not"):
        assert operator in text, operator


def test_shell_completion_can_be_installed() -> None:
    res = runner.invoke(app, ["--help"])
    assert "--install-completion" in res.stdout and "--show-completion" in res.stdout
    res = runner.invoke(app, ["--show-completion", "bash"], env={"SHELL": "/bin/bash"})
    assert res.exit_code == 0 and "complete" in res.stdout and "fabric" in res.stdout.lower()


@pytest.mark.parametrize("args, expected", [
    (["report", "latency", "--format", "xml"], "'xml' is not one of"),
    (["trace", "ls", "--limit", "many"], "must be a whole number"),
    (["trace", "ls", "--limit", "0"], "must be at least 1"),
    (["trace", "ls", "--lock-timeout", "-1"], "must be at least 0"),
    (["--color", "rainbow", "trace", "ls"], "'rainbow' is not one of"),
])
def test_bad_values_are_reported_in_plain_words(args: list[str], expected: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == ExitCode.USAGE
    assert expected in res.stderr, res.stderr
    for wording in ("Value error", "Input should", "pydantic", "validation error"):
        assert wording not in res.stderr


def test_plain_error_rewrites() -> None:
    assert plain_error("Value error, 'x' is not one of 'a', 'b'.") == "'x' is not one of 'a', 'b'."
    assert plain_error("Input should be greater than or equal to 10") == "must be at least 10"
    assert plain_error("Input should be a valid integer, unable to parse string as an integer") == \
        "must be a whole number"
    assert plain_error("no such thing") == "no such thing"


# -- colour --------------------------------------------------------------------------------------

@pytest.mark.slow
def test_colour_follows_the_terminal_no_color_and_the_option(healthy_db: str) -> None:
    code, out = run_in_terminal(["trace", "ls", "-n", "3", "--db", healthy_db], 120)
    assert code == 0 and ANSI.search(out), "a terminal gets colours by default"
    code, out = run_in_terminal(["trace", "ls", "-n", "3", "--db", healthy_db], 120, env={"NO_COLOR": "1"})
    assert code == 0 and not ANSI.search(out) and "Trace" in out
    code, out = run_in_terminal(["--color", "never", "trace", "ls", "-n", "3", "--db", healthy_db], 120)
    assert code == 0 and not ANSI.search(out)
    code, out = run_in_terminal(["--color", "always", "trace", "ls", "-n", "3", "--db", healthy_db], 120,
                                env={"NO_COLOR": "1"})
    assert code == 0 and ANSI.search(out), "--color always beats NO_COLOR"


def test_colour_always_into_a_pipe_and_never_by_default(healthy_db: str) -> None:
    res = runner.invoke(app, ["trace", "ls", "-n", "3", "--db", healthy_db])
    assert res.exit_code == 0 and "\x1b" not in res.stdout and "\x1b" not in res.stderr
    res = runner.invoke(app, ["--color", "always", "trace", "ls", "-n", "3", "--db", healthy_db])
    assert res.exit_code == 0 and "\x1b[" in res.stdout
    res = runner.invoke(app, ["--color", "always", "trace", "show", "nope", "--db", healthy_db])
    assert res.exit_code == ExitCode.USAGE and "\x1b[" in res.stderr
