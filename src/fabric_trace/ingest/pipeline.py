"""Ingest: sources -> decoders -> batches -> DuckDB, one transaction per file.

Each file is committed in a single transaction together with its manifest
row in ``files``; an interrupted ingest (Ctrl-C, kill -9) leaves the database
as it was after the last committed file, and a rerun completes it (already
committed files are recognised by sha256 and skipped). DuckDB 2.x rolls back
silently on COMMIT after an error, so every commit is verified by reading
the manifest row back.

A file is first written in the writer's fast mode (plain INSERTs, see
:mod:`.writer`); if one of its spans exists already, the transaction is rolled
back and the file is read and written again in safe mode, which classifies
duplicates and conflicts. Standard input is first copied to a temporary file
(:class:`~.sources.StdinSpool`) so that it can be read twice too.

Canonical OTLP/JSON lines are decoded by the typed fast path
(:mod:`.otlp_json_fast`), every other record by the general decoders; both give
the same rows. Decoding (Python, on the calling thread) and writing (DuckDB, on a background
thread) overlap: while DuckDB inserts one batch the next is decoded. A file whose
size matches no manifest row is hashed while it is read (on a helper thread),
otherwise it is hashed first to recognise a file ingested before.
"""

from __future__ import annotations

import gc
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import duckdb
import pyarrow as pa

from fabric_trace import interrupts
from fabric_trace.errors import DatabaseError, FabricError, InputError, InternalError, Interrupted, write_failure
from fabric_trace.ingest.batch import SpanBatch
from fabric_trace.ingest.limits import Limits
from fabric_trace.ingest.normalize import Projection, compile_projection
from fabric_trace.ingest.otlp_json_fast import decode_otlp_line
from fabric_trace.ingest.sources import HashingReader, Source, SpooledStdin, StdinSpool, expand, sha256_file
from fabric_trace.ingest.writer import BatchResult, KeyCollision, Prepared, StoreWriter, merge_prepared
from fabric_trace.ingest.writer_stream import StreamInsert

DEFAULT_BATCH_SPANS = 50_000
#: Spans decoded between two conversions to Arrow (see _FlushingBatch).
STAGE_SPANS = 4_096
_SWITCH_INTERVAL = 0.001  # seconds; see ingest()
_WRITE_BUFFER_ROW_GROUPS = 1  # see ingest()


@dataclass
class FileResult:
    """What happened to one input file."""

    path: str
    format: str = "unknown"
    sha256: str = ""
    size_bytes: int = 0
    status: str = "ingested"  # ingested | already-ingested | failed
    spans_decoded: int = 0
    spans_ingested: int = 0
    spans_duplicate: int = 0
    spans_rejected: int = 0
    records_rejected: int = 0
    repairs: int = 0
    traces: int = 0
    error: str | None = None
    messages: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "messages"}


