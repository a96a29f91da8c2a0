"""``fabric trace ls`` and ``fabric trace show``."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from fabric_trace.browse import list_traces, load_trace, span_detail, span_report, trace_report
from fabric_trace.cli.color import use_color
from fabric_trace.cli.errors import guarded, notifier, stderr_console
from fabric_trace.cli.options import (
    ConfigOption, DbOption, FormatOption, LockTimeoutOption, SinceOption, UntilOption, WhereOption,
    WorkflowOption, db_path, terminal_width, write_renderables, write_report,
)
from fabric_trace.cli.reporting import emit_report
from fabric_trace.render.detail import record_view, trace_view
from fabric_trace.render.formats import OutputFormat
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
    emit_report(lambda con, flt: list_traces(con, flt, limit), fmt, db=db, config=config,
                lock_timeout=lock_timeout, workflow=workflow, since=since, until=until, where=where)


def show_command(
    trace_id: str = typer.Argument(..., metavar="TRACE_ID", help="Trace id (or a unique prefix)."),
    span: Optional[str] = typer.Option(None, "--span", "-s", metavar="SPAN_ID",
                                       help="Show this one span whole (id or a unique prefix): every field, "
                                       "attribute, event and link."),
    db: Optional[str] = DbOption,
    fmt: OutputFormat = FormatOption,
    max_rows: int = typer.Option(2000, "--max-rows", min=10, metavar="N",
                                 help="Spans shown before the middle is elided."),
    config: Optional[str] = ConfigOption,
    lock_timeout: float = LockTimeoutOption,
) -> None:
    """Show one trace: what failed (status, exception), the tree with the critical path, LLM calls, findings."""
    err = stderr_console()
    with guarded(err):
        with open_analyzed(db_path(db), config, lock_timeout=lock_timeout,
                           notify=notifier(err)) as con:
            if span is not None:
                report = span_report(span_detail(con, trace_id, span))
                trace = None
            else:
                trace = load_trace(con, trace_id)
                report = trace_report(trace)
        if fmt != OutputFormat.table:
            write_report(report, fmt)
            return
        width = terminal_width()
        styled = use_color(sys.stdout)
        if trace is None:
            parts = record_view(report, width=width, styled=styled)
        else:
            parts = trace_view(trace, width=width, styled=styled, max_rows=max_rows)
        write_renderables(parts, width)
