"""Hand-drawn traces: every repair and tie-break, checked on the reference and
the batch implementation. Time runs left to right, one column = 10 ns."""

from __future__ import annotations

import networkx as nx
import pytest
from test_graph_helpers import batch_tables, reference_tables, span

from fabric_trace.graph import analyze_trace, build_graph, critical_path, self_times
from fabric_trace.graph.model import Segment, Span, TraceAnalysis


def run(spans: list[Span], skew: int | None = None) -> TraceAnalysis:
    """Reference analysis, after checking that the batch implementation agrees."""
    assert batch_tables(spans, skew) == reference_tables(spans, skew)
    return analyze_trace(spans, max_clock_skew_ns=skew)


def path(a: TraceAnalysis, root: str | None = None) -> list[tuple[str, int, int]]:
    return [(s.span_id, s.start_ns, s.end_ns) for s in a.critical_paths[root or a.facts.root_span_id]]


def kinds(a: TraceAnalysis) -> list[tuple[str, str]]:
    return [(r.kind, r.span_id) for r in a.repairs]


def test_jaeger_example() -> None:
    # r  |==========|          0..100
    # a    |===|               10..40   (child c 20..30)
    # c     |=|
    # b          |==|          50..80
    spans = [span("r", None, 0, 100), span("a", "r", 10, 40), span("c", "a", 20, 30),
             span("b", "r", 50, 80)]
    a = run(spans)
    assert path(a) == [("r", 0, 10), ("a", 10, 20), ("c", 20, 30), ("a", 30, 40), ("r", 40, 50),
                       ("b", 50, 80), ("r", 80, 100)]
    assert critical_path(spans) == [Segment(*x[1:], x[0]) for x in path(a)]  # type: ignore[misc]
    assert self_times(spans) == {"r": 40, "a": 20, "c": 10, "b": 30}
    assert a.repairs == () and not a.facts.incomplete


def test_overlapping_children_last_finishing_wins() -> None:
    # r  |==========|   0..100
    # a   |======|      10..70
    # b       |====|    40..90   ends last: on the path. Back at 40, a ends after
    #                            the current point, so it is not eligible (Jaeger)
    a = run([span("r", None, 0, 100), span("a", "r", 10, 70), span("b", "r", 40, 90)])
    assert path(a) == [("r", 0, 40), ("b", 40, 90), ("r", 90, 100)]
    assert a.spans["r"].self_ns == 20  # union of children = 10..90


def test_equal_ends_earliest_start_then_smallest_id() -> None:
    # r  |==========|   0..100
    # a    |=====|      20..70
    # b        |=|      50..70   same end: a (earlier start) wins
    # c    |=====|      20..70   same end and start as a: smaller id a wins
    a = run([span("r", None, 0, 100), span("c", "r", 20, 70), span("b", "r", 50, 70),
             span("a", "r", 20, 70)])
    assert path(a) == [("r", 0, 20), ("a", 20, 70), ("r", 70, 100)]


def test_zero_length_spans_own_nothing() -> None:
    # r  |==========|   0..100
    # z       |         50..50  zero-length child: no segment, r is not split
    # a   |==|          10..40
    a = run([span("r", None, 0, 100), span("z", "r", 50, 50), span("a", "r", 10, 40),
             span("y", "r", 100, 100)])
    assert path(a) == [("r", 0, 10), ("a", 10, 40), ("r", 40, 100)]
    assert a.repairs == ()  # zero-length child at the parent's end is inside
    assert run([span("r", None, 5, 5)]).critical_paths == {"r": ()}


def test_negative_duration_is_zero_length() -> None:
    # r  |====|     0..50
    # a    <-|      end 20 < start 30: treated as 30..30
    a = run([span("r", None, 0, 50), span("a", "r", 30, 20)])
    assert kinds(a) == [("negative_duration", "a")] and a.repairs[0].offset_ns == -10
    assert a.spans["a"].end_ns == 30 and path(a) == [("r", 0, 50)]


def test_clipping_and_outside_children() -> None:
    #      r     |======|       20..80
    # a  (clip)|===|            0..40   clipped to 20..40
    # b  (clip)         |==|    70..100 clipped to 70..80
    # c  (out)               |=|   90..95 entirely outside: dropped
    # d  (out) |=|              0..20   ends at r's start: dropped
    a = run([span("r", None, 20, 80), span("a", "r", 0, 40), span("b", "r", 70, 100),
             span("c", "r", 90, 95), span("d", "r", 0, 20)])
    assert path(a) == [("a", 20, 40), ("r", 40, 70), ("b", 70, 80)]
    assert kinds(a) == [("child_clipped", "a"), ("child_clipped", "b"),
                        ("child_outside_parent", "c"), ("child_outside_parent", "d")]
    assert [r.offset_ns for r in a.repairs[:2]] == [20, 20]
    assert a.spans["r"].self_ns == 30  # 40..70


