"""``fabric query``: one read-only SQL statement against the store.

The connection is opened read-only, external access (files, network, ATTACH,
COPY TO) is switched off and locked, and only a single SELECT-like statement
is accepted, so a query can neither modify the database nor touch files.
"""

from __future__ import annotations

from typing import Any

import duckdb

from fabric_trace import interrupts
from fabric_trace.errors import DatabaseError, UsageError
from fabric_trace.store import db as store

_ALLOWED = {"SELECT", "EXPLAIN"}


def _statement_type(st: Any) -> str:
    t = getattr(st, "type", None)
    name = getattr(t, "name", None) or str(t)
    return name.upper().replace("STATEMENTTYPE.", "").replace("_STATEMENT", "")


def run_read_only(db_path: str, sql: str, *, lock_timeout: float = store.DEFAULT_LOCK_TIMEOUT,
                  max_rows: int | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run ``sql`` read-only; returns (column names, rows)."""
    ensure_fresh(db_path, lock_timeout)
    con = store.connect(db_path, read_only=True, lock_timeout=lock_timeout)
    try:
        interrupts.pause_point("read")
        store.harden_read_only(con)
        return execute_read_only(con, sql, max_rows=max_rows)
    finally:
        con.close()


def execute_read_only(con: duckdb.DuckDBPyConnection, sql: str, *,
                      max_rows: int | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Check that ``sql`` is one SELECT-like statement and run it on a hardened connection."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise UsageError(f"SQL error: {exc}") from None
    if len(statements) != 1:
        raise UsageError(f"fabric query takes exactly one SQL statement, got {len(statements)}")
    kind = _statement_type(statements[0])
    if kind not in _ALLOWED:
        raise UsageError(f"fabric query is read-only: {kind} statements are not allowed",
                         hint="use SELECT (or EXPLAIN) over the documented views (docs/schema.md)")
    try:
        cur = con.execute(sql)
        cols = [d[0] for d in (cur.description or [])]
        rows = cur.fetchmany(max_rows) if max_rows else cur.fetchall()
    except (duckdb.PermissionException, duckdb.InvalidInputException,
            duckdb.CatalogException, duckdb.BinderException, duckdb.ParserException,
            duckdb.ConversionException, duckdb.NotImplementedException) as exc:
        text = str(exc)
        if "Please try installing" in text:  # DuckDB's advice does not apply here
            text = text[:text.index("Please try installing")].rstrip() + " fabric query never installs or loads extensions."
        raise UsageError(f"SQL error: {text}",
                         hint="query the documented views (docs/schema.md); files, network and extensions are off"
                         ) from None
    except duckdb.Error as exc:
        raise DatabaseError(f"query failed: {exc}") from None
    return cols, rows


def ensure_fresh(db_path: str, lock_timeout: float) -> None:
    """Recompute derived tables first if the data changed since they were computed."""
    from fabric_trace.analyzers.engine import is_stale, refresh
    from fabric_trace.config import load_config

    config = load_config()
    con = store.connect(db_path, read_only=True, lock_timeout=lock_timeout)
    try:
        stale = is_stale(con, config)
    finally:
        con.close()
    if stale:
        con = store.connect(db_path, lock_timeout=lock_timeout)
        try:
            refresh(con, config)
        finally:
            con.close()
