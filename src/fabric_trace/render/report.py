"""The report model every ``fabric`` command renders.

An analyzer (or a command) builds one :class:`Report`: ``tables`` are what the
``table``, ``csv`` and ``markdown`` formats show, ``data`` is the documented
JSON document printed by ``--format json``. The renderers in
:mod:`fabric_trace.render.formats` turn a report into a string; they never
read a database and never print.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Column", "ColumnKind", "Report", "Table"]

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
