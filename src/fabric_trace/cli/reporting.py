"""The one way a report command runs: read the filter options, open the analysed data (the
database, or a lake with ``--lake``), build the report, write it to stdout; errors become
messages and exit codes in :func:`~fabric_trace.cli.errors.guarded`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fabric_trace.cli.errors import guarded, notifier, stderr_console
from fabric_trace.cli.options import open_source, report_filter, write_report
from fabric_trace.model import Report, ReportFilter
from fabric_trace.render.formats import OutputFormat


def emit_report(build: Callable[[Any, ReportFilter], Report], fmt: OutputFormat, *, db: str | None,
                config: str | None, lock_timeout: float, lake: str | None = None,
                adjust_skew: str | None = None, workflow: list[str] | None = None, since: str | None = None,
                until: str | None = None, where: str | None = None) -> None:
    """Build ``build(connection, filter)`` over the analysed data and write it as ``fmt``."""
    err = stderr_console()
    with guarded(err):
        flt = report_filter(workflow, since, until, where)
        with open_source(db, lake, config, lock_timeout, adjust_skew, notify=notifier(err)) as con:
            report = build(con, flt)
        write_report(report, fmt)
