"""Library entry points that the CLI calls: one function per command.

Each opens the store, does the work, and returns plain results; none prints
or exits.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from fabric_trace import interrupts
from fabric_trace.config import load_config
from fabric_trace.errors import DatabaseError
from fabric_trace.ingest.limits import Limits
from fabric_trace.ingest.pipeline import IngestOptions, IngestSummary, ingest
from fabric_trace.store import db as store


def run_ingest(
    db_path: str,
    paths: list[str],
    *,
    config_path: str | None = None,
    lock_timeout: float = store.DEFAULT_LOCK_TIMEOUT,
    max_decompressed: int | None = None,
    max_line: int | None = None,
    batch_spans: int = 50_000,
    analyze: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> IngestSummary:
    """Ingest ``paths`` into the store at ``db_path`` (created if missing).

    Nothing is created or opened unless ``db_path`` is absent or a DuckDB file and at
    least one input can be read (:func:`check_inputs`).
    """
    store.check_db_path(db_path)
    check_inputs(paths)
    config = load_config(config_path)
    limits = Limits(**{k: v for k, v in (("max_decompressed_bytes", max_decompressed),
                                         ("max_line_bytes", max_line)) if v is not None})
    options = IngestOptions(limits=limits, batch_spans=batch_spans, projection=config.projection())
    con = store.connect(db_path, lock_timeout=lock_timeout)
    try:
        summary = ingest(con, db_path, paths, options, progress)
        if analyze and summary.total("spans_ingested"):
            try:
                refresh_derived(con, config)
            except DatabaseError as exc:  # the spans are committed: report them, then the failure
                exc.message += (f"; the {summary.total('spans_ingested'):,} new span(s) are committed and "
                                "reports compute the derived tables in memory until `fabric analyze` stores them")
                exc.hint = ("free disk space, then run: " if "no space left" in exc.message else "run: ") + \
                    f"fabric analyze --db {shlex.quote(db_path)}"
                summary.analysis_error = exc
        return summary
    finally:
        con.close()


def check_inputs(paths: list[str]) -> None:
    """Raise :class:`~fabric_trace.errors.InputNotFound` unless some input can be read.

    A missing path (or a glob matching nothing) is refused as in the ingest itself;
    directories holding no trace files, or only files that cannot be opened, too.
    """
    import os

    from fabric_trace.errors import InputNotFound
    from fabric_trace.ingest.sources import expand

    sources = expand(paths)
    if not sources:
        raise InputNotFound(f"no trace files found in {', '.join(paths)}",
                            hint="hidden files, databases and *.md/*.txt/*.py/*.toml files are skipped")
    if not any(s.is_stdin or os.access(s.path, os.R_OK) for s in sources):
        raise InputNotFound(f"none of the inputs can be read: {', '.join(s.path for s in sources[:5])}")


def refresh_derived(con: Any, config: Any) -> None:
    """Recompute the derived tables (call graphs, findings) if the data, the analyzers or the config changed."""
    from fabric_trace.analyzers.engine import refresh

    refresh(con, config)


def run_query(db_path: str, sql: str, *, lock_timeout: float = store.DEFAULT_LOCK_TIMEOUT,
              notify: Callable[[str], None] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one read-only SQL statement; returns (column names, rows).

    The database is only read: stale derived tables are computed in memory
    (:func:`open_for_reading`, with the default config) and ``notify`` is told so.
    """
    from fabric_trace.query import run_read_only

    con = open_for_reading(db_path, None, lock_timeout=lock_timeout, notify=notify)
    try:
        return run_read_only(con, sql)
    finally:
        con.close()


_UNITS_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def parse_skew(value: str | None) -> int | None:
    """Parse ``--adjust-skew``: ``500ms``, ``2s``, ``1500us``, plain ns, or ``auto`` (no limit)."""
    from fabric_trace.errors import UsageError

    if value is None:
        return None
    v = value.strip().lower()
    if v in ("auto", "on", "true", ""):
        return 2**62
    for unit in sorted(_UNITS_NS, key=len, reverse=True):
        if v.endswith(unit):
            number = v[: -len(unit)].strip()
            break
    else:
        unit, number = "ns", v
    try:
        amount = float(number)
    except ValueError:
        raise UsageError(f"bad --adjust-skew value {value!r}", hint="use e.g. 500ms, 2s, or auto") from None
    if amount < 0:
        raise UsageError("--adjust-skew must not be negative")
    return int(amount * _UNITS_NS[unit])


