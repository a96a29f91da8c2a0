"""The Spark engine in local mode: on the bundled fixtures and samples, every derived table and view it
writes equals the DuckDB engine's, row for row and type for type, and the reports over the lake equal
the reports from the database. One Spark analysis for the module (the JVM is slow to start)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from fabric_trace.analyzers import registry
from fabric_trace.analyzers.contract import Analyzer
from fabric_trace.cli.app import app
from fabric_trace.config import load_config
from fabric_trace.errors import EngineFailed
from fabric_trace.lake.layout import DERIVED_DIR, data_files
from fabric_trace.lake.read import connect_lake, derived_catalog
from fabric_trace.model import ReportFilter
from fabric_trace.service import open_analyzed, run_ingest

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "scenarios"


#: What the module's one Spark analysis returned (``SparkResult``), kept by :func:`analysed`.
RESULTS: list[Any] = []


@pytest.fixture(scope="module")
def analysed(spark: Any, samples: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A store of the bundled scenarios and samples, analysed by DuckDB, and its lake analysed by Spark."""
    from fabric_trace.lake.spark import engine

    root = tmp_path_factory.mktemp("spark")
    db = str(root / "s.duckdb")
    run_ingest(db, [*sorted(str(p) for p in FIXTURES.glob("*.jsonl")), str(samples)])
    lake = root / "lake"
    runner = CliRunner()
    res = runner.invoke(app, ["lake", "export", "--db", db, "--out", str(lake), "--buckets", "4"])
    assert res.exit_code == 0, res.output
    real = engine.analyze_lake

    def keep(*args: Any, **kwargs: Any) -> Any:
        RESULTS.append(real(*args, **kwargs))
        return RESULTS[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine, "analyze_lake", keep)
        res = runner.invoke(app, ["analyze", "--engine", "spark", "--lake", str(lake)])  # the active session
    assert res.exit_code == 0, res.output
    assert "on Spark" in res.output
    return db, lake


def _rows(con: duckdb.DuckDBPyConnection, name: str, cols: tuple[tuple[str, str], ...]) -> list[tuple[Any, ...]]:
    sel = ", ".join(f"CAST({c} AS VARCHAR)" if t == "JSON" else c for c, t in cols)
    return sorted(con.execute(f"SELECT {sel} FROM {name}").fetchall(), key=repr)


def test_every_derived_table_equals_the_duckdb_engine(analysed: tuple[str, Path]) -> None:
    db, lake = analysed
    catalog = derived_catalog()
    assert {"traces", "critical_path", "span_metrics", "findings"} <= set(catalog)
    spark_con = connect_lake(lake, load_config())
    with open_analyzed(db) as con:
        assert con.execute("SELECT count(*) FROM traces").fetchall()[0][0] > 20
        for name, cols in catalog.items():
            assert (lake / DERIVED_DIR / name).is_dir(), name
            # the Parquet holds exactly the view's columns, in order
            files = [str(f) for f in data_files(lake / DERIVED_DIR / name)]
            raw = spark_con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [files]).fetchall()
            assert [r[0] for r in raw] == [c for c, _ in cols], name
            # types: DuckDB's, except JSON, which Parquet written by Spark holds as VARCHAR
            assert [r[1] for r in raw] == [t.replace("JSON", "VARCHAR") for _, t in cols], name
            assert [r[:2] for r in con.execute(f"DESCRIBE {name}").fetchall()] \
                == [r[:2] for r in spark_con.execute(f"DESCRIBE {name}").fetchall()], name
            want, got = _rows(con, name, cols), _rows(spark_con, name, cols)
            assert len(got) == len(want), name
            assert got == want, name
    spark_con.close()


def test_the_medians_rederive_only_the_what_if_of_the_traces_that_use_them(analysed: tuple[str, Path]) -> None:
    """One derive pass: after the what-if medians are computed from the derived accesses, only their
    ``rederive`` step runs, over the traces with a critical-path access to a store with a median
    (every key changed, as in the DuckDB engine's first analysis), and only locality_trace_store is
    rewritten (the row-for-row equality is the test above)."""
    db, _ = analysed
    with open_analyzed(db) as con:
        affected = con.execute("""
            SELECT count(DISTINCT a.trace_id) FROM locality_access_store a JOIN locality_median_store m
            USING (access_type, store) WHERE a.critical_ns > 0 AND a.access_type <> 'prefix_cache'
        """).fetchall()[0][0]
    assert affected > 0
    assert [r.rederived for r in RESULTS] == [{"locality_trace_store": affected}]


def test_reports_over_the_lake_equal_the_reports_from_the_database(analysed: tuple[str, Path]) -> None:
    db, lake = analysed
    spark_con = connect_lake(lake, load_config())
    with open_analyzed(db) as con:
        for a in registry().values():
            if a.report is not None:
                assert a.report.build(spark_con, ReportFilter()).data == a.report.build(con, ReportFilter()).data
    spark_con.close()
    runner = CliRunner()
    for name in ("latency", "locality", "trust"):
        from_db = runner.invoke(app, ["report", name, "--db", db, "--format", "json"])
        from_lake = runner.invoke(app, ["report", name, "--lake", str(lake), "--format", "json"])
        assert from_lake.exit_code == 0, from_lake.output
        assert json.loads(from_lake.stdout) == json.loads(from_db.stdout)


