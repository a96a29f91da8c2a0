"""The Spark engine's executor code without Spark (no JVM): the kernels of a batch share one private
database, as in the DuckDB engine, and give the DuckDB engine's rows."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from fabric_trace.analyzers import contract, registry
from fabric_trace.analyzers.engine import _components
from fabric_trace.config import load_config
from fabric_trace.lake.layout import lake_schema
from fabric_trace.lake.spark.engine import GROUP, _duckdb_arrow_schemas
from fabric_trace.lake.spark.kernel import RETURNED, SPANS, TABLE_COLUMN, GroupKernel, StepKernel, batched, wide_name
from fabric_trace.service import open_analyzed, run_ingest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "scenarios"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The bundled scenarios analysed by the DuckDB engine: its spans as lake rows with their group
    (session component), resources, statistics and derived rows."""
    db = str(tmp_path_factory.mktemp("kernel") / "k.duckdb")
    run_ingest(db, sorted(str(p) for p in FIXTURES.glob("*.jsonl")))
    with open_analyzed(db) as con:
        cols = ", ".join(lake_schema("spans").names)
        spans = con.sql(f"SELECT {cols} FROM span_store ORDER BY trace_id, span_id").to_arrow_table()
        pairs = con.sql("SELECT DISTINCT trace_id, session_id FROM span_store WHERE session_id IS NOT NULL"
                        ).fetchnumpy()
        traces = np.asarray(sorted(set(spans.column("trace_id").to_pylist())), dtype=object)
        label = dict(zip(traces.tolist(), _components(traces, np.asarray(pairs["trace_id"], dtype=object),
                                                      np.asarray(pairs["session_id"], dtype=object)).tolist()))
        spans = spans.append_column(GROUP, pa.array([f"{label[t]:08d}" for t in spans.column("trace_id").to_pylist()]))
        spans = spans.sort_by([(GROUP, "ascending")])
        resources = con.sql("SELECT * FROM resources").to_arrow_table().cast(lake_schema("resources"))
        analyzers = list(registry().values())
        stats = {st.table: con.sql(f"SELECT * FROM {st.table}").to_arrow_table() for a in analyzers for st in a.stats}
        tables = [t for a in analyzers for t in a.tables if t not in stats] + ["findings"]
        rows = {t: con.sql(f"SELECT * FROM {'finding_store' if t == 'findings' else t}").to_arrow_table()
                for t in tables}
    return {"spans": spans, "resources": resources, "stats": stats, "tables": tables, "rows": rows,
            "want": {t: _sorted(r) for t, r in rows.items()}, "analyzers": analyzers}


def _sorted(table: pa.Table) -> list[tuple[Any, ...]]:
    return sorted((tuple(str(v) for v in row.values()) for row in table.to_pylist()), key=repr)


def _split(wide: pa.Table, table: str, schema: pa.Schema) -> pa.Table:
    rows = wide.filter(pa.compute.equal(wide.column(TABLE_COLUMN), table))
    return pa.Table.from_arrays([rows.column(wide_name(table, f.name)) for f in schema], schema=schema)


def test_the_kernels_of_a_batch_share_one_database(store: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every batch of whole groups is one private database for all the analyzers (its spans loaded
    once), and the rows are the DuckDB engine's (given its final statistics)."""
    opened: list[int] = []
    real = contract._kernel_database

    def counting(part: contract.Partition) -> duckdb.DuckDBPyConnection:
        opened.append(part.spans.num_rows)
        return real(part)

    monkeypatch.setattr(contract, "_kernel_database", counting)
    schemas = _duckdb_arrow_schemas()
    outputs = {t: schemas[t] for t in store["tables"]}
    shared = SimpleNamespace(value={"resources": store["resources"], "stats": store["stats"]})
    kernel = GroupKernel(store["analyzers"], load_config(), outputs, shared)
    calls: list[int] = []

    def counted(group: pa.Table) -> pa.Table:
        calls.append(group.num_rows)
        return kernel(group)

    spans = store["spans"]
    wide = pa.Table.from_batches(list(batched(counted, iter(spans.to_batches(max_chunksize=100)), GROUP,
                                              spans.num_rows // 3)))
    assert len(calls) >= 3 and sum(calls) == spans.num_rows
    assert opened == calls  # one database per batch, not one per analyzer
    for table in store["tables"]:
        assert _sorted(_split(wide, table, outputs[table])) == store["want"][table], table


def _wide_input(store: dict[str, Any], sources: dict[str, pa.Table], schemas: dict[str, pa.Schema]) -> pa.Table:
    """A step's wide input (as the driver's union builds it): every source's rows with their group,
    ``_table`` naming the source, sorted by group."""
    spans = store["spans"]
    group = dict(zip(spans.column("trace_id").to_pylist(), spans.column(GROUP).to_pylist()))
    pieces = []
    for name, rows in sources.items():
        n = rows.num_rows
        cols = {TABLE_COLUMN: pa.array([name] * n, pa.string()),
                GROUP: pa.array([group[t] for t in rows.column("trace_id").to_pylist()], pa.string())}
        for other, schema in schemas.items():
            for f in schema:
                cols[wide_name(other, f.name)] = rows.column(f.name).cast(f.type) if other == name \
                    else pa.nulls(n, f.type)
        pieces.append(pa.table(cols))
    return pa.concat_tables(pieces).sort_by([(GROUP, "ascending")])


@pytest.mark.parametrize("rederive", [True, False], ids=["rederive", "derive"])
def test_the_step_kernel_gives_the_duckdb_engines_rows(store: dict[str, Any], rederive: bool) -> None:
    """The step after the what-if medians, on a wide input of spans and derived rows: ``rederive``
    returns locality_trace_store only (and a marker row saying so); the whole ``derive`` (a statistic
    without ``rederive``) returns every locality table and the findings. Both equal the DuckDB engine's."""
    from fabric_trace.analyzers.locality import ANALYZER, MEDIANS

    schemas = _duckdb_arrow_schemas()
    columns = list(MEDIANS.span_columns or ()) if rederive else lake_schema("spans").names
    inputs = {SPANS: pa.schema([lake_schema("spans").field(c) for c in columns])}
    reads = (*ANALYZER.reads, "locality_access_store", "locality_trace_store") if rederive else ANALYZER.reads
    inputs.update({name: schemas[name] for name in reads})
    sources = {SPANS: store["spans"].select(columns), **{name: store["rows"][name] for name in reads}}
    outputs = {t: schemas[t] for t in ("locality_access_store", "locality_trace_store")}
    if not rederive:
        outputs["findings"] = schemas["findings"]
    shared = SimpleNamespace(value={"resources": store["resources"], "stats": store["stats"]})
    kernel = StepKernel(ANALYZER, MEDIANS if rederive else None, load_config(), inputs, outputs, shared)
    wide = pa.Table.from_batches(list(batched(kernel, iter(_wide_input(store, sources, inputs).to_batches()),
                                              GROUP, 500)))
    marks = set(wide.filter(pa.compute.starts_with(wide.column(TABLE_COLUMN), RETURNED))
                .column(TABLE_COLUMN).to_pylist())
    returned = ["locality_trace_store"] if rederive else ["locality_access_store", "locality_trace_store"]
    assert marks == {RETURNED + t for t in returned}
    for table in returned:
        assert _sorted(_split(wide, table, outputs[table])) == store["want"][table], table
    if not rederive:
        findings = store["rows"]["findings"]
        mine = findings.filter(pa.compute.equal(findings.column("analyzer"), "locality"))
        assert _sorted(_split(wide, "findings", outputs["findings"])) == _sorted(mine)
