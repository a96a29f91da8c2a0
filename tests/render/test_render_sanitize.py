"""Tests for fabric_trace.render.sanitize."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from rich.table import Table

from fabric_trace.render.sanitize import ELLIPSIS, safe_markup, safe_rich_text, safe_text

from hostile import HOSTILE_BASE  # noqa: E402 - tests/hostile.py

HOSTILE = [
    *HOSTILE_BASE,
    "tab\there",
    "line\nbreak",
    "\u2066iso\u2069 \u200e\u200f\u061c",
    "sep\u2028para\u2029",
    "bom\ufeffzw\u200b",
    "lone \ud800 surrogate",
    "[bold red]styled[/]",
    ":smile: emoji code",
]

BIDI_AND_FORMAT = set(
    "\u061c\u200b\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff\ufff9\ufffa\ufffb"
)


def unsafe_chars(text: str, *, allow_newline: bool = True) -> list[str]:
    """Return the characters of ``text`` that must never reach a terminal."""
    bad = []
    for ch in text:
        code = ord(ch)
        if ch == "\n" and allow_newline:
            continue
        if code < 0x20 or 0x7F <= code <= 0x9F or ch in BIDI_AND_FORMAT or 0xD800 <= code <= 0xDFFF:
            bad.append(ch)
    return bad


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_become_visible_and_single_line(value: str) -> None:
    out = safe_text(value)
    assert unsafe_chars(out, allow_newline=False) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("\x1b[2J", "\\x1b[2J"),
        ("\u202eabc", "\\u202eabc"),
        ("\x9b31m", "\\x9b31m"),
        ("a\rb", "a\\rb"),
        ("a\tb", "a b"),
        ("a\nb", "a\\nb"),
        ("\x00\x7f", "\\x00\\x7f"),
        ("\ud800", "\\ud800"),
        ("plain ünïcødé 漢字", "plain ünïcødé 漢字"),
        (None, ""),
        (42, "42"),
        (b"\xffok\x1b", "\\xffok\\x1b"),
    ],
)
def test_escapes(value: object, expected: str) -> None:
    assert safe_text(value) == expected


def test_multiline_keeps_newline_only() -> None:
    assert safe_text("a\nb\x1b", multiline=True) == "a\nb\\x1b"


def test_truncation_adds_ellipsis_and_respects_max_len() -> None:
    assert safe_text("abcdef", 4) == "abc" + ELLIPSIS
    assert safe_text("abcd", 4) == "abcd"
    assert safe_text("x" * 10_000_000, 200) == "x" * 199 + ELLIPSIS
    assert safe_text("abcdef", None) == "abcdef"


def test_truncation_never_splits_an_escape() -> None:
    out = safe_text("ab\x1bcdef", 5)
    assert out == "ab" + ELLIPSIS  # "\x1b" (4 chars) does not fit before the ellipsis
    assert safe_text("\x1b", 4) == "\\x1b"


def test_max_len_must_be_positive() -> None:
    with pytest.raises(ValueError):
        safe_text("x", 0)


@given(st.text(alphabet=st.characters(codec=None, exclude_categories=())), st.integers(1, 50))
def test_property_output_is_safe_and_bounded(value: str, max_len: int) -> None:
    out = safe_text(value, max_len)
    assert len(out) <= max_len
    assert unsafe_chars(out, allow_newline=False) == []
    full = safe_text(value, None)
    assert unsafe_chars(full, allow_newline=False) == []
    if len(full) <= max_len:
        assert out == full
    else:
        assert out.endswith(ELLIPSIS) and full.startswith(out[: -len(ELLIPSIS)])


@pytest.mark.parametrize("value", HOSTILE)
def test_rich_text_is_never_markup(value: str) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=200, force_terminal=True, color_system="truecolor")
    table = Table(title=safe_rich_text(value))
    table.add_column(safe_rich_text(value))
    table.add_row(safe_rich_text(value, "bold"))
    console.print(table)  # a MarkupError would be raised here
    console.print(safe_rich_text(value))
    out = buffer.getvalue()
    assert "\x1b]" not in out  # no OSC (hyperlink) sequence
    assert "\x1b[2J" not in out
    if value.startswith("[link="):
        assert "[link=http://evil]x[/link]" in out
    if value == "[/x]":
        assert "[/x]" in out


@pytest.mark.parametrize("value", [*HOSTILE, "trailing backslash \\", "[b]x[/b]\\"])
def test_safe_markup_prints_literally_inside_markup(value: str) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=300, force_terminal=False, color_system=None)
    console.print(f"[bold]file[/bold] {safe_markup(value)}: done")  # no MarkupError
    out = buffer.getvalue()
    assert unsafe_chars(out) == []
    expected = f"file {safe_text(value)}: done\n"
    if value.endswith("\\"):  # rich.markup.escape doubles a trailing backslash (cosmetic)
        expected = expected.replace("\\:", "\\\\:")
    if ":smile:" in value:  # emoji codes still become emoji inside markup strings
        return
    assert out == expected