def test_clipping_is_to_the_clipped_parent() -> None:
    # r  |=====|        0..50
    # a     |=====|     30..80   clipped to 30..50
    # b        |==|     60..80   inside a, outside a's clipped window: not on the path
    a = run([span("r", None, 0, 50), span("a", "r", 30, 80), span("b", "a", 60, 80)])
    assert path(a) == [("r", 0, 30), ("a", 30, 50)]
    assert a.spans["b"].on_critical_path_ns == 0 and a.spans["a"].self_ns == 30


def test_orphan_becomes_root_and_trace_incomplete() -> None:
    # r  |======|        0..60
    # o     |===|  parent "gone" not in the trace -> root of its own subtree
    # k      |=|
    a = run([span("r", None, 0, 60), span("o", "gone", 30, 70), span("k", "o", 40, 50)])
    assert kinds(a) == [("orphan", "o")] and a.repairs[0].parent_span_id == "gone"
    assert a.facts.incomplete and a.facts.root_count == 2 and a.facts.root_span_id == "r"
    assert path(a, "o") == [("o", 30, 40), ("k", 40, 50), ("o", 50, 70)]
    assert a.facts.duration_ns == 70 and a.facts.root_duration_ns == 60
    assert a.spans["k"].root_span_id == "o" and a.spans["k"].depth == 1


def test_several_roots_main_is_earliest_parentless() -> None:
    # x        |====|   40..80  parentless
    # r  |======|       0..60   parentless, earliest: main root
    # o |=|             orphan starting earlier still is not main
    a = run([span("x", None, 40, 80), span("r", None, 0, 60), span("o", "nope", -10, 5)])
    assert a.facts.root_span_id == "r" and a.facts.root_count == 3
    assert kinds(a) == [("orphan", "o"), ("extra_root", "x")]
    assert a.repairs[1].parent_span_id == "r"
    assert a.facts.start_ns == -10 and a.facts.end_ns == 80
    assert set(a.critical_paths) == {"r", "x", "o"}


def test_cycle_is_cut_at_earliest_start() -> None:
    # a -> b -> c -> a (parents), plus d below c; nobody reaches a root
    # a    |=====|   10..70
    # b   |=======|  5..90   earliest start: its parent edge (to a) is cut
    # c     |===|    20..60
    spans = [span("a", "c", 10, 70), span("b", "a", 5, 90), span("c", "b", 20, 60),
             span("d", "c", 30, 40)]
    a = run(spans)
    # after the cut: b -> c -> {a, d}; a (10..70) starts before c (20..60): clipped
    assert kinds(a) == [("cycle_cut", "b"), ("child_clipped", "a")]
    assert a.repairs[0].parent_span_id == "a" and a.facts.root_span_id == "b"
    assert [a.spans[s].depth for s in "bcad"] == [0, 1, 2, 2]
    assert sum(s.duration_ns for s in a.critical_paths["b"]) == 85


def test_self_parent_is_cut() -> None:
    a = run([span("r", None, 0, 10), span("s", "s", 2, 4)])
    assert kinds(a) == [("self_parent", "s"), ("extra_root", "s")][:1]
    assert a.facts.root_count == 2 and a.spans["s"].root_span_id == "s"


def test_duplicate_span_ids_keep_earliest_copy() -> None:
    # r  |======|      0..60
    # a    |==|        20..40  (kept: earliest start)
    # a     |====|     25..55  (dropped copy)
    a = run([span("r", None, 0, 60), span("a", "r", 25, 55), span("a", "r", 20, 40)])
    assert kinds(a) == [("duplicate_span_id", "a")] and a.repairs[0].count == 2
    assert a.facts.span_count == 2 and a.spans["a"].start_ns == 20


def test_async_consumer_is_not_on_the_path() -> None:
    # r  |==========|      0..100
    # p    |=|             PRODUCER 10..20
    # q     |=====|        CONSUMER 15..70 (child of p): async, never blocks p
    a = run([span("r", None, 0, 100), span("p", "r", 10, 20, kind="PRODUCER"),
             span("q", "p", 15, 70, kind="CONSUMER")])
    assert path(a) == [("r", 0, 10), ("p", 10, 20), ("r", 20, 100)]
    assert a.repairs == ()  # no clipping record for an async child either


CLIENT = {"service_name": "agent", "host": "h1", "kind": "CLIENT"}
SERVER = {"service_name": "llm", "host": "h2", "kind": "SERVER"}


def test_server_overhang_is_not_skew() -> None:
    # c  |=====|      CLIENT h1 0..50
    # s    |=====|    SERVER h2 10..60: ends late only -> clipped, not skewed
    a = run([span("c", None, 0, 50, **CLIENT), span("s", "c", 10, 60, **SERVER)], skew=10**6)
    assert kinds(a) == [("child_clipped", "s")]
    assert a.spans["s"].shift_ns == 0


