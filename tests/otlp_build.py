"""The one builder of hand-made test traces: OTLP/JSON spans, documents, files and stores.

Every test that writes a small workflow by hand (latency, locality, trust, llm, the HTML
report and the exports) builds its spans and documents here, so the OTLP/JSON encoding of
a test trace is written once: ids as hex strings, times as decimal-string nanoseconds,
attribute values as ``AnyValue`` objects (``intValue`` as a string, as the spec's JSON
mapping says). Tests of the decoders themselves build their inputs byte by byte on purpose
(encoding traps) and do not use this module.

Times are given in milliseconds after ``t0`` (default :data:`T0`). No tests live here.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import duckdb
import orjson

from fabric_trace.service import run_ingest

#: Default time origin of hand-made traces (2027-01-15T08:00:00Z), nanoseconds.
T0 = 1_800_000_000_000_000_000
#: Nanoseconds per millisecond.
MS = 1_000_000
#: OTLP span kinds by name.
KINDS = {"UNSPECIFIED": 0, "INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
#: OTLP status codes by name.
STATUS = {"UNSET": 0, "OK": 1, "ERROR": 2}


def any_value(v: Any) -> dict[str, Any]:
    """A Python value as an OTLP/JSON ``AnyValue``."""
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, (bytes, bytearray)):
        return {"bytesValue": base64.b64encode(bytes(v)).decode("ascii")}
    if isinstance(v, (list, tuple)):
        return {"arrayValue": {"values": [any_value(x) for x in v]}}
    if isinstance(v, Mapping):
        return {"kvlistValue": {"values": attributes(v)}}
    return {"stringValue": str(v)}


def attributes(d: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """A mapping as an OTLP/JSON attribute list (``key``/``value`` pairs, in order)."""
    return [{"key": k, "value": any_value(v)} for k, v in (d or {}).items()]


def span(trace_id: str, span_id: str, parent: str | None, name: str, start_ms: float, end_ms: float, *,
         kind: str = "INTERNAL", status: str | None = None, message: str | None = None,
         attrs: Mapping[str, Any] | None = None,
         events: Iterable[tuple[float, str, Mapping[str, Any]]] | None = None,
         t0: int = T0, unit: int = MS) -> dict[str, Any]:
    """One OTLP/JSON span.

    ``status`` is ``"OK"``, ``"ERROR"``, ``"UNSET"`` or ``None`` (no ``code``: unset);
    ``events`` are ``(time_ms, name, attributes)``. ``unit`` is nanoseconds per time unit
    (``unit=1`` with ``t0=0`` gives raw nanoseconds).
    """
    s: dict[str, Any] = {
        "traceId": trace_id, "spanId": span_id, "name": name, "kind": KINDS[kind],
        "startTimeUnixNano": str(t0 + int(start_ms * unit)), "endTimeUnixNano": str(t0 + int(end_ms * unit)),
        "attributes": attributes(attrs),
        "status": {},
    }
    if status is not None:
        s["status"]["code"] = STATUS[status]
    if message is not None:
        s["status"]["message"] = message
    if parent:
        s["parentSpanId"] = parent
    if events:
        s["events"] = [{"timeUnixNano": str(t0 + int(t * unit)), "name": n, "attributes": attributes(a)}
                       for t, n, a in events]
    return s


def resource_spans(resource: Mapping[str, Any] | None, scopes: Mapping[str, list[dict[str, Any]]], *,
                   version: str | None = None) -> dict[str, Any]:
    """One ``resourceSpans`` entry: a resource's attributes and its spans by scope name (and ``version``)."""
    def scope(name: str) -> dict[str, str]:
        return {"name": name} if version is None else {"name": name, "version": version}

    return {"resource": {"attributes": attributes(resource)},
            "scopeSpans": [{"scope": scope(name), "spans": spans} for name, spans in scopes.items()]}


def document(*entries: dict[str, Any]) -> dict[str, Any]:
    """One ``ExportTraceServiceRequest`` in OTLP/JSON from ``resource_spans`` entries."""
    return {"resourceSpans": list(entries)}


def by_service(spans: Mapping[str, list[dict[str, Any]]], resource: Mapping[str, Any] | None = None,
               scope: str = "tests", version: str | None = None) -> dict[str, Any]:
    """One document with a resource per ``service.name`` (plus ``resource``'s attributes)."""
    return document(*(resource_spans({"service.name": svc, **(resource or {})}, {scope: ss}, version=version)
                      for svc, ss in spans.items()))


def jsonl(*docs: dict[str, Any]) -> bytes:
    """Documents as OTLP/JSON lines (one document per line)."""
    return b"".join(orjson.dumps(d) + b"\n" for d in docs)


def write(path: Path, *docs: dict[str, Any]) -> Path:
    """Write documents as an OTLP/JSON lines file; returns ``path``."""
    path.write_bytes(jsonl(*docs))
    return path


def ingest(tmp: Path, *docs: dict[str, Any], config: str | None = None, name: str = "t") -> str:
    """Write ``docs`` to ``tmp/NAME.jsonl`` and ingest them (with analysis) into ``tmp/NAME.duckdb``.

    ``config`` is the text of a ``fabric.toml``. Returns the store's path.
    """
    tmp.mkdir(parents=True, exist_ok=True)
    src = write(tmp / f"{name}.jsonl", *docs)
    cfg = None
    if config is not None:
        cfg = tmp / f"{name}.toml"
        cfg.write_text(config, encoding="utf-8")
    db = str(tmp / f"{name}.duckdb")
    run_ingest(db, [str(src)], config_path=str(cfg) if cfg else None)
    return db


def rows(db: str, sql: str) -> list[dict[str, Any]]:
    """The rows of a query on the store at ``db`` (opened read-only) as dicts."""
    con = duckdb.connect(db, read_only=True)
    try:
        cur = con.execute(sql)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]
    finally:
        con.close()
