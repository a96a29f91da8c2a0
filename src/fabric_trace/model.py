"""The types that analyzers, the gate and the renderers share (one place, imported by all).

* :class:`Report` (with :class:`Table`, :class:`Column`): what every ``fabric``
  command renders. An analyzer (or a command) builds one report: ``tables`` are
  what the ``table``, ``csv`` and ``markdown`` formats show, ``data`` is the
  documented JSON document printed by ``--format json``. The renderers in
  :mod:`fabric_trace.render` turn a report into a string; they never read a
  database and never print.
* :class:`ReportFilter` (with :class:`SqlFilter`): the filters every report takes.
* :class:`Severity`: the one severity scale of findings (and of gate filters).
* :class:`Finding` and :data:`FINDING_COLUMNS`: one row of the ``findings`` view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

__all__ = ["Column", "ColumnKind", "FINDING_COLUMNS", "Finding", "Report", "ReportFilter", "Severity",
           "SqlFilter", "Table"]


class Severity(StrEnum):
    """Severity of a finding, least severe first (docs/schema.md, ``findings``)."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The values, least severe first."""
        return tuple(s.value for s in cls)

    def rank(self) -> int:
        """Position on the scale (``info`` = 0)."""
        return list(Severity).index(self)


#: Columns of ``finding_store`` / the ``findings`` view, in order.
FINDING_COLUMNS: tuple[str, ...] = ("analyzer", "kind", "severity", "trace_id", "span_id", "message", "details")


@dataclass(frozen=True)
class Finding:
    """One row of the ``findings`` view (``details`` is a JSON text)."""

    analyzer: str
    kind: str
    severity: Severity
    trace_id: str | None
    span_id: str | None
    message: str
    details: str | None = None

#: How a column's values are displayed (JSON and CSV always get raw values):
#:
#: * ``text``  - any value, escaped and cut at 200 characters;
#: * ``int``   - an integer, with thousands separators (``12,345``);
#: * ``float`` - a number, 2 decimals (4 significant digits below 1);
#: * ``ms``    - a duration **in milliseconds** (``1,234.5 ms``);
#: * ``pct``   - a percentage **in percent, 0-100** (``12.3`` shows ``12.3%``);
#: * ``ns``    - a duration **in nanoseconds**, shown human-readable (``1.23 s``);
#: * ``bool``  - ``yes`` / ``no``;
#: * ``id``    - an identifier (trace/span id), never thousands-separated.
ColumnKind = Literal["text", "int", "float", "ms", "pct", "ns", "bool", "id"]


@dataclass(frozen=True)
class Column:
    """One column of a report table."""

    key: str
    """Key of the value in each row dict; also the CSV header."""
    header: str
    """Human header shown by the ``table`` and ``markdown`` formats."""
    kind: ColumnKind = "text"
    """How values are formatted for display (see :data:`ColumnKind`)."""


@dataclass
class Table:
    """One table of a report: columns plus rows keyed by :attr:`Column.key`."""

    name: str
    """Short machine name (``"slowest_spans"``); the CSV section marker."""
    title: str
    """Human title shown above the table."""
    columns: list[Column]
    """Displayed columns, in order."""
    rows: list[dict[str, Any]]
    """Rows in display order; a missing key or ``None`` shows as empty."""


@dataclass
class Report:
    """What a command renders: tables for humans, ``data`` for machines."""

    title: str
    """Report title (a heading in ``table`` and ``markdown``)."""
    tables: list[Table]
    """Tables shown by the ``table``, ``csv`` and ``markdown`` formats."""
    data: dict[str, Any] | list[Any]
    """The JSON document of ``--format json``; lists must already be sorted."""
    notes: list[str] = field(default_factory=list)
    """Short remarks shown after the tables (not part of JSON or CSV)."""


@dataclass(frozen=True)
class SqlFilter:
    """A compiled filter: a SQL boolean expression plus its bound parameters."""

    sql: str = "TRUE"
    params: tuple[Any, ...] = ()

    def __and__(self, other: SqlFilter) -> SqlFilter:
        if self.sql == "TRUE":
            return other
        if other.sql == "TRUE":
            return self
        return SqlFilter(f"({self.sql}) AND ({other.sql})", self.params + other.params)


@dataclass(frozen=True)
class ReportFilter:
    """The filters every report takes: workflow, time window (on trace start), span filter."""

    workflows: tuple[str, ...] = ()
    since_ns: int | None = None
    until_ns: int | None = None
    where: SqlFilter = field(default_factory=SqlFilter)

    def trace_sql(self, alias: str = "t") -> SqlFilter:
        """SQL over the ``traces`` view (alias ``alias``) for workflow and window."""
        out = SqlFilter()
        if self.workflows:
            out = out & SqlFilter(f"{alias}.workflow IN ({', '.join('?' for _ in self.workflows)})", tuple(self.workflows))
        if self.since_ns is not None:
            out = out & SqlFilter(f"{alias}.start_ns >= ?", (self.since_ns,))
        if self.until_ns is not None:
            out = out & SqlFilter(f"{alias}.start_ns < ?", (self.until_ns,))
        return out

    def selection_sql(self, alias: str = "t") -> SqlFilter:
        """SQL over the ``traces`` view (alias ``alias``) selecting the traces of the filter: workflow and
        window, and, with ``--where``, at least one matching span."""
        out = self.trace_sql(alias)
        if self.where.sql != "TRUE":
            out = out & SqlFilter(f"{alias}.trace_id IN (SELECT s.trace_id FROM spans s WHERE {self.where.sql})",
                                  tuple(self.where.params))
        return out
