"""The self-contained HTML report: SVG drawn in Python, jinja2 templates, a little inline script.

:func:`render_report` turns the data of :func:`fabric_trace.pictures.report_data.collect`
into one HTML document that loads nothing from anywhere (no CDN, fonts or
images); docs/html-report.md describes what it shows and how each number is
computed. Span data is untrusted: it reaches the page only as escaped text
(:func:`.svg.t`) or inside JSON blocks whose ``<``, ``>``, ``&`` and line
separators are escaped (:func:`json_block`), and the script writes it with
``textContent`` only.
"""

from __future__ import annotations

from typing import Any

import orjson
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from fabric_trace import __version__
from fabric_trace.render.html import fmt, svg
from fabric_trace.render.html.colors import ROLE_COLORS, role_color
from fabric_trace.render.sanitize import safe_text

#: Longest attribute value kept in a span's details (characters); longer ones are cut with "…".
MAX_ATTR_CHARS = 500

_JSON_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def json_block(value: Any) -> Markup:
    """JSON that is safe inside ``<script type="application/json">`` (cannot close the element)."""
    return Markup(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode().translate(_JSON_ESCAPES))


def _cut(value: Any) -> Any:
    """A value as shown in the details panel: strings made visible (as in the terminal) and cut."""
    if isinstance(value, (list, dict)):
        value = orjson.dumps(value).decode()
    if isinstance(value, str):
        return safe_text(value, MAX_ATTR_CHARS)
    return value


def _attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    return {safe_text(k, 200): _cut(v) for k, v in attrs.items()}


def span_details(w: Any) -> list[dict[str, Any]]:
    """The click-for-details data of a waterfall, indexed like its spans."""
    t0 = min((s.start_ns for s in w.spans), default=0)
    out = []
    for s in w.spans:
        tokens = {k: v for k, v in (("input", s.input_tokens), ("output", s.output_tokens),
                                    ("cached input", s.cached_input_tokens)) if v is not None}
        out.append({
            "name": _cut(s.name), "span_id": s.span_id, "parent": s.parent_span_id, "service": _cut(s.service),
            "role": s.role, "kind": s.kind, "status": s.status_code, "message": _cut(s.status_message),
            "start": fmt.ms(s.start_ns - t0), "duration": fmt.ms(s.end_ns - s.start_ns),
            "self": None if s.self_ns is None else fmt.ms(s.self_ns),
            "critical": None if not s.critical_ns else fmt.ms(s.critical_ns), "tokens": tokens,
            "attributes": _attrs(s.attributes),
            "events": [{"at": fmt.ms(int(e.get("time_ns") or 0) - t0), "name": _cut(e.get("name")),
                        "attributes": _attrs(e.get("attributes") or {})}
                       for e in s.events[:50]],
        })
    return out


def reasons_text(reasons: list[str]) -> str:
    """Why a trace is drawn, with the finding examples merged: ``median of W, example of a/b, c/d``."""
    plain = [r for r in reasons if not r.startswith("example of ")]
    examples = [r[len("example of "):] for r in reasons if r.startswith("example of ")]
    return ", ".join(plain + (["example of " + ", ".join(examples)] if examples else []))


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("fabric_trace.render.html", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(reasons=reasons_text, ms=fmt.ms, count=fmt.count, utc=fmt.utc, json_block=json_block, role_color=role_color,
                       safe_text=svg.t)
    env.globals.update(pct=fmt.pct, svg=svg, role_colors=ROLE_COLORS, version=__version__)
    return env


def render_report(data: dict[str, Any], summary: list[dict[str, str]], filters: str = "") -> str:
    """The HTML document of the report."""
    waterfalls = []
    for w in data["waterfalls"]:
        order = svg.tree_order(w.spans)
        shown = order[: data["options"].max_spans]
        flagged = {f["span_id"] for f in w.findings if f["span_id"]}
        waterfalls.append({
            "w": w, "svg": svg.waterfall(w.trace_id, w.spans, shown, w.segments, flagged),
            "elided": len(order) - len(shown), "details": span_details(w),
        })
    roles = sorted({r["role"] for wf in data["workflows"] for r in wf["by_role"]}
                   | {s.role for w in data["waterfalls"] for s in w.spans})
    return _environment().get_template("report.html.j2").render(
        d=data, summary=summary, waterfalls=waterfalls, roles=roles, filters=filters,
        locality_parts=svg.LOCALITY_PARTS)


def render_comparison(*, title: str, verdict: str | None, headline: str, baseline: Any, candidate: Any,
                      comparisons: list[Any], checks: list[Any] | None, changes: list[Any],
                      format_value: Any) -> str:
    """The HTML page of ``fabric gate --html`` / ``fabric diff --html`` (``checks`` is None for diff);
    ``format_value(value, unit, delta=False)`` writes a check's value (the gate's own formatting)."""
    from types import SimpleNamespace

    scope_index = {c.scope: i for i, c in enumerate(comparisons)}
    failed = []
    for r in checks or []:
        if r.verdict == "pass":
            continue
        row = SimpleNamespace(**{k: getattr(r, k) for k in r.__dataclass_fields__})
        row.name = r.name
        row.scope_index = scope_index.get(r.workflow)
        if row.scope_index is None and r.workflow == "(all)":
            row.scope_index = scope_index.get("(all)")
        failed.append(row)
    roles = sorted({r["role"] for c in comparisons for side in (c.baseline, c.candidate) for r in side.by_role}
                   | {s.role for c in comparisons for side in (c.baseline, c.candidate) if side.median
                      for s in side.median.spans})
    return _environment().get_template("compare.html.j2").render(
        title=title, verdict=verdict, headline=headline, baseline=baseline, candidate=candidate,
        comparisons=comparisons, checks=checks, failed=failed, changes=changes, roles=roles,
        details=span_details, max_spans=400,
        value=lambda v, unit, delta=False: format_value(v, unit, delta=delta))
