"""``fabric report latency``."""

from __future__ import annotations

from typing import Optional

import typer

from fabric_trace.analyzers.latency.report import BY_COLUMNS, LatencyOptions, build_latency_report
from fabric_trace.cli.options import (
    ConfigOption, DbOption, LakeOption, FormatOption, LockTimeoutOption, SinceOption, UntilOption, WhereOption,
    WorkflowOption,
)
from fabric_trace.cli.reporting import emit_report
from fabric_trace.render.formats import OutputFormat


def latency_command(
    db: Optional[str] = DbOption,
    lake: Optional[str] = LakeOption,
    fmt: OutputFormat = FormatOption,
    by: str = typer.Option("role", "--by", metavar="COLUMN", help=f"Break critical-path and self time down by: {', '.join(BY_COLUMNS)}."),
    workflow: Optional[list[str]] = WorkflowOption,
    since: Optional[str] = SinceOption,
    until: Optional[str] = UntilOption,
    where: Optional[str] = WhereOption,
    top: int = typer.Option(10, "--top", min=1, help="Operations listed per workflow."),
    adjust_skew: Optional[str] = typer.Option(
        None, "--adjust-skew", metavar="MAX", help="Correct detected clock skew up to MAX (e.g. 500ms, 2s, or ns); 'auto' = no limit."),
    config: Optional[str] = ConfigOption,
    lock_timeout: float = LockTimeoutOption,
) -> None:
    """Where the time goes: end-to-end percentiles, critical path and self time by AI role."""
    emit_report(lambda con, flt: build_latency_report(con, LatencyOptions(by=by, top=top, filter=flt)), fmt,
                db=db, lake=lake, config=config, lock_timeout=lock_timeout, adjust_skew=adjust_skew,
                workflow=workflow, since=since, until=until, where=where)
