"""The two sides of a comparison: a fabric database, or trace files ingested on the fly.

``--baseline`` and ``--candidate`` each name either one fabric DuckDB file or
any number of trace files / directories / globs. Trace files are ingested into
a database in a temporary directory (removed afterwards); a database is only
read, never changed: if its derived tables do not match its data or the config
of the other side they are recomputed in memory, so both are analysed by the
same rules (a read-only file or mount works).
"""

from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from fabric_trace.config import Config
from fabric_trace.errors import FabricError, InputError, InputNotFound, UsageError
from fabric_trace.store import db as store

#: Magic bytes of a DuckDB database file (at offset 8).


@dataclass
class Side:
    """One opened, analysed side."""

    label: str
    """``baseline`` or ``candidate``."""
    source: str
    """What it was made from (a database path, or the trace paths)."""
    kind: str
    """``database`` or ``traces``."""
    con: duckdb.DuckDBPyConnection
    spans_ingested: int | None = None
    """For ``traces``: spans loaded by the on-the-fly ingest."""


def is_database(path: str) -> bool:
    """True when ``path`` is a DuckDB database file (by its header, not its name)."""
    return store.is_duckdb_file(path)


def _relabel(exc: FabricError, label: str) -> FabricError:
    """The same error with the side named in front of its message."""
    new = type(exc)(f"{label}: {exc.message}", hint=exc.hint)
    return new


class Sides:
    """Context manager opening both sides; closes them and removes temporary files on exit."""

    def __init__(self, baseline: list[str], candidate: list[str], config: Config, *,
                 config_path: str | None = None, lock_timeout: float = store.DEFAULT_LOCK_TIMEOUT) -> None:
        self.specs = {"baseline": list(baseline), "candidate": list(candidate)}
        self.config = config
        self.config_path = config_path
        self.lock_timeout = lock_timeout
        self._stack = ExitStack()
        self._tmp: str | None = None
        self._opened: dict[str, duckdb.DuckDBPyConnection] = {}

    def __enter__(self) -> tuple[Side, Side]:
        try:
            base = self._open("baseline")
            cand = self._open("candidate")
        except BaseException:
            self._stack.close()
            raise
        return base, cand

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _tmpdir(self) -> str:
        if self._tmp is None:
            self._tmp = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="fabric-gate-"))
        return self._tmp

    def _open(self, label: str) -> Side:
        paths = self.specs[label]
        if not paths:
            raise UsageError(f"no {label} given", hint=f"pass --{label} DB_OR_TRACE_FILES")
        try:
            databases = [p for p in paths if is_database(p)]
            if databases:
                if len(paths) > 1:
                    raise UsageError(
                        f"{label}: give either one fabric database or trace files, not both or several databases",
                        hint="merge trace files with `fabric trace ingest` first")
                return self._open_database(label, databases[0])
            return self._ingest(label, paths)
        except FabricError as exc:
            if exc.message.startswith(f"{label}: "):
                raise
            raise _relabel(exc, label) from None

    def _open_database(self, label: str, path: str) -> Side:
        real = os.path.realpath(path)
        con = self._opened.get(real)
        if con is None:
            # Only read: stale derived tables are recomputed in memory, the file never changes.
            from fabric_trace.service import open_for_reading

            con = open_for_reading(path, self.config, lock_timeout=self.lock_timeout)
            self._stack.callback(con.close)
            self._opened[real] = con
        _require_traces(con, path)
        return Side(label, path, "database", con)

    def _ingest(self, label: str, paths: list[str]) -> Side:
        from fabric_trace.service import run_ingest

        for p in paths:
            if p != "-" and not any(ch in p for ch in "*?[") and not Path(p).exists():
                raise InputNotFound(f"{p} does not exist")
        target = os.path.join(self._tmpdir(), f"{label}.duckdb")
        summary = run_ingest(target, paths, config_path=self.config_path, lock_timeout=self.lock_timeout)
        spans = int(summary.total("spans_ingested"))
        if spans == 0:
            raise InputError(f"no spans could be loaded from {', '.join(paths)}",
                             hint="check the files with `fabric trace ingest` to see why")
        con = store.connect(target, lock_timeout=self.lock_timeout, create=False)
        self._stack.callback(con.close)
        _analyse(con, self.config)
        _require_traces(con, ", ".join(paths))
        return Side(label, ", ".join(paths), "traces", con, spans_ingested=spans)


def _analyse(con: duckdb.DuckDBPyConnection, config: Config) -> None:
    """Bring the derived tables up to date (the one freshness check: data, analyzers, config)."""
    from fabric_trace.analyzers.engine import refresh

    refresh(con, config)


def _require_traces(con: duckdb.DuckDBPyConnection, what: Any) -> None:
    n = con.execute("SELECT count(*) FROM traces").fetchone()[0]
    if not n:
        raise InputError(f"{what} holds no traces", hint="ingest the traces of the run first")
