"""``fabric report llm``."""

from __future__ import annotations

from typing import Optional

import typer

from fabric_trace.analyzers.llm.report import BY_COLUMNS, LlmOptions, build_llm_report
from fabric_trace.cli.options import (
    ConfigOption, DbOption, FormatOption, LakeOption, LockTimeoutOption, SinceOption, UntilOption, WhereOption,
    WorkflowOption,
)
from fabric_trace.cli.reporting import emit_report
from fabric_trace.render.formats import OutputFormat


def llm_command(
    db: Optional[str] = DbOption,
    lake: Optional[str] = LakeOption,
    fmt: OutputFormat = FormatOption,
    by: str = typer.Option("model", "--by", metavar="COLUMN", help=f"Group calls by: {', '.join(BY_COLUMNS)}."),
    workflow: Optional[list[str]] = WorkflowOption,
    since: Optional[str] = SinceOption,
    until: Optional[str] = UntilOption,
    where: Optional[str] = WhereOption,
    top: int = typer.Option(10, "--top", min=1, help="Traces and sessions listed by cost."),
    config: Optional[str] = ConfigOption,
    lock_timeout: float = LockTimeoutOption,
) -> None:
    """LLM usage and cost: calls, errors, tokens, cost, latency and TTFT; the top traces and sessions by cost."""
    emit_report(lambda con, flt: build_llm_report(con, LlmOptions(by=by, top=top, filter=flt)), fmt,
                db=db, lake=lake, config=config, lock_timeout=lock_timeout,
                workflow=workflow, since=since, until=until, where=where)
