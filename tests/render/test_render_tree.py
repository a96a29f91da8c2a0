"""Tests for fabric_trace.render.tree (``fabric trace show``)."""

from __future__ import annotations

import io
import re
import sys
from typing import Any

import pytest
from rich.console import Console

from fabric_trace.render.tree import render_trace_tree, render_trace_tree_text

MS = 1_000_000
T0 = 1_700_000_000_000_000_000
from hostile import HOSTILE_BASE  # noqa: E402 - tests/hostile.py

HOSTILE = [
    *HOSTILE_BASE,
    "tab\there\nnewline",
]
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029")
SGR = re.compile(r"\x1b\[[0-9;]*m")


def assert_terminal_safe(text: str) -> None:
    bad = [ch for ch in text if (ord(ch) < 0x20 and ch != "\n") or 0x7F <= ord(ch) <= 0x9F or ch in BIDI]
    assert bad == [], f"unsafe characters {bad!r}"


def span(span_id: str, parent: str | None, start_ms: float, end_ms: float, **extra: Any) -> dict[str, Any]:
    base = {
        "span_id": span_id,
        "parent_span_id": parent,
        "name": f"op-{span_id}",
        "service_name": "svc",
        "role": "agent",
        "kind": "INTERNAL",
        "start_ns": T0 + int(start_ms * MS),
        "end_ns": T0 + int(end_ms * MS),
        "status_code": "UNSET",
    }
    base.update(extra)
    return base


# root  |------------------------------|   0..100 ms   (critical)
# llm     |--------------------|           5..70       (critical)
# tool                            |---|    75..90      (ERROR)
# db         |----|                        10..20      (child of llm)
SMALL = [
    span("root", None, 0, 100, name="agent.run", kind="SERVER"),
    span("tool", "root", 75, 90, name="tool.search", role="tool", kind="CLIENT", status_code="ERROR"),
    span("llm", "root", 5, 70, name="llm.call", role="llm", kind="CLIENT"),
    span("db", "llm", 10, 20, name="db.query", role="db"),
]


def body(text: str) -> list[str]:
    return text.splitlines()[1:]  # without the header


def test_tree_order_markers_and_columns() -> None:
    out = render_trace_tree_text(SMALL, critical={"root", "llm"}, self_ns={"root": 15 * MS}, width=120)
    lines = body(out)
    assert len(lines) == 4
    assert lines[0].startswith("◆  agent.run")
    assert lines[1].startswith("◆  ├─ llm.call")
    assert lines[2].startswith("   │  └─ db.query")
    assert lines[3].startswith(" ✗ └─ tool.search")
    assert "15.0 ms" in lines[0] and "100.0 ms" in lines[0] and "server" in lines[0]
    assert "waterfall 0 … 100.0 ms" in out.splitlines()[0]
    assert all(len(line) <= 120 for line in out.splitlines())


def test_waterfall_bars_are_scaled() -> None:
    out = render_trace_tree_text(SMALL, width=120)
    header, *lines = out.splitlines()
    bar_start = header.index("waterfall")
    bar_width = 120 - bar_start
    root_bar = lines[0][bar_start:]
    assert root_bar == "█" * bar_width  # the root spans the whole trace
    tool_bar = lines[3][bar_start:]
    assert tool_bar.startswith(" " * int(bar_width * 0.75))
    assert 0 < len(tool_bar.strip()) <= bar_width * 0.15 + 1


def test_orphans_self_parents_and_cycles_each_shown_once() -> None:
    spans = [
        *SMALL,
        span("orphan", "missing-parent", 30, 40),
        span("self", "self", 50, 60),
        span("c1", "c2", 20, 30),
        span("c2", "c1", 22, 25),
        span("untimed", "root", 0, 0, start_ns=0, end_ns=0),
    ]
    out = render_trace_tree_text(spans, width=140)
    lines = body(out)
    assert len(lines) == len(spans)
    for s in spans:
        assert sum(f"op-{s['span_id']}" in line or s["name"] in line for line in lines) >= 1
    assert any("op-orphan (orphan)" in line for line in lines)
    assert any("op-self (self-parent)" in line for line in lines)
    assert any("op-c1 (cycle)" in line for line in lines)
    untimed = next(line for line in lines if "op-untimed" in line)
    assert "—" in untimed and "█" not in untimed


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_span_data_is_escaped(hostile: str) -> None:
    spans = [
        span("root", None, 0, 10, name=hostile, service_name=hostile, role=hostile, kind=hostile),
        span("child", "root", 1, 2, name=hostile, status_code=hostile),
    ]
    text = render_trace_tree_text(spans, critical={"root"}, width=100)
    assert_terminal_safe(text)
    buffer = io.StringIO()
    console = Console(file=buffer, width=100, force_terminal=True, color_system="truecolor", markup=True)
    console.print(render_trace_tree(spans, critical={"root"}, width=100))  # no MarkupError
    coloured = buffer.getvalue()
    assert SGR.search(coloured)
    assert_terminal_safe(SGR.sub("", coloured))
    if hostile.startswith("[link"):
        assert hostile in text and hostile in SGR.sub("", coloured)


def test_empty_trace() -> None:
    assert render_trace_tree_text([], width=80) == "(no spans)\n"


def chain(n: int) -> list[dict[str, Any]]:
    # s0 |--------------------------|
    # s1  |------------------------|
    # ... each span nested in the previous one, n levels deep
    return [
        {
            "span_id": f"s{i}",
            "parent_span_id": f"s{i - 1}" if i else None,
            "name": f"step{i}",
            "service_name": "svc",
            "role": "agent",
            "kind": "INTERNAL",
            "start_ns": T0 + i,
            "end_ns": T0 + 2 * n - i,
            "status_code": "OK",
        }
        for i in range(n)
    ]


def test_100k_deep_chain_renders_without_recursion_and_elides_the_middle() -> None:
    spans = chain(100_000)  # 140 columns: room for the id and start columns beside the capped indentation
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # any recursive walk would fail
    try:
        out = render_trace_tree_text(spans, width=140, max_rows=50)
        renderable = render_trace_tree(spans, width=140, max_rows=50)
    finally:
        sys.setrecursionlimit(limit)
    lines = body(out)
    assert len(lines) == 51
    assert lines[0].strip().startswith("step0")
    assert "⋮ 99,950 spans elided" in lines[25]
    assert "step99999" in lines[-1] and "depth 99,999" in lines[-1]
    # indentation is capped: deep lines are no wider than the cap allows
    assert lines[-1].index("└─") <= 3 + 3 * 13
    assert all(len(line) <= 140 for line in out.splitlines())
    buffer = io.StringIO()
    Console(file=buffer, width=140, color_system=None).print(renderable)
    assert len(buffer.getvalue().splitlines()) == 52


def test_full_chain_without_elision() -> None:
    spans = chain(20_000)
    out = render_trace_tree_text(spans, width=100, max_rows=None)
    assert len(body(out)) == 20_000


def test_rich_renderable_matches_text() -> None:
    buffer = io.StringIO()
    Console(file=buffer, width=120, color_system=None).print(
        render_trace_tree(SMALL, critical={"root"}, width=120)
    )
    plain = [line.rstrip() for line in buffer.getvalue().splitlines()]
    assert plain == render_trace_tree_text(SMALL, critical={"root"}, width=120).splitlines()
