"""Impossible span times (issue 18, item 1): detected in the repair step, reported,
and kept out of durations, percentiles and the critical path (docs/critical-path.md, repair 1b)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import otlp_build
from test_graph_helpers import batch_tables, reference_tables, span, traces

from fabric_trace.cli.app import app
from fabric_trace.graph import analyze_trace
from fabric_trace.graph.model import IMPLAUSIBLE_TIME, Span
from fabric_trace.graph.repair import PLAUSIBLE_TIMES, TimeBounds
from fabric_trace.service import demo_paths

runner = CliRunner()
T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z
DAY = 86_400 * 10**9


def bounded(spans: list[Span]) -> list[Span]:
    return [Span(s.span_id, s.parent_span_id, s.start_ns, s.end_ns, s.kind, s.service_name, s.host, s.trace_id,
                 status_code=s.status_code) for s in spans]


def test_zero_start_on_a_root_is_unknown_and_covers_its_children() -> None:
    spans = [span("r", None, 0, T0 + 100), span("a", "r", T0 + 10, T0 + 40), span("b", "r", T0 + 50, T0 + 90)]
    a = analyze_trace(spans, time_bounds=PLAUSIBLE_TIMES)
    assert [(r.kind, r.span_id, r.offset_ns) for r in a.repairs] == [(IMPLAUSIBLE_TIME, "r", -(T0 + 10))]
    assert (a.spans["r"].start_ns, a.spans["r"].end_ns) == (T0 + 10, T0 + 90)
    assert (a.facts.start_ns, a.facts.duration_ns, a.facts.root_duration_ns) == (T0 + 10, 80, 80)
    assert sum(g.duration_ns for g in a.critical_paths["r"]) == 80
    # without bounds the time is taken as recorded: a trace of 56 years
    assert analyze_trace(spans).facts.duration_ns == T0 + 100


@pytest.mark.parametrize("bad", [(0, 5), (T0 - 40 * 365 * DAY, T0 - 40 * 365 * DAY + 5),
                                 (T0 + 200 * 365 * DAY, T0 + 200 * 365 * DAY + 5),
                                 (T0 + 30 * DAY, T0 + 30 * DAY + 5), (T0 + 20, T0 + 10 * DAY)])
def test_leaf_with_impossible_time_is_zero_length_at_its_parent_start(bad: tuple[int, int]) -> None:
    # zero, before 2000, after 2100, 30 days after the trace's other spans, lasting 10 days
    spans = [span("r", None, T0, T0 + 100), span("a", "r", T0 + 10, T0 + 40), span("x", "a", *bad)]
    a = analyze_trace(spans, time_bounds=PLAUSIBLE_TIMES)
    assert [(r.kind, r.span_id) for r in a.repairs] == [(IMPLAUSIBLE_TIME, "x")]
    assert (a.spans["x"].start_ns, a.spans["x"].end_ns) == (T0 + 10, T0 + 10)
    assert (a.facts.start_ns, a.facts.end_ns) == (T0, T0 + 100)
    assert a.spans["x"].on_critical_path_ns == 0 and a.spans["x"].self_ns == 0


def test_trace_without_any_plausible_time_has_an_unknown_extent() -> None:
    spans = [span("r", None, 0, 10), span("a", "r", 2, 5)]
    a = analyze_trace(spans, time_bounds=PLAUSIBLE_TIMES)
    assert {r.span_id for r in a.repairs if r.kind == IMPLAUSIBLE_TIME} == {"r", "a"}
    assert (a.facts.start_ns, a.facts.end_ns, a.facts.duration_ns, a.facts.root_duration_ns) == (None,) * 4
    assert batch_tables(spans, None, PLAUSIBLE_TIMES) == reference_tables(spans, None, PLAUSIBLE_TIMES)


# Small bounds over the small random times of test_graph_helpers.traces: many spans
# fall outside, in every position (roots, leaves, cycle members, duplicates).
SMALL = TimeBounds(min_ns=4, max_ns=20, max_spread_ns=8)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(traces(weird=True, max_spans=8), min_size=1, max_size=4), st.sampled_from((None, 0, 3)))
def test_batch_equals_reference_with_time_bounds(trace_list: list[list[Span]], skew: int | None) -> None:
    spans = [Span(s.span_id, s.parent_span_id, s.start_ns, s.end_ns, s.kind, s.service_name, s.host, f"t{i:02d}",
                  status_code=s.status_code) for i, trace in enumerate(trace_list) for s in trace]
    assert batch_tables(spans, skew, SMALL) == reference_tables(spans, skew, SMALL)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traces(weird=False, max_spans=10, max_time=10**9), st.data())
def test_one_impossible_time_never_stretches_the_trace(spans: list[Span], data: st.DataObject) -> None:
    """Property: replacing any span's time by an impossible one leaves the trace's extent
    within the other spans' and records exactly that span."""
    spans = [Span(s.span_id, s.parent_span_id, s.start_ns + T0, s.end_ns + T0, s.kind, s.service_name, s.host,
                  s.trace_id) for s in spans]
    victim = data.draw(st.sampled_from(spans))
    far = (0, 1, T0 - 30 * 365 * DAY, T0 + 100 * 365 * DAY)
    # 9 days after the others: only impossible relative to other spans
    start = data.draw(st.sampled_from(far + ((T0 + 9 * DAY,) if len({s.span_id for s in spans}) > 1 else ())))
    broken = [Span(s.span_id, s.parent_span_id, start, start + 5, s.kind, s.service_name, s.host, s.trace_id)
              if s is victim else s for s in spans]
    a = analyze_trace(broken, time_bounds=PLAUSIBLE_TIMES)
    assert [r.span_id for r in a.repairs if r.kind == IMPLAUSIBLE_TIME] == [victim.span_id]
    others = [s for s in spans if s is not victim]
    if others:
        lo, hi = min(s.start_ns for s in others), max(s.end_ns for s in others)
        assert a.facts.start_ns is not None and a.facts.end_ns is not None
        assert lo <= a.facts.start_ns and a.facts.end_ns <= hi
    else:
        assert a.facts.duration_ns is None
    assert batch_tables(broken, None, PLAUSIBLE_TIMES) == reference_tables(broken, None, PLAUSIBLE_TIMES)


