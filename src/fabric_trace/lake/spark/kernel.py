"""What runs on the Spark executors: every analyzer's ``derive`` over one group of spans.

A group is a trace (a session component when an analyzer is session-scoped);
a Spark partition holds whole groups, sorted by group, and :func:`batched` cuts
it into batches of whole groups. :class:`GroupKernel` turns a batch's Arrow rows into the
:class:`~fabric_trace.analyzers.contract.Partition` the DuckDB engine builds,
runs the registered analyzers' kernels in registry order (later ones get the
earlier ones' rows as ``inputs``, as in the DuckDB engine) and returns one
"wide" Arrow table: a ``_table`` column naming the derived table of the row,
and ``<table>__<column>`` columns for every output table (NULL in the others).
The driver splits it into one Parquet table each.

The kernels of one batch share one private database
(:class:`~fabric_trace.analyzers.contract.KernelDatabase`), as in the DuckDB
engine: the batch's spans are copied into it once, not once per analyzer, and a
table an earlier analyzer wrote there is read in place by a later one.

:class:`StepKernel` runs one analyzer's step after a statistic of derived rows
(``StoreStats.rederive``, or its whole ``derive`` when the statistic has none)
over the affected groups: its input is wide too (the spans' columns and the
derived tables it reads, one ``_table`` value each), and it returns the rows of
the tables it replaces plus one marker row (``_table`` = :data:`RETURNED` +
table) per table returned, so the driver knows which tables to rewrite.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from fabric_trace.analyzers.contract import Analyzer, StoreStats, run_kernels
from fabric_trace.lake.layout import STORE_ONLY, store_schema

#: Name of the column that says which derived table a wide row belongs to.
TABLE_COLUMN = "_table"
#: ``_table`` of a step's spans in its wide input.
SPANS = "_spans"
#: Prefix of a step's marker rows: ``RETURNED + table`` says the step returned (replaces) that table.
RETURNED = "_returned:"


def wide_name(table: str, column: str) -> str:
    return f"{table}__{column}"


def wide_schema(outputs: dict[str, pa.Schema]) -> pa.Schema:
    """The kernel's output schema for ``outputs`` (derived table -> its Arrow schema)."""
    fields = [pa.field(TABLE_COLUMN, pa.string())]
    for table, schema in outputs.items():
        fields.extend(pa.field(wide_name(table, f.name), f.type) for f in schema)
    return pa.schema(fields)


@dataclass
class GroupKernel:
    """The kernels of one batch of whole groups (picklable: shipped to the executors)."""

    analyzers: list[Analyzer]
    config: Any
    outputs: dict[str, pa.Schema]
    """Derived tables to return (``findings`` for every analyzer's findings), with their schemas."""
    shared: Any
    """Broadcast of ``{"resources": pa.Table, "stats": {table: pa.Table}}``."""

    def __call__(self, group: pa.Table) -> pa.Table:
        """Derived rows of whole groups (one or several), as wide rows."""
        shared = self.shared.value
        spans = _store_spans(group)
        ids = pc.unique(spans.column("resource_id"))
        res = shared["resources"]
        res = res.filter(pc.is_in(res.column("resource_id"), value_set=ids))
        pieces: list[pa.Table] = []
        schema = wide_schema(self.outputs)
        for _, out in run_kernels(self.analyzers, None, spans, res, {}, shared["stats"], self.config):
            for table, data in out.tables.items():
                if table in self.outputs:
                    pieces.append(_widen(table, data, self.outputs[table], schema))
            if "findings" in self.outputs:
                pieces.append(_widen("findings", out.findings, self.outputs["findings"], schema))
        if not pieces:
            return schema.empty_table()
        return pa.concat_tables(pieces)


