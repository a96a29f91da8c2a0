"""SVG pictures drawn in Python. Every piece of span data goes through :func:`t` (escaped, sanitized).

Each function returns a :class:`markupsafe.Markup` fragment; the page template
places them. Nothing here is interactive: the page's script reads ``data-*``
attributes and the JSON details blocks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from markupsafe import Markup, escape

from fabric_trace.render.export.model import ExportSpan
from fabric_trace.render.html.colors import CRITICAL, ERROR, role_color
from fabric_trace.render.html.fmt import ms, nice_ticks
from fabric_trace.render.sanitize import safe_text


def t(value: object, limit: int = 200) -> Markup:
    """Untrusted text for an SVG/HTML text node or attribute: control characters made visible, then escaped."""
    return escape(safe_text(value, limit))


def _f(x: float) -> str:
    return f"{x:.1f}"


def _svg(width: float, height: float, body: list[str], label: str, cls: str = "") -> Markup:
    return Markup(f'<svg class="pic {cls}" role="img" aria-label="{t(label)}" viewBox="0 0 {_f(width)} {_f(height)}" '
                  f'width="{_f(width)}" height="{_f(height)}" xmlns="http://www.w3.org/2000/svg">'
                  + "".join(body) + "</svg>")


# -- workflow overview -------------------------------------------------------------------------------
def histogram(wf: dict[str, Any], width: float = 520, height: float = 160) -> Markup:
    """Log-scale histogram of end-to-end durations with p50/p95/p99 markers."""
    bins = wf["histogram"]
    if not bins:
        return Markup("")
    n_bins = max(b["bin"] for b in bins) + 1
    n_bins = max(n_bins, 1)
    lo, hi = bins[0]["lo"], bins[0]["hi"]
    top = max(b["n"] for b in bins)
    left, right, y0, plot_h = 40.0, 10.0, 12.0, height - 48.0
    bw = (width - left - right) / max(n_bins, 1)
    body = []
    for b in bins:
        h = plot_h * b["n"] / top
        x = left + b["bin"] * bw
        a = math.exp(lo + (hi - lo) * b["bin"] / n_bins) if hi > lo else math.exp(lo)
        z = math.exp(lo + (hi - lo) * (b["bin"] + 1) / n_bins) if hi > lo else math.exp(hi)
        body.append(f'<rect class="bar" x="{_f(x + 1)}" y="{_f(y0 + plot_h - h)}" width="{_f(max(bw - 2, 1))}" '
                    f'height="{_f(h)}"><title>{b["n"]} traces, {t(ms(a))} to {t(ms(z))}</title></rect>')

    def xpos(ns: float) -> float:
        if hi <= lo:
            return left + (width - left - right) / 2
        return left + (math.log(max(ns, 1)) - lo) / (hi - lo) * (width - left - right)

    for label, key, dy in (("p50", "p50_ns", 0), ("p95", "p95_ns", 11), ("p99", "p99_ns", 22)):
        x = min(max(xpos(wf[key]), left), width - right)
        anchor = ' text-anchor="end"' if x > width - 110 else ""  # keep the label inside the picture
        body.append(f'<line class="mark" x1="{_f(x)}" x2="{_f(x)}" y1="{_f(y0)}" y2="{_f(y0 + plot_h)}"/>'
                    f'<text class="mlabel" x="{_f(x - 3 if anchor else x + 3)}" y="{_f(y0 + 9 + dy)}"{anchor}>'
                    f'{label} {t(ms(wf[key]))}</text>')
    yb = y0 + plot_h
    body.append(f'<line class="axis" x1="{left}" x2="{_f(width - right)}" y1="{_f(yb)}" y2="{_f(yb)}"/>')
    body.append(f'<text class="tick" x="{left}" y="{_f(yb + 14)}">{t(ms(math.exp(lo)))}</text>')
    body.append(f'<text class="tick" x="{_f(width - right)}" y="{_f(yb + 14)}" text-anchor="end">'
                f'{t(ms(math.exp(hi)))}</text>')
    body.append(f'<text class="tick" x="{_f((width) / 2)}" y="{_f(yb + 28)}" text-anchor="middle">'
                f'end-to-end duration (log scale); bar height = traces</text>')
    body.append(f'<text class="tick" x="2" y="{_f(y0 + 8)}">{top}</text>')
    return _svg(width, height, body, f"distribution of end-to-end durations of {wf['workflow']}", "hist")


def over_time(wf: dict[str, Any], width: float = 520, height: float = 160) -> Markup:
    """p50 and p95 per time bucket (20 buckets between the first and last trace start)."""
    pts = wf["over_time"]
    if len(pts) < 2:
        return Markup("")
    left, right, y0, plot_h = 50.0, 10.0, 12.0, height - 48.0
    top = max(p["p95_ns"] for p in pts) or 1
    first, last = pts[0]["bucket_start_ns"], wf["last_ns"]
    span = max(last - first, 1)

    def xy(p: dict[str, Any], key: str) -> str:
        x = left + (p["bucket"] + 0.5) / 20 * (width - left - right)
        return f"{_f(x)},{_f(y0 + plot_h - plot_h * p[key] / top)}"

    body = [f'<polyline class="p95" points="{" ".join(xy(p, "p95_ns") for p in pts)}"/>',
            f'<polyline class="p50" points="{" ".join(xy(p, "p50_ns") for p in pts)}"/>']
    for p in pts:
        x, y = xy(p, "p95_ns").split(",")
        body.append(f'<circle class="p95" cx="{x}" cy="{y}" r="2.5"><title>{p["n"]} traces: p50 '
                    f'{t(ms(p["p50_ns"]))}, p95 {t(ms(p["p95_ns"]))}</title></circle>')
    yb = y0 + plot_h
    body.append(f'<line class="axis" x1="{left}" x2="{_f(width - right)}" y1="{_f(yb)}" y2="{_f(yb)}"/>')
    body.append(f'<text class="tick" x="2" y="{_f(y0 + 8)}">{t(ms(top))}</text>')
    body.append(f'<text class="tick" x="{left}" y="{_f(yb + 14)}">start</text>')
    body.append(f'<text class="tick" x="{_f(width - right)}" y="{_f(yb + 14)}" text-anchor="end">'
                f'+{t(ms(span))}</text>')
    body.append(f'<text class="tick" x="{_f(width / 2)}" y="{_f(yb + 28)}" text-anchor="middle">'
                f'<tspan class="p95t">p95</tspan> and <tspan class="p50t">p50</tspan> over time</text>')
    return _svg(width, height, body, f"latency over time of {wf['workflow']}", "time")


def stacked_role_bars(bars: list[tuple[str, dict[str, float]]], label: str, width: float = 1060) -> Markup:
    """Stacked bars on one scale, one per (name, {role: ns per trace}); roles in first-seen order."""
    totals = {name: sum(v.values()) for name, v in bars}
    if not any(totals.values()):
        return Markup("")
    order: list[str] = []
    for _, values in bars:
        order.extend(r for r in values if r not in order)
    left, right = 120.0, 90.0
    scale = (width - left - right) / max(totals.values())
    body, y = [], 6.0
    for name, values in bars:
        x = left
        body.append(f'<text class="blabel" x="{_f(left - 6)}" y="{_f(y + 15)}" text-anchor="end">{t(name)}</text>')
        for role in order:
            v = values.get(role, 0.0)
            w = v * scale
            if w <= 0:
                continue
            share = 100 * v / totals[name]
            body.append(f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(w)}" height="22" fill="{role_color(role)}" '
                        f'data-role="{t(role)}"><title>{t(name)}: {t(role)} {t(ms(v))} per trace '
                        f'({share:.1f}% of the critical path)</title></rect>')
            if w > 46:
                body.append(f'<text class="inbar" x="{_f(x + 3)}" y="{_f(y + 15)}">{t(role, 12)}</text>')
            x += w
        body.append(f'<text class="tick" x="{_f(x + 4)}" y="{_f(y + 15)}">{t(ms(totals[name]))}</text>')
        y += 30
    return _svg(width, y + 4, body, label, "roles")


def role_bars(wf: dict[str, Any], width: float = 1060) -> Markup:
    """Mean critical-path time per trace by role: all traces, and the slowest 5%."""
    return stacked_role_bars(
        [("all traces", {r["role"]: r["mean_all_ns"] for r in wf["by_role"]}),
         ("slowest 5%", {r["role"]: r["mean_slow_ns"] for r in wf["by_role"]})],
        f"critical-path time by role of {wf['workflow']}", width)


# -- waterfall ---------------------------------------------------------------------------------------
def tree_order(spans: Sequence[ExportSpan]) -> list[int]:
    """Span indices in depth-first order (children by start), roots first; iterative."""
    ids = {s.span_id: i for i, s in enumerate(spans)}
    children: dict[int, list[int]] = {}
    roots = []
    for i, s in enumerate(spans):
        p = ids.get(s.parent_span_id) if s.parent_span_id else None
        if p is None or p == i:
            roots.append(i)
        else:
            children.setdefault(p, []).append(i)
    key = lambda i: (spans[i].start_ns, spans[i].span_id)  # noqa: E731
    out: list[int] = []
    seen: set[int] = set()
    stack = sorted(roots, key=key, reverse=True)
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        out.append(i)
        stack.extend(sorted(children.get(i, []), key=key, reverse=True))
    out.extend(i for i in sorted(range(len(spans)), key=key) if i not in seen)  # parent cycles
    return out


def waterfall(tid: str, spans: Sequence[ExportSpan], order: Sequence[int], segments: Sequence[tuple[str, int, int]],
              flagged: set[str], width: float = 1100, row: float = 20, scale_ns: int = 0) -> Markup:
    """One trace: a row per span (indented by depth), bars by time, critical path under the bars.

    ``scale_ns``: draw at least this much time across the bar area (to put two traces on one scale).
    """
    if not order:
        return Markup("")
    t0 = min(spans[i].start_ns for i in order)
    t1 = max(spans[i].end_clipped for i in order)
    span_ns = max(t1 - t0, scale_ns, 1)
    label_w, right_w, top = min(330.0, width * 0.3), min(130.0, width * 0.14), 24.0
    x0, bw = label_w + 10, width - label_w - 10 - right_w

    def x(ns: int) -> float:
        return x0 + (ns - t0) / span_ns * bw

    body = ['<g class="ticks">']
    for tick in nice_ticks(span_ns):
        xt = x0 + tick / span_ns * bw
        body.append(f'<line class="grid" x1="{_f(xt)}" x2="{_f(xt)}" y1="{_f(top - 4)}" '
                    f'y2="{_f(top + row * len(order))}"/><text class="tick" x="{_f(xt)}" y="{_f(top - 8)}" '
                    f'text-anchor="middle">{t(ms(tick)) if tick else "0"}</text>')
    body.append(f'<text class="tick" x="{_f(width - right_w + 8)}" y="{_f(top - 8)}">'
                f'{"duration · self" if right_w >= 120 else "duration"}</text></g>')
    crit: dict[str, list[tuple[int, int]]] = {}
    for sid, a, b in segments:
        crit.setdefault(sid, []).append((a, b))
    pos = {spans[i].span_id: r for r, i in enumerate(order)}
    for r, i in enumerate(order):
        s = spans[i]
        y = top + r * row
        depth = min(s.depth, 24)
        err = s.status_code == "ERROR"
        xa, xb = x(s.start_ns), x(s.end_clipped)
        cls = "sp" + (" err" if err else "") + (" oncp" if s.span_id in crit else "")
        tip = (f"{s.name} — {s.service} · {s.role} · {ms(s.end_ns - s.start_ns)}"
               + (f" · self {ms(s.self_ns)}" if s.self_ns is not None else "")
               + (f" · critical {ms(s.critical_ns)}" if s.critical_ns else "") + (" · ERROR" if err else ""))
        body.append(f'<g class="{cls}" id="wf-{t(tid)}-{t(s.span_id)}" data-t="{t(tid)}" data-i="{i}" tabindex="0">'
                    f'<title>{t(tip, 400)}</title>'
                    f'<rect class="row" x="0" y="{_f(y)}" width="{_f(width)}" height="{_f(row)}"/>')
        mark = ("⚑ " if s.span_id in flagged else "") + ("✕ " if err else "")
        indent = 12 if label_w > 300 else 6
        avail = max(10.0, (label_w - 4 - indent * depth) / 6.0 - len(mark))  # characters that fit
        body.append(f'<text class="lbl" x="{_f(4 + depth * indent)}" y="{_f(y + 14)}">'
                    + (f'<tspan class="flag">{mark}</tspan>' if mark else "")
                    + f'{t(s.name, max(6, int(avail * 0.65)))}'
                    f'<tspan class="svc"> {t(s.service, max(4, int(avail * 0.35)))}</tspan></text>')
        body.append(f'<rect class="bar" x="{_f(xa)}" y="{_f(y + 3)}" width="{_f(max(xb - xa, 1.5))}" height="{_f(row - 8)}" '
                    f'fill="{role_color(s.role)}"' + (f' stroke="{ERROR}" stroke-width="2"' if err else "") + "/>")
        for a, b in crit.get(s.span_id, []):
            body.append(f'<rect class="cp" x="{_f(x(a))}" y="{_f(y + row - 5)}" width="{_f(max(x(b) - x(a), 1))}" '
                        f'height="3" fill="{CRITICAL}"/>')
        dur = ms(s.end_ns - s.start_ns) + (f" · {ms(s.self_ns)}" if s.self_ns is not None and right_w >= 120 else "")
        body.append(f'<text class="num" x="{_f(width - right_w + 8)}" y="{_f(y + 14)}">{t(dur)}</text></g>')
    del pos
    height = top + row * len(order) + 6
    return _svg(width, height, body, f"waterfall of trace {tid}", "wf")


# -- state locality ----------------------------------------------------------------------------------
LOCALITY_PARTS = (("miss_local_ns", "miss", "#fb8c00"), ("miss_remote_ns", "miss, remote", "#c62828"),
                  ("remote_only_ns", "remote (hit or unreported)", "#6a1b9a"))


def locality_bars(stores: list[dict[str, Any]], n_traces: int, width: float = 1060) -> Markup:
    """Per store, critical-path time per trace inside misses and remote accesses (stacked, disjoint parts)."""
    stores = [s for s in stores if s["cost_ns"] > 0]
    if not stores or not n_traces:
        return Markup("")
    left, right, row = 280.0, 110.0, 24.0
    top_cost = max(s["cost_ns"] for s in stores) / n_traces
    scale = (width - left - right) / (top_cost or 1)
    body, y = [], 4.0
    for s in stores:
        body.append(f'<text class="blabel" x="{_f(left - 6)}" y="{_f(y + 15)}" text-anchor="end">'
                    f'{t(s["store"], 40)}</text>')
        x = left
        for key, label, colour in LOCALITY_PARTS:
            w = s[key] / n_traces * scale
            if w <= 0:
                continue
            body.append(f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(max(w, 1))}" height="{_f(row - 6)}" fill="{colour}">'
                        f'<title>{t(s["store"])}: {label}: {t(ms(s[key] / n_traces))} per trace on the critical path'
                        f'</title></rect>')
            x += w
        body.append(f'<text class="tick" x="{_f(x + 4)}" y="{_f(y + 14)}">{t(ms(s["cost_ns"] / n_traces))}</text>')
        y += row
    return _svg(width, y + 4, body, "critical-path time lost to misses and remote state, per store", "loc")


# -- trust map ---------------------------------------------------------------------------------------
_KIND_FILL = {"user": "#e8eaf6", "internal": "#e8f5e9", "provider": "#fffde7", "external": "#ffebee"}


def trust_layers(nodes: list[dict[str, Any]], edges: list[dict[str, Any]]) -> dict[str, int]:
    """Column of each zone: breadth-first distance from the zones nobody calls (users first); iterative."""
    ids = [n["id"] for n in nodes]
    incoming = {e["to"] for e in edges if e["to"] != e["from"]}
    out: dict[str, list[str]] = {}
    for e in edges:
        out.setdefault(e["from"], []).append(e["to"])
    sources = [i for i in ids if i not in incoming] or ids[:1]
    layer = {i: 0 for i in sources}
    queue = list(sources)
    while queue:
        nxt = []
        for u in queue:
            for v in sorted(out.get(u, [])):
                if v not in layer:
                    layer[v] = layer[u] + 1
                    nxt.append(v)
        queue = nxt
    for i in ids:
        layer.setdefault(i, 0)
    return layer


def trust_map(nodes: list[dict[str, Any]], edges: list[dict[str, Any]]) -> Markup:
    """Zones as boxes in columns, crossings as arrows; risky edges red and thick."""
    if not nodes:
        return Markup("")
    layer = trust_layers(nodes, edges)
    cols: dict[int, list[dict[str, Any]]] = {}
    for n in sorted(nodes, key=lambda n: (layer[n["id"]], n["kind"] or "", n["id"])):
        cols.setdefault(layer[n["id"]], []).append(n)
    bw, bh, gx, gy = 210.0, 46.0, 150.0, 30.0
    pos: dict[str, tuple[float, float]] = {}
    for c, members in cols.items():
        for r, n in enumerate(members):
            pos[n["id"]] = (20 + c * (bw + gx), 20 + r * (bh + gy))
    width = 40 + (max(cols) + 1) * (bw + gx) - gx + 70
    height = 40 + max(len(m) for m in cols.values()) * (bh + gy) - gy
    body = ['<defs>' + "".join(
        f'<marker id="{mid}" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" '
        f'markerHeight="9" orient="auto"><path d="M0,0L10,5L0,10z" fill="{colour}"/></marker>'
        for mid, colour in (("arr", "#666"), ("arr-r", "#c62828"))) + '</defs>']
    labels = []
    for e in sorted(edges, key=lambda e: (e["risky"], e["from"], e["to"])):
        (ax, ay), (bx, by) = pos[e["from"]], pos[e["to"]]
        if bx > ax:  # forward: right side of the caller to the left side of the callee
            p0, p3 = (ax + bw, ay + bh / 2), (bx, by + bh / 2)
            p1, p2 = (p0[0] + gx / 2, p0[1]), (p3[0] - gx / 2, p3[1])
        else:  # same column, backwards or to itself: around the right side
            p0, p3 = (ax + bw, ay + bh * 0.3), (bx + bw, by + bh * 0.7)
            bulge = 40 + min(abs(by - ay), 400) / 6
            p1, p2 = (p0[0] + bulge, p0[1]), (p3[0] + bulge, p3[1])
        d = (f"M{_f(p0[0])},{_f(p0[1])} C{_f(p1[0])},{_f(p1[1])} {_f(p2[0])},{_f(p2[1])} "
             f"{_f(p3[0])},{_f(p3[1])}")
        u = 0.72  # label three quarters along the curve, where fanned-out edges are apart
        mx, my = (((1 - u) ** 3) * p0[0] + 3 * (1 - u) ** 2 * u * p1[0] + 3 * (1 - u) * u * u * p2[0] + u ** 3 * p3[0],
                  ((1 - u) ** 3) * p0[1] + 3 * (1 - u) ** 2 * u * p1[1] + 3 * (1 - u) * u * u * p2[1] + u ** 3 * p3[1])
        risky = e["risky"]
        why = []
        if e["plaintext"]:
            why.append(f"{e['plaintext']:,} plaintext http")
        if e["flagged"]:
            why.append(f"{e['flagged']:,} with trust findings (medium or above)")
        if e["errors"]:
            why.append(f"{e['errors']:,} errors")
        tip = f"{e['from']} → {e['to']}: {e['calls']:,} calls via {', '.join(map(str, e['protocols']))}" + (
            "; " + "; ".join(why) if why else "")
        body.append(f'<path class="edge{" risky" if risky else ""}" d="{d}" '
                    f'marker-end="url(#{"arr-r" if risky else "arr"})"><title>{t(tip, 400)}</title></path>')
        labels.append(f'<text class="elabel{" risky" if risky else ""}" x="{_f(mx)}" y="{_f(my - 3)}" '
                      f'text-anchor="middle">{e["calls"]:,}{" ⚠" if risky else ""}</text>')
    body.extend(labels)
    for n in nodes:
        x, y = pos[n["id"]]
        fill = _KIND_FILL.get(n["kind"] or "", "#ffebee")
        lvl = "" if n["trust_level"] is None else f", trust {n['trust_level']}"
        body.append(f'<g class="zone"><rect x="{_f(x)}" y="{_f(y)}" width="{bw}" height="{bh}" rx="8" fill="{fill}">'
                    f'<title>{t(n["id"], 300)} ({t(n["kind"])}{t(lvl)}; {n["spans"]:,} spans)</title></rect>'
                    f'<text class="zname" x="{_f(x + bw / 2)}" y="{_f(y + 19)}" text-anchor="middle">{t(n["id"], 30)}'
                    f'</text><text class="zkind" x="{_f(x + bw / 2)}" y="{_f(y + 35)}" text-anchor="middle">'
                    f'{t(n["kind"])}{t(lvl)}</text></g>')
    return _svg(width, height, body, "trust map: zones and crossings", "trust")


# -- comparisons (gate / diff) -----------------------------------------------------------------------
SIDE_COLORS = {"baseline": "#78909c", "candidate": "#ef6c00"}


def compare_histogram(cmp: Any, width: float = 520, height: float = 170) -> Markup:
    """Both sides' end-to-end durations on one log axis; bar height = share of that side's traces."""
    edges = cmp.edges_ns
    n_bins = len(edges) - 1
    sides = (("baseline", cmp.baseline), ("candidate", cmp.candidate))
    shares = {k: [c / s.traces if s.traces else 0 for c in s.counts] for k, s in sides}
    top = max(max(v, default=0) for v in shares.values()) or 1
    left, right, y0, plot_h = 40.0, 10.0, 14.0, height - 50.0
    bw = (width - left - right) / n_bins
    body = []
    for k, (name, _) in enumerate(sides):
        for i, share in enumerate(shares[name]):
            if share <= 0:
                continue
            h = plot_h * share / top
            x = left + i * bw + k * bw / 2
            body.append(f'<rect x="{_f(x + 0.5)}" y="{_f(y0 + plot_h - h)}" width="{_f(max(bw / 2 - 1, 1))}" '
                        f'height="{_f(h)}" fill="{SIDE_COLORS[name]}"><title>{name}: {100 * share:.1f}% of traces '
                        f'from {t(ms(math.exp(edges[i])))} to {t(ms(math.exp(edges[i + 1])))}</title></rect>')
    lo, hi = edges[0], edges[-1]

    def xpos(ns: float) -> float:
        return left + (math.log(max(ns, 1)) - lo) / ((hi - lo) or 1) * (width - left - right)

    for k, (name, side) in enumerate(sides):
        for label, value, dy in (("p50", side.p50_ns, 0), ("p95", side.p95_ns, 11)):
            if value is None:
                continue
            x = min(max(xpos(value), left), width - right)
            anchor = ' text-anchor="end"' if k == 0 else ""
            body.append(f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{_f(y0)}" y2="{_f(y0 + plot_h)}" stroke="{SIDE_COLORS[name]}" '
                        f'stroke-dasharray="3 2"/><text class="mlabel" x="{_f(x - 3 if k == 0 else x + 3)}" '
                        f'y="{_f(y0 + 8 + dy + 24 * k)}" style="fill:{SIDE_COLORS[name]}"{anchor}>{label} '
                        f'{t(ms(value))}</text>')
    yb = y0 + plot_h
    body.append(f'<line class="axis" x1="{left}" x2="{_f(width - right)}" y1="{_f(yb)}" y2="{_f(yb)}"/>')
    body.append(f'<text class="tick" x="{left}" y="{_f(yb + 14)}">{t(ms(math.exp(lo)))}</text>')
    body.append(f'<text class="tick" x="{_f(width - right)}" y="{_f(yb + 14)}" text-anchor="end">'
                f'{t(ms(math.exp(hi)))}</text>')
    body.append(f'<text class="tick" x="{_f(width / 2)}" y="{_f(yb + 30)}" text-anchor="middle">'
                f'<tspan style="fill:{SIDE_COLORS["baseline"]}">baseline ({cmp.baseline.traces:,})</tspan> vs '
                f'<tspan style="fill:{SIDE_COLORS["candidate"]}">candidate ({cmp.candidate.traces:,})</tspan>: '
                f'end-to-end duration, log scale</text>')
    return _svg(width, height, body, f"durations of {cmp.scope}, baseline and candidate", "hist cmp")


def compare_role_bars(cmp: Any, width: float = 1060) -> Markup:
    """Mean critical-path time per trace by role: baseline and candidate on one scale."""
    bars = [(name, {r["role"]: r["mean_all_ns"] for r in side.by_role})
            for name, side in (("baseline", cmp.baseline), ("candidate", cmp.candidate))]
    return stacked_role_bars(bars, f"critical path by role of {cmp.scope}, baseline and candidate", width)


def value_bars(r: Any, value: Any, width: float = 520) -> Markup:
    """A check's baseline and candidate values as two bars, with its limit (budget) or threshold (regression)."""
    vals = [("baseline", r.baseline), ("candidate", r.candidate)]
    limit = None
    if r.kind == "budget" and r.threshold is not None:
        limit, limit_label = r.threshold, "budget"
    elif r.kind == "regression" and r.threshold is not None and r.baseline is not None:
        limit, limit_label = r.baseline + r.threshold, "baseline + threshold"
    finite = [abs(v) for _, v in vals if v is not None and math.isfinite(v)] + ([abs(limit)] if limit else [])
    if not finite:
        return Markup("")
    top = max(finite) or 1
    left, right, row = 90.0, 110.0, 26.0
    scale = (width - left - right) / top
    body, y = [], 4.0
    for name, v in vals:
        body.append(f'<text class="blabel" x="{_f(left - 6)}" y="{_f(y + 14)}" text-anchor="end">{name}</text>')
        if v is not None and math.isfinite(v):
            body.append(f'<rect x="{left}" y="{_f(y)}" width="{_f(max(abs(v) * scale, 1))}" height="{_f(row - 8)}" '
                        f'fill="{SIDE_COLORS[name]}"/><text class="tick" x="{_f(left + abs(v) * scale + 4)}" '
                        f'y="{_f(y + 13)}">{t(value(v, r.unit))}</text>')
        y += row
    if limit is not None:
        x = left + abs(limit) * scale
        body.append(f'<line x1="{_f(x)}" x2="{_f(x)}" y1="0" y2="{_f(y)}" stroke="{ERROR}" stroke-width="2" '
                    f'stroke-dasharray="4 2"/><text class="mlabel" x="{_f(x)}" y="{_f(y + 10)}" '
                    f'text-anchor="middle">{limit_label} {t(value(limit, r.unit))}</text>')
        y += 12
    return _svg(width, y + 2, body, f"{r.name}: baseline and candidate", "values")
