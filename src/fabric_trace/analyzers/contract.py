"""The analyzer contract: what one registry entry declares (docs/analyzers.md).

An :class:`Analyzer` is the only wiring point of an analysis. Everything else
loops over :func:`fabric_trace.analyzers.registry`:

* config loading accepts its ``sections`` (:mod:`fabric_trace.config`);
* the freshness fingerprint covers its name, ``version`` and sections
  (:mod:`fabric_trace.analyzers.engine`);
* refresh creates its tables from ``sql/tables.sql``, runs ``derive`` per
  partition of whole traces (or sessions) and creates ``sql/views.sql``
  (:mod:`fabric_trace.analyzers.engine`);
* ``fabric report NAME`` and ``fabric demo`` call its :class:`ReportSpec`;
* ``fabric gate`` offers its :class:`GateMetric` list.

``derive`` is a kernel: it takes one :class:`Partition` (Arrow tables of whole
traces) and returns a :class:`Derived` (Arrow tables), and needs no open store,
so another engine can run it over partitions of a Parquet lake.
:func:`sql_kernel` runs an analyzer's DuckDB SQL over a partition in a private
in-memory database.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa

from fabric_trace.model import FINDING_COLUMNS, Report, ReportFilter, Severity

#: How an analyzer's partitions are cut: whole traces, or whole sessions (every trace that
#: shares a session id with another trace of the partition).
Scope = Literal["trace", "session"]


@dataclass
class Partition:
    """The input of one ``derive``: whole traces (or whole sessions), as Arrow tables."""

    spans: pa.Table
    """``span_store`` rows (every column, in the store's column order) of whole traces."""
    resources: pa.Table
    """``resources`` rows the spans reference."""
    inputs: dict[str, pa.Table] = field(default_factory=dict)
    """Tables of earlier analyzers (``Analyzer.reads``) for the same traces."""
    stats: dict[str, pa.Table] = field(default_factory=dict)
    """Store-wide statistics (``Analyzer.stats``), whole."""
    shared: KernelDatabase | None = None
    """A private database the kernels of one batch share (:func:`sql_kernel`), or ``None``: each
    kernel builds its own. Not data: an engine that runs kernels apart leaves it ``None``."""


class KernelDatabase:
    """One private in-memory DuckDB shared by the :func:`sql_kernel` calls of one batch.

    The batch's spans and resources are loaded once (copying them into a database costs about
    as much as a kernel's own SQL), and a table an earlier analyzer wrote there is read as it
    is by a later one that reads it (``Analyzer.reads``) instead of being copied back in. The
    engine creates one per batch, hands it on every ``Partition`` of the batch, and closes it.
    """

    def __init__(self) -> None:
        self.con: duckdb.DuckDBPyConnection | None = None
        self.written: set[str] = set()
        """Tables the kernels have written in this database (their rows are the batch's)."""

    def connect(self, part: Partition) -> duckdb.DuckDBPyConnection:
        """The database, with ``part``'s spans and resources loaded the first time."""
        if self.con is None:
            self.con = _kernel_database(part)
        return self.con

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None
        self.written.clear()


@dataclass
class Derived:
    """The output of one ``derive``: the analyzer's rows for the partition's traces."""

    tables: dict[str, pa.Table]
    """Per derived table (``Analyzer.tables`` minus the stats tables): its rows (extra columns are ignored)."""
    findings: pa.Table
    """Rows with :data:`~fabric_trace.model.FINDING_COLUMNS`."""


@dataclass(frozen=True)
class StoreStats:
    """A store-wide statistic an analyzer's partitions depend on (docs/analyzers.md).

    ``compute(con, config)`` reads the store (inside the refresh transaction) and
    returns the whole table, persisted as ``table`` and handed to every partition
    under that name. After a refresh the rows whose value changed (by ``key``)
    are in the temp table ``_stats_changed``; ``affected_sql`` lists the traces
    whose derived rows depend on them, which are derived again.
    """

    table: str
    compute: Callable[[duckdb.DuckDBPyConnection, Any], pa.Table]
    key: tuple[str, ...]
    affected_sql: str | None
    """``SELECT trace_id ...`` over the store and ``_stats_changed``; ``None``: no trace depends on it."""
    after_derive: bool = False
    """Computed from the analyzer's own derived rows: recomputed after the partitions are derived."""
    rederive: Callable[[Partition, Any], Derived] | None = None
    """A kernel that computes again only the rows that depend on this statistic, for the traces of
    ``affected_sql`` (``None``: the analyzer's whole ``derive`` runs again). Its ``Partition`` has
    the ``span_columns`` of the spans, and as ``inputs`` the tables of ``reads`` and the analyzer's
    own derived rows of the same traces; it returns only the tables it replaces (its findings are
    ignored: they must not depend on the statistic)."""
    span_columns: tuple[str, ...] | None = None
    """The ``span_store`` columns ``rederive`` reads (``None``: all)."""


@dataclass(frozen=True)
class ReportSpec:
    """An analyzer's report: ``build(con, filter)`` and the CLI command of ``fabric report NAME``."""

    build: Callable[[duckdb.DuckDBPyConnection, ReportFilter], Report]
    """Build the report with default options over the (fresh) store."""
    help: str
    """One line for ``fabric report --help``."""
    command: str | None = None
    """``module:function`` of a typer command with extra options; ``None`` = the generic command
    (``--db --format --workflow --since --until --where --config --lock-timeout``)."""


@dataclass(frozen=True)
class GateMetric:
    """A metric an analyzer offers to ``fabric gate`` (docs/ci.md, "Metrics").

    ``sql`` is one query over the store's views returning ``trace_id`` and
    ``value`` (kind ``sample`` / ``proportion``), or ``trace_id``, ``num`` and
    ``den`` (kind ``ratio``); traces it does not return count 0.
    """

    name: str
    kind: Literal["sample", "proportion", "ratio"]
    unit: str
    default_stat: str
    relative: float
    absolute: float
    sql: str
    description: str
    denominator: str = "trace time"
    """What ``den`` counts (said when a side has none)."""
    default: str | None = None
    """Why a team wants it checked on day one: when set, ``fabric gate`` without configuration runs a
    regression check of it per workflow (``default_stat``, ``relative`` / ``absolute``) and docs/ci.md
    "Default checks" must list it; ``None``: available to ``[gate]`` checks only."""


@dataclass(frozen=True)
class Analyzer:
    """A registry entry (see the module docstring and docs/analyzers.md)."""

    name: str
    """Analyzer name: the ``analyzer`` column of its findings and ``fabric report NAME``."""
    summary: str
    sections: tuple[str, ...]
    """Config sections it reads (``fabric.toml``); accepted by config loading, part of the fingerprint."""
    parse_config: Callable[[Any], Any]
    """Validates its sections of a :class:`~fabric_trace.config.Config` and returns its settings."""
    derive: Callable[[Partition, Any], Derived]
    """The kernel: its derived rows and findings for one partition (no store needed)."""
    tables: tuple[str, ...]
    """The derived tables it owns (``sql/tables.sql``); every row has a ``trace_id``, except stats tables."""
    views: tuple[str, ...]
    """The user-facing views over them (``sql/views.sql``), documented in docs/schema.md."""
    report: ReportSpec | None = None
    metrics: tuple[GateMetric, ...] = ()
    scope: Scope = "trace"
    reads: tuple[str, ...] = ()
    """Tables of earlier analyzers its ``derive`` reads (given as ``Partition.inputs``)."""
    stats: tuple[StoreStats, ...] = ()
    severities: dict[str, Severity] = field(default_factory=dict)
    """Finding kind -> severity (kinds whose severity depends on the data map to their lowest)."""
    sql_from: str | Path | None = None
    """Where ``sql/tables.sql`` and ``sql/views.sql`` are: a package name, or a directory
    (``None``: no SQL files)."""
    version: str = "1"
    """Bump when the derived rows change for the same data and config (forces a re-derive)."""

    def sql(self, name: str) -> str:
        """The text of ``sql/<name>`` of this analyzer ('' when absent)."""
        if self.sql_from is None:
            return ""
        if isinstance(self.sql_from, Path):
            path = self.sql_from / "sql" / name
            return path.read_text(encoding="utf-8") if path.is_file() else ""
        res = resources.files(self.sql_from).joinpath("sql", name)
        return res.read_text(encoding="utf-8") if res.is_file() else ""

    def row_tables(self) -> list[str]:
        """Its derived tables of per-trace rows (``tables`` without the statistics' tables)."""
        stats = {s.table for s in self.stats}
        return [t for t in self.tables if t not in stats]

    def step_reads(self, step: StoreStats | None) -> tuple[str, ...]:
        """The tables a kernel of this analyzer is given as inputs: ``reads``, and for a statistic's
        ``rederive`` step also its own derived rows of the same traces."""
        return self.reads if step is None else (*self.reads, *self.row_tables())


def sql_kernel(analyzer: Analyzer, part: Partition, config: Any,
               body: Callable[[duckdb.DuckDBPyConnection, Any], None],
               tables: tuple[str, ...] | None = None) -> Derived:
    """Run ``body(con, config)`` (an analyzer's SQL) over ``part`` in a private in-memory DuckDB.

    The connection holds ``span_store`` and ``resources`` (the store's DDL; when ``part.spans``
    has only some of the store's columns, a ``span_store`` of those columns), the partition's
    inputs and stats under their names, the analyzer's tables (``sql/tables.sql``) and an empty
    ``finding_store``; afterwards the analyzer's tables (or only ``tables``) and its findings
    are returned as Arrow. The store is never opened. With ``part.shared`` the database is the
    batch's (:class:`KernelDatabase`): the spans are loaded once, and inputs an earlier kernel
    wrote there are not copied again.
    """
    shared = part.shared
    con = shared.connect(part) if shared is not None else _kernel_database(part)
    try:
        for name, table in (*part.inputs.items(), *part.stats.items()):
            if shared is not None and name in shared.written and name in part.inputs:
                continue  # an earlier kernel of this batch wrote exactly these rows here
            con.register("_kernel_in", table)
            con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _kernel_in")
            con.unregister("_kernel_in")
        tables_sql = analyzer.sql("tables.sql")
        if tables_sql:
            con.execute(tables_sql)
        body(con, config)
        stats = {s.table for s in analyzer.stats}
        names = [t for t in (analyzer.tables if tables is None else tables) if t not in stats]
        out = {t: con.sql(f"SELECT * FROM {t}").to_arrow_table() for t in names}
        findings = con.sql(f"SELECT {', '.join(FINDING_COLUMNS)} FROM finding_store").to_arrow_table()
        if shared is not None:
            shared.written.update(names)
            con.execute("DELETE FROM finding_store")
        return Derived(out, findings)
    finally:
        if shared is None:
            con.close()


def run_kernels(analyzers: list[Analyzer], step: StoreStats | None, spans: pa.Table, resources: pa.Table,
                stored: dict[str, pa.Table], stats: dict[str, pa.Table], config: Any
                ) -> list[tuple[Analyzer, Derived]]:
    """Every kernel of one batch, in order, sharing one :class:`KernelDatabase` (no store: what
    every engine runs on an executor or a worker thread).

    Each analyzer's ``derive`` (or, with ``step``, that statistic's ``rederive``) gets as inputs the
    tables of
    :meth:`Analyzer.step_reads`: an earlier analyzer's rows of this batch, else ``stored``; and
    its statistics from ``stats`` (by table)."""
    produced: dict[str, pa.Table] = {}
    outs: list[tuple[Analyzer, Derived]] = []
    shared = KernelDatabase()
    try:
        for a in analyzers:
            inputs = {name: produced[name] if name in produced else stored[name] for name in a.step_reads(step)}
            part = Partition(spans, resources, inputs, {s.table: stats[s.table] for s in a.stats}, shared=shared)
            if step is None:
                out = a.derive(part, config)
            else:
                assert step.rederive is not None, "a step is a statistic's rederive"
                out = step.rederive(part, config)
            outs.append((a, out))
            produced.update(out.tables)
    finally:
        shared.close()
    return outs


def _kernel_database(part: Partition) -> duckdb.DuckDBPyConnection:
    """A private in-memory database with ``part``'s spans and resources and an empty ``finding_store``."""
    con = duckdb.connect(config={"memory_limit": KERNEL_MEMORY_LIMIT})
    try:
        con.execute(_store_schema())
        con.execute(FINDINGS_DDL)
        store_columns = [r[0] for r in con.execute("DESCRIBE span_store").fetchall()]
        for name, table in (("span_store", part.spans), ("resources", part.resources)):
            con.register("_kernel_in", table)
            if name == "span_store" and set(table.column_names) != set(store_columns):
                con.execute("DROP TABLE span_store")  # some columns only (StoreStats.span_columns)
                con.execute("CREATE TABLE span_store AS SELECT * FROM _kernel_in")
            else:
                con.execute(f"INSERT INTO {name} SELECT * FROM _kernel_in")
            con.unregister("_kernel_in")
    except BaseException:
        con.close()
        raise
    return con


@functools.cache
def _store_schema() -> str:
    """The store's DDL (``store/schema.sql``), read once per process instead of once per batch."""
    return resources.files("fabric_trace.store").joinpath("schema.sql").read_text(encoding="utf-8")


#: DuckDB memory limit of a kernel's private database (it spills beyond it).
KERNEL_MEMORY_LIMIT = "512MB"

#: The table every analyzer's findings go to (view ``findings``).
FINDINGS_DDL = """
CREATE TABLE IF NOT EXISTS finding_store (
    analyzer  VARCHAR NOT NULL,
    kind      VARCHAR NOT NULL,
    severity  VARCHAR NOT NULL,
    trace_id  VARCHAR,
    span_id   VARCHAR,
    message   VARCHAR NOT NULL,
    details   JSON
);
"""


def write_findings(con: duckdb.DuckDBPyConnection, analyzer: str, select_sql: str,
                   params: list[Any] | None = None) -> None:
    """Append findings of ``analyzer``: ``select_sql`` returns, in this order, the columns
    ``kind, severity, trace_id, span_id, message, details`` (:data:`~fabric_trace.model.FINDING_COLUMNS`
    after ``analyzer``). The one way analyzers write to ``finding_store``."""
    con.execute(
        f"INSERT INTO finding_store ({', '.join(FINDING_COLUMNS)}) SELECT ?, * FROM (\n{select_sql}\n)",
        [analyzer, *(params or [])],
    )


__all__ = ["Analyzer", "Derived", "FINDINGS_DDL", "GateMetric", "KernelDatabase", "Partition", "ReportSpec", "Scope", "StoreStats",
           "run_kernels", "sql_kernel", "write_findings"]
