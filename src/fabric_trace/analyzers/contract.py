"""The analyzer contract: what one registry entry declares (docs/analyzers.md).

An :class:`Analyzer` is the only wiring point of an analysis. Everything else
loops over :func:`fabric_trace.analyzers.registry`:

* config loading accepts its ``sections`` (:mod:`fabric_trace.config`);
* the freshness fingerprint covers its name, ``version`` and sections
  (:mod:`fabric_trace.analyzers.engine`);
* refresh creates its tables from ``sql/tables.sql``, runs ``derive`` per
  partition and creates ``sql/views.sql`` (:mod:`fabric_trace.analyzers.engine`);
* ``fabric report NAME`` and ``fabric demo`` call its :class:`ReportSpec`;
* ``fabric gate`` offers its :class:`GateMetric` list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import duckdb

from fabric_trace.model import FINDING_COLUMNS, Report, ReportFilter, Severity

#: How an analyzer's partitions are cut: whole traces, or whole sessions (every trace that
#: shares a session id with another trace of the partition).
Scope = Literal["trace", "session"]


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
    derive: Callable[[duckdb.DuckDBPyConnection, Any], None]
    """Computes its derived tables (``tables``) and findings inside the refresh transaction."""
    tables: tuple[str, ...]
    """The derived tables it owns: dropped before a full derive, created by ``sql/tables.sql``."""
    views: tuple[str, ...]
    """The user-facing views over them (``sql/views.sql``), documented in docs/schema.md."""
    report: ReportSpec | None = None
    metrics: tuple[GateMetric, ...] = ()
    scope: Scope = "trace"
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


def write_findings(con: duckdb.DuckDBPyConnection, analyzer: str, select_sql: str,
                   params: list[Any] | None = None) -> None:
    """Append findings of ``analyzer``: ``select_sql`` returns, in this order, the columns
    ``kind, severity, trace_id, span_id, message, details`` (:data:`~fabric_trace.model.FINDING_COLUMNS`
    after ``analyzer``). The one way analyzers write to ``finding_store``."""
    con.execute(
        f"INSERT INTO finding_store ({', '.join(FINDING_COLUMNS)}) SELECT ?, * FROM (\n{select_sql}\n)",
        [analyzer, *(params or [])],
    )


__all__ = ["Analyzer", "GateMetric", "ReportSpec", "Scope", "write_findings"]