def analysis_config(config_path: str | None, adjust_skew: str | None = None) -> Any:
    """The config the analyzers run with: the file's, with ``--adjust-skew`` applied."""
    from dataclasses import replace

    config = load_config(config_path)
    skew = parse_skew(adjust_skew)
    if skew is not None:
        data = dict(config.data)
        data["latency"] = {**data.get("latency", {}), "adjust_skew_max_ns": skew}
        config = replace(config, data=data)
    return config


class _LakeAnalyzed:
    """Context manager: a DuckDB connection over a lake whose derived tables are fresh."""

    def __init__(self, root: str, config_path: str | None, adjust_skew: str | None) -> None:
        self.root, self.config_path, self.adjust_skew = root, config_path, adjust_skew
        self.con: Any = None

    def __enter__(self) -> Any:
        from fabric_trace.lake.read import connect_lake

        self.con = connect_lake(self.root, analysis_config(self.config_path, self.adjust_skew))
        return self.con

    def __exit__(self, *exc: object) -> None:
        if self.con is not None:
            self.con.close()


def open_lake_analyzed(root: str, config_path: str | None = None, *, adjust_skew: str | None = None) -> _LakeAnalyzed:
    """Open the lake at ``root`` for reading (DuckDB over its Parquet); its derived tables must be fresh
    (``fabric analyze --engine spark --lake DIR``)."""
    return _LakeAnalyzed(root, config_path, adjust_skew)


