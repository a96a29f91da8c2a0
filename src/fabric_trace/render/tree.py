"""``fabric trace show``: one trace as an indented tree with a waterfall.

One line per span, in depth-first order (children sorted by start time, then
span id)::

    mk span           id       service role  kind       start duration    self waterfall 0 … 100.0 ms
    ◆  agent.run      7b1c0a9e svc     agent server       +0 ns 100.0 ms 15.0 ms ██████████████████████
    ◆  ├─ llm.call    0c2d9f11 svc     llm   client    +5.00 ms  65.0 ms 55.0 ms  ██████████████▍
       │  └─ db.query 5a3e8b20 svc     db    internal +10.0 ms  10.0 ms 10.0 ms   ██▌
     ✗ └─ tool.search e9f04c7d svc     tool  client   +75.0 ms  15.0 ms 15.0 ms                ███▍

* ``◆`` (bold name) marks a span on the critical path, ``✗`` an ERROR status;
  ``id`` is the span id cut to its shortest unique prefix in the trace (at
  least 8 characters; findings and ``--span`` use it), ``start`` the offset of
  the span's start from the trace's start;
* in a narrow terminal the columns kind, self, service and the waterfall are
  left out, in that order, so that no line is wider than the terminal;
* spans whose parent is missing are extra roots marked ``(orphan)``, a span
  that is its own parent is marked ``(self-parent)``, and spans only reachable
  through a parent cycle are shown from their earliest member, marked
  ``(cycle)``; every span appears exactly once;
* indentation stops growing after ``max_indent`` levels: deeper lines start
  with ``…`` and carry ``(depth N)``;
* with more than ``max_rows`` spans the middle is elided: the first
  ``max_rows // 2`` and the last ``max_rows - max_rows // 2`` spans are shown
  around one ``⋮ N spans elided`` line (``max_rows=None`` shows all);
* spans without usable times (start 0, end before start) get no bar and a
  ``—`` duration; the scale is the earliest valid start to the latest end.

The walk uses an explicit stack: a 100 000-deep chain renders without
recursion. All span data goes through :func:`~fabric_trace.render.sanitize.safe_text`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.console import Group, RenderableType
from rich.text import Text

from fabric_trace.render.cells import format_duration_ns
from fabric_trace.render.fit import unique_prefix_len
from fabric_trace.render.sanitize import safe_text

__all__ = ["DEFAULT_MAX_ROWS", "MAX_INDENT", "render_trace_tree", "render_trace_tree_text"]

#: Lines shown before the middle of a large trace is elided.
DEFAULT_MAX_ROWS = 2000
#: Tree levels drawn before indentation stops growing.
MAX_INDENT = 12

_EIGHTHS = " ▏▎▍▌▋▊▉"
_FULL = "█"
_KIND_LABEL = {"UNSPECIFIED": "unspec", "INTERNAL": "internal", "SERVER": "server",
               "CLIENT": "client", "PRODUCER": "producer", "CONSUMER": "consumer"}

Segment = tuple[str, str]  # (text, rich style)


@dataclass(frozen=True)
class _Visit:
    """One span in display order."""

    index: int
    depth: int
    prefix: str
    note: str


def _as_int(value: Any) -> int | None:
    """Return ``value`` as an int, or ``None`` if it is not a number."""
    if value is None or isinstance(value, (bool, str, bytes)):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _as_id(value: Any) -> str:
    """Return a span id as a string (``""`` when absent)."""
    return "" if value is None else str(value)


def _timing(span: Mapping[str, Any]) -> tuple[int, int] | None:
    """Return ``(start_ns, end_ns)`` if usable for timing (start > 0, end >= start)."""
    start, end = _as_int(span.get("start_ns")), _as_int(span.get("end_ns"))
    if start is None or end is None or start <= 0 or end < start:
        return None
    return start, end


def _walk(spans: Sequence[Mapping[str, Any]], max_indent: int) -> Iterator[_Visit]:
    """Yield every span once in display order, iteratively (no recursion)."""
    ids = [_as_id(s.get("span_id")) for s in spans]
    known = set(ids)

    def key(i: int) -> tuple[int, str]:
        start = _as_int(spans[i].get("start_ns"))
        return (start if start is not None and start > 0 else 2**63, ids[i])

    children: dict[str, list[int]] = {}
    roots: list[tuple[int, str]] = []
    for i, span in enumerate(spans):
        parent = _as_id(span.get("parent_span_id"))
        if not parent:
            roots.append((i, ""))
        elif parent == ids[i]:
            roots.append((i, "self-parent"))
        elif parent not in known:
            roots.append((i, "orphan"))
        else:
            children.setdefault(parent, []).append(i)
    for kids in children.values():
        kids.sort(key=key)
    roots.sort(key=lambda r: key(r[0]))
    # Spans reachable only through a parent cycle are started from, earliest first.
    rescue = ((i, "cycle") for i in sorted(range(len(spans)), key=key))

    visited = bytearray(len(spans))
    guides: list[str] = []  # guides[k]: what to draw at level k+1 for the current path
    for root, note in (*roots, *rescue):
        if visited[root]:
            continue
        stack = [(root, 0, True)]
        while stack:
            i, depth, last = stack.pop()
            if visited[i]:
                continue
            visited[i] = 1
            del guides[max(depth - 1, 0):]
            yield _Visit(i, depth, _prefix(guides, depth, last, max_indent), note if depth == 0 else "")
            if depth:
                guides.append("   " if last else "│  ")
            kids = [k for k in children.get(ids[i], ()) if not visited[k]]
            for pos in range(len(kids) - 1, -1, -1):
                stack.append((kids[pos], depth + 1, pos == len(kids) - 1))


def _prefix(guides: list[str], depth: int, last: bool, max_indent: int) -> str:
    """Return the tree drawing before a span name (at most ``3*max_indent+3`` cells)."""
    if depth == 0:
        return ""
    connector = "└─ " if last else "├─ "
    if depth - 1 <= max_indent:
        return "".join(guides) + connector
    return "…  " + "".join(guides[len(guides) - max_indent + 1:]) + connector


def _bar(timing: tuple[int, int] | None, t0: int, total: int, width: int) -> str:
    """Return a waterfall bar ``width`` cells wide (1/8-cell resolution)."""
    if timing is None or width <= 0:
        return ""
    start, end = timing
    offset = min(max((start - t0) * width // total, 0), width - 1)
    eighths = max(1, (end - start) * width * 8 // total)
    full, part = divmod(eighths, 8)
    bar = " " * offset + _FULL * full + (_EIGHTHS[part] if part else "")
    return bar[:width]


def _width(text: str) -> int:
    """Return the terminal cell width of ``text`` (fast for ASCII)."""
    return len(text) if text.isascii() else cell_len(text)


def _fit(text: str, width: int, *, right: bool = False) -> str:
    """Pad or cut ``text`` to exactly ``width`` cells, ending a cut with ``…``."""
    if width <= 0:
        return ""
    size = _width(text)
    if size > width:
        cut = text[: width - 1] if size == len(text) else set_cell_size(text, width - 1)
        return cut + "…"
    return " " * (width - size) + text if right else text + " " * (width - size)


def _elide(total: int, max_rows: int | None) -> tuple[int, int]:
    """Return ``(head, tail)`` line counts kept around the elided middle."""
    if max_rows is None or total <= max_rows:
        return total, 0
    head = max(max_rows // 2, 1)
    return head, max(max_rows - head, 0)


#: Optional tree columns, in the order they are dropped when the terminal is narrow.
_DROP_ORDER = ("kind", "self", "service", "waterfall")
#: Narrowest span-name column and waterfall; span-name width kept before optional columns.
_MIN_TREE, _MIN_BAR, _COMFORT_TREE = 16, 10, 30
#: Waterfall width when there is no terminal (output into a pipe or a file).
_PIPE_BAR = 40


def _offset(ns: int) -> str:
    """A start offset from the trace start: ``+0 ns``, ``+12.3 ms``, ``+1.23 s``."""
    return "+" + format_duration_ns(ns)


def _lines(
    spans: Sequence[Mapping[str, Any]],
    critical: set[str] | None,
    self_ns: Mapping[str, int] | None,
    width: int | None,
    max_rows: int | None,
    max_indent: int,
) -> list[list[Segment]]:
    """Return the styled segments of every displayed line (header first)."""
    if not spans:
        return [[("(no spans)", "dim")]]
    critical = critical or set()
    self_ns = self_ns or {}
    timings = [_timing(s) for s in spans]
    valid = [t for t in timings if t is not None]
    t0 = min((t[0] for t in valid), default=0)
    total = max(max((t[1] for t in valid), default=0) - t0, 1)
    ids = [_as_id(s.get("span_id")) for s in spans]
    id_w = min(unique_prefix_len([safe_text(i, 64) for i in ids if i]), 32) if any(ids) else 4

    head, tail = _elide(len(spans), max_rows)
    kept: list[_Visit | int] = []  # an int marks the elided count
    for position, visit in enumerate(_walk(spans, max_indent)):
        if position < head or position >= len(spans) - tail:
            kept.append(visit)
        elif position == head:
            kept.append(len(spans) - head - tail)

    cells: list[tuple[_Visit, dict[str, str]]] = []
    for item in kept:
        if isinstance(item, _Visit):
            span = spans[item.index]
            note = item.note
            if item.depth - 1 > max_indent:
                note = f"{note}, depth {item.depth:,}" if note else f"depth {item.depth:,}"
            kind = str(span.get("kind") or "")
            own_ns = self_ns.get(ids[item.index])
            timing = timings[item.index]
            cells.append((item, {
                "name": safe_text(span.get("name"), 80),
                "note": f"({note})" if note else "",
                "id": safe_text(ids[item.index], 64)[:id_w],
                "service": safe_text(span.get("service_name"), 40),
                "role": safe_text(span.get("role"), 20),
                "kind": safe_text(_KIND_LABEL.get(kind, kind.lower()), 10),
                "start": _offset(timing[0] - t0) if timing else "—",
                "duration": format_duration_ns(timing[1] - timing[0]) if timing else "—",
                "self": format_duration_ns(own_ns) if own_ns is not None else "",
            }))

    def widest(column: str, floor: int, cap: int) -> int:
        return min(max([floor, *(_width(c[column]) for _, c in cells)]), cap)

    widths = {"id": max(2, id_w), "service": widest("service", 7, 20), "role": widest("role", 4, 12),
              "kind": widest("kind", 4, 8), "start": widest("start", 5, 10), "duration": widest("duration", 8, 9),
              "self": widest("self", 4, 9)}
    natural = max([4, *(_width(v.prefix) + _width(c["name"]) + (_width(c["note"]) + 1 if c["note"] else 0)
                        for v, c in cells)])
    shown = ["id", "service", "role", "kind", "start", "duration", "self", "waterfall"]

    def fixed() -> int:  # marks, then each shown column and its separating space
        return 3 + sum(widths[c] + 1 for c in shown if c != "waterfall")

    if width is None:  # not a terminal: everything, a fixed-width waterfall
        tree_w, bar_w = natural, _PIPE_BAR
    else:
        want = min(natural, _COMFORT_TREE)  # the span names come before the optional columns
        for column in _DROP_ORDER:
            if fixed() + want + (_MIN_BAR + 1 if "waterfall" in shown else 0) <= width:
                break
            shown.remove(column)
        room = width - fixed()
        if "waterfall" in shown:
            tree_w = max(min(natural, _MIN_TREE), min(natural, room - _MIN_BAR - 1))
            bar_w = max(_MIN_BAR, room - tree_w - 1)
        else:
            tree_w, bar_w = max(1, min(natural, room)), 0

    scale = f"0 … {format_duration_ns(total)}" if valid else ""
    titles = {"id": "id", "service": "service", "role": "role", "kind": "kind", "start": "start",
              "duration": "duration", "self": "self"}
    right = {"start", "duration", "self"}
    header_cells = ["mk", _fit("span", tree_w)]
    for column in shown:
        if column == "waterfall":
            header_cells.append(_fit("waterfall " + scale if bar_w >= 12 + len(scale) else "waterfall", bar_w))
        else:
            header_cells.append(_fit(titles[column], widths[column], right=column in right))
    lines: list[list[Segment]] = [[(" ".join(header_cells), "bold")]]
    styles = {"id": "dim", "service": "green", "role": "yellow", "kind": "dim", "start": "dim", "duration": "",
              "self": "dim"}
    rows = iter(cells)
    for item in kept:
        if not isinstance(item, _Visit):
            lines.append([(f"   ⋮ {item:,} spans elided (more than {max_rows:,} spans)", "dim italic")])
            continue
        visit, row = next(rows)
        span = spans[visit.index]
        is_critical = ids[visit.index] in critical
        is_error = str(span.get("status_code") or "").upper() in ("ERROR", "STATUS_CODE_ERROR", "2")
        label = _fit(visit.prefix + row["name"] + (" " + row["note"] if row["note"] else ""), tree_w)
        split = min(len(visit.prefix), len(label))
        bar_style = "red" if is_error else "magenta" if is_critical else "cyan"
        line: list[Segment] = [
            ("◆" if is_critical else " ", "bold magenta"),
            ("✗" if is_error else " ", "bold red"),
            (" ", ""),
            (label[:split], "dim"),
            (label[split:], "bold" if is_critical else ""),
            (" ", ""),
        ]
        for column in shown:
            if column == "waterfall":
                line.append((_bar(timings[visit.index], t0, total, bar_w), bar_style))
            else:
                line.append((_fit(row[column], widths[column], right=column in right) + " ", styles[column]))
        lines.append(line)
    return lines


def render_trace_tree(
    spans: Sequence[Mapping[str, Any]],
    *,
    critical: set[str] | None = None,
    self_ns: Mapping[str, int] | None = None,
    width: int | None = 120,
    max_rows: int | None = DEFAULT_MAX_ROWS,
    max_indent: int = MAX_INDENT,
) -> RenderableType:
    """Return the trace tree as a styled rich renderable (for a terminal).

    ``spans`` are dicts with ``span_id``, ``parent_span_id``, ``name``,
    ``service_name``, ``role``, ``kind``, ``start_ns``, ``end_ns`` and
    ``status_code``; ``critical`` holds the span ids on the critical path and
    ``self_ns`` the self time of each span id. ``width`` is the line width
    the columns and the waterfall are fitted to (``None``: no terminal, every
    column at its natural width and a 40-cell waterfall); ``max_rows=None`` shows every
    span. See the module docstring for the layout.
    """
    lines = _lines(spans, critical, self_ns, width, max_rows, max_indent)
    texts = []
    for segments in lines:
        text = Text(no_wrap=True, overflow="ellipsis", end="\n")
        for chunk, style in segments:
            text.append(chunk, style=style or None)
        text.rstrip()
        texts.append(text)
    return Group(*texts)


def render_trace_tree_text(
    spans: Sequence[Mapping[str, Any]],
    *,
    critical: set[str] | None = None,
    self_ns: Mapping[str, int] | None = None,
    width: int | None = 120,
    max_rows: int | None = DEFAULT_MAX_ROWS,
    max_indent: int = MAX_INDENT,
) -> str:
    """Return the trace tree as plain text (no ANSI codes), one line per span.

    Same arguments and layout as :func:`render_trace_tree`; for output that is
    not a terminal. Every line ends in ``\\n`` and has no trailing blanks.
    """
    lines = _lines(spans, critical, self_ns, width, max_rows, max_indent)
    return "".join("".join(chunk for chunk, _ in segments).rstrip(" ") + "\n" for segments in lines)