@dataclass
class IngestSummary:
    """Totals of one ``fabric trace ingest`` run (the ``--json`` summary)."""

    db: str
    files: list[FileResult] = field(default_factory=list)
    traces: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    #: The error that stopped the analysis after the spans were committed (the spans are kept).
    analysis_error: FabricError | None = None

    def total(self, key: str) -> int:
        return sum(int(getattr(f, key)) for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        """The documented JSON summary (docs/cli.md)."""
        return {
            "db": self.db,
            "files": len(self.files),
            "files_ingested": sum(1 for f in self.files if f.status == "ingested"),
            "files_skipped": sum(1 for f in self.files if f.status == "already-ingested"),
            "files_failed": sum(1 for f in self.files if f.status == "failed"),
            "spans_decoded": self.total("spans_decoded"),
            "spans_ingested": self.total("spans_ingested"),
            "spans_duplicate": self.total("spans_duplicate"),
            "spans_rejected": self.total("spans_rejected"),
            "records_rejected": self.total("records_rejected"),
            "repairs": self.total("repairs"),
            "traces": self.traces,
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
            "per_file": [f.as_dict() for f in self.files],
        }


ProgressFn = Callable[[str, int, int], None]  # (path, bytes_done, spans_done)


class _BackgroundWriter:
    """Applies prepared batches to the store on one worker thread.

    DuckDB releases the GIL while it executes, so the next batch is decoded on
    the calling thread while the previous one is normalized and inserted: on
    two cores the two halves of the ingest overlap. The connection is used by
    the worker only between :meth:`submit` and :meth:`drain`; the caller uses it
    (BEGIN, manifest, COMMIT) only when drained.

    With ``stream`` (fast mode), the first batch starts one ``INSERT`` for the whole
    file (:class:`~.writer_stream.StreamInsert`) that takes every later batch as it is
    submitted; :meth:`drain` ends it.
    """

    def __init__(self, writer: StoreWriter, con: duckdb.DuckDBPyConnection, stream: bool = False) -> None:
        self._writer = writer
        self._con = con
        self._stream = stream
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._end_taken = False
        self._thread = threading.Thread(target=self._run, name="fabric-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if item is not _END and self._error is None:
                    if self._stream:
                        self._run_stream(item)
                    else:
                        self._apply(item)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller in drain()
                self._error = exc
            finally:
                self._queue.task_done()
                if self._end_taken:  # the stream took the end mark: it is done only now
                    self._end_taken = False
                    self._queue.task_done()

    def _apply(self, item: tuple[Any, ...]) -> None:
        job, prep, quarantine, file_id, path, result = item
        out = self._writer.apply(prep, file_id)
        _account(result, job, out)
        quarantine += [(w, "rejected", reason, t, s, None) for w, t, s, reason in out.conflicts]
        if quarantine:
            _write_quarantine(self._con, file_id, path, quarantine)

    def _run_stream(self, first: tuple[Any, ...]) -> None:
        job, prep, quarantine, file_id, path, result = first
        pending: list[tuple[Any, ...]] = []

        def take(item: tuple[Any, ...]) -> Prepared:
            job, prep, quarantine, _, _, result = item
            _account(result, job, BatchResult(decoded=prep.decoded, inserted=prep.decoded))
            pending.extend(quarantine)
            return prep

        def more() -> Prepared | None:
            item = self._queue.get()
            if item is _END:  # done when the INSERT is (see _run)
                self._end_taken = True
                return None
            self._queue.task_done()
            return take(item)

        insert = StreamInsert(self._writer, file_id)
        try:
            insert.run(take(first), more)
        finally:
            insert.close()
        if pending:
            _write_quarantine(self._con, file_id, path, pending)

    def submit(self, item: tuple[Any, ...]) -> None:
        if self._error is not None:
            self.drain()
        self._queue.put(item)

    def drain(self) -> None:
        """Wait until every submitted batch is written; re-raise a worker error."""
        if self._stream:
            self._queue.put(_END)
        self._queue.join()
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def close(self) -> None:
        if self._stream:
            self._queue.put(_END)
        self._queue.join()
        self._queue.put(None)
        self._thread.join()


#: Ends a file's streaming INSERT (see _BackgroundWriter).
_END = object()


@dataclass
class _Job:
    """Counts the decoder knows about a batch (the writer adds its own)."""

    spans_rejected: int
    records_rejected: int
    repairs: int


def _account(res: FileResult, job: _Job, out: Any) -> None:
    res.spans_decoded += out.decoded + job.spans_rejected
    res.spans_ingested += out.inserted
    res.spans_duplicate += out.duplicate
    res.spans_rejected += job.spans_rejected + len(out.conflicts)
    res.records_rejected += job.records_rejected + len(out.conflicts)
    res.repairs += job.repairs


class _FlushingBatch(SpanBatch):
    """A SpanBatch that hands itself to the background writer once it holds ``limit`` spans
    (checked when a decoder finishes a run of spans).

    Every :data:`STAGE_SPANS` spans (at the end of a run) the spans decoded so far are
    converted to Arrow (:meth:`StoreWriter.prepare`) and their Python objects freed; the
    writer gets the chunks of a batch together. Decoding then works over a few thousand
    spans' objects instead of up to ``limit`` (measured: ~12 % less CPU on the decoding
    thread), and the writer still runs one statement per ``limit`` spans.
    """

    def __init__(self, writer: StoreWriter, background: _BackgroundWriter, file_id: int,
                 result: FileResult, path: str, limit: int,
                 progress: Callable[[int], None] | None) -> None:
        super().__init__()
        self._writer = writer
        self._background = background
        self._file_id = file_id
        self._result = result
        self._path = path
        self._limit = limit
        self._stage_at = min(limit, STAGE_SPANS)
        self._progress = progress
        self._submitted = 0
        self._chunks: list[Prepared] = []
        self._staged = 0

    def end_group(self) -> None:
        if len(self.trace_id) >= self._stage_at:
            self._write_side(self._stage)
            if self._staged >= self._limit:
                self.flush()

    def _stage(self) -> None:
        if len(self.trace_id) or self.resources or self.scopes or not self._chunks:
            self._staged += len(self.trace_id)
            self._chunks.append(self._writer.prepare(self))
            self.clear_spans()

    def flush(self) -> None:
        interrupts.pause_point("ingest-batch")
        interrupts.check()
        self._write_side(self._flush)

    def _write_side(self, step: Callable[[], None]) -> None:
        """Run a write-side ``step``; a fault in it is never blamed on the record being decoded."""
        try:
            step()
        except (FabricError, KeyCollision, duckdb.Error, KeyboardInterrupt):
            raise
        except OSError as exc:
            raise write_failure(f"writing {self._path}", exc) from exc
        except Exception as exc:  # noqa: BLE001 - the write side failed: never blamed on the input
            # Decoders call this method; without the wrapper the record being decoded
            # would be quarantined with this (internal) error as its reason.
            raise InternalError(f"writing {self._path} failed: internal error {type(exc).__name__}: {exc}",
                                hint="the file was rolled back; this is a bug in fabric: rerun with "
                                     "FABRIC_DEBUG=1 and report it") from exc

    def _flush(self) -> None:
        job = _Job(
            spans_rejected=self.spans_rejected,
            records_rejected=sum(1 for r in self.rejections if r.action == "rejected"),
            repairs=sum(1 for r in self.rejections if r.action == "repaired"),
        )
        quarantine = [(r.where, r.action, r.reason, r.trace_id, r.span_id, r.raw) for r in self.rejections]
        self._stage()
        prep = merge_prepared(self._chunks)
        self._submitted += self._staged + self.spans_rejected
        self._chunks = []
        self._staged = 0
        self._background.submit((job, prep, quarantine, self._file_id, self._path, self._result))
        self.clear()
        if self._progress:
            self._progress(self._submitted)


def _write_quarantine(con: duckdb.DuckDBPyConnection, file_id: int, path: str,
                      rows: list[tuple[Any, ...]]) -> None:
    now = datetime.now(timezone.utc)
    tbl = pa.table(
        {
            "file_id": pa.array([file_id] * len(rows), pa.int64()),
            "path": [path] * len(rows),
            "location": [r[0] for r in rows],
            "action": [r[1] for r in rows],
            "reason": [r[2] for r in rows],
            "trace_id": [r[3] for r in rows],
            "span_id": [r[4] for r in rows],
            "raw": [r[5] for r in rows],
        }
    )
    q_batch = tbl  # noqa: F841 - read by name in the SQL (replacement scan, see writer.apply)
    con.execute(
        "INSERT INTO quarantine SELECT nextval('quarantine_id_seq'), file_id, path, location, action, "
        "reason, trace_id, span_id, raw, ? FROM q_batch",
        [now],
    )




@dataclass
class IngestOptions:
    """Knobs of an ingest run."""

    limits: Limits = field(default_factory=Limits)
    batch_spans: int = DEFAULT_BATCH_SPANS
    projection: Projection | None = None
    #: Write each file with plain INSERTs first (False: always the classifying insert; for tests).
    fast: bool = True
    #: In fast mode, one INSERT per file fed as a stream (False: one per batch; for tests).
    stream: bool = True


def ingest(con: duckdb.DuckDBPyConnection, db_label: str, args: list[str],
           options: IngestOptions | None = None,
           progress: ProgressFn | None = None) -> IngestSummary:
    """Ingest every source named by ``args`` into the open store ``con``."""
    from fabric_trace.ingest.container import decode_stream
    from fabric_trace.ingest.json_dispatch import decode_json_value

    options = options or IngestOptions()
    projection = options.projection or compile_projection()
    writer = StoreWriter(con, projection)
    sources = expand(args)
    summary = IngestSummary(db=db_label)
    t0 = time.perf_counter()
    # Decoding allocates millions of short-lived, acyclic containers; the cyclic
    # collector would rescan them over and over (5x slower JSON parsing measured).
    # Reference counting frees them; the collector is re-enabled afterwards.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    # The writer thread needs the GIL for a moment after each statement; with the default
    # 5 ms switch interval it waits behind the decoding thread and DuckDB idles.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(switch_interval, _SWITCH_INTERVAL))
    # Bulk inserts buffer 5 row groups (~600k spans) in memory by default before writing
    # them; one keeps the peak memory flat whatever the file size.
    row_groups = con.execute("SELECT current_setting('write_buffer_row_group_count')").fetchall()[0][0]
    con.execute(f"SET write_buffer_row_group_count = {_WRITE_BUFFER_ROW_GROUPS}")
    # One core decodes (Python, the GIL); DuckDB gets the others. On 2 cores a second
    # DuckDB thread only competes with the decoder (measured: 1M spans 9.7 s -> 8.7 s).
    threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    con.execute(f"SET threads = {max(1, (os.cpu_count() or 2) - 1)}")
    # Ctrl-C stops at the next batch boundary (the file being written is rolled back).
    stack = ExitStack()
    stack.enter_context(interrupts.deferred())
    current: Source | None = None
    files_before = _count_files(con)
    try:
        for src in sources:
            interrupts.check()
            current = src
            result = _ingest_one(con, writer, src, options, decode_stream, decode_json_value, progress)
            current = None
            summary.files.append(result)
        interrupts.check()
    except BaseException as exc:
        if not (isinstance(exc, KeyboardInterrupt) or interrupts.interrupted()):
            raise
        # also "Query interrupted" / an aborted transaction caused by the interrupt
        summary.interrupted = True
        summary.seconds = time.perf_counter() - t0
        # what is in the store now (a COMMIT may have completed just before the interrupt surfaced)
        files_now = _count_files(con)
        committed = (files_now - files_before if min(files_now, files_before) >= 0
                     else sum(1 for f in summary.files if f.status == "ingested"))
        rolled = current is not None and committed == sum(1 for f in summary.files if f.status == "ingested")
        raise Interrupted(f"{committed} file(s) committed in this run are kept"
                          + (f"; {current.path} was rolled back" if rolled and current else ""),
                          hint="run the same command again to complete the ingest") from None
    finally:
        stack.close()
        sys.setswitchinterval(switch_interval)
        _reset_setting(con, "write_buffer_row_group_count", row_groups)
        _reset_setting(con, "threads", threads)
        if gc_was_enabled:
            gc.enable()
    summary.seconds = time.perf_counter() - t0
    ids = [f for f in summary.files if f.status == "ingested"]
    if len(ids) == 1:
        summary.traces = ids[0].traces
    elif ids:
        summary.traces = _count_traces(con, [f.sha256 for f in ids])
    return summary


def _reset_setting(con: duckdb.DuckDBPyConnection, name: str, value: Any) -> None:
    try:
        con.execute(f"SET {name} = {int(value)}")
    except (duckdb.Error, TypeError, ValueError):
        pass


def _count_files(con: duckdb.DuckDBPyConnection) -> int:
    """Files in the manifest (-1 if it cannot be read)."""
    try:
        return int(con.execute("SELECT count(*) FROM files").fetchone()[0])
    except duckdb.Error:
        return -1


def _count_traces(con: duckdb.DuckDBPyConnection, shas: list[str]) -> int:
    row = con.execute(
        "SELECT count(DISTINCT trace_id) FROM span_store WHERE file_id IN "
        "(SELECT file_id FROM files WHERE sha256 IN (SELECT unnest(?)))",
        [shas],
    ).fetchone()
    return int(row[0]) if row else 0


def _ingest_one(con: duckdb.DuckDBPyConnection, writer: StoreWriter, src: Source,
                options: IngestOptions, decode_stream: Any, decode_json_value: Any,
                progress: ProgressFn | None) -> FileResult:
    result = FileResult(path=src.path)
    hash_while_reading = src.is_stdin
    spool: StdinSpool | None = None
    if src.is_stdin:
        # Copied first so that it can be read twice, like a file (see StdinSpool).
        spool = StdinSpool(src.open(), interrupts.check)
        if spool.complete:
            result.sha256, result.size_bytes = spool.sha256, spool.size
            hash_while_reading = False
        else:
            result.messages.append(f"-: {spool.error}; it is read once, with the slower classifying insert")
        src = SpooledStdin("-", spool.size, spool)
    else:
        result.size_bytes = src.size or 0
        # A file can only have been ingested before if a manifest row has its size: only
        # then is it hashed up front; otherwise it is hashed while it is read (one pass).
        same_size = con.execute("SELECT count(*) FROM files WHERE size_bytes = ?", [result.size_bytes]).fetchone()[0]
        if same_size:
            result.sha256 = sha256_file(src.path)
            prior = _prior(con, result.sha256)
            if prior:
                return _already(result, prior)
        else:
            hash_while_reading = True
    file_id = int(con.execute("SELECT nextval('file_id_seq')").fetchone()[0])
    # Fast mode (plain INSERTs) unless the input cannot be read twice: a key that exists
    # already aborts the transaction, and the file is then ingested again in safe mode.
    fast = options.fast and (spool is None or spool.complete)
    try:
        while True:
            try:
                return _attempt(con, writer, src, options, decode_stream, decode_json_value, progress,
                                result, file_id, fast, hash_while_reading)
            except KeyCollision:
                result = _fresh(result)
                fast = False
    finally:
        if spool is not None:
            spool.close()


def _fresh(result: FileResult) -> FileResult:
    """The result of a file about to be ingested again (counts reset)."""
    return FileResult(path=result.path, sha256=result.sha256, size_bytes=result.size_bytes)


def _already(result: FileResult, prior: Any) -> FileResult:
    """A file ingested before: nothing is read again, and its counts are those of reading it
    now: every span it holds is in the store (duplicate), the spans and records rejected
    then would be rejected again (so ``decoded = ingested + duplicate + rejected`` holds)."""
    result.status = "already-ingested"
    result.format = prior[2]
    result.spans_duplicate = int(prior[1])
    result.spans_rejected = int(prior[3])
    result.spans_decoded = result.spans_duplicate + result.spans_rejected
    result.records_rejected = int(prior[4])
    result.repairs = int(prior[5])
    result.messages.append(f"{result.path}: already ingested (same sha256 as file #{prior[0]}); 0 new spans")
    return result


def _prior(con: duckdb.DuckDBPyConnection, sha256: str) -> Any:
    return con.execute(
        "SELECT file_id, spans_ingested + spans_duplicate, format, spans_rejected, records_rejected, repairs "
        "FROM files WHERE sha256 = ? "
        "ORDER BY file_id LIMIT 1",
        [sha256],
    ).fetchone()


def _attempt(con: duckdb.DuckDBPyConnection, writer: StoreWriter, src: Source, options: IngestOptions,
             decode_stream: Any, decode_json_value: Any, progress: ProgressFn | None, result: FileResult,
             file_id: int, fast: bool, hash_while_reading: bool) -> FileResult:
    """One pass over a file in one transaction; raises KeyCollision (rolled back) in fast mode."""
    report = (lambda n: progress(src.path, 0, n)) if progress else None
    writer.begin_file(fast)
    con.execute("BEGIN TRANSACTION")
    background = _BackgroundWriter(writer, con, stream=fast and options.stream)
    try:
        batch = _FlushingBatch(writer, background, file_id, result, src.path, options.batch_spans, report)
        raw = src.open()
        reader = HashingReader(raw) if hash_while_reading else raw
        try:
            result.format = decode_stream(reader, src.path, batch, options.limits, decode_json_value,
                                          decode_otlp_line)
        finally:
            if hash_while_reading:
                reader.sha.close()  # type: ignore[union-attr]
            if not src.is_stdin:
                raw.close()
        batch.flush()
        background.drain()
        if hash_while_reading:
            result.sha256 = reader.sha.hexdigest()  # type: ignore[union-attr]
            result.size_bytes = reader.size  # type: ignore[union-attr]
            prior = None if src.is_stdin else _prior(con, result.sha256)
            if prior:  # the file was rewritten between stat() and reading: it is one we have
                _quiesce(background)
                _rollback(con)
                return _already(_fresh(result), prior)
        result.traces = int(con.execute(
            "SELECT count(DISTINCT trace_id) FROM span_store WHERE file_id = ?", [file_id]).fetchone()[0])
        con.execute(
            "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [file_id, src.path, result.sha256, result.size_bytes, result.format, result.spans_decoded,
             result.spans_ingested, result.spans_duplicate, result.spans_rejected, result.records_rejected,
             result.repairs, result.traces, datetime.now(timezone.utc)],
        )
        con.execute("UPDATE fabric_meta SET value = CAST(CAST(value AS BIGINT) + 1 AS VARCHAR) "
                    "WHERE key = 'data_version'")
        interrupts.pause_point("commit")
        con.execute("COMMIT")
    except KeyCollision:
        _quiesce(background)
        _rollback(con)
        raise
    except FabricError as exc:
        _quiesce(background)
        _rollback(con)
        if isinstance(exc, InputError) and not isinstance(exc, DatabaseError):
            result.status = "failed"
            result.error = exc.message
            result.spans_ingested = 0
            result.messages.append(f"{src.path}: {exc.message}; nothing of this file was loaded")
            _record_failed_file(con, src, result, file_id)
            return result
        raise
    except duckdb.Error as exc:
        _quiesce(background)
        _rollback(con)
        raise write_failure(f"writing {src.path}", exc,
                            hint="the file was rolled back; the database keeps the files committed before it"
                            + ("; free disk space, then run the command again"
                               if "no space left" in str(exc).lower() else "")) from None
    except BaseException:
        _quiesce(background)
        _rollback(con)
        raise
    finally:
        _quiesce(background, close=True)
    ok = con.execute("SELECT count(*) FROM files WHERE file_id = ?", [file_id]).fetchone()[0]
    if not ok:
        raise DatabaseError(f"commit of {src.path} did not persist (DuckDB rolled the transaction back)")
    return result


def _record_failed_file(con: duckdb.DuckDBPyConnection, src: Source, result: FileResult, file_id: int) -> None:
    """Keep a quarantine row for a file refused as a whole (no spans, no manifest row)."""
    try:
        con.execute("BEGIN TRANSACTION")
        _write_quarantine(con, file_id, src.path, [("file", "rejected", result.error or "unusable input", None, None, None)])
        con.execute("COMMIT")
    except duckdb.Error:
        _rollback(con)


def _quiesce(background: _BackgroundWriter, close: bool = False) -> None:
    """Wait for the writer thread (ignoring its error: the caller is already failing)."""
    try:
        background.drain()
    except BaseException:  # noqa: BLE001
        pass
    if close:
        background.close()


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass
