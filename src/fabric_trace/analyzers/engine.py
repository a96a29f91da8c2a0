"""Keeping derived tables in step with the data: the one freshness check, and refresh.

``fabric_meta.data_version`` is bumped by every committed ingest;
``derived_version`` (and ``derived_config``, a fingerprint of the registered
analyzers and of the config that shaped their results) record what the derived
tables were computed from. Every reader calls :func:`is_stale` (through
:func:`refresh`) and never serves stale results silently.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import duckdb

from fabric_trace.analyzers import registry
from fabric_trace.errors import DatabaseError
from fabric_trace.model import FINDING_COLUMNS

FINDINGS_DDL = f"""
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
SELECT {', '.join(FINDING_COLUMNS)} FROM finding_store;
"""


def config_fingerprint(config: Any) -> str:
    """Fingerprint of the registered analyzers (name, version, tables) and of their config sections."""
    data = getattr(config, "data", {}) or {}
    relevant = {
        a.name: {"version": a.version, "tables": list(a.tables),
                 "config": {s: data.get(s) for s in a.sections if s in data}}
        for a in registry().values()
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _meta(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.execute("SELECT key, value FROM fabric_meta").fetchall())


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()}


def is_stale(con: duckdb.DuckDBPyConnection, config: Any | None = None) -> bool:
    """True when the derived tables do not reflect the current data, the registered analyzers
    (a missing table counts) or ``config`` (when given)."""
    meta = _meta(con)
    if meta.get("derived_version") != meta.get("data_version"):
        return True
    have = _tables(con)
    if any(t not in have for a in registry().values() for t in a.tables):
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
            for table in analyzer.tables:
                con.execute(f"DROP TABLE IF EXISTS {table}")
            tables = analyzer.sql("tables.sql")
            if tables:
                con.execute(tables)
            analyzer.derive(con, config)
            views = analyzer.sql("views.sql")
            if views:
                con.execute(views)
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
