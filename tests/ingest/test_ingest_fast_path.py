"""The ingest fast path (plain INSERTs) and its safe-mode redo give exactly the safe-mode results.

A file is first written with plain INSERTs; a key that exists already (in the store,
in an earlier batch, in the same batch) aborts the transaction and the file is
ingested again with the classifying INSERT. The reference is an ingest in safe mode
only (``IngestOptions(fast=False)``). Standard input is copied to a temporary file
first and then ingested like a file.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
from pathlib import Path

import duckdb
import orjson
import pytest

from fabric_trace.ingest import pipeline, sources
from fabric_trace.service import run_ingest
from fabric_trace.store import db as store

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


def _safe_ingest(db: str, path: Path, batch: int) -> None:
    con = store.connect(db)
    try:
        pipeline.ingest(con, db, [str(path)], pipeline.IngestOptions(batch_spans=batch, fast=False))
    finally:
        con.close()


@pytest.mark.parametrize("batch", [100, 1000])
def test_in_file_duplicates_redo_matches_safe_mode(tmp_path: Path, batch: int) -> None:
    path = _file(tmp_path)
    fast_db = str(tmp_path / "fast.duckdb")
    summary = run_ingest(fast_db, [str(path)], analyze=False, batch_spans=batch)
    (f,) = summary.files
    assert (f.spans_decoded, f.spans_ingested, f.spans_duplicate, f.spans_rejected) == (198, 196, 1, 1)
    safe_db = str(tmp_path / "safe.duckdb")
    _safe_ingest(safe_db, path, batch)
    stdin_db = str(tmp_path / "stdin.duckdb")
    _stdin_ingest(stdin_db, path, batch)
    fast, safe, stdin = _state(fast_db), _state(safe_db), _state(stdin_db)
    assert fast == safe == stdin
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


class _Stdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


def test_stdin_spool_rolls_over_to_disk_and_reopens(monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytes(range(256)) * 5000  # 1.28 MB
    monkeypatch.setattr(sources, "SPOOL_MEMORY_BYTES", 100_000)
    spool = sources.StdinSpool(io.BytesIO(data))
    try:
        assert spool.complete and spool.size == len(data) and spool.sha256 == hashlib.sha256(data).hexdigest()
        for _ in range(2):  # a second pass reads the same bytes
            f = spool.open()
            assert f.read() == data
            f.close()
    finally:
        spool.close()


class _FullDisk:
    """A spool file that takes 10 kB and then fails like a full disk."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self._buf = io.BytesIO()

    def write(self, b: bytes) -> int:
        if self._buf.tell() + len(b) > 10_000:
            raise OSError(28, "No space left on device")
        return self._buf.write(b)

    def __getattr__(self, name: str) -> object:
        return getattr(self._buf, name)


def test_stdin_spool_that_cannot_be_written_still_reads_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytes(range(256)) * 5000
    monkeypatch.setattr(sources, "_SPOOL_CHUNK", 4096)  # 2 chunks copied, then the disk is full
    monkeypatch.setattr(sources.tempfile, "SpooledTemporaryFile", _FullDisk)
    spool = sources.StdinSpool(io.BytesIO(data))
    assert not spool.complete and "No space left" in (spool.error or "") and spool.size == 8192
    assert io.BufferedReader(spool.open()).read() == data  # read once: the copied part, then the rest


def test_stdin_overlapping_the_store_and_unspoolable_stdin_match_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Standard input: fast mode with the safe redo on overlap; safe mode only when it could not be copied."""
    path = _file(tmp_path)
    ref_db = str(tmp_path / "ref.duckdb")
    _safe_ingest(ref_db, path, 100)
    for spoolable in (True, False):
        db = str(tmp_path / f"s{spoolable}.duckdb")
        run_ingest(db, [str(path)], analyze=False, batch_spans=100)  # everything stored already
        modes: list[bool] = []
        begin = pipeline.StoreWriter.begin_file
        with monkeypatch.context() as m:
            m.setattr(pipeline.StoreWriter, "begin_file", lambda self, fast: (modes.append(fast), begin(self, fast))[1])
            m.setattr(sys, "stdin", _Stdin(path.read_bytes()))
            if not spoolable:
                m.setattr(sources.tempfile, "SpooledTemporaryFile", _FullDisk)
            summary = run_ingest(db, ["-"], analyze=False, batch_spans=100)
        (f,) = summary.files
        assert (f.spans_ingested, f.spans_duplicate, f.spans_rejected) == (0, 197, 1)
        assert f.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and f.size_bytes == path.stat().st_size
        assert modes == ([True, False] if spoolable else [False])
        if not spoolable:
            assert any("No space left" in msg for msg in f.messages)
        spans, _, manifest = _state(db)
        assert spans == _state(ref_db)[0] and len(manifest) == 2


def test_stdin_read_error_is_an_input_error_not_a_crash() -> None:
    from fabric_trace.errors import InputNotFound

    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            raise OSError(5, "Input/output error")

    with pytest.raises(InputNotFound, match="cannot read standard input"):
        sources.StdinSpool(Broken())  # type: ignore[arg-type]


@pytest.mark.parametrize("fast", [True, False])
def test_spans_staged_in_chunks_store_what_one_chunk_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            fast: bool) -> None:
    """The decoding thread converts every STAGE_SPANS spans to Arrow; the writer gets the chunks
    of a batch together: the same rows, quarantine (rejections made in earlier chunks
    included) and counts as a batch converted at once."""
    path = _file(tmp_path)
    data = path.read_bytes().split(b"\n")
    data.insert(12, b'{"resourceSpans": [ not json')
    path.write_bytes(b"\n".join(data))
    states = []
    for stage in (7, 1_000_000):
        monkeypatch.setattr(pipeline, "STAGE_SPANS", stage)
        db = str(tmp_path / f"stage{stage}.duckdb")
        con = store.connect(db)
        try:
            pipeline.ingest(con, db, [str(path)], pipeline.IngestOptions(batch_spans=60, fast=fast))
        finally:
            con.close()
        states.append(_state(db))
    assert states[0] == states[1]
    spans, quarantine, manifest = states[0]
    assert len(spans) == 196 and manifest[0][:5] == (198, 196, 1, 1, 2)
    assert [q[0] for q in quarantine] == ["line 13", "line 31, resourceSpans[0].scopeSpans[0].spans[1]"]
