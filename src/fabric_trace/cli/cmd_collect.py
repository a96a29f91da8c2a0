"""``fabric collect``: receive OTLP/HTTP and store the spans (docs/collect.md)."""

from __future__ import annotations

import json
import signal
import threading
from typing import Any, Optional

import typer
from rich.console import Console
from rich.text import Text

from fabric_trace.cli.errors import guarded, stderr_console
from fabric_trace.cli.options import ConfigOption, DbOption, LockTimeoutOption, db_path, write_stdout
from fabric_trace.errors import ExitCode
from fabric_trace.render.sanitize import safe_text


def collect_command(
    listen: str = typer.Option("127.0.0.1:4318", "--listen", "-l",
                               help="HOST:PORT to listen on (port 0: any free port)."),
    db: Optional[str] = DbOption,
    config: Optional[str] = ConfigOption,
    grpc: Optional[str] = typer.Option(None, "--grpc",
                                       help="Also receive OTLP/gRPC on HOST:PORT, e.g. 127.0.0.1:4317 "
                                            "(needs grpcio)."),
    allow_remote: bool = typer.Option(False, "--allow-remote",
                                      help="Allow a non-loopback --listen address (set --token too)."),
    token: Optional[str] = typer.Option(None, "--token", envvar="FABRIC_COLLECT_TOKEN",
                                        help="Require 'Authorization: Bearer TOKEN' on every request."),
    max_body_mb: int = typer.Option(20, "--max-body-mb", min=1,
                                    help="Largest request body, before and after decompression (413 above)."),
    queue_spans: int = typer.Option(200_000, "--queue-spans", min=1,
                                    help="Spans waiting for a commit before requests get 503 + Retry-After."),
    batch_spans: int = typer.Option(50_000, "--batch-spans", min=1, help="Most spans per transaction."),
    batch_wait: float = typer.Option(0.0, "--batch-wait", min=0.0, max=10.0,
                                     help="Seconds to gather more requests before a commit (0: commit at once)."),
    snapshot: Optional[str] = typer.Option(None, "--snapshot",
                                           help="Snapshot file for readers (default: DB's name + .snapshot.duckdb)."),
    no_snapshot: bool = typer.Option(False, "--no-snapshot", help="Do not write snapshots."),
    snapshot_interval: float = typer.Option(5.0, "--snapshot-interval", min=0.5,
                                            help="Seconds between snapshots (only when new spans arrived)."),
    progress_interval: float = typer.Option(5.0, "--progress-interval", min=0.1,
                                            help="Seconds between progress lines on stderr."),
    lock_timeout: float = LockTimeoutOption,
    no_analyze: bool = typer.Option(False, "--no-analyze", help="Skip refreshing the derived tables at exit."),
    json_out: bool = typer.Option(False, "--json", help="Print the final summary as one JSON object on stdout."),
) -> None:
    """Receive OTLP/HTTP traces (POST /v1/traces) and store them until SIGINT/SIGTERM."""
    from fabric_trace.collect import CollectOptions, default_snapshot_path
    from fabric_trace.ingest.limits import MIB
    from fabric_trace.service import open_collector

    err = stderr_console()
    with guarded(err):
        path = db_path(db)
        options = CollectOptions(
            listen=listen, allow_remote=allow_remote, token=token or None, max_body_bytes=max_body_mb * MIB,
            queue_spans=queue_spans, batch_spans=batch_spans, batch_wait=batch_wait,
            snapshot_path=None if no_snapshot else (snapshot or default_snapshot_path(path)),
            snapshot_interval=snapshot_interval, analyze=not no_analyze, grpc_listen=grpc,
        )
        session = open_collector(path, options, config_path=config, lock_timeout=lock_timeout)
        with session as collector:
            summary = _serve(err, collector, session, progress_interval)
        _print_summary(err, summary)
        if json_out:
            write_stdout(json.dumps(summary.as_dict(), sort_keys=True))
        raise typer.Exit(int(ExitCode.DB_ERROR if summary.error else ExitCode.OK))


def _serve(err: Console, collector: Any, session: Any, interval: float) -> Any:
    """Run until SIGINT/SIGTERM (or a storage failure); a second signal aborts the final flush."""
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:  # Ctrl-C twice: give up the final flush
            raise KeyboardInterrupt
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        collector.start()
        opts = collector.options
        snap = f"; snapshot for readers: {opts.snapshot_path}" if opts.snapshot_path else ""
        grpc = f"; OTLP/gRPC on {collector.grpc_address}" if collector.grpc_address else ""
        err.print(Text(f"fabric collect: listening on {collector.url}/v1/traces{grpc} -> {collector.db_path}{snap}"))
        if opts.allow_remote and not opts.token:
            err.print(Text("warning: --allow-remote without --token: anyone who can reach the port can write "
                           "spans", style="yellow"))
        last = (-1, 0.0, -1)
        while not stop.wait(interval) and not collector.failed:
            last = _progress_line(err, collector, last)
        if not collector.failed:
            err.print(Text("fabric collect: stopping (finishing the requests in flight, then committing)"))
        summary = collector.stop(session.refresh)
        _progress_line(err, collector, last, final=True)
        return summary
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _progress_line(err: Console, collector: Any, last: tuple[int, float, int],
                   final: bool = False) -> tuple[int, float, int]:
    """Print notices, and the progress line when something changed since ``last``."""
    totals, seconds, notices = collector.progress()
    for note in notices:
        err.print(Text(safe_text(note, None), style="yellow"))
    received = totals.spans_received
    refused = sum(totals.refused.values())
    if final or (received, refused) == (last[0], last[2]) and not totals.queued_spans:
        return last
    rate = (received - max(last[0], 0)) / max(seconds - last[1], 1e-9)
    err.print(Text(
        f"collect: {received:,} spans received, {totals.spans_ingested:,} stored, "
        f"{totals.spans_duplicate:,} duplicate, {totals.spans_rejected:,} rejected; "
        f"{rate:,.0f} spans/s; {totals.queued_spans:,} queued; {refused:,} request(s) refused"))
    return received, seconds, refused


def _print_summary(err: Console, summary: Any) -> None:
    d = summary.as_dict()
    if summary.error:
        err.print(Text(f"error: storing spans failed: {safe_text(summary.error, None)}; requests after it were "
                       "answered 503 and nothing of them was stored", style="bold red"))
    if d["records_rejected"] or d["repairs"]:
        err.print(Text(f"{d['records_rejected']:,} record(s) quarantined, {d['repairs']:,} repaired "
                       "(see: fabric query \"SELECT * FROM quarantine\")", style="yellow"))
    refused = ", ".join(f"{n} x {code}" for code, n in d["requests_refused"].items())
    err.print(Text(
        f"{d['requests']:,} request(s): {d['spans_ingested']:,} new span(s), {d['spans_duplicate']:,} duplicate, "
        f"{d['spans_rejected']:,} rejected; {d['traces']:,} trace(s); refused requests: {refused or 'none'}; "
        f"{d['seconds']:.2f} s, {d['spans_per_second']:,.0f} spans/s -> {summary.db}"
        + ("" if d["analyzed"] or not d["spans_ingested"] else " (derived tables not refreshed)")))
