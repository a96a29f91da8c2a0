"""Sessions (docs/llm.md, "Sessions"): ``fabric session ls|show``, the critical path across turns,
late turns, and the price table's matching and config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from fabric_trace.analyzers.llm.config import candidate_names, parse_config
from fabric_trace.analyzers.llm.sessions import _path, turns
from fabric_trace.cli.app import app
from fabric_trace.config import Config
from fabric_trace.errors import ConfigError
from fabric_trace.service import run_ingest

CAPTURES = Path(__file__).resolve().parents[2] / "data" / "captures"


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("sessions") / "s.duckdb")
    run_ingest(path, [str(CAPTURES / "openinference.otlp.jsonl")])
    return path


def test_session_ls(db: str) -> None:
    res = _cli("session", "ls", "--db", db, "--format", "json")
    assert res.exit_code == 0, res.stderr
    rows = json.loads(res.stdout)["sessions"]
    truth = json.loads((CAPTURES / "openinference.truth.json").read_text())["traces"]
    assert sorted((r["session_id"], r["traces"]) for r in rows) == [("sess-1", 2), ("sess-2", 1), ("sess-3", 1)]
    assert {r["session_id"]: r["user_id"] for r in rows} == {t["session_id"]: t["user_id"] for t in truth}
    assert [r["session_id"] for r in json.loads(_cli("session", "ls", "--db", db, "--format", "json", "--user",
                                                     "user-1").stdout)["sessions"]] == ["sess-1"]
    for fmt in ("table", "csv", "markdown"):
        res = _cli("session", "ls", "--db", db, "--format", fmt)
        assert res.exit_code == 0 and "sess-2" in res.stdout


def test_session_show_timeline_and_path(db: str) -> None:
    res = _cli("session", "show", "sess-1", "--db", db, "--format", "json")
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    truth = [t["trace_id"] for t in json.loads((CAPTURES / "openinference.truth.json").read_text())["traces"]
             if t["session_id"] == "sess-1"]
    assert [t["trace_id"] for t in data["turns"]] == truth  # the program ran them in this order
    assert len(data["calls"]) == 6 and {c["turn"] for c in data["calls"]} == {1, 2}
    s = data["session"]
    assert sum(p["duration_ms"] for p in data["path"]) == pytest.approx(s["duration_ms"], abs=0.01)
    assert [p["what"] for p in data["path"]] == ["turn 1", "idle", "turn 2"]
    assert data["path"][1]["duration_ms"] == pytest.approx(s["idle_ms"], abs=0.001)
    assert data["turns"][1]["gap_ms"] == pytest.approx(s["idle_ms"], abs=0.001)
    assert _cli("session", "show", "sess-1", "--db", db).exit_code == 0


@pytest.mark.parametrize("sid, message", [("sess", "ambiguous"), ("nope", "no session 'nope'")])
def test_session_show_bad_ids(db: str, sid: str, message: str) -> None:
    res = _cli("session", "show", sid, "--db", db)
    assert res.exit_code == 2 and message in res.stderr


def test_session_path_rule() -> None:
    # turn 1 |--------|                       path: turn 1 [0, 8)
    # turn 2     |--|                               (turn 2 under turn 1)
    # turn 3             |------|                   idle [8, 11), turn 3 [11, 17)
    # turn 4                 |-------|              turn 4 [17, 20)
    assert _path([(0, 8), (4, 6), (11, 17), (15, 20)]) == [8, 0, 6, 3]
    t = turns([("b", "s", None, 4, 6), ("a", "s", "u", 0, 8), ("c", "s", None, 11, 17), ("d", "s", None, 15, 20),
               ("x", "other", None, 5, 6)]).to_pylist()
    mine = [r for r in t if r["session_id"] == "s"]
    assert [(r["trace_id"], r["turn"], r["gap_ns"], r["session_path_ns"]) for r in mine] == [
        ("a", 1, None, 8), ("b", 2, -4, 0), ("c", 3, 3, 6), ("d", 4, -2, 3)]


def test_a_late_turn_re_derives_its_session(tmp_path: Path) -> None:
    last = "70782a4a752177cb1019e38ba05f09dc"  # sess-1's second turn
    early = tmp_path / "early.jsonl"
    late = tmp_path / "late.jsonl"
    for path, keep in ((early, lambda t: t != last), (late, lambda t: t == last)):
        out = []
        for line in (CAPTURES / "openinference.otlp.jsonl").read_text().splitlines():
            doc = json.loads(line)
            for rs in doc["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    ss["spans"] = [x for x in ss["spans"] if keep(x["traceId"])]
            out.append(json.dumps(doc))
        path.write_text("\n".join(out) + "\n")
    db = str(tmp_path / "l.duckdb")
    run_ingest(db, [str(early)])
    before = json.loads(_cli("session", "show", "sess-1", "--db", db, "--format", "json").stdout)
    assert len(before["turns"]) == 1
    run_ingest(db, [str(late)])
    after = json.loads(_cli("session", "show", "sess-1", "--db", db, "--format", "json").stdout)
    assert [t["turn"] for t in after["turns"]] == [1, 2] and after["turns"][1]["trace_id"] == last
    assert after["session"]["traces"] == 2 and after["session"]["llm_calls"] == 6


# -- the price table ----------------------------------------------------------------------------

@pytest.mark.parametrize("name, want", [
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"), ("GPT-4o-mini", "gpt-4o-mini"), ("openai/gpt-4o", "gpt-4o"),
    ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"), ("gpt-4o-2024-08-06", "gpt-4o"),
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"), ("gpt-4-0613", "gpt-4"), ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
    ("text-embedding-3-small", "text-embedding-3-small"), ("gemini-1.5-pro-002", None), ("acme-9", None),
])
def test_price_matching(name: str, want: str | None) -> None:
    price = parse_config(Config()).match(name, None)
    assert (price.model if price else None) == want


def test_snapshot_names() -> None:
    assert candidate_names("models/Claude-3-Haiku@20240307") == [
        "models/claude-3-haiku@20240307", "claude-3-haiku@20240307", "models/claude-3-haiku", "claude-3-haiku"]


def test_provider_of_an_entry_must_match() -> None:
    s = parse_config(Config())
    assert s.match("gpt-4o", "openai") is not None and s.match("gpt-4o", "azure.ai.openai") is None
    assert s.match("gpt-4o-mini", "openai.chat").provider == "openai"  # the Vercel AI SDK's provider id


def test_config_overrides_and_extends() -> None:
    s = parse_config(Config(data={"llm": {"prices": [{"model": "gpt-4o", "input": 1.0, "output": 2.0},
                                                {"model": "acme-9", "provider": "acme", "input": 0.5}]}}))
    assert s.match("gpt-4o-2024-08-06", "openai").input == 1.0  # replaces the bundled entry for every provider
    assert s.match("acme-9", "acme").input == 0.5 and s.match("acme-9", "other") is None
    only = parse_config(Config(data={"llm": {"bundled_prices": False, "prices": [{"model": "x", "input": 1}]}}))
    assert only.match("gpt-4o", "openai") is None and only.as_of is None


@pytest.mark.parametrize("section, message", [
    ({"colour": 1}, "unknown keys"), ({"bundled_prices": "yes"}, "true or false"),
    ({"prices": {"model": "x"}}, "array of tables"), ({"prices": [{"input": 1}]}, "needs a model"),
    ({"prices": [{"model": "x", "input": -1}]}, ">= 0"), ({"prices": [{"model": "x"}]}, "gives no price"),
    ({"prices": [{"model": "x", "input": 1, "cost": 2}]}, "unknown keys"),
])
def test_bad_config_is_a_config_error(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(Config(data={"llm": section}))


def test_prices_change_makes_the_store_stale(tmp_path: Path) -> None:
    db = str(tmp_path / "p.duckdb")
    run_ingest(db, [str(CAPTURES / "otel-genai-old.otlp.jsonl")])
    cfg = tmp_path / "fabric.toml"
    cfg.write_text('[[llm.prices]]\nmodel = "gpt-4o-mini"\ninput = 1.0\noutput = 1.0\n')
    got = _cli("query", "--db", db, "--format", "json", "SELECT sum(cost_usd) AS c FROM llm_calls")
    res = _cli("report", "llm", "--db", db, "--format", "json", "--config", str(cfg))
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    tokens = data["totals"]["input_tokens"] + data["totals"]["output_tokens"]
    assert data["totals"]["cost_usd"] == pytest.approx(tokens / 1e6)
    assert json.loads(got.stdout)[0]["c"] != pytest.approx(tokens / 1e6)


def test_cost_sums_do_not_depend_on_the_order_rows_were_stored_in(tmp_path: Path) -> None:
    """``sessions.cost_usd``, ``session_turns.cost_usd`` and the llm report's sums are sums of doubles,
    whose last bits follow the order they are added in; they add in a fixed order (by trace and span
    id), so a store filled in another order (other files, batches, an incremental refresh) gives
    exactly the same figures."""
    import otlp_build

    docs = []
    for n in range(60):
        tid, root, call = f"{n + 1:032x}", f"{n + 1:08x}00000001", f"{n + 1:08x}00000002"
        docs.append(otlp_build.by_service({"agent": [
            otlp_build.span(tid, root, None, "invoke_agent a", n * 1000, n * 1000 + 500,
                            attrs={"session.id": f"sess-{n % 2}", "gen_ai.operation.name": "invoke_agent"}),
            otlp_build.span(tid, call, root, "chat gpt-4o", n * 1000 + 10, n * 1000 + 400, kind="CLIENT",
                            attrs={"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                                   "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1_000 + 37 * n * n,
                                   "gen_ai.usage.output_tokens": 3 + 11 * n})]}))
    forward = otlp_build.ingest(tmp_path / "f", *docs)
    backward = str(tmp_path / "b.duckdb")  # the same store with its derived rows stored in reverse order
    shutil.copy(forward, backward)
    con = duckdb.connect(backward)
    for table in ("llm_call_store", "llm_turn_store"):
        con.execute(f"CREATE TEMP TABLE r AS SELECT * FROM {table} ORDER BY trace_id DESC, rowid DESC")
        con.execute(f"DELETE FROM {table}")
        con.execute(f"INSERT INTO {table} SELECT * FROM r")
        con.execute("DROP TABLE r")
    con.close()
    sql = {"sessions": "SELECT session_id, cost_usd FROM sessions ORDER BY session_id",
           "turns": "SELECT trace_id, cost_usd FROM session_turns ORDER BY trace_id",
           "stored": "SELECT trace_id FROM llm_call_store"}
    f = {k: otlp_build.rows(forward, q) for k, q in sql.items()}
    b = {k: otlp_build.rows(backward, q) for k, q in sql.items()}
    assert f["stored"] == b["stored"][::-1]  # the rows really are stored in another order
    assert [r["cost_usd"] for r in f["sessions"]] == [r["cost_usd"] for r in b["sessions"]]
    assert all(r["cost_usd"] > 0 for r in f["sessions"]) and f["turns"] == b["turns"]
    reports = [json.loads(_cli("report", "llm", "--db", db, "--format", "json").stdout) for db in (forward, backward)]
    assert reports[0] == reports[1]
