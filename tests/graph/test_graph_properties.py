"""Property tests: reference vs brute force, batch vs reference, on random traces."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_graph_helpers import (
    batch_tables,
    brute_critical_path,
    brute_self_ns,
    reference_tables,
    traces,
)

from fabric_trace.graph import analyze_trace
from fabric_trace.graph.model import Span
from fabric_trace.graph.repair import repair_trace

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SKEW = st.sampled_from((None, 0, 3, 10**6))


@SETTINGS
@given(traces(weird=False), SKEW)
def test_segments_tile_root_and_match_brute_force_clean(spans: list[Span], skew: int | None) -> None:
    _check_against_brute_force(spans, skew)


@SETTINGS
@given(traces(weird=True), SKEW)
def test_segments_tile_root_and_match_brute_force_repaired(spans: list[Span], skew: int | None) -> None:
    _check_against_brute_force(spans, skew)


def _check_against_brute_force(spans: list[Span], skew: int | None) -> None:
    rt = repair_trace(spans, max_clock_skew_ns=skew)
    a = analyze_trace(spans, max_clock_skew_ns=skew)
    assert set(a.critical_paths) == set(rt.roots)
    for root, segs in a.critical_paths.items():
        duration = rt.end[root] - rt.start[root]
        assert sum(s.duration_ns for s in segs) == duration
        if duration:
            assert segs[0].start_ns == rt.start[root] and segs[-1].end_ns == rt.end[root]
        for s1, s2 in zip(segs, segs[1:]):
            assert s1.end_ns == s2.start_ns and s1.span_id != s2.span_id  # tiles, maximal
        assert all(s.start_ns < s.end_ns and rt.root_of[s.span_id] == root for s in segs)
        assert list(segs) == brute_critical_path(rt, root)
    for sid, met in a.spans.items():
        assert met.self_ns == brute_self_ns(rt, sid)
        assert 0 <= met.self_ns <= met.end_ns - met.start_ns
        assert met.on_critical_path_ns <= met.end_ns - met.start_ns
    assert a.facts.repair_count == len(a.repairs)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(traces(weird=True, max_spans=8), min_size=1, max_size=4), SKEW, st.booleans())
def test_batch_equals_reference(trace_list: list[list[Span]], skew: int | None, hex_ids: bool) -> None:
    # hex_ids: real 16-hex span ids (the fast decoding path); otherwise short ids (exact ranks)
    def sid(x: str | None) -> str | None:
        return None if x is None else (f"{int(x, 16):016x}" if hex_ids else x)

    spans = [Span(sid(s.span_id) or "", sid(s.parent_span_id), s.start_ns, s.end_ns, s.kind,
                  s.service_name, s.host, f"{i:032x}" if hex_ids else f"t{i:02d}",
                  status_code=s.status_code)
             for i, trace in enumerate(trace_list) for s in trace]
    ref, got = reference_tables(spans, skew), batch_tables(spans, skew)
    for name in ("traces", "spans", "segments", "repairs"):
        assert got[name] == ref[name], name


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(traces(weird=True, max_spans=30, max_time=10**12))
def test_batch_equals_reference_large_times(spans: list[Span]) -> None:
    base = 1_700_000_000 * 10**9
    spans = [Span(s.span_id, s.parent_span_id, s.start_ns + base, s.end_ns + base, s.kind,
                  s.service_name, s.host, s.trace_id) for s in spans]
    ref, got = reference_tables(spans, 10**11), batch_tables(spans, 10**11)
    assert got == ref
