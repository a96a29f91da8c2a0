"""Gate outputs: JUnit XML (validated against the JUnit schema CI systems read), JSON, Markdown, annotations."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from fabric_trace.gate.budgets import parse_gate_section
from fabric_trace.gate.checks import CheckResult, GateOutcome
from fabric_trace.gate.outputs import (
    SideInfo,
    gate_report,
    github_annotations,
    compact_report,
    headline,
    junit_xml,
    markdown_summary,
)
from fabric_trace.render.formats import render

XSD = Path(__file__).resolve().parents[1] / "data" / "junit-10.xsd"
NASTY = "wf\x1b[2J<&>\"'%:,\n\u202e"


def _result(verdict: str, *, workflow: str = "rag-answer", kind: str = "regression", name: str = "duration p50",
            reason: str = "because") -> CheckResult:
    return CheckResult(
        name=name, kind=kind, workflow=workflow, metric="duration", stat="p50", unit="ms",
        baseline=100.0, candidate=150.0, delta=50.0, threshold=20.0, threshold_text="+10% and +20.0 ms",
        verdict=verdict, reason=reason, n_baseline=40, n_candidate=41, test="mann-whitney",
        p_value=1e-6, p_adjusted=1e-5, ci=(10.0, 90.0),
    )


def _outcome(fail_on_inconclusive: bool = False) -> GateOutcome:
    results = [
        _result("fail"),
        _result("pass", name="duration p95"),
        _result("inconclusive", name="duration p99", reason="too few traces (baseline 5)"),
        _result("fail", workflow=NASTY, name=f"findings[trust:{NASTY}] mean", reason=f"new {NASTY}"),
        _result("pass", workflow="(all)", kind="structure", name="structure peer_added"),
    ]
    settings = parse_gate_section({"fail_on_inconclusive": fail_on_inconclusive})
    return GateOutcome(results, ["locality checks skipped: no tables"], settings)


def _sides() -> tuple[SideInfo, SideInfo]:
    return (SideInfo("baseline", "b.duckdb", "database", 80, {"rag-answer": 80}, 0),
            SideInfo("candidate", "c.jsonl", "traces", 81, {"rag-answer": 81}, 1))


@pytest.mark.parametrize("fail_on_inconclusive", [False, True])
def test_junit_validates_against_the_junit_schema(fail_on_inconclusive: bool, tmp_path: Path) -> None:
    outcome = _outcome(fail_on_inconclusive)
    path = tmp_path / "gate.xml"
    path.write_text(junit_xml(outcome), encoding="utf-8")
    xmlschema.XMLSchema(str(XSD)).validate(str(path))
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    assert root.get("tests") == "5"
    assert root.get("failures") == ("3" if fail_on_inconclusive else "2")
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == 5
    skipped = root.findall(".//skipped")
    assert len(skipped) == (0 if fail_on_inconclusive else 1)
    assert sum(int(s.get("tests", 0)) for s in root.findall("testsuite")) == 5


def test_junit_is_deterministic_and_safe() -> None:
    text = junit_xml(_outcome())
    assert text == junit_xml(_outcome())
    assert "\x1b" not in text and "\u202e" not in text
    ET.fromstring(text.split("\n", 1)[1])  # well-formed despite the control characters


def test_json_document() -> None:
    base, cand = _sides()
    outcome = _outcome()
    doc = json.loads(render(gate_report(outcome, base, cand, None, 1), "json"))
    assert doc["version"] == 2 and doc["verdict"] == "fail" and doc["exit_code"] == 1
    assert doc["summary"] == {"checks": 5, "failed": 2, "inconclusive": 1, "passed": 2}
    assert doc["settings"]["alpha"] == 0.01 and doc["settings"]["correction"] == "holm"
    assert doc["baseline"] == {"source": "b.duckdb", "kind": "database", "traces": 80,
                               "workflows": {"rag-answer": 80}, "incomplete_traces": 0}
    first = doc["checks"][0]
    assert set(first) >= {"name", "kind", "workflow", "metric", "stat", "role", "unit", "baseline", "candidate",
                          "delta", "delta_pct", "threshold", "threshold_text", "verdict", "reason", "test",
                          "p_value", "p_adjusted", "ci", "n_baseline", "n_candidate", "origin", "details"}
    assert first["delta_pct"] == 50.0 and first["ci"] == [10.0, 90.0]
    assert doc["notes"] == ["locality checks skipped: no tables"]


def test_table_says_inconclusive_loudly() -> None:
    base, cand = _sides()
    text = render(gate_report(_outcome(), base, cand, None, 1), "table")
    assert text.startswith("fabric gate: FAIL (2 failed, 1 inconclusive, 2 passed of 5 checks)")
    assert "INCONCLUSIVE" in text
    assert "WARNING: 1 check(s) INCONCLUSIVE" in text and "do NOT fail the gate" in text
    lines = [ln for ln in text.splitlines() if ln.startswith(("FAIL", "PASS", "INCONCLUSIVE"))]
    assert lines[0].startswith("FAIL") and lines[-1].startswith("PASS")  # failures first


def test_markdown_summary() -> None:
    base, cand = _sides()
    md = markdown_summary(gate_report(_outcome(), base, cand, None, 1))
    assert md.startswith("# fabric gate: FAIL")
    assert "| Verdict |" in md and "\x1b" not in md


def test_github_annotations_escape_data() -> None:
    lines = github_annotations(_outcome())
    assert [ln.split(" ", 1)[0] for ln in lines] == ["::error", "::error", "::warning"]
    for line in lines:
        assert "\n" not in line and "\r" not in line and "\x1b" not in line
        title, _, message = line[len("::error title="):].partition("::") if line.startswith("::error") else \
            line[len("::warning title="):].partition("::")
        assert ":" not in title.replace("%3A", "") and "," not in title.replace("%2C", "")
    nasty = next(ln for ln in lines if "trust" in ln)
    assert "%25" in nasty  # a literal % is escaped
    strict = github_annotations(_outcome(fail_on_inconclusive=True))
    assert all(ln.startswith("::error") for ln in strict)


def test_headline_counts() -> None:
    assert headline(_outcome()) == "fabric gate: FAIL (2 failed, 1 inconclusive, 2 passed of 5 checks)"


def test_inconclusive_run_never_reads_as_a_pass() -> None:
    outcome = _outcome()
    outcome.results = [r for r in outcome.results if r.verdict != "fail"]
    assert outcome.verdict == "inconclusive"
    line = headline(outcome)
    assert line.startswith("fabric gate: INCONCLUSIVE (1 of 3 checks could not decide") and "PASS" not in line
    base, cand = _sides()
    doc = json.loads(render(gate_report(outcome, base, cand, None, 0), "json"))
    assert doc["verdict"] == "inconclusive" and doc["exit_code"] == 0


def test_compact_view_lists_failed_and_inconclusive_checks_and_counts_the_rest() -> None:
    base, cand = _sides()
    full = gate_report(_outcome(), base, cand, None, 1)
    compact = compact_report(full)
    (table,) = compact.tables
    assert [r["verdict"] for r in table.rows] == ["FAIL", "FAIL", "INCONCLUSIVE"]
    assert all(set(r) == {"verdict", "check", "workflow", "delta", "reason"} for r in table.rows)
    assert table.rows[0]["delta"] == "+50.0 ms (+50.0%)"  # the observed change, inconclusive rows too
    assert compact.notes[0].startswith("2 passing check(s) not listed (--verbose")
    assert compact.data == full.data  # JSON keeps every check
    text = render(compact, "table")
    assert text.startswith("fabric gate: FAIL") and "duration p95" not in text  # a passing check is folded
    passing = _outcome()
    passing.results = [r for r in passing.results if r.verdict == "pass"]
    assert compact_report(gate_report(passing, base, cand, None, 0)).tables == []
