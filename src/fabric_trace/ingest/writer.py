"""Writing decoded batches into the store, deduplicating by (trace_id, span_id).

For each batch the spans become an Arrow table (on the decoding thread), and one
statement computes every span's content hash and normalized columns and inserts
it (on the writer thread; DuckDB releases the GIL). Rows are classified:

* first occurrence of a key not in the store -> inserted;
* same key, same content (in the store or earlier in the file) -> duplicate;
* same key, different content -> the first is kept, the later one is
  quarantined with reason ``conflicting duplicate``.

A file is written in one of two modes (the caller owns the transaction, one per
file, see :mod:`.pipeline`):

* **fast** (the default for a file): a plain ``INSERT`` (per batch here; the ingest
  pipeline runs one per file fed as a stream, :mod:`.writer_stream`). The primary
  key is checked by DuckDB's index; any collision (with the store, with an
  earlier batch, inside the batch) makes DuckDB abort the transaction, and
  :meth:`StoreWriter.apply` raises :class:`KeyCollision`. The pipeline then rolls
  the file back and ingests it again in safe mode. For new data -- the common
  case -- nothing is spent on duplicate detection.
* **safe** (standard input, or the second pass after a collision): ``INSERT ...
  ON CONFLICT DO NOTHING RETURNING`` and the classification above. DuckDB 2.0
  runs that as a MERGE that scans the stored keys, so its cost grows with the
  store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from fabric_trace.ingest.batch import SpanBatch
from fabric_trace.ingest.normalize import Projection, extract_columns

_JSON = pa.json_(pa.string())

_STAGE_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("where_", pa.string()),
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("parent_span_id", pa.string()),
        ("trace_state", pa.string()),
        ("flags", pa.int64()),
        ("name", pa.string()),
        ("kind", pa.string()),
        ("start_ns", pa.int64()),
        ("end_ns", pa.int64()),
        ("status_code", pa.string()),
        ("status_message", pa.string()),
        ("attributes", _JSON),
        ("events", _JSON),  # NULL = "[]"
        ("links", _JSON),  # NULL = "[]"
        ("dropped_attributes_count", pa.int64()),  # NULL = 0
        ("dropped_events_count", pa.int64()),  # NULL = 0
        ("dropped_links_count", pa.int64()),  # NULL = 0
        ("resource_id", pa.string()),
        ("scope_id", pa.string()),
    ]
)

#: Optional staged columns and the value NULL stands for.
_NULL_MEANS = {"events": "'[]'::JSON", "links": "'[]'::JSON", "dropped_attributes_count": "0", "dropped_events_count": "0",
               "dropped_links_count": "0"}  # fmt: skip

_RAW_COLS = (
    "trace_id, span_id, parent_span_id, trace_state, flags, name, kind, start_ns, end_ns, "
    "status_code, status_message, attributes, events, links, dropped_attributes_count, "
    "dropped_events_count, dropped_links_count, resource_id, scope_id"
)

#: Rows per Arrow record batch handed to DuckDB (several let its threads share a batch).
CHUNK_ROWS = 16_384


class KeyCollision(Exception):
    """A fast-mode INSERT met a (trace_id, span_id) that exists already; the transaction is aborted."""


@dataclass
class BatchResult:
    """Counts for one written batch."""

    decoded: int = 0
    inserted: int = 0
    duplicate: int = 0
    conflicts: list[tuple[str, str, str, str]] = field(default_factory=list)  # where, trace, span, reason


def _sparse(batch: SpanBatch, name: str, typ: pa.DataType, n: int) -> pa.Array:
    """An optional field as an Arrow column: NULL where the span has the default."""
    values = batch.extras[name]
    if not values:
        return pa.nulls(n, typ)
    dense: list[Any] = [None] * n
    for row, value in values:
        dense[row] = value
    if typ is _JSON:
        return pa.ExtensionArray.from_storage(_JSON, pa.array(dense, pa.string()))
    return pa.array(dense, typ)


def _runs(batch: SpanBatch, values: list[str], n: int) -> pa.Array:
    """A per-group value (resource id, scope id) repeated for each span of the group."""
    starts = np.asarray(batch.group_start + [n], dtype=np.int64)
    counts = np.diff(starts)
    return pa.array(values, pa.string()).take(pa.array(np.repeat(np.arange(len(values)), counts)))


def batch_to_arrow(batch: SpanBatch, seq_start: int, with_where: bool = True) -> pa.Table:
    """Turn a batch's columns into an Arrow table in the staging schema.

    ``with_where=False`` leaves the span locations NULL (fast mode never reports them).
    """
    n = len(batch)
    if n == 0:
        return _STAGE_SCHEMA.empty_table()
    string = pa.string()
    attrs = pa.array(batch.attributes, string)
    arrays = [
        pa.array(np.arange(seq_start, seq_start + n, dtype=np.int64)),
        pa.array(batch.wheres(), string) if with_where else pa.nulls(n, string),
        pa.array(batch.trace_id, string),
        pa.array(batch.span_id, string),
        pa.array(batch.parent_span_id, string),
        _sparse(batch, "trace_state", string, n),
        pa.array(batch.flags, pa.int64()),
        pa.array(batch.name, string),
        pa.array(batch.kind, string),
        pa.array(batch.start_ns, pa.int64()),
        pa.array(batch.end_ns, pa.int64()),
        pa.array(batch.status_code, string),
        _sparse(batch, "status_message", string, n),
        pa.ExtensionArray.from_storage(_JSON, attrs),
        _sparse(batch, "events", _JSON, n),
        _sparse(batch, "links", _JSON, n),
        _sparse(batch, "dropped_attributes_count", pa.int64(), n),
        _sparse(batch, "dropped_events_count", pa.int64(), n),
        _sparse(batch, "dropped_links_count", pa.int64(), n),
        _runs(batch, batch.group_resource, n),
        _runs(batch, batch.group_scope, n),
    ]
    return pa.Table.from_arrays(arrays, schema=_STAGE_SCHEMA)


@dataclass
class Prepared:
    """A batch converted for the database (built on the decoding thread)."""

    spans: pa.Table
    resources: pa.Table | None
    scopes: pa.Table | None
    decoded: int


def merge_prepared(preps: list[Prepared]) -> Prepared:
    """One prepared batch from several, in order (Arrow tables concatenated, not copied)."""
    if len(preps) == 1:
        return preps[0]
    res = [p.resources for p in preps if p.resources is not None]
    scopes = [p.scopes for p in preps if p.scopes is not None]
    return Prepared(
        spans=pa.concat_tables([p.spans for p in preps]),
        resources=pa.concat_tables(res) if res else None,
        scopes=pa.concat_tables(scopes) if scopes else None,
        decoded=sum(p.decoded for p in preps),
    )


class StoreWriter:
    """Writes batches into an open connection, inside the caller's transaction.

    :meth:`prepare` is pure Python/Arrow work; :meth:`apply` runs the SQL (DuckDB
    releases the GIL), so the pipeline can decode the next batch while the
    previous one is written. ``fast`` selects the mode (see the module docstring).
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, projection: Projection, fast: bool = True) -> None:
        self.con = con
        self.projection = projection
        self.fast = fast
        self._seq = 0
        self._known: set[str] = set()  # local resource/scope keys stored in this file's transaction
        p = projection
        # Local resource/scope keys (whatever the decoder returned) -> canonical ids.
        con.execute("CREATE OR REPLACE TEMP TABLE res_map (local_key VARCHAR PRIMARY KEY, resource_id VARCHAR)")
        con.execute("CREATE OR REPLACE TEMP TABLE scope_map (local_key VARCHAR PRIMARY KEY, scope_id VARCHAR)")
        # Resource attributes the crosswalk needs, extracted once per resource (not per span).
        r_cols = ", ".join(f"r{i} VARCHAR" for i in range(1, len(p.resource_keys) + 1))
        con.execute(f"CREATE OR REPLACE TEMP TABLE res_x (resource_id VARCHAR PRIMARY KEY{', ' + r_cols if r_cols else ''})")
        r_src, r_sel = extract_columns("attributes", p.resource_keys, "r")
        self._res_x_sql = (f"INSERT OR IGNORE INTO res_x SELECT resource_id{''.join(', ' + c for c in r_sel)} "
                           f"FROM (SELECT resource_id, {r_src} AS _x_r FROM dim_canon)") if r_sel else \
            "INSERT OR IGNORE INTO res_x SELECT resource_id FROM dim_canon"
        # A staged span with canonical resource/scope ids (by content) and its content
        # hash. Attribute, event and link JSON is the canonical JSON of the decoded
        # values, the same for every decoder, so equal spans hash equal.
        staged = ", ".join(f"coalesce(b.{c}, {_NULL_MEANS[c]}) AS {c}" if c in _NULL_MEANS else f"b.{c}"
                           for c in _RAW_COLS.split(", ") if c not in ("resource_id", "scope_id"))
        canon = f"""(
            SELECT *, hash({_RAW_COLS}) AS content_hash FROM (
                SELECT b.seq, b.where_, {staged}, rm.resource_id, sm.scope_id
                FROM stage_batch b
                LEFT JOIN res_map rm ON rm.local_key = b.resource_id
                LEFT JOIN scope_map sm ON sm.local_key = b.scope_id
            )
        )"""
        self._classify_sql = f"""
        CREATE OR REPLACE TEMP TABLE stage_cls AS
        SELECT st.*,
               row_number() OVER w AS rn,
               first(st.content_hash) OVER w AS first_hash
        FROM {canon} st
        WINDOW w AS (PARTITION BY trace_id, span_id ORDER BY seq
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
        """
        a_src, a_sel = extract_columns("attributes", p.span_keys, "a")
        low = [f"lower(a{i}) AS l{i}" for i in p.lowered] + [f"{e} AS {n}" for n, e in p.intermediates.items()]
        norm = ", ".join(f"{expr} AS {col}" for col, expr in p.columns.items())
        r_names = "".join(f", r.r{i}" for i in range(1, len(p.resource_keys) + 1))

        def insert_from(source: str, returning: bool, resolved: bool = False) -> str:
            # resolved: the source has the crosswalk's resource columns already (r1..rM)
            inner = f"""
            SELECT s3.*, {norm} FROM (
                SELECT s2.*{"".join(", " + x for x in low)} FROM (
                    SELECT s1.*{"".join(", " + x for x in a_sel)} FROM (
                        SELECT c0.*, {a_src if a_sel else "NULL"} AS _x_a, lower(c0.name) AS _n{"" if resolved else r_names}
                        FROM {source} c0 {"" if resolved else "LEFT JOIN res_x r USING (resource_id)"}
                    ) s1
                ) s2
            ) s3"""
            for k, layer in enumerate(p.late):
                cols = ", ".join(f"{expr} AS {col}" for col, expr in layer.items())
                inner = f"SELECT t{k}.*, {cols} FROM ({inner}) t{k}"
            return f"""
        INSERT INTO span_store
        SELECT {_RAW_COLS}, ? AS file_id, content_hash, {", ".join(p.stored)}
        FROM ({inner})
        """ + ("ON CONFLICT DO NOTHING RETURNING trace_id, span_id" if returning else "")

        self._insert_fast_sql = insert_from(canon, returning=False)
        # One statement per file (see .writer_stream): the stream's spans carry canonical
        # resource/scope ids and the resource crosswalk columns, so nothing is joined.
        n_r = len(p.resource_keys)
        r_stream = "".join(f", b.r{i}" for i in range(1, n_r + 1))
        stream_canon = f"""(
            SELECT *, hash({_RAW_COLS}) AS content_hash FROM (
                SELECT b.seq, b.where_, {staged}, b.resource_id, b.scope_id{r_stream}
                FROM stage_stream b
            )
        )"""
        self._insert_stream_sql = insert_from(stream_canon, returning=False, resolved=True)
        self.stream_schema = pa.schema(list(_STAGE_SCHEMA) + [(f"r{i}", pa.string()) for i in range(1, n_r + 1)])
        #: SQL giving a resource's canonical row and crosswalk columns (over ``dim_batch``).
        self.resource_sql = (f"SELECT local_key, {_RESOURCE_ID_SQL} AS resource_id, json(attributes) AS attributes, "
                             f"schema_url, dropped{''.join(', ' + c for c in r_sel)} "
                             f"FROM (SELECT *, {r_src if r_sel else 'NULL'} AS _x_r FROM "
                             f"(SELECT local_key, json(attributes) AS attributes, schema_url, dropped FROM dim_batch))")
        self.scope_sql = (f"SELECT local_key, {_SCOPE_ID_SQL} AS scope_id, name, version, json(attributes) AS attributes, "
                          f"schema_url, dropped FROM dim_batch")
        self._insert_ranked_sql = insert_from("(SELECT * FROM stage_cls WHERE rn = 1)", returning=True)

    def begin_file(self, fast: bool, *, after_commit: bool = False) -> None:
        """Start writing a file (a new transaction) in fast or safe mode.

        ``after_commit``: the previous transaction of this writer committed, so the
        resources and scopes it stored need not be stored again (a long-running writer
        such as ``fabric collect`` then skips them); otherwise they are forgotten, as a
        rolled-back transaction took them away.
        """
        self.fast = fast
        if not after_commit:
            self._known.clear()

    def prepare(self, batch: SpanBatch) -> Prepared:
        """Convert a batch to Arrow tables (no database access).

        Resources and scopes already stored for this file are left out: each new batch
        interns them again, but only new ones cost statements on the writer thread.
        """
        n = len(batch)
        table = batch_to_arrow(batch, self._seq, with_where=not self.fast)
        self._seq += n
        if n > CHUNK_ROWS:  # several record batches: DuckDB's threads can share the work
            table = pa.Table.from_batches(table.to_batches(max_chunksize=CHUNK_ROWS), schema=table.schema)
        resources = {k: v for k, v in batch.resources.items() if k not in self._known}
        scopes = {k: v for k, v in batch.scopes.items() if k not in self._known}
        self._known.update(resources)
        self._known.update(scopes)
        return Prepared(
            spans=table,
            resources=_resources_table(resources) if resources else None,
            scopes=_scopes_table(scopes) if scopes else None,
            decoded=n,
        )

    def write(self, batch: SpanBatch, file_id: int) -> BatchResult:
        """Prepare and apply one batch (single-threaded convenience)."""
        return self.apply(self.prepare(batch), file_id)

    def apply(self, prep: Prepared, file_id: int) -> BatchResult:
        """Write one prepared batch; returns its counts.

        Raises :class:`KeyCollision` in fast mode when a key exists already (the
        transaction is then aborted), ``duckdb.Error`` on other failures.
        """
        con = self.con
        result = BatchResult(decoded=prep.decoded)
        if prep.resources is not None:
            self._insert_dim(prep.resources, _RESOURCE_ID_SQL, "resources", "res_map", "resource_id",
                             "attributes, schema_url, dropped")
        if prep.scopes is not None:
            self._insert_dim(prep.scopes, _SCOPE_ID_SQL, "scopes", "scope_map", "scope_id",
                             "name, version, attributes, schema_url, dropped")
        if not prep.decoded:
            return result
        # The SQL reads the Arrow table through DuckDB's replacement scan of this local
        # variable: a table registered with con.register() inside a transaction stays
        # referenced (with its memory) until the transaction ends.
        stage_batch = prep.spans  # noqa: F841 - read by name in the SQL
        if self.fast:
            try:
                con.execute(self._insert_fast_sql, [file_id])
            except duckdb.ConstraintException as exc:
                raise KeyCollision(str(exc)) from None
            result.inserted = prep.decoded
            return result
        con.execute(self._classify_sql)
        del stage_batch
        inserted = con.execute(self._insert_ranked_sql, [file_id]).fetchall()
        n_first = con.execute("SELECT count(*) FROM stage_cls WHERE rn = 1").fetchall()[0][0]
        result.inserted = len(inserted)
        if n_first != prep.decoded:
            later_same, later_conflicts = self._later_copies()
            result.duplicate += later_same
            result.conflicts.extend(later_conflicts)
        # First copies not inserted collided with the store.
        if n_first != result.inserted:
            same, conflicts = self._store_collisions(inserted)
            result.duplicate += same
            result.conflicts.extend(conflicts)
        return result

    def _insert_dim(self, data: pa.Table, id_sql: str, table: str, map_table: str, id_col: str,
                    cols: str) -> None:
        """Store resources/scopes under content ids and remember local key -> id."""
        con = self.con
        dim_batch = data  # noqa: F841 - read by name in the SQL (replacement scan)
        con.execute(f"CREATE OR REPLACE TEMP TABLE dim_canon AS SELECT {id_sql} AS {id_col}, local_key, "
                    f"{cols.replace('attributes', 'json(attributes) AS attributes')} FROM dim_batch")
        con.execute(f"INSERT INTO {table} SELECT {id_col}, {cols} FROM dim_canon ON CONFLICT DO NOTHING")
        con.execute(f"INSERT OR REPLACE INTO {map_table} SELECT local_key, {id_col} FROM dim_canon")
        if table == "resources":
            con.execute(self._res_x_sql)

    def _later_copies(self) -> tuple[int, list[tuple[str, str, str, str]]]:
        rows = self.con.execute(
            "SELECT where_, trace_id, span_id, content_hash = first_hash FROM stage_cls WHERE rn > 1 ORDER BY seq"
        ).fetchall()
        same = sum(1 for r in rows if r[3])
        conflicts = [
            (w, t, s, "conflicting duplicate: same trace_id/span_id as an earlier span in this file, different content; the first was kept")
            for w, t, s, eq in rows
            if not eq
        ]
        return same, conflicts

    def _store_collisions(self, inserted: list[tuple[str, str]]) -> tuple[int, list[tuple[str, str, str, str]]]:
        con = self.con
        con.execute("CREATE OR REPLACE TEMP TABLE stage_inserted (trace_id VARCHAR, span_id VARCHAR)")
        if inserted:
            inserted_rows = pa.table({"trace_id": [r[0] for r in inserted],  # noqa: F841 - read by name
                                      "span_id": [r[1] for r in inserted]})
            con.execute("INSERT INTO stage_inserted SELECT trace_id, span_id FROM inserted_rows")
        rows = con.execute(
            """
            SELECT c.where_, c.trace_id, c.span_id, c.content_hash = s.content_hash
            FROM stage_cls c
            JOIN span_store s USING (trace_id, span_id)
            ANTI JOIN stage_inserted i USING (trace_id, span_id)
            WHERE c.rn = 1
            ORDER BY c.seq
            """
        ).fetchall()
        same = sum(1 for r in rows if r[3])
        conflicts = [
            (w, t, s, "conflicting duplicate: a span with this trace_id/span_id is already stored with different content; the stored one was kept")
            for w, t, s, eq in rows
            if not eq
        ]
        return same, conflicts