def _p99(db: Path) -> dict[str, float]:
    res = runner.invoke(app, ["report", "latency", "--db", str(db), "--format", "json"])
    assert res.exit_code == 0, res.stderr
    return {w["workflow"]: w["p99_ms"] for w in json.loads(res.stdout)["workflows"]}


@pytest.mark.parametrize("which", [0, 7])  # the first span of the file (a leaf), and a later one
def test_zeroing_one_span_of_the_demo_leaves_p99_sane_and_records_a_finding(tmp_path: Path, which: int) -> None:
    jsonl = Path(demo_paths(str(tmp_path / "demo"))[0])
    text = jsonl.read_text()
    starts = list(re.finditer(r'"startTimeUnixNano":"(\d+)"', text))
    m = starts[which]
    broken = tmp_path / "broken.jsonl"
    broken.write_text(text[:m.start(1)] + "0" + text[m.end(1):])
    good_db, bad_db = tmp_path / "good.duckdb", tmp_path / "bad.duckdb"
    for src, db in ((jsonl, good_db), (broken, bad_db)):
        res = runner.invoke(app, ["trace", "ingest", str(src), "--db", str(db)])
        assert res.exit_code == 0, res.stderr
    good, bad = _p99(good_db), _p99(bad_db)
    assert good.keys() == bad.keys()
    for wf, p99 in good.items():
        assert bad[wf] == pytest.approx(p99, rel=0.02), wf  # not 759,907,011,578 ms
    res = runner.invoke(app, ["query", "SELECT kind, severity, message, details FROM findings "
                              "WHERE kind = 'implausible_time'", "--db", str(bad_db), "--format", "json"])
    rows = json.loads(res.stdout)
    assert len(rows) == 1 and rows[0]["severity"] == "medium"
    assert "1970-01-01T00:00:00Z" in rows[0]["message"] and "treated as unknown" in rows[0]["message"]
    assert json.loads(rows[0]["details"])["raw_start_ns"] == 0
    res = runner.invoke(app, ["query", "SELECT max(duration_ns) AS mx, min(start_ns) AS t0 FROM traces",
                              "--db", str(bad_db), "--format", "json"])
    row = json.loads(res.stdout)[0]
    assert row["mx"] < 3_600 * 10**9 and row["t0"] > PLAUSIBLE_TIMES.min_ns


