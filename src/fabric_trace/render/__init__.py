"""Renderers: turn reports, query results and traces into safe text.

Every string taken from span data is escaped (:mod:`.sanitize`) before it
reaches a terminal, a CSV file or Markdown; see docs/output-formats.md.
Nothing in this package prints except into a console it is given.
"""

from __future__ import annotations

from fabric_trace.render.formats import (
    OutputFormat,
    render,
    render_rows,
    render_rows_to_console,
    render_to_console,
)
from fabric_trace.model import Column, Report, Table
from fabric_trace.render.sanitize import safe_markup, safe_rich_text, safe_text
from fabric_trace.render.tree import render_trace_tree, render_trace_tree_text

__all__ = [
    "Column",
    "OutputFormat",
    "Report",
    "Table",
    "render",
    "render_rows",
    "render_rows_to_console",
    "render_to_console",
    "render_trace_tree",
    "render_trace_tree_text",
    "safe_markup",
    "safe_rich_text",
    "safe_text",
]