#: Content ids of resources and scopes (over DuckDB's canonical JSON, so every
#: decoder and encoding of the same resource gets the same id).
_RESOURCE_ID_SQL = ("substr(md5(json(attributes)::VARCHAR || chr(31) || coalesce(schema_url, '') || chr(31) "
                    "|| dropped::VARCHAR), 1, 16)")
_SCOPE_ID_SQL = ("substr(md5(coalesce(name, '') || chr(31) || coalesce(version, '') || chr(31) "
                 "|| json(attributes)::VARCHAR || chr(31) || coalesce(schema_url, '') || chr(31) "
                 "|| dropped::VARCHAR), 1, 16)")


def _resources_table(resources: dict[str, tuple[str, str | None, int]]) -> pa.Table:
    items = list(resources.items())
    return pa.table(
        {
            "local_key": [k for k, _ in items],
            "attributes": [v[0] for _, v in items],
            "schema_url": pa.array([v[1] for _, v in items], pa.string()),
            "dropped": pa.array([v[2] for _, v in items], pa.int64()),
        }
    )


def _scopes_table(scopes: dict[str, tuple[str | None, str | None, str, str | None, int]]) -> pa.Table:
    items = list(scopes.items())
    return pa.table(
        {
            "local_key": [k for k, _ in items],
            "name": pa.array([v[0] for _, v in items], pa.string()),
            "version": pa.array([v[1] for _, v in items], pa.string()),
            "attributes": [v[2] for _, v in items],
            "schema_url": pa.array([v[3] for _, v in items], pa.string()),
            "dropped": pa.array([v[4] for _, v in items], pa.int64()),
        }
    )
