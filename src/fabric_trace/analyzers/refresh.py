"""Keeping derived tables in step with the data.

``fabric_meta.data_version`` is bumped by every committed ingest;
``derived_version`` (and ``derived_config``, a fingerprint of the config that
shaped the results) record what the derived tables were computed from.
Readers call :func:`is_stale` and never serve stale results silently.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import duckdb

from fabric_trace.analyzers import registry
from fabric_trace.errors import DatabaseError

FINDINGS_DDL = """
CREATE TABLE IF NOT EXISTS finding_store (
    analyzer  VARCHAR NOT NULL,
    kind      VARCHAR NOT NULL,
    severity  VARCHAR NOT NULL,
    trace_id  VARCHAR,
    span_id   VARCHAR,
    message   VARCHAR NOT NULL,
    details   JSON
);
CREATE OR REPLACE VIEW findings AS
SELECT analyzer, kind, severity, trace_id, span_id, message, details FROM finding_store;
"""


def config_fingerprint(config: Any) -> str:
    data = getattr(config, "data", {}) or {}
    relevant = {k: v for k, v in data.items() if k in ("workflows", "latency", "locality", "trust")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _meta(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.execute("SELECT key, value FROM fabric_meta").fetchall())


def is_stale(con: duckdb.DuckDBPyConnection, config: Any | None = None) -> bool:
    """True when the derived tables do not reflect the current data (and config)."""
    meta = _meta(con)
    if meta.get("derived_version") != meta.get("data_version"):
        return True
    if config is not None and meta.get("derived_config") != config_fingerprint(config):
        return True
    return False


def refresh(con: duckdb.DuckDBPyConnection, config: Any, *, force: bool = False) -> bool:
    """Recompute every analyzer's derived tables if stale; returns True if it ran."""
    if not force and not is_stale(con, config):
        return False
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute(FINDINGS_DDL)
        con.execute("DELETE FROM finding_store")
        for analyzer in registry().values():
            analyzer.derive(con, config)
        version = _meta(con).get("data_version", "0")
        for key, value in (("derived_version", version), ("derived_config", config_fingerprint(config))):
            con.execute("INSERT OR REPLACE INTO fabric_meta VALUES (?, ?)", [key, value])
        con.execute("COMMIT")
    except duckdb.Error as exc:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        raise DatabaseError(f"computing derived tables failed: {exc}") from None
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        raise
    return True
