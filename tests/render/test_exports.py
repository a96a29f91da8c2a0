"""``fabric trace export``: Perfetto nesting (property-tested), speedscope stacks, Jaeger round trip, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import duckdb
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fabric_trace.cli.app import app
from fabric_trace.render.export import ExportSpan, assign_lanes, to_jaeger, to_perfetto, to_speedscope
from fabric_trace.service import run_ingest
from hostile import HOSTILE_BASE, HOSTILE_HTML
from pictures_helpers import agent_trace, build_store

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "fixtures" / "scenarios"
runner = CliRunner()


# -- generated span forests --------------------------------------------------------------------------
@st.composite
def forests(draw: st.DrawFn) -> list[ExportSpan]:
    """Random traces: parents anywhere before, children possibly outside their parent, overlapping siblings."""
    n_traces = draw(st.integers(1, 3))
    services = ["a", "b", "c"]
    out: list[ExportSpan] = []
    for t in range(n_traces):
        tid = f"{t + 1:032x}"
        n = draw(st.integers(1, 25))
        rel: list[tuple[int, int]] = []
        base = len(out)
        for i in range(n):
            parent = draw(st.integers(-1, i - 1)) if i else -1
            if parent >= 0 and draw(st.booleans()):
                ps, pe = rel[parent]
                pe = max(ps, pe)
                start = draw(st.integers(ps, pe))
                end = draw(st.integers(start, pe)) if draw(st.integers(0, 4)) else start + draw(st.integers(-50, 400))
            else:
                start = draw(st.integers(0, 1000))
                end = start + draw(st.integers(-20, 600))
            rel.append((start, end))
            out.append(ExportSpan(
                trace_id=tid, span_id=f"{i + 1:016x}",
                parent_span_id=None if parent < 0 else f"{parent + 1:016x}",
                name=draw(st.sampled_from(["op", "llm", "tool", *HOSTILE_BASE[:3]])),
                service=draw(st.sampled_from(services)), start_ns=1_700_000_000_000_000_000 + start,
                end_ns=1_700_000_000_000_000_000 + end,
                depth=0 if parent < 0 else out[base + parent].depth + 1,
            ))
    return out


def _ns(us: float) -> int:
    return round(us * 1000)


def check_perfetto(doc: dict, spans: list[ExportSpan]) -> None:
    """Every span is one X event; the slices of each (pid, tid) are pairwise nested or disjoint; flows bind."""
    events = doc["traceEvents"]
    xs = [e for e in events if e["ph"] == "X"]
    assert len(xs) == len(spans)
    assert sorted((e["args"]["trace_id"], e["args"]["span_id"]) for e in xs) == sorted(
        (s.trace_id, s.span_id) for s in spans)
    origin = doc["otherData"]["origin_unix_ns"]
    by_id = {(s.trace_id, s.span_id): s for s in spans}
    tracks: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for e in xs:
        s = by_id[(e["args"]["trace_id"], e["args"]["span_id"])]
        start, end = _ns(e["ts"]), _ns(e["ts"]) + _ns(e["dur"])
        assert (start + origin, end + origin) == (s.start_ns, s.end_clipped)
        tracks[(e["pid"], e["tid"])].append((start, end))
    for intervals in tracks.values():
        intervals.sort(key=lambda iv: (iv[0], -iv[1]))
        stack: list[int] = []
        for start, end in intervals:
            while stack and stack[-1] <= start:
                stack.pop()
            assert not stack or end <= stack[-1], "slices on one thread overlap without nesting"
            stack.append(end)
    names = {e["pid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    for e in xs:
        assert names[e["pid"]] == e["args"]["service"]
    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    finishes = {e["id"]: e for e in events if e["ph"] == "f"}
    assert starts.keys() == finishes.keys()
    cross = sum(1 for s in spans if s.parent_span_id and (s.trace_id, s.parent_span_id) in by_id
                and by_id[(s.trace_id, s.parent_span_id)].service != s.service)
    assert len(starts) == cross
    for fid, f in finishes.items():
        assert f["bp"] == "e"
        for ev in (starts[fid], f):
            assert any(a <= _ns(ev["ts"]) <= b for a, b in tracks[(ev["pid"], ev["tid"])]), "flow end outside a slice"


@settings(max_examples=150, deadline=None)
@given(forests())
def test_perfetto_slices_nest_on_every_thread(spans: list[ExportSpan]) -> None:
    check_perfetto(orjson.loads(to_perfetto(spans)), spans)


@st.composite
def sequential_trees(draw: st.DrawFn) -> list[ExportSpan]:
    """One service, every child inside its parent and siblings one after another (no concurrency)."""
    spans = [ExportSpan(trace_id="1" * 32, span_id=f"{1:016x}", parent_span_id=None, name="root", service="s",
                        start_ns=0, end_ns=10_000)]
    work = [0]
    while work and len(spans) < 40:
        p = spans[work.pop()]
        cuts = sorted(draw(st.lists(st.integers(p.start_ns, p.end_ns), max_size=6)))
        for a, b in zip(cuts[0::2], cuts[1::2]):
            spans.append(ExportSpan(trace_id=p.trace_id, span_id=f"{len(spans) + 1:016x}", parent_span_id=p.span_id,
                                    name="c", service="s", start_ns=a, end_ns=b, depth=p.depth + 1))
            work.append(len(spans) - 1)
    return spans


@settings(max_examples=100, deadline=None)
@given(sequential_trees())
def test_a_trace_without_concurrency_uses_one_lane(spans: list[ExportSpan]) -> None:
    assert set(assign_lanes(spans, [s.service for s in spans])) == {0}


@pytest.mark.parametrize("k", [1, 2, 5])
def test_k_overlapping_siblings_use_k_lanes(k: int) -> None:
    root = ExportSpan(trace_id="1" * 32, span_id="0" * 15 + "1", parent_span_id=None, name="r", service="s",
                      start_ns=0, end_ns=1000)
    kids = [ExportSpan(trace_id="1" * 32, span_id=f"{i + 2:016x}", parent_span_id=root.span_id, name="t",
                       service="s", start_ns=10 + i, end_ns=500 + i, depth=1) for i in range(k)]
    lanes = assign_lanes([root, *kids], ["s"] * (k + 1))
    assert lanes[0] == 0 and lanes[1] == 0  # the first child nests in the root
    assert sorted(lanes[1:]) == list(range(k))


@settings(max_examples=100, deadline=None)
@given(forests())
def test_speedscope_profiles_are_balanced_stacks(spans: list[ExportSpan]) -> None:
    doc = orjson.loads(to_speedscope(spans))
    assert doc["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    opened = 0
    for prof in doc["profiles"]:
        assert prof["type"] == "evented" and prof["unit"] == "nanoseconds"
        stack: list[int] = []
        last = prof["startValue"]
        for ev in prof["events"]:
            assert ev["at"] >= last
            last = ev["at"]
            if ev["type"] == "O":
                stack.append(ev["frame"])
                opened += 1
            else:
                assert stack and stack.pop() == ev["frame"]
        assert not stack and last <= prof["endValue"]
    assert opened == len(spans)


def test_perfetto_of_a_real_trace_has_lanes_flows_and_names(tmp_path: Path) -> None:
    tid = "ab" * 16
    db = build_store(tmp_path, [agent_trace(tid)])
    out = tmp_path / "t.json"
    r = runner.invoke(app, ["trace", "export", tid[:10], "--db", db, "-f", "perfetto", "-o", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    threads = {(e["pid"], e["args"]["name"]) for e in doc["traceEvents"] if e.get("name") == "thread_name"}
    procs = {e["args"]["name"] for e in doc["traceEvents"] if e.get("name") == "process_name"}
    assert procs == {"gateway", "agent"}
    # the two parallel tool calls overlap without nesting: the agent needs a second lane
    assert any(name == "agent #2" for _, name in threads)
    flows = [e for e in doc["traceEvents"] if e["ph"] == "s"]
    assert len(flows) == 1  # gateway "call agent" -> agent server span
    con = duckdb.connect(db, read_only=True)
    spans = con.execute("SELECT count(*) FROM spans WHERE trace_id = ?", [tid]).fetchone()[0]
    llm = [e for e in doc["traceEvents"] if e["ph"] == "X" and e["name"] == "chat gpt-4o"][0]
    assert llm["cat"] == "llm" and llm["args"]["attributes"]["gen_ai.usage.input_tokens"] == 1200
    assert llm["args"]["critical_path_ms"] > 0
    assert sum(1 for e in doc["traceEvents"] if e["ph"] == "X") == spans


def _canonical(db: str) -> list[tuple]:
    con = duckdb.connect(db, read_only=True)
    rows = con.execute("""
        SELECT trace_id, span_id, parent_span_id, name, kind, start_ns // 1000, end_ns // 1000, status_code,
               status_message, service_name, role, CAST(attributes AS VARCHAR), CAST(resource_attributes AS VARCHAR),
               scope_name, scope_version, json_array_length(events),
               CAST(list_transform(CAST(events AS JSON[]), lambda e: json_extract_string(e, '$.name')) AS VARCHAR)
        FROM spans ORDER BY trace_id, span_id""").fetchall()
    con.close()
    return rows


def _scalar_attrs(row: tuple) -> tuple:
    # arrays and maps travel as their JSON text (docs/exports.md)
    attrs = {k: orjson.dumps(v).decode() if isinstance(v, (list, dict)) else v
             for k, v in json.loads(row[11]).items()}
    res = json.loads(row[12])
    return (*row[:11], attrs, res, *row[13:])


def test_jaeger_export_reads_back_as_the_same_spans(tmp_path: Path) -> None:
    src = tmp_path / "src.duckdb"
    run_ingest(str(src), [str(SCENARIOS / "faults.jsonl")])
    out = tmp_path / "all.jaeger.json"
    r = runner.invoke(app, ["trace", "export", "--db", str(src), "-f", "jaeger", "-o", str(out)])
    assert r.exit_code == 0, r.output
    back = tmp_path / "back.duckdb"
    summary = run_ingest(str(back), [str(out)])
    assert summary.total("spans_rejected") == 0
    a, b = _canonical(str(src)), _canonical(str(back))
    assert len(a) == len(b) > 500
    assert [_scalar_attrs(x) for x in a] == [_scalar_attrs(y) for y in b]


def test_jaeger_document_shape() -> None:
    s = ExportSpan(trace_id="ab" * 16, span_id="1" * 16, parent_span_id=None, name="n", service="svc",
                   start_ns=1_500, end_ns=9_999, kind="SERVER", status_code="ERROR", status_message="boom",
                   attributes={"a": [1, 2], "b": 1.5, "c": True, "d": 3}, resource={"service.name": "svc", "x": "y"},
                   events=[{"time_ns": 2_000, "name": "e", "attributes": {"k": "v"}}], flags=1)
    doc = orjson.loads(to_jaeger([s]))
    (trace,) = doc["data"]
    (sp,) = trace["spans"]
    assert (sp["startTime"], sp["duration"]) == (1, 8)
    tags = {t["key"]: (t["type"], t["value"]) for t in sp["tags"]}
    assert tags["a"] == ("string", "[1,2]") and tags["b"] == ("float64", 1.5) and tags["c"] == ("bool", True)
    assert tags["d"] == ("int64", 3) and tags["error"] == ("bool", True) and tags["span.kind"] == ("string", "server")
    assert tags["otel.status_description"] == ("string", "boom")
    assert trace["processes"][sp["processID"]] == {"serviceName": "svc", "tags": [
        {"key": "x", "type": "string", "value": "y"}]}
    assert sp["logs"] == [{"timestamp": 2, "fields": [{"key": "event", "type": "string", "value": "e"},
                                                       {"key": "k", "type": "string", "value": "v"}]}]


def test_filtered_multi_trace_export_for_perfetto(tmp_path: Path) -> None:
    db = build_store(tmp_path, [agent_trace(f"{i + 1:032x}", name=f"wf{i % 2}") for i in range(6)])
    out = tmp_path / "many.json"
    r = runner.invoke(app, ["trace", "export", "--db", db, "-f", "perfetto", "-o", str(out), "--limit", "4"])
    assert r.exit_code == 0, r.output
    assert "exported 4 traces" in r.stderr
    doc = json.loads(out.read_text())
    assert doc["otherData"]["traces"] == 4
    assert len({e["args"]["trace_id"] for e in doc["traceEvents"] if e["ph"] == "X"}) == 4
    r = runner.invoke(app, ["trace", "export", "--db", db, "-f", "perfetto", "-o", str(out),
                            "--where", "name = wf1"])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["otherData"]["traces"] == 3


def test_export_errors_are_clear(tmp_path: Path) -> None:
    db = build_store(tmp_path, [agent_trace("cd" * 16)])
    r = runner.invoke(app, ["trace", "export", "ffff", "--db", db, "-f", "jaeger", "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and "no trace 'ffff'" in r.stderr
    r = runner.invoke(app, ["trace", "export", "cd", "--db", db, "-f", "jaeger", "-o", str(tmp_path / "x"),
                            "--workflow", "w"])
    assert r.exit_code == 2 and "either a TRACE or filters" in r.stderr
    r = runner.invoke(app, ["trace", "export", "cd", "--db", db, "-f", "jaeger", "-o", str(tmp_path / "no" / "x")])
    assert r.exit_code == 73 and "cannot write the jaeger file" in r.stderr
    r = runner.invoke(app, ["trace", "export", "--db", db, "-f", "jaeger", "-o", "x", "--workflow", "nope"])
    assert r.exit_code == 2 and "no trace matches" in r.stderr
    r = runner.invoke(app, ["trace", "export", "cd", "--db", db, "-f", "svg", "-o", "x"])
    assert r.exit_code == 2


@pytest.mark.parametrize("fmt", ["perfetto", "speedscope", "jaeger"])
def test_hostile_strings_survive_exports_exactly(tmp_path: Path, fmt: str) -> None:
    hostile = HOSTILE_BASE + HOSTILE_HTML
    lines = [agent_trace(f"{i + 1:032x}", name=h, service="svc" + h, attr_value=h, events_name=h)
             for i, h in enumerate(hostile)]
    db = build_store(tmp_path, lines)
    if fmt == "perfetto":  # once as a real process, writing to stdout
        proc = subprocess.run([sys.executable, "-m", "fabric_trace", "trace", "export", "--db", db, "-f", fmt,
                               "-o", "-"], capture_output=True, timeout=900)
        assert proc.returncode == 0, proc.stderr.decode()
        raw = proc.stdout
    else:
        out = tmp_path / "x.json"
        r = runner.invoke(app, ["trace", "export", "--db", db, "-f", fmt, "-o", str(out)])
        assert r.exit_code == 0, r.output
        raw = out.read_bytes()
    text = json.dumps(json.loads(raw), ensure_ascii=False)
    con = duckdb.connect(db, read_only=True)
    names = {r[0] for r in con.execute("SELECT name FROM spans WHERE parent_span_id IS NULL").fetchall()}
    con.close()
    assert len(names) == len(hostile)
    for name in names:
        assert json.dumps(name, ensure_ascii=False)[1:-1] in text  # the exact text, JSON-escaped
