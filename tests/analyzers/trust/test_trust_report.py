"""`fabric report trust`: the JSON document, the views, the map formats, the CLI, hostile strings, real samples."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from fabric_trace.analyzers.trust.report import RULES
from fabric_trace.render.trustmap import dot_label, mermaid_label
from fabric_trace.cli.app import app
from fabric_trace.fixtures_gen import Scenario, generate, write_otlp_jsonl
from test_trust_helpers import S, Svc, TraceSet, ingest, sid, tid

runner = CliRunner()

TRUST_SPANS_COLUMNS = ["trace_id", "span_id", "service_name", "zone", "zone_kind", "trust_level"]
TRUST_CROSSINGS_COLUMNS = [
    "trace_id", "crossing", "parent_span_id", "child_span_id", "from_zone", "from_kind", "from_level",
    "to_zone", "to_kind", "to_level", "peer", "protocol", "operation", "scheme",
    "identity_from", "identity_to", "error",
]
REPORT_KEYS = {"report", "traces", "zones", "crossings", "findings_by_rule", "findings_by_workflow", "findings",
               "findings_total"}
ZONE_KEYS = {"zone", "kind", "trust_level", "spans", "services", "crossings_out", "crossings_in"}
CROSSING_KEYS = {"from_zone", "from_kind", "to_zone", "to_kind", "protocol", "operation", "calls", "errors",
                 "error_rate_pct", "identity_both", "identity_both_pct", "plaintext", "crossing_types"}
RULE_KEYS = {"kind", "findings", "traces", "critical", "high", "medium", "low", "info"}
WORKFLOW_KEYS = {"workflow", "kind", "findings", "traces", "max_severity"}
FINDING_KEYS = {"severity", "kind", "workflow", "trace_id", "span_id", "message", "details"}
MAP_NODE_KEYS = {"id", "kind", "trust_level", "spans"}
MAP_EDGE_KEYS = {"from", "to", "calls", "errors", "plaintext", "identity_both", "protocols"}


@pytest.fixture(scope="module")
def gen_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("trust_report")
    gen = generate(Scenario(traces=40, seed=21, unguarded_tool_rate=0.3, denied_tool_executed_rate=0.2,
                            anonymous_rate=0.3, plaintext_rate=0.5, external_tool_rate=0.5))
    write_otlp_jsonl(gen, str(tmp / "g.jsonl"))
    ingest(tmp / "g.duckdb", [tmp / "g.jsonl"])
    return str(tmp / "g.duckdb")


def cli(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["report", "trust", *args])
    return res.exit_code, res.stdout, res.stderr


def report(db: str, *args: str) -> dict:
    code, out, err = cli("--db", db, "--format", "json", *args)
    assert code == 0, err
    return json.loads(out)


# -- the JSON document and the views (pinned) ---------------------------------------------------------
def test_json_document_is_pinned(gen_db: str) -> None:
    doc = report(gen_db, "--limit", "5")
    assert set(doc) == REPORT_KEYS and doc["report"] == "trust" and doc["traces"] == 40
    assert all(set(z) == ZONE_KEYS for z in doc["zones"])
    assert all(set(c) == CROSSING_KEYS for c in doc["crossings"])
    assert [r["kind"] for r in doc["findings_by_rule"]] == list(RULES)
    assert all(set(r) == RULE_KEYS for r in doc["findings_by_rule"])
    assert all(set(r) == WORKFLOW_KEYS for r in doc["findings_by_workflow"])
    assert all(set(f) == FINDING_KEYS for f in doc["findings"]) and len(doc["findings"]) == 5
    assert doc["findings_total"] == sum(r["findings"] for r in doc["findings_by_rule"])
    # crossings sorted by calls (desc); rates are percentages 0-100
    calls = [c["calls"] for c in doc["crossings"]]
    assert calls == sorted(calls, reverse=True)
    assert all(0 <= c["error_rate_pct"] <= 100 and 0 <= c["identity_both_pct"] <= 100 for c in doc["crossings"])
    # findings: most severe first
    order = ["critical", "high", "medium", "low", "info"]
    sev = [order.index(f["severity"]) for f in doc["findings"]]
    assert sev == sorted(sev)
    zones = {z["zone"]: z for z in doc["zones"]}
    assert zones["user"]["kind"] == "user" and zones["agents"]["services"] == ["agent-orchestrator", "report-worker"]


def test_json_is_deterministic(gen_db: str) -> None:
    assert cli("--db", gen_db, "--format", "json")[1] == cli("--db", gen_db, "--format", "json")[1]


def test_views_are_pinned(gen_db: str) -> None:
    con = duckdb.connect(gen_db, read_only=True)
    try:
        for view, cols in (("trust_spans", TRUST_SPANS_COLUMNS), ("trust_crossings", TRUST_CROSSINGS_COLUMNS)):
            got = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {view}").fetchall()]
            want = [(c, "BOOLEAN" if c in ("identity_from", "identity_to", "error") else "VARCHAR") for c in cols]
            assert got == want, view
        n_spans, n_zoned = con.execute("SELECT (SELECT count(*) FROM spans), (SELECT count(*) FROM trust_spans)"
                                       ).fetchone()
        assert n_spans == n_zoned
    finally:
        con.close()
    res = runner.invoke(app, ["query", "SELECT count(*) AS n FROM trust_crossings WHERE crossing = 'entry'",
                              "--db", gen_db, "--format", "json"])
    assert res.exit_code == 0 and json.loads(res.stdout) == [{"n": 40}]


def test_filters(gen_db: str) -> None:
    full = report(gen_db)
    rag = report(gen_db, "--workflow", "rag-answer")
    assert 0 < rag["traces"] < full["traces"]
    assert {w["workflow"] for w in rag["findings_by_workflow"]} <= {"rag-answer"}
    tools = report(gen_db, "--where", "role = tool")
    assert tools["traces"] < full["traces"]
    assert report(gen_db, "--since", "2030-01-01T00:00:00Z")["traces"] == 0
    code, _, err = cli("--db", gen_db, "--where", "nonsense ~~ 1")
    assert code == 2 and "--where" in err


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv"])
def test_human_formats(gen_db: str, fmt: str) -> None:
    code, out, _ = cli("--db", gen_db, "--format", fmt)
    assert code == 0
    if fmt == "csv":
        assert all(f"# {name}" in out for name in ("findings_by_rule", "crossings", "zones", "findings"))
    plain = out.replace("\\", "")  # markdown escapes _ and :
    assert "unguarded_tool_call" in plain and "provider:openai" in plain


# -- the map --------------------------------------------------------------------------------------------
def test_map_json_and_output_file(gen_db: str, tmp_path: Path) -> None:
    code, out, _ = cli("--db", gen_db, "--map", "json")
    doc = json.loads(out)
    assert doc["map"] == "trust"
    assert all(set(n) == MAP_NODE_KEYS for n in doc["nodes"]) and all(set(e) == MAP_EDGE_KEYS for e in doc["edges"])
    ids = {n["id"] for n in doc["nodes"]}
    assert all(e["from"] in ids and e["to"] in ids for e in doc["edges"])
    edge = {(e["from"], e["to"]): e for e in doc["edges"]}
    assert edge[("user", "platform")]["calls"] == 40
    target = tmp_path / "map.mmd"
    code, out, err = cli("--db", gen_db, "--map", "mermaid", "--output", str(target))
    assert code == 0 and out == "" and "wrote" in err
    assert target.read_text().startswith("flowchart LR\n")
    assert [p.name for p in tmp_path.iterdir()] == ["map.mmd"]  # no temp file left behind
    code, _, err = cli("--db", gen_db, "--map", "dot", "--output", str(tmp_path / "missing" / "x.dot"))
    assert code == 73


def test_map_dot_structure(gen_db: str) -> None:
    out = cli("--db", gen_db, "--map", "dot")[1]
    lines = out.splitlines()
    assert lines[0] == "digraph trust {" and lines[-1] == "}"
    assert any(re.match(r'  z\d+ -> z\d+ \[label="', ln) for ln in lines)


# -- hostile strings -----------------------------------------------------------------------------------
HOSTILE = ('\x1b[2J\x1b]8;;http://evil\x07click\x1b]8;;\x07 [link=http://x]y[/link] <script>alert(1)</script> '
           '"];z0-->z1;%%{init}%% `tick` |pipe| \\n\n\u202egnp.exe \u009b31m {{x}} #quot; &amp;')
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("hostile")
    svc = Svc("svc" + HOSTILE, "ns" + HOSTILE)
    other = Svc("other", "o" + HOSTILE)
    ts = TraceSet()
    ts.trace(tid(1), [
        S(sid(1), None, HOSTILE, svc, 0, 100, "SERVER", {"url.scheme": "http", "gen_ai.workflow.name": HOSTILE}),
        S(sid(2), sid(1), "execute_tool", svc, 1, 10, attrs={"gen_ai.operation.name": "execute_tool",
                                                            "gen_ai.tool.name": "send_" + HOSTILE}),
        S(sid(3), sid(2), "GET " + HOSTILE, svc, 2, 9, "CLIENT", {"server.address": "evil" + HOSTILE,
                                                                 "url.full": "http://x/" + HOSTILE}),
        S(sid(4), sid(1), "call", svc, 11, 20, "CLIENT", {"server.address": "other"}),
        S(sid(5), sid(4), HOSTILE, other, 12, 19, "SERVER"),
    ])
    ingest(tmp / "h.duckdb", [ts.write(tmp / "h.jsonl")])
    return str(tmp / "h.duckdb")


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv", "json"])
def test_hostile_strings_in_report(hostile_db: str, fmt: str) -> None:
    code, out, _ = cli("--db", hostile_db, "--format", fmt)
    assert code == 0
    assert not UNSAFE.search(out)
    if fmt == "markdown":
        # every Markdown-active character from span data is backslash-escaped
        assert not re.search(r"(?<!\\)[<>\[\]`]", out)
        assert "\\<script\\>" in out
    if fmt == "table":
        assert "[link=http://x]" in out  # shown literally, never parsed as markup
    if fmt == "json":
        doc = json.loads(out)
        assert any(z["zone"] == "ns" + HOSTILE for z in doc["zones"])  # lossless
        assert doc["findings_total"] > 0


_MERMAID_LINE = re.compile(
    r'^(flowchart LR|  classDef \w+ [a-z:#0-9,]+'
    r'|  z\d+\["[A-Za-z0-9 .,:/@+_#;\-]*(<br/>[A-Za-z0-9 .,:/@+_#;\-]*)*"\]:::\w+'
    r'|  z\d+ -->\|"[A-Za-z0-9 .,:/@+_#;\-]*(<br/>[A-Za-z0-9 .,:/@+_#;\-]*)*"\| z\d+)$')
_DOT_LINE = re.compile(
    r'^(digraph trust \{|\}|  rankdir=LR;|  (node|edge) \[[^\n]*\];'
    r'|  z\d+ \[label="(?:[^"\\\n]|\\.)*", shape=\w+, fillcolor="#[0-9a-f]{6}"\];'
    r'|  z\d+ -> z\d+ \[label="(?:[^"\\\n]|\\.)*"(, color="#[0-9a-f]{6}")?\];)$')


def test_hostile_strings_in_maps(hostile_db: str) -> None:
    mermaid = cli("--db", hostile_db, "--map", "mermaid")[1]
    assert not UNSAFE.search(mermaid)
    assert all(_MERMAID_LINE.match(ln) for ln in mermaid.splitlines()), mermaid
    dot = cli("--db", hostile_db, "--map", "dot")[1]
    assert not UNSAFE.search(dot)
    assert all(_DOT_LINE.match(ln) for ln in dot.splitlines()), dot


def test_label_escapers() -> None:
    assert mermaid_label('a"b<c>[d]|e') == "a#34;b#60;c#62;#91;d#93;#124;e"
    assert mermaid_label("x\x1by") == "x#92;x1by"
    assert dot_label('a"b\\c') == 'a\\"b\\\\c'
    assert dot_label("\x1b[31m") == "\\\\x1b[31m"


# -- errors ------------------------------------------------------------------------------------------------
def test_bad_config_exits_78(gen_db: str, tmp_path: Path) -> None:
    cfg = tmp_path / "fabric.toml"
    for text, needle in (('[trust]\nzones = 3\n', "[trust.zones]"),
                         ('[trust]\nprivileged_tools = "send_*"\n', "privileged_tools"),
                         ('[trust.zones.x]\nkind = "martian"\n', "kind"),
                         ('[trust]\nbogus = 1\n', "bogus")):
        cfg.write_text(text)
        code, _, err = cli("--db", gen_db, "--config", str(cfg))
        assert code == 78 and needle in err, (text, err)


def test_missing_database(tmp_path: Path) -> None:
    code, _, err = cli("--db", str(tmp_path / "none.duckdb"))
    assert code != 0 and "does not exist" in err


# -- the real sample files --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["otel", "openinference", "openllmetry"])
def test_real_generated_samples(samples: Path, tmp_path: Path, name: str) -> None:
    db = tmp_path / "s.duckdb"
    ingest(db, [samples / "generated" / f"{name}.otlp.jsonl"])
    doc = report(str(db))
    rules = {r["kind"]: r["findings"] for r in doc["findings_by_rule"]}
    # one manual execute_tool get_weather with no policy check (a read-only tool: medium)
    assert rules["unguarded_tool_call"] == 1
    assert [f["severity"] for f in doc["findings"] if f["kind"] == "unguarded_tool_call"] == ["medium"]
    # the user (user.id, session.id on the root agent span) enters the "fixtures" namespace
    assert {(c["from_zone"], c["to_zone"]) for c in doc["crossings"] if "entry" in c["crossing_types"]} == {
        ("user", "fixtures")}
    # openllmetry names the peer 127.0.0.1 (the loopback mock): no egress; the others only the provider
    assert rules["provider_egress"] == (0 if name == "openllmetry" else 4)
    assert rules["plaintext_crossing"] == 0
    assert rules["anonymous_privileged_action"] == 0


@pytest.mark.parametrize("path", ["public/jaeger_ui_01.json", "public/zipkin_v2_sample3.json",
                                  "public/otlp_proto_examples_trace.json",
                                  "generated/all3.collector-fileexporter-proto.bin"])
def test_real_public_samples(samples: Path, tmp_path: Path, path: str) -> None:
    db = tmp_path / "s.duckdb"
    ingest(db, [samples / path])
    doc = report(str(db))
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM spans").fetchone() == con.execute(
            "SELECT count(*) FROM trust_spans").fetchone()
    finally:
        con.close()
    if path.startswith("public/jaeger"):
        assert {(c["from_zone"], c["to_zone"]) for c in doc["crossings"]} == {("service-x", "service-y")}
    if path.startswith("public/zipkin"):
        assert doc["crossings"] == []  # a client call to a private address stays in its zone
    if path.startswith("generated/"):
        assert {r["kind"]: r["findings"] for r in doc["findings_by_rule"]}["unguarded_tool_call"] == 3
