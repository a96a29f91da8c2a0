"""Writing decoded batches into the store, deduplicating by (trace_id, span_id).

For each batch: the spans become an Arrow table, DuckDB computes each span's
content hash and normalized columns in one vectorised statement, and rows are
classified:

* first occurrence of a key not in the store -> inserted;
* same key, same content (in the store or earlier in the batch) -> duplicate;
* same key, different content -> the first is kept, the later one is
  quarantined with reason ``conflicting duplicate``.

The caller owns the transaction (one per file, see :mod:`.pipeline`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from fabric_trace.ingest.batch import SPAN_FIELDS, SpanBatch
from fabric_trace.ingest.normalize import Projection, _sql_str

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
        ("attributes", pa.string()),
        ("events", pa.string()),
        ("links", pa.string()),
        ("dropped_attributes_count", pa.int64()),
        ("dropped_events_count", pa.int64()),
        ("dropped_links_count", pa.int64()),
        ("resource_id", pa.string()),
        ("scope_id", pa.string()),
    ]
)

_RAW_COLS = (
    "trace_id, span_id, parent_span_id, trace_state, flags, name, kind, start_ns, end_ns, "
    "status_code, status_message, attributes, events, links, dropped_attributes_count, "
    "dropped_events_count, dropped_links_count, resource_id, scope_id"
)


@dataclass
class BatchResult:
    """Counts for one written batch."""

    decoded: int = 0
    inserted: int = 0
    duplicate: int = 0
    conflicts: list[tuple[str, str, str, str]] = field(default_factory=list)  # where, trace, span, reason


def _dumps_list(values: list[Any]) -> list[str]:
    dumps = orjson.dumps
    out = []
    for v in values:
        out.append(dumps(v).decode() if v else ("[]" if isinstance(v, list) else "{}"))
    return out


def batch_to_arrow(batch: SpanBatch, seq_start: int) -> pa.Table:
    """Turn a batch's span rows into an Arrow table in the staging schema."""
    n = len(batch.spans)
    if n == 0:
        return _STAGE_SCHEMA.empty_table()
    cols = list(zip(*batch.spans))
    by_name = dict(zip(SPAN_FIELDS, cols))
    arrays: list[Any] = [pa.array(range(seq_start, seq_start + n), pa.int64())]
    for fld in _STAGE_SCHEMA.names[1:]:
        src = "where" if fld == "where_" else fld
        values = by_name[src]
        if fld in ("attributes", "events", "links"):
            values = _dumps_list(list(values))
        arrays.append(pa.array(values, _STAGE_SCHEMA.field(fld).type))
    return pa.Table.from_arrays(arrays, schema=_STAGE_SCHEMA)


@dataclass
class Prepared:
    """A batch converted for the database (built on the decoding thread)."""

    spans: pa.Table
    resources: pa.Table | None
    scopes: pa.Table | None
    has_inner_duplicates: bool
    decoded: int


