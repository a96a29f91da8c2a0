"""The ``--format`` choice and the functions that render a report in it.

``render`` returns a string for every format (what the CLI writes to stdout
when it is not a terminal, or to ``--output``); ``render_to_console`` prints
the ``table`` format with colours to a rich console (stdout is a TTY). The
rules of each format are in docs/output-formats.md. Nothing here prints
except into a console it was given.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from enum import Enum
from typing import Any, assert_never

from rich.console import Console, RenderableType

from fabric_trace.render.cells import Grid, grid_from_rows, grid_from_table
from fabric_trace.render.jsonify import dumps, to_jsonable
from fabric_trace.model import Report
from fabric_trace.render.writers import rich_renderables, write_csv, write_markdown

__all__ = [
    "NATURAL_WIDTH",
    "OutputFormat",
    "plain_console",
    "render",
    "render_rows",
    "render_rows_to_console",
    "render_to_console",
    "renderables_to_text",
]

#: Console width used to lay tables out at their natural width (no width given: not a terminal).
#: Only the text that is there is written; lines are not padded to it.
NATURAL_WIDTH = 1_000_000


class OutputFormat(str, Enum):
    """The values of ``--format``."""

    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"

    def __str__(self) -> str:
        """Return the option value (``"json"``), as shown in ``--help``."""
        return self.value


def plain_console(file: io.StringIO, width: int | None = None) -> Console:
    """Return a console writing plain text into ``file``: no colours, no ANSI codes.

    The environment (``FORCE_COLOR``, ``COLUMNS``, ``TERM`` ...) is ignored so
    the output is the same everywhere.
    """
    return Console(
        file=file,
        width=width or NATURAL_WIDTH,
        force_terminal=False,
        force_jupyter=False,
        force_interactive=False,
        color_system=None,
        no_color=True,
        markup=False,
        emoji=False,
        highlight=False,
        legacy_windows=False,
        soft_wrap=False,
        _environ={},
    )


def renderables_to_text(parts: Sequence[RenderableType], width: int | None, *, gap: bool = False) -> str:
    """Print renderables into a plain console ``width`` wide (``None``: unlimited) and return the text.

    ``gap`` puts a blank line between parts. No ANSI codes, no trailing blanks.
    """
    buffer = io.StringIO()
    console = plain_console(buffer, width)
    for index, part in enumerate(parts):
        if index and gap:
            console.print()
        console.print(part)
    # rich pads titles and cells to the full width; golden files prefer no trailing blanks.
    lines = buffer.getvalue().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return "".join(line.rstrip(" ") + "\n" for line in lines)


def _render_grids(
    title: str, grids: list[Grid], notes: Sequence[str], fmt: OutputFormat, width: int | None
) -> str:
    """Render grids in the ``table``, ``csv`` or ``markdown`` format."""
    if fmt is OutputFormat.table:
        return renderables_to_text(rich_renderables(title, grids, notes, styled=False, width=width), width, gap=True)
    if fmt is OutputFormat.csv:
        return write_csv(grids)
    if fmt is OutputFormat.markdown:
        return write_markdown(title, grids, notes)
    raise ValueError(f"not a grid format: {fmt}")  # pragma: no cover


def render(report: Report, fmt: OutputFormat | str, *, width: int | None = None) -> str:
    """Return ``report`` rendered in ``fmt``, ending in a newline (``""`` if empty).

    * ``table``: plain-text tables fitted to ``width`` columns (docs/output-formats.md,
      "Tables at any width"); without a width at their natural width, nothing cut;
    * ``json``: ``report.data`` as deterministic JSON (sorted keys, ASCII);
    * ``csv``: each table as a CSV section (raw numbers);
    * ``markdown``: headings plus GitHub pipe tables.

    All text from span data is escaped; see docs/output-formats.md.
    """
    fmt = OutputFormat(fmt)
    if fmt is OutputFormat.json:
        return dumps(report.data)
    if fmt is OutputFormat.table or fmt is OutputFormat.csv or fmt is OutputFormat.markdown:
        grids = [grid_from_table(table) for table in report.tables]
        return _render_grids(report.title, grids, report.notes, fmt, width)
    assert_never(fmt)


def render_to_console(report: Report, console: Console, *, width: int | None = None) -> None:
    """Print ``report`` in the ``table`` format, with styles, to ``console``.

    For a terminal (``width``: its columns); the text is the same as
    ``render(report, "table", width=width)`` except for colours. Span data is
    passed as ``Text``, never as markup, so the console's markup setting does
    not matter.
    """
    grids = [grid_from_table(table) for table in report.tables]
    for index, part in enumerate(rich_renderables(report.title, grids, report.notes, styled=True, width=width)):
        if index:
            console.print()
        console.print(part)


def _unique_names(columns: Sequence[str]) -> list[str]:
    """Return column names made unique for JSON objects: ``a``, ``a_2``, ``a_3``."""
    seen: set[str] = set()
    names: list[str] = []
    for column in columns:
        name, n = str(column), 1
        while name in seen:
            n += 1
            name = f"{column}_{n}"
        seen.add(name)
        names.append(name)
    return names


def render_rows(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: OutputFormat | str, *, width: int | None = None
) -> str:
    """Return an ad-hoc SQL result (``fabric query``) rendered in ``fmt``.

    * ``json``: an array of row objects (sorted keys; a repeated column name
      gets a suffix ``_2``, ``_3`` ...), values converted as in reports;
    * ``csv``: a header of column names, then the rows;
    * ``markdown``: one pipe table; ``table``: one rich table.

    ``NULL`` shows as ``NULL`` in ``table``/``markdown`` and empty in CSV.
    Raises ``ValueError`` if a row does not have one value per column.
    """
    fmt = OutputFormat(fmt)
    if fmt is OutputFormat.json:
        names = _unique_names(columns)
        for number, row in enumerate(rows, 1):
            if len(row) != len(names):
                raise ValueError(f"row {number} has {len(row)} values for {len(names)} columns")
        objects = [dict(zip(names, (to_jsonable(v) for v in row))) for row in rows]
        return json.dumps(objects, sort_keys=True, indent=2, ensure_ascii=True, allow_nan=False) + "\n"
    if fmt is OutputFormat.table or fmt is OutputFormat.csv or fmt is OutputFormat.markdown:
        return _render_grids("", [grid_from_rows(columns, rows)], (), fmt, width)
    assert_never(fmt)


def render_rows_to_console(columns: Sequence[str], rows: Sequence[Sequence[Any]], console: Console, *,
                           width: int | None = None) -> None:
    """Print an ad-hoc SQL result as a styled table to ``console`` (a terminal ``width`` wide)."""
    for part in rich_renderables("", [grid_from_rows(columns, rows)], (), styled=True, width=width):
        console.print(part)
