"""``fabric report html``: the self-contained HTML report."""

from __future__ import annotations

from typing import Any, Optional

import typer

from fabric_trace.cli.errors import guarded, notifier, stderr_console
from fabric_trace.cli.options import (
    ConfigOption, DbOption, LockTimeoutOption, SinceOption, UntilOption, WhereOption, WorkflowOption, db_path,
    report_filter,
)


def filter_text(workflow: list[str] | None, since: str | None, until: str | None, where: str | None) -> str:
    """The filters as the user typed them (shown in the page header)."""
    parts = [f"--workflow {w}" for w in workflow or ()]
    parts += [f"--since {since}"] if since else []
    parts += [f"--until {until}"] if until else []
    parts += [f"--where {where}"] if where else []
    return " ".join(parts)


def html_command(
    out: str = typer.Option(..., "--out", "-o", metavar="FILE", help="The HTML file to write ('-' for stdout)."),
    workflow: Optional[list[str]] = WorkflowOption,
    since: Optional[str] = SinceOption,
    until: Optional[str] = UntilOption,
    where: Optional[str] = WhereOption,
    slowest: int = typer.Option(10, "--slowest", min=0, help="Waterfalls of the slowest traces."),
    waterfalls: int = typer.Option(20, "--waterfalls", min=0,
                                   help="At most this many waterfalls in all (medians, slowest, finding examples)."),
    title: str = typer.Option("fabric report", "--title", help="Page title."),
    db: Optional[str] = DbOption,
    config: Optional[str] = ConfigOption,
    lock_timeout: float = LockTimeoutOption,
) -> None:
    """One self-contained HTML page: summary, workflows, waterfalls, state locality, trust map, findings."""
    from fabric_trace.cli.cmd_export import write_output
    from fabric_trace.pictures.html import build_html_report
    from fabric_trace.pictures.report_data import HtmlOptions

    err = stderr_console()
    with guarded(err):
        flt = report_filter(workflow, since, until, where)
        opt = HtmlOptions(filter=flt, slowest=slowest, max_waterfalls=waterfalls, title=title)
        with open_analyzed_for(db, config, lock_timeout, err) as con:
            page = build_html_report(con, opt, filter_text(workflow, since, until, where))
        data = page.html.encode("utf-8")
        write_output(out, data, "HTML")
        err.print(f"report: {page.traces:,} traces, {page.waterfalls} waterfalls, {len(data) / 1e6:.2f} MB"
                  + ("" if out == "-" else f" -> {out}"), markup=False, highlight=False)


def open_analyzed_for(db: str | None, config: str | None, lock_timeout: float, err: Any):  # type: ignore[no-untyped-def]
    from fabric_trace.service import open_analyzed

    return open_analyzed(db_path(db), config, lock_timeout=lock_timeout, notify=notifier(err))
