"""Hostile strings shared by the terminal-safety tests: escapes, OSC links, rich markup, bidi, C1."""

from __future__ import annotations

#: Strings that must never reach a terminal raw (each test adds its own extras).
HOSTILE_BASE: list[str] = [
    "\x1b[2J",
    "\x1b]8;;http://evil\x07x\x1b]8;;\x07",
    "[link=http://evil]x[/link]",
    "[/x]",
    "\u202eabc",
    "\x9b31m",
    "a\rb",
    "nul\x00byte",
    "del\x7f",
]
