"""``fabric report llm``."""

from __future__ import annotations

from typing import Optional

import typer

from fabric_trace.analyzers.llm.report import BY_COLUMNS, LlmOptions, build_llm_report
from fabric_trace.cli.errors import guarded, notifier, stderr_console
from fabric_trace.cli.options import (
    ConfigOption, DbOption, FormatOption, LakeOption, LockTimeoutOption, SinceOption, UntilOption, WhereOption,
    WorkflowOption, open_source, report_filter, write_report,
)
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
    err = stderr_console()
    with guarded(err):
        flt = report_filter(workflow, since, until, where)
        with open_source(db, lake, config, lock_timeout, notify=notifier(err)) as con:
            report = build_llm_report(con, LlmOptions(by=by, top=top, filter=flt))
        write_report(report, fmt)
