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

#: Strings that must never become markup or script in an HTML page (the HTML report's tests).
HOSTILE_HTML: list[str] = [
    "</script><script>window.__pwned=1</script>",
    "<img src=x onerror=\"window.__pwned=1\">",
    "\"><svg onload=window.__pwned=1>",
    "'><iframe src=javascript:window.__pwned=1>",
    "javascript:window.__pwned=1",
    "</style><style>body{display:none}</style>",
    "<!-- ]]> {{ 7*7 }} {% raw %} ${x} &amp; &lt;",
    "</title></svg></text><a href=//evil>",
    "\u2028\u2029</script>",
]
