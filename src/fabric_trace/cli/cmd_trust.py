"""``fabric report trust``."""

from __future__ import annotations

import os
import tempfile
from typing import Optional

import typer

from fabric_trace.analyzers.trust.report import TrustOptions, build_trust_report, trust_map
from fabric_trace.cli.errors import guarded, notifier, stderr_console
from fabric_trace.cli.options import (
    ConfigOption, DbOption, LakeOption, FormatOption, LockTimeoutOption, SinceOption, UntilOption, WhereOption,
    WorkflowOption, open_source, report_filter, write_report, write_stdout,
)
from fabric_trace.errors import OutputError
from fabric_trace.render.formats import OutputFormat, render
from fabric_trace.render.trustmap import MapFormat, render_map


def write_file_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file in the same folder and ``os.replace``."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".fabric-", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None


def trust_command(
    db: Optional[str] = DbOption,
    lake: Optional[str] = LakeOption,
    fmt: OutputFormat = FormatOption,
    map_fmt: Optional[MapFormat] = typer.Option(
        None, "--map", case_sensitive=False, metavar="mermaid|dot|json",
        help="Write the trust map (zones as nodes, crossings as edges) instead of the report: mermaid, dot, json."),
    output: Optional[str] = typer.Option(
        None, "--output", "-o", metavar="FILE", help="Write to FILE (atomically) instead of stdout."),
    workflow: Optional[list[str]] = WorkflowOption,
    since: Optional[str] = SinceOption,
    until: Optional[str] = UntilOption,
    where: Optional[str] = WhereOption,
    limit: int = typer.Option(50, "--limit", "-n", min=1, metavar="N",
                              help="Findings listed (and crossing rows in tables)."),
    config: Optional[str] = ConfigOption,
    lock_timeout: float = LockTimeoutOption,
) -> None:
    """Trust zones, boundary crossings and risky execution paths (unguarded tools, egress, injection paths)."""
    err = stderr_console()
    with guarded(err):
        flt = report_filter(workflow, since, until, where)
        with open_source(db, lake, config, lock_timeout, notify=notifier(err)) as con:
            if map_fmt is not None:
                text = render_map(trust_map(con, flt), map_fmt)
                report = None
            else:
                report = build_trust_report(con, TrustOptions(filter=flt, limit=limit))
                text = render(report, fmt) if output else ""
        if output:
            write_file_atomically(output, text)
            err.print(f"wrote {output}", highlight=False, markup=False)
        elif report is None:
            write_stdout(text)
        else:
            write_report(report, fmt)
