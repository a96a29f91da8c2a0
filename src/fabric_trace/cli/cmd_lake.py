"""``fabric lake export`` (docs/lake.md)."""

from __future__ import annotations

from typing import Optional

import typer
from rich.text import Text

from fabric_trace.cli.errors import guarded, stderr_console
from fabric_trace.cli.options import DbOption, LockTimeoutOption, db_path
from fabric_trace.service import export_lake


def export_command(
    out: str = typer.Option(..., "--out", metavar="DIR", help="Lake directory (created; re-running adds what is new)."),
    db: Optional[str] = DbOption,
    buckets: Optional[int] = typer.Option(
        None, "--buckets", min=1, metavar="N",
        help="Trace-id hash buckets per day (default 16; fixed by the first export of a lake)."),
    lock_timeout: float = LockTimeoutOption,
) -> None:
    """Write the stored spans, resources and scopes as a Parquet lake partitioned by day and trace-id bucket."""
    err = stderr_console()
    with guarded(err):
        result = export_lake(db_path(db), out, buckets=buckets, lock_timeout=lock_timeout)
        if result.up_to_date:
            err.print(Text(f"lake {out} is up to date"))
        else:
            err.print(Text(f"lake {out}: {result.partitions_written:,} partition(s) written"
                           + (f", {result.partitions_removed:,} emptied" if result.partitions_removed else "")
                           + f" ({result.spans_written:,} spans; {result.traces_exported:,} trace(s) with new spans)"))
