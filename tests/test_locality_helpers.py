"""Builders for hand-made locality test traces (OTLP/JSON), shared by the tests/test_locality_*.py files.

Times are milliseconds after :data:`T0`; resources are given by a key into the
``resources`` mapping of :func:`otlp_doc`. No tests live here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb

from fabric_trace.service import run_ingest

MS = 1_000_000
T0 = 1_800_000_000_000_000_000
KIND = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}


def _value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": str(v)}


def span(tid: str, sid: str, parent: str | None, name: str, start_ms: float, end_ms: float, *,
         res: str = "app", kind: str = "INTERNAL", status: int = 0, **attrs: Any) -> dict[str, Any]:
    """One span; ``attrs`` keys use ``__`` for dots (``cache__hit=True`` is ``cache.hit``)."""
    s: dict[str, Any] = {
        "traceId": tid, "spanId": sid, "name": name, "kind": KIND[kind],
        "startTimeUnixNano": str(T0 + int(start_ms * MS)), "endTimeUnixNano": str(T0 + int(end_ms * MS)),
        "attributes": [{"key": k.replace("__", "."), "value": _value(v)} for k, v in attrs.items()],
        "status": {"code": status}, "_res": res,
    }
    if parent:
        s["parentSpanId"] = parent
    return s


def otlp_doc(spans: list[dict[str, Any]], resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Group spans by their ``_res`` key into resourceSpans with those resource attributes."""
    out = []
    for key, attrs in resources.items():
        mine = [{k: v for k, v in s.items() if k != "_res"} for s in spans if s["_res"] == key]
        if mine:
            out.append({"resource": {"attributes": [{"key": k, "value": _value(v)} for k, v in attrs.items()]},
                        "scopeSpans": [{"scope": {"name": "test"}, "spans": mine}]})
    return {"resourceSpans": out}


def build_db(tmp: Path, spans: list[dict[str, Any]], resources: dict[str, dict[str, Any]],
             config: str | None = None, name: str = "t") -> str:
    """Ingest the spans into a new database (derived tables computed with ``config`` TOML text)."""
    f = tmp / f"{name}.json"
    f.write_text(json.dumps(otlp_doc(spans, resources)))
    cfg = None
    if config is not None:
        cfg_path = tmp / f"{name}.toml"
        cfg_path.write_text(config)
        cfg = str(cfg_path)
    db = str(tmp / f"{name}.duckdb")
    run_ingest(db, [str(f)], config_path=cfg)
    return db


def rows(db: str, sql: str) -> list[dict[str, Any]]:
    """Rows of a query as dicts."""
    con = duckdb.connect(db, read_only=True)
    try:
        cur = con.execute(sql)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]
    finally:
        con.close()


def findings(db: str, kind: str | None = None) -> list[dict[str, Any]]:
    """Locality findings (details parsed), optionally of one kind, ordered by trace and span."""
    where = "analyzer = 'locality'" + (f" AND kind = '{kind}'" if kind else "")
    out = rows(db, f"SELECT kind, severity, trace_id, span_id, message, details FROM findings WHERE {where} "
                   "ORDER BY kind, trace_id, span_id")
    for r in out:
        r["details"] = json.loads(r["details"]) if r["details"] else None
    return out
