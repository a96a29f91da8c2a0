"""``fabric trace ingest``."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from fabric_trace.cli.errors import guarded, stderr_console
from fabric_trace.cli.options import ConfigOption, DbOption, LockTimeoutOption, db_path, fabric_command, write_stdout
from fabric_trace.errors import ExitCode
from fabric_trace.ingest.pipeline import IngestSummary
from fabric_trace.render.sanitize import safe_markup, safe_text
from fabric_trace.service import run_ingest


def ingest_command(
    paths: list[str] = typer.Argument(..., metavar="PATH", help="Files, directories (recursive), globs, or - for stdin."),
    db: Optional[str] = DbOption,
    config: Optional[str] = ConfigOption,
    json_out: bool = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout."),
    strict: bool = typer.Option(False, "--strict", help="Exit 65 if any record was quarantined."),
    lock_timeout: float = LockTimeoutOption,
    max_decompressed_mb: int = typer.Option(1024, "--max-decompressed-mb", min=1, metavar="MB",
                                            help="Refuse a compressed input that expands beyond this size."),
    max_line_mb: int = typer.Option(64, "--max-line-mb", min=1, metavar="MB",
                                    help="Quarantine a JSON line longer than this, unread (the rest of the file loads)."),
    batch_spans: int = typer.Option(50_000, "--batch-spans", min=100, metavar="N", help="Spans per write batch."),
    no_analyze: bool = typer.Option(False, "--no-analyze", help="Skip refreshing the derived tables."),
) -> None:
    """Load OTLP (JSON lines, JSON, protobuf; gzip/zstd), Jaeger or Zipkin trace files into the database."""
    err = stderr_console()
    with guarded(err):
        with _progress(err) as on_progress:
            summary = run_ingest(
                db_path(db), paths, config_path=config, lock_timeout=lock_timeout,
                max_decompressed=max_decompressed_mb * 1024 * 1024, max_line=max_line_mb * 1024 * 1024,
                batch_spans=batch_spans,
                analyze=not no_analyze, progress=on_progress,
            )
        _print_summary(err, summary)
        if json_out:
            write_stdout(json.dumps(summary.as_dict(), sort_keys=True))
        if summary.analysis_error is not None:  # after the summary: what was committed is said first
            raise summary.analysis_error
        raise typer.Exit(int(_exit_code(summary, strict)))


def _exit_code(summary: IngestSummary, strict: bool) -> ExitCode:
    d = summary.as_dict()
    if d["files"] and d["spans_ingested"] == 0 and d["spans_duplicate"] == 0 and (
        d["files_failed"] or d["records_rejected"]
    ):
        return ExitCode.DATA
    if strict and (d["records_rejected"] or d["files_failed"]):
        return ExitCode.DATA
    return ExitCode.OK


class _progress:
    """A progress bar on stderr while ingesting, only when stderr is a terminal."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar: Progress | None = None
        self.task: object = None

    def __enter__(self):  # type: ignore[no-untyped-def]
        if not (self.console.is_terminal and self.console.file.isatty()):  # not into a pipe, even with --color always
            return None
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,} spans"),
                            TimeElapsedColumn(), console=self.console, transient=True)
        self.bar.__enter__()
        self.task = self.bar.add_task("ingest", total=None)

        def update(path: str, _bytes: int, spans: int) -> None:
            assert self.bar is not None
            self.bar.update(self.task, description=safe_markup(path, 40), completed=spans)  # type: ignore[arg-type]

        return update

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _print_summary(err: Console, summary: IngestSummary) -> None:
    for f in summary.files:
        for msg in f.messages:
            err.print(Text(safe_text(msg, None), style="yellow" if f.status == "failed" else ""))
        if f.status == "ingested" and (f.records_rejected or f.repairs):
            err.print(Text(
                f"{safe_text(f.path, None)}: {f.records_rejected:,} record(s) quarantined, {f.repairs:,} repaired "
                f"(see: {fabric_command('query', 'SELECT * FROM quarantine', db=summary.db)})", style="yellow"))
    d = summary.as_dict()
    line = (
        f"{d['files']} file(s): {d['spans_ingested']:,} new span(s), {d['spans_duplicate']:,} duplicate, "
        f"{d['spans_rejected']:,} rejected; {d['traces']:,} trace(s); "
        f"{d['files_skipped']} already ingested, {d['files_failed']} failed; "
        f"{d['seconds']:.2f} s -> {summary.db}"
    )
    if d["spans_ingested"] == 0 and d["files"]:
        line += " (nothing new)"
    err.print(Text(line))