def test_query_over_the_lake(analysed: tuple[str, Path], tmp_path: Path) -> None:
    db, lake = analysed
    runner = CliRunner()
    sql = "SELECT workflow, count(*) AS n FROM traces GROUP BY 1 ORDER BY 1"
    from_lake = runner.invoke(app, ["query", sql, "--lake", str(lake), "--format", "json"])
    from_db = runner.invoke(app, ["query", sql, "--db", db, "--format", "json"])
    assert from_lake.exit_code == 0, from_lake.output
    assert json.loads(from_lake.stdout) == json.loads(from_db.stdout)
    outside = runner.invoke(app, ["query", f"SELECT * FROM read_parquet('{tmp_path}/x.parquet')",
                                  "--lake", str(lake)])
    assert outside.exit_code == 2
    res = runner.invoke(app, ["query", "DROP VIEW traces", "--lake", str(lake)])
    assert res.exit_code == 2 and "read-only" in res.output


def test_a_spark_failure_writes_no_partial_derived_table(analysed: tuple[str, Path],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel that fails on the executors: a clear error, exit code 71, the old derived tables intact."""
    _, lake = analysed
    from fabric_trace.lake.spark import engine

    def boom(part: Any, config: Any) -> Any:
        raise RuntimeError("kernel exploded")

    failing = Analyzer(name="boom", summary="fails", sections=(), parse_config=lambda c: None, derive=boom,
                       tables=(), views=())
    monkeypatch.setattr(engine, "registry", lambda: {"boom": failing})
    before = {str(f): f.stat().st_mtime_ns for f in data_files(lake / DERIVED_DIR)}
    with pytest.raises(EngineFailed, match="kernel exploded") as err:
        engine.analyze_lake(lake, load_config())
    assert err.value.exit_code == 71
    assert {str(f): f.stat().st_mtime_ns for f in data_files(lake / DERIVED_DIR)} == before
    assert not (lake / "_staging").exists()


def test_a_statistic_of_derived_rows_without_rederive_derives_its_analyzer_again(
        spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A toy statistic of derived rows with no ``rederive`` (the median span count of a trace, which
    the toy's rows and findings depend on): the Spark engine runs the toy's whole ``derive`` again over
    the affected groups, replacing its table and findings, and reaches the DuckDB engine's rows."""
    from fabric_trace.analyzers import engine as duckdb_engine
    from fabric_trace.analyzers.contract import Derived, Partition, StoreStats, sql_kernel, write_findings
    from fabric_trace.lake import read
    from fabric_trace.lake.spark import engine

    sql = tmp_path / "toy" / "sql"
    sql.mkdir(parents=True)
    (sql / "tables.sql").write_text("CREATE TABLE IF NOT EXISTS toy_store (trace_id VARCHAR, spans BIGINT, "
                                    "big BOOLEAN);\nCREATE TABLE IF NOT EXISTS toy_median_store (k INTEGER, "
                                    "median_spans DOUBLE);\n")

    def body(con: duckdb.DuckDBPyConnection, config: Any) -> None:  # closures: pickled by value for the executors
        con.execute("INSERT INTO toy_store SELECT trace_id, count(*), count(*) > coalesce("
                    "(SELECT max(median_spans) FROM toy_median_store), 1e9) FROM span_store GROUP BY trace_id")
        write_findings(con, "toy", "SELECT 'big', 'info', trace_id, NULL, 'big trace', NULL FROM toy_store WHERE big")

    def derive(part: Partition, config: Any) -> Derived:
        return sql_kernel(toy, part, config, body)

    median = StoreStats(table="toy_median_store", key=("k",), after_derive=True,
                        compute=lambda con, config: con.sql(
                            "SELECT 1 AS k, median(spans)::DOUBLE AS median_spans FROM toy_store").to_arrow_table(),
                        affected_sql="SELECT trace_id FROM toy_store")
    toy = Analyzer(name="toy", summary="big traces", sections=(), parse_config=lambda c: None, derive=derive,
                   tables=("toy_store", "toy_median_store"), views=(), stats=(median,), sql_from=tmp_path / "toy")
    analyzers = {"latency": registry()["latency"], "toy": toy}
    for module in (engine, duckdb_engine, read):
        monkeypatch.setattr(module, "registry", lambda: analyzers)
    db = str(tmp_path / "t.duckdb")
    run_ingest(db, [str(FIXTURES / "healthy.jsonl"), str(FIXTURES / "faults.jsonl")], analyze=False)
    res = CliRunner().invoke(app, ["lake", "export", "--db", db, "--out", str(tmp_path / "lake")])
    assert res.exit_code == 0, res.output
    result = engine.analyze_lake(tmp_path / "lake", load_config(), spark=spark)
    con = duckdb.connect(db)
    duckdb_engine.refresh(con, load_config(), force=True)
    want = sorted(con.execute("SELECT * FROM toy_store").fetchall())
    want_findings = sorted(con.execute("SELECT trace_id FROM finding_store WHERE analyzer = 'toy'").fetchall())
    con.close()
    assert any(big for _, _, big in want) and not all(big for _, _, big in want)
    derived = tmp_path / "lake" / DERIVED_DIR
    got = duckdb.sql(f"SELECT * FROM read_parquet('{derived}/toy_store/*.parquet')").fetchall()
    got_findings = duckdb.sql(f"SELECT trace_id FROM read_parquet('{derived}/findings/*.parquet') "
                              "WHERE analyzer = 'toy'").fetchall()
    assert sorted(got) == want
    assert sorted(got_findings) == want_findings
    assert result.rederived == {"toy_store": len(want), "findings": len(want)}
