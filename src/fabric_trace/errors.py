"""fabric's one error hierarchy.

The library raises these; only ``fabric_trace.cli.errors`` turns them into a
message on stderr and an exit code. Exit codes are a documented contract
(docs/exit-codes.md) and are defined here, once.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of the ``fabric`` command (stable; see docs/exit-codes.md)."""

    OK = 0
    CHECK_FAILED = 1  # a gate check failed (a real regression / budget breach)
    USAGE = 2  # bad command line, bad --where filter, bad SQL
    DATA = 65  # input data unusable (nothing could be loaded, or --strict with quarantined records)
    NO_INPUT = 66  # input path missing or unreadable
    UNAVAILABLE = 69  # fabric collect cannot listen on the address (in use, not permitted); Spark/Java missing
    INTERNAL = 70  # a bug in fabric (EX_SOFTWARE)
    ENGINE = 71  # the analysis engine (Spark) failed while running; no derived table written
    CANNOT_WRITE = 73  # cannot write an output file
    DB_ERROR = 74  # database corrupt, I/O error, disk full
    DB_BUSY = 75  # database locked by another writer beyond the lock timeout
    CONFIG = 78  # bad configuration file
    INTERRUPTED = 130  # Ctrl-C


class FabricError(Exception):
    """Base of every error fabric reports to a user.

    ``hint`` says what to do next; ``exit_code`` is the process exit code.
    ``command`` is a fabric command line (the words after ``fabric``) that the
    hint ends with; the CLI prints it paste-able, with the ``--db`` in use.
    """

    exit_code: ExitCode = ExitCode.DATA

    def __init__(self, message: str, *, hint: str | None = None, command: tuple[str, ...] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.command = command


class UsageError(FabricError):
    """The command was called wrongly (bad option, bad filter, bad SQL)."""

    exit_code = ExitCode.USAGE


class ConfigError(FabricError):
    """The configuration file is missing, unreadable or invalid."""

    exit_code = ExitCode.CONFIG


class InputError(FabricError):
    """Input data that cannot be used at all (nothing loadable)."""

    exit_code = ExitCode.DATA


class DecodeError(InputError):
    """One record (line, frame, document, span) could not be decoded.

    Decoders raise it for a single record; the ingest pipeline catches it,
    quarantines the record and goes on with the rest of the file.
    """


class InputNotFound(FabricError):
    """An input path does not exist or cannot be read."""

    exit_code = ExitCode.NO_INPUT


class ListenError(FabricError):
    """``fabric collect`` cannot listen on the requested address."""

    exit_code = ExitCode.UNAVAILABLE


class NotADatabase(UsageError):
    """``--db`` names an existing file that is not a DuckDB database (left untouched)."""


class OutputError(FabricError):
    """An output file cannot be written."""

    exit_code = ExitCode.CANNOT_WRITE


class DatabaseError(FabricError):
    """The database file is corrupt, unreadable, or an I/O error occurred."""

    exit_code = ExitCode.DB_ERROR


class DatabaseBusy(FabricError):
    """Another process holds the database lock beyond the lock timeout."""

    exit_code = ExitCode.DB_BUSY


class SchemaError(DatabaseError):
    """The database was written by an incompatible version of fabric."""


class InternalError(FabricError):
    """A fault inside fabric (a bug), reported as such: never blamed on the input."""

    exit_code = ExitCode.INTERNAL


class Interrupted(FabricError):
    """The user interrupted the command (Ctrl-C)."""

    exit_code = ExitCode.INTERRUPTED


class GateFailed(FabricError):
    """A gate check failed. Raised only to carry exit code 1 through the CLI."""

    exit_code = ExitCode.CHECK_FAILED


class LakeError(InputError):
    """A Parquet lake that cannot be analysed as it is: missing or extra columns, wrong types,
    a trace split across partitions, derived tables missing or stale (the message names the
    file and column)."""


class EngineUnavailable(FabricError):
    """The requested analysis engine cannot start (``--engine spark`` without pyspark or Java 17+)."""

    exit_code = ExitCode.UNAVAILABLE


class EngineFailed(FabricError):
    """The analysis engine (Spark) failed while running (e.g. out of memory in one group);
    no derived table was written."""

    exit_code = ExitCode.ENGINE
    INTERNAL = 70  # a bug in fabric (EX_SOFTWARE)


def write_failure(what: str, exc: BaseException, *, hint: str | None = None) -> DatabaseError:
    """A :class:`DatabaseError` for a failed write that names the cause first.

    DuckDB reports a full disk deep inside its message (``Failed to commit:
    Could not write file ...: No space left on device``); the message starts
    with the cause so that it is the first thing read.
    """
    text = str(exc)
    low = text.lower()
    if "no space left on device" in low or "disk full" in low or "disk is full" in low:
        cause, default_hint = "no space left on device", "free disk space, then run the command again"
    elif "read-only file system" in low or "permission denied" in low:
        cause, default_hint = "the database file cannot be written", "check the file's permissions and mount"
    else:
        cause, default_hint = "database error", None
    return DatabaseError(f"{what} failed: {cause} ({text})", hint=hint or default_hint)