def run_lake_query(root: str, sql: str, config_path: str | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one read-only SQL statement over the lake at ``root`` (no file access outside it)."""
    from fabric_trace.lake.read import harden
    from fabric_trace.query import execute_read_only

    with open_lake_analyzed(root, config_path) as con:
        harden(con, root)
        return execute_read_only(con, sql)


def export_lake(db_path: str, out: str, *, buckets: int | None = None,
                lock_timeout: float = store.DEFAULT_LOCK_TIMEOUT) -> Any:
    """Export the store into a Parquet lake (incrementally); see :mod:`fabric_trace.lake.export`."""
    from fabric_trace.lake.export import export_lake as run

    return run(db_path, out, buckets=buckets, lock_timeout=lock_timeout)


def analyze_lake_spark(root: str, config_path: str | None, *, master: str | None = None,
                       conf: dict[str, str] | None = None, adjust_skew: str | None = None) -> Any:
    """Run every registered analyzer on Spark over the lake; see :mod:`fabric_trace.lake.spark.engine`."""
    from fabric_trace.lake.spark.engine import analyze_lake

    return analyze_lake(root, analysis_config(config_path, adjust_skew), master=master, conf=conf)


class _Analyzed:
    """Context manager: an open store whose derived tables are fresh."""

    def __init__(self, path: str, config_path: str | None, lock_timeout: float, adjust_skew: str | None,
                 write: bool, notify: Callable[[str], None] | None) -> None:
        self.path, self.config_path, self.lock_timeout, self.adjust_skew = path, config_path, lock_timeout, adjust_skew
        self.write, self.notify = write, notify
        self.con: Any = None

    def __enter__(self) -> Any:
        config = analysis_config(self.config_path, self.adjust_skew)
        if not self.write:
            self.con = open_for_reading(self.path, config, lock_timeout=self.lock_timeout, notify=self.notify)
            return self.con
        self.con = store.connect(self.path, lock_timeout=self.lock_timeout, create=False)
        try:
            interrupts.pause_point("read")
            refresh_derived(self.con, config)
        except BaseException:
            self.con.close()
            raise
        return self.con

    def __exit__(self, *exc: object) -> None:
        if self.con is not None:
            self.con.close()


def open_analyzed(path: str, config_path: str | None = None, *, lock_timeout: float = store.DEFAULT_LOCK_TIMEOUT,
                  adjust_skew: str | None = None, write: bool = False,
                  notify: Callable[[str], None] | None = None) -> _Analyzed:
    """Open the store at ``path`` with up-to-date derived tables.

    By default the store is only read (:func:`open_for_reading`); ``write=True``
    (``fabric analyze``, ``fabric demo``) opens it for writing and stores the
    refreshed tables.
    """
    return _Analyzed(path, config_path, lock_timeout, adjust_skew, write, notify)


def _stale_reason(con: Any) -> str:
    """Why the stored derived tables do not fit (on a connection where :func:`is_stale` is true)."""
    meta = dict(con.execute("SELECT key, value FROM fabric_meta").fetchall())
    if "derived_version" not in meta:
        return "the derived tables (call graphs, findings) have not been computed yet"
    if meta.get("derived_version") != meta.get("data_version"):
        return "traces were ingested since the derived tables (call graphs, findings) were computed"
    return "the stored derived tables were computed with another configuration or fabric version"


def open_for_reading(path: str, config: Any, *, lock_timeout: float = store.DEFAULT_LOCK_TIMEOUT,
                     notify: Callable[[str], None] | None = None) -> Any:
    """A connection to the store whose derived tables match its data, the analyzers and ``config``.

    The file is never written. When the stored derived tables are fresh, the
    store is opened read-only (:func:`fabric_trace.store.db.open_readonly`);
    otherwise they are recomputed in memory over the store attached read-only
    (:func:`fabric_trace.store.db.open_overlay`) and ``notify`` is told why
    and how to store them (``fabric analyze``). ``config=None`` accepts the
    stored tables whatever config computed them; stale ones are then recomputed
    with the default config (:func:`fabric_trace.config.load_config`).
    """
    from fabric_trace.analyzers.engine import is_stale, refresh

    con = store.open_readonly(path, lock_timeout=lock_timeout)
    try:
        interrupts.pause_point("read")
        if not is_stale(con, config):
            return con
        why = _stale_reason(con)
    except BaseException:
        con.close()
        raise
    con.close()
    con = store.open_overlay(path, lock_timeout=lock_timeout)
    try:
        refresh(con, load_config(None) if config is None else config, force=True)
    except BaseException:
        con.close()
        raise
    if notify is not None:
        notify(f"{why}; computed them in memory for this command (the database is not changed). "
               f"To store them: fabric analyze --db {shlex.quote(path)}")
    return con


def demo_paths(workdir: str) -> list[str]:
    """The bundled demo traces, written into ``workdir``.

    They are produced by the bundled deterministic generator
    (``fabric_trace.fixtures_gen.catalog.DEMO``); the bytes are identical to the
    committed ``fixtures/demo/`` files (a test checks this), so an installed
    fabric needs no data files. Both encodings are written: OTLP JSON lines and
    Collector-framed protobuf of the same spans (the second ingests as duplicates).
    """
    from pathlib import Path

    from fabric_trace.fixtures_gen import generate, write_otlp_jsonl, write_otlp_proto
    from fabric_trace.fixtures_gen.catalog import DEMO, SPANS_PER_REQUEST

    out = Path(workdir)
    out.mkdir(parents=True, exist_ok=True)
    gen = generate(DEMO)
    jsonl, binary = out / "demo.jsonl", out / "demo.bin"
    write_otlp_jsonl(gen, jsonl, spans_per_request=SPANS_PER_REQUEST)
    write_otlp_proto(gen, binary, framed=True, spans_per_request=SPANS_PER_REQUEST)
    return [str(jsonl), str(binary)]


def demo_reports(db_path: str) -> dict[str, Any]:
    """Every registered analyzer's report (default options), on the demo database, by analyzer name."""
    from fabric_trace.analyzers import registry
    from fabric_trace.model import ReportFilter

    with open_analyzed(db_path, write=True) as con:
        return {a.name: a.report.build(con, ReportFilter()) for a in registry().values() if a.report is not None}


class _CollectSession:
    """Context manager: the store opened for writing and a :class:`~fabric_trace.collect.Collector` on it."""

    def __init__(self, db_path: str, options: Any, config_path: str | None, lock_timeout: float) -> None:
        self.db_path, self.options, self.config_path, self.lock_timeout = db_path, options, config_path, lock_timeout
        self.con: Any = None
        self.config: Any = None

    def __enter__(self) -> Any:
        from fabric_trace.collect import Collector

        self.config = load_config(self.config_path)
        self.con = store.connect(self.db_path, lock_timeout=self.lock_timeout)
        try:
            return Collector(self.con, self.db_path, self.config.projection(), self.options)
        except BaseException:
            self.con.close()
            raise

    def refresh(self, con: Any) -> None:
        """Bring the derived tables up to date (what every report does first)."""
        refresh_derived(con, self.config)

    def __exit__(self, *exc: object) -> None:
        if self.con is not None:
            self.con.close()


def open_collector(db_path: str, options: Any, *, config_path: str | None = None,
                   lock_timeout: float = store.DEFAULT_LOCK_TIMEOUT) -> _CollectSession:
    """Open the store at ``db_path`` (created if missing) and bind ``fabric collect``'s listener."""
    return _CollectSession(db_path, options, config_path, lock_timeout)
