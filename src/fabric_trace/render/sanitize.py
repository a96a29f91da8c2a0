"""Make untrusted strings safe to show in a terminal, a CSV file or Markdown.

Everything that comes from span data (span names, attribute values, service
names, SQL results, even column names of an ad-hoc query) is attacker
controlled: an exporter can put ``ESC [2J`` (clear screen), an OSC 8 hyperlink,
a C1 ``CSI`` (U+009B) or a right-to-left override (U+202E, "Trojan Source")
into a span name. Rich does not neutralise ESC (it strips only BEL, BS, VT, FF
and CR) and parses ``[link=...]`` / ``[/x]`` as markup in plain ``str`` cells,
so fabric never hands a raw string to rich: it goes through :func:`safe_text`
(visible escapes) and, for rich, :func:`safe_rich_text` (a ``Text`` object,
never parsed as markup) or, inside a markup string, :func:`safe_markup`.

Characters made visible (``\\xNN`` below U+0100, ``\\uNNNN`` above):

* C0 controls U+0000-U+001F, DEL U+007F and C1 controls U+0080-U+009F;
  ``\\t`` becomes one space and ``\\n`` becomes the two characters ``\\n``
  (unless ``multiline=True`` keeps it), ``\\r`` becomes ``\\r``;
* bidirectional controls U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069;
* line/paragraph separators U+2028, U+2029 (some terminals break lines there);
* invisible format characters U+200B, U+2060-U+2064, U+FEFF, U+FFF9-U+FFFB;
* lone surrogates U+D800-U+DFFF (they cannot even be encoded to UTF-8).

A backslash already present in the input is kept as is, so ``\\x1b`` in the
output may be a literal text or an escaped ESC; the JSON format is the
lossless one.
"""

from __future__ import annotations

import re

from rich.markup import escape
from rich.style import Style
from rich.text import Text

__all__ = ["DEFAULT_MAX_LEN", "ELLIPSIS", "UNSAFE_CHARS", "safe_markup", "safe_rich_text", "safe_text"]

#: Default maximum length (in characters) of one displayed value.
DEFAULT_MAX_LEN = 200

#: Appended to a value that was cut short.
ELLIPSIS = "…"

#: Every character :func:`safe_text` replaces by a visible escape.
UNSAFE_CHARS = re.compile(
    "[\x00-\x1f\x7f-\x9f"
    "\u061c\u200b\u200e\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069"
    "\ufeff\ufff9-\ufffb\ud800-\udfff]"
)


def _escape_char(char: str, *, multiline: bool) -> str:
    """Return the visible replacement of one unsafe character."""
    if char == "\t":
        return " "
    if char == "\n":
        return "\n" if multiline else "\\n"
    if char == "\r":
        return "\\r"
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def _to_str(value: object) -> str:
    """Turn any value into the string to be escaped (``None`` -> ``""``)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "backslashreplace")
    return str(value)


def safe_text(value: object, max_len: int | None = DEFAULT_MAX_LEN, *, multiline: bool = False) -> str:
    """Return ``value`` as a single-line string that is safe to display.

    Unsafe characters (see the module docstring) become visible escapes such
    as ``\\x1b`` or ``\\u202e``; ``\\t`` becomes a space and ``\\n`` becomes
    ``\\n`` (kept as a real newline when ``multiline`` is true). ``None`` is
    the empty string and bytes are decoded as UTF-8 with backslash escapes.

    If the escaped text is longer than ``max_len`` characters it is cut to
    ``max_len`` characters ending in ``…``; an escape sequence is never cut in
    half. ``max_len=None`` disables truncation.
    """
    if max_len is not None and max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    text = _to_str(value)
    if max_len is None:
        return UNSAFE_CHARS.sub(lambda m: _escape_char(m.group(), multiline=multiline), text)
    if len(text) <= max_len and not UNSAFE_CHARS.search(text):
        return text
    # Every input character yields at least one output character, so only the
    # first max_len + 1 input characters can matter.
    clipped = text[: max_len + 1]
    pieces = [
        _escape_char(ch, multiline=multiline) if UNSAFE_CHARS.match(ch) else ch
        for ch in clipped
    ]
    total = sum(len(p) for p in pieces)
    if total <= max_len:
        return "".join(pieces)
    kept: list[str] = []
    used = 0
    for piece in pieces:
        if used + len(piece) > max_len - len(ELLIPSIS):
            break
        kept.append(piece)
        used += len(piece)
    return "".join(kept) + ELLIPSIS


def safe_rich_text(
    value: object,
    style: str | Style | None = None,
    *,
    max_len: int | None = DEFAULT_MAX_LEN,
    multiline: bool = False,
) -> Text:
    """Return ``value`` escaped by :func:`safe_text` as a rich ``Text``.

    A ``Text`` is never parsed as console markup, so ``[link=...]`` or
    ``[/x]`` in span data shows literally. ``style`` must come from fabric's
    own code, never from span data.
    """
    return Text(safe_text(value, max_len, multiline=multiline), style=style or "")


def safe_markup(value: object, max_len: int | None = DEFAULT_MAX_LEN) -> str:
    """Return ``value`` escaped by :func:`safe_text` *and* for rich console markup.

    For the few places that must build a markup string (``console.print(f"...")``,
    a progress-bar description): ``[link=...]`` and ``[/x]`` are backslash-escaped
    so they print literally. Prefer :func:`safe_rich_text` where a ``Text`` fits.
    """
    return escape(safe_text(value, max_len))
