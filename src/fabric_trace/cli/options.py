"""Options shared by every command, defined once."""

from __future__ import annotations

import sys

import typer

from fabric_trace.render.formats import OutputFormat
from fabric_trace.store.db import DEFAULT_LOCK_TIMEOUT, default_db_path

DbOption = typer.Option(
    None, "--db", envvar="FABRIC_DB", help="DuckDB file (default: $FABRIC_DB or ./fabric.duckdb)."
)
FormatOption = typer.Option(
    OutputFormat.table, "--format", "-f", case_sensitive=False, help="Output format: table, json, csv, markdown."
)
ConfigOption = typer.Option(
    None, "--config", envvar="FABRIC_CONFIG",
    help="Config file (default: ./fabric.toml, or [tool.fabric] in ./pyproject.toml).",
)
LockTimeoutOption = typer.Option(
    DEFAULT_LOCK_TIMEOUT, "--lock-timeout", min=0.0,
    help="Seconds to wait for another fabric process holding the database.",
)


#: Table width when stdout is not a terminal.
PIPE_WIDTH = 200


def db_path(value: str | None) -> str:
    """The database path from ``--db`` / ``$FABRIC_DB`` / the default."""
    return value or default_db_path()


def write_stdout(text: str) -> None:
    """Write a rendered report to stdout (with a final newline)."""
    out = sys.stdout
    out.write(text if text.endswith("\n") else text + "\n")
    out.flush()


WorkflowOption = typer.Option(None, "--workflow", "-w", help="Only these workflows (repeatable).")
SinceOption = typer.Option(None, "--since", help="Traces starting at/after: ISO 8601, 30m/2h/7d ago, or epoch ns.")
UntilOption = typer.Option(None, "--until", help="Traces starting before: ISO 8601, 30m/2h/7d ago, or epoch ns.")
WhereOption = typer.Option(
    None, "--where", help="Span filter on normalized columns, e.g. \"role = llm and provider = openai\"; "
    "a trace is kept when one of its spans matches.")


def report_filter(workflow: list[str] | None, since: str | None, until: str | None, where: str | None):  # type: ignore[no-untyped-def]
    """Build the shared :class:`~fabric_trace.filters.ReportFilter` from the options."""
    from fabric_trace.filters import ReportFilter, parse_time, parse_where

    return ReportFilter(
        workflows=tuple(workflow or ()), since_ns=parse_time(since), until_ns=parse_time(until),
        where=parse_where(where, prefix="s."),
    )


def write_report(report, fmt) -> None:  # type: ignore[no-untyped-def]
    """Render a report to stdout: coloured when stdout is a terminal and the format is table."""
    from rich.console import Console

    from fabric_trace.render.formats import OutputFormat, render, render_to_console

    if fmt == OutputFormat.table and sys.stdout.isatty():
        render_to_console(report, Console(highlight=False))
        return
    # Not a terminal: lay tables out wide rather than folding cells (grep-able logs).
    write_stdout(render(report, fmt, width=PIPE_WIDTH))
