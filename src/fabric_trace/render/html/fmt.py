"""Numbers for people: durations, counts, percentages (rules in docs/html-report.md)."""

from __future__ import annotations

from datetime import datetime, timezone


def ms(ns: float | int | None) -> str:
    """A duration: ``0.42 ms``, ``12.3 ms``, ``456 ms``, ``1.23 s``, ``2.5 min``; ``n/a`` for None."""
    if ns is None:
        return "n/a"
    v = ns / 1e6
    a = abs(v)
    if a >= 120_000:
        return f"{v / 60_000:.1f} min"
    if a >= 1000:
        return f"{v / 1000:.2f} s"
    if a >= 100:
        return f"{v:.0f} ms"
    if a >= 10:
        return f"{v:.1f} ms"
    return f"{v:.2f} ms"


def count(n: int | float | None) -> str:
    """``1,234``."""
    return "n/a" if n is None else f"{n:,.0f}"


def pct(num: float, den: float) -> str:
    """``12.5%`` (``n/a`` when the denominator is 0)."""
    return "n/a" if not den else f"{100.0 * num / den:.1f}%"


def utc(ns: int | None) -> str:
    """``2026-01-01 00:00:01 UTC``."""
    if ns is None:
        return "n/a"
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def nice_ticks(span_ns: float, target: int = 6) -> list[float]:
    """Round tick positions (ns) from 0 to ``span_ns``: steps of 1, 2 or 5 times a power of ten."""
    if span_ns <= 0:
        return [0.0]
    raw = span_ns / target
    mag = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 1.0
    step = next((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), 10 * mag)
    ticks, t = [], 0.0
    while t <= span_ns + 1e-9:
        ticks.append(t)
        t += step
    return ticks
