"""The trust map renderers: Mermaid, Graphviz DOT and JSON (docs/trust.md, "The trust map").

They render the dict of :func:`fabric_trace.analyzers.trust.report.trust_map`
and escape every label for their language *and* for a terminal: span data
never becomes Mermaid/Graphviz syntax, HTML or an escape sequence.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, assert_never

from fabric_trace.render.sanitize import safe_text


class MapFormat(str, Enum):
    """The values of ``--map``."""

    mermaid = "mermaid"
    dot = "dot"
    json = "json"

    def __str__(self) -> str:
        return self.value


_MERMAID_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:/@+-_")


def mermaid_label(value: object) -> str:
    """Text safe inside a quoted Mermaid label: sanitized, then every other character as ``#NNN;``."""
    return "".join(c if c in _MERMAID_SAFE else f"#{ord(c)};" for c in safe_text(value, 120))


def dot_label(value: object) -> str:
    """Text safe inside a quoted Graphviz string: sanitized, backslashes and quotes escaped."""
    return safe_text(value, 120).replace("\\", "\\\\").replace('"', '\\"')


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _edge_text(e: dict[str, Any]) -> list[str]:
    parts = [_plural(e["calls"], "call")]
    if e["errors"]:
        parts.append(_plural(e["errors"], "error"))
    if e["plaintext"]:
        parts.append(f"{e['plaintext']:,} plaintext http")
    parts.append("via " + ", ".join(str(p) for p in e["protocols"]))
    return parts


_KIND_STYLE = {
    "user": ("fill:#eef,stroke:#336", "ellipse", "#eeeeff"),
    "internal": ("fill:#efe,stroke:#363", "box", "#eeffee"),
    "provider": ("fill:#ffe,stroke:#663", "box", "#ffffdd"),
    "external": ("fill:#fee,stroke:#933", "box", "#ffeeee"),
}


def render_map(data: dict[str, Any], fmt: MapFormat | str) -> str:
    """Render :func:`~fabric_trace.analyzers.trust.report.trust_map` output as Mermaid, Graphviz DOT, or JSON (ends with a newline)."""
    fmt = MapFormat(fmt)
    if fmt is MapFormat.json:
        from fabric_trace.render.jsonify import dumps

        return dumps(data)
    ids = {n["id"]: f"z{i}" for i, n in enumerate(data["nodes"])}
    if fmt is MapFormat.mermaid:
        lines = ["flowchart LR"]
        for kind, (style, _, _) in _KIND_STYLE.items():
            lines.append(f"  classDef {kind} {style}")
        for n in data["nodes"]:
            label = mermaid_label(n["id"]) + "<br/>" + mermaid_label(f"{n['kind']}, trust {n['trust_level']}")
            lines.append(f'  {ids[n["id"]]}["{label}"]:::{n["kind"] if n["kind"] in _KIND_STYLE else "external"}')
        for e in data["edges"]:
            label = "<br/>".join(mermaid_label(p) for p in _edge_text(e))
            lines.append(f'  {ids[e["from"]]} -->|"{label}"| {ids[e["to"]]}')
        return "\n".join(lines) + "\n"
    if fmt is MapFormat.dot:
        lines = ["digraph trust {", "  rankdir=LR;", '  node [shape=box, style="rounded,filled", fontname="Helvetica"];',
                 '  edge [fontname="Helvetica", fontsize=10];']
        for n in data["nodes"]:
            _, shape, colour = _KIND_STYLE.get(n["kind"], _KIND_STYLE["external"])
            label = dot_label(n["id"]) + "\\n" + dot_label(f"{n['kind']}, trust {n['trust_level']}")
            lines.append(f'  {ids[n["id"]]} [label="{label}", shape={shape}, fillcolor="{colour}"];')
        for e in data["edges"]:
            label = "\\n".join(dot_label(p) for p in _edge_text(e))
            style = ', color="#cc3333"' if e["plaintext"] else ""
            lines.append(f'  {ids[e["from"]]} -> {ids[e["to"]]} [label="{label}"{style}];')
        lines.append("}")
        return "\n".join(lines) + "\n"
    assert_never(fmt)
