"""Keeping derived tables in step with the data: the one freshness check, and refresh.

``fabric_meta.data_version`` is bumped by every committed ingest;
``derived_version`` (and ``derived_config``, a fingerprint of the registered
analyzers and of the config that shaped their results) record what the derived
tables were computed from, and ``derived_file_id`` the last ingested file they
include. Every reader calls :func:`is_stale` (through :func:`refresh`) and
never serves stale results silently.

:func:`refresh` (docs/analyzers.md, "Refresh"), in one transaction when the work is
one batch, else with a commit per batch (below):

1. **What to derive.** A *full* derive (first time, another fingerprint, a
   table missing, ``force``) takes every trace; an *incremental* one takes the
   traces of the spans ingested since (``file_id > derived_file_id``), closed
   over shared session ids when an analyzer is session-scoped.
2. **Store-wide statistics** computed from the data (``StoreStats``, e.g. the
   trust zones) are recomputed and persisted.
3. **Partitions.** The traces are cut into batches of whole traces (whole
   session components) of about ``batch_spans`` spans; each batch's spans are
   read as Arrow, every analyzer's ``derive`` runs on it in registry order
   (later ones get the earlier ones' rows as ``inputs``), and the batch's old
   rows are replaced.
4. **Statistics over derived rows** (e.g. the what-if medians) are recomputed;
   where a statistic changed, the traces that depend on it (its
   ``affected_sql``) are derived again by that analyzer, like step 3.

A full derive starts from the previous statistics (when their table is unchanged), so a
re-analysis derives again only the traces whose statistics moved.

**Bounded memory.** DuckDB holds what a transaction wrote until it commits, so from the
second batch of a run on the work is committed before each batch, under
``fabric_meta.refresh_pending``: while it is set the store is stale (:func:`is_stale`), and
the next refresh derives everything again (an interrupted refresh is redone in full). The
versions are written and ``refresh_pending`` removed in the last transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from fabric_trace import interrupts
from fabric_trace.analyzers import registry
from fabric_trace.analyzers.contract import FINDINGS_DDL, Analyzer, Derived, StoreStats, run_kernels
from fabric_trace.errors import write_failure
from fabric_trace.model import FINDING_COLUMNS

#: Spans per partition batch (whole traces: a bigger trace or session is a batch of its own).
#: A refresh of more than one batch commits after every batch (``refresh_pending``), so memory
#: depends on the batch, not on the store (bench/README.md).
BATCH_SPANS = 50_000

#: DuckDB threads of the store connection while refreshing (restored afterwards).
REFRESH_THREADS = 2

#: DuckDB memory limit of the store connection while refreshing (its buffer pool would otherwise
#: cache the span store up to 80 % of RAM); DuckDB spills beyond it. Restored afterwards.
REFRESH_MEMORY_LIMIT = "256MB"

FINDINGS_VIEW = f"CREATE OR REPLACE VIEW findings AS SELECT {', '.join(FINDING_COLUMNS)} FROM finding_store"


def config_fingerprint(config: Any) -> str:
    """Fingerprint of the registered analyzers (name, version, tables) and of their config sections."""
    data = getattr(config, "data", {}) or {}
    relevant = {
        a.name: {"version": a.version, "tables": list(a.tables),
                 "config": {s: data.get(s) for s in a.sections if s in data}}
        for a in registry().values()
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _meta(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.execute("SELECT key, value FROM fabric_meta").fetchall())


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' "
        "AND database_name = current_database()").fetchall()}  # not an attached store's (open_overlay)


def _needs_full(con: duckdb.DuckDBPyConnection, meta: dict[str, str], config: Any | None) -> bool:
    have = _tables(con)
    if "finding_store" not in have or any(t not in have for a in registry().values() for t in a.tables):
        return True
    if "derived_file_id" not in meta or "refresh_pending" in meta:
        return True
    return config is not None and meta.get("derived_config") != config_fingerprint(config)


def is_stale(con: duckdb.DuckDBPyConnection, config: Any | None = None) -> bool:
    """True when the derived tables do not reflect the current data, the registered analyzers
    (a missing table counts) or ``config`` (when given)."""
    meta = _meta(con)
    return meta.get("derived_version") != meta.get("data_version") or _needs_full(con, meta, config)


def refresh(con: duckdb.DuckDBPyConnection, config: Any, *, force: bool = False,
            batch_spans: int | None = None) -> bool:
    """Bring every analyzer's derived tables up to date if stale; returns True if it ran.

    Incremental when only data was added since the last refresh (see the module docstring).
    A refresh that fits in one batch is one transaction; a bigger one commits per batch
    (``refresh_pending`` in ``fabric_meta`` until it finishes, see the module docstring).
    """
    meta = _meta(con)
    full = force or _needs_full(con, meta, config)
    if not full and meta.get("derived_version") == meta.get("data_version"):
        return False
    limit, threads = con.execute("SELECT current_setting('memory_limit'), current_setting('threads')").fetchall()[0]
    try:
        con.execute(f"SET memory_limit = '{REFRESH_MEMORY_LIMIT}'")
        con.execute(f"SET threads = {min(int(threads), REFRESH_THREADS)}")
        con.execute("BEGIN TRANSACTION")
        interrupts.pause_point("analyze")
        _Run(con, config, full, int(meta.get("derived_file_id", "0") or 0),
             BATCH_SPANS if batch_spans is None else batch_spans).run()
        version = _meta(con).get("data_version", "0")
        last_file = con.execute("SELECT coalesce(max(file_id), 0) FROM files").fetchall()[0][0]
        for key, value in (("derived_version", version), ("derived_config", config_fingerprint(config)),
                           ("derived_file_id", str(last_file))):
            con.execute("INSERT OR REPLACE INTO fabric_meta VALUES (?, ?)", [key, value])
        con.execute("DELETE FROM fabric_meta WHERE key = 'refresh_pending'")
        con.execute("COMMIT")
    except duckdb.Error as exc:
        _rollback(con)
        raise write_failure("computing the derived tables", exc) from None
    except BaseException:
        _rollback(con)
        raise
    finally:
        for name, value in (("memory_limit", f"'{limit}'"), ("threads", threads)):
            try:
                con.execute(f"SET {name} = {value}")
            except duckdb.Error:
                pass
    return True


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass


class _Run:
    """One refresh, inside the caller's transaction."""

    def __init__(self, con: duckdb.DuckDBPyConnection, config: Any, full: bool, since_file: int,
                 batch_spans: int) -> None:
        self.con, self.config, self.full, self.since_file = con, config, full, since_file
        self.batch_spans = max(1, batch_spans)
        self.analyzers = list(registry().values())
        self.sessions = any(a.scope == "session" for a in self.analyzers)
        self.stats: dict[str, pa.Table] = {}
        self.batches_done = 0
        self.span_table = "span_store" in _tables(con)  # a table (row ids), not the overlay's view
        self.no_resources: pa.Table | None = None  # an empty resources table (rederive steps)
        self.row_id_tables: set[str] | None = None  # tables of the store (derived ones exist once read)

    def _between_batches(self) -> None:
        """From the second batch of a run on, commit the work so far (marked ``refresh_pending``, so
        an interrupted refresh is redone in full by the next one): what a transaction holds is one
        batch's rows, not the store's."""
        self.batches_done += 1
        if self.batches_done < 2:
            return
        self.con.execute("INSERT OR REPLACE INTO fabric_meta VALUES ('refresh_pending', '1')")
        self.con.execute("COMMIT")
        self.con.execute("BEGIN TRANSACTION")

    def run(self) -> None:
        con = self.con
        previous: dict[str, pa.Table] = {}
        if self.full:
            have = _tables(con)
            con.execute("DROP TABLE IF EXISTS finding_store")
            for a in self.analyzers:
                for st in a.stats:  # the previous statistics: a re-analysis derives again only what moved
                    if st.table in have:
                        previous[st.table] = con.sql(f"SELECT * FROM {st.table}").to_arrow_table()
                for table in a.tables:
                    con.execute(f"DROP TABLE IF EXISTS {table}")
        con.execute(FINDINGS_DDL)
        for a in self.analyzers:
            tables = a.sql("tables.sql")
            if tables:
                con.execute(tables)
        for table, rows in previous.items():
            self._restore(table, rows)
        con.execute("DROP TABLE IF EXISTS _work")
        if self.full:
            con.execute("CREATE TEMP TABLE _work AS SELECT DISTINCT trace_id FROM span_store")
        else:
            con.execute("CREATE TEMP TABLE _work AS SELECT DISTINCT trace_id FROM span_store WHERE file_id > ?",
                        [self.since_file])
            if self.sessions:
                self._close_over_sessions("_work")
        for k, a in enumerate(self.analyzers):
            con.execute(f"CREATE OR REPLACE TEMP TABLE _redo{k} (trace_id VARCHAR)")
            for j, st in enumerate(a.stats):
                if st.rederive is not None:
                    con.execute(f"CREATE OR REPLACE TEMP TABLE _redo{k}_{j} (trace_id VARCHAR)")
            for j, st in enumerate(a.stats):  # statistics of the data
                if not st.after_derive:
                    self._update_stats(k, j, st, exclude_work=True)
        self._derive("_work", self.analyzers, replace=not self.full)
        for k, a in enumerate(self.analyzers):  # statistics of the derived rows
            for j, st in enumerate(a.stats):
                if st.after_derive:
                    self._update_stats(k, j, st, exclude_work=False)
        for k, a in enumerate(self.analyzers):
            con.execute(f"CREATE OR REPLACE TEMP TABLE _redo AS SELECT DISTINCT trace_id FROM _redo{k}")
            if con.execute("SELECT count(*) FROM _redo").fetchall()[0][0]:
                if a.scope == "session":
                    self._close_over_sessions("_redo")
                self._derive("_redo", [a], replace=True)
            for j, st in enumerate(a.stats):  # only the rows that depend on a statistic (StoreStats.rederive)
                if st.rederive is None:
                    continue
                con.execute(f"""CREATE OR REPLACE TEMP TABLE _redo_step AS
                    SELECT DISTINCT trace_id FROM _redo{k}_{j} WHERE trace_id NOT IN (SELECT trace_id FROM _redo)""")
                con.execute(f"DROP TABLE _redo{k}_{j}")
                if con.execute("SELECT count(*) FROM _redo_step").fetchall()[0][0]:
                    if a.scope == "session":
                        self._close_over_sessions("_redo_step")
                    self._derive("_redo_step", [a], replace=True, step=st)
            con.execute(f"DROP TABLE _redo{k}")
        con.execute(FINDINGS_VIEW)
        for a in self.analyzers:
            views = a.sql("views.sql")
            if views:
                con.execute(views)
        for table in ("_work", "_redo", "_redo_step", "_batch", "_batch_rows", "_batch_w0", "_batch_w1",
                      "_stats_changed"):
            con.execute(f"DROP TABLE IF EXISTS {table}")

    def _restore(self, table: str, rows: pa.Table) -> None:
        """Put a statistic's previous rows back after its table was created again, if the columns
        are the same (another analyzer version may have changed them: then it starts empty)."""
        con = self.con
        cols = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {table}").fetchall()]
        con.register("_prev", rows)
        try:
            if cols == [(r[0], r[1]) for r in con.execute("DESCRIBE _prev").fetchall()]:
                con.execute(f"INSERT INTO {table} SELECT * FROM _prev")
        finally:
            con.unregister("_prev")

    # -- what to derive -------------------------------------------------------------------------

    def _close_over_sessions(self, table: str) -> None:
        """Add to ``table`` every trace that shares a session id with one in it, until closed."""
        con = self.con
        while True:
            added = con.execute(f"""
                INSERT INTO {table}
                SELECT DISTINCT s.trace_id FROM span_store s
                WHERE s.session_id IN (SELECT DISTINCT session_id FROM span_store
                                       WHERE session_id IS NOT NULL AND trace_id IN (SELECT trace_id FROM {table}))
                  AND s.trace_id NOT IN (SELECT trace_id FROM {table})
            """).fetchall()[0][0]
            if not added:
                return

    def _batches(self, table: str) -> Iterator[None]:
        """Fill ``_batch`` with one batch of whole traces (whole session components) at a time."""
        con = self.con
        # traces in the order of their first row in the store (the trace id breaks ties, and orders
        # a view without row ids): a batch's spans then lie close together in the store, so reading
        # them by row id skips the other row groups (in trace-id order every batch's rows spread over
        # the whole store, and each batch read scanned all of it)
        first = "min(s.rowid), " if self.span_table else ""
        sizes = con.execute(f"""
            SELECT s.trace_id, count(*) AS n FROM span_store s SEMI JOIN {table} w USING (trace_id)
            GROUP BY s.trace_id ORDER BY {first}s.trace_id
        """).fetchnumpy()
        traces = np.asarray(sizes["trace_id"], dtype=object)
        n = np.asarray(sizes["n"], dtype=np.int64)
        if not len(traces):
            return
        group = np.arange(len(traces), dtype=np.int64)
        if self.sessions:
            pairs = con.execute(f"""
                SELECT DISTINCT s.trace_id, s.session_id FROM span_store s SEMI JOIN {table} w USING (trace_id)
                WHERE s.session_id IS NOT NULL
            """).fetchnumpy()
            group = _components(traces, np.asarray(pairs["trace_id"], dtype=object),
                                np.asarray(pairs["session_id"], dtype=object))
        # whole groups, in order of their first trace, packed into batches of ~batch_spans spans
        order = np.lexsort((np.arange(len(traces)), group))
        g_sorted = group[order]
        starts = np.flatnonzero(np.r_[True, g_sorted[1:] != g_sorted[:-1]])
        g_size = np.add.reduceat(n[order], starts)
        batch_of_group = np.zeros(len(starts), dtype=np.int64)
        b, filled = 0, 0
        for k, size in enumerate(g_size.tolist()):
            if filled and filled + size > self.batch_spans:
                b, filled = b + 1, 0
            batch_of_group[k] = b
            filled += size
        batch = np.empty(len(traces), dtype=np.int64)
        batch[order] = np.repeat(batch_of_group, np.diff(np.r_[starts, len(order)]))
        con.register("_batches_in", pa.table({"trace_id": pa.array(traces.tolist(), pa.string()),
                                               "b": pa.array(batch)}))
        con.execute("CREATE OR REPLACE TEMP TABLE _batches AS SELECT * FROM _batches_in")
        con.unregister("_batches_in")
        try:
            for k in range(int(batch.max()) + 1):
                con.execute("CREATE OR REPLACE TEMP TABLE _batch AS SELECT trace_id FROM _batches WHERE b = ?", [k])
                yield
        finally:
            con.execute("DROP TABLE IF EXISTS _batches")

    # -- deriving -------------------------------------------------------------------------------

    def _derive(self, table: str, analyzers: list[Analyzer], *, replace: bool,
                step: StoreStats | None = None) -> None:
        """Derive the traces of ``table`` in batches: every analyzer's ``derive``, or with ``step``
        only that statistic's ``rederive`` (of the one analyzer).

        Two batches are in flight (docs/analyzers.md, "Bounded memory"): while a worker thread runs
        the kernels of batch k (private databases, no store), this thread writes and commits batch
        k-1 and reads the spans of batch k+1 (DuckDB releases the GIL, so the two cores both work).
        Batches hold disjoint traces, so reading one before the previous one is written reads the
        same rows."""
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fabric-kernels")
        pending: tuple[int, Future[list[tuple[Analyzer, Derived]]]] | None = None
        try:
            for k, _ in enumerate(self._batches(table)):
                batch = self._read_batch(analyzers, step)
                self.con.execute(f"CREATE OR REPLACE TEMP TABLE _batch_w{k % 2} AS SELECT trace_id FROM _batch")
                future = pool.submit(self._kernels, analyzers, step, *batch)
                del batch
                if pending is not None:
                    self._write_batch(*pending, replace=replace, step=step)
                pending = (k, future)
            if pending is not None:
                self._write_batch(*pending, replace=replace, step=step)
                pending = None
        finally:
            if pending is not None:
                pending[1].cancel()
            pool.shutdown(wait=True, cancel_futures=True)  # a running kernel ends before the rollback

    def _read_batch(self, analyzers: list[Analyzer], step: StoreStats | None
                    ) -> tuple[pa.Table, pa.Table, dict[str, pa.Table], dict[str, pa.Table]]:
        """The store's rows the kernels of the batch in ``_batch`` need: spans, resources, the tables
        they read that no earlier analyzer of ``analyzers`` produces, and the statistics."""
        con = self.con
        spans = self._read_rows("span_store", self.span_table, None if step is None else step.span_columns)
        if step is None or "resource_id" in spans.column_names:
            con.register("_part_spans", spans)
            try:
                resources = con.sql("SELECT r.* FROM resources r WHERE r.resource_id IN "
                                    "(SELECT DISTINCT resource_id FROM _part_spans)").to_arrow_table()
            finally:
                con.unregister("_part_spans")
        else:  # a step that reads no resource ids: the resources table's shape, read once per run
            if self.no_resources is None:
                self.no_resources = con.sql("SELECT r.* FROM resources r LIMIT 0").to_arrow_table()
            resources = self.no_resources
        stored: dict[str, pa.Table] = {}
        stats: dict[str, pa.Table] = {}
        produced: set[str] = set()
        for a in analyzers:
            for name in a.step_reads(step):
                if name not in produced and name not in stored:
                    stored[name] = self._read_rows(name)
            for st in a.stats:
                stats[st.table] = self._stats_table(st)
            if step is None:
                produced.update(a.row_tables())
        return spans, resources, stored, stats

    def _read_rows(self, name: str, by_rowid: bool | None = None, columns: tuple[str, ...] | None = None
                   ) -> pa.Table:
        """The rows of table ``name`` (``columns`` of them; ``None``: all) for the traces in ``_batch``.

        When the table has row ids (``by_rowid``; ``None``: look it up), their row ids first (a scan
        of one column), then only those rows: a semi join on ``t.*`` read every column of the whole
        table for each batch (the span store; and 0.15-0.4 CPU s per batch of the what-if replay's
        reads of derived rows at 10M spans, against 0.08 by row id: a batch's rows lie together,
        written in the same order of batches). A view over a read-only store (``store.open_overlay``)
        has no row ids: the semi join then."""
        con = self.con
        if by_rowid is None:
            if self.row_id_tables is None:
                self.row_id_tables = _tables(con)  # (derived tables exist once a batch reads them)
            by_rowid = name in self.row_id_tables
        cols = "t.*" if columns is None else ", ".join(f"t.{c}" for c in columns)
        if not by_rowid:
            return con.sql(f"SELECT {cols} FROM {name} t SEMI JOIN _batch b USING (trace_id)").to_arrow_table()
        con.execute(f"CREATE OR REPLACE TEMP TABLE _batch_rows AS "
                    f"SELECT t.rowid AS r FROM {name} t SEMI JOIN _batch b USING (trace_id)")
        return con.sql(f"SELECT {cols} FROM {name} t WHERE t.rowid IN (SELECT r FROM _batch_rows) ORDER BY t.rowid"
                       ).to_arrow_table()

    def _kernels(self, analyzers: list[Analyzer], step: StoreStats | None, spans: pa.Table, resources: pa.Table,
                 stored: dict[str, pa.Table], stats: dict[str, pa.Table]) -> list[tuple[Analyzer, Derived]]:
        """Every analyzer's kernel over one batch (no store: runs in the worker thread)."""
        return run_kernels(analyzers, step, spans, resources, stored, stats, self.config)

    def _write_batch(self, k: int, future: Future[list[tuple[Analyzer, Derived]]], *, replace: bool,
                     step: StoreStats | None) -> None:
        """Write batch ``k``'s rows once its kernels are done (committing the batch before first)."""
        outs = future.result()
        self._between_batches()
        for a, out in outs:
            self._write(a, out, batch=f"_batch_w{k % 2}", replace=replace, step=step is not None)

    def _write(self, a: Analyzer, out: Derived, *, batch: str, replace: bool, step: bool = False) -> None:
        """Write a batch's rows (replacing the old rows of the traces in the table ``batch``); a
        ``rederive`` step (``step``) replaces only the tables it returned, and no findings."""
        con = self.con
        for table in a.row_tables():
            if step and table not in out.tables:
                continue
            if replace:
                con.execute(f"DELETE FROM {table} WHERE trace_id IN (SELECT trace_id FROM {batch})")
            data = out.tables.get(table)
            if data is None or data.num_rows == 0:
                continue
            cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
            con.register("_out", data)
            try:
                con.execute(f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(cols)} FROM _out")
            finally:
                con.unregister("_out")
        if step:
            return
        if replace:
            con.execute(f"DELETE FROM finding_store WHERE analyzer = ? AND trace_id IN (SELECT trace_id FROM {batch})",
                        [a.name])
        if out.findings.num_rows:
            con.register("_out", out.findings.select(list(FINDING_COLUMNS)))
            try:
                con.execute(f"INSERT INTO finding_store ({', '.join(FINDING_COLUMNS)}) SELECT * FROM _out")
            finally:
                con.unregister("_out")

    # -- store-wide statistics ------------------------------------------------------------------

    def _stats_table(self, st: StoreStats) -> pa.Table:
        if st.table not in self.stats:
            self.stats[st.table] = self.con.sql(f"SELECT * FROM {st.table}").to_arrow_table()
        return self.stats[st.table]

    def _update_stats(self, k: int, j: int, st: StoreStats, *, exclude_work: bool) -> None:
        """Recompute ``st`` (statistic ``j`` of analyzer ``k``) from the store, persist it, and add the
        traces that depend on changed rows to ``_redo<k>`` (analyzer ``k`` derives them again), or to
        ``_redo<k>_<j>`` when the statistic has its own ``rederive``."""
        con = self.con
        new = st.compute(con, self.config)
        con.register("_stats_new", new)
        try:
            keys = ", ".join(st.key)
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE _stats_changed AS
                SELECT DISTINCT {keys} FROM (
                    (SELECT * FROM {st.table} EXCEPT SELECT * FROM _stats_new)
                    UNION ALL
                    (SELECT * FROM _stats_new EXCEPT SELECT * FROM {st.table}))
            """)
            con.execute(f"DELETE FROM {st.table}")
            con.execute(f"INSERT INTO {st.table} SELECT * FROM _stats_new")
        finally:
            con.unregister("_stats_new")
        self.stats[st.table] = new
        changed = con.execute("SELECT count(*) FROM _stats_changed").fetchall()[0][0]
        if not changed or st.affected_sql is None:
            return
        redo = f"_redo{k}" if st.rederive is None else f"_redo{k}_{j}"
        sql = f"INSERT INTO {redo} SELECT trace_id FROM ({st.affected_sql})"
        if exclude_work:  # derived with the new statistic anyway
            sql += " WHERE trace_id NOT IN (SELECT trace_id FROM _work)"
        con.execute(sql)


def _components(traces: np.ndarray, pair_trace: np.ndarray, pair_session: np.ndarray) -> np.ndarray:
    """Group number per trace: traces that share a session id (directly or through other traces)
    get the same number (connected components by label propagation, no recursion)."""
    group = np.arange(len(traces), dtype=np.int64)
    if not len(pair_trace):
        return group
    index = {t: i for i, t in enumerate(traces.tolist())}
    ti = np.fromiter((index[t] for t in pair_trace.tolist()), dtype=np.int64, count=len(pair_trace))
    _, si = np.unique(pair_session.astype(str), return_inverse=True)
    n_sessions = int(si.max()) + 1
    while True:
        s_label = np.full(n_sessions, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(s_label, si, group[ti])
        new = group.copy()
        np.minimum.at(new, ti, s_label[si])
        new = new[new]  # pointer jumping: follow labels to their own labels
        if np.array_equal(new, group):
            return group
        group = new
