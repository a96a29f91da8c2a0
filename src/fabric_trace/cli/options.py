"""Options shared by every command, defined once."""

from __future__ import annotations

import shlex
import shutil
import sys
from typing import Any

import typer

from fabric_trace.cli.color import console_options, use_color
from fabric_trace.render.formats import OutputFormat
from fabric_trace.store.db import DEFAULT_DB, DEFAULT_LOCK_TIMEOUT, default_db_path

DbOption = typer.Option(
    None, "--db", envvar="FABRIC_DB", metavar="FILE", help="DuckDB file (default: $FABRIC_DB or ./fabric.duckdb)."
)
FormatOption = typer.Option(
    OutputFormat.table, "--format", "-f", case_sensitive=False, metavar="FORMAT",
    help="Output format: table, json, csv, markdown."
)
LakeOption = typer.Option(
    None, "--lake", metavar="DIR",
    help="Read a Parquet lake analysed by 'fabric analyze --engine spark' instead of --db (docs/lake.md).",
)
ConfigOption = typer.Option(
    None, "--config", envvar="FABRIC_CONFIG", metavar="FILE",
    help="Config file (default: ./fabric.toml, or [tool.fabric] in ./pyproject.toml).",
)
LockTimeoutOption = typer.Option(
    DEFAULT_LOCK_TIMEOUT, "--lock-timeout", min=0.0, metavar="SECONDS",
    help="Seconds to wait while another process is writing the database.",
)


#: The database the running command uses (set by :func:`db_path`), for paste-able hints.
_db_in_use: list[str] = []


def open_source(db: str | None, lake: str | None, config: str | None, lock_timeout: float,
                adjust_skew: str | None = None, *, notify: Any = None) -> Any:
    """The analysed data a report reads: the lake at ``lake`` (its derived tables must be fresh), or the
    database, only read (stale derived tables computed in memory; ``notify`` is told so)."""
    from fabric_trace.service import open_analyzed, open_lake_analyzed

    if lake is not None:
        return open_lake_analyzed(lake, config, adjust_skew=adjust_skew)
    return open_analyzed(db_path(db), config, lock_timeout=lock_timeout, adjust_skew=adjust_skew, notify=notify)


def db_path(value: str | None) -> str:
    """The database path from ``--db`` / ``$FABRIC_DB`` / the default."""
    path = value or default_db_path()
    _db_in_use[:] = [path]
    return path


def fabric_command(*words: str, db: str | None = None) -> str:
    """A fabric command line to paste into a shell, carrying ``--db`` unless it is the default.

    ``db`` defaults to the database of the running command (:func:`db_path`).
    """
    db = db if db is not None else (_db_in_use[0] if _db_in_use else None)
    argv = ["fabric", *words]
    if db and db != DEFAULT_DB:
        argv += ["--db", db]
    return shlex.join(argv)


def write_stdout(text: str) -> None:
    """Write a rendered report to stdout (with a final newline)."""
    out = sys.stdout
    out.write(text if text.endswith("\n") else text + "\n")
    out.flush()


WorkflowOption = typer.Option(None, "--workflow", "-w", metavar="NAME", help="Only these workflows (repeatable).")
SinceOption = typer.Option(None, "--since", metavar="TIME",
                           help="Traces starting at/after: ISO 8601, 30m/2h/7d ago, or epoch ns.")
UntilOption = typer.Option(None, "--until", metavar="TIME",
                           help="Traces starting before: ISO 8601, 30m/2h/7d ago, or epoch ns.")
WhereOption = typer.Option(
    None, "--where", metavar="EXPR",
    help="Span filter on normalized columns, e.g. \"role = llm and model ~ 'gpt-4*'\"; a trace is kept when one "
    "of its spans matches. Operators: = != < <= > >= (compare), ~ (glob over the whole value, case-insensitive: "
    "* any text, ? one character, [abc] one of), in (a, b), is null, is not null; and, or, not, parentheses. "
    "Columns and rules: docs/cli.md#filters.")


def report_filter(workflow: list[str] | None, since: str | None, until: str | None, where: str | None):  # type: ignore[no-untyped-def]
    """Build the shared :class:`~fabric_trace.filters.ReportFilter` from the options."""
    from fabric_trace.filters import parse_time, parse_where
    from fabric_trace.model import ReportFilter

    return ReportFilter(
        workflows=tuple(workflow or ()), since_ns=parse_time(since), until_ns=parse_time(until),
        where=parse_where(where, prefix="s."),
    )


def terminal_width() -> int | None:
    """Columns of the terminal stdout writes to (``$COLUMNS`` wins); ``None`` when stdout is not a terminal."""
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size((80, 24)).columns


def stdout_console(width: int | None):  # type: ignore[no-untyped-def]
    """A rich console on stdout, ``width`` wide (``None``: as wide as the content), colours per ``--color``."""
    from rich.console import Console

    from fabric_trace.render.formats import NATURAL_WIDTH

    return Console(highlight=False, width=width or NATURAL_WIDTH, soft_wrap=width is None,
                   **console_options(sys.stdout))


def write_report(report, fmt) -> None:  # type: ignore[no-untyped-def]
    """Render a report to stdout.

    ``table`` is fitted to the terminal's width when stdout is a terminal and laid
    out at full width for scripts otherwise; colours follow ``--color``.
    """
    from fabric_trace.render.formats import OutputFormat, render, render_to_console

    if fmt == OutputFormat.table:
        width = terminal_width()
        if use_color(sys.stdout):
            render_to_console(report, stdout_console(width), width=width)
        else:
            write_stdout(render(report, fmt, width=width))
        return
    write_stdout(render(report, fmt))


def write_renderables(parts, width: int | None) -> None:  # type: ignore[no-untyped-def]
    """Print rich renderables to stdout: styled per ``--color``, else as plain text (``width``: terminal)."""
    from fabric_trace.render.formats import renderables_to_text

    if use_color(sys.stdout):
        console = stdout_console(width)
        for part in parts:
            console.print(part)
    else:
        write_stdout(renderables_to_text(parts, width))


def write_rows(columns, rows, fmt) -> None:  # type: ignore[no-untyped-def]
    """Write an ad-hoc SQL result to stdout, like :func:`write_report`."""
    from fabric_trace.render.formats import OutputFormat, render_rows, render_rows_to_console

    if fmt == OutputFormat.table:
        width = terminal_width()
        if use_color(sys.stdout):
            render_rows_to_console(columns, rows, stdout_console(width), width=width)
        else:
            write_stdout(render_rows(columns, rows, fmt, width=width))
        return
    write_stdout(render_rows(columns, rows, fmt))
