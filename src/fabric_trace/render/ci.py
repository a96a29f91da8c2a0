"""CI renderers of a gate run: JUnit XML and GitHub Actions workflow commands.

They render :class:`CheckCase` rows (built by :mod:`fabric_trace.gate.outputs`
from the check results) and never compute anything: every string from span
data goes through ``safe_text``.

* :func:`junit_xml` - one ``<testcase>`` per check, grouped in one
  ``<testsuite>`` per workflow; failures are ``<failure>``, inconclusive
  checks ``<skipped>`` (or ``<failure type="inconclusive">`` with
  ``fail_on_inconclusive``). Deterministic: every ``time`` is ``0``.
* :func:`github_annotations` - ``::error`` / ``::warning`` workflow commands.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from fabric_trace.render.sanitize import safe_text


@dataclass(frozen=True)
class CheckCase:
    """One gate check as the CI formats show it."""

    name: str
    workflow: str
    verdict: str
    """``pass``, ``fail`` or ``inconclusive``."""
    kind: str
    """``regression``, ``budget`` or ``structure`` (the JUnit failure type)."""
    reason: str
    body: str
    """The multi-line description (values, threshold, test, reason)."""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "all"


def _xml_text(value: object) -> str:
    """Text safe for XML 1.0 (control characters made visible)."""
    return safe_text(value, None, multiline=True)


def junit_xml(cases: list[CheckCase], *, fail_on_inconclusive: bool) -> str:
    """The checks as JUnit XML (the ``testsuites`` document CI systems read)."""
    suites: dict[str, list[CheckCase]] = {}
    for r in cases:
        suites.setdefault(r.workflow, []).append(r)
    n_failed = sum(1 for r in cases if r.verdict == "fail")
    n_inconclusive = sum(1 for r in cases if r.verdict == "inconclusive")
    root = ET.Element("testsuites", {
        "name": "fabric gate", "tests": str(len(cases)), "time": "0",
        "failures": str(n_failed + (n_inconclusive if fail_on_inconclusive else 0)),
        "errors": "0",
    })
    for workflow in sorted(suites):
        group = suites[workflow]
        failures = sum(1 for r in group if r.verdict == "fail" or (fail_on_inconclusive and r.verdict == "inconclusive"))
        skipped = sum(1 for r in group if r.verdict == "inconclusive" and not fail_on_inconclusive)
        suite = ET.SubElement(root, "testsuite", {
            "name": _xml_text(f"fabric gate: {workflow}"), "tests": str(len(group)), "failures": str(failures),
            "errors": "0", "skipped": str(skipped), "time": "0",
        })
        for r in group:
            case = ET.SubElement(suite, "testcase", {
                "name": _xml_text(r.name), "classname": f"fabric.gate.{_slug(workflow)}", "time": "0",
            })
            body = _xml_text(r.body)
            failed = r.verdict == "fail" or (r.verdict == "inconclusive" and fail_on_inconclusive)
            if failed:
                kind = r.kind if r.verdict == "fail" else "inconclusive"
                ET.SubElement(case, "failure", {"type": kind, "message": _xml_text(r.reason)}).text = body
            else:
                if r.verdict == "inconclusive":
                    ET.SubElement(case, "skipped", {"message": _xml_text(f"inconclusive: {r.reason}")})
                ET.SubElement(case, "system-out").text = body
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(cases: list[CheckCase], *, fail_on_inconclusive: bool) -> list[str]:
    """``::error`` lines for failed checks, ``::warning`` for inconclusive ones (in the given order)."""
    lines = []
    for r in cases:
        if r.verdict == "pass":
            continue
        level = "error" if r.verdict == "fail" or fail_on_inconclusive else "warning"
        title = _gh_property(safe_text(f"fabric gate: {r.name} [{r.workflow}]", 200))
        prefix = "" if r.verdict == "fail" else "inconclusive: "
        lines.append(f"::{level} title={title}::{_gh_data(safe_text(prefix + r.reason, 1000))}")
    return lines
