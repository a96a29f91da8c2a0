"""Writers that lay out :class:`~fabric_trace.render.cells.Grid` objects.

* :func:`write_csv` - the ``csv`` module, ``\\n`` line ends, one section per
  table (``# name`` line before each section when there are several);
* :func:`write_markdown` - ``#``/``##`` headings and GitHub pipe tables, with
  Markdown-active characters backslash-escaped;
* :func:`rich_renderables` - rich ``Table``/``Text`` objects for a console.

Every string in a grid is already sanitized; the writers only add layout.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence

from rich import box
from rich.console import RenderableType
from rich.table import Table as RichTable
from rich.text import Text

from fabric_trace.render.cells import Grid
from fabric_trace.render.fit import COLUMN_GAP, IDENT, NUMBER, OTHER, FittedTable, cut, fit_table
from fabric_trace.render.sanitize import safe_text

__all__ = ["markdown_escape", "rich_renderables", "write_csv", "write_markdown"]

# ASCII punctuation that can start a link, an emphasis, code, HTML, an entity
# or a table cell boundary. CommonMark allows a backslash before any of them.
_MARKDOWN_ACTIVE = re.compile(r"([\\`*_{}\[\]<>()#!|~&])")


def markdown_escape(text: str) -> str:
    """Backslash-escape Markdown-active characters of an already sanitized string."""
    return _MARKDOWN_ACTIVE.sub(r"\\\1", text)


def write_csv(grids: Sequence[Grid]) -> str:
    """Return the grids as CSV: header of keys, then rows; sections for several.

    With more than one grid each section starts with a ``# <name>`` line and
    sections are separated by one blank line. Line ends are ``\\n``.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for index, grid in enumerate(grids):
        if len(grids) > 1:
            if index:
                out.write("\n")
            out.write(f"# {grid.name}\n")
        writer.writerow(grid.keys)
        writer.writerows(grid.raw)
    return out.getvalue()


def _markdown_table(grid: Grid) -> list[str]:
    """Return the lines of one GitHub pipe table."""
    if not grid.keys:
        return ["_(no columns)_"]

    def line(cells: Iterable[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    lines = [
        line(markdown_escape(h) or " " for h in grid.headers),
        line("---:" if right else "---" for right in grid.right),
    ]
    for row in grid.display:
        lines.append(line(markdown_escape(grid.null_text if c is None else c) for c in row))
    if not grid.display:
        lines.append("")
        lines.append("_(no rows)_")
    return lines


def write_markdown(title: str, grids: Sequence[Grid], notes: Sequence[str] = ()) -> str:
    """Return a Markdown document: ``# title``, a ``## title`` per grid, then notes."""
    lines: list[str] = []
    if title:
        lines += [f"# {markdown_escape(safe_text(title))}", ""]
    for grid in grids:
        if grid.title:
            lines += [f"## {markdown_escape(grid.title)}", ""]
        lines += _markdown_table(grid)
        lines.append("")
    if notes:
        lines += [f"- {markdown_escape(safe_text(note, 1000))}" for note in notes]
        lines.append("")
    return "\n".join(lines)


def _rich_table(grid: Grid, *, styled: bool, width: int | None = None) -> tuple[RichTable, list[str]]:
    """Return one grid as a rich ``Table`` whose cells are all ``Text``, and the headers left out.

    With a ``width`` the table is fitted to it (:func:`~fabric_trace.render.fit.fit_table`);
    without one every column is shown at its natural width and nothing is cut.
    """
    table = RichTable(
        title=Text(grid.title, style="bold" if styled else "") if grid.title else None,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        header_style="bold" if styled else "",
        show_edge=False,
        pad_edge=False,
        padding=(0, COLUMN_GAP - 1, 0, 0),
    )
    cells = [[grid.null_text if c is None else c for c in row] for row in grid.display]
    n = len(grid.headers)
    classes = grid.classes or [NUMBER if r else OTHER for r in grid.right]
    if width is None:
        fitted = FittedTable(list(range(n)), {}, dict(enumerate(grid.headers)))
    else:
        fitted = fit_table(grid.keys, grid.headers, classes, cells, width)
    for i in fitted.columns:
        table.add_column(Text(fitted.headers[i]), justify="right" if grid.right[i] else "left",
                         no_wrap=True, overflow="ellipsis", width=fitted.widths.get(i))
    null_style = "dim" if styled else ""
    for raw_row, row in zip(grid.display, cells):
        out = []
        for i in fitted.columns:
            text, w = row[i], fitted.widths.get(i)
            if w is not None:
                text = text[:w] if classes[i] == IDENT else cut(text, w)
            out.append(Text(text, style=null_style) if raw_row[i] is None else Text(text))
        table.add_row(*out)
    return table, [grid.headers[i] for i in fitted.dropped]


def rich_renderables(
    title: str, grids: Sequence[Grid], notes: Sequence[str] = (), *, styled: bool, width: int | None = None
) -> list[RenderableType]:
    """Return the title, tables and notes as rich renderables (never markup).

    ``width`` fits each table to that many columns (a terminal); a note under a
    table names the columns it left out.
    """
    parts: list[RenderableType] = []
    dim = "dim" if styled else ""
    if title:
        parts.append(Text(safe_text(title), style="bold underline" if styled else ""))
    for grid in grids:
        table, dropped = _rich_table(grid, styled=styled, width=width)
        parts.append(table)
        if not grid.display:
            parts.append(Text("(no rows)", style=dim))
        if dropped:
            parts.append(Text(f"(not shown at {width} columns: {', '.join(dropped)}; "
                              "widen the terminal, or use --format csv or json)", style=dim))
    for note in notes:
        parts.append(Text("note: " + safe_text(note, 1000), style=dim))
    return parts
