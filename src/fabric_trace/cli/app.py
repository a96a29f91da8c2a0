"""The ``fabric`` command: a thin typer layer over the library.

Each command parses options, calls one library function and hands the result
to a renderer. Reports go to stdout; progress, warnings and summaries to stderr.
"""

from __future__ import annotations

import typer

from fabric_trace import __version__
from fabric_trace.cli import cmd_demo, cmd_ingest, cmd_latency, cmd_query, cmd_trace
from fabric_trace.cli import cmd_gate
from fabric_trace.cli import cmd_trust
from fabric_trace.cli import cmd_locality
from fabric_trace.cli import cmd_export
from fabric_trace.cli import cmd_collect

app = typer.Typer(
    name="fabric",
    help="Trace and analyse AI execution paths from OpenTelemetry exports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
trace_app = typer.Typer(help="Ingest and browse traces.", no_args_is_help=True)
app.add_typer(trace_app, name="trace")
report_app = typer.Typer(help="Analyse the traces in the database.", no_args_is_help=True)
app.add_typer(report_app, name="report")

trace_app.command("ingest")(cmd_ingest.ingest_command)
trace_app.command("ls")(cmd_trace.ls_command)
trace_app.command("show")(cmd_trace.show_command)
trace_app.command("export")(cmd_export.export_command)
app.command("query")(cmd_query.query_command)
app.command("demo")(cmd_demo.demo_command)
app.command("analyze")(cmd_demo.analyze_command)
report_app.command("latency")(cmd_latency.latency_command)
report_app.command("trust")(cmd_trust.trust_command)
report_app.command("locality")(cmd_locality.locality_command)
app.command("gate")(cmd_gate.gate_command)
app.command("diff")(cmd_gate.diff_command)
app.command("collect")(cmd_collect.collect_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fabric {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """fabric: where the time goes, where the state lives, and where trust is crossed."""


def main() -> None:
    """Console-script entry point."""
    app()
