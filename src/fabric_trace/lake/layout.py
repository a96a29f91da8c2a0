"""The Parquet lake: its directory layout, its column schemas and their validation (docs/lake.md).

::

    DIR/_fabric_lake.json                       written by ``fabric lake export`` (optional otherwise)
    DIR/spans/day=YYYY-MM-DD/bucket=N/*.parquet the span store, whole traces per partition
    DIR/resources/*.parquet                     resource rows the spans reference
    DIR/scopes/*.parquet                        instrumentation scopes (optional)
    DIR/derived/<table>/*.parquet               written by ``fabric analyze --engine spark``
    DIR/derived/_fabric_derived.json            what the derived tables were computed from

The columns are the store's (``store/schema.sql``): ``spans`` holds every
``span_store`` column except ``file_id`` and ``content_hash`` (bookkeeping of
one database), in any order. A lake written by a pipeline must match these
names and types; :func:`validate` says which file and column do not.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from fabric_trace.errors import InputNotFound, LakeError

#: The store columns a lake does not carry (they describe one database's ingests).
STORE_ONLY = ("file_id", "content_hash")
#: Lake tables and the store table each mirrors.
TABLES = {"spans": "span_store", "resources": "resources", "scopes": "scopes"}
#: Tables a lake must have (``scopes`` only feeds the ``spans`` view's scope columns).
REQUIRED = ("spans", "resources")
STATE_FILE = "_fabric_lake.json"
DERIVED_DIR = "derived"
DERIVED_STATE = "_fabric_derived.json"
#: Default number of trace-id hash buckets per day.
DEFAULT_BUCKETS = 16
LAKE_FORMAT = "fabric-lake/1"


@cache
def store_schema(table: str) -> pa.Schema:
    """Arrow schema of a store table (``store/schema.sql``), as DuckDB hands it to the kernels."""
    ddl = resources.files("fabric_trace.store").joinpath("schema.sql").read_text(encoding="utf-8")
    con = duckdb.connect()
    try:
        con.execute(ddl)
        return con.sql(f"SELECT * FROM {table} LIMIT 0").to_arrow_table().schema
    finally:
        con.close()


@cache
def store_types(table: str) -> tuple[tuple[str, str], ...]:
    """(column, DuckDB type) of a store table, in the store's order."""
    ddl = resources.files("fabric_trace.store").joinpath("schema.sql").read_text(encoding="utf-8")
    con = duckdb.connect()
    try:
        con.execute(ddl)
        return tuple((r[0], r[1]) for r in con.execute(f"DESCRIBE {table}").fetchall())
    finally:
        con.close()


def lake_schema(table: str) -> pa.Schema:
    """Arrow schema of a lake table (its store table without :data:`STORE_ONLY`)."""
    schema = store_schema(TABLES[table])
    return pa.schema([f for f in schema if f.name not in STORE_ONLY])


def lake_types(table: str) -> tuple[tuple[str, str], ...]:
    """(column, DuckDB type) of a lake table, in order."""
    return tuple((c, t) for c, t in store_types(TABLES[table]) if c not in STORE_ONLY)


def bucket_of(trace_id: str, buckets: int) -> int:
    """The hash bucket of a trace: the first 8 hex digits of md5(trace_id) modulo ``buckets``."""
    return int(hashlib.md5(trace_id.encode("utf-8")).hexdigest()[:8], 16) % buckets


#: The same in DuckDB SQL (``{col}`` and ``{buckets}`` filled in).
BUCKET_SQL = "CAST('0x' || md5({col})[1:8] AS UBIGINT) % {buckets}"
#: Day (UTC) of a start time in ns, as the ``day`` partition value.
DAY_SQL = "strftime(make_timestamp({col} // 1000), '%Y-%m-%d')"


def _compatible(want: pa.DataType, have: pa.DataType) -> bool:
    if want == have:
        return True
    strings = (pa.string(), pa.large_string(), pa.string_view())
    if want in strings:
        return have in strings or getattr(have, "storage_type", None) in strings
    if pa.types.is_list(want) and (pa.types.is_list(have) or pa.types.is_large_list(have)):
        return _compatible(want.value_type, have.value_type)
    return False


