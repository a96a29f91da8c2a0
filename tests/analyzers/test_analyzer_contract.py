"""The analyzer contract: a toy analyzer, registered here and nowhere else, appears in
config loading, refresh (tables, views, findings, freshness), ``fabric report NAME``,
``fabric demo`` and ``fabric gate`` (its metric, a default check) with no other edit
(docs/analyzers.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from fabric_trace.analyzers import (
    Analyzer, Derived, GateMetric, Partition, ReportSpec, register, registry, sql_kernel, unregister, write_findings,
)
from fabric_trace.config import load_config
from fabric_trace.errors import ConfigError
from fabric_trace.model import Column, Report, ReportFilter, Severity, Table

HEALTHY = Path(__file__).resolve().parents[2] / "fixtures" / "scenarios" / "healthy.jsonl"


def _parse(config: Any) -> int:
    section = config.section("toy") if hasattr(config, "section") else {}
    unknown = set(section) - {"min_spans"}
    if unknown:
        raise ConfigError(f"[toy] has unknown keys: {', '.join(sorted(unknown))}")
    value = section.get("min_spans", 5)
    if not isinstance(value, int) or value < 1:
        raise ConfigError("[toy] min_spans must be a positive integer")
    return value


def _derive(part: Partition, config: Any) -> Derived:
    return sql_kernel(TOY, part, config, _derive_sql)


def _derive_sql(con: duckdb.DuckDBPyConnection, config: Any) -> None:
    min_spans = _parse(config)
    con.execute("INSERT INTO toy_trace_store SELECT trace_id, count(*) FROM span_store GROUP BY trace_id")
    write_findings(con, "toy", """
        SELECT 'big_trace', 'info', trace_id, NULL, 'trace has ' || spans || ' spans', NULL
        FROM toy_trace_store WHERE spans >= ?""", [min_spans])


def _report(con: duckdb.DuckDBPyConnection, flt: ReportFilter) -> Report:
    rows = [{"trace_id": t, "spans": n} for t, n in con.execute(
        "SELECT trace_id, spans FROM toy_traces ORDER BY spans DESC, trace_id LIMIT 5").fetchall()]
    return Report("Toy report", [Table("biggest", "Biggest traces", [Column("trace_id", "Trace", "id"),
                                                                      Column("spans", "Spans", "int")], rows)],
                  {"biggest": rows})


def _toy(sql_dir: Path) -> Analyzer:
    return Analyzer(
        name="toy", summary="Counts spans per trace.", sections=("toy",), parse_config=_parse, derive=_derive,
        tables=("toy_trace_store",), views=("toy_traces",),
        report=ReportSpec(_report, "The biggest traces."),
        metrics=(GateMetric("toy_spans", "sample", "count", "mean", 0.10, 1.0,
                            "SELECT trace_id, spans AS value FROM toy_traces", "spans per trace",
                            default="a toy default check: more spans per trace"),),
        severities={"big_trace": Severity.INFO}, sql_from=sql_dir,
    )


TOY = _toy(Path(__file__).resolve().parents[1] / "data" / "toy_analyzer")


@pytest.fixture()
def toy() -> Iterator[Analyzer]:
    analyzer = TOY
    register(analyzer)
    try:
        yield analyzer
    finally:
        unregister("toy")


@pytest.fixture()
def store(tmp_path: Path) -> str:
    """A store ingested and analysed *before* the toy analyzer exists."""
    from fabric_trace.service import run_ingest

    db = str(tmp_path / "toy.duckdb")
    run_ingest(db, [str(HEALTHY)])
    return db


def test_toy_in_config(toy: Analyzer, tmp_path: Path) -> None:
    cfg = tmp_path / "fabric.toml"
    cfg.write_text("[toy]\nmin_spans = 3\n")
    assert load_config(str(cfg)).section("toy") == {"min_spans": 3}
    unregister("toy")
    with pytest.raises(ConfigError, match="unknown section"):
        load_config(str(cfg))


def test_toy_in_refresh(store: str, toy: Analyzer) -> None:
    from fabric_trace.analyzers.engine import is_stale, refresh
    from fabric_trace.config import Config

    assert list(registry())[-1] == "toy"
    con = duckdb.connect(store)
    try:
        assert is_stale(con, Config())  # a new analyzer makes the derived tables stale
        assert refresh(con, Config())
        assert not is_stale(con, Config())
        per_trace = dict(con.execute("SELECT trace_id, count(*) FROM spans GROUP BY ALL").fetchall())
        assert dict(con.execute("SELECT trace_id, spans FROM toy_traces").fetchall()) == per_trace
        big = {t for t, n in per_trace.items() if n >= 5}
        assert {r[0] for r in con.execute(
            "SELECT trace_id FROM findings WHERE analyzer = 'toy' AND kind = 'big_trace'").fetchall()} == big
        # a config change of its section re-derives with the new setting
        cfg = Config(data={"toy": {"min_spans": 10_000}})
        assert is_stale(con, cfg)
        refresh(con, cfg)
        assert con.execute("SELECT count(*) FROM findings WHERE analyzer = 'toy'").fetchone()[0] == 0
    finally:
        con.close()


def test_toy_report_command(store: str, toy: Analyzer) -> None:
    from fabric_trace.cli.app import build_app

    result = CliRunner().invoke(build_app(), ["report", "toy", "--db", store, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["biggest"]
    con = duckdb.connect(store, read_only=True)
    try:
        top = con.execute("SELECT trace_id, count(*) AS n FROM spans GROUP BY ALL ORDER BY n DESC, trace_id LIMIT 5")
        assert [(r["trace_id"], r["spans"]) for r in rows] == top.fetchall()
    finally:
        con.close()
    helped = CliRunner().invoke(build_app(), ["report", "--help"])
    assert "toy" in helped.stdout


def test_toy_in_demo(toy: Analyzer, tmp_path: Path) -> None:
    from fabric_trace.service import demo_paths, demo_reports, run_ingest

    db = str(tmp_path / "demo.duckdb")
    run_ingest(db, demo_paths(str(tmp_path / "demo")))
    reports = demo_reports(db)
    assert list(reports) == ["latency", "locality", "trust", "llm", "toy"] and reports["toy"].title == "Toy report"


def test_toy_in_gate(toy: Analyzer, tmp_path: Path) -> None:
    """The toy's declared metric reaches the gate: a default check per workflow with no configuration, and
    usable in ``[[gate.budget]]`` / ``[[gate.regression]]`` by name."""
    from fabric_trace.cli.app import build_app
    from fabric_trace.gate.budgets import default_checks, metric_defs

    assert metric_defs()["toy_spans"].source == "toy"
    assert any(c.metric == "toy_spans" and c.stat == "mean" for c in default_checks())
    faults = HEALTHY.with_name("faults.jsonl")
    result = CliRunner().invoke(build_app(), ["gate", "-b", str(HEALTHY), "-c", str(faults), "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    toy_checks = [c for c in json.loads(result.stdout)["checks"] if c["metric"] == "toy_spans"]
    assert toy_checks and all(c["stat"] == "mean" and c["baseline"] is not None for c in toy_checks)

    cfg = tmp_path / "fabric.toml"
    cfg.write_text('[[gate.budget]]\nmetric = "toy_spans"\nstat = "max"\nmax = 1\npooled = true\n')
    result = CliRunner().invoke(build_app(), ["gate", "-b", str(HEALTHY), "-c", str(HEALTHY), "--config", str(cfg),
                                              "--format", "json"])
    assert result.exit_code == 1, result.output
    (budget,) = [c for c in json.loads(result.stdout)["checks"] if c["metric"] == "toy_spans" and c["kind"] == "budget"]
    assert budget["verdict"] == "fail" and budget["candidate"] > 1
    unregister("toy")
    result = CliRunner().invoke(build_app(), ["gate", "-b", str(HEALTHY), "-c", str(HEALTHY), "--config", str(cfg)])
    assert result.exit_code == 78 and "unknown or missing metric 'toy_spans'" in result.output  # config error
