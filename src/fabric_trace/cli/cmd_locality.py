"""``fabric report locality``."""

from __future__ import annotations

from typing import Optional

import typer

from fabric_trace.analyzers.locality.report import LocalityOptions, build_locality_report
from fabric_trace.cli.options import (
    ConfigOption, DbOption, LakeOption, FormatOption, LockTimeoutOption, SinceOption, UntilOption, WhereOption,
    WorkflowOption,
)
from fabric_trace.cli.reporting import emit_report
from fabric_trace.render.formats import OutputFormat


def locality_command(
    db: Optional[str] = DbOption,
    lake: Optional[str] = LakeOption,
    fmt: OutputFormat = FormatOption,
    workflow: Optional[list[str]] = WorkflowOption,
    since: Optional[str] = SinceOption,
    until: Optional[str] = UntilOption,
    where: Optional[str] = WhereOption,
    top: int = typer.Option(20, "--top", min=1, help="Stores listed by the table formats (JSON lists all)."),
    config: Optional[str] = ConfigOption,
    lock_timeout: float = LockTimeoutOption,
) -> None:
    """Where the state lives: cache and prefix-cache misses, cross-zone/region access, redundant fetches,
    what they cost on the critical path, and a what-if."""
    emit_report(lambda con, flt: build_locality_report(con, LocalityOptions(filter=flt, top=top)), fmt,
                db=db, lake=lake, config=config, lock_timeout=lock_timeout,
                workflow=workflow, since=since, until=until, where=where)
