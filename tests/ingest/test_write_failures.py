"""Write-side failures (issue 18, items 8 and 9): named as what they are, never blamed on the input.

* a fault in fabric's writer is an internal error (exit 70), the file is not
  quarantined and the fault's text never becomes a quarantine reason;
* a database I/O error is exit 74 and names its cause first;
* a full disk during the analysis after an ingest prints what was committed,
  names "no space left on device", and leaves the store readable.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import duckdb
import otlp_build
import pytest
from typer.testing import CliRunner

from fabric_trace.cli.app import app
from fabric_trace.errors import ExitCode
from fabric_trace.ingest.writer import StoreWriter

runner = CliRunner()
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
DEMO = FIXTURES / "demo" / "demo.jsonl"
FAULTS = FIXTURES / "scenarios" / "faults.jsonl"


def quarantine_reasons(db: Path) -> list[str]:
    return [r["reason"] for r in otlp_build.rows(str(db), "SELECT reason FROM quarantine")]


@pytest.mark.parametrize("fault", [ValueError("boom in the writer"), RecursionError("maximum recursion depth exceeded"),
                                   TypeError("unhashable type: 'list'")])
def test_a_fault_in_the_writer_is_internal_and_never_blamed_on_the_input(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: Exception) -> None:
    db = tmp_path / "w.duckdb"
    assert runner.invoke(app, ["trace", "ingest", str(FAULTS), "--db", str(db)]).exit_code == 0
    before = quarantine_reasons(db)

    def broken(self: StoreWriter, batch: object) -> object:
        raise fault

    monkeypatch.setattr(StoreWriter, "prepare", broken)
    res = runner.invoke(app, ["trace", "ingest", str(DEMO), "--db", str(db), "--batch-spans", "500"])
    assert res.exit_code == ExitCode.INTERNAL, res.stderr
    assert res.stderr.startswith("internal error: writing ") and "bug in fabric" in res.stderr
    assert "Traceback" not in res.stderr
    assert quarantine_reasons(db) == before  # nothing of the input was blamed
    con = duckdb.connect(str(db), read_only=True)
    try:  # the file was rolled back
        assert con.execute("SELECT count(*) FROM files WHERE path = ?", [str(DEMO)]).fetchone() == (0,)
    finally:
        con.close()


def test_a_database_io_error_while_writing_is_exit_74_with_its_cause_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "io.duckdb"

    def full(self: StoreWriter, batch: object) -> object:
        raise duckdb.IOException('Could not write file "x.duckdb.wal": No space left on device')

    monkeypatch.setattr(StoreWriter, "prepare", full)
    res = runner.invoke(app, ["trace", "ingest", str(DEMO), "--db", str(db)])
    assert res.exit_code == ExitCode.DB_ERROR, res.stderr
    assert f"error: writing {DEMO} failed: no space left on device" in res.stderr
    assert "free disk space" in res.stderr
    assert quarantine_reasons(db) == []


def test_a_failed_analysis_still_reports_what_was_committed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fabric_trace.analyzers.latency import derive as latency

    db = tmp_path / "a.duckdb"

    def full(*args: object, **kwargs: object) -> None:
        raise duckdb.IOException('Could not write file "a.duckdb.wal": No space left on device')

    monkeypatch.setattr(latency, "iter_trace_metrics", full)
    res = runner.invoke(app, ["trace", "ingest", str(DEMO), "--db", str(db), "--json"])
    assert res.exit_code == ExitCode.DB_ERROR, res.stderr
    assert json.loads(res.stdout)["spans_ingested"] == 5656
    lines = res.stderr.splitlines()
    assert "5,656 new span(s)" in lines[0]
    assert lines[1].startswith("error: computing the derived tables failed: no space left on device")
    assert "5,656 new span(s) are committed" in lines[1]
    assert lines[2] == f"hint: free disk space, then run: fabric analyze --db {db}"


@pytest.fixture()
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 6 MiB tmpfs (root only), or skip."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_disk_full_during_the_analysis_names_the_cause_and_leaves_the_store_readable(small_disk: Path) -> None:
    db = small_disk / "full.duckdb"
    res = runner.invoke(app, ["trace", "ingest", str(DEMO), "--db", str(db)])
    assert res.exit_code == ExitCode.DB_ERROR, res.stderr
    assert "no space left on device" in res.stderr.lower()
    assert "Current transaction is aborted" not in res.stderr
    committed = "5,656 new span(s)" in res.stderr  # the ingest itself fitted: it is reported
    res = runner.invoke(app, ["query", "SELECT count(*) AS n FROM span_store", "--db", str(db), "--format", "json"])
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)[0]["n"] == (5656 if committed else 0)
    res = runner.invoke(app, ["trace", "ls", "--db", str(db), "--format", "csv"])
    assert res.exit_code == 0, res.stderr