@dataclass(frozen=True)
class Lake:
    """A validated lake: its data files per table."""

    root: Path
    files: dict[str, list[Path]]

    @property
    def derived(self) -> Path:
        return self.root / DERIVED_DIR

    def fingerprint(self) -> str:
        """Fingerprint of the lake's data files (path, size, modification time)."""
        h = hashlib.sha256()
        for table in sorted(self.files):
            for f in self.files[table]:
                st = f.stat()
                h.update(f"{f.relative_to(self.root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()[:16]


def data_files(directory: Path) -> list[Path]:
    """Parquet files under ``directory`` (recursively), skipping hidden and ``_``-prefixed entries
    (staging, Spark's ``_SUCCESS``), sorted."""
    out: list[Path] = []
    if not directory.is_dir():
        return out
    for base, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        out.extend(Path(base) / n for n in sorted(names) if n.endswith(".parquet") and not n.startswith((".", "_")))
    return out


def open_lake(root: str | os.PathLike[str], *, check_traces: bool = True) -> Lake:
    """Find and validate a lake's data files (columns, types; every trace in one partition)."""
    path = Path(root).absolute()
    if not path.is_dir():
        raise InputNotFound(f"no lake at {path}: not a directory",
                        hint="write one with: fabric lake export --db DB --out DIR")
    files = {t: data_files(path / t) for t in TABLES}
    for table in REQUIRED:
        if not files[table]:
            raise LakeError(f"lake {path} has no {table} data: no Parquet file under {path / table}",
                            hint="docs/lake.md lists the layout and the columns")
    for table, paths in files.items():
        for f in paths:
            check_file(f, table)
    lake = Lake(path, files)
    if check_traces:
        check_whole_traces(lake)
    return lake


def check_file(path: Path, table: str) -> None:
    """Raise :class:`LakeError` naming ``path`` and the column if it does not match ``table``'s schema."""
    try:
        have = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise LakeError(f"{path}: not a readable Parquet file ({exc})") from None
    want = lake_schema(table)
    partition_cols = {"day", "bucket"} if table == "spans" else set()
    names = set(have.names)
    for field in want:
        if field.name not in names:
            raise LakeError(f"{path}: column {field.name!r} is missing (lake table {table!r} needs it, "
                            f"type {field.type})", hint="docs/lake.md lists the columns and types")
        got = have.field(field.name).type
        if not _compatible(field.type, got):
            raise LakeError(f"{path}: column {field.name!r} has type {got}, expected {field.type}",
                            hint="docs/lake.md lists the columns and types")
    extra = [n for n in have.names if n not in set(want.names) | partition_cols]
    if extra:
        raise LakeError(f"{path}: unexpected column {extra[0]!r} in lake table {table!r}",
                        hint="docs/lake.md lists the columns; store extra data in attributes")


def partition_of(path: Path, root: Path) -> str:
    """The partition directory of a spans file, relative to the ``spans`` table."""
    return str(path.parent.relative_to(root / "spans"))


def check_whole_traces(lake: Lake) -> None:
    """Raise :class:`LakeError` if a trace has spans in two partitions (names the trace and files)."""
    con = duckdb.connect()
    try:
        files = [str(f) for f in lake.files["spans"]]
        row = con.execute("""
            WITH t AS (SELECT trace_id, parse_dirpath(filename) AS dir, filename
                       FROM read_parquet(?, filename = true, hive_partitioning = false))
            SELECT trace_id, min(filename), max(filename) FROM t GROUP BY trace_id
            HAVING min(dir) <> max(dir) ORDER BY trace_id LIMIT 1
        """, [files]).fetchall()
    except duckdb.Error as exc:
        raise LakeError(f"lake {lake.root}: reading the spans failed: {exc}") from None
    finally:
        con.close()
    if row:
        trace, first, second = row[0]
        raise LakeError(f"trace {trace} is split across partitions: {first} and {second}",
                        hint="a lake partition must hold whole traces (partition by the day of the "
                             "trace's start and a trace-id hash bucket, docs/lake.md)")


def read_state(root: Path, name: str = STATE_FILE) -> dict[str, object]:
    """A JSON state file of the lake ({} when absent or unreadable)."""
    try:
        data = json.loads((root / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_state(path: Path, data: dict[str, object]) -> None:
    """Write a JSON state file atomically (write, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
