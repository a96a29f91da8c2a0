"""``fabric trace show`` on a terminal: what failed first, then the tree, LLM calls and findings;
``--span``: one span whole, as wrapped key/value lines.

Everything here returns rich renderables (``Text``, tables, the tree group) for
a console ``width`` columns wide (``None``: no terminal, nothing wrapped or
cut). All span data goes through :func:`~fabric_trace.render.sanitize.safe_text`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

from rich.cells import cell_len
from rich.console import RenderableType
from rich.text import Text

from fabric_trace.render.cells import format_duration_ns, format_value, grid_from_table, plain_value
from fabric_trace.render.fit import unique_prefix_len
from fabric_trace.model import Column, Report, Table
from fabric_trace.render.sanitize import safe_text
from fabric_trace.render.tree import render_trace_tree
from fabric_trace.render.writers import rich_renderables

__all__ = ["record_view", "trace_view"]

#: Error spans described in full before the tree.
MAX_ERRORS = 20


def _hard_wrap(text: str, width: int, indent: int) -> list[str]:
    lines: list[str] = []
    line: list[str] = []
    used = 0
    for ch in text:
        w = cell_len(ch)
        if used + w > width:
            lines.append("".join(line))
            line, used = [" " * indent], indent
        line.append(ch)
        used += w
    lines.append("".join(line))
    return lines


def _wrap(text: str, width: int | None, indent: int) -> str:
    """Wrap ``text`` at spaces to ``width`` cells (a word too long for a line is split);
    continuation lines start with ``indent`` spaces.

    ``None`` (no terminal) or a width too narrow to be useful leaves the text whole.
    """
    if width is None or width - indent < 10:
        return text
    lines = textwrap.wrap(text, width, subsequent_indent=" " * indent, break_long_words=True,
                          break_on_hyphens=False, drop_whitespace=True, replace_whitespace=False)
    if not lines or any(cell_len(line) > width for line in lines):  # wide characters
        lines = _hard_wrap(text, width, indent)
    lead = len(text) - len(text.lstrip(" "))
    if lines and lead and not lines[0].startswith(" " * lead):
        lines[0] = " " * lead + lines[0]
    return "\n".join(lines)


def _labelled(head: str, value: str, width: int | None, indent: int, styled: bool) -> Text:
    """``head`` (bold) then ``value``, the whole wrapped to ``width`` with a hanging ``indent``."""
    wrapped = _wrap(head + value, width, indent)
    text = Text(head, style="bold" if styled else "")
    text.append(wrapped[len(head):])
    return text


def _field(label: str, value: str, width: int | None, styled: bool, indent: int = 2) -> Text:
    return _labelled(" " * indent + label + ": ", value, width, indent + 2, styled)


def _errors(trace: Mapping[str, Any], ids: Mapping[str, str], width: int | None, styled: bool) -> list[Text]:
    failed = [s for s in trace["spans"]
              if str(s.get("status_code") or "").upper() == "ERROR" or s.get("exception")]
    if not failed:
        return []
    red = "bold red" if styled else ""
    parts = [Text(f"Errors ({len(failed):,} span{'s' if len(failed) != 1 else ''})", style=red)]
    for span in failed[:MAX_ERRORS]:
        offset = span.get("start_offset_ns")
        duration = span["end_ns"] - span["start_ns"] if span.get("end_ns") and span.get("start_ns") else None
        head = (f"✗ {ids.get(span['span_id'], span['span_id'])}  {safe_text(span.get('name'), 120)}  "
                f"({safe_text(span.get('service_name'), 40)}, {safe_text(span.get('role'), 20)})")
        if offset is not None:
            head += f"  at +{format_duration_ns(offset)}"
        if duration is not None:
            head += f", {format_duration_ns(duration)}"
        parts.append(Text(_wrap(head, width, 2), style="bold" if styled else ""))
        if span.get("status_message"):
            parts.append(_field("status", safe_text(span["status_message"], 1000), width, styled))
        exc = span.get("exception")
        if exc:
            kind, message = exc.get("type"), exc.get("message")
            described = ": ".join(safe_text(x, 1000) for x in (kind, message) if x) or "(no type or message)"
            parts.append(_field("exception", described, width, styled))
            if exc.get("stack_first_line"):
                parts.append(_field("at", safe_text(exc["stack_first_line"], 1000), width, styled))
        elif span.get("error_type"):
            parts.append(_field("error type", safe_text(span["error_type"], 1000), width, styled))
        if span.get("model"):
            parts.append(_field("model", safe_text(span["model"], 200), width, styled))
    if len(failed) > MAX_ERRORS:
        parts.append(Text(f"… and {len(failed) - MAX_ERRORS:,} more error spans (--format json lists all)",
                          style="dim" if styled else ""))
    return parts


def _header(trace: Mapping[str, Any], width: int | None, styled: bool) -> Text:
    s = trace["summary"]
    bits = [f"Trace {trace['trace_id']}"]
    if s.get("workflow"):
        bits.append(f"workflow {safe_text(s['workflow'], 80)}")
    if s.get("root_name"):
        bits.append(f"root {safe_text(s['root_name'], 120)}")
    if s.get("duration_ns") is not None:
        bits.append(format_duration_ns(s["duration_ns"]))
    if s.get("span_count") is not None:
        errors = s.get("error_count") or 0
        bits.append(f"{s['span_count']:,} spans, {errors:,} error{'s' if errors != 1 else ''}")
    return Text(_wrap("  ·  ".join(bits), width, 2), style="bold" if styled else "")


def trace_view(trace: Mapping[str, Any], *, width: int | None, styled: bool,
               max_rows: int | None) -> list[RenderableType]:
    """The renderables of ``fabric trace show`` (table format), in order.

    Header line; the error spans with status message, exception type and
    message, first stack line; the tree (``id`` = span id prefix, ``start`` =
    offset from the trace start); LLM calls with model and tokens; findings.
    """
    spans = trace["spans"]
    n = unique_prefix_len([s["span_id"] for s in spans]) if spans else 8
    ids = {s["span_id"]: s["span_id"][:n] for s in spans}
    parts: list[RenderableType] = [_header(trace, width, styled)]
    errors = _errors(trace, ids, width, styled)
    if errors:
        parts.append(Text(""))
        parts.extend(errors)
    parts.append(Text(""))
    parts.append(render_trace_tree(spans, critical=trace["critical"], self_ns=trace["self_ns"], width=width,
                                   max_rows=max_rows))
    llm = [{"span": ids[s["span_id"]], "name": s.get("name"), "model": s.get("model"),
            "input_tokens": s.get("input_tokens"), "output_tokens": s.get("output_tokens"),
            "cached_input_tokens": s.get("cached_input_tokens"),
            "duration_ns": s["end_ns"] - s["start_ns"] if s.get("end_ns") and s.get("start_ns") else None}
           for s in spans if s.get("role") == "llm" or s.get("model")]
    tables = []
    if llm:
        tables.append(Table("llm", "LLM calls", [
            Column("span", "Span", "id"), Column("name", "Name"), Column("model", "Model"),
            Column("input_tokens", "In tok", "int"), Column("output_tokens", "Out tok", "int"),
            Column("cached_input_tokens", "Cached tok", "int"), Column("duration_ns", "Duration", "ns")], llm))
    if trace["findings"]:
        rows = [{"severity": f["severity"], "kind": f"{f['analyzer']}/{f['kind']}",
                 "span": ids.get(f["span_id"], f["span_id"]), "message": f["message"]} for f in trace["findings"]]
        tables.append(Table("findings", "Findings", [Column("severity", "Severity"), Column("kind", "Rule"),
                                                     Column("span", "Span", "id"), Column("message", "Message")],
                            rows))
    for table in tables:
        parts.append(Text(""))
        parts.extend(rich_renderables("", [grid_from_table(table)], (), styled=styled, width=width))
    return parts


def _cell(value: Any, column: Column) -> str:
    """A whole value: text and nested values uncut (compact JSON), numbers formatted by kind."""
    if value is None:
        return "—"
    if column.kind in ("text", "id"):
        return plain_value(value, max_len=None) or ""
    return format_value(value, column.kind) or ""


def record_view(report: Report, *, width: int | None, styled: bool) -> list[RenderableType]:
    """A report as key/value records, nothing cut: each row is its first cell, then the others
    (``Header: value``), wrapped to ``width`` with continuation lines indented."""
    parts: list[RenderableType] = [Text(safe_text(report.title), style="bold underline" if styled else "")]
    for table in report.tables:
        if not table.rows:
            continue
        parts.append(Text(""))
        parts.append(Text(safe_text(table.title), style="bold" if styled else ""))
        first, rest = table.columns[0], table.columns[1:]
        keys = [_cell(row.get(first.key), first) for row in table.rows]
        key_w = min(max(cell_len(k) for k in keys), 40)
        pairs = len(rest) == 1 and rest[0].key == "value"
        for row, key in zip(table.rows, keys):
            if pairs:
                value = _cell(row.get("value"), rest[0])
            else:
                value = "  ".join(f"{c.header}: {_cell(row.get(c.key), c)}" for c in rest
                                  if row.get(c.key) not in (None, "", {}, []))
            pad = key + " " * max(0, key_w - cell_len(key)) + "  "
            indent = cell_len(pad) if width is None else min(cell_len(pad), width // 2)
            parts.append(_labelled(pad, value, width, indent, styled))
    return parts

