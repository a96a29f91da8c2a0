"""Cell formatting shared by the table, CSV and Markdown writers.

Both a :class:`~fabric_trace.model.Table` and an ad-hoc SQL result are
turned into a :class:`Grid`: sanitized display strings (for ``table`` and
``markdown``) plus raw CSV strings, so each writer only lays cells out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fabric_trace.render.fit import IDENT, LABEL, LABEL_KEYS, NUMBER, OTHER
from fabric_trace.render.jsonify import to_jsonable
from fabric_trace.model import Column, ColumnKind, Table
from fabric_trace.render.sanitize import safe_text

__all__ = [
    "NUMERIC_KINDS",
    "Grid",
    "csv_value",
    "format_duration_ns",
    "format_value",
    "grid_from_rows",
    "grid_from_table",
    "plain_value",
]

#: Column kinds that are right-aligned.
NUMERIC_KINDS: frozenset[str] = frozenset({"int", "float", "ms", "pct", "ns"})

#: CSV cells starting with one of these are prefixed with ``'`` so that a
#: spreadsheet does not run them as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@")

_NS_UNITS = ((1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "µs"))


def format_duration_ns(value: Any) -> str:
    """Return a nanosecond duration human-readable: ``850 ns``, ``12.3 ms``, ``1.23 s``, ``2m 03.4s``."""
    ns = float(value)
    if not math.isfinite(ns):
        return safe_text(value)
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns >= 3_600e9:
        hours, rest = divmod(ns / 1e9, 3600)
        return f"{sign}{int(hours)}h {int(rest // 60):02d}m"
    if ns >= 60e9:
        minutes, seconds = divmod(ns / 1e9, 60)
        return f"{sign}{int(minutes)}m {seconds:04.1f}s"
    for scale, unit in _NS_UNITS:
        if ns >= scale:
            number = ns / scale
            digits = 2 if number < 10 else 1
            return f"{sign}{number:.{digits}f} {unit}"
    return f"{sign}{ns:.0f} ns"


def _format_float(number: float) -> str:
    """Return a float with 2 decimals, or 4 significant digits below 1."""
    if number != 0 and abs(number) < 1:
        return f"{number:.4g}"
    return f"{number:,.2f}"


def plain_value(value: Any, max_len: int | None = 200) -> str | None:
    """Return any value as a sanitized display string (``None`` stays ``None``).

    Used for ``text`` columns and SQL results: ints in full, floats as
    ``repr``, booleans as ``true``/``false``, nested values as compact JSON.
    """
    converted = to_jsonable(value)
    if converted is None:  # None, or a NaN/infinite float or Decimal
        return None if value is None else safe_text(value, max_len)
    if isinstance(converted, bool):
        return "true" if converted else "false"
    if isinstance(converted, (int, float)):
        return repr(converted)
    if isinstance(converted, str):
        return safe_text(converted, max_len)
    text = json.dumps(converted, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return safe_text(text, max_len)


def format_value(value: Any, kind: ColumnKind) -> str | None:
    """Return ``value`` formatted for display in a ``kind`` column.

    ``None`` stays ``None`` (each writer shows its own placeholder). A value
    that does not fit its kind (a string in an ``ms`` column) is shown as
    plain text rather than raising.
    """
    if value is None:
        return None
    try:
        if kind in ("text", "id"):
            return plain_value(value)
        if kind == "bool" or isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, (str, bytes)):
            return plain_value(value)
        if kind == "int":
            return f"{value:,}" if isinstance(value, int) else f"{float(value):,.0f}"
        if kind == "float":
            return _format_float(float(value))
        if kind == "ms":
            return f"{float(value):,.1f} ms"
        if kind == "pct":
            return f"{float(value):.1f}%"
        if kind == "ns":
            return format_duration_ns(value)
    except (TypeError, ValueError, OverflowError):
        pass
    return plain_value(value)


def csv_value(value: Any) -> str:
    """Return the raw CSV text of ``value``: numbers unformatted, ``None`` empty.

    Strings are escaped with :func:`safe_text` (no truncation) and guarded
    against spreadsheet formulas; nested values become compact JSON.
    """
    converted = to_jsonable(value)
    if converted is None:
        return ""
    if isinstance(converted, bool):
        return "true" if converted else "false"
    if isinstance(converted, (int, float)):
        return repr(converted)
    if isinstance(converted, str):
        text = safe_text(converted, None)
    else:
        text = json.dumps(converted, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return "'" + text if text.startswith(_FORMULA_START) else text


@dataclass
class Grid:
    """A table ready to lay out: every string in it is already sanitized."""

    name: str
    """Sanitized machine name (CSV section marker)."""
    title: str
    """Sanitized human title ("" for none)."""
    keys: list[str]
    """CSV header cells (formula-guarded)."""
    headers: list[str]
    """Display header cells."""
    right: list[bool]
    """Per column: right-align (numbers)."""
    display: list[list[str | None]]
    """Display cells; ``None`` is a missing value."""
    raw: list[list[str]]
    """CSV cells."""
    null_text: str = "—"
    """What ``table`` and ``markdown`` show for a missing value."""
    nowrap: list[bool] | None = None
    """Per column: never wrap (ids and numbers); ``None`` = wrap all."""
    classes: list[str] | None = None
    """Per column, for fitting a terminal (:mod:`.fit`): label, number, id or other."""


def grid_from_table(table: Table) -> Grid:
    """Return the :class:`Grid` of a report table."""
    cols = table.columns
    return Grid(
        name=safe_text(table.name, 100),
        title=safe_text(table.title),
        keys=[csv_value(c.key) for c in cols],
        headers=[safe_text(c.header, 100) for c in cols],
        right=[c.kind in NUMERIC_KINDS for c in cols],
        display=[[format_value(row.get(c.key), c.kind) for c in cols] for row in table.rows],
        raw=[[csv_value(row.get(c.key)) for c in cols] for row in table.rows],
        nowrap=[c.kind == "id" or c.kind in NUMERIC_KINDS for c in cols],
        classes=[_column_class(c, i) for i, c in enumerate(cols)],
    )


def _column_class(column: Column, index: int) -> str:
    """How :mod:`.fit` treats a report column when the table is too wide."""
    if column.kind == "id":
        return IDENT
    if column.kind in NUMERIC_KINDS or column.kind == "bool":
        return NUMBER
    return LABEL if index == 0 or column.key in LABEL_KEYS else OTHER


def grid_from_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Grid:
    """Return the :class:`Grid` of an ad-hoc SQL result (``NULL`` for missing)."""
    for number, row in enumerate(rows, 1):
        if len(row) != len(columns):
            raise ValueError(f"row {number} has {len(row)} values for {len(columns)} columns")
    right = []
    for i in range(len(columns)):
        present = [row[i] for row in rows if row[i] is not None]
        right.append(bool(present) and all(_is_number(v) for v in present))
    return Grid(
        name="query",
        title="",
        keys=[csv_value(c) for c in columns],
        headers=[safe_text(c, 100) for c in columns],
        right=right,
        display=[[plain_value(v) for v in row] for row in rows],
        raw=[[csv_value(v) for v in row] for row in rows],
        null_text="NULL",
        classes=[NUMBER if r else (LABEL if i == 0 else OTHER) for i, r in enumerate(right)],
    )


def _is_number(value: Any) -> bool:
    """Return whether ``value`` is a (non-boolean) number."""
    converted = to_jsonable(value)
    return isinstance(converted, (int, float)) and not isinstance(converted, bool)
