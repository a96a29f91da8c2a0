"""Fast batch metrics for a whole database (DuckDB in, Arrow out).

Traces are split into buckets by ``hash(trace_id) % n_buckets``, so memory is
bounded by one bucket whatever the size of the store. For each bucket one SQL
query deduplicates the spans, numbers them by (trace_id, span_id) and resolves
every parent to a row number with a join; the numpy kernel
(:mod:`fabric_trace.graph.kernel`) does the rest.

Output tables (one row each per trace / span / segment / repair):

* ``traces``: trace_id, root_span_id, root_count, start_ns, end_ns, duration_ns,
  root_duration_ns, span_count, error_count, incomplete, repair_count
* ``spans``: trace_id, span_id, root_span_id, depth, child_count, start_ns,
  end_ns, self_ns, on_critical_path_ns, shift_ns
* ``segments``: trace_id, root_span_id, span_id, start_ns, end_ns (time order per root)
* ``repairs``: trace_id, kind, span_id, parent_span_id, offset_ns, service,
  parent_service, count
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fabric_trace.graph.kernel import MetricsBatch, SpanArrays, compute_bucket
from fabric_trace.graph.repair import TimeBounds
from fabric_trace.graph.tree import parent_rows

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")

#: Spans per bucket aimed at by :func:`iter_trace_metrics` (memory ~ 1 KB per span).
SPANS_PER_BUCKET = 250_000

_BUCKET_SQL = """
WITH src AS (
    SELECT trace_id, span_id, nullif(parent_span_id, '') AS parent_span_id, kind,
           start_ns, end_ns, nullif(service_name, '') AS service_name, nullif(host, '') AS host,
           status_code{carry_src}
    FROM {table} {where}
)
SELECT trace_id, span_id, parent_span_id, service_name, host, start_ns, end_ns,
       kind = 'PRODUCER' AS producer, kind = 'CONSUMER' AS consumer,
       status_code = 'ERROR' AS error, {copies} AS copies{carry}
FROM src {dedupe}
"""

# keep one copy per (trace_id, span_id): the one repair.copy_rank puts first
_DEDUPE = """QUALIFY row_number() OVER (
        PARTITION BY trace_id, span_id
        ORDER BY start_ns, end_ns DESC, parent_span_id NULLS FIRST, kind,
                 service_name NULLS FIRST, host NULLS FIRST, status_code) = 1"""


def _codes(values: pa.Array) -> np.ndarray:
    """Dictionary codes of strings, -1 for null."""
    return np.asarray(pc.dictionary_encode(values).indices.fill_null(-1), dtype=np.int64)


def _arrays(tbl: pa.Table, carry: tuple[str, ...] = ()) -> SpanArrays | None:
    """Sort the bucket's spans by (trace_id, span_id) and resolve parents."""
    if tbl.num_rows == 0:
        return None

    def col(name: str) -> pa.Array:
        c = tbl.column(name)
        return c.chunk(0) if c.num_chunks == 1 else pa.concat_arrays(c.chunks)

    def num(name: str, dtype: type) -> np.ndarray:
        return np.asarray(col(name).to_numpy(zero_copy_only=False), dtype=dtype)

    trace, span, parent = col("trace_id"), col("span_id"), col("parent_span_id")
    n = len(span)
    order, parent_of, tkey = parent_rows(trace, span, parent)  # the one span-tree index (graph.tree)
    sorted_row = np.empty(n, dtype=np.int64)
    sorted_row[order] = np.arange(n, dtype=np.int64)
    po = parent_of[order]
    prow = np.where(po >= 0, sorted_row[np.maximum(po, 0)], -1)  # parents as rows of the sorted arrays
    has_parent = np.asarray(parent.is_valid())
    pz = np.maximum(prow, 0)
    host, svc = _codes(col("host"))[order], _codes(col("service_name"))[order]
    same = np.where((host >= 0) & (host[pz] >= 0), host == host[pz], (svc >= 0) & (svc == svc[pz]))
    take = pa.array(order)
    tix = np.cumsum(np.concatenate(([0], tkey[order][1:] != tkey[order][:-1])), dtype=np.int64)
    return SpanArrays(
        trace_id=trace.take(take), span_id=span.take(take), parent_span_id=parent.take(take),
        service_name=col("service_name").take(take), tix=tix, parent=prow,
        has_parent=has_parent[order],
        start=num("start_ns", np.int64)[order], end=num("end_ns", np.int64)[order],
        async_edge=(prow >= 0) & num("producer", bool)[order][pz] & num("consumer", bool)[order],
        same_clock=(prow >= 0) & same,
        error=num("error", bool)[order], copies=num("copies", np.int64)[order],
        carried={c: col(c).take(take) for c in carry},
    )


