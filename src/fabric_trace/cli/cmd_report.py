"""``fabric report NAME``: one command per registered analyzer.

An analyzer whose :class:`~fabric_trace.analyzers.contract.ReportSpec` names a
``command`` gets that typer command (it has options of its own); any other
gets :func:`generic_command`, which takes the options every report shares.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Optional


from fabric_trace.analyzers.contract import Analyzer
from fabric_trace.cli.errors import guarded, notifier, stderr_console
from fabric_trace.cli.options import (
    ConfigOption, DbOption, LakeOption, FormatOption, LockTimeoutOption, SinceOption, UntilOption, WhereOption,
    WorkflowOption, open_source, report_filter, write_report,
)
from fabric_trace.render.formats import OutputFormat


def generic_command(analyzer: Analyzer) -> Callable[..., None]:
    """The ``fabric report NAME`` command of an analyzer without a command of its own."""
    spec = analyzer.report
    assert spec is not None

    def command(
        db: Optional[str] = DbOption,
    lake: Optional[str] = LakeOption,
        fmt: OutputFormat = FormatOption,
        workflow: Optional[list[str]] = WorkflowOption,
        since: Optional[str] = SinceOption,
        until: Optional[str] = UntilOption,
        where: Optional[str] = WhereOption,
        config: Optional[str] = ConfigOption,
        lock_timeout: float = LockTimeoutOption,
    ) -> None:
        err = stderr_console()
        with guarded(err):
            flt = report_filter(workflow, since, until, where)
            with open_source(db, lake, config, lock_timeout, notify=notifier(err)) as con:
                report = spec.build(con, flt)
            write_report(report, fmt)

    command.__doc__ = spec.help
    return command


def report_command(analyzer: Analyzer) -> Callable[..., Any]:
    """The command for ``fabric report <analyzer.name>``."""
    spec = analyzer.report
    assert spec is not None
    if spec.command is None:
        return generic_command(analyzer)
    module, _, name = spec.command.partition(":")
    return getattr(importlib.import_module(module), name)
