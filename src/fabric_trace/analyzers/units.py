"""Units of report values, shared by every analyzer's report builder (docs/output-formats.md):
durations in milliseconds rounded to the microsecond, shares in percent to two decimals."""

from __future__ import annotations

from typing import Any


def ms(ns: Any) -> float | None:
    """Nanoseconds as milliseconds (3 decimals); NULL stays None."""
    return None if ns is None else round(float(ns) / 1e6, 3)


def percent(fraction: Any) -> float | None:
    """A fraction as a percentage (2 decimals); NULL stays None."""
    return None if fraction is None else round(float(fraction) * 100.0, 2)
