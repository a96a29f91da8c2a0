"""Tests for fabric_trace.render.formats (and the cells/JSON helpers behind it)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from fabric_trace.render.cells import format_duration_ns, format_value
from fabric_trace.render.formats import (
    OutputFormat,
    render,
    render_rows,
    render_rows_to_console,
    render_to_console,
)
from fabric_trace.render.jsonify import to_jsonable
from fabric_trace.model import Column, Report, Table

from hostile import HOSTILE_BASE  # noqa: E402 - tests/hostile.py

HOSTILE = [
    *HOSTILE_BASE,
    "tab\there",
    "pipe|and\nnewline",
    "\u2066iso\u2069",
    "=HYPERLINK(\"http://evil\")",
    "**bold** <b>x</b> &#x202E; `code`",
]
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029")
SGR = re.compile(r"\x1b\[[0-9;]*m")


def assert_terminal_safe(text: str) -> None:
    """No control character but ``\\n``, no C1/DEL, no bidi control, no surrogate."""
    bad = [
        ch
        for ch in text
        if (ord(ch) < 0x20 and ch != "\n") or 0x7F <= ord(ch) <= 0x9F or ch in BIDI or 0xD800 <= ord(ch) <= 0xDFFF
    ]
    assert bad == [], f"unsafe characters {bad!r} in {text!r}"


COLUMNS = [
    Column("name", "Name [b]"),
    Column("service", "Service"),
    Column("dur", "Duration", "ms"),
    Column("share", "Share", "pct"),
    Column("self", "Self", "ns"),
    Column("count", "Count", "int"),
    Column("ratio", "Ratio", "float"),
    Column("error", "Error", "bool"),
    Column("span_id", "Span", "id"),
]


def hostile_report() -> Report:
    rows: list[dict[str, Any]] = [
        {
            "name": text,
            "service": text,
            "dur": 1234.5,
            "share": 12.34,
            "self": 1_234_567,
            "count": 12345,
            "ratio": 0.5,
            "error": i % 2 == 0,
            "span_id": text,
        }
        for i, text in enumerate(HOSTILE)
    ]
    rows.append({"name": None})  # every other value missing
    return Report(
        title="report " + HOSTILE[0],
        tables=[
            Table(name="spans\x1b", title="Spans " + HOSTILE[2], columns=COLUMNS, rows=rows),
            Table(name="empty", title=HOSTILE[3], columns=COLUMNS[:2], rows=[]),
        ],
        data={"spans": [{"name": t, "n": i} for i, t in enumerate(HOSTILE)], "title": HOSTILE[4]},
        notes=["note " + HOSTILE[1]],
    )


def test_output_format_is_the_documented_set() -> None:
    assert [f.value for f in OutputFormat] == ["table", "json", "csv", "markdown"]
    assert str(OutputFormat.json) == "json"
    assert OutputFormat("csv") is OutputFormat.csv


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_every_format_renders_reports_and_rows(fmt: OutputFormat) -> None:
    report = hostile_report()
    for out in (render(report, fmt), render(report, fmt.value), render_rows(["a"], [(HOSTILE[0],)], fmt)):
        assert isinstance(out, str) and out.endswith("\n")
        assert_terminal_safe(out)


def test_unknown_format_is_rejected() -> None:
    with pytest.raises(ValueError):
        render(hostile_report(), "yaml")
    with pytest.raises(ValueError):
        render_rows(["a"], [], "html")


def test_table_format_is_plain_and_markup_is_literal() -> None:
    out = render(hostile_report(), OutputFormat.table, width=400)
    assert "\x1b" not in out
    assert "[link=http://evil]x[/link]" in out
    assert "[/x]" in out
    assert "\\x1b[2J" in out and "\\u202eabc" in out and "\\x9b31m" in out
    assert "1,234.5 ms" in out and "12.3%" in out and "1.23 ms" in out and "12,345" in out
    assert "—" in out and "(no rows)" in out
    assert all(line == line.rstrip() for line in out.splitlines())


def test_table_width_is_respected() -> None:
    out = render(hostile_report(), OutputFormat.table, width=60)
    assert max(len(line) for line in out.splitlines()) <= 60


def test_json_is_the_data_document_round_trips_and_is_deterministic() -> None:
    report = hostile_report()
    out = render(report, OutputFormat.json)
    assert out.isascii()
    assert json.loads(out) == report.data  # lossless: no escaping of the data itself
    assert render(hostile_report(), OutputFormat.json) == out
    reordered = Report("x", [], {"title": HOSTILE[4], "spans": report.data["spans"]})  # type: ignore[index]
    assert render(reordered, OutputFormat.json) == out  # keys sorted


def test_json_value_conversions() -> None:
    data = {
        "int": 2**70,
        "float": 1.5,
        "nan": float("nan"),
        "inf": float("-inf"),
        "none": None,
        "decimal": Decimal("1.25"),
        "when": dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc),
        "day": dt.date(2024, 5, 1),
        "interval": dt.timedelta(seconds=90),
        "blob": b"\x00\xff",
        "uuid": uuid.UUID(int=1),
        "set": {3, 1, 2},
        "tuple": (1, "a"),
        "nested": {1: {"b": [OutputFormat.csv]}},
    }
    assert json.loads(render(Report("r", [], data), "json")) == {
        "int": 2**70,
        "float": 1.5,
        "nan": None,
        "inf": None,
        "none": None,
        "decimal": 1.25,
        "when": "2024-05-01T12:00:00+00:00",
        "day": "2024-05-01",
        "interval": 90.0,
        "blob": "AP8=",
        "uuid": "00000000-0000-0000-0000-000000000001",
        "set": [1, 2, 3],
        "tuple": [1, "a"],
        "nested": {"1": {"b": ["csv"]}},
    }


def test_json_numpy_and_arrow_scalars() -> None:
    np = pytest.importorskip("numpy")
    pa = pytest.importorskip("pyarrow")
    converted = to_jsonable([np.int64(3), np.float32(0.5), np.bool_(True), np.array([1, 2]), pa.scalar("x")])
    assert converted == [3, 0.5, True, [1, 2], "x"]
    assert type(converted[0]) is int and type(converted[2]) is bool


def test_json_too_deep_is_a_clear_error() -> None:
    deep: list[Any] = []
    node = deep
    for _ in range(1000):
        node.append([])
        node = node[0]
    with pytest.raises(ValueError, match="flat"):
        render(Report("r", [], deep), "json")


def test_csv_parses_with_sections_and_raw_numbers() -> None:
    out = render(hostile_report(), OutputFormat.csv)
    first, second = out.split("\n\n")
    assert first.startswith("# spans\\x1b\n") and second.startswith("# empty\n")
    rows = list(csv.reader(io.StringIO(first.split("\n", 1)[1])))
    assert rows[0] == [c.key for c in COLUMNS]
    assert rows[1][:8] == ["\\x1b[2J", "\\x1b[2J", "1234.5", "12.34", "1234567", "12345", "0.5", "true"]
    assert len(rows) == 1 + len(HOSTILE) + 1
    assert rows[-1] == [""] * len(COLUMNS)
    formula = rows[1 + HOSTILE.index('=HYPERLINK("http://evil")')]
    assert formula[0] == "'=HYPERLINK(\"http://evil\")"
    assert list(csv.reader(io.StringIO(second.split("\n", 1)[1]))) == [["name", "service"]]


def test_csv_single_table_has_no_section_marker() -> None:
    report = Report("r", [Table("t", "T", [Column("a", "A", "int")], [{"a": 1}, {"a": None}])], {})
    assert render(report, "csv") == "a\n1\n\"\"\n"  # csv quotes a lone empty field


def test_markdown_pipe_structure() -> None:
    out = render(hostile_report(), OutputFormat.markdown)
    lines = out.splitlines()
    assert lines[0] == "# report \\\\x1b\\[2J"
    table = [line for line in lines if line.startswith("|")]
    unescaped_pipe = re.compile(r"(?<!\\)\|")
    widths = {len(unescaped_pipe.findall(line)) for line in table}
    assert widths == {len(COLUMNS) + 1, 3}  # both tables, every row with the right cell count
    assert table[1].startswith("| --- | --- | ---: |")
    assert "## Spans \\[link=http://evil\\]x\\[/link\\]" in lines
    assert "pipe\\|and\\\\nnewline" in out
    assert "<b>" not in out and "&#x" not in out and "**" not in out
    assert "_(no rows)_" in lines


def test_cell_formatting_by_kind() -> None:
    assert format_value(1234.5, "ms") == "1,234.5 ms"
    assert format_value(12.34, "pct") == "12.3%"
    assert format_value(1_500_000_000, "ns") == "1.50 s"
    assert format_value(125_000_000_000, "ns") == "2m 05.0s"
    assert format_value(999, "ns") == "999 ns"
    assert format_value(12345, "int") == "12,345"
    assert format_value(True, "bool") == "yes"
    assert format_value(None, "ms") is None
    assert format_value("n/a", "ms") == "n/a"  # wrong type: shown, not raised
    assert format_value("ab12", "id") == "ab12"
    assert format_duration_ns(-2_000) == "-2.00 µs"
    assert format_duration_ns(7_384_000_000_000) == "2h 03m"


def test_render_rows_formats() -> None:
    columns = ["n", "n", "text", "missing"]
    rows = [(1, 2.5, HOSTILE[2], None), (3, None, "x|y", None)]
    as_json = json.loads(render_rows(columns, rows, "json"))
    assert as_json == [
        {"n": 1, "n_2": 2.5, "text": HOSTILE[2], "missing": None},
        {"n": 3, "n_2": None, "text": "x|y", "missing": None},
    ]
    assert list(csv.reader(io.StringIO(render_rows(columns, rows, "csv")))) == [
        columns,
        ["1", "2.5", HOSTILE[2], ""],
        ["3", "", "x|y", ""],
    ]
    markdown = render_rows(columns, rows, "markdown").splitlines()
    assert markdown[0] == "| n | n | text | missing |"
    assert markdown[1] == "| ---: | ---: | --- | --- |"
    assert markdown[3] == "| 3 | NULL | x\\|y | NULL |"
    table = render_rows(columns, rows, "table")
    assert HOSTILE[2] in table and "NULL" in table
    with pytest.raises(ValueError):
        render_rows(["a", "b"], [(1,)], "csv")


def test_render_rows_from_duckdb_values() -> None:
    duckdb = pytest.importorskip("duckdb")
    cursor = duckdb.connect().execute(
        "select 1.5::decimal(10,2) d, interval 1 day i, map {1: 2} m, {'x': 1} s, 'x'::blob b, "
        "'\x1b[2J' t, timestamp '2024-01-01 00:00:00' ts"
    )
    columns = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    for fmt in OutputFormat:
        assert_terminal_safe(render_rows(columns, rows, fmt))
    assert json.loads(render_rows(columns, rows, "json")) == [
        {"d": 1.5, "i": 86400.0, "m": {"1": 2}, "s": {"x": 1}, "b": "eA==", "t": "\x1b[2J", "ts": "2024-01-01T00:00:00"}
    ]


def colour_console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    console = Console(file=buffer, width=160, force_terminal=True, color_system="truecolor", markup=True)
    return console, buffer


def test_render_to_console_styles_but_escapes() -> None:
    console, buffer = colour_console()
    render_to_console(hostile_report(), console)
    render_rows_to_console(["c"], [(h,) for h in HOSTILE], console)
    out = buffer.getvalue()
    assert SGR.search(out)  # it is coloured...
    assert_terminal_safe(SGR.sub("", out))  # ...and colour codes are the only escapes
    assert "[link=http://evil]x[/link]" in SGR.sub("", out)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(codec=None, exclude_categories=())), min_size=1, max_size=5))
def test_property_any_text_is_safe_in_every_format(texts: list[str]) -> None:
    rows = [{"name": t, "dur": i} for i, t in enumerate(texts)]
    report = Report(texts[0], [Table(texts[0], texts[-1], [Column("name", texts[0]), Column("dur", "D", "ms")], rows)],
                    {"names": texts})
    for fmt in OutputFormat:
        assert_terminal_safe(render(report, fmt))
        assert_terminal_safe(render_rows(["c"], [(t,) for t in texts], fmt))
    assert json.loads(render(report, "json")) == {"names": texts}
    parsed = list(csv.reader(io.StringIO(render(report, "csv"))))
    assert len(parsed) == 1 + len(texts)
