"""``fabric trace ls`` and ``fabric trace show``."""

from __future__ import annotations

import shutil
import sys
from typing import Optional

import typer
from rich.console import Console
from rich.text import Text

from fabric_trace.browse import list_traces, load_trace, trace_report
from fabric_trace.cli.errors import guarded, stderr_console
from fabric_trace.cli.options import (
    ConfigOption, DbOption, FormatOption, LockTimeoutOption, SinceOption, UntilOption, WhereOption,
    WorkflowOption, db_path, report_filter, write_report, write_stdout,
)
from fabric_trace.render.formats import OutputFormat
from fabric_trace.render.sanitize import safe_text
from fabric_trace.render.tree import render_trace_tree, render_trace_tree_text
from fabric_trace.service import open_analyzed


def ls_command(
    db: Optional[str] = DbOption,
    fmt: OutputFormat = FormatOption,
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many traces."),
    workflow: Optional[list[str]] = WorkflowOption,
    since: Optional[str] = SinceOption,
    until: Optional[str] = UntilOption,
    where: Optional[str] = WhereOption,
    config: Optional[str] = ConfigOption,
    lock_timeout: float = LockTimeoutOption,
) -> None:
    """List recent traces: root, workflow, start, duration, spans, errors, services."""
    err = stderr_console()
    with guarded(err):
        flt = report_filter(workflow, since, until, where)
        with open_analyzed(db_path(db), config, lock_timeout=lock_timeout) as con:
            report = list_traces(con, flt, limit)
        write_report(report, fmt)


def show_command(
    trace_id: str = typer.Argument(..., metavar="TRACE_ID", help="Trace id (or a unique prefix)."),
    db: Optional[str] = DbOption,
    fmt: OutputFormat = FormatOption,
    max_rows: int = typer.Option(2000, "--max-rows", min=10, help="Spans shown before the middle is elided."),
    config: Optional[str] = ConfigOption,
    lock_timeout: float = LockTimeoutOption,
) -> None:
    """Show one trace as a tree/waterfall: durations, self time, services, roles, errors; critical path marked."""
    err = stderr_console()
    with guarded(err):
        with open_analyzed(db_path(db), config, lock_timeout=lock_timeout) as con:
            trace = load_trace(con, trace_id)
        if fmt != OutputFormat.table:
            write_report(trace_report(trace), fmt)
            return
        width = shutil.get_terminal_size((120, 40)).columns
        kwargs = dict(critical=trace["critical"], self_ns=trace["self_ns"], width=width, max_rows=max_rows)
        if sys.stdout.isatty():
            Console(highlight=False).print(render_trace_tree(trace["spans"], **kwargs))
        else:
            write_stdout(render_trace_tree_text(trace["spans"], **kwargs))
        for f in trace["findings"]:
            err.print(Text(f"{f['severity']}: {f['analyzer']}/{f['kind']}: {safe_text(f['message'], None)}",
                           style="yellow"))
