"""``fabric lake export``: the store's spans, resources and scopes as a Parquet lake (docs/lake.md).

Spans are partitioned by ``day`` (UTC day of the trace's first span start) and
``bucket`` (trace-id hash), so every partition holds whole traces. A partition
is one file, ``data.parquet``, whose content is a function of the store: all
spans of the traces that belong to it. Re-running exports only the partitions
touched by spans ingested since the last export (``files.file_id`` above the
one recorded in ``_fabric_lake.json``), including a partition a trace left
because a late span moved its start to another day. Every file is written
beside the lake (``DIR/_staging``) and renamed into place, so a reader sees
either the old or the new partition, never half of one.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb

from fabric_trace.errors import DatabaseError, OutputError, UsageError
from fabric_trace.lake.layout import (
    BUCKET_SQL, DAY_SQL, DEFAULT_BUCKETS, LAKE_FORMAT, STATE_FILE, lake_types, read_state, write_state,
)
from fabric_trace.store import db as store


@dataclass(frozen=True)
class ExportResult:
    """What one export wrote."""

    partitions_written: int
    partitions_removed: int
    spans_written: int
    """Spans in the partitions written (whole partitions are rewritten)."""
    traces_exported: int
    """Traces with spans ingested since the last export."""
    up_to_date: bool


def export_lake(db_path: str, out: str | os.PathLike[str], *, buckets: int | None = None,
                lock_timeout: float = store.DEFAULT_LOCK_TIMEOUT) -> ExportResult:
    """Export (incrementally) the store at ``db_path`` into the lake at ``out``."""
    root = Path(out)
    state = read_state(root)
    if state and state.get("format") != LAKE_FORMAT:
        raise UsageError(f"{root / STATE_FILE} is not a fabric lake state ({state.get('format')!r})")
    if state and buckets is not None and buckets != state.get("buckets"):
        raise UsageError(f"the lake at {root} has {state.get('buckets')} buckets per day; --buckets {buckets} "
                         "would split traces", hint="export into a new directory to change the bucket count")
    n_buckets = int(state.get("buckets", buckets or DEFAULT_BUCKETS))  # type: ignore[arg-type]
    if n_buckets < 1:
        raise UsageError("--buckets must be at least 1")
    since = int(state.get("exported_file_id", 0))  # type: ignore[arg-type]
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = root / "_staging" / uuid.uuid4().hex
        staging.mkdir(parents=True)
    except OSError as exc:
        raise OutputError(f"cannot write the lake at {root}: {exc.strerror or exc}") from None
    con = store.connect(db_path, read_only=True, lock_timeout=lock_timeout, create=False)
    try:
        return _export(con, root, staging, n_buckets, since)
    except duckdb.Error as exc:
        raise DatabaseError(f"exporting the lake failed: {exc}") from None
    except OSError as exc:
        raise OutputError(f"cannot write the lake at {root}: {exc.strerror or exc}") from None
    finally:
        con.close()
        shutil.rmtree(staging, ignore_errors=True)
        try:
            (root / "_staging").rmdir()
        except OSError:
            pass


def _export(con: duckdb.DuckDBPyConnection, root: Path, staging: Path, buckets: int, since: int) -> ExportResult:
    last = con.execute("SELECT coalesce(max(file_id), 0) FROM files").fetchall()[0][0]
    if since > last:
        raise UsageError(f"the lake at {root} was exported from a store with more files (file id {since}) "
                         f"than this one ({last})", hint="export into a new directory")
    if since == last and (root / "spans").is_dir():
        return ExportResult(0, 0, 0, 0, True)
    key = (f"{DAY_SQL.format(col='min(start_ns)')} AS day, "
           f"{BUCKET_SQL.format(col='trace_id', buckets=buckets)} AS bucket")
    # the partition of every trace now, and (for traces with new spans) before the new spans
    con.execute(f"CREATE TEMP TABLE _lake_keys AS SELECT trace_id, {key} FROM span_store GROUP BY trace_id")
    con.execute("CREATE TEMP TABLE _lake_new AS SELECT DISTINCT trace_id FROM span_store WHERE file_id > ?", [since])
    con.execute(f"""
        CREATE TEMP TABLE _lake_parts AS
        SELECT DISTINCT day, bucket FROM _lake_keys SEMI JOIN _lake_new USING (trace_id)
        UNION
        SELECT DISTINCT day, bucket FROM (
            SELECT trace_id, {key} FROM span_store
            WHERE file_id <= ? AND trace_id IN (SELECT trace_id FROM _lake_new) GROUP BY trace_id)
    """, [since])
    cols = ", ".join(f"s.{c}" for c, _ in lake_types("spans"))
    spans_dir = staging / "spans"
    con.execute(f"""
        COPY (SELECT {cols}, k.day, k.bucket FROM span_store s JOIN _lake_keys k USING (trace_id)
              SEMI JOIN _lake_parts p USING (day, bucket)
              ORDER BY k.day, k.bucket, s.trace_id, s.start_ns, s.span_id)
        TO '{_sql_path(spans_dir)}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (day, bucket),
                                     FILENAME_PATTERN 'data_{{i}}', WRITE_PARTITION_COLUMNS false)
    """)
    parts = con.execute("SELECT day, bucket FROM _lake_parts ORDER BY 1, 2").fetchall()
    written = removed = 0
    for day, bucket in parts:
        target = root / "spans" / f"day={day}" / f"bucket={bucket}"
        produced = sorted((spans_dir / f"day={day}" / f"bucket={bucket}").glob("*.parquet"))
        if produced:
            target.mkdir(parents=True, exist_ok=True)
            _install(con, produced, target / "data.parquet", staging)
            written += 1
        elif (target / "data.parquet").exists():  # every trace left it (a late span moved its start)
            (target / "data.parquet").unlink()
            removed += 1
        for stale in target.glob("*.parquet") if target.is_dir() else ():
            if stale.name != "data.parquet":
                stale.unlink()
    for table in ("resources", "scopes"):
        order = "resource_id" if table == "resources" else "scope_id"
        tmp = staging / f"{table}.parquet"
        tcols = ", ".join(c for c, _ in lake_types(table))
        con.execute(f"COPY (SELECT {tcols} FROM {table} ORDER BY {order}) TO '{_sql_path(tmp)}' "
                    "(FORMAT parquet, COMPRESSION zstd)")
        (root / table).mkdir(exist_ok=True)
        os.replace(tmp, root / table / "data.parquet")
    spans, traces = con.execute("""
        SELECT (SELECT count(*) FROM span_store s JOIN _lake_keys k USING (trace_id) SEMI JOIN _lake_parts p
                USING (day, bucket)),
               (SELECT count(*) FROM _lake_new)
    """).fetchall()[0]
    write_state(root / STATE_FILE, {"format": LAKE_FORMAT, "buckets": buckets, "exported_file_id": last})
    return ExportResult(written, removed, int(spans), int(traces), False)


def _install(con: duckdb.DuckDBPyConnection, produced: list[Path], target: Path, staging: Path) -> None:
    """Rename the partition's new file over ``target`` (several files are merged into one first)."""
    if len(produced) == 1:
        os.replace(produced[0], target)
        return
    merged = staging / f"merged-{uuid.uuid4().hex}.parquet"
    files = ", ".join(f"'{_sql_path(p)}'" for p in produced)
    con.execute(f"COPY (SELECT * FROM read_parquet([{files}])) TO '{_sql_path(merged)}' "
                "(FORMAT parquet, COMPRESSION zstd)")
    os.replace(merged, target)


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
