"""Ctrl-C and kill -9 at known moments (issues 10 and 18, item 6).

The command runs as a real subprocess with ``FABRIC_TEST_PAUSE=POINT``: it
prints ``fabric-test-pause POINT`` on stderr and waits there, and the test
signals it only then (no sleeps racing the machine's load). Any number of
Ctrl-Cs at any of the points gives exit 130, one line on stderr, no traceback,
and a consistent store that a rerun completes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from fabric_trace.errors import ExitCode

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
INPUTS = [str(FIXTURES / "demo" / "demo.jsonl"), str(FIXTURES / "scenarios" / "faults.jsonl")]


def fabric(*args: str, pause: str | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "FABRIC_TEST_PAUSE"}
    if pause:
        env["FABRIC_TEST_PAUSE"] = pause
    return subprocess.Popen([sys.executable, "-m", "fabric_trace", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def run(*args: str) -> tuple[int, str, str]:
    proc = fabric(*args)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def wait_for_pause(proc: subprocess.Popen[str], point: str) -> None:
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert line.strip() == f"fabric-test-pause {point}", line


def consistent(db: Path) -> tuple[int, int]:
    """(spans, files) after checking that the spans equal the manifest's sum."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        spans, manifest, files = con.execute(
            "SELECT (SELECT count(*) FROM span_store), (SELECT coalesce(sum(spans_ingested), 0) FROM files), "
            "(SELECT count(*) FROM files)").fetchone()
    finally:
        con.close()
    assert spans == manifest
    return spans, files


@pytest.fixture(scope="module")
def total(tmp_path_factory: pytest.TempPathFactory) -> int:
    db = tmp_path_factory.mktemp("clean") / "clean.duckdb"
    code, out, err = run("trace", "ingest", *INPUTS, "--db", str(db), "--json")
    assert code == 0, err
    return json.loads(out)["spans_ingested"]


INGEST = ("trace", "ingest", *INPUTS, "--batch-spans", "500")


def test_ctrl_c_at_startup_exits_130_with_one_line(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    proc = fabric("trace", "ls", "--db", str(db), pause="startup")
    wait_for_pause(proc, "startup")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED and out == ""
    assert err.splitlines() == ["interrupted: stopped by Ctrl-C; the database is consistent "
                                "(an unfinished write was rolled back)"]


@pytest.mark.slow
@pytest.mark.parametrize("presses", [1, 3])
@pytest.mark.parametrize("point", ["startup", "ingest-batch", "commit", "analyze"])
def test_ctrl_c_during_an_ingest_exits_130_with_one_line_and_a_consistent_store(
        tmp_path: Path, point: str, presses: int, total: int) -> None:
    db = tmp_path / "t.duckdb"
    proc = fabric(*INGEST, "--db", str(db), pause=point)
    wait_for_pause(proc, point)
    for _ in range(presses):
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted: stopped by Ctrl-C"), err
    assert "Traceback" not in err and "Query interrupted" not in err and "aborted" not in err
    if point == "startup":
        assert not db.exists()  # nothing was opened
    else:
        spans, files = consistent(db)
        assert f"{files} file(s) committed in this run are kept" in err or point == "analyze"
        code, out, err = run("query", "SELECT count(*) AS n FROM traces", "--db", str(db), "--format", "json")
        assert code == 0, err  # readable; derived tables computed in memory if the analysis was cut
    code, out, err = run(*INGEST, "--db", str(db), "--json")
    assert code == 0, err
    assert consistent(db)[0] == total


@pytest.mark.slow
@pytest.mark.parametrize("presses", [1, 3])
def test_ctrl_c_in_a_reading_command_exits_130(tmp_path: Path, presses: int, total: int) -> None:
    db = tmp_path / "r.duckdb"
    code, _, err = run(*INGEST, "--db", str(db), "--no-analyze")
    assert code == 0, err
    for args in (("report", "latency"), ("trace", "ls"), ("query", "SELECT 1")):
        proc = fabric(*args, "--db", str(db), pause="read")
        wait_for_pause(proc, "read")
        for _ in range(presses):
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == ExitCode.INTERRUPTED, (args, err)
        assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert consistent(db)[0] == total


@pytest.mark.slow
@pytest.mark.parametrize("point", ["ingest-batch", "commit", "analyze"])
def test_kill_9_leaves_a_consistent_store_and_a_rerun_completes(tmp_path: Path, point: str, total: int) -> None:
    db = tmp_path / "k.duckdb"
    proc = fabric(*INGEST, "--db", str(db), pause=point)
    wait_for_pause(proc, point)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    consistent(db)
    code, _, err = run(*INGEST, "--db", str(db))
    assert code == 0, err
    assert consistent(db)[0] == total
