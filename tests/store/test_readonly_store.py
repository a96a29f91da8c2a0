"""Reading commands never change the database (issue 18, item 7).

``trace ls``, ``trace show``, every report, ``query`` and ``gate`` on a
database open it read-only: the file's bytes are the same afterwards, they
work on a read-only file system, a stale store is analysed in memory (with a
note saying how to store the results), readers never lock each other out, and
a damaged file is not modified before the command fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fabric_trace.cli.app import app

runner = CliRunner()
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
HEALTHY = FIXTURES / "scenarios" / "healthy.jsonl"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fabric(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ro") / "a.duckdb"
    code, _, err = fabric("trace", "ingest", str(HEALTHY), "--db", str(path))
    assert code == 0, err
    return path


@pytest.fixture(scope="module")
def stale(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ro") / "s.duckdb"
    code, _, err = fabric("trace", "ingest", str(HEALTHY), "--db", str(path), "--no-analyze")
    assert code == 0, err
    return path


def _a_trace(db: Path) -> str:
    code, out, err = fabric("query", "SELECT trace_id FROM traces ORDER BY trace_id LIMIT 1", "--db", str(db),
                            "--format", "json")
    assert code == 0, err
    return json.loads(out)[0]["trace_id"]


def _reading_commands(db: Path, trace_id: str) -> list[list[str]]:
    d = ["--db", str(db)]
    return [
        ["trace", "ls", *d], ["trace", "show", trace_id, *d], ["report", "latency", *d],
        ["report", "latency", "--adjust-skew", "auto", *d], ["report", "trust", *d],
        ["report", "locality", *d], ["query", "SELECT count(*) FROM findings", *d],
        ["gate", "--baseline", str(db), "--candidate", str(db)],
        ["trace", "export", trace_id, "--format", "jaeger", "--out", "-", *d],
        ["report", "html", "--out", "-", *d], ["diff", str(db), str(db)], ["report", "llm", *d],
        ["session", "ls", *d],
    ]


@pytest.mark.parametrize("which", ["analysed", "stale"])
def test_reading_commands_leave_the_file_unchanged(which: str, request: pytest.FixtureRequest,
                                                   tmp_path: Path) -> None:
    db = tmp_path / "copy.duckdb"
    shutil.copyfile(request.getfixturevalue(which), db)
    trace_id = _a_trace(db)
    before = sha(db)
    for args in _reading_commands(db, trace_id):
        code, out, err = fabric(*args)
        assert code == 0, (args, err)
        assert out.strip(), args
        assert sha(db) == before, f"fabric {' '.join(args[:2])} changed the database"
        assert not Path(f"{db}.wal").exists()
        if which == "stale" and args[0] not in ("gate", "diff"):
            assert "fabric analyze --db" in err and "not changed" in err, args


def test_stale_store_is_analysed_in_memory_like_a_stored_analysis(stale: Path, tmp_path: Path) -> None:
    db = tmp_path / "copy.duckdb"
    shutil.copyfile(stale, db)
    code, in_memory, err = fabric("report", "latency", "--db", str(db), "--format", "json")
    assert code == 0 and "have not been computed yet" in err
    code, _, err = fabric("analyze", "--db", str(db))
    assert code == 0, err
    code, stored, err = fabric("report", "latency", "--db", str(db), "--format", "json")
    assert code == 0 and "note:" not in err
    assert json.loads(in_memory) == json.loads(stored)
    # new data after the analysis: the note says traces were ingested since
    code, _, _ = fabric("trace", "ingest", str(FIXTURES / "scenarios" / "faults.jsonl"), "--db", str(db),
                        "--no-analyze")
    assert code == 0
    code, _, err = fabric("trace", "ls", "--db", str(db))
    assert code == 0 and "traces were ingested since" in err


def _hold(db: Path, read_only: bool) -> subprocess.Popen[str]:
    """A process that holds ``db`` open and says so on stdout."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import duckdb, sys
        con = duckdb.connect({str(db)!r}, read_only={read_only})
        print("holding", flush=True)
        sys.stdin.read()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
    return proc


def test_two_readers_of_a_stale_store_never_lock_each_other_out(stale: Path, tmp_path: Path) -> None:
    db = tmp_path / "copy.duckdb"
    shutil.copyfile(stale, db)
    holder = _hold(db, read_only=True)
    try:  # another reader holds the file: a report (which must analyse) does not wait for it
        for args in (["report", "latency"], ["trace", "ls"], ["query", "SELECT count(*) FROM traces"]):
            code, _, err = fabric(*args, "--db", str(db), "--lock-timeout", "0")
            assert code == 0, (args, err)
    finally:
        holder.communicate("")


def test_lock_message_names_the_process_holding_the_lock(analysed: Path) -> None:
    holder = _hold(analysed, read_only=False)  # a plain python process, not fabric
    try:
        code, _, err = fabric("trace", "ls", "--db", str(analysed), "--lock-timeout", "0")
        assert code == 75
        assert "locked by another process (PID" in err and "python" in err
        assert "fabric process" not in err
    finally:
        holder.communicate("")


def _read_only_dir(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A directory whose files cannot be written, even by root (a read-only tmpfs), or skip."""
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if os.geteuid() != 0:
        return mnt, lambda: os.chmod(mnt, 0o555), lambda: os.chmod(mnt, 0o755)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("running as root without permission to mount a read-only tmpfs")

    def seal() -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)

    def undo() -> None:
        subprocess.run(["umount", str(mnt)], check=False)

    return mnt, seal, undo


@pytest.mark.parametrize("which", ["analysed", "stale"])
def test_reading_commands_work_on_a_read_only_file_system(which: str, request: pytest.FixtureRequest,
                                                          tmp_path: Path) -> None:
    mnt, seal, undo = _read_only_dir(tmp_path)
    try:
        db = mnt / "r.duckdb"
        shutil.copyfile(request.getfixturevalue(which), db)
        if os.geteuid() != 0:
            os.chmod(db, 0o444)
        seal()
        trace_id = _a_trace(db)
        before = sha(db)
        for args in _reading_commands(db, trace_id):
            code, out, err = fabric(*args)
            assert code == 0, (args, err)
        assert sha(db) == before
    finally:
        undo()


def test_a_truncated_database_is_not_modified(analysed: Path, tmp_path: Path) -> None:
    db = tmp_path / "cut.duckdb"
    data = analysed.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    before = sha(db)
    for args in (["trace", "ls"], ["report", "latency"], ["query", "SELECT count(*) FROM span_store"]):
        proc = subprocess.run([sys.executable, "-m", "fabric_trace", *args, "--db", str(db)],
                              capture_output=True, text=True)
        assert proc.returncode in (0, 74), (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert sha(db) == before, args
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.duckdb"]
