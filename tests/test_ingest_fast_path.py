"""The ingest fast path (plain INSERTs) and its safe-mode redo give exactly the safe-mode results.

A file is first written with plain INSERTs; a key that exists already (in the store,
in an earlier batch, in the same batch) aborts the transaction and the file is
ingested again with the classifying INSERT. Standard input is always ingested in
safe mode, so it is the reference here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import orjson
import pytest

from fabric_trace.ingest import pipeline
from fabric_trace.service import run_ingest

TID = "5b8efff798038103d269b633813fc60c"


def _span(i: int, name: str = "op", tid: str = TID) -> dict:
    return {"traceId": tid, "spanId": f"{i + 1:016x}", "name": name, "kind": 2,
            "startTimeUnixNano": str(1000 + i), "endTimeUnixNano": str(2000 + i),
            "attributes": [{"key": "http.request.method", "value": {"stringValue": "GET"}},
                           {"key": "n", "value": {"intValue": str(i)}}]}  # fmt: skip


def _line(*spans: dict) -> bytes:
    doc = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
                              "scopeSpans": [{"scope": {"name": "s"}, "spans": list(spans)}]}]}  # fmt: skip
    return orjson.dumps(doc) + b"\n"


def _file(tmp_path: Path) -> Path:
    """40 lines of 5 spans; line 30 repeats span 3 (same content) and span 7 with another name."""
    lines = [_line(*[_span(5 * n + k) for k in range(5)]) for n in range(40)]
    lines[29] = _line(_span(3), _span(7, name="changed"), _span(1000))
    path = tmp_path / "dups.jsonl"
    path.write_bytes(b"".join(lines))
    return path


def _state(db: str) -> tuple:
    con = duckdb.connect(db, read_only=True)
    try:
        spans = con.execute("SELECT trace_id, span_id, name, attributes, role, content_hash FROM span_store "
                            "ORDER BY span_id").fetchall()
        quarantine = con.execute("SELECT location, action, reason, trace_id, span_id FROM quarantine "
                                 "ORDER BY quarantine_id").fetchall()
        manifest = con.execute("SELECT spans_decoded, spans_ingested, spans_duplicate, spans_rejected, "
                               "records_rejected, traces FROM files").fetchall()
    finally:
        con.close()
    return spans, quarantine, manifest


def _stdin_ingest(db: str, path: Path, batch: int) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "fabric_trace", "trace", "ingest", "-", "--db", db, "--no-analyze",
         "--batch-spans", str(batch)],
        input=path.read_bytes(), capture_output=True, timeout=120, check=False,
    )
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("batch", [100, 1000])
def test_in_file_duplicates_redo_matches_safe_mode(tmp_path: Path, batch: int) -> None:
    path = _file(tmp_path)
    fast_db = str(tmp_path / "fast.duckdb")
    summary = run_ingest(fast_db, [str(path)], analyze=False, batch_spans=batch)
    (f,) = summary.files
    assert (f.spans_decoded, f.spans_ingested, f.spans_duplicate, f.spans_rejected) == (198, 196, 1, 1)
    safe_db = str(tmp_path / "safe.duckdb")
    _stdin_ingest(safe_db, path, batch)
    fast, safe = _state(fast_db), _state(safe_db)
    assert fast == safe
    (q,) = fast[1]
    assert q[0] == "line 30, resourceSpans[0].scopeSpans[0].spans[1]" and "conflicting duplicate" in q[2]
    assert q[4] == f"{8:016x}"


def test_overlap_with_the_store_is_redone_in_safe_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = tmp_path / "first.jsonl"
    first.write_bytes(_line(*[_span(k) for k in range(5)]))
    second = tmp_path / "second.jsonl"
    second.write_bytes(b"".join(_line(*[_span(5 * n + k) for k in range(5)]) for n in range(10)))
    modes: list[bool] = []
    begin = pipeline.StoreWriter.begin_file
    monkeypatch.setattr(pipeline.StoreWriter, "begin_file", lambda self, fast: (modes.append(fast), begin(self, fast))[1])
    db = str(tmp_path / "t.duckdb")
    run_ingest(db, [str(first)], analyze=False)
    summary = run_ingest(db, [str(second)], analyze=False, batch_spans=10)
    (f,) = summary.files
    assert (f.spans_ingested, f.spans_duplicate, f.spans_rejected) == (45, 5, 0)
    assert modes == [True, True, False]  # first file; second file fast, then redone safely
    spans, quarantine, manifest = _state(db)
    assert len(spans) == 50 and quarantine == [] and sum(m[1] for m in manifest) == 50
