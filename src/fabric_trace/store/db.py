"""Opening the DuckDB store: locking, schema migration, read-only access.

DuckDB allows one writer process per file and has no busy timeout: a second
process gets ``IOException: Could not set lock on file ...`` at once, for
read-only opens too. :func:`connect` retries until ``lock_timeout`` and then
raises :class:`~fabric_trace.errors.DatabaseBusy` naming the holding process
(PID and command line, fabric or not).

Reading commands never write: :func:`open_readonly` opens the file read-only
(any number of readers share it), and :func:`open_overlay` gives an in-memory
connection over the store attached read-only, where stale derived tables can be
recomputed for one command without touching the file.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TypeVar

import duckdb

from fabric_trace.errors import DatabaseBusy, DatabaseError, NotADatabase, SchemaError

#: Version of the store's tables and views; bump on incompatible change.
SCHEMA_VERSION = "2"

DEFAULT_DB = "fabric.duckdb"
DEFAULT_LOCK_TIMEOUT = 10.0

T = TypeVar("T")

_LOCK_RE = re.compile(r"(?:held in (?P<prog>.*?) )?\(PID (?P<pid>\d+)\)")

#: Catalog name of the store inside an overlay connection (:func:`open_overlay`).
OVERLAY_CATALOG = "fabric_store"

#: The tables ``schema.sql`` creates: the ingested data. Every other table is derived.
BASE_TABLES = ("fabric_meta", "files", "resources", "scopes", "span_store", "quarantine")

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


def _holder(text: str) -> str:
    """``" (PID n: command line)"`` of the lock holder named in DuckDB's message, or ``""``."""
    m = _LOCK_RE.search(text)
    if not m:
        return ""
    pid = m.group("pid")
    what = m.group("prog") or ""
    try:  # the holder's command line says what it is (fabric or not); best effort
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
        what = " ".join(a.decode("utf-8", "replace") for a in argv if a) or what
    except OSError:
        pass
    what = "".join(ch if ch.isprintable() else "?" for ch in what)
    if len(what) > 80:
        what = what[:79] + "…"
    return f" (PID {pid}: {what})" if what else f" (PID {pid})"


def _retry_lock(path: str, lock_timeout: float, attempt: Callable[[], T]) -> T:
    """Call ``attempt`` until it stops failing on DuckDB's file lock, up to ``lock_timeout`` s."""
    deadline = time.monotonic() + max(0.0, lock_timeout)
    delay = 0.05
    while True:
        try:
            return attempt()
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" not in text.lower():
                raise DatabaseError(
                    f"cannot open database {path}: {text}",
                    hint="check the path; a damaged file is never deleted by fabric",
                ) from None
            if time.monotonic() >= deadline:
                snapshot = snapshot_path_for(path)
                hint = (f"if `fabric collect` is writing it, read its latest snapshot: --db {snapshot}"
                        if os.path.exists(snapshot) else "wait for that process to finish, or raise --lock-timeout")
                raise DatabaseBusy(
                    f"database {path} is locked by another process{_holder(text)}; "
                    f"gave up after {lock_timeout:g} s",
                    hint=hint,
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        except duckdb.Error as exc:
            raise DatabaseError(f"cannot open database {path}: {exc}") from None


def _open(path: str, read_only: bool, lock_timeout: float) -> duckdb.DuckDBPyConnection:
    return _retry_lock(path, lock_timeout,
                       lambda: duckdb.connect(path, read_only=read_only, config=_CONNECT_CONFIG))


def _require_file(path: str) -> None:
    """Refuse a path that is not an existing DuckDB database (nothing is created or touched)."""
    check_db_path(path)
    if not Path(path).exists():
        raise DatabaseError(
            f"database {path} does not exist",
            hint="ingest traces first:", command=("trace", "ingest", "PATH"),
        )


def open_readonly(path: str | os.PathLike[str], *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT
                  ) -> duckdb.DuckDBPyConnection:
    """Open the existing store read-only: the file's bytes are never changed.

    Works on a read-only file or mount; any number of readers may hold it at
    once (a writer still excludes them: retried up to ``lock_timeout``).
    TEMP tables may be created on the connection.
    """
    path = os.fspath(path)
    _require_file(path)
    con = _open(path, True, lock_timeout)
    try:
        check_schema(con, path)
    except BaseException:
        con.close()
        raise
    return con


def open_overlay(path: str | os.PathLike[str], *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT
                 ) -> duckdb.DuckDBPyConnection:
    """An in-memory connection over the store attached read-only, without its derived tables.

    The ingested data (:data:`BASE_TABLES`) is visible under its usual names
    (views over the attached file; ``fabric_meta`` is copied so a refresh can
    record its versions) with the documented views over it. Derived tables are
    absent: a refresh on this connection computes them in memory (spilling to a
    private temporary directory). The file itself is never written.
    """
    path = os.fspath(path)
    _require_file(path)
    con = duckdb.connect(":memory:", config=_CONNECT_CONFIG)
    try:
        quoted = path.replace("'", "''")
        _retry_lock(path, lock_timeout,
                    lambda: con.execute(f"ATTACH '{quoted}' AS {OVERLAY_CATALOG} (READ_ONLY)"))
        spill = os.path.join(tempfile.gettempdir(), f"fabric-overlay-{os.getpid()}.tmp")
        con.execute(f"SET temp_directory = '{spill.replace(chr(39), chr(39) * 2)}'")
        try:
            have = {r[0] for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'main'",
                [OVERLAY_CATALOG]).fetchall()}
            if "fabric_meta" not in have:
                raise SchemaError(f"{path} is not a fabric database (no fabric_meta table)",
                                  hint="point --db at a file written by `fabric trace ingest`")
            con.execute("CREATE TABLE fabric_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
            con.execute(f"INSERT INTO fabric_meta SELECT key, value FROM {OVERLAY_CATALOG}.main.fabric_meta")
            check_schema(con, path)
            for table in BASE_TABLES[1:]:
                if table in have:
                    con.execute(f"CREATE VIEW {table} AS SELECT * FROM {OVERLAY_CATALOG}.main.{table}")
            con.execute(_sql_resource("views.sql"))
        except duckdb.Error as exc:
            raise DatabaseError(f"cannot read database {path}: {exc}") from None
    except BaseException:
        con.close()
        raise
    return con


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
    if path != ":memory:" and (read_only or not create):
        _require_file(path)
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
