"""``fabric query``: one read-only SQL statement against the store.

The store is only read (:func:`fabric_trace.service.open_for_reading`),
external access (files, network, ATTACH, COPY TO, extensions) is switched off and locked, and only a single SELECT-like statement
is accepted, so a query can neither modify the database nor touch files.
"""

from __future__ import annotations

from typing import Any

import duckdb

from fabric_trace.errors import DatabaseError, UsageError
from fabric_trace.store import db as store

_ALLOWED = {"SELECT", "EXPLAIN"}


def _statement_type(st: Any) -> str:
    t = getattr(st, "type", None)
    name = getattr(t, "name", None) or str(t)
    return name.upper().replace("STATEMENTTYPE.", "").replace("_STATEMENT", "")


def run_read_only(con: duckdb.DuckDBPyConnection, sql: str, *,
                  max_rows: int | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run ``sql`` on ``con`` (a store opened for reading, see :func:`fabric_trace.service.open_for_reading`);
    returns (column names, rows). The connection is hardened first (no files, network or extensions)."""
    store.harden_read_only(con)
    return execute_read_only(con, sql, max_rows=max_rows)


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
