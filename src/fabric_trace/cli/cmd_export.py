"""``fabric trace export``: traces as Perfetto, speedscope or Jaeger UI files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from fabric_trace.cli.errors import guarded, notifier, stderr_console
from fabric_trace.cli.options import (
    ConfigOption, DbOption, LockTimeoutOption, SinceOption, UntilOption, WhereOption, WorkflowOption, db_path,
    report_filter,
)
from fabric_trace.errors import OutputError
from fabric_trace.pictures.export import ExportFormat
from fabric_trace.service import open_analyzed


def write_output(path: str, data: bytes, what: str) -> None:
    """Write ``data`` to ``path`` (``-`` = stdout); OutputError when it cannot be written."""
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise OutputError(f"cannot write the {what} file {path}: {exc.strerror}") from None


def export_command(
    trace_id: Optional[str] = typer.Argument(
        None, metavar="[TRACE]", help="Trace id (or a unique prefix); omit it to export every trace the filters select."),
    fmt: ExportFormat = typer.Option(..., "--format", "-f", case_sensitive=False,
                                     help="perfetto (Chrome trace-event JSON), speedscope, or jaeger (Jaeger UI JSON)."),
    out: str = typer.Option(..., "--out", "-o", metavar="FILE", help="Output file ('-' for stdout)."),
    workflow: Optional[list[str]] = WorkflowOption,
    since: Optional[str] = SinceOption,
    until: Optional[str] = UntilOption,
    where: Optional[str] = WhereOption,
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1,
                                        help="Without TRACE: at most this many traces (oldest first)."),
    db: Optional[str] = DbOption,
    config: Optional[str] = ConfigOption,
    lock_timeout: float = LockTimeoutOption,
) -> None:
    """Export a trace (or many) for Perfetto UI, speedscope or Jaeger UI (docs/exports.md)."""
    from fabric_trace.errors import UsageError
    from fabric_trace.pictures.export import export_traces

    err = stderr_console()
    with guarded(err):
        flt = report_filter(workflow, since, until, where)
        if trace_id is not None and (workflow or since or until or where or limit):
            raise UsageError("give either a TRACE or filters (--workflow/--since/--until/--where/--limit), not both")
        with open_analyzed(db_path(db), config, lock_timeout=lock_timeout,
                           notify=notifier(err)) as con:
            data, traces, spans = export_traces(con, fmt, trace_id=trace_id, flt=flt, limit=limit)
        write_output(out, data, fmt.value)
        err.print(f"exported {traces:,} trace{'s' if traces != 1 else ''} ({spans:,} spans) as {fmt.value}"
                  + ("" if out == "-" else f" -> {out}"), markup=False, highlight=False)
