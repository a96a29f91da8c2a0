"""The ``fabric`` command: a thin typer layer over the library.

Each command parses options, calls one library function and hands the result
to a renderer. Reports go to stdout; progress, warnings and summaries to stderr.
"""

from __future__ import annotations

from typing import Any, Callable

import typer

from fabric_trace import __version__
from fabric_trace.cli import (
    cmd_collect, cmd_demo, cmd_export, cmd_gate, cmd_html, cmd_ingest, cmd_lake, cmd_query, cmd_session, cmd_trace,
)
from fabric_trace.cli.cmd_report import report_command
from fabric_trace.cli.color import ColorMode, set_color_mode
from fabric_trace.cli.command import FabricCommand, FabricGroup

#: ``-h`` works like ``--help`` on every command (subcommands inherit the setting).
_CONTEXT = {"help_option_names": ["-h", "--help"]}


def _register(group: typer.Typer, name: str, fn: Callable[..., Any]) -> None:
    group.command(name, cls=FabricCommand)(fn)


def build_app() -> typer.Typer:
    """The ``fabric`` command tree; ``fabric report NAME`` comes from the analyzer registry."""
    from fabric_trace.analyzers import registry

    app = typer.Typer(
        name="fabric",
        cls=FabricGroup,
        help="Trace and analyse AI execution paths from OpenTelemetry exports.",
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings=_CONTEXT,
    )
    trace_app = typer.Typer(cls=FabricGroup, help="Ingest and browse traces.", no_args_is_help=True,
                            context_settings=_CONTEXT)
    app.add_typer(trace_app, name="trace")
    report_app = typer.Typer(cls=FabricGroup, help="Analyse the traces in the database.", no_args_is_help=True,
                             context_settings=_CONTEXT)
    app.add_typer(report_app, name="report")
    lake_app = typer.Typer(cls=FabricGroup, help="A Parquet lake of the traces (for Spark and DuckDB).",
                           no_args_is_help=True, context_settings=_CONTEXT)
    app.add_typer(lake_app, name="lake")
    _register(lake_app, "export", cmd_lake.export_command)
    session_app = typer.Typer(cls=FabricGroup, help="Browse sessions (conversations of several traces).",
                              no_args_is_help=True, context_settings=_CONTEXT)
    app.add_typer(session_app, name="session")

    _register(trace_app, "ingest", cmd_ingest.ingest_command)
    _register(trace_app, "ls", cmd_trace.ls_command)
    _register(trace_app, "show", cmd_trace.show_command)
    _register(trace_app, "export", cmd_export.export_command)
    _register(session_app, "ls", cmd_session.ls_command)
    _register(session_app, "show", cmd_session.show_command)
    _register(app, "query", cmd_query.query_command)
    _register(app, "demo", cmd_demo.demo_command)
    _register(app, "analyze", cmd_demo.analyze_command)
    for analyzer in registry().values():  # fabric report NAME, one per registered analyzer
        if analyzer.report is not None:
            _register(report_app, analyzer.name, report_command(analyzer))
    _register(report_app, "html", cmd_html.html_command)
    _register(app, "gate", cmd_gate.gate_command)
    _register(app, "diff", cmd_gate.diff_command)
    _register(app, "collect", cmd_collect.collect_command)
    app.callback()(_root)
    return app


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fabric {__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    color: ColorMode = typer.Option(
        ColorMode.auto, "--color", case_sensitive=False, metavar="auto|always|never",
        help="Colours: auto (when the output is a terminal and $NO_COLOR is unset), always, never. "
        "Give it before the command: fabric --color never report latency."),
) -> None:
    """fabric: where the time goes, where the state lives, and where trust is crossed.

    Shell completion: fabric --install-completion (bash, zsh, fish, PowerShell).
    """
    set_color_mode(color)


app = build_app()


def main() -> None:
    """Run the command (the console script is :func:`fabric_trace.cli.entry.main`, which adds Ctrl-C handling)."""
    from fabric_trace.cli.entry import main as entry_main

    entry_main()
