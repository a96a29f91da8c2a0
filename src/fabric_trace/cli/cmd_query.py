"""``fabric query``."""

from __future__ import annotations

from typing import Optional

import typer

from fabric_trace.cli.errors import guarded, notifier, stderr_console
from fabric_trace.cli.options import DbOption, FormatOption, LakeOption, LockTimeoutOption, db_path, write_rows
from fabric_trace.render.formats import OutputFormat
from fabric_trace.service import run_lake_query, run_query


def query_command(
    sql: str = typer.Argument(..., metavar="SQL", help="One read-only SQL statement (SELECT) over the documented views."),
    db: Optional[str] = DbOption,
    lake: Optional[str] = LakeOption,
    fmt: OutputFormat = FormatOption,
    lock_timeout: float = LockTimeoutOption,
) -> None:
    """Run ad-hoc read-only SQL against the database (views: docs/schema.md)."""
    err = stderr_console()
    with guarded(err):
        if lake is not None:
            cols, rows = run_lake_query(lake, sql)
        else:
            cols, rows = run_query(db_path(db), sql, lock_timeout=lock_timeout, notify=notifier(err))
        write_rows(cols, rows, fmt)
        err.print(f"{len(rows):,} row(s)")
