"""Analyzers: latency (call graph), locality, trust. Each registers one entry.

An analyzer's ``derive(con, config)`` recomputes its derived tables inside the
refresh transaction and appends its rows to ``finding_store`` (the shared
``findings`` view). Order matters: later analyzers read the call-graph tables
that the latency analyzer writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb


@dataclass(frozen=True)
class Analyzer:
    """A registry entry."""

    name: str
    summary: str
    derive: Callable[[duckdb.DuckDBPyConnection, Any], None]


def registry() -> dict[str, Analyzer]:
    """The analyzers, in the order they run (imported lazily to keep startup fast)."""
    from fabric_trace.analyzers import latency, locality, trust

    return {a.name: a for a in (latency.ANALYZER, locality.ANALYZER, trust.ANALYZER)}
