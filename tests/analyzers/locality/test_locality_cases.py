"""Hand-built traces for every locality rule, each with its timing diagram and exact expectations."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_locality_helpers import MS, build_db, findings, rows

HOME = {"service.name": "app", "cloud.region": "us-east-1", "cloud.availability_zone": "us-east-1a",
        "host.name": "h-app"}


def _ids(n: int) -> str:
    return f"{n:032x}"


def _sid(t: int, n: int) -> str:
    return f"{t:08x}{n:08x}"


# --- case A: cache lookups, outcomes, backing fetch, redundant fetch, what-if --------------------
#
#   root    |0 ................................................................ 100|
#   GET k1     |5-7| miss (cache.hit=false)
#   SELECT           |8 ----- 30|  (literal query: a keyed database read)
#   SET k1                         |31-32|  refill
#   GET k2                                 |35-36| no attribute, no refill -> inferred hit
#   GET k3                                      |40-41| no attribute ...
#   http                                             |42 ---- 60|
#   SET k3                                                       |61-62| refill -> inferred miss
#   GET k1 again                                                           |70-71| hit, redundant
#
# Everything is sequential, so every span is on the critical path.

def _redis(t: int, n: int, cmd: str, key: str, start: float, end: float, **extra: object) -> dict:
    from test_locality_helpers import span

    return span(_ids(t), _sid(t, n), _sid(t, 1), cmd, start, end, kind="CLIENT",
                db__system__name="redis", db__query__text=f"{cmd} {key}" + (" v" if cmd == "SET" else ""),
                server__address="redis.local", **extra)


@pytest.fixture(scope="module")
def case_a(tmp_path_factory: pytest.TempPathFactory) -> str:
    from test_locality_helpers import span

    t = 1
    spans = [
        span(_ids(t), _sid(t, 1), None, "handle", 0, 100),
        _redis(t, 2, "GET", "k1", 5, 7, cache__hit=False),
        span(_ids(t), _sid(t, 3), _sid(t, 1), "SELECT t", 8, 30, kind="CLIENT", db__system__name="postgresql",
             db__query__text="SELECT * FROM t WHERE id = 1", server__address="pg.local"),
        _redis(t, 4, "SET", "k1", 31, 32),
        _redis(t, 5, "GET", "k2", 35, 36),
        _redis(t, 6, "GET", "k3", 40, 41),
        span(_ids(t), _sid(t, 7), _sid(t, 1), "GET", 42, 60, kind="CLIENT", http__request__method="GET",
             url__full="https://api.example.com/x"),
        _redis(t, 8, "SET", "k3", 61, 62),
        _redis(t, 9, "GET", "k1", 70, 71, cache__hit=True),
    ]
    return build_db(tmp_path_factory.mktemp("a"), spans, {"app": HOME})


def test_cache_outcomes_and_sources(case_a: str) -> None:
    got = {r["span_id"][-2:]: r for r in rows(case_a, "SELECT * FROM locality_accesses")}
    assert {k: (r["access_type"], r["outcome"], r["outcome_source"]) for k, r in got.items()} == {
        "02": ("cache", "miss", "attribute"),
        "03": ("database", "not_reported", "none"),
        "05": ("cache", "hit", "inferred"),
        "06": ("cache", "miss", "inferred"),
        "09": ("cache", "hit", "attribute"),
    }  # SETs are writes, the plain HTTP call has no server side: neither is an access
    assert got["02"]["backing_span_ids"] == [_sid(1, 3), _sid(1, 4)]
    assert got["06"]["backing_span_ids"] == [_sid(1, 7), _sid(1, 8)]
    assert got["02"]["cost_ns"] == (2 + 22 + 1) * MS and got["02"]["duration_ns"] == 2 * MS
    assert got["02"]["critical_ns"] == 25 * MS  # the GET and its backing fetch, all on the path
    assert got["02"]["key"] == "k1" and got["03"]["key"] == "SELECT * FROM t WHERE id = 1"
    assert got["02"]["store"] == "redis redis.local" and got["02"]["remote"] == "unknown"


def test_cache_miss_and_redundant_findings(case_a: str) -> None:
    misses = findings(case_a, "cache_miss")
    assert [f["span_id"] for f in misses] == [_sid(1, 2), _sid(1, 6)]
    assert misses[0]["details"]["outcome_source"] == "attribute"
    assert misses[1]["details"]["outcome_source"] == "inferred"
    red = findings(case_a, "redundant_fetch")
    # the refill SET of k1 (same parent, after the miss) does not invalidate the first read
    assert [(f["span_id"], f["details"]["first_span_id"]) for f in red] == [(_sid(1, 9), _sid(1, 2))]


def test_what_if_replays_sequential_savings(case_a: str) -> None:
    # median hit of "redis redis.local" = 1 ms; the k1 miss is cut to 1 ms and its backing
    # (22 + 1 ms) removed, the k3 miss keeps its 1 ms and loses http + SET (18 + 1 ms):
    # later siblings keep their gaps, so the root ends 1 + 23 + 19 = 43 ms earlier.
    (t,) = rows(case_a, "SELECT * FROM locality_trace_store")
    assert t["duration_ns"] == 100 * MS
    assert t["whatif_duration_ns"] == 57 * MS and t["whatif_changed"]
    assert t["miss_critical_ns"] == (25 + 1 + 18 + 1) * MS
    assert t["remote_critical_ns"] == 0


# --- case B: cross-zone call in parallel with a local one: the what-if is not a subtraction ---
#
#   root  |0 ............................................ 100|
#   A        |10 ============== 60|   CLIENT -> S2 in zone b (cross-zone, 50 ms)
#   B        |10 =========== 55|      CLIENT -> S2 in zone a (local, 45 ms)
#   C                                   |65 ========= 90|
#   trace 2: one local call to S2 of 30 ms  => median local latency of S2 = 37.5 ms
#
#   what-if: A -> 37.5 ms (ends 47.5), but C still waits for B (55): C starts at 60, root ends 95.

@pytest.fixture(scope="module")
def case_b(tmp_path_factory: pytest.TempPathFactory) -> str:
    from test_locality_helpers import span

    a, b = _ids(1), _ids(2)
    spans = [
        span(a, _sid(1, 1), None, "handle", 0, 100),
        span(a, _sid(1, 2), _sid(1, 1), "POST", 10, 60, kind="CLIENT", http__request__method="POST",
             server__address="s2.svc"),
        span(a, _sid(1, 3), _sid(1, 2), "POST /x", 12, 58, res="s2b", kind="SERVER", http__request__method="POST"),
        span(a, _sid(1, 4), _sid(1, 1), "POST", 10, 55, kind="CLIENT", http__request__method="POST",
             server__address="s2.svc"),
        span(a, _sid(1, 5), _sid(1, 4), "POST /x", 11, 54, res="s2a", kind="SERVER", http__request__method="POST"),
        span(a, _sid(1, 6), _sid(1, 1), "work", 65, 90),
        span(b, _sid(2, 1), None, "handle", 0, 40),
        span(b, _sid(2, 2), _sid(2, 1), "POST", 5, 35, kind="CLIENT", http__request__method="POST",
             server__address="s2.svc"),
        span(b, _sid(2, 3), _sid(2, 2), "POST /x", 6, 34, res="s2a", kind="SERVER", http__request__method="POST"),
    ]
    res = {
        "app": HOME,
        "s2a": {"service.name": "s2", "cloud.region": "us-east-1", "cloud.availability_zone": "us-east-1a"},
        "s2b": {"service.name": "s2", "cloud.region": "us-east-1", "cloud.availability_zone": "us-east-1b"},
    }
    return build_db(tmp_path_factory.mktemp("b"), spans, res)


def test_service_calls_are_located(case_b: str) -> None:
    got = {r["span_id"]: r for r in rows(case_b, "SELECT * FROM locality_accesses WHERE access_type = 'service_call'")}
    assert set(got) == {_sid(1, 2), _sid(1, 4), _sid(2, 2)}
    a = got[_sid(1, 2)]
    assert (a["store"], a["remote"], a["caller_zone"], a["server_zone"]) == ("s2", "cross_zone", "us-east-1a",
                                                                           "us-east-1b")
    assert (a["caller_location"], a["server_location"]) == ("us-east-1/us-east-1a", "us-east-1/us-east-1b")
    assert got[_sid(1, 4)]["remote"] == "local"
    assert a["critical_ns"] == 50 * MS and got[_sid(1, 4)]["critical_ns"] == 0  # B is not on the path
    (f,) = findings(case_b, "cross_zone")
    assert f["span_id"] == _sid(1, 2) and f["severity"] == "low"
    assert f["details"]["server_zone"] == "us-east-1b"


def test_what_if_recomputes_the_path(case_b: str) -> None:
    t = {r["trace_id"]: r for r in rows(case_b, "SELECT * FROM locality_trace_store")}
    assert t[_ids(1)]["whatif_duration_ns"] == 95 * MS  # not 100 - 12.5: B now gates C
    assert t[_ids(1)]["remote_critical_ns"] == 50 * MS
    assert t[_ids(2)]["whatif_duration_ns"] == 40 * MS and not t[_ids(2)]["whatif_changed"]


# --- case C: prefix cache --------------------------------------------------------------------
#
#   trace 1 (session s1):  llm#2 |10-20| 2000 in, 0 cached (first: cold)   llm#3 |30-40| 1500 cached
#   trace 2 (session s1):  llm#2 |10-20| 0 cached -> prefix_cache_miss
#                          llm#3 500 in, 0 cached (below 1,024) ; llm#4 no cached attribute
#                          llm#5 other model (first of its kind) ; llm#6 status ERROR
#                          llm#7 / llm#8 differ in gen_ai.system_instructions from the others

def _llm(t: int, n: int, start: float, *, model: str = "m1", inp: int = 2000, cached: int | None = 0,
         status: int = 0, **extra: object) -> dict:
    from test_locality_helpers import span

    attrs: dict[str, object] = {"gen_ai__operation__name": "chat", "gen_ai__provider__name": "openai",
                                "gen_ai__request__model": model, "gen_ai__usage__input_tokens": inp}
    if cached is not None:
        attrs["gen_ai__usage__cache_read__input_tokens"] = cached
    attrs.update(extra)
    return span(_ids(t), _sid(t, n), _sid(t, 1), f"chat {model}", start, start + 10, kind="CLIENT",
                status=status, **attrs)  # type: ignore[arg-type]


def _case_c_spans() -> list[dict]:
    from test_locality_helpers import span

    return [
        span(_ids(1), _sid(1, 1), None, "turn", 0, 50, session__id="s1"),
        _llm(1, 2, 10), _llm(1, 3, 30, cached=1500),
        span(_ids(2), _sid(2, 1), None, "turn", 1000, 1200, session__id="s1"),
        _llm(2, 2, 1010), _llm(2, 3, 1030, inp=500), _llm(2, 4, 1050, cached=None), _llm(2, 5, 1070, model="m2"),
        _llm(2, 6, 1090, status=2),
        _llm(2, 7, 1110, gen_ai__system_instructions="You are A"),
        _llm(2, 8, 1130, gen_ai__system_instructions="You are B"),
    ]


def test_prefix_cache_rows_and_misses(tmp_path: Path) -> None:
    db = build_db(tmp_path, _case_c_spans(), {"app": HOME})
    got = {r["span_id"]: r for r in rows(db, "SELECT * FROM locality_accesses WHERE access_type = 'prefix_cache'")}
    assert got[_sid(1, 2)]["outcome"] == "miss" and got[_sid(1, 3)]["outcome"] == "hit"
    assert got[_sid(2, 4)]["outcome"] == "not_reported"  # not reported is never a miss
    assert got[_sid(2, 2)]["session_id"] == "s1"  # inherited from the trace
    assert got[_sid(2, 2)]["store"] == "openai m1"
    found = findings(db, "prefix_cache_miss")
    assert [f["span_id"] for f in found] == [_sid(2, 2)]
    d = found[0]["details"]
    assert (d["first_call_trace_id"], d["first_call_span_id"], d["input_tokens"]) == (_ids(1), _sid(1, 2), 2000)


def test_prefix_cache_threshold_is_configurable(tmp_path: Path) -> None:
    db = build_db(tmp_path, _case_c_spans(), {"app": HOME}, config="[locality]\nmin_prompt_tokens = 400\n")
    assert [f["span_id"] for f in findings(db, "prefix_cache_miss")] == [_sid(2, 2), _sid(2, 3)]


# --- case D: redundant fetches in a session, invalidated by writes -----------------------------
#
#   trace 1 (s2): GET mem |1-2| ; write path: POST handler -> SET mem |5-6| (invalidates)
#   trace 2 (s2): GET mem |101-102| (not redundant: written since) ; retrieval kb:q1 |110-130|
#   trace 3 (s2): retrieval kb:q1 |210-230| (session repeat) ; retrieval kb:q1 |240-260| (trace repeat)

def test_session_redundant_fetch(tmp_path: Path) -> None:
    from test_locality_helpers import span

    def get(t: int, n: int, parent: int, start: float) -> dict:
        return span(_ids(t), _sid(t, n), _sid(t, parent), "GET", start, start + 1, kind="CLIENT",
                    db__system__name="redis", db__operation__name="GET", cache__key="mem", cache__hit=True,
                    server__address="redis.local")

    def retr(t: int, n: int, start: float) -> dict:
        return span(_ids(t), _sid(t, n), _sid(t, 1), "retrieval kb", start, start + 20,
                    gen_ai__operation__name="retrieval", gen_ai__data_source__id="kb",
                    gen_ai__retrieval__query__text="q1")

    spans = [
        span(_ids(1), _sid(1, 1), None, "turn", 0, 10, session__id="s2"), get(1, 2, 1, 1),
        span(_ids(1), _sid(1, 3), _sid(1, 1), "write", 4, 7),
        span(_ids(1), _sid(1, 4), _sid(1, 3), "SET", 5, 6, kind="CLIENT", db__system__name="redis",
             db__operation__name="SET", cache__key="mem", server__address="redis.local"),
        span(_ids(2), _sid(2, 1), None, "turn", 100, 140, session__id="s2"), get(2, 2, 1, 101), retr(2, 3, 110),
        span(_ids(3), _sid(3, 1), None, "turn", 200, 270, session__id="s2"), retr(3, 2, 210), retr(3, 3, 240),
    ]
    db = build_db(tmp_path, spans, {"app": HOME})
    sess = findings(db, "session_redundant_fetch")
    assert [(f["span_id"], f["details"]["first_span_id"]) for f in sess] == [(_sid(3, 2), _sid(2, 3))]
    assert sess[0]["details"]["key"] == "kb:q1" and sess[0]["details"]["store"] == "retrieval kb"
    red = findings(db, "redundant_fetch")
    assert [(f["span_id"], f["details"]["first_span_id"]) for f in red] == [(_sid(3, 3), _sid(3, 2))]


# --- case E: where the serving side runs ------------------------------------------------------

PEERS = """
[locality.peer_locations]
"redis.eu.internal" = "eu-west-1/eu-west-1a"
"*.use1.internal" = "us-east-1"
"redis.local" = { region = "us-east-1", zone = "us-east-1a" }
"""


def test_peer_locations_host_and_unknown(tmp_path: Path) -> None:
    from test_locality_helpers import span

    def get(n: int, peer: str, res: str = "app") -> dict:
        return span(_ids(1), _sid(1, n), _sid(1, 1), "GET", n * 10, n * 10 + 1, res=res, kind="CLIENT",
                    db__system__name="redis", db__query__text="GET k", server__address=peer)

    spans = [
        span(_ids(1), _sid(1, 1), None, "handle", 0, 200),
        get(2, "redis.eu.internal"), get(3, "cache.use1.internal"), get(4, "redis.local"), get(5, "other.host"),
        span(_ids(1), _sid(1, 6), _sid(1, 1), "GET", 60, 70, res="bare", kind="CLIENT", http__request__method="GET"),
        span(_ids(1), _sid(1, 7), _sid(1, 6), "GET /", 61, 69, res="bare2", kind="SERVER",
             http__request__method="GET"),
        span(_ids(1), _sid(1, 8), _sid(1, 1), "GET", 80, 90, res="k8s", kind="CLIENT", http__request__method="GET"),
        span(_ids(1), _sid(1, 9), _sid(1, 8), "GET /", 81, 89, res="k8s2", kind="SERVER", http__request__method="GET"),
    ]
    res = {
        "app": HOME,
        "bare": {"service.name": "a", "host.name": "same-host"},
        "bare2": {"service.name": "b", "host.name": "same-host"},
        "k8s": {"service.name": "c", "k8s.cluster.name": "prod"},
        "k8s2": {"service.name": "d", "k8s.cluster.name": "prod"},
    }
    db = build_db(tmp_path, spans, res, config=PEERS)
    got = {r["span_id"][-1]: r for r in rows(db, "SELECT * FROM locality_accesses")}
    assert got["2"]["remote"] == "cross_region" and got["2"]["server_location"] == "eu-west-1/eu-west-1a"
    assert got["3"]["remote"] == "unknown" and got["3"]["server_region"] == "us-east-1"  # zone unknown
    assert got["4"]["remote"] == "local"
    assert got["5"]["remote"] == "unknown" and got["5"]["server_location"] is None  # never guessed
    assert got["6"]["remote"] == "local"  # same host
    assert got["8"]["remote"] == "unknown"  # same cluster says nothing about zones
    assert (got["8"]["caller_location"], got["8"]["server_location"]) == ("cluster prod", "cluster prod")
    assert [f["span_id"] for f in findings(db, "cross_region")] == [_sid(1, 2)]


def test_hit_attribute_forms(tmp_path: Path) -> None:
    from test_locality_helpers import span

    spans = [span(_ids(1), _sid(1, 1), None, "handle", 0, 100)]
    forms = [("cache__result", "MISS"), ("cache_hit", False), ("cache__status", "HIT"),
             ("gen_ai__cache__hit", True), ("cache__result", "bypass")]
    for n, (key, value) in enumerate(forms, start=2):
        spans.append(span(_ids(1), _sid(1, n), _sid(1, 1), "semantic_cache.lookup", n * 10, n * 10 + 2,
                          **{key: value}))
    db = build_db(tmp_path, spans, {"app": HOME})
    got = {r["span_id"][-1]: r["outcome"] for r in rows(db, "SELECT * FROM locality_accesses")}
    assert got == {"2": "miss", "3": "miss", "4": "hit", "5": "hit", "6": "not_reported"}
