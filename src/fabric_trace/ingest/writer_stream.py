"""Fast mode in one statement per file: the spans reach DuckDB as a stream.

:meth:`StoreWriter.apply <fabric_trace.ingest.writer.StoreWriter.apply>` runs one
``INSERT`` per batch. The statement normalizes every span (the crosswalk, the role
rules): DuckDB binds, optimizes and plans it again each time, ~60-90 ms of CPU per
statement, ~1.5 s per million spans in 50,000-span batches. In fast mode (plain
``INSERT``, see :mod:`.writer`) nothing needs a statement per batch, so
:class:`StreamInsert` runs *one* ``INSERT`` per file that reads the batches from an
Arrow ``RecordBatchReader`` as the decoding thread hands them over.

The statement cannot join the resource and scope tables of the store's
transaction (they grow while it runs, and the connection is busy), so each
batch's spans are given their canonical resource and scope ids and the
crosswalk's resource columns before they enter the stream. These are computed
by the same SQL as in :meth:`StoreWriter.apply` (``md5`` over DuckDB's ``json()``
text, ``json_transform``), on a private in-memory DuckDB connection; the
resources and scopes themselves are inserted into the store after the spans, in
the same transaction. The stored rows are the same (tested on every sample and
on generated files against the per-batch statement).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from fabric_trace.ingest.writer import CHUNK_ROWS, KeyCollision, Prepared, StoreWriter


class StreamInsert:
    """One file's fast-mode ``INSERT``, fed batch by batch (use on one thread).

    ``run(first, more)`` inserts ``first`` and every batch ``more()`` returns until it
    returns ``None``; it raises :class:`KeyCollision` when a key exists already (the
    transaction is then aborted, as with :meth:`StoreWriter.apply`).
    """

    def __init__(self, writer: StoreWriter, file_id: int) -> None:
        self._writer = writer
        self._file_id = file_id
        self._side = duckdb.connect()  # private, in memory: dims are resolved while the store runs the INSERT
        self._res_keys: dict[str, int] = {}
        self._res_rows: list[pa.Table] = []
        self._scope_keys: dict[str, int] = {}
        self._scope_rows: list[pa.Table] = []
        n_r = len(writer.projection.resource_keys)
        self._r_names = [f"r{i}" for i in range(1, n_r + 1)]
        self._feed_error: BaseException | None = None

    def close(self) -> None:
        self._side.close()

    def run(self, first: Prepared, more: Callable[[], Prepared | None]) -> None:
        con = self._writer.con
        stage_stream = pa.RecordBatchReader.from_batches(self._writer.stream_schema,  # noqa: F841 - read by name
                                                         self._batches(first, more))
        try:
            con.execute(self._writer._insert_stream_sql, [self._file_id])  # noqa: SLF001 - its own SQL
        except duckdb.ConstraintException as exc:
            raise KeyCollision(str(exc)) from None
        except duckdb.Error:
            if self._feed_error is not None:  # the feeding side failed: that is the error
                raise self._feed_error from None
            raise
        if self._feed_error is not None:
            raise self._feed_error
        self._store_dims(con)

    def _batches(self, first: Prepared, more: Callable[[], Prepared | None]) -> Iterator[pa.RecordBatch]:
        prep: Prepared | None = first
        try:
            while prep is not None:
                if prep.decoded:
                    yield from self.resolve(prep).to_batches(max_chunksize=CHUNK_ROWS)
                else:
                    self._dims(prep)
                prep = more()
        except BaseException as exc:  # noqa: BLE001 - re-raised by run() (DuckDB would wrap it)
            self._feed_error = exc
            raise

    # ------------------------------------------------------------------ resources and scopes

    def _dims(self, prep: Prepared) -> None:
        """Canonical rows of the batch's new resources and scopes (kept for the store)."""
        if prep.resources is not None:
            self._add(prep.resources, self._writer.resource_sql, self._res_keys, self._res_rows)
        if prep.scopes is not None:
            self._add(prep.scopes, self._writer.scope_sql, self._scope_keys, self._scope_rows)

    def _add(self, data: pa.Table, sql: str, keys: dict[str, int], rows: list[pa.Table]) -> None:
        dim_batch = data  # noqa: F841 - read by name in the SQL
        table = self._side.sql(sql).to_arrow_table()
        new = [i for i, k in enumerate(table.column("local_key").to_pylist()) if k not in keys]
        if not new:
            return
        table = table.take(pa.array(new, pa.int64())) if len(new) < table.num_rows else table
        base = sum(t.num_rows for t in rows)
        for i, k in enumerate(table.column("local_key").to_pylist()):
            keys[k] = base + i
        rows.append(table)

    def resolve(self, prep: Prepared) -> pa.Table:
        """The batch's spans in the stream's schema: canonical resource/scope ids, the
        resource crosswalk columns."""
        self._dims(prep)
        spans = prep.spans
        res = pa.concat_tables(self._res_rows) if len(self._res_rows) > 1 else self._res_rows[0]
        scopes = pa.concat_tables(self._scope_rows) if len(self._scope_rows) > 1 else self._scope_rows[0]
        self._res_rows[:] = [res]
        self._scope_rows[:] = [scopes]
        r_idx = _positions(spans.column("resource_id"), self._res_keys)
        s_idx = _positions(spans.column("scope_id"), self._scope_keys)
        names = spans.column_names
        arrays = [_chunked(spans.column(n)) for n in names]
        arrays[names.index("resource_id")] = _chunked(res.column("resource_id").take(r_idx).cast(pa.string()))
        arrays[names.index("scope_id")] = _chunked(scopes.column("scope_id").take(s_idx).cast(pa.string()))
        arrays += [_chunked(res.column(n).take(r_idx).cast(pa.string())) for n in self._r_names]
        return pa.Table.from_arrays(arrays, schema=self._writer.stream_schema)

    def _store_dims(self, con: duckdb.DuckDBPyConnection) -> None:
        """Insert the file's resources and scopes (as :meth:`StoreWriter.apply` does)."""
        if self._res_rows:
            res_rows = pa.concat_tables(self._res_rows)  # noqa: F841 - read by name in the SQL
            con.execute("INSERT INTO resources SELECT resource_id, attributes, schema_url, dropped "
                        "FROM res_rows ON CONFLICT DO NOTHING")
        if self._scope_rows:
            scope_rows = pa.concat_tables(self._scope_rows)  # noqa: F841 - read by name in the SQL
            con.execute("INSERT INTO scopes SELECT scope_id, name, version, attributes, schema_url, dropped "
                        "FROM scope_rows ON CONFLICT DO NOTHING")


def _chunked(values: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    return values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])


def _positions(local: pa.ChunkedArray, keys: dict[str, int]) -> pa.Array:
    """For each span, the row of its resource (scope) among the canonical rows."""
    names = list(keys)
    idx = pc.index_in(local, value_set=pa.array(names, pa.string()))
    order = pa.array([keys[k] for k in names], pa.int64())
    return order.take(idx.combine_chunks() if isinstance(idx, pa.ChunkedArray) else idx)
