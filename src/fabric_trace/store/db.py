"""Opening the DuckDB store: locking, schema migration, read-only access.

DuckDB allows one writer process per file and has no busy timeout: a second
process gets ``IOException: Could not set lock on file ...`` at once, for
read-only opens too. :func:`connect` retries until ``lock_timeout`` and then
raises :class:`~fabric_trace.errors.DatabaseBusy` naming the holder's PID.
"""

from __future__ import annotations

import os
import re
import time
from importlib import resources
from pathlib import Path

import duckdb

from fabric_trace.errors import DatabaseBusy, DatabaseError, NotADatabase, SchemaError

#: Version of the store's tables and views; bump on incompatible change.
SCHEMA_VERSION = "2"

DEFAULT_DB = "fabric.duckdb"
DEFAULT_LOCK_TIMEOUT = 10.0

_LOCK_RE = re.compile(r"\(PID (?P<pid>\d+)\)")

#: Bytes 8-11 of every DuckDB database file.
DUCKDB_MAGIC = b"DUCK"

#: Connection settings of every store connection: DuckDB never downloads or loads an
#: extension on its own (a SQLite or Parquet path would otherwise make it fetch one).
_CONNECT_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


def default_db_path() -> str:
    """The database path: ``$FABRIC_DB`` or ``fabric.duckdb`` in the working directory."""
    return os.environ.get("FABRIC_DB") or DEFAULT_DB


def snapshot_path_for(db_path: str) -> str:
    """Where ``fabric collect`` publishes snapshots of ``db_path``: ``run.duckdb`` -> ``run.snapshot.duckdb``."""
    root, ext = os.path.splitext(db_path)
    return f"{root}.snapshot{ext or '.duckdb'}"


def is_duckdb_file(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a DuckDB database file, judged by its header (never by its name)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head[8:12] == DUCKDB_MAGIC


def _describe(path: Path) -> str:
    """A few words on what a non-DuckDB file looks like, for the refusal message."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not head:
        return "is empty"
    if head.startswith(b"SQLite format 3"):
        return "is a SQLite database"
    if head.startswith(b"PAR1"):
        return "is a Parquet file"
    if head.lstrip()[:1] in (b"{", b"["):
        return "looks like JSON"
    return "does not start with a DuckDB header"


def check_db_path(path: str) -> None:
    """Refuse a ``--db`` path that exists but is not a DuckDB database file.

    fabric never writes into, converts or deletes such a file: DuckDB opens some
    other files (CSV, JSON) as read-only views and a SQLite file through an
    extension, which would make an ingest look successful while storing nothing.
    """
    if path == ":memory:":
        return
    p = Path(path)
    if not p.exists():
        return
    if p.is_dir():
        raise NotADatabase(f"{path} is a directory, not a database file",
                           hint="pass a file path, e.g. --db " + str(p / DEFAULT_DB))
    if not is_duckdb_file(p):
        raise NotADatabase(
            f"{path} is not a DuckDB database: the file {_describe(p)}; fabric left it untouched",
            hint="pass a new file name (fabric creates it) or an existing fabric database, e.g. --db fabric.duckdb",
        )


def _sql_resource(name: str) -> str:
    return resources.files("fabric_trace.store").joinpath(name).read_text(encoding="utf-8")


def _open(path: str, read_only: bool, lock_timeout: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + max(0.0, lock_timeout)
    delay = 0.05
    while True:
        try:
            return duckdb.connect(path, read_only=read_only, config=_CONNECT_CONFIG)
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" not in text.lower():
                raise DatabaseError(
                    f"cannot open database {path}: {text}",
                    hint="check the path; a damaged file is never deleted by fabric",
                ) from None
            if time.monotonic() >= deadline:
                m = _LOCK_RE.search(text)
                holder = f" (held by PID {m.group('pid')})" if m and m.group("pid") else ""
                snapshot = snapshot_path_for(path)
                hint = (f"if `fabric collect` is writing it, read its latest snapshot: --db {snapshot}"
                        if os.path.exists(snapshot) else "wait for the other ingest to finish, or raise --lock-timeout")
                raise DatabaseBusy(
                    f"database {path} is locked by another fabric process{holder}; "
                    f"gave up after {lock_timeout:g} s",
                    hint=hint,
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        except duckdb.Error as exc:
            raise DatabaseError(f"cannot open database {path}: {exc}") from None


def connect(
    path: str | os.PathLike[str],
    *,
    read_only: bool = False,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    create: bool = True,
) -> duckdb.DuckDBPyConnection:
    """Open (and if needed create and migrate) the store at ``path``.

    ``read_only`` connections refuse to create a missing database.
    """
    path = os.fspath(path)
    check_db_path(path)
    exists = path == ":memory:" or Path(path).exists()
    if not exists and (read_only or not create):
        raise DatabaseError(
            f"database {path} does not exist",
            hint="ingest traces first:", command=("trace", "ingest", "PATH"),
        )
    con = _open(path, read_only, lock_timeout)
    try:
        if read_only:
            check_schema(con, path)
        else:
            migrate(con, path)
    except BaseException:
        con.close()
        raise
    return con


def check_schema(con: duckdb.DuckDBPyConnection, path: str) -> None:
    """Raise :class:`SchemaError` unless the store has fabric's current schema version."""
    try:
        row = con.execute("SELECT value FROM fabric_meta WHERE key = 'schema_version'").fetchone()
    except duckdb.CatalogException:
        raise SchemaError(
            f"{path} is not a fabric database (no fabric_meta table)",
            hint="point --db at a file written by `fabric trace ingest`",
        ) from None
    except duckdb.Error as exc:
        raise DatabaseError(f"cannot read database {path}: {exc}") from None
    version = row[0] if row else None
    if version != SCHEMA_VERSION:
        raise SchemaError(
            f"{path} has fabric schema version {version}, this fabric needs {SCHEMA_VERSION}",
            hint="re-ingest the traces into a new database",
        )


def migrate(con: duckdb.DuckDBPyConnection, path: str) -> None:
    """Create the tables and views if missing; refuse a database of another schema version."""
    try:
        has_meta = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'fabric_meta' AND schema_name = 'main'"
        ).fetchone()[0]
        if has_meta:
            check_schema(con, path)
            con.execute(_sql_resource("views.sql"))
            return
        n_tables = con.execute("SELECT count(*) FROM duckdb_tables()").fetchone()[0]
        if n_tables:
            raise SchemaError(
                f"{path} is a DuckDB database but not a fabric one",
                hint="use a new --db file for fabric",
            )
        con.execute("BEGIN")
        con.execute(_sql_resource("schema.sql"))
        con.execute(_sql_resource("views.sql"))
        con.execute(
            "INSERT INTO fabric_meta VALUES ('schema_version', ?), ('data_version', '0')",
            [SCHEMA_VERSION],
        )
        con.execute("COMMIT")
    except duckdb.Error as exc:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        raise DatabaseError(f"cannot initialise database {path}: {exc}") from None


def harden_read_only(con: duckdb.DuckDBPyConnection) -> None:
    """Forbid file and network access for the rest of this connection (used by ``fabric query``).

    Extensions are neither downloaded nor loaded on demand, so a function of an
    extension (``sqlite_scan``, ``iceberg_scan``, ``read_xlsx``...) is an
    unknown function: a usage error, not an I/O error.
    """
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
