"""The store: creation, schema version, lock contention, read-only queries."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import duckdb
import pytest

from fabric_trace.errors import DatabaseBusy, DatabaseError, NotADatabase, SchemaError, UsageError
from fabric_trace.service import run_query
from fabric_trace.store import db as store


def test_connect_creates_schema_and_views(db_path: str) -> None:
    con = store.connect(db_path)
    names = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    con.close()
    assert {"span_store", "resources", "scopes", "files", "quarantine", "fabric_meta"} <= names
    assert {"spans", "span_events", "span_links", "manifest"} <= views


def test_other_schema_version_is_refused(db_path: str) -> None:
    con = store.connect(db_path)
    con.execute("UPDATE fabric_meta SET value = '999' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(SchemaError, match="schema version 999"):
        store.connect(db_path)


def test_foreign_duckdb_file_is_refused(db_path: str) -> None:
    con = duckdb.connect(db_path)
    con.execute("CREATE TABLE t (x INT)")
    con.close()
    with pytest.raises(SchemaError, match="not a fabric one"):
        store.connect(db_path)


def test_garbage_file_is_refused_and_left_untouched(tmp_path) -> None:
    p = tmp_path / "junk.duckdb"
    p.write_bytes(b"this is not a database" * 100)
    with pytest.raises(NotADatabase, match="not a DuckDB database"):
        store.connect(str(p))
    assert p.read_bytes() == b"this is not a database" * 100


def test_read_only_missing_db(tmp_path) -> None:
    with pytest.raises(DatabaseError, match="does not exist"):
        store.connect(str(tmp_path / "nope.duckdb"), read_only=True)


def test_second_writer_waits_then_reports_busy(db_path: str) -> None:
    store.connect(db_path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({db_path!r})
            print("locked", flush=True)
            time.sleep(30)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        t0 = time.monotonic()
        with pytest.raises(DatabaseBusy, match=r"locked by another process \(PID \d+: [^)]*python"):
            store.connect(db_path, lock_timeout=0.6)
        assert time.monotonic() - t0 >= 0.5
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM span_store",
        "DROP TABLE files",
        "CREATE TABLE x (a INT)",
        "INSERT INTO fabric_meta VALUES ('a', 'b')",
        "SELECT 1; SELECT 2",
        "COPY (SELECT 1) TO '/tmp/fabric_escape.csv'",
        "ATTACH '/tmp/other.duckdb'",
        "SELECT * FROM sqlite_scan('/tmp/x.db', 't')",
        "SELECT * FROM iceberg_scan('/tmp/x')",
        "SELECT * FROM read_xlsx('/tmp/x.xlsx')",
        "SELECT * FROM postgres_query('host=x', 'SELECT 1')",
        "SELECT * FROM read_parquet('/tmp/x.parquet')",
        "INSTALL sqlite",
        "LOAD sqlite",
    ],
)
def test_query_is_read_only(db_path: str, sql: str) -> None:
    store.connect(db_path).close()
    with pytest.raises(UsageError):
        run_query(db_path, sql)


def test_query_refusals_exit_2_and_never_download_an_extension(db_path: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from fabric_trace.cli.app import app

    store.connect(db_path).close()
    home = tmp_path / "home"
    home.mkdir()
    res = CliRunner().invoke(app, ["query", "SELECT * FROM sqlite_scan('/tmp/x.db', 't')", "--db", db_path],
                             env={"HOME": str(home)})
    assert res.exit_code == 2, res.stderr
    assert "never installs or loads extensions" in res.stderr and "INSTALL" not in res.stderr
    assert not any(home.rglob("*"))  # no extension directory was created


def test_query_cannot_read_files(db_path: str) -> None:
    store.connect(db_path).close()
    with pytest.raises(UsageError, match="SQL error"):
        run_query(db_path, "SELECT * FROM read_csv('/etc/passwd')")


def test_query_returns_rows(db_path: str) -> None:
    store.connect(db_path).close()
    cols, rows = run_query(db_path, "SELECT key, value FROM fabric_meta WHERE key = 'schema_version'")
    assert cols == ["key", "value"]
    assert rows == [("schema_version", store.SCHEMA_VERSION)]