def test_clock_skew_detected_not_adjusted() -> None:
    # c        |=====|   CLIENT h1 100..160
    # s  |===|           SERVER h2 0..40 starts before its parent: skewed
    #                    centred: 100 + (60-40)//2 - 0 = +110
    spans = [span("c", None, 100, 160, **CLIENT), span("s", "c", 0, 40, **SERVER),
             span("k", "s", 10, 30, service_name="llm", host="h2")]
    a = run(spans)
    r = a.repairs[0]
    assert (r.kind, r.span_id, r.offset_ns, r.service, r.parent_service) == \
        ("clock_skew", "s", 110, "llm", "agent")
    assert a.spans["s"].start_ns == 0 and a.spans["k"].shift_ns == 0
    assert ("child_outside_parent", "s") in kinds(a)


def test_clock_skew_adjusted_subtree_inherits() -> None:
    spans = [span("c", None, 100, 160, **CLIENT), span("s", "c", 0, 40, **SERVER),
             span("k", "s", 10, 30, service_name="llm", host="h2"),
             span("x", "s", 115, 125, service_name="db", host="h3")]
    # c        |=====|        CLIENT h1 100..160
    # s  |===|  ->  |===|     SERVER h2 0..40 shifted by +110 to 110..150
    # k   |=|   ->   |=|      same host h2: inherits +110 -> 120..140
    # x         |=|           h3 115..125: skewed against raw s, fits the shifted s
    a = run(spans, skew=200)
    assert kinds(a) == [("clock_skew_adjusted", "s")] and a.repairs[0].offset_ns == 110
    assert (a.spans["s"].start_ns, a.spans["s"].end_ns) == (110, 150)
    assert a.spans["k"].shift_ns == 110
    assert a.spans["x"].shift_ns == 0
    assert path(a) == [("c", 100, 110), ("s", 110, 120), ("k", 120, 140), ("s", 140, 150),
                       ("c", 150, 160)]
    # without adjustment both s and x are reported (x against the raw s)
    assert kinds(run(spans))[:2] == [("clock_skew", "s"), ("clock_skew", "x")]


def test_clock_skew_child_longer_than_parent_moves_to_parent_start() -> None:
    # c           |==|        CLIENT h1 100..130
    # s  |=====|              SERVER h2 0..50 (longer): moved to start at 100
    a = run([span("c", None, 100, 130, **CLIENT), span("s", "c", 0, 50, **SERVER)], skew=1000)
    assert a.repairs[0].kind == "clock_skew_adjusted" and a.repairs[0].offset_ns == 100
    assert ("child_clipped", "s") in kinds(a)


def test_clock_skew_beyond_max_is_reported_not_applied() -> None:
    a = run([span("c", None, 100, 160, **CLIENT), span("s", "c", 0, 40, **SERVER)], skew=100)
    assert kinds(a)[0] == ("clock_skew_exceeds_max", "s") and a.repairs[0].offset_ns == 110
    assert a.spans["s"].shift_ns == 0


def test_same_host_is_never_skewed() -> None:
    a = run([span("c", None, 100, 160, **CLIENT), span("s", "c", 0, 40, service_name="other",
                                                          host="h1")], skew=1000)
    assert kinds(a) == [("child_outside_parent", "s")]


def test_build_graph_edges_and_attributes() -> None:
    spans = [span("r", None, 0, 100), span("p", "r", 10, 20, kind="PRODUCER"),
             span("q", "p", 30, 70, kind="CONSUMER", links=(("t", "r"),)),
             span("o", "gone", 5, 6), span("w", "r", 40, 50, links=(("t", "q"), ("other", "r")))]
    g = build_graph(spans)
    assert isinstance(g, nx.DiGraph) and g.graph["main_root"] == "r"
    assert g.edges["r", "p"]["kind"] == "call" and g.edges["p", "q"]["kind"] == "async"
    assert g.edges["q", "w"] == {"kind": "async", "link": True}
    assert not g.has_edge("r", "q") or g.edges["r", "q"]["link"]
    assert g.nodes["q"]["depth"] == 2 and g.nodes["o"]["root_span_id"] == "o"
    assert [r.kind for r in g.graph["repairs"]] == ["orphan"]


def test_several_traces_rejected_by_the_reference() -> None:
    with pytest.raises(ValueError):
        analyze_trace([span("a", None, 0, 1), span("b", None, 0, 1, trace_id="u")])


def test_critical_path_of_a_chosen_root() -> None:
    # r  |====|          0..50   main root
    # o        |===|     60..90  orphan root: its own critical path
    spans = [span("r", None, 0, 50), span("o", "gone", 60, 90), span("k", "o", 70, 80)]
    assert [(s.span_id, s.start_ns, s.end_ns) for s in critical_path(spans, root_span_id="o")] == \
        [("o", 60, 70), ("k", 70, 80), ("o", 80, 90)]
    with pytest.raises(ValueError):
        critical_path(spans, root_span_id="k")
    with pytest.raises(ValueError):
        analyze_trace([])
