"""Tables fit the terminal: every report at 80 and 120 columns, labels and units kept; full width into a pipe."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.cells import cell_len
from typer.testing import CliRunner

from conftest import SAMPLES
from terminal import run_in_terminal, visible_widths

from fabric_trace.analyzers.latency.report import LatencyOptions, build_latency_report
from fabric_trace.analyzers.locality.report import build_locality_report
from fabric_trace.analyzers.trust.report import build_trust_report
from fabric_trace.browse import list_traces, load_trace, trace_report
from fabric_trace.cli.app import app
from fabric_trace.model import ReportFilter
from fabric_trace.render.fit import fit_table, unique_prefix_len
from fabric_trace.render.formats import render, render_rows
from fabric_trace.model import Column, Report, Table
from fabric_trace.service import open_analyzed

runner = CliRunner()
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "scenarios"
WIDTHS = (80, 120)
#: A number with its unit, as the table formats show it.
NUMBER_WITH_UNIT = re.compile(r"^-?[\d,]+(\.\d+)? (ms|µs|ns|s)$|^-?[\d.]+%$")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("width") / "w.duckdb")
    inputs = [str(FIXTURES / "faults.jsonl"), str(FIXTURES / "trust-violations.jsonl"),
              str(FIXTURES / "remote-state.jsonl"), str(SAMPLES / "generated" / "otel.otlp.jsonl")]
    res = runner.invoke(app, ["trace", "ingest", *inputs, "--db", path])
    assert res.exit_code == 0, res.stderr
    return path


@pytest.fixture(scope="module")
def reports(db: str) -> dict[str, Report]:
    with open_analyzed(db) as con:
        tid = con.execute("SELECT trace_id FROM traces ORDER BY span_count DESC, trace_id LIMIT 1").fetchone()[0]
        return {
            "latency": build_latency_report(con, LatencyOptions()),
            "latency-by-operation": build_latency_report(con, LatencyOptions(by="operation")),
            "locality": build_locality_report(con),
            "trust": build_trust_report(con),
            "trace ls": list_traces(con, ReportFilter(), 20),
            "trace show": trace_report(load_trace(con, tid)),
        }


def _table_blocks(report: Report, text: str) -> None:
    """Every table kept its first (label) column header and no number lost its unit."""
    for table in report.tables:
        if table.rows:
            assert table.columns[0].header.split(" ")[0] in text, (report.title, table.title)
    for line in text.splitlines():
        for cell in re.split(r"\s{2,}", line.strip()):
            if re.fullmatch(r"-?[\d,]+\.\d", cell):  # a number whose unit was cut off
                pytest.fail(f"number without its unit: {line!r}")
            assert not re.fullmatch(r"-?[\d,]+(\.\d+)? (m|µ|n)", cell), f"cut unit: {line!r}"


@pytest.mark.parametrize("width", WIDTHS)
def test_every_report_fits_the_width(reports: dict[str, Report], width: int) -> None:
    for name, report in reports.items():
        text = render(report, "table", width=width)
        widest = max(cell_len(line) for line in text.splitlines())
        assert widest <= width, (name, width, widest)
        _table_blocks(report, text)


def test_labels_are_kept_and_numbers_never_cut_at_80(reports: dict[str, Report]) -> None:
    text = render(reports["latency"], "table", width=80)
    assert "Workflow" in text and "Role" in text
    first = text.split("\n\n")[1]  # the end-to-end table
    assert "p50" in first and "p95" in first
    assert "Incomplete" in text  # named as left out, in a note
    assert "(not shown at 80 columns:" in text


def test_without_a_width_nothing_is_cut_or_dropped(reports: dict[str, Report]) -> None:
    for name, report in reports.items():
        text = render(report, "table")
        assert "…" not in text.replace("0 … ", ""), name
        assert "not shown at" not in text, name
        for table in report.tables:
            for column in table.columns:
                for word in column.header.split(" "):
                    assert word in text, (name, column.header)


def test_trace_ids_are_shortened_to_a_unique_prefix() -> None:
    ids = ["0123456789abcdef" + "0" * 16, "0123456789abcdef" + "1" * 16, "ffff" + "2" * 28]
    assert unique_prefix_len(ids) == 17
    assert unique_prefix_len(["abc", "abd"], minimum=8) == 3  # never longer than the values
    rows = [{"trace_id": i, "workflow": "w" * 30, "message": "m" * 200, "n": 1} for i in ids]
    report = Report("t", [Table("t", "T", [Column("trace_id", "Trace", "id"), Column("workflow", "Workflow"),
                                            Column("message", "Message"), Column("n", "N", "int")], rows)], {})
    text = render(report, "table", width=80)
    assert max(cell_len(line) for line in text.splitlines()) <= 80
    shown = [line.split()[0] for line in text.splitlines() if line.startswith(("0123", "ffff"))]
    assert shown == [i[:17] for i in ids]
    assert "…" in text  # the message was cut, with an ellipsis


def test_fit_order_drops_other_text_before_numbers_and_keeps_the_first_column() -> None:
    cells = [["research-agent", "x" * 40, "1,234.5 ms", "12.0%"]]
    fitted = fit_table(["workflow", "services", "p50", "share"], ["Workflow", "Services", "p50", "Share"],
                       ["label", "other", "number", "number"], cells, 40)
    assert fitted.columns[0] == 0 and 1 in fitted.dropped and 2 in fitted.columns
    assert sum(fitted.widths.values()) + 2 * (len(fitted.columns) - 1) <= 40


def test_query_results_fit_too(db: str) -> None:
    from fabric_trace.service import run_query

    cols, rows = run_query(db, "SELECT * FROM spans LIMIT 20")
    for width in WIDTHS:
        text = render_rows(cols, rows, "table", width=width)
        assert max(cell_len(line) for line in text.splitlines()) <= width


def test_pipe_output_is_full_width(db: str) -> None:
    """Into a pipe, tables are laid out at their natural width: no wrapping, nothing cut."""
    res = subprocess.run([sys.executable, "-m", "fabric_trace", "trace", "ls", "--db", db],
                         capture_output=True, text=True, env={"COLUMNS": "40", "PATH": ""}, timeout=300)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    rows = [line for line in lines if re.match(r"^[0-9a-f]{32}\s", line)]
    assert rows and all(len(line) > 40 for line in rows)  # $COLUMNS does not apply to a pipe
    assert "…" not in res.stdout and "not shown" not in res.stdout
    assert "\x1b" not in res.stdout


@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_every_command_fits_a_real_terminal(db: str, tmp_path: Path, width: int) -> None:
    """The real CLI in a pseudo-terminal: no line of output wider than the terminal."""
    with open_analyzed(db) as con:
        tid = con.execute("SELECT trace_id FROM traces WHERE error_count > 0 ORDER BY trace_id LIMIT 1").fetchone()[0]
    copy = str(tmp_path / "copy.duckdb")
    shutil.copyfile(db, copy)
    commands = [
        ["report", "latency"], ["report", "latency", "--by", "operation"], ["report", "locality"],
        ["report", "trust"], ["trace", "ls"], ["trace", "show", tid], ["trace", "show", tid[:10]],
        ["query", "SELECT * FROM spans LIMIT 5"], ["analyze"],
    ]
    for args in commands:
        code, out = run_in_terminal([*args, "--db", db], width)
        assert code == 0, (args, out)
        assert max(visible_widths(out)) <= width, (args, width, out)
    for args in (["gate", "-b", db, "-c", copy], ["diff", db, copy]):
        code, out = run_in_terminal(args, width)
        assert code == 0, (args, out)
        assert max(visible_widths(out)) <= width, (args, width, out)
