"""``fabric demo`` and ``fabric analyze``."""

from __future__ import annotations

import tempfile
from enum import Enum
from typing import Any, Optional

import typer
from rich.text import Text

from fabric_trace.cli.errors import guarded, stderr_console
from fabric_trace.cli.options import (
    ConfigOption, DbOption, FormatOption, LockTimeoutOption, db_path, fabric_command, write_report, write_stdout,
)
from fabric_trace.render.formats import OutputFormat
from fabric_trace.render.jsonify import dumps
from fabric_trace.errors import UsageError
from fabric_trace.service import analyze_lake_spark, demo_reports, demo_paths, open_analyzed, run_ingest


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
        err.print(Text(f"demo: {d['spans_ingested']:,} new spans, {d['spans_duplicate']:,} duplicate, "
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


class Engine(str, Enum):
    """Analysis engines of ``fabric analyze``."""

    duckdb = "duckdb"
    spark = "spark"


def _analyze_spark(err: Any, engine: Engine, lake: str | None, master: str | None, conf: list[str] | None,
                   config: str | None, adjust_skew: str | None) -> None:
    if engine != Engine.spark:
        raise UsageError("--lake needs --engine spark (the DuckDB engine analyses --db)")
    if lake is None:
        raise UsageError("--engine spark needs --lake DIR", hint="write a lake with: fabric lake export --out DIR")
    settings: dict[str, str] = {}
    for item in conf or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"bad --conf {item!r}: expected KEY=VALUE")
        settings[key.strip()] = value.strip()
    result = analyze_lake_spark(lake, config, master=master, conf=settings, adjust_skew=adjust_skew)
    err.print(Text(f"analyzed {result.traces:,} traces; {result.findings:,} findings on Spark "
                   f"in {result.seconds:.1f} s -> {lake}/derived"))


def analyze_command(
    db: Optional[str] = DbOption,
    config: Optional[str] = ConfigOption,
    adjust_skew: Optional[str] = typer.Option(None, "--adjust-skew", metavar="MAX",
                                              help="Correct clock skew up to MAX (500ms, 2s, auto)."),
    lock_timeout: float = LockTimeoutOption,
    engine: Engine = typer.Option(Engine.duckdb, "--engine", case_sensitive=False, metavar="duckdb|spark",
                                  help="duckdb: the database (--db); spark: a Parquet lake (--lake) on Apache Spark."),
    lake: Optional[str] = typer.Option(None, "--lake", metavar="DIR",
                                       help="With --engine spark: the lake (fabric lake export); writes DIR/derived."),
    master: Optional[str] = typer.Option(None, "--master", metavar="URL",
                                         help="With --engine spark: Spark master (default: the active session's, "
                                              "else local[*])."),
    conf: Optional[list[str]] = typer.Option(None, "--conf", metavar="KEY=VALUE",
                                             help="With --engine spark: a Spark setting (repeatable)."),
) -> None:
    """Recompute the derived tables (call graphs, critical path, findings) now."""
    err = stderr_console()
    with guarded(err):
        if engine == Engine.spark or lake is not None:
            _analyze_spark(err, engine, lake, master, conf, config, adjust_skew)
            return
        with open_analyzed(db_path(db), config, lock_timeout=lock_timeout, adjust_skew=adjust_skew,
                           write=True) as con:
            n = con.execute("SELECT count(*) FROM traces").fetchone()[0]
            f = con.execute("SELECT count(*) FROM findings").fetchone()[0]
        err.print(Text(f"analyzed {n:,} traces; {f:,} findings"))
