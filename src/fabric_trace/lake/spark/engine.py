"""``fabric analyze --engine spark --lake DIR``: every registered analyzer on Spark (docs/lake.md).

The same steps as the DuckDB engine's full analysis (docs/analyzers.md, "Refresh"):

1. **Statistics of the data** (``StoreStats`` with ``after_derive = False``,
   e.g. the trust zones) are computed by the analyzers' own ``compute`` with
   DuckDB on the driver, over the lake's Parquet (they read a few columns).
2. **Groups.** Spans are grouped by trace, or, when an analyzer is
   session-scoped, by session component (traces that share a session id,
   directly or through other traces), computed in Spark by label propagation.
3. **Kernels.** The spans are repartitioned by group and sorted within each
   partition; ``mapInArrow`` cuts each partition into batches of whole groups
   (about :data:`BATCH_SPANS` spans, like the DuckDB engine's batches) and
   runs every analyzer's ``derive`` in registry order on each (:mod:`.kernel`).
   The kernels of a batch share one private database, as in the DuckDB engine.
   This is the one derive pass; statistics of derived rows are empty in it.
4. **Statistics of derived rows** (``after_derive``, e.g. the what-if
   medians), as the DuckDB engine's first analysis does (the rederive
   contract, ``StoreStats.rederive``): each is computed by its ``compute``
   from the derived rows (DuckDB on the driver over the derived Parquet), its
   ``affected_sql`` names the traces that depend on it, and one Spark job runs
   the statistic's ``rederive`` kernel (:class:`.kernel.StepKernel`) over only
   those traces' groups, with the span columns it names and the derived rows it
   reads; only the tables it returns are rewritten (their rows of those traces
   replaced). A statistic without ``rederive`` runs its analyzer's whole
   ``derive`` there instead (its tables and findings replaced).
5. **Output.** Every derived table, ``findings``, and each analyzer's views
   (computed by DuckDB on the driver from the derived Parquet, so their types
   are the DuckDB views' own) are written under a staging directory, which
   replaces ``DIR/derived`` by renaming once everything is written. A failure
   leaves the previous derived tables as they were.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from fabric_trace.analyzers import registry
from fabric_trace.analyzers.contract import FINDINGS_DDL, Analyzer, StoreStats
from fabric_trace.analyzers.engine import FINDINGS_VIEW, config_fingerprint
from fabric_trace.errors import EngineFailed, FabricError, LakeError, OutputError
from fabric_trace.lake.layout import DERIVED_DIR, DERIVED_STATE, Lake, data_files, lake_schema, open_lake, write_state
from fabric_trace.lake.read import attach_spans, derived_catalog
from fabric_trace.lake.spark.kernel import (RETURNED, SPANS, TABLE_COLUMN, GroupKernel, StepKernel, batched, wide_name,
                                            wide_schema)
from fabric_trace.lake.spark.session import spark_session

_log = logging.getLogger(__name__)

#: Name of the group column added to the spans.
GROUP = "_fabric_group"
#: Spans per kernel call on an executor (whole groups; a bigger group is a call of its own), as the
#: DuckDB engine's batches.
BATCH_SPANS = 100_000


@dataclass(frozen=True)
class SparkResult:
    """What one Spark analysis wrote."""

    traces: int
    findings: int
    tables: dict[str, int]
    seconds: float
    rederived: dict[str, int] = field(default_factory=dict)
    """Per table rewritten after a statistic of derived rows: the traces whose statistic changed
    (their groups' rows were derived again)."""


def analyze_lake(root: str | os.PathLike[str], config: Any, *, master: str | None = None,
                 conf: dict[str, str] | None = None, spark: Any = None,
                 batch_spans: int = BATCH_SPANS) -> SparkResult:
    """Run every registered analyzer over the lake at ``root`` on Spark; write ``DIR/derived``."""
    started = time.monotonic()
    lake = open_lake(root)
    spark = spark or spark_session(master, conf)
    staging = lake.root / "_staging" / f"derived-{uuid.uuid4().hex}"
    try:
        run = _Run(spark, lake, config, staging, batch_spans)
        counts = run.run()
        _swap(lake, staging)
    except FabricError:
        raise
    except Exception as exc:  # Spark (py4j) errors have no common base class
        raise _engine_error(exc) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        _rmdir(lake.root / "_staging")
    return SparkResult(counts.get("traces", 0), counts.get("findings", 0), counts, time.monotonic() - started,
                       run.rederived)


def _engine_error(exc: BaseException) -> EngineFailed:
    text = str(exc)
    if "OutOfMemoryError" in text or "Java heap space" in text or "MemoryError" in text:
        return EngineFailed("Spark ran out of memory (a trace or session group is analysed in one task); "
                            "no derived table was written",
                            hint="give executors more memory (--conf spark.executor.memory=8g, "
                                 "spark.driver.memory in local mode) or raise spark.sql.shuffle.partitions")
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    detail = next((ln for ln in lines if "Error" in ln or "Exception" in ln), lines[0] if lines else type(exc).__name__)
    return EngineFailed(f"the Spark analysis failed: {detail[:400]}; no derived table was written")


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def _swap(lake: Lake, staging: Path) -> None:
    """Replace ``DIR/derived`` by ``staging`` (rename; the old one is removed afterwards)."""
    target = lake.root / DERIVED_DIR
    old = lake.root / "_staging" / f"old-{uuid.uuid4().hex}"
    try:
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    shutil.rmtree(old, ignore_errors=True)


def _duckdb_arrow_schemas() -> dict[str, pa.Schema]:
    """Arrow schemas of every analyzer table and of ``findings`` (as DuckDB hands them over)."""
    con = duckdb.connect()
    try:
        con.execute(FINDINGS_DDL)
        for a in registry().values():
            if a.sql("tables.sql"):
                con.execute(a.sql("tables.sql"))
        out = {t: con.sql(f"SELECT * FROM {t} LIMIT 0").to_arrow_table().schema
               for a in registry().values() for t in a.tables}
        out["findings"] = con.sql("SELECT * FROM finding_store LIMIT 0").to_arrow_table().schema
        return out
    finally:
        con.close()


class _Run:
    """One Spark analysis of a lake into ``staging``."""

    def __init__(self, spark: Any, lake: Lake, config: Any, staging: Path, batch_spans: int) -> None:
        self.spark, self.lake, self.config, self.staging = spark, lake, config, staging
        self.batch_spans = max(1, batch_spans)
        self.t0 = time.monotonic()
        self.analyzers = list(registry().values())
        self.schemas = _duckdb_arrow_schemas()
        self.broadcasts: list[Any] = []
        self.rederived: dict[str, int] = {}
        self.con = duckdb.connect()
        attach_spans(self.con, lake)

    def run(self) -> dict[str, int]:
        try:
            return self._run()
        finally:
            self.con.close()
            for shared in self.broadcasts:
                shared.unpersist()

    def _run(self) -> dict[str, int]:
        from pyspark import StorageLevel

        self.staging.mkdir(parents=True)
        stats: dict[str, pa.Table] = {}
        for a in self.analyzers:  # 1. statistics of the data
            for st in a.stats:
                if not st.after_derive:
                    stats[st.table] = self._compute(st, stats)
                else:  # empty until derived rows exist (as in the DuckDB engine's first analysis)
                    stats[st.table] = self.schemas[st.table].empty_table()
        _log.info("statistics of the data done (%.1f s)", time.monotonic() - self.t0)
        spans = self._grouped_spans()
        _log.info("groups done (%.1f s)", time.monotonic() - self.t0)
        spans.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            self._derive(spans, self.analyzers, stats, self.staging)  # 3. one derive pass
            _log.info("kernels done (%.1f s)", time.monotonic() - self.t0)
            self._after_derive(spans, stats)  # 4. statistics of derived rows, and their rederive steps
        finally:
            spans.unpersist()
        for table, data in stats.items():  # the statistics are derived tables too
            self._write_arrow(table, data)
        return self._views()

    # -- statistics of derived rows (the rederive contract) ---------------------------------------

    def _after_derive(self, spans: Any, stats: dict[str, pa.Table]) -> None:
        """Compute every statistic of derived rows from the derived rows (each was empty during the
        derive pass), then, per analyzer in registry order as the DuckDB engine does, derive again
        the traces whose rows depend on a changed value: the statistic's ``rederive`` step (only the
        tables it returns are rewritten), or the analyzer's whole ``derive`` when it has none."""
        if not any(st.after_derive for a in self.analyzers for st in a.stats):
            return
        con = self.con
        for a in self.analyzers:
            for table in a.row_tables():
                self._view(table, self.staging / table)
        self._view("finding_store", self.staging / "findings")
        whole: dict[int, set[str]] = {}
        steps: dict[tuple[int, int], set[str]] = {}
        for k, a in enumerate(self.analyzers):
            for j, st in enumerate(a.stats):
                if not st.after_derive:
                    continue
                new = self._compute(st, stats)
                # the derive pass used an empty table: every key of the new one changed
                changed = new.select(list(st.key)).group_by(list(st.key)).aggregate([])
                stats[st.table] = new
                if not changed.num_rows or st.affected_sql is None:
                    continue
                con.register("_stats_changed", changed)
                try:
                    traces = con.sql(f"SELECT DISTINCT trace_id FROM ({st.affected_sql})").fetchnumpy()["trace_id"]
                finally:
                    con.unregister("_stats_changed")
                target = whole.setdefault(k, set()) if st.rederive is None else steps.setdefault((k, j), set())
                target.update(str(t) for t in traces)
        _log.info("statistics of derived rows done (%.1f s)", time.monotonic() - self.t0)
        for k, a in enumerate(self.analyzers):
            if whole.get(k):
                self._step(spans, a, None, whole[k], stats)
            for j, st in enumerate(a.stats):
                traces = steps.get((k, j), set()) - whole.get(k, set())
                if traces:
                    self._step(spans, a, st, traces, stats)

    def _step(self, spans: Any, a: Analyzer, st: StoreStats | None, traces: set[str],
              stats: dict[str, pa.Table]) -> None:
        """Run ``st.rederive`` (``None``: ``a.derive``) as a Spark job over the groups of ``traces``,
        and rewrite, in the staging directory, only the tables it returns (their rows of those
        groups' traces replaced; with ``a.derive`` also ``a``'s findings of them)."""
        from pyspark.sql import functions as F
        from pyspark.sql.pandas.types import from_arrow_schema

        spark = self.spark
        wanted = spark.createDataFrame(pa.table({"trace_id": pa.array(sorted(traces), pa.string())}))
        groups = spans.join(F.broadcast(wanted), "trace_id", "left_semi").select(GROUP).distinct()
        step_spans = spans.join(F.broadcast(groups), GROUP, "left_semi")
        members = step_spans.select("trace_id", GROUP).distinct().persist()
        try:
            columns = list(st.span_columns) if st is not None and st.span_columns is not None \
                else lake_schema("spans").names
            span_schema = pa.schema([lake_schema("spans").field(c) for c in columns])
            reads = a.step_reads(st)
            inputs = {SPANS: span_schema, **{name: self.schemas[name] for name in reads}}
            sources = {SPANS: step_spans.select(*columns, GROUP)}
            for name in reads:
                sources[name] = spark.read.parquet(str(self.staging / name)).join(F.broadcast(members), "trace_id")
            wide_in = _union_wide(sources, inputs).repartition(GROUP).sortWithinPartitions(GROUP)
            outputs = {t: self.schemas[t] for t in a.row_tables()}
            if st is None:
                outputs["findings"] = self.schemas["findings"]
            wide = self._map(wide_in, lambda shared: StepKernel(a, st, self.config, inputs, outputs, shared),
                             stats, outputs)
            try:
                if st is None:
                    replaced = list(outputs)
                else:
                    marks = wide.where(F.col(TABLE_COLUMN).startswith(RETURNED)).select(TABLE_COLUMN).distinct()
                    returned = {r[0][len(RETURNED):] for r in marks.collect()}
                    replaced = [t for t in outputs if t in returned]
                _log.info("step kernels done (%.1f s)", time.monotonic() - self.t0)
                # the new rows first, all of them, before any input of this job is rewritten
                nxt = self.staging / "_next"
                for table in replaced:
                    cols = [F.col(wide_name(table, f.name)).alias(f.name) for f in outputs[table]]
                    wide.where(F.col(TABLE_COLUMN) == table).select(*cols) \
                        .write.mode("errorifexists").parquet(str(nxt / "new" / table))
            finally:
                wide.unpersist()
            keys = F.broadcast(members.select("trace_id"))
            for table in replaced:
                _log.info("rewriting %s for the groups of %d traces (%.1f s)", table, len(traces),
                          time.monotonic() - self.t0)
                schema = from_arrow_schema(outputs[table])
                new = spark.read.schema(schema).parquet(str(nxt / "new" / table))
                old = spark.read.schema(schema).parquet(str(self.staging / table))
                if table == "findings":  # only this analyzer's findings of the groups' traces
                    keep = old.where(F.col("analyzer") != a.name).unionByName(
                        old.where(F.col("analyzer") == a.name).join(keys, "trace_id", "left_anti"))
                else:
                    keep = old.join(keys, "trace_id", "left_anti")
                keep.select(*schema.names).unionByName(new).write.mode("errorifexists").parquet(str(nxt / table))
                shutil.rmtree(self.staging / table)
                os.replace(nxt / table, self.staging / table)
                self.rederived[table] = self.rederived.get(table, 0) + len(traces)
        finally:
            members.unpersist()
            shutil.rmtree(self.staging / "_next", ignore_errors=True)

    # -- statistics -----------------------------------------------------------------------------

    def _compute(self, st: Any, stats: dict[str, pa.Table]) -> pa.Table:
        """Compute a statistic with the analyzer's own ``compute`` on DuckDB over the lake."""
        for name, table in stats.items():
            self.con.register("_stat_in", table)
            self.con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _stat_in")
            self.con.unregister("_stat_in")
        out = st.compute(self.con, self.config)
        schema = self.schemas[st.table]
        return out.select(schema.names).cast(schema)

    def _view(self, name: str, directory: Path) -> None:
        files = data_files(directory)
        if files:
            try:
                self.con.execute(f"DROP TABLE IF EXISTS {name}")
            except duckdb.Error:  # a view of that name: replaced below
                pass
            paths = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
            self.con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet([{paths}])")

    # -- groups and kernels ---------------------------------------------------------------------

    def _grouped_spans(self) -> Any:
        from pyspark.sql import functions as F
        from pyspark.sql.pandas.types import from_arrow_schema

        schema = from_arrow_schema(lake_schema("spans"))
        spans = (self.spark.read.schema(schema).parquet(*[str(f) for f in self.lake.files["spans"]])
                 .select(*schema.names))
        if any(a.scope == "session" for a in self.analyzers):
            labels = _session_components(spans)
            spans = (spans.join(labels, "trace_id", "left")
                     .withColumn(GROUP, F.coalesce(F.col("label"), F.col("trace_id"))).drop("label"))
        else:
            spans = spans.withColumn(GROUP, F.col("trace_id"))
        # every group whole in one partition (spark.sql.shuffle.partitions of them), sorted by group
        return spans.repartition(GROUP).sortWithinPartitions(GROUP)

    def _derive(self, spans: Any, analyzers: list[Analyzer], stats: dict[str, pa.Table], out: Path) -> None:
        """Run ``analyzers`` over every group; write their tables and findings."""
        from pyspark.sql import functions as F

        stat_tables = {s.table for a in analyzers for s in a.stats}
        outputs = {t: self.schemas[t] for a in analyzers for t in a.tables if t not in stat_tables}
        outputs["findings"] = self.schemas["findings"]
        wide = self._map(spans, lambda shared: GroupKernel(analyzers, self.config, outputs, shared), stats, outputs)
        try:
            for table, tschema in outputs.items():
                _log.info("writing %s (%.1f s)", table, time.monotonic() - self.t0)
                cols = [F.col(wide_name(table, f.name)).alias(f.name) for f in tschema]
                (wide.where(F.col(TABLE_COLUMN) == table).select(*cols)
                 .write.mode("errorifexists").parquet(str(out / table)))
        finally:
            wide.unpersist()

    def _map(self, rows: Any, make_kernel: Callable[[Any], Any], stats: dict[str, pa.Table],
             outputs: dict[str, pa.Schema]) -> Any:
        """``rows`` (whole groups per partition, sorted by group) through the kernel ``make_kernel``
        builds around the broadcast resources and statistics, in batches of whole groups: the wide
        rows, persisted (the caller unpersists them)."""
        from pyspark import StorageLevel
        from pyspark.sql.pandas.types import from_arrow_schema

        files = [str(f) for f in self.lake.files["resources"]]
        resources = pq.read_table(files if len(files) > 1 else files[0])
        res_schema = lake_schema("resources")
        resources = resources.select(res_schema.names).cast(res_schema)
        shared = self.spark.sparkContext.broadcast({"resources": resources, "stats": dict(stats)})
        self.broadcasts.append(shared)
        kernel = make_kernel(shared)
        batch_spans = self.batch_spans

        def run_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            return batched(kernel, batches, GROUP, batch_spans)

        wide = rows.mapInArrow(run_partition, from_arrow_schema(wide_schema(outputs)))
        return wide.persist(StorageLevel.MEMORY_AND_DISK)

    # -- output ---------------------------------------------------------------------------------

    def _write_arrow(self, table: str, data: pa.Table) -> None:
        directory = self.staging / table
        directory.mkdir(parents=True, exist_ok=True)
        pq.write_table(data, directory / "part-00000.parquet")

    def _views(self) -> dict[str, int]:
        """Write each analyzer's views (DuckDB over the derived Parquet, the analyzers' own view SQL);
        return row counts of every derived table and view."""
        con = self.con
        catalog = derived_catalog()
        for a in self.analyzers:
            for table in a.tables:
                files = data_files(self.staging / table)
                if not files:
                    raise LakeError(f"Spark wrote no Parquet file for derived table {table!r}")
                self._view(table, self.staging / table)
        self._view("finding_store", self.staging / "findings")
        con.execute(FINDINGS_VIEW)  # analyzer views may read ``findings`` (as in the DuckDB engine)
        counts: dict[str, int] = {}
        for a in self.analyzers:
            views = a.sql("views.sql")
            if views:
                con.execute(views)
            for view in a.views:
                directory = self.staging / view
                directory.mkdir()
                cols = ", ".join(c for c, _ in catalog[view])
                target = str(directory / "part-00000.parquet").replace("'", "''")
                con.execute(f"COPY (SELECT {cols} FROM {view}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
        for name in catalog:
            self._view(name, self.staging / name)
            counts[name] = con.execute(f"SELECT count(*) FROM read_parquet('{self.staging / name}/*.parquet')"
                                       ).fetchall()[0][0]
        if "traces" not in counts:
            counts["traces"] = self.con.execute("SELECT count(DISTINCT trace_id) FROM span_store").fetchall()[0][0]
        write_state(self.staging / DERIVED_STATE, {
            "engine": "spark", "lake": self.lake.fingerprint(), "config": config_fingerprint(self.config),
            "tables": sorted(catalog), "rows": counts,
        })
        return counts


def _union_wide(sources: dict[str, Any], schemas: dict[str, pa.Schema]) -> Any:
    """One DataFrame of the ``sources`` (each with the group column), as wide rows: ``_table`` names
    the source, ``<source>__<column>`` holds its columns (NULL in the other sources' rows)."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    types = {name: from_arrow_schema(schema) for name, schema in schemas.items()}
    out = None
    for name, df in sources.items():
        cols = [F.lit(name).alias(TABLE_COLUMN), F.col(GROUP)]
        for other, schema in types.items():
            for f in schema.fields:
                value = F.col(f.name) if other == name else F.lit(None)
                cols.append(value.cast(f.dataType).alias(wide_name(other, f.name)))
        part = df.select(*cols)
        out = part if out is None else out.unionByName(part)
    return out


def _session_components(spans: Any) -> Any:
    """``trace_id, label`` for every trace with a session id: the smallest trace id of its session
    component (traces sharing a session id, directly or through other traces), by label propagation
    (one Spark job per round; a round moves labels one session hop)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    pairs = (spans.where(F.col("session_id").isNotNull()).select("trace_id", "session_id").distinct()
             .persist(StorageLevel.MEMORY_AND_DISK))
    labels = pairs.select("trace_id", F.col("trace_id").alias("label")).distinct()
    previous = []
    while True:
        per_session = pairs.join(labels, "trace_id").groupBy("session_id").agg(F.min("label").alias("s_label"))
        new = (pairs.join(per_session, "session_id").groupBy("trace_id").agg(F.min("s_label").alias("label"))
               .persist(StorageLevel.MEMORY_AND_DISK))
        changed = (new.join(labels.withColumnRenamed("label", "old"), "trace_id")
                   .where(F.col("label") != F.col("old")).limit(1).count())  # also fills ``new``'s cache
        previous.append(labels)
        labels = new
        if not changed:
            for df in previous[1:]:
                df.unpersist()
            return labels