@dataclass
class StepKernel:
    """One analyzer's step over the affected groups, after a statistic of derived rows (picklable).

    ``step`` is the statistic whose ``rederive`` runs (``None``: the analyzer's whole ``derive``);
    ``inputs`` are the wide input's parts (:data:`SPANS` with the span columns it carries, and the
    derived tables it reads) with their Arrow schemas."""

    analyzer: Analyzer
    step: StoreStats | None
    config: Any
    inputs: dict[str, pa.Schema]
    outputs: dict[str, pa.Schema]
    shared: Any
    """Broadcast of ``{"resources": pa.Table, "stats": {table: pa.Table}}``."""

    def __call__(self, wide: pa.Table) -> pa.Table:
        shared = self.shared.value
        parts = {}
        for name, schema in self.inputs.items():
            rows = wide.filter(pc.equal(wide.column(TABLE_COLUMN), name))
            parts[name] = pa.Table.from_arrays([rows.column(wide_name(name, f.name)).cast(f.type) for f in schema],
                                               schema=schema)
        spans = _store_spans(parts.pop(SPANS))
        res = shared["resources"]
        if "resource_id" in spans.column_names:
            res = res.filter(pc.is_in(res.column("resource_id"), value_set=pc.unique(spans.column("resource_id"))))
        else:
            res = res.slice(0, 0)
        ((_, out),) = run_kernels([self.analyzer], self.step, spans, res, parts, shared["stats"], self.config)
        schema = wide_schema(self.outputs)
        pieces = []
        for table, data in out.tables.items():
            if table in self.outputs:
                pieces.append(_widen(table, data, self.outputs[table], schema))
                pieces.append(_marker(table, schema))
        if self.step is None and "findings" in self.outputs:
            pieces.append(_widen("findings", out.findings, self.outputs["findings"], schema))
        return pa.concat_tables(pieces) if pieces else schema.empty_table()


def batched(kernel: GroupKernel, batches: Iterator[pa.RecordBatch], group: str,
            batch_spans: int) -> Iterator[pa.RecordBatch]:
    """Run ``kernel`` over the rows of one Spark partition, sorted by ``group``, in batches of whole
    groups of about ``batch_spans`` rows (a bigger group is a batch of its own), like the DuckDB
    engine's batches: the per-call cost of the kernels is paid per batch, not per trace."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        rows += batch.num_rows
        if rows < batch_spans:
            continue
        table = pa.Table.from_batches(pending)
        column = table.column(group)
        cut = pc.index(column, column[-1]).as_py()  # the last group may go on in the next batch
        if cut == 0:
            continue
        yield from kernel(table.slice(0, cut)).to_batches()
        pending, rows = table.slice(cut).to_batches(), table.num_rows - cut
    if rows:
        yield from kernel(pa.Table.from_batches(pending)).to_batches()


def _store_spans(group: pa.Table) -> pa.Table:
    """The group's rows as ``span_store`` rows: every store column in order, the store's types
    (``file_id``/``content_hash``, not in a lake, are 0), sorted by trace and span id. A group
    with only some of the lake's columns (``StoreStats.span_columns``) gives those columns, in
    their order, with the store's types."""
    schema = store_schema("span_store")
    n = group.num_rows
    lake_columns = [f.name for f in schema if f.name not in STORE_ONLY]
    if not set(lake_columns) <= set(group.column_names):
        schema = pa.schema([schema.field(c) for c in group.column_names if c in schema.names])
    cols = []
    for field in schema:
        if field.name in STORE_ONLY:
            cols.append(pa.array([0] * n, field.type))
        else:
            cols.append(group.column(field.name).cast(field.type))
    table = pa.Table.from_arrays(cols, schema=schema)
    return table.sort_by([("trace_id", "ascending"), ("span_id", "ascending")])


def _marker(table: str, schema: pa.Schema) -> pa.Table:
    """One wide row of ``schema`` saying that a step returned ``table`` (:data:`RETURNED`)."""
    return pa.Table.from_arrays([pa.array([RETURNED + table], pa.string()) if f.name == TABLE_COLUMN
                                 else pa.nulls(1, f.type) for f in schema], schema=schema)


def _widen(table: str, data: pa.Table, target: pa.Schema, schema: pa.Schema) -> pa.Table:
    """``data`` (a derived table's rows) as wide rows of ``schema``."""
    n = data.num_rows
    by_name = {}
    for field in target:
        col = data.column(field.name) if field.name in data.column_names else pa.nulls(n, field.type)
        by_name[wide_name(table, field.name)] = col.cast(field.type)
    arrays = []
    for field in schema:
        if field.name == TABLE_COLUMN:
            arrays.append(pa.array([table] * n, pa.string()))
        else:
            arrays.append(by_name.get(field.name, pa.nulls(n, field.type)))
    return pa.Table.from_arrays(arrays, schema=schema)
