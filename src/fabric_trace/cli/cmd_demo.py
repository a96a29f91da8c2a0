"""``fabric demo`` and ``fabric analyze``."""

from __future__ import annotations

import tempfile
from typing import Optional

import typer
from rich.text import Text

from fabric_trace.cli.errors import guarded, stderr_console
from fabric_trace.cli.options import (
    ConfigOption, DbOption, FormatOption, LockTimeoutOption, db_path, fabric_command, write_report, write_stdout,
)
from fabric_trace.render.formats import OutputFormat
from fabric_trace.render.jsonify import dumps
from fabric_trace.service import demo_reports, demo_paths, open_analyzed, run_ingest


def demo_command(
    db: str = typer.Option("fabric-demo.duckdb", "--db", metavar="FILE", help="Database file for the demo."),
    fmt: OutputFormat = FormatOption,
) -> None:
    """Ingest the bundled sample traces and print every report."""
    err = stderr_console()
    with guarded(err):
        with tempfile.TemporaryDirectory(prefix="fabric-demo-") as tmp:
            summary = run_ingest(db, demo_paths(tmp))
        d = summary.as_dict()
        err.print(Text(f"demo: {d['spans_ingested']:,} new spans ({d['spans_duplicate']:,} already there), "
                       f"{d['traces']:,} traces -> {db}"))
        reports = demo_reports(db)
        if fmt == OutputFormat.json:
            # one JSON document: {"latency": ..., "locality": ..., "trust": ...} (docs/output-formats.md)
            write_stdout(dumps({name: report.data for name, report in reports.items()}).rstrip("\n"))
        else:
            for report in reports.values():
                write_report(report, fmt)
        err.print(Text(f"next: {fabric_command('trace', 'ls', db=db)}"))
        err.print(Text(f"      {fabric_command('query', 'SELECT * FROM traces LIMIT 5', db=db)}"))


def analyze_command(
    db: Optional[str] = DbOption,
    config: Optional[str] = ConfigOption,
    adjust_skew: Optional[str] = typer.Option(None, "--adjust-skew", metavar="MAX",
                                              help="Correct clock skew up to MAX (500ms, 2s, auto)."),
    lock_timeout: float = LockTimeoutOption,
) -> None:
    """Recompute the derived tables (call graphs, critical path, findings) now."""
    err = stderr_console()
    with guarded(err):
        with open_analyzed(db_path(db), config, lock_timeout=lock_timeout, adjust_skew=adjust_skew) as con:
            n = con.execute("SELECT count(*) FROM traces").fetchone()[0]
            f = con.execute("SELECT count(*) FROM findings").fetchone()[0]
        err.print(Text(f"analyzed {n:,} traces; {f:,} findings"))
