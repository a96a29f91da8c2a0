"""The HTML report in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

Skipped when /usr/bin/chromium is absent (install: ``apt-get install -y chromium``;
see README, Development). Playwright never downloads a browser here: it
launches the system one. Screenshots and a printed PDF are kept under
``test-artifacts/browser/`` (or ``$FABRIC_TEST_ARTIFACTS``) for a person to look at.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fabric_trace.cli.app import app
from fabric_trace.service import run_ingest
from hostile import HOSTILE_BASE, HOSTILE_HTML
from pictures_helpers import agent_trace, build_store

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "fixtures" / "scenarios"
ARTIFACTS = Path(os.environ.get("FABRIC_TEST_ARTIFACTS", REPO / "test-artifacts")) / "browser"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
runner = CliRunner()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


class Watched:
    """A page whose console errors, page errors, dialogs and requests are recorded."""

    def __init__(self, browser: object, url: str) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.context = browser.new_context(viewport={"width": 1366, "height": 900})  # type: ignore[attr-defined]

        def route(r: object) -> None:  # nothing may leave the page: record and refuse every non-file request
            if not r.request.url.startswith("file://"):  # type: ignore[attr-defined]
                self.requests.append(r.request.url)  # type: ignore[attr-defined]
                r.abort()  # type: ignore[attr-defined]
            else:
                r.continue_()  # type: ignore[attr-defined]

        self.context.route("**/*", route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type in ("error", "assert") else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: None if r.url == url else self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.goto(url)
        self.page.wait_for_load_state("load")

    def close(self) -> None:
        self.context.close()


def _report(db: str, out: Path, *extra: str) -> str:
    r = runner.invoke(app, ["report", "html", "--db", db, "--out", str(out), *extra])
    assert r.exit_code == 0, r.output
    return out.resolve().as_uri()


@pytest.fixture(scope="module")
def report_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("browser")
    db = str(tmp / "s.duckdb")
    run_ingest(db, [str(SCENARIOS / "remote-state.jsonl"), str(SCENARIOS / "trust-violations.jsonl")])
    return _report(db, tmp / "report.html")


def _in_viewport(page: object, selector: str) -> bool:
    box = page.locator(selector).bounding_box()  # type: ignore[attr-defined]
    h = page.viewport_size["height"]  # type: ignore[attr-defined]
    return box is not None and box["height"] > 0 and 0 <= box["y"] < h


def test_report_loads_offline_without_errors_and_draws_its_pictures(browser: object, report_url: str) -> None:
    w = Watched(browser, report_url)
    page = w.page
    try:
        assert w.errors == [] and w.requests == [] and w.dialogs == []
        counts = page.evaluate("""() => ({
            hist: document.querySelectorAll('svg.hist').length,
            roles: document.querySelectorAll('svg.roles rect').length,
            wf: document.querySelectorAll('details.waterfall svg.wf').length,
            spans: document.querySelectorAll('svg.wf g.sp').length,
            cp: document.querySelectorAll('svg.wf rect.cp').length,
            loc: document.querySelectorAll('svg.loc rect').length,
            zones: document.querySelectorAll('svg.trust g.zone').length,
            risky: document.querySelectorAll('svg.trust path.edge.risky').length,
            findings: document.querySelectorAll('a.finding').length,
            fonts: [...document.fonts].length,
            sheets: [...document.styleSheets].filter(s => s.href).length,
        })""")
        assert counts["hist"] >= 1 and counts["roles"] >= 2 and counts["wf"] >= 10
        assert counts["spans"] > 100 and counts["cp"] > 10 and counts["loc"] >= 1
        assert counts["zones"] >= 3 and counts["risky"] >= 1 and counts["findings"] >= 5
        assert counts["fonts"] == 0 and counts["sheets"] == 0
        for sel in ("svg.hist", "svg.roles", "details.waterfall svg.wf", "svg.loc", "svg.trust"):
            box = page.locator(sel).first.bounding_box()
            assert box and box["width"] > 300 and box["height"] > 40, sel
        page.screenshot(path=str(ARTIFACTS / "report-top.png"))
        page.screenshot(path=str(ARTIFACTS / "report-full.png"), full_page=True)
        for name, sel in (("workflow", "article.workflow"), ("waterfall", "details.waterfall"),
                          ("locality", "#locality"), ("trust", "#trust"), ("findings", "table.findings-kinds")):
            page.locator(sel).first.screenshot(path=str(ARTIFACTS / f"report-{name}.png"))
    finally:
        w.close()


def test_clicking_a_finding_reaches_its_waterfall(browser: object, report_url: str) -> None:
    w = Watched(browser, report_url)
    page = w.page
    try:
        link = page.locator("table.findings-list a.finding").first
        href = link.get_attribute("href")
        assert href and href.startswith("#wf-")
        target = href[1:]
        link.click()
        page.wait_for_function("h => location.hash === h", arg=href)
        trace_card = "details#" + target[:35]
        assert page.locator(trace_card).evaluate("d => d.open")
        if len(target) > 35:  # a span of that trace: highlighted, in view, its details shown
            row = f"[id='{target}']"
            assert "hl" in (page.locator(row).get_attribute("class") or "")
            assert _in_viewport(page, row)
            assert page.locator("#panel").is_visible()
            assert page.locator("#panel-title").text_content()
        else:
            assert _in_viewport(page, trace_card)
        page.screenshot(path=str(ARTIFACTS / "finding-clicked.png"))
        # a closed waterfall opens when its finding is followed
        page.locator(trace_card).evaluate("d => { d.open = false; }")
        page.evaluate("() => { location.hash = ''; }")
        link.click()
        page.wait_for_function("sel => document.querySelector(sel).open", arg=trace_card)
        assert w.errors == [] and w.requests == []
    finally:
        w.close()


def test_clicking_a_span_shows_its_details(browser: object, tmp_path: Path) -> None:
    db = build_store(tmp_path, [agent_trace("ef" * 16, error="upstream timeout")])
    w = Watched(browser, _report(db, tmp_path / "one.html"))
    page = w.page
    try:
        page.locator("svg.wf g.sp", has_text="chat gpt-4o").first.click()
        panel = page.locator("#panel")
        assert panel.is_visible()
        text = panel.inner_text()
        for expected in ("chat gpt-4o", "ERROR: upstream timeout", "input", "1200", "output", "80",
                         "gen_ai.request.model", "gpt-4o", "retry", "self time", "critical path"):
            assert expected in text, expected
        page.screenshot(path=str(ARTIFACTS / "span-details.png"))
        page.keyboard.press("Escape")
        assert not panel.is_visible()
        assert w.errors == [] and w.requests == []
    finally:
        w.close()


def test_hostile_span_data_runs_no_script(browser: object, tmp_path: Path) -> None:
    hostile = HOSTILE_BASE + HOSTILE_HTML
    lines = [agent_trace(f"{i + 1:032x}", name=h, service="svc" + h, attr_value=h, events_name=h, error=h,
                         slow=1 + i / 10) for i, h in enumerate(hostile)]
    db = build_store(tmp_path, lines, "hostile.duckdb")
    w = Watched(browser, _report(db, tmp_path / "hostile.html", "--waterfalls", "40", "--slowest", "40"))
    page = w.page
    try:
        rows = page.locator("svg.wf g.sp")
        assert rows.count() > 100
        for i in range(0, rows.count(), 3):  # open the details of many spans, hostile ones included
            rows.nth(i).dispatch_event("click")
        for link in page.locator("a.finding").all()[:20]:
            link.dispatch_event("click")
        assert page.evaluate("() => window.__pwned") is None
        assert page.evaluate("() => document.querySelectorAll('img, iframe, [onerror], [onload]').length") == 0
        assert page.evaluate("() => document.querySelectorAll('script:not([type])').length") == 1
        assert "</script><script>window.__pwned=1</script>" in page.locator("body").inner_text()
        assert w.errors == [] and w.requests == [] and w.dialogs == []
        page.screenshot(path=str(ARTIFACTS / "hostile.png"))
    finally:
        w.close()


def test_report_prints(browser: object, report_url: str) -> None:
    w = Watched(browser, report_url)
    try:
        w.page.emulate_media(media="print")
        assert not w.page.locator("nav.top").is_visible()
        pdf = w.page.pdf(path=str(ARTIFACTS / "report.pdf"), format="A4")
        assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page") >= 3
    finally:
        w.close()
