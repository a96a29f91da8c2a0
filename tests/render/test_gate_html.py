"""``fabric gate --html`` and ``fabric diff --html``: baseline and candidate side by side."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fabric_trace.cli.app import app
from fabric_trace.fixtures_gen import Scenario, generate, write_otlp_jsonl
from fabric_trace.pictures.compare_data import scope_workflows
from fabric_trace.service import run_ingest
from test_html_report import ALLOWED_TAGS, assert_self_contained, parse

runner = CliRunner()
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("gate-html")
    out = {}
    for name, knobs in (("base", {"seed": 1, "external_tool_rate": 0.0}),
                        ("slow", {"seed": 2, "external_tool_rate": 0.0, "latency_factor": {"llm": 1.3}}),
                        ("ext", {"seed": 2, "external_tool_rate": 0.4})):
        src, db = root / f"{name}.jsonl", root / f"{name}.duckdb"
        write_otlp_jsonl(generate(Scenario(traces=300, **knobs)), src)  # type: ignore[arg-type]
        run_ingest(str(db), [str(src)])
        out[name] = str(db)
    return out


def test_gate_html_shows_the_failed_checks_side_by_side(runs: dict[str, str], tmp_path: Path) -> None:
    page_path = tmp_path / "gate.html"
    r = runner.invoke(app, ["gate", "-b", runs["base"], "-c", runs["slow"], "--html", str(page_path)])
    assert r.exit_code == 1, r.output
    html = page_path.read_text(encoding="utf-8")
    page = parse(html)
    assert_self_contained(html, page)
    assert set(page.tags) <= ALLOWED_TAGS
    assert '<span class="verdict fail">FAIL</span>' in html
    cards = re.findall(r'<article class="card check" id="check-\d+">\s*<h3>([^<]*)</h3>', html)
    assert any(c.startswith("critical_path[llm] mean") for c in cards), cards
    assert html.count('class="pic values"') == len(cards)
    assert '<span class="sev high">fail</span>' in html
    # each failed workflow gets its side-by-side pictures, and the check links to them
    for href in page.hrefs:
        assert href[1:] in page.ids, href
    comparisons = re.findall(r'<article class="card workflow" id="(workflow-\d+)">', html)
    assert comparisons
    assert html.count('class="pic hist cmp"') == len(comparisons)
    assert html.count('class="pic roles"') == len(comparisons)
    assert len(re.findall(r'id="wf-b-[0-9a-f]{32}"', html)) == len(comparisons)
    assert len(re.findall(r'id="wf-c-[0-9a-f]{32}"', html)) == len(comparisons)
    assert "critical_path[llm] mean" in html and "All checks" in html


def test_gate_html_when_the_gate_passes(runs: dict[str, str], tmp_path: Path) -> None:
    page_path = tmp_path / "pass.html"
    r = runner.invoke(app, ["gate", "-b", runs["base"], "-c", runs["base"], "--html", str(page_path)])
    assert r.exit_code == 0, r.output
    html = page_path.read_text(encoding="utf-8")
    assert '<span class="verdict pass">PASS</span>' in html
    assert '<span class="sev high">fail</span>' not in html  # inconclusive checks may be listed, none failed


def test_diff_html_lists_changes_and_draws_workflows(runs: dict[str, str], tmp_path: Path) -> None:
    page_path = tmp_path / "diff.html"
    r = runner.invoke(app, ["diff", runs["base"], runs["ext"], "--html", str(page_path)])
    assert r.exit_code == 0, r.output
    html = page_path.read_text(encoding="utf-8")
    assert_self_contained(html, parse(html))
    assert "Structural changes</h2>" in html
    assert "api.weather.example.com" in html or "api.search.example.com" in html
    assert html.count('class="pic hist cmp"') >= 1
    r = runner.invoke(app, ["diff", runs["base"], runs["ext"], "--html", str(tmp_path / "no" / "d.html")])
    assert r.exit_code == 73 and "cannot write the HTML file" in r.stderr


def test_scope_labels() -> None:
    known = {"a", "b", "a+b"}
    assert scope_workflows("a", known) == ("a",)
    assert scope_workflows("a+b", known) == ("a+b",)  # a workflow name wins over a pooled label
    assert scope_workflows("(all)", known) is None
    assert scope_workflows("b+zzz", {"b"}) == ("b",)
    assert scope_workflows("zzz", {"b"}) is None


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed (apt-get install -y chromium)")
def test_gate_html_in_the_browser(runs: dict[str, str], tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    from test_html_browser import ARGS, ARTIFACTS, Watched

    page_path = tmp_path / "gate.html"
    runner.invoke(app, ["gate", "-b", runs["base"], "-c", runs["slow"], "--html", str(page_path)])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        w = Watched(browser, page_path.resolve().as_uri())
        try:
            assert w.errors == [] and w.requests == []
            link = w.page.locator("article.check a").first
            link.click()
            target = link.get_attribute("href")
            w.page.wait_for_function("h => location.hash === h", arg=target)
            box = w.page.locator(target).bounding_box()
            assert box and box["height"] > 100
            w.page.locator(".sides svg.wf g.sp").last.click()
            assert w.page.locator("#panel").is_visible()
            w.page.screenshot(path=str(ARTIFACTS / "gate-side-by-side.png"))
            w.page.screenshot(path=str(ARTIFACTS / "gate-full.png"), full_page=True)
            assert w.errors == []
        finally:
            w.close()
            browser.close()
