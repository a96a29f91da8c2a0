"""The what-if replay: a readable reference, properties, and agreement with the graph module."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fabric_trace.analyzers.locality.whatif import build_index, replay, replayed_spans
from fabric_trace.graph import compute_trace_metrics
from fabric_trace.service import run_ingest

REPO = Path(__file__).resolve().parents[3]


def reference(parent: list[int], s: list[int], e: list[int], tg: list[int]) -> tuple[list[int], list[int]]:
    """The replay rules written out one span at a time (recursive; small inputs only).

    A span starts the same gap after the latest-ending earlier sibling that had ended when it
    started (its "gates"), or the same offset after its parent's start without one; it ends the
    same gap after its latest child that ended within it, never later than its own duration
    allows, and never later than ``target`` after its start when it has one.
    """
    kids: dict[int, list[int]] = {i: [] for i in range(-1, len(parent))}
    for i, p in enumerate(parent):
        kids[p].append(i)
    for k in kids.values():
        k.sort(key=lambda i: (s[i], e[i], i))
    ns, ne = list(s), list(e)

    def visit(v: int) -> None:
        ks = kids[v]
        for j, c in enumerate(ks):
            gates = [g for g in ks[:j] if e[g] <= s[c]]
            if gates:
                ns[c] = max(ne[g] for g in gates) + (s[c] - max(e[g] for g in gates))
            else:
                ns[c] = ns[v] + (s[c] - s[v])
            visit(c)
        natural = ns[v] + e[v] - s[v]
        inside = [c for c in ks if e[c] <= e[v]]
        if inside:
            natural = min(natural, max(ns[v], max(ne[c] for c in inside) + (e[v] - max(e[c] for c in inside))))
        if tg[v] >= 0:
            natural = min(natural, ns[v] + min(tg[v], e[v] - s[v]))
        ne[v] = natural

    for r in kids[-1]:
        visit(r)
    return ns, ne


@st.composite
def forests(draw: st.DrawFn) -> tuple[list[int], list[int], list[int], list[int]]:
    n = draw(st.integers(1, 30))
    parent, s, e = [], [], []
    for i in range(n):
        p = draw(st.integers(-1, i - 1)) if i else -1
        if p < 0:
            a = draw(st.integers(0, 100))
            b = a + draw(st.integers(0, 200))
        else:
            a = s[p] + draw(st.integers(-5, max(0, e[p] - s[p])))  # mostly inside, sometimes before
            b = a + draw(st.sampled_from([0, draw(st.integers(0, 80))]))
        parent.append(p)
        s.append(a)
        e.append(b)
    tg = [draw(st.sampled_from([-1, -1, -1, 0, draw(st.integers(0, 60))])) for _ in range(n)]
    return parent, s, e, tg


@settings(max_examples=400, deadline=None)
@given(forests())
def test_replay_matches_reference(f: tuple[list[int], list[int], list[int], list[int]]) -> None:
    parent, s, e, tg = f
    ns, ne = replay(np.array(parent), np.array(s), np.array(e), np.array(tg))
    rs, re_ = reference(parent, s, e, tg)
    assert ns.tolist() == rs and ne.tolist() == re_


@settings(max_examples=200, deadline=None)
@given(forests())
def test_replay_never_lengthens_or_delays(f: tuple[list[int], list[int], list[int], list[int]]) -> None:
    parent, s, e, tg = f
    ns, ne = replay(np.array(parent), np.array(s), np.array(e), np.array(tg))
    s_, e_ = np.array(s), np.array(e)
    assert (ns <= s_).all() and (ne <= e_).all()
    assert (ne - ns <= e_ - s_).all() and (ne >= ns).all()
    same, same_e = replay(np.array(parent), s_, e_, np.full(len(s), -1))
    assert (same == s_).all() and (same_e == e_).all()  # no target: identity


def test_fan_in_waits_for_the_slowest_branch() -> None:
    #  root |0 ...................................... 100|
    #  a       |10 ======== 60|       (cut to 20 ms)
    #  b       |10 ====== 50|
    #  c                         |65 ====== 90|
    #  a now ends at 30, but c waits for b (50): it starts at 55, ends at 80, the root at 90.
    parent = np.array([-1, 0, 0, 0])
    s, e = np.array([0, 10, 10, 65]), np.array([100, 60, 50, 90])
    ns, ne = replay(parent, s, e, np.array([-1, 20, -1, -1]))
    assert ns.tolist() == [0, 10, 10, 55] and ne.tolist() == [90, 30, 50, 80]


def test_removed_span_shifts_its_subtree_and_successors() -> None:
    #  root |0 ............................ 50|
    #  x       |5 == 15|            (removed: target 0)
    #  x1        |6 = 9|            (child of x: clipped away with it)
    #  y                |20 == 30|  starts 5 ms after x ended -> 5 ms after x's start now
    parent = np.array([-1, 0, 1, 0])
    s, e = np.array([0, 5, 6, 20]), np.array([50, 15, 9, 30])
    ns, ne = replay(parent, s, e, np.array([-1, 0, -1, -1]))
    assert (ns[1], ne[1]) == (5, 5)
    assert (ns[3], ne[3]) == (10, 20) and ne[0] == 40


@pytest.fixture(scope="module")
def remote_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    db = str(tmp_path_factory.mktemp("wi") / "r.duckdb")
    run_ingest(db, [str(REPO / "fixtures" / "scenarios" / "remote-state.jsonl")])
    return db


def test_what_if_equals_the_graph_module_on_the_replayed_copy(remote_db: str) -> None:
    """The stored what-if duration is what the graph module computes for the replayed traces."""
    con = duckdb.connect(remote_db)
    try:
        ix = build_index(con)
        copy = replayed_spans(con, ix)
        assert copy is not None and copy.num_rows > 0
        con.register("_copy", copy)
        metrics = compute_trace_metrics(con, table="_copy", n_buckets=1)
        assert metrics is not None
        graph = dict(zip(metrics.traces.column("trace_id").to_pylist(),
                         metrics.traces.column("duration_ns").to_pylist()))
        stored = dict(con.execute("SELECT trace_id, whatif_duration_ns FROM locality_trace_store "
                                  "WHERE whatif_changed").fetchall())
        base = dict(con.execute("SELECT trace_id, duration_ns FROM traces").fetchall())
    finally:
        con.close()
    assert set(stored) == set(graph)
    assert all(stored[t] == min(graph[t], base[t]) for t in stored)
    assert any(stored[t] < base[t] for t in stored)


def test_index_falls_back_to_the_exact_join_on_a_hash_collision(remote_db: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from fabric_trace.analyzers.locality import whatif as W

    con = duckdb.connect(remote_db)
    try:
        good = W.build_index(con)
        # every span of a trace gets the same key: the collision must be detected ...
        monkeypatch.setattr(W, "_SPAN_KEY", "hash(trace_id)")
        assert W._hashed_index(con) is None
        fallback = W.build_index(con)  # ... and the ids joined exactly instead
    finally:
        con.close()
    for name in ("parent", "depth", "on_cp", "trace", "start", "end"):
        assert (getattr(good, name) == getattr(fallback, name)).all(), name
