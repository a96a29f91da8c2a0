"""Analyzers: latency (call graph), locality, trust, and any registered later.

Each analyzer is one subpackage with the same inner modules (``config``,
``derive``, ``findings``, ``report``, ``sql/``) and one registry entry, its
``ANALYZER`` (:class:`~fabric_trace.analyzers.contract.Analyzer`). The
registry is the only wiring point: config loading, freshness, refresh,
``fabric report NAME``, ``fabric demo`` and the gate loop over it
(docs/analyzers.md). Order matters: later analyzers read the tables of
earlier ones (locality and trust read the latency analyzer's call graphs).
"""

from __future__ import annotations

from fabric_trace.analyzers.contract import (
    Analyzer, Derived, GateMetric, Partition, ReportSpec, Scope, StoreStats, sql_kernel, write_findings,
)

#: The built-in analyzers, in the order they run: each is the subpackage ``fabric_trace.analyzers.<name>``
#: whose ``ANALYZER`` is its registry entry. Adding one is adding its name here.
BUILT_IN = ("latency", "locality", "trust", "llm")

#: Analyzers registered at run time (:func:`register`), after the built-in ones.
_EXTRA: dict[str, Analyzer] = {}


def registry() -> dict[str, Analyzer]:
    """The analyzers, in the order they run (built-ins imported lazily to keep startup fast)."""
    import importlib

    out = {name: importlib.import_module(f"fabric_trace.analyzers.{name}").ANALYZER for name in BUILT_IN}
    out.update(_EXTRA)
    return out


def register(analyzer: Analyzer) -> None:
    """Add an analyzer after the built-in ones (it runs last). Re-registering a name replaces it."""
    if analyzer.name in BUILT_IN:
        raise ValueError(f"analyzer name {analyzer.name!r} is taken by a built-in analyzer")
    _EXTRA[analyzer.name] = analyzer


def unregister(name: str) -> None:
    """Remove an analyzer added by :func:`register` (no-op if absent)."""
    _EXTRA.pop(name, None)


__all__ = ["Analyzer", "Derived", "GateMetric", "Partition", "ReportSpec", "Scope", "StoreStats", "register", "registry",
           "sql_kernel", "unregister", "write_findings"]