def _query(table: str, where: str, *, unique: bool, carry: tuple[str, ...] = ()) -> str:
    extra = "".join(f", {c}" for c in carry)
    if unique:
        return _BUCKET_SQL.format(table=table, where=where, copies="1", dedupe="", carry=extra, carry_src=extra)
    return _BUCKET_SQL.format(table=table, where=where, dedupe=_DEDUPE, carry=extra, carry_src=extra,
                              copies="count(*) OVER (PARTITION BY trace_id, span_id)")


def iter_trace_metrics(
    con: duckdb.DuckDBPyConnection,
    *,
    table: str = "span_store",
    n_buckets: int | None = None,
    max_clock_skew_ns: int | None = None,
    unique: bool | None = None,
    carry: tuple[str, ...] = (),
    time_bounds: TimeBounds | None = None,
) -> Iterator[MetricsBatch]:
    """Yield the metrics of all traces in ``table``, one bucket of traces at a time.

    ``n_buckets`` defaults to one per :data:`SPANS_PER_BUCKET` spans; a trace
    is always entirely inside one bucket. ``max_clock_skew_ns``: ``None``
    detects clock skew only; an int adjusts offsets up to that magnitude.
    ``unique``: (trace_id, span_id) is known to be unique, so the deduplication
    is skipped; by default only for ``span_store`` (its primary key).
    ``time_bounds``: treat implausible span times as unknown (repair 1b).
    """
    if not _IDENT.match(table):
        raise ValueError(f"not a table name: {table!r}")
    reserved = {"trace_id", "span_id", "parent_span_id", "service_name", "host", "start_ns", "end_ns",
                "kind", "status_code", "producer", "consumer", "error", "copies"}
    for c in carry:
        if not _IDENT.match(c) or "." in c or c in reserved:
            raise ValueError(f"cannot carry column {c!r}")
    if n_buckets is None:
        ((count,),) = con.execute(f"SELECT count(*) FROM {table}").fetchall()
        n_buckets = max(1, -(-int(count) // SPANS_PER_BUCKET))
    is_unique = table == "span_store" if unique is None else unique

    def load(b: int) -> SpanArrays | None:
        where = "" if n_buckets == 1 else f"WHERE hash(trace_id) % {n_buckets} = {b}"
        return _arrays(con.sql(_query(table, where, unique=is_unique, carry=carry)).to_arrow_table(), carry)

    # The next bucket is read in a helper thread while the kernel runs (DuckDB and
    # most numpy sorts release the GIL). It is always finished before a batch is
    # yielded, so the caller may use ``con`` freely between batches.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(load, 0)
        for b in range(n_buckets):
            arrays = pending.result()
            if b + 1 < n_buckets:
                pending = pool.submit(load, b + 1)
            batch = None if arrays is None else compute_bucket(arrays, max_clock_skew_ns=max_clock_skew_ns,
                                                                 time_bounds=time_bounds)
            if b + 1 < n_buckets:
                wait([pending])
            if batch is not None:
                yield batch


def concat_batches(batches: list[MetricsBatch]) -> MetricsBatch:
    """Concatenate batches (traces never span two batches)."""
    if not batches:
        raise ValueError("no batches")
    return MetricsBatch(*(pa.concat_tables([getattr(b, f) for b in batches])
                          for f in ("traces", "spans", "segments", "repairs")))


def compute_trace_metrics(
    con: duckdb.DuckDBPyConnection,
    *,
    table: str = "span_store",
    n_buckets: int | None = None,
    max_clock_skew_ns: int | None = None,
    unique: bool | None = None,
    time_bounds: TimeBounds | None = None,
) -> MetricsBatch | None:
    """Metrics of all traces of ``table`` as one :class:`MetricsBatch` (``None`` if empty).

    Use :func:`iter_trace_metrics` to keep memory bounded on a big store.
    """
    batches = list(iter_trace_metrics(con, table=table, n_buckets=n_buckets,
                                      max_clock_skew_ns=max_clock_skew_ns, unique=unique,
                                      time_bounds=time_bounds))
    return concat_batches(batches) if batches else None


def metrics_from_arrow(spans: pa.Table, *, max_clock_skew_ns: int | None = None,
                       time_bounds: TimeBounds | None = None) -> MetricsBatch | None:
    """Metrics of the spans in an Arrow table with ``span_store``'s column names.

    Needs trace_id, span_id, parent_span_id, kind, start_ns, end_ns,
    service_name, host and status_code; duplicates are allowed.
    """
    con = duckdb.connect()
    try:
        con.register("input_spans", spans)
        return compute_trace_metrics(con, table="input_spans", n_buckets=1, unique=False,
                                     max_clock_skew_ns=max_clock_skew_ns, time_bounds=time_bounds)
    finally:
        con.close()
