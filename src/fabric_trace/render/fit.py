"""Fit a table into the width of a terminal (docs/output-formats.md, "Tables at any width").

A table that is wider than the terminal is narrowed step by step, stopping as
soon as it fits:

1. headers wrap at spaces (``Critical total`` over two lines);
2. trace and span ids are shortened to their shortest prefix that is still
   unique in the column (at least 8 characters) - a prefix that
   ``fabric trace show`` accepts;
3. free text that is not a label (messages, service lists, protocols) is cut
   with ``…``, the widest first, as far as needed but not below 16 characters (text whose values all have one length, such as
   timestamps, up to 24 characters, is never cut, only dropped in step 5);
4. label columns (workflow, role, operation or span name, finding kind,
   store, zone, severity) are cut likewise, not below 20 characters;
5. the columns that are neither labels nor numbers are dropped, rightmost first;
6. number columns are dropped, rightmost first (a report lists its most
   important numbers first);
7. labels are cut further, not below 8 characters;
8. label columns are dropped, rightmost first; the first column always stays.

Numbers are never cut, so a value always keeps its unit. Dropped columns are
named in a note under the table. Without a width (output that is not a
terminal) nothing is cut or dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.cells import cell_len
from rich.text import Text

from fabric_trace.render.sanitize import ELLIPSIS

__all__ = ["COLUMN_GAP", "LABEL_KEYS", "FittedTable", "fit_table", "unique_prefix_len"]

#: Spaces between two columns.
COLUMN_GAP = 2

#: Column keys that identify a row (kept longest; the first column is always one).
LABEL_KEYS = frozenset({
    "workflow", "key", "role", "operation", "name", "span_name", "root_name", "kind", "rule", "access_type",
    "store", "zone", "from_zone", "to_zone", "severity", "max_severity", "analyzer", "check", "metric",
})

#: Shortest id prefix shown.
MIN_ID = 8
#: Widths text is cut to in steps 3, 4 and 7.
OTHER_TEXT_WIDTH = 16
LABEL_WIDTH = 20
MIN_LABEL_WIDTH = 8

LABEL, NUMBER, IDENT, OTHER = "label", "number", "id", "other"


@dataclass
class FittedTable:
    """Which columns to show and how wide each is."""

    columns: list[int]
    """Indices of the shown columns, in order."""
    widths: dict[int, int]
    """Width of each shown column (cells wider than it are cut with ``…``)."""
    headers: dict[int, str]
    """Header text of each shown column (may contain line breaks)."""
    dropped: list[int] = field(default_factory=list)
    """Indices of the columns left out, in table order."""


def unique_prefix_len(values: Sequence[str], minimum: int = MIN_ID) -> int:
    """The shortest prefix length (at least ``minimum``) that keeps distinct ``values`` distinct."""
    distinct = sorted(set(values))
    longest = max((len(v) for v in distinct), default=0)
    need = minimum
    for a, b in zip(distinct, distinct[1:]):
        common = 0
        for x, y in zip(a, b):
            if x != y:
                break
            common += 1
        need = max(need, common + 1)
    return min(need, longest) if longest else minimum


def _wrap_header(header: str, width: int) -> str:
    """The header broken at spaces so that no line is wider than ``width`` (when possible)."""
    words, lines = header.split(" "), [""]
    for word in words:
        candidate = f"{lines[-1]} {word}" if lines[-1] else word
        if cell_len(candidate) <= width or not lines[-1]:
            lines[-1] = candidate
        else:
            lines.append(word)
    return "\n".join(lines)


def _header_min(header: str) -> int:
    return max((cell_len(w) for w in header.split(" ")), default=0)


def cut(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells, ending in ``…`` when it was cut."""
    if cell_len(text) <= width:
        return text
    t = Text(text)
    t.truncate(max(1, width), overflow="ellipsis")
    plain = t.plain
    return plain if plain.endswith(ELLIPSIS) or width < 1 else plain[:-1] + ELLIPSIS


def fit_table(keys: Sequence[str], headers: Sequence[str], classes: Sequence[str],
              cells: Sequence[Sequence[str]], width: int) -> FittedTable:
    """Choose columns and widths so that the table is at most ``width`` cells wide.

    ``classes`` says per column: ``label``, ``number``, ``id`` or ``other``;
    ``cells`` holds the display text of each row (missing values already replaced).
    """
    n = len(headers)
    natural = [max([cell_len(headers[i])] + [cell_len(r[i]) for r in cells]) for i in range(n)]
    content = [max([0] + [cell_len(r[i]) for r in cells]) for i in range(n)]
    widths = dict(enumerate(natural))
    shown = list(range(n))
    dropped: list[int] = []

    def total() -> int:
        return sum(widths[i] for i in shown) + COLUMN_GAP * max(0, len(shown) - 1)

    # text whose values all have one length (timestamps, codes) is dropped, never cut
    uniform = [classes[i] == OTHER and len({cell_len(r[i]) for r in cells}) == 1 and content[i] <= 24
               for i in range(n)]

    def shrink(cls: str, to: int) -> None:
        for i in sorted((i for i in shown if classes[i] == cls and not uniform[i]), key=lambda i: -widths[i]):
            excess = total() - width
            if excess <= 0:
                return
            widths[i] = max(1, min(widths[i], max(to, widths[i] - excess)))

    def drop(cls: str, keep_first: bool = True) -> None:
        for i in reversed([i for i in shown if classes[i] == cls]):
            if total() <= width:
                return
            if keep_first and i == shown[0]:
                continue
            shown.remove(i)
            dropped.append(i)

    steps = [
        # 1. wrap headers: a column is as wide as its widest cell or its longest header word
        lambda: [widths.__setitem__(i, max(content[i], _header_min(headers[i]))) for i in shown],
        # 2. unique id prefixes
        lambda: [widths.__setitem__(i, min(widths[i], max(unique_prefix_len([r[i] for r in cells]),
                                                          _header_min(headers[i]))))
                 for i in shown if classes[i] == IDENT],
        lambda: shrink(OTHER, OTHER_TEXT_WIDTH),
        lambda: shrink(LABEL, LABEL_WIDTH),
        lambda: drop(OTHER),
        lambda: drop(NUMBER),
        lambda: shrink(LABEL, MIN_LABEL_WIDTH),
        lambda: drop(LABEL),
    ]
    for step in steps:
        if total() <= width:
            break
        step()
    heads = {i: _wrap_header(headers[i], widths[i]) if cell_len(headers[i]) > widths[i] else headers[i]
             for i in shown}
    return FittedTable(shown, {i: widths[i] for i in shown}, heads, sorted(dropped))
