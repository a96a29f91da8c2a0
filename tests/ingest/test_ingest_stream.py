"""Fast mode's one streaming INSERT per file stores exactly what one INSERT per batch stores.

:class:`~fabric_trace.ingest.writer_stream.StreamInsert` resolves resource and
scope ids and the resource crosswalk columns on a private DuckDB connection and
feeds every batch of a file to one statement. The reference is the per-batch
statement (``IngestOptions(stream=False)``), on the real samples and captures and on
generated files with awkward values, several resources and scopes, rejected
lines and duplicate keys (which abort the fast pass and redo the file in safe mode).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fabric_trace.ingest import pipeline
from fabric_trace.ingest.writer_stream import StreamInsert
from fabric_trace.store import db as store

REPO = Path(__file__).resolve().parents[2]


def _ingest(db: str, paths: list[Path], *, stream: bool, batch: int = 50_000) -> pipeline.IngestSummary:
    con = store.connect(db)
    try:
        return pipeline.ingest(con, db, [str(p) for p in paths],
                               pipeline.IngestOptions(batch_spans=batch, stream=stream))
    finally:
        con.close()


def _dump(db: str) -> dict[str, Any]:
    """Every stored row that ingest writes (times of writing and paths left out)."""
    con = duckdb.connect(db, read_only=True)
    try:
        cols = [r[0] for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'span_store' ORDER BY column_index").fetchall()]
        return {
            "span_store": con.execute(f"SELECT {', '.join(cols)} FROM span_store ORDER BY trace_id, span_id").fetchall(),
            "resources": con.execute("SELECT * FROM resources ORDER BY resource_id").fetchall(),
            "scopes": con.execute("SELECT * FROM scopes ORDER BY scope_id").fetchall(),
            # in order; the ids themselves come from a sequence that a rolled-back fast pass
            # has advanced already when it wrote rejections before meeting a stored key
            "quarantine": con.execute("SELECT file_id, location, action, reason, trace_id, span_id, "
                                      "raw FROM quarantine ORDER BY quarantine_id").fetchall(),
            "files": con.execute("SELECT file_id, sha256, size_bytes, format, spans_decoded, spans_ingested, "
                                 "spans_duplicate, spans_rejected, records_rejected, repairs, traces "
                                 "FROM files ORDER BY file_id").fetchall(),
        }
    finally:
        con.close()


def _same(tmp_path: Path, paths: list[Path], batch: int = 50_000) -> dict[str, Any]:
    a, b = str(tmp_path / "stream.duckdb"), str(tmp_path / "batches.duckdb")
    sa = _ingest(a, paths, stream=True, batch=batch)
    sb = _ingest(b, paths, stream=False, batch=batch)
    assert [f.as_dict() for f in sa.files] == [f.as_dict() for f in sb.files]
    got, want = _dump(a), _dump(b)
    for table in want:
        assert got[table] == want[table], table
    return got


def _sample_files(samples: Path) -> list[Path]:
    files = sorted(p for p in samples.rglob("*") if p.is_file() and p.suffix not in (".md",) and p.name != "SHA256SUMS")
    return files + sorted((REPO / "tests" / "data" / "captures").glob("*.otlp.jsonl"))


def test_every_sample_and_capture_same_rows(samples: Path, tmp_path: Path) -> None:
    files = _sample_files(samples)
    got = _same(tmp_path, files)
    assert len(got["span_store"]) > 100 and len(got["resources"]) > 5


def test_samples_twice_in_small_batches_same_rows(samples: Path, tmp_path: Path) -> None:
    """Small batches (the stream takes many), the files given twice (each second copy is
    recognised by its hash) and a concatenation of all JSON lines (its spans exist already:
    the fast pass is aborted and the file redone in safe mode)."""
    files = [p for p in _sample_files(samples) if p.name.endswith(".jsonl")]
    joined = tmp_path / "joined.jsonl"
    joined.write_bytes(b"".join(p.read_bytes().rstrip(b"\n") + b"\n" for p in files))
    got = _same(tmp_path, files + files + [joined], batch=7)
    assert any(f[6] for f in got["files"])  # the joined file found its spans stored already


# --------------------------------------------------------------------------- generated files

_TID = st.sampled_from(["5b8efff798038103d269b633813fc60c", "0af7651916cd43dd8448eb211c80319c",
                        "4BF92F3577B34DA6A3CE929D0E0E4736"])
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
_VALUE = st.one_of(
    st.builds(lambda s: {"stringValue": s}, _TEXT),
    st.builds(lambda i: {"intValue": str(i)}, st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda i: {"intValue": i}, st.integers(-(2**53), 2**53)),
    st.builds(lambda i: {"intValue": str(i)}, st.integers(2**63, 2**70)),  # not an int64: repaired
    st.builds(lambda d: {"doubleValue": d}, st.floats(allow_nan=False)),
    st.just({"doubleValue": "NaN"}),
    st.builds(lambda b: {"boolValue": b}, st.booleans()),
    st.just({}),
    st.builds(lambda v: {"arrayValue": {"values": v}},
              st.lists(st.builds(lambda s: {"stringValue": s}, _TEXT), max_size=3)),
    st.builds(lambda s: {"kvlistValue": {"values": [{"key": "k", "value": {"stringValue": s}}]}}, _TEXT),
)
_KEYS = st.sampled_from(["service.name", "gen_ai.system", "gen_ai.request.model", "http.request.method",
                         "url.full", "server.address", "cloud.region", "host.name", "db.system.name",
                         "gen_ai.usage.input_tokens", "enduser.id", "k", "K", "ünï"])
_ATTRS = st.lists(st.builds(lambda k, v: {"key": k, "value": v}, _KEYS, _VALUE), max_size=5)


@st.composite
def _span(draw: Any) -> dict[str, Any]:
    span: dict[str, Any] = {"traceId": draw(_TID), "spanId": f"{draw(st.integers(1, 40)):016x}",
                            "name": draw(_TEXT), "kind": draw(st.integers(0, 5)),
                            "startTimeUnixNano": str(draw(st.integers(0, 2**62))),
                            "endTimeUnixNano": str(draw(st.integers(0, 2**62))),
                            "attributes": draw(_ATTRS)}
    if draw(st.booleans()):
        span["status"] = {"code": draw(st.integers(0, 2)), "message": draw(_TEXT)}
    if draw(st.booleans()):
        span["events"] = [{"timeUnixNano": "5", "name": "e", "attributes": draw(_ATTRS)}]
    return span


@st.composite
def _line(draw: Any) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from([b"{not json", b'{"resourceSpans": 5}', b"[]", b'{"traceId": 1}']))
    groups = []
    for _ in range(draw(st.integers(1, 3))):
        resource = {"attributes": draw(_ATTRS)}
        scopes = [{"scope": {"name": draw(st.sampled_from(["a", "b", ""])), "attributes": draw(_ATTRS)},
                   "spans": draw(st.lists(_span(), max_size=4))} for _ in range(draw(st.integers(1, 2)))]
        groups.append({"resource": resource, "scopeSpans": scopes})
    try:
        return orjson.dumps({"resourceSpans": groups})
    except TypeError:  # an int beyond 64 bits
        import json

        return json.dumps({"resourceSpans": groups}).encode()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_line(), min_size=1, max_size=12), batch=st.sampled_from([1, 3, 50_000]))
def test_generated_files_same_rows(tmp_path_factory: pytest.TempPathFactory, lines: list[bytes], batch: int) -> None:
    tmp = tmp_path_factory.mktemp("gen")
    path = tmp / "gen.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    _same(tmp, [path], batch=batch)


def test_a_failing_stream_rolls_the_file_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error while feeding the statement (here: resolving a batch) fails the file as a
    whole, as an error in a per-batch INSERT does: nothing of it is stored."""
    src = REPO / "tests" / "data" / "captures" / "langgraph.otlp.jsonl"

    def boom(self: StreamInsert, prep: Any) -> Any:
        raise RuntimeError("resolver broke")

    monkeypatch.setattr(StreamInsert, "resolve", boom)
    db = str(tmp_path / "t.duckdb")
    with pytest.raises(Exception, match="resolver broke"):
        _ingest(db, [src], stream=True)
    con = duckdb.connect(db, read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM span_store").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM files").fetchone()[0] == 0
    finally:
        con.close()
