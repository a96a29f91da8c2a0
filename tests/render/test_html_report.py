"""``fabric report html``: a self-contained page with every picture, safe with hostile span data."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fabric_trace.cli.app import app
from fabric_trace.fixtures_gen import Scenario, generate, write_otlp_jsonl
from fabric_trace.service import run_ingest
from hostile import HOSTILE_BASE, HOSTILE_HTML
from pictures_helpers import agent_trace, build_store

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "fixtures" / "scenarios"
runner = CliRunner()

#: Elements the report is made of; anything else in the page would have come from data.
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "nav", "a", "strong", "main", "header", "h1", "h2", "h3", "p",
    "code", "section", "ol", "li", "span", "i", "article", "b", "div", "figure", "figcaption", "svg", "rect", "line",
    "text", "tspan", "polyline", "circle", "g", "defs", "marker", "path", "table", "thead", "tbody", "tr", "th", "td",
    "details", "summary", "ul", "script", "footer", "aside", "button", "dl",
}


class Page(HTMLParser):
    """Collects tags, attributes, ids and links of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str]] = []
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.scripts: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        d = {k: v or "" for k, v in attrs}
        self.attrs.extend(d.items())
        if "id" in d:
            self.ids.add(d["id"])
        if tag == "a":
            self.hrefs.append(d.get("href", ""))
        if tag == "script":
            self.scripts.append(d)


def parse(html: str) -> Page:
    p = Page()
    p.feed(html)
    return p


@pytest.fixture(scope="module")
def scenario_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    db = str(tmp_path_factory.mktemp("html") / "s.duckdb")
    run_ingest(db, [str(SCENARIOS / "remote-state.jsonl"), str(SCENARIOS / "trust-violations.jsonl")])
    return db


def render(db: str, tmp_path: Path, *extra: str) -> tuple[str, str]:
    out = tmp_path / "report.html"
    r = runner.invoke(app, ["report", "html", "--db", db, "--out", str(out), *extra])
    assert r.exit_code == 0, r.output
    return out.read_text(encoding="utf-8"), r.stderr


def assert_self_contained(html: str, page: Page) -> None:
    """Nothing in the page points outside it: only in-page links, no external resources."""
    for href in page.hrefs:
        assert href.startswith("#"), href
    for key, value in page.attrs:
        assert key not in ("src", "srcset", "action", "formaction", "xlink:href"), (key, value)
        if key == "href":
            assert value.startswith("#"), value
    assert not re.search(r"@import|url\(\s*['\"]?(?!#)", html), "the stylesheet loads something"
    assert "<link" not in html and "<img" not in html and "<iframe" not in html
    assert all(s.get("type") in (None, "application/json") and "src" not in s for s in page.scripts)


def test_report_has_every_section_and_is_self_contained(scenario_db: str, tmp_path: Path) -> None:
    html, err = render(scenario_db, tmp_path)
    page = parse(html)
    assert_self_contained(html, page)
    assert set(page.tags) <= ALLOWED_TAGS, set(page.tags) - ALLOWED_TAGS
    for section in ("summary", "workflows", "waterfalls", "locality", "trust", "findings"):
        assert section in page.ids
    waterfalls = [i for i in page.ids if re.fullmatch(r"wf-[0-9a-f]{32}", i)]
    assert 10 <= len(waterfalls) <= 20
    assert re.search(r"report: \d+ traces, %d waterfalls, [0-9.]+ MB" % len(waterfalls), err)
    # every finding link and summary link lands on an element of the page
    for href in page.hrefs:
        assert href[1:] in page.ids, href
    assert html.count('class="finding"') >= 5
    assert 'class="edge risky"' in html  # the trust-violations scenario has risky crossings
    assert 'class="cp"' in html  # critical path drawn on the bars
    assert "What to look at" in html and html.count("<li><a href=") >= 3


def test_filters_select_traces(scenario_db: str, tmp_path: Path) -> None:
    html, _ = render(scenario_db, tmp_path, "--workflow", "no-such-workflow")
    assert "No trace matches the filters." in html
    assert not re.search(r'id="wf-[0-9a-f]{32}"', html)
    assert_self_contained(html, parse(html))
    html, err = render(scenario_db, tmp_path, "--slowest", "2", "--waterfalls", "3", "--title", "nightly <run>")
    assert "<title>nightly &lt;run&gt;</title>" in html
    assert len(set(re.findall(r'id="(wf-[0-9a-f]{32})"', html))) == 3


def test_size_budget_a_few_hundred_traces_with_20_waterfalls(tmp_path: Path) -> None:
    src, db = tmp_path / "g300.jsonl", str(tmp_path / "budget.duckdb")
    write_otlp_jsonl(generate(Scenario(traces=300, seed=5)), src)
    run_ingest(db, [str(src)])
    html, err = render(db, tmp_path, "--waterfalls", "20", "--slowest", "20")
    assert "report: 300 traces, 20 waterfalls" in err
    assert len(set(re.findall(r'id="(wf-[0-9a-f]{32})"', html))) == 20
    assert len(html.encode()) < 3_000_000


def test_unwritable_output_is_exit_73(scenario_db: str, tmp_path: Path) -> None:
    r = runner.invoke(app, ["report", "html", "--db", scenario_db, "--out", str(tmp_path / "no" / "r.html")])
    assert r.exit_code == 73 and "cannot write the HTML file" in r.stderr


HOSTILE = HOSTILE_BASE + HOSTILE_HTML


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("hostile")
    lines = [agent_trace(f"{i + 1:032x}", name=h, service="svc" + h, attr_value=h, events_name=h,
                         error=h, slow=1 + i / 10) for i, h in enumerate(HOSTILE)]
    return build_store(tmp, lines, "hostile.duckdb")


def test_hostile_strings_never_become_markup(hostile_db: str, tmp_path: Path) -> None:
    html, _ = render(hostile_db, tmp_path, "--waterfalls", "30", "--slowest", "30")
    page = parse(html)
    assert set(page.tags) <= ALLOWED_TAGS, set(page.tags) - ALLOWED_TAGS
    assert not [k for k, _ in page.attrs if k.startswith("on")]
    assert_self_contained(html, page)
    assert len(page.scripts) == 1 + len(set(re.findall(r'id="(wf-[0-9a-f]{32})"', html)))
    # inside the JSON blocks nothing can close the element
    for block in re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', html, re.S):
        assert "<" not in block and ">" not in block and "\u2028" not in block
    # the strings are there, as text
    assert "&lt;/script&gt;&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    assert "\x1b" not in html and "\u202e" not in html  # terminal controls made visible, as elsewhere


def test_html_report_subcommand_help() -> None:
    r = runner.invoke(app, ["report", "html", "--help"])
    assert r.exit_code == 0 and "--out" in r.output
