"""``fabric report html``: collect the data, render the page."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from fabric_trace.pictures.report_data import HtmlOptions, collect, summary
from fabric_trace.render.html import render_report


@dataclass
class HtmlPage:
    """A rendered report and what it holds."""

    html: str
    traces: int
    waterfalls: int


def build_html_report(con: duckdb.DuckDBPyConnection, options: HtmlOptions | None = None,
                      filters: str = "") -> HtmlPage:
    """The HTML report of the traces ``options.filter`` selects."""
    opt = options or HtmlOptions()
    data = collect(con, opt)
    html = render_report(data, summary(data), filters)
    return HtmlPage(html, data["overview"]["traces"], len(data["waterfalls"]))
