"""`fabric report latency`: figures checked against hand computation; JSON shape pinned."""

from __future__ import annotations

import json
from pathlib import Path

import otlp_build
import pytest
from typer.testing import CliRunner

from fabric_trace.cli.app import app
from fabric_trace.errors import ExitCode

runner = CliRunner()


def _span(tid: str, sid: str, parent: str | None, name: str, start_ms: float, end_ms: float,
          attrs: dict[str, str], status: int = 0) -> dict:
    return otlp_build.span(tid, sid, parent, name, start_ms, end_ms, status=[*otlp_build.STATUS][status], attrs=attrs)


def _trace(n: int, scale: float, retry: bool = False) -> list[dict]:
    """
    root (agent, workflow "wf")   |0 ........................................ 100|  (x scale)
      chat   (llm)                     |10 ....... 40|
      execute_tool (tool)                               |50 ............ 90|
        http GET (http, child of tool)                      |55 .. 70|
    Critical path: root 90-100, tool 70-90, http 55-70, tool 50-55, root 40-50, chat 10-40, root 0-10.
    """
    tid = f"{n:032x}"
    s = [
        _span(tid, f"{n:08x}00000001", None, "invoke_agent planner", 0, 100 * scale,
              {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner", "gen_ai.workflow.name": "wf"}),
        _span(tid, f"{n:08x}00000002", f"{n:08x}00000001", "chat gpt-4o", 10 * scale, 40 * scale,
              {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.provider.name": "openai"}),
        _span(tid, f"{n:08x}00000003", f"{n:08x}00000001", "execute_tool search", 50 * scale, 90 * scale,
              {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}),
        _span(tid, f"{n:08x}00000004", f"{n:08x}00000003", "GET", 55 * scale, 70 * scale,
              {"http.request.method": "GET", "url.full": "https://api.example.com/x"}),
    ]
    if retry:
        # a failed attempt of the same tool before the successful one (sequential siblings)
        s.append(_span(tid, f"{n:08x}00000005", f"{n:08x}00000001", "execute_tool search", 41 * scale,
                       49 * scale, {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}, status=2))
    return s


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = tmp_path_factory.mktemp("lat")
    spans = _trace(1, 1.0) + _trace(2, 2.0) + _trace(3, 3.0, retry=True)
    f = otlp_build.write(d / "t.jsonl", otlp_build.by_service({"agent": spans}))
    path = str(d / "t.duckdb")
    res = runner.invoke(app, ["trace", "ingest", str(f), "--db", path])
    assert res.exit_code == 0, res.stderr
    return path


def report(db: str, *args: str) -> dict:
    res = runner.invoke(app, ["report", "latency", "--db", db, "--format", "json", *args])
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def test_figures_match_hand_computation(db: str) -> None:
    out = report(db)
    assert out["report"] == "latency" and out["by"] == "role" and out["totals"] == {"traces": 3, "workflows": 1}
    (wf,) = out["workflows"]
    assert wf["workflow"] == "wf" and wf["traces"] == 3
    # end-to-end: 100, 200, 300 ms
    assert (wf["p50_ms"], wf["max_ms"]) == (200.0, 300.0)
    assert wf["p95_ms"] == pytest.approx(290.0)
    assert wf["error_rate_pct"] == pytest.approx(100 / 3, abs=0.01)
    cp = {r["key"]: r for r in wf["critical_path"]}
    # per trace (scale 1): llm 30, tool 25, http 15, agent 30 -> p50 over scales 1,2,3 = scale 2
    assert cp["llm"]["p50_ms"] == 60.0 and cp["tool"]["p50_ms"] == 50.0
    assert cp["http"]["p50_ms"] == 30.0 and cp["agent"]["p50_ms"] == 60.0
    total_e2e = 600.0
    assert cp["llm"]["share_pct"] == pytest.approx(100 * 180 / total_e2e, abs=0.01)
    assert sum(r["share_pct"] for r in wf["critical_path"]) == pytest.approx(100.0, abs=0.05)
    self_time = {r["key"]: r["self_ms_total"] for r in wf["self_time"]}
    # the failed retry (8 ms at scale 3 = 24 ms) is off the critical path but has self time
    assert self_time["tool"] == pytest.approx(25 * 6 + 24)
    assert wf["orchestration_overhead"]["orch_p50_ms"] == 60.0
    assert wf["llm"]["calls_per_trace"] == 1.0 and wf["llm"]["cached_not_reported_calls"] == 3
    assert wf["retries"]["failed_attempts"] == 1
    assert wf["retries"]["retry_groups_per_trace"] == pytest.approx(1 / 3, abs=1e-3)
    # parallelism: (100 + 30 + 40 + 15) / 100 = 1.85 for traces without retry
    assert wf["parallelism"]["parallelism_p50"] == pytest.approx(1.85, abs=1e-3)
    top = wf["top_critical_operations"][0]
    assert set(top) == {"operation", "role", "service", "count", "critical_ms_total", "share_pct"}


def test_json_shape_is_pinned(db: str) -> None:
    out = report(db)
    assert set(out) == {"report", "by", "totals", "workflows"}
    (wf,) = out["workflows"]
    assert set(wf) == {
        "workflow", "traces", "error_rate_pct", "p50_ms", "p95_ms", "p99_ms", "max_ms", "incomplete_traces",
        "repaired_traces", "critical_path", "self_time", "top_critical_operations", "orchestration_overhead",
        "parallelism", "llm", "retries",
    }
    assert set(wf["critical_path"][0]) == {"key", "p50_ms", "p95_ms", "share_pct", "traces_present"}
    assert set(wf["self_time"][0]) == {"key", "spans", "self_ms_total", "self_ms_p50_per_trace", "share_pct"}
    assert set(wf["llm"]) == {"calls_per_trace", "input_tokens_per_trace", "output_tokens_per_trace",
                              "cached_tokens_per_trace", "cached_not_reported_calls", "ttft_p50_ms", "ttft_p95_ms"}


def test_by_model_and_filters(db: str) -> None:
    out = report(db, "--by", "model")
    keys = {r["key"] for r in out["workflows"][0]["critical_path"]}
    assert "gpt-4o" in keys and "(none)" in keys
    only_big = report(db, "--where", "duration_ns > 250000000")
    assert only_big["totals"]["traces"] == 1
    none = report(db, "--workflow", "nope")
    assert none["workflows"] == []


@pytest.mark.parametrize("fmt", ["table", "csv", "markdown"])
def test_other_formats(db: str, fmt: str) -> None:
    res = runner.invoke(app, ["report", "latency", "--db", db, "--format", fmt])
    assert res.exit_code == 0 and "wf" in res.stdout


def test_bad_where_is_a_usage_error(db: str) -> None:
    res = runner.invoke(app, ["report", "latency", "--db", db, "--where", "role = x'; DROP TABLE spans"])
    assert res.exit_code == ExitCode.USAGE and "bad --where" in res.stderr


def test_missing_database(tmp_path: Path) -> None:
    res = runner.invoke(app, ["report", "latency", "--db", str(tmp_path / "none.duckdb")])
    assert res.exit_code == ExitCode.DB_ERROR and "does not exist" in res.stderr


def test_trace_ls_and_show(db: str) -> None:
    res = runner.invoke(app, ["trace", "ls", "--db", db, "--format", "json"])
    assert res.exit_code == 0
    traces = json.loads(res.stdout)["traces"]
    # all three start at the same instant: newest first, ties by trace id
    assert [t["duration_ms"] for t in traces] == [100.0, 200.0, 300.0]
    assert traces[2]["workflow"] == "wf" and traces[2]["errors"] == 1
    tid = traces[0]["trace_id"]
    shown = runner.invoke(app, ["trace", "show", tid, "--db", db, "--format", "json"])
    data = json.loads(shown.stdout)
    by_name = {s["name"]: s for s in data["spans"]}
    assert by_name["chat gpt-4o"]["critical_ms"] == 30.0 and by_name["execute_tool search"]["self_ms"] == 25.0
    text = runner.invoke(app, ["trace", "show", tid, "--db", db])
    assert text.exit_code == 0 and "◆" in text.stdout and "execute_tool search" in text.stdout
    ambiguous = runner.invoke(app, ["trace", "show", tid[:10], "--db", db])  # all three share the prefix
    assert ambiguous.exit_code == ExitCode.USAGE
    missing = runner.invoke(app, ["trace", "show", "ffff", "--db", db])
    assert missing.exit_code == ExitCode.USAGE


@pytest.mark.parametrize("scenario", ["otel", "openinference", "openllmetry"])
def test_real_instrumentation_gives_a_sensible_report(tmp_path: Path, samples: Path, scenario: str) -> None:
    """The real GenAI captures: one agent workflow whose critical path is owned by the LLM calls."""
    path = str(tmp_path / "r.duckdb")
    res = runner.invoke(app, ["trace", "ingest", str(samples / "generated" / f"{scenario}.otlp.jsonl"), "--db", path])
    assert res.exit_code == 0
    (wf,) = report(path)["workflows"]
    assert wf["workflow"] == "weather-agent" and wf["traces"] == 1
    assert wf["error_rate_pct"] == 100.0  # the scenario's last chat call fails with HTTP 404
    cp = {r["key"]: r for r in wf["critical_path"]}
    assert {"llm", "embedding", "tool", "agent"} <= set(cp)
    assert sum(r["p50_ms"] for r in wf["critical_path"]) == pytest.approx(wf["p50_ms"], abs=0.01)
    assert cp["llm"]["share_pct"] > 20
    assert wf["llm"]["calls_per_trace"] == 4.0  # model calls (llm_calls): three chat calls and one embeddings call



def test_llm_table_counts_each_call_once_across_layers(tmp_path: Path) -> None:
    """A LangChain span over the OpenAI SDK's span of the same call (both OpenInference ``LLM``
    spans, role ``llm``) is one call: the report reads the ``llm_calls`` view (docs/llm.md,
    "One call, one row"), not the spans of role ``llm``."""
    oi = {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini"}
    spans = []
    for n in (1, 2):
        tid = f"{n:032x}"
        root, fw, sdk = (f"{n:08x}0000000{i}" for i in (1, 2, 3))
        spans += [
            _span(tid, root, None, "agent", 0, 100, {"gen_ai.workflow.name": "wf", "openinference.span.kind": "AGENT"}),
            _span(tid, fw, root, "ChatOpenAI", 10, 90, oi),
            _span(tid, sdk, fw, "ChatCompletion", 20, 80, {**oi, "llm.token_count.prompt": "100",
                                                           "llm.token_count.completion": "7"}),
        ]
    f = otlp_build.write(tmp_path / "layers.jsonl", otlp_build.by_service({"a": spans}))
    path = str(tmp_path / "layers.duckdb")
    assert runner.invoke(app, ["trace", "ingest", str(f), "--db", path]).exit_code == 0
    q = runner.invoke(app, ["query", "SELECT count(*) AS n FROM spans WHERE role = 'llm'", "--db", path,
                            "--format", "json"])
    assert json.loads(q.stdout)[0]["n"] == 4  # two layers per call
    (wf,) = report(path)["workflows"]
    assert wf["llm"]["calls_per_trace"] == 1.0
    assert wf["llm"]["input_tokens_per_trace"] == 100.0 and wf["llm"]["output_tokens_per_trace"] == 7.0