def test_trace_show_places_an_impossible_time_like_the_analysis(tmp_path: Path) -> None:
    ms = 10**6
    spans = [("r", None, 0, T0 + 90 * ms), ("a", "r", T0 + 10 * ms, T0 + 40 * ms), ("b", "r", T0 + 50 * ms, T0 + 90 * ms)]
    src = otlp_build.write(tmp_path / "t.jsonl", otlp_build.by_service({"svc": [
        otlp_build.span("5b8efff798038103d269b633813fc60c", f"{i + 1:016x}", "0000000000000001" if p else None, sid,
                        st, en, t0=0, unit=1) for i, (sid, p, st, en) in enumerate(spans)]}))
    db = tmp_path / "t.duckdb"
    assert runner.invoke(app, ["trace", "ingest", str(src), "--db", str(db)]).exit_code == 0
    res = runner.invoke(app, ["trace", "show", "5b8efff7", "--db", str(db), "--format", "json"])
    assert res.exit_code == 0, res.stderr
    shown = json.loads(res.stdout)
    root = next(s for s in shown["spans"] if s["name"] == "r")
    assert root["duration_ms"] == 80.0  # covers its children, not 56 years
    assert [f["kind"] for f in shown["findings"]] == ["implausible_time"]


def test_every_reading_command_works_with_a_trace_of_unknown_extent(tmp_path: Path) -> None:
    """A trace none of whose spans has a plausible time (NULL start/duration) next to normal ones."""
    jsonl = Path(demo_paths(str(tmp_path / "demo"))[0])
    zero = otlp_build.write(tmp_path / "zero.jsonl", otlp_build.by_service({"svc": [
        otlp_build.span("0badf00d98038103d269b633813fc60c", f"{i + 1:016x}", "0000000000000001" if i else None,
                        f"s{i}", i, i + 5, t0=0, unit=1) for i in range(3)]}))
    db = tmp_path / "u.duckdb"
    res = runner.invoke(app, ["trace", "ingest", str(jsonl), str(zero), "--db", str(db)])
    assert res.exit_code == 0, res.stderr
    res = runner.invoke(app, ["query", "SELECT start_ns, duration_ns FROM traces WHERE trace_id LIKE '0badf00d%'",
                              "--db", str(db), "--format", "json"])
    assert json.loads(res.stdout) == [{"start_ns": None, "duration_ns": None}]
    d = ["--db", str(db)]
    for args in (["trace", "ls", *d], ["trace", "ls", "--format", "json", *d], ["trace", "show", "0badf00d", *d],
                 ["report", "latency", *d], ["report", "latency", "--format", "json", *d], ["report", "trust", *d],
                 ["report", "locality", *d], ["report", "llm", *d], ["session", "ls", *d], ["report", "html", "--out", str(tmp_path / "r.html"), *d],
                 ["trace", "export", "0badf00d", "--format", "jaeger", "--out", "-", *d],
                 ["gate", "--baseline", str(db), "--candidate", str(db)],
                 ["gate", "--baseline", str(db), "--candidate", str(db), "--html", str(tmp_path / "g.html")],
                 ["diff", str(db), str(db)], ["diff", str(db), str(db), "--html", str(tmp_path / "d.html")]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0, (args, res.stderr, res.exception)
