"""Builders for hand-made locality test traces (OTLP/JSON), shared by the tests/test_locality_*.py files.

Times are milliseconds after :data:`T0`; resources are given by a key into the
``resources`` mapping of :func:`otlp_doc`. No tests live here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import otlp_build
from otlp_build import MS, T0

__all__ = ["MS", "T0", "build_db", "findings", "otlp_doc", "rows", "span"]


def span(tid: str, sid: str, parent: str | None, name: str, start_ms: float, end_ms: float, *,
         res: str = "app", kind: str = "INTERNAL", status: int = 0, **attrs: Any) -> dict[str, Any]:
    """One span; ``attrs`` keys use ``__`` for dots (``cache__hit=True`` is ``cache.hit``)."""
    s = otlp_build.span(tid, sid, parent, name, start_ms, end_ms, kind=kind,
                        status=[*otlp_build.STATUS][status], attrs={k.replace("__", "."): v for k, v in attrs.items()})
    s["_res"] = res
    return s


def otlp_doc(spans: list[dict[str, Any]], resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Group spans by their ``_res`` key into resourceSpans with those resource attributes."""
    return otlp_build.document(*(
        otlp_build.resource_spans(attrs, {"test": mine})
        for key, attrs in resources.items()
        if (mine := [{k: v for k, v in s.items() if k != "_res"} for s in spans if s["_res"] == key])))


def build_db(tmp: Path, spans: list[dict[str, Any]], resources: dict[str, dict[str, Any]],
             config: str | None = None, name: str = "t") -> str:
    """Ingest the spans into a new database (derived tables computed with ``config`` TOML text)."""
    return otlp_build.ingest(tmp, otlp_doc(spans, resources), config=config, name=name)


rows = otlp_build.rows


def findings(db: str, kind: str | None = None) -> list[dict[str, Any]]:
    """Locality findings (details parsed), optionally of one kind, ordered by trace and span."""
    where = "analyzer = 'locality'" + (f" AND kind = '{kind}'" if kind else "")
    out = rows(db, f"SELECT kind, severity, trace_id, span_id, message, details FROM findings WHERE {where} "
                   "ORDER BY kind, trace_id, span_id")
    for r in out:
        r["details"] = json.loads(r["details"]) if r["details"] else None
    return out
