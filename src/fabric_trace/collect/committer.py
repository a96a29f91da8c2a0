"""The collector's single database writer: a bounded queue, group commit, snapshots.

One thread owns the DuckDB connection. Request handlers decode a body into a
:class:`~fabric_trace.ingest.batch.SpanBatch`, :meth:`Committer.offer` it, and
wait on :attr:`Pending.done`. The thread takes every request waiting in the queue
(up to ``batch_spans`` spans, after waiting up to ``batch_wait`` seconds for more)
and writes them in **one transaction** with the writer of ``fabric trace ingest``
(:class:`~fabric_trace.ingest.writer.StoreWriter`: same normalisation, same
deduplication by ``(trace_id, span_id)`` and content, same quarantine): plain
INSERTs first, and if a span exists already the transaction is rolled back and
written again with the classifying insert. Each transaction adds one row to
``files`` (``path`` = the endpoint URL, ``format`` = ``otlp-http-proto`` /
``otlp-http-json`` / ``otlp-http-proto+json``) and bumps ``data_version``.

A request is answered only after ``COMMIT`` has returned and the commit was read
back: DuckDB has then written and synced its write-ahead log, so an acknowledged
span survives a crash or ``kill -9`` (the log is replayed when the database is next
opened). Requests whose transaction failed are answered 503 and nothing of them is
kept; the committer then stops (see :attr:`Committer.fatal`).

The queue is bounded by spans: :meth:`offer` refuses a request when the spans
waiting to be committed would exceed ``queue_spans`` (a request is always admitted
into an empty queue), and the HTTP layer answers 503 with ``Retry-After``.

Every ``snapshot_interval`` seconds, when something new was committed, the thread
checkpoints the database and copies it to ``snapshot_path`` (a temporary file in
the same directory, fsynced, then renamed over the old snapshot), so other fabric
commands can read a consistent copy while DuckDB's lock keeps them out of the
database itself.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import duckdb
import pyarrow as pa

from fabric_trace.errors import DatabaseError
from fabric_trace.ingest.batch import SpanBatch
from fabric_trace.ingest.normalize import Projection
from fabric_trace.ingest.pipeline import _write_quarantine as write_quarantine
from fabric_trace.ingest.writer import KeyCollision, StoreWriter, merge_prepared

_REQUEST_RE = re.compile(r"request (\d+)\b")


@dataclass
class Pending:
    """One decoded request waiting for its transaction."""

    number: int
    batch: SpanBatch
    body: bytes  # decompressed body, for the transaction's sha256
    encoding: str  # "proto" | "json"
    acknowledge: bool = True  # False: a refused request's quarantine row (nobody waits)
    done: threading.Event = field(default_factory=threading.Event)
    # set by the committer before ``done``
    ok: bool = False
    rejected: int = 0  # spans quarantined (decoder + conflicting duplicates)
    error: str | None = None

    @property
    def spans(self) -> int:
        return len(self.batch)


@dataclass
class Totals:
    """Running counts of a collect session (read under the committer's lock)."""

    requests: int = 0  # requests committed
    spans_received: int = 0  # spans in committed requests, incl. rejected ones
    spans_ingested: int = 0
    spans_duplicate: int = 0
    spans_rejected: int = 0
    records_rejected: int = 0
    repairs: int = 0
    transactions: int = 0
    snapshots: int = 0
    queued_spans: int = 0
    refused: Counter[int] = field(default_factory=Counter)  # HTTP status -> requests

    def copy(self) -> "Totals":
        return Totals(**{**self.__dict__, "refused": Counter(self.refused)})


class Committer:
    """Owns the connection; see the module docstring."""

    def __init__(self, con: duckdb.DuckDBPyConnection, projection: Projection, endpoint: str, *,
                 queue_spans: int, batch_spans: int, batch_wait: float,
                 db_path: str | None = None, snapshot_path: str | None = None,
                 snapshot_interval: float = 5.0) -> None:
        self.con = con
        self.writer = StoreWriter(con, projection)
        self.endpoint = endpoint
        self.queue_spans = queue_spans
        self.batch_spans = batch_spans
        self.batch_wait = batch_wait
        self.db_path = db_path
        self.snapshot_path = snapshot_path
        self.snapshot_interval = snapshot_interval
        self.totals = Totals()
        self.file_ids: list[int] = []
        #: The error that stopped the committer (a failed transaction), if any.
        self.fatal: str | None = None
        #: Problems worth a line on stderr (a failed snapshot); drained by :meth:`take_notices`.
        self.notices: list[str] = []
        self._items: list[Pending] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._dirty = False  # committed since the last snapshot
        self._committed = False  # the last transaction committed (its resources/scopes are stored)
        self._last_snapshot = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="fabric-collect-writer", daemon=True)

    # ------------------------------------------------------------------ handler side

    def start(self) -> None:
        self._thread.start()

    def full(self) -> bool:
        """Would a new request be refused now (cheap check before decoding)?"""
        with self._cond:
            return self._refuses(1)

    def _refuses(self, spans: int) -> bool:
        q = self.totals.queued_spans
        return self._stopping or self.fatal is not None or (q > 0 and q + spans > self.queue_spans)

    def offer(self, item: Pending) -> bool:
        """Queue a request for the next transaction; False when the queue is full or stopping."""
        with self._cond:
            if item.acknowledge and self._refuses(item.spans + item.batch.spans_rejected):
                return False
            if self._stopping and not item.acknowledge:
                return False
            self._items.append(item)
            self.totals.queued_spans += item.spans + item.batch.spans_rejected
            self._cond.notify_all()
            return True

    def store(self, item: Pending) -> bool | None:
        """Queue ``item`` and wait until it is committed: True once durable, False when its
        transaction failed (``item.error``), None when refused (queue full or stopping)."""
        if not self.offer(item):
            return None
        item.done.wait()
        return item.ok

    def refuse(self, number: int, reason: str, body: bytes) -> None:
        """An unreadable request (HTTP 400 / gRPC INVALID_ARGUMENT): counted, and kept in the
        quarantine table (by the next transaction; nobody waits for it)."""
        batch = SpanBatch()
        batch.reject(f"request {number}", f"request refused (HTTP 400): {reason}", raw=body, counts_as_span=False)
        self.offer(Pending(number, batch, b"", "proto", acknowledge=False))
        self.count_refused(400)

    def count_refused(self, status: int) -> None:
        with self._cond:
            self.totals.refused[status] += 1

    def take_notices(self) -> list[str]:
        with self._cond:
            out, self.notices = self.notices, []
            return out

    def snapshot_totals(self) -> Totals:
        with self._cond:
            return self.totals.copy()

    def stop(self) -> None:
        """Commit everything queued, then end the thread (returns when it has ended)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join()

    # ------------------------------------------------------------------ writer thread

    def _take(self) -> list[Pending] | None:
        """The next group of requests to commit; None when stopping and drained."""
        with self._cond:
            while not self._items:
                if self._stopping or self.fatal is not None:
                    return None
                timeout = None
                if self.snapshot_path and self._dirty:
                    timeout = max(0.0, self._last_snapshot + self.snapshot_interval - time.monotonic())
                    if timeout == 0.0:
                        return []
                self._cond.wait(timeout)
            if self.batch_wait > 0 and not self._stopping:
                deadline = time.monotonic() + self.batch_wait
                while (sum(i.spans for i in self._items) < self.batch_spans and not self._stopping
                       and (left := deadline - time.monotonic()) > 0):
                    self._cond.wait(left)
            group: list[Pending] = []
            n = 0
            while self._items and (not group or n + self._items[0].spans <= self.batch_spans):
                item = self._items.pop(0)
                group.append(item)
                n += item.spans
            return group

    def _run(self) -> None:
        while True:
            group = self._take()
            if group is None:
                return
            if group:
                self._commit_group(group)
            if self.fatal is None and self.snapshot_path and self._dirty and \
                    time.monotonic() - self._last_snapshot >= self.snapshot_interval:
                try:
                    self.write_snapshot()
                except DatabaseError as exc:  # readers keep the previous snapshot; collecting goes on
                    with self._cond:
                        self._last_snapshot = time.monotonic()
                        self.notices.append(f"{exc.message}; the previous snapshot stays, next try in "
                                            f"{self.snapshot_interval:g} s")

    def _commit_group(self, group: list[Pending]) -> None:
        try:
            counts = self._transaction(group)
        except KeyCollision as exc:  # pragma: no cover - safe mode never raises it
            self._fail(group, f"writing a batch failed: {exc}")
            return
        except DatabaseError as exc:
            self._fail(group, exc.message)
            return
        except duckdb.Error as exc:
            self._fail(group, f"writing a batch failed: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - a bug must not leave requests waiting forever
            self._fail(group, f"internal error while writing a batch: {type(exc).__name__}: {exc}")
            return
        inserted, duplicate, conflicts = counts
        with self._cond:
            t = self.totals
            t.transactions += 1
            t.spans_ingested += inserted
            t.spans_duplicate += duplicate
            for item in group:
                spans = item.spans + item.batch.spans_rejected
                t.queued_spans -= spans
                if not item.acknowledge:
                    continue
                item.rejected = item.batch.spans_rejected + conflicts.get(item.number, 0)
                t.requests += 1
                t.spans_received += spans
                t.spans_rejected += item.rejected
                t.records_rejected += conflicts.get(item.number, 0) + sum(
                    1 for r in item.batch.rejections if r.action == "rejected")
                t.repairs += sum(1 for r in item.batch.rejections if r.action == "repaired")
            self._dirty = True
        for item in group:
            item.ok = True
            item.done.set()

    def _fail(self, group: list[Pending], message: str) -> None:
        """A transaction failed: answer its requests and every queued one 503, and stop storing."""
        with self._cond:
            self.fatal = message
            waiting = group + self._items
            self._items = []
            self.totals.queued_spans = 0
            self._cond.notify_all()
        for item in waiting:
            item.error = message
            item.done.set()

    def _transaction(self, group: list[Pending]) -> tuple[int, int, dict[int, int]]:
        """Write ``group`` in one transaction; returns (inserted, duplicate, conflicts per request)."""
        con = self.con
        file_id = int(con.execute("SELECT nextval('file_id_seq')").fetchone()[0])
        fast = True
        after_commit = self._committed
        self._committed = False
        while True:
            self.writer.begin_file(fast, after_commit=after_commit)
            after_commit = False
            con.execute("BEGIN TRANSACTION")
            try:
                out = self.writer.apply(merge_prepared([self.writer.prepare(i.batch) for i in group]), file_id)
                conflicts: dict[int, int] = Counter()
                rows = [(r.where, r.action, r.reason, r.trace_id, r.span_id, r.raw)
                        for i in group for r in i.batch.rejections]
                for where, trace_id, span_id, reason in out.conflicts:
                    m = _REQUEST_RE.match(where or "")
                    if m:
                        conflicts[int(m.group(1))] += 1
                    rows.append((where, "rejected", reason, trace_id, span_id, None))
                if rows:
                    write_quarantine(con, file_id, self.endpoint, rows)
                self._manifest(group, file_id, out.inserted, out.duplicate, len(out.conflicts), fast)
                con.execute("UPDATE fabric_meta SET value = CAST(CAST(value AS BIGINT) + 1 AS VARCHAR) "
                            "WHERE key = 'data_version'")
                con.execute("COMMIT")
            except KeyCollision:
                _rollback(con)
                fast = False  # a span exists already: write the group again, classifying
                continue
            except BaseException:
                _rollback(con)
                raise
            break
        if not con.execute("SELECT count(*) FROM files WHERE file_id = ?", [file_id]).fetchone()[0]:
            raise DatabaseError("a commit did not persist (DuckDB rolled the transaction back)")
        self._committed = True
        self.file_ids.append(file_id)
        return out.inserted, out.duplicate, dict(conflicts)

    def _manifest(self, group: list[Pending], file_id: int, inserted: int, duplicate: int,
                  conflicts: int, fast: bool) -> None:
        acked = [i for i in group if i.acknowledge]
        sha = hashlib.sha256()
        for item in acked:
            sha.update(item.body)
        encodings = sorted({i.encoding for i in acked}, key=("proto", "json").index) or ["proto"]
        decoded = sum(i.spans + i.batch.spans_rejected for i in acked)
        rejected = sum(i.batch.spans_rejected for i in acked) + conflicts
        records = sum(1 for i in group for r in i.batch.rejections if r.action == "rejected") + conflicts
        repairs = sum(1 for i in group for r in i.batch.rejections if r.action == "repaired")
        if fast:  # every span was inserted: its traces are those of the batches
            traces = len({t for i in group for t in i.batch.trace_id})
        else:
            traces = int(self.con.execute(
                "SELECT count(DISTINCT trace_id) FROM span_store WHERE file_id = ?", [file_id]).fetchone()[0])
        self.con.execute(
            "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [file_id, self.endpoint, sha.hexdigest(), sum(len(i.body) for i in acked),
             "otlp-http-" + "+".join(encodings), decoded, inserted, duplicate, rejected, records, repairs,
             traces, datetime.now(timezone.utc)],
        )

    def write_snapshot(self) -> None:
        """Checkpoint and copy the database to ``snapshot_path`` atomically (writer thread only).

        The copy is made by a child process: DuckDB holds a POSIX ``fcntl`` lock on the
        database, and closing *any* descriptor of that file in this process would release
        it (letting another process open the database for writing).
        """
        if not (self.snapshot_path and self.db_path):
            return
        tmp = f"{self.snapshot_path}.tmp-{os.getpid()}"
        try:
            self.con.execute("CHECKPOINT")
            done = subprocess.run([sys.executable, "-c", _COPY, self.db_path, tmp], capture_output=True,
                                  text=True, timeout=_COPY_TIMEOUT)
            if done.returncode:
                raise OSError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "copy failed")
            os.replace(tmp, self.snapshot_path)
        except (OSError, subprocess.SubprocessError, duckdb.Error) as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise DatabaseError(f"cannot write the snapshot {self.snapshot_path}: {exc}") from None
        with self._cond:
            self._dirty = False
            self._last_snapshot = time.monotonic()
            self.totals.snapshots += 1


#: Run by the child process that copies the checkpointed database (argv: source, target).
_COPY = ("import os, shutil, sys\n"
         "shutil.copyfile(sys.argv[1], sys.argv[2])\n"
         "fd = os.open(sys.argv[2], os.O_RDONLY)\n"
         "os.fsync(fd)\n"
         "os.close(fd)\n")
_COPY_TIMEOUT = 600.0


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass
