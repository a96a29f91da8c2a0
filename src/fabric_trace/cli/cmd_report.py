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
from fabric_trace.cli.options import (
    ConfigOption, DbOption, LakeOption, FormatOption, LockTimeoutOption, SinceOption, UntilOption, WhereOption,
    WorkflowOption,
)
from fabric_trace.cli.reporting import emit_report
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
        emit_report(spec.build, fmt, db=db, lake=lake, config=config, lock_timeout=lock_timeout,
                    workflow=workflow, since=since, until=until, where=where)

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
