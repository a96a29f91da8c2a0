"""The documented views are a contract: names, columns and types pinned here and in docs/schema.md."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from doc_tables import describe, doc_columns


DOC = (Path(__file__).resolve().parents[2] / "docs" / "schema.md").read_text()

CONTRACT: dict[str, list[tuple[str, str]]] = {
    "spans": [
        ("trace_id", "VARCHAR"), ("span_id", "VARCHAR"), ("parent_span_id", "VARCHAR"), ("name", "VARCHAR"),
        ("kind", "VARCHAR"), ("start_ns", "BIGINT"), ("end_ns", "BIGINT"), ("duration_ns", "BIGINT"),
        ("status_code", "VARCHAR"), ("status_message", "VARCHAR"), ("service_name", "VARCHAR"),
        ("service_namespace", "VARCHAR"), ("region", "VARCHAR"), ("zone", "VARCHAR"), ("host", "VARCHAR"),
        ("role", "VARCHAR"), ("operation", "VARCHAR"), ("model", "VARCHAR"), ("provider", "VARCHAR"),
        ("input_tokens", "BIGINT"), ("output_tokens", "BIGINT"), ("cached_input_tokens", "BIGINT"),
        ("peer", "VARCHAR"), ("url_scheme", "VARCHAR"), ("user_id", "VARCHAR"), ("session_id", "VARCHAR"),
        ("tool_name", "VARCHAR"), ("tool_call_id", "VARCHAR"), ("agent_name", "VARCHAR"),
        ("workflow_name", "VARCHAR"), ("db_system", "VARCHAR"), ("role_source", "VARCHAR"),
        ("role_evidence", "VARCHAR"), ("attributes", "JSON"),
        ("resource_attributes", "JSON"), ("scope_name", "VARCHAR"), ("scope_version", "VARCHAR"),
        ("scope_attributes", "JSON"), ("events", "JSON"), ("links", "JSON"), ("trace_state", "VARCHAR"),
        ("flags", "BIGINT"), ("dropped_attributes_count", "BIGINT"), ("dropped_events_count", "BIGINT"),
        ("dropped_links_count", "BIGINT"), ("resource_id", "VARCHAR"), ("scope_id", "VARCHAR"), ("file_id", "BIGINT"),
    ],
    "role_conflicts": [("trace_id", "VARCHAR"), ("span_id", "VARCHAR"), ("name", "VARCHAR"),
                       ("service_name", "VARCHAR"), ("role", "VARCHAR"), ("role_source", "VARCHAR"),
                       ("role_evidence", "VARCHAR"), ("rival_role", "VARCHAR"), ("rival_source", "VARCHAR"),
                       ("rival_evidence", "VARCHAR")],
    "span_events": [("trace_id", "VARCHAR"), ("span_id", "VARCHAR"), ("event_index", "BIGINT"),
                    ("time_ns", "BIGINT"), ("name", "VARCHAR"), ("attributes", "JSON"),
                    ("dropped_attributes_count", "BIGINT")],
    "span_links": [("trace_id", "VARCHAR"), ("span_id", "VARCHAR"), ("link_index", "BIGINT"),
                   ("linked_trace_id", "VARCHAR"), ("linked_span_id", "VARCHAR"), ("trace_state", "VARCHAR"),
                   ("flags", "BIGINT"), ("attributes", "JSON")],
    "manifest": [("file_id", "BIGINT"), ("path", "VARCHAR"), ("sha256", "VARCHAR"), ("size_bytes", "BIGINT"),
                 ("format", "VARCHAR"), ("spans_decoded", "BIGINT"), ("spans_ingested", "BIGINT"),
                 ("spans_duplicate", "BIGINT"), ("spans_rejected", "BIGINT"), ("records_rejected", "BIGINT"),
                 ("repairs", "BIGINT"), ("traces", "BIGINT"), ("ingested_at", "TIMESTAMP WITH TIME ZONE")],
    "quarantine": [("quarantine_id", "BIGINT"), ("file_id", "BIGINT"), ("path", "VARCHAR"), ("location", "VARCHAR"),
                   ("action", "VARCHAR"), ("reason", "VARCHAR"), ("trace_id", "VARCHAR"), ("span_id", "VARCHAR"),
                   ("raw", "VARCHAR"), ("recorded_at", "TIMESTAMP WITH TIME ZONE")],
    "traces": [("trace_id", "VARCHAR"), ("workflow", "VARCHAR"), ("root_span_id", "VARCHAR"),
               ("root_name", "VARCHAR"), ("root_service", "VARCHAR"), ("start_ns", "BIGINT"), ("end_ns", "BIGINT"),
               ("duration_ns", "BIGINT"), ("span_count", "BIGINT"), ("error_count", "BIGINT"),
               ("has_error", "BOOLEAN"), ("services", "VARCHAR[]"), ("incomplete", "BOOLEAN"),
               ("repaired", "BOOLEAN"), ("repair_count", "BIGINT"), ("root_count", "BIGINT"),
               ("session_id", "VARCHAR")],
    "critical_path": [("trace_id", "VARCHAR"), ("span_id", "VARCHAR"), ("start_ns", "BIGINT"), ("end_ns", "BIGINT"),
                      ("duration_ns", "BIGINT"), ("root_span_id", "VARCHAR")],
    "span_metrics": [("trace_id", "VARCHAR"), ("span_id", "VARCHAR"), ("self_ns", "BIGINT"),
                     ("on_critical_path_ns", "BIGINT"), ("depth", "BIGINT"), ("child_count", "BIGINT"),
                     ("root_span_id", "VARCHAR"), ("adjusted_start_ns", "BIGINT"), ("adjusted_end_ns", "BIGINT"),
                     ("shift_ns", "BIGINT")],
    "findings": [("analyzer", "VARCHAR"), ("kind", "VARCHAR"), ("severity", "VARCHAR"), ("trace_id", "VARCHAR"),
                 ("span_id", "VARCHAR"), ("message", "VARCHAR"), ("details", "JSON")],
}


@pytest.fixture(scope="module")
def demo_db(healthy_store: str) -> str:
    return healthy_store


@pytest.mark.parametrize("view", sorted(CONTRACT))
def test_view_columns_and_types(demo_db: str, view: str) -> None:
    assert describe(demo_db, view) == CONTRACT[view]


@pytest.mark.parametrize("view", sorted(CONTRACT))
def test_view_documented(view: str) -> None:
    assert f"`{view}`" in DOC
    heading = next(h for h in (f"## `{view}`", f"### `{view}`") if h in DOC)
    documented = doc_columns(DOC, heading)
    if documented:  # a section with a column table lists every column, in order
        assert documented == [c for c, _ in CONTRACT[view]], f"docs/schema.md, {heading}"
    for col, _ in CONTRACT[view]:
        assert col in DOC, f"{view}.{col} missing from docs/schema.md"


def test_critical_path_tiles_every_root(demo_db: str) -> None:
    con = duckdb.connect(demo_db, read_only=True)
    try:
        bad = con.execute(
            """
            SELECT t.trace_id FROM traces t
            JOIN (SELECT trace_id, root_span_id, sum(end_ns - start_ns) AS cp, min(start_ns) AS s, max(end_ns) AS e
                  FROM critical_path GROUP BY ALL) c ON c.trace_id = t.trace_id AND c.root_span_id = t.root_span_id
            JOIN span_store r ON r.trace_id = t.trace_id AND r.span_id = t.root_span_id
            WHERE c.cp <> r.end_ns - r.start_ns OR c.s <> r.start_ns OR c.e <> r.end_ns
            """
        ).fetchall()
        n = con.execute("SELECT count(*) FROM traces").fetchone()[0]
    finally:
        con.close()
    assert n == 24 and bad == []
