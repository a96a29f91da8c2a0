"""``fabric gate`` and ``fabric diff``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from fabric_trace.cli.errors import guarded, stderr_console
from fabric_trace.cli.options import ConfigOption, FormatOption, LockTimeoutOption, write_report
from fabric_trace.errors import OutputError, UsageError
from fabric_trace.render.formats import OutputFormat

_SIDE_HELP = "a fabric database, or trace files/directories/globs (repeat the option for several)"


def _write_file(path: str, text: str, what: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write the {what} file {path}: {exc.strerror}") from None


def gate_command(
    baseline: list[str] = typer.Option(..., "--baseline", "-b", metavar="PATH", help=f"Baseline run: {_SIDE_HELP}."),
    candidate: list[str] = typer.Option(..., "--candidate", "-c", metavar="PATH",
                                        help=f"Candidate run: {_SIDE_HELP}."),
    config: Optional[str] = ConfigOption,
    fmt: OutputFormat = FormatOption,
    junit: Optional[str] = typer.Option(None, "--junit", metavar="FILE",
                                        help="Also write the checks as JUnit XML to FILE."),
    markdown: Optional[str] = typer.Option(
        None, "--markdown", metavar="FILE", help="Also write a Markdown summary to FILE (e.g. $GITHUB_STEP_SUMMARY)."),
    alpha: Optional[float] = typer.Option(None, "--alpha", metavar="A",
                                          help="Family-wise significance level (overrides [gate] alpha)."),
    fail_on_inconclusive: Optional[bool] = typer.Option(
        None, "--fail-on-inconclusive/--no-fail-on-inconclusive",
        help="Whether an inconclusive check fails the gate (overrides [gate] fail_on_inconclusive)."),
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="List every check in the table, passing ones too (default: failed and "
                                      "inconclusive checks only, passing ones counted)."),
    html: Optional[str] = typer.Option(
        None, "--html", metavar="FILE", help="Also write an HTML page: baseline vs candidate for the failed checks."),
    lock_timeout: float = LockTimeoutOption,
) -> None:
    """Fail the build on a real regression of the candidate run against the baseline (docs/ci.md).

    Exit codes: 0 pass, 1 a check failed, other codes a tool or input error (docs/exit-codes.md).
    """
    from fabric_trace.gate import run_gate
    from fabric_trace.gate.outputs import compact_report, github_annotations, headline, junit_xml, markdown_summary

    err = stderr_console()
    with guarded(err):
        if alpha is not None and not 0.0 < alpha < 0.5:
            raise UsageError(f"--alpha must be between 0 and 0.5, got {alpha:g}")
        run = run_gate(baseline, candidate, config_path=config, lock_timeout=lock_timeout, html=html is not None,
                       alpha=alpha, fail_on_inconclusive=fail_on_inconclusive)
        if html and run.html is not None:
            _write_file(html, run.html, "HTML")
        if junit:
            _write_file(junit, junit_xml(run.outcome), "JUnit")
        if markdown:
            _write_file(markdown, markdown_summary(run.report), "Markdown")
        compact = fmt == OutputFormat.table and not verbose
        write_report(compact_report(run.report) if compact else run.report, fmt)
        if os.environ.get("GITHUB_ACTIONS") == "true":
            # workflow commands are read from stdout; keep a machine-readable stdout clean
            stream = sys.stdout if fmt in (OutputFormat.table, OutputFormat.markdown) else sys.stderr
            for line in github_annotations(run.outcome):
                print(line, file=stream)
            stream.flush()
        style = {"fail": "bold red", "inconclusive": "bold yellow"}.get(run.outcome.verdict, "bold green")
        err.print(headline(run.outcome), style=style, markup=False, soft_wrap=False)
    if run.exit_code:
        raise typer.Exit(run.exit_code)


def diff_command(
    baseline: str = typer.Argument(..., metavar="BASELINE",
                                   help="Baseline run: a fabric database or a trace file/directory."),
    candidate: str = typer.Argument(..., metavar="CANDIDATE",
                                    help="Candidate run: a fabric database or a trace file/directory."),
    config: Optional[str] = ConfigOption,
    fmt: OutputFormat = FormatOption,
    html: Optional[str] = typer.Option(
        None, "--html", metavar="FILE", help="Also write an HTML page: the changed workflows side by side."),
    lock_timeout: float = LockTimeoutOption,
) -> None:
    """Structural diff of two runs: edges that appear or disappear, calls per trace, new finding kinds."""
    from fabric_trace.gate import run_diff_pictures

    err = stderr_console()
    with guarded(err):
        report, page = run_diff_pictures([baseline], [candidate], config_path=config, lock_timeout=lock_timeout,
                                         html=html is not None)
        if html and page is not None:
            _write_file(html, page, "HTML")
        write_report(report, fmt)