class StoreWriter:
    """Writes batches into an open connection, inside the caller's transaction.

    :meth:`prepare` is pure Python/Arrow work; :meth:`apply` runs the SQL (DuckDB
    releases the GIL), so the pipeline can decode the next batch while the
    previous one is written.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, projection: Projection) -> None:
        self.con = con
        self.projection = projection
        self._seq = 0
        span_list = "[" + ", ".join(_sql_str(p) for p in projection.span_paths) + "]"
        res_list = "[" + ", ".join(_sql_str(p) for p in projection.resource_paths) + "]"
        norm = ",\n            ".join(f"{expr} AS {col}" for col, expr in projection.columns.items())
        # Local resource/scope keys (whatever the decoder returned) -> canonical ids.
        con.execute("CREATE OR REPLACE TEMP TABLE res_map (local_key VARCHAR PRIMARY KEY, resource_id VARCHAR)")
        con.execute("CREATE OR REPLACE TEMP TABLE scope_map (local_key VARCHAR PRIMARY KEY, scope_id VARCHAR)")
        # Resource attributes the crosswalk needs, extracted once per resource (not per span).
        con.execute("CREATE OR REPLACE TEMP TABLE res_x (resource_id VARCHAR PRIMARY KEY, _r VARCHAR[])")
        self._res_x_sql = (f"INSERT OR IGNORE INTO res_x SELECT resource_id, json_extract_string(attributes, {res_list}) "
                           "FROM dim_canon")
        # A staged span with canonical resource/scope ids (by content). Attribute,
        # event and link JSON is orjson's serialisation of the decoded values, the
        # same for every decoder, so equal spans hash equal.
        self._canon_sql = f"""
        CREATE OR REPLACE TEMP VIEW stage_canon AS
        WITH st AS (
            SELECT b.seq, b.where_, b.trace_id, b.span_id, b.parent_span_id, b.trace_state, b.flags,
                   b.name, b.kind, b.start_ns, b.end_ns, b.status_code, b.status_message,
                   b.attributes, b.events, b.links,
                   b.dropped_attributes_count, b.dropped_events_count, b.dropped_links_count,
                   rm.resource_id, sm.scope_id
            FROM stage_batch b
            LEFT JOIN res_map rm ON rm.local_key = b.resource_id
            LEFT JOIN scope_map sm ON sm.local_key = b.scope_id
        )
        SELECT *, hash({_RAW_COLS}) AS content_hash FROM st
        """
        self._classify_sql = """
        CREATE OR REPLACE TEMP TABLE stage_cls AS
        SELECT st.*,
               row_number() OVER w AS rn,
               first(st.content_hash) OVER w AS first_hash
        FROM stage_canon st
        WINDOW w AS (PARTITION BY trace_id, span_id ORDER BY seq
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
        """

        def insert_from(source: str) -> str:
            return f"""
        INSERT INTO span_store
        SELECT {_RAW_COLS}, ? AS file_id, content_hash, {", ".join(projection.columns)}
        FROM (
            SELECT c.*,
            {norm}
            FROM (
                SELECT c1.*, list_transform(c1._a, lambda x: lower(x)) AS _l
                FROM (
                    SELECT c0.*, json_extract_string(c0.attributes, {span_list}) AS _a, lower(c0.name) AS _n, r._r
                    FROM {source} c0 LEFT JOIN res_x r USING (resource_id)
                ) c1
            ) c
        )
        ON CONFLICT DO NOTHING
        RETURNING trace_id, span_id
        """

        self._insert_ranked_sql = insert_from("(SELECT * FROM stage_cls WHERE rn = 1)")
        self._insert_plain_sql = insert_from("stage_canon")

    def prepare(self, batch: SpanBatch) -> Prepared:
        """Convert a batch to Arrow tables (no database access)."""
        table = batch_to_arrow(batch, self._seq)
        self._seq += len(batch.spans)
        keys = set(zip(table.column("trace_id").to_pylist(), table.column("span_id").to_pylist())) if batch.spans else set()
        return Prepared(
            spans=table,
            resources=_resources_table(batch) if batch.resources else None,
            scopes=_scopes_table(batch) if batch.scopes else None,
            has_inner_duplicates=len(keys) != len(batch.spans),
            decoded=len(batch.spans),
        )

    def write(self, batch: SpanBatch, file_id: int) -> BatchResult:
        """Prepare and apply one batch (single-threaded convenience)."""
        return self.apply(self.prepare(batch), file_id)

    def apply(self, prep: Prepared, file_id: int) -> BatchResult:
        """Write one prepared batch; returns its counts. Raises ``duckdb.Error`` on failure."""
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
        con.register("stage_batch", prep.spans)
        try:
            con.execute(self._canon_sql)
            if prep.has_inner_duplicates:
                con.execute(self._classify_sql)
                inserted = con.execute(self._insert_ranked_sql, [file_id]).fetchall()
                n_first = con.execute("SELECT count(*) FROM stage_cls WHERE rn = 1").fetchone()[0]
            else:
                inserted = con.execute(self._insert_plain_sql, [file_id]).fetchall()
                n_first = prep.decoded
            result.inserted = len(inserted)
            if prep.has_inner_duplicates:
                later_same, later_conflicts = self._later_copies()
                result.duplicate += later_same
                result.conflicts.extend(later_conflicts)
            # First copies not inserted collided with the store.
            if n_first != result.inserted:
                if not prep.has_inner_duplicates:
                    con.execute(self._classify_sql)
                same, conflicts = self._store_collisions(inserted)
                result.duplicate += same
                result.conflicts.extend(conflicts)
        finally:
            con.unregister("stage_batch")
        return result

    def _insert_dim(self, data: pa.Table, id_sql: str, table: str, map_table: str, id_col: str,
                    cols: str) -> None:
        """Store resources/scopes under content ids and remember local key -> id."""
        con = self.con
        con.register("dim_batch", data)
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE dim_canon AS SELECT {id_sql} AS {id_col}, local_key, "
                        f"{cols.replace('attributes', 'json(attributes) AS attributes')} FROM dim_batch")
            con.execute(f"INSERT INTO {table} SELECT {id_col}, {cols} FROM dim_canon ON CONFLICT DO NOTHING")
            con.execute(f"INSERT OR REPLACE INTO {map_table} SELECT local_key, {id_col} FROM dim_canon")
            if table == "resources":
                con.execute(self._res_x_sql)
        finally:
            con.unregister("dim_batch")

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
            con.register("inserted_rows", pa.table({"trace_id": [r[0] for r in inserted],
                                                    "span_id": [r[1] for r in inserted]}))
            con.execute("INSERT INTO stage_inserted SELECT trace_id, span_id FROM inserted_rows")
            con.unregister("inserted_rows")
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


def _resources_table(batch: SpanBatch) -> pa.Table:
    items = list(batch.resources.items())
    return pa.table(
        {
            "local_key": [k for k, _ in items],
            "attributes": [v[0] for _, v in items],
            "schema_url": pa.array([v[1] for _, v in items], pa.string()),
            "dropped": pa.array([v[2] for _, v in items], pa.int64()),
        }
    )


def _scopes_table(batch: SpanBatch) -> pa.Table:
    items = list(batch.scopes.items())
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
