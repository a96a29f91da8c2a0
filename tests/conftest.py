"""Shared test fixtures: the real OTLP samples, temporary databases, the CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
#: The real OTLP sample files, carried inside the repository (tests/data/README.md says where they
#: come from). $FABRIC_SAMPLES points the suite at another copy of the same layout.
SAMPLES = Path(os.environ.get("FABRIC_SAMPLES", TESTS / "data" / "otlp-samples"))


@pytest.fixture(scope="session")
def samples() -> Path:
    """The real OTLP sample files (tests/data/otlp-samples)."""
    if not SAMPLES.is_dir():
        pytest.fail(f"real OTLP samples not found at {SAMPLES}; set FABRIC_SAMPLES")
    return SAMPLES


#: The bundled healthy scenario (OTLP/JSON lines).
HEALTHY = TESTS.parent / "fixtures" / "scenarios" / "healthy.jsonl"


@pytest.fixture(scope="session")
def healthy_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The healthy scenario ingested and analysed through the real CLI, once per test process.

    Shared: open it read-only."""
    from typer.testing import CliRunner

    from fabric_trace.cli.app import app

    path = str(tmp_path_factory.mktemp("healthy") / "healthy.duckdb")
    res = CliRunner().invoke(app, ["trace", "ingest", str(HEALTHY), "--db", path])
    assert res.exit_code == 0, res.stderr
    return path


@pytest.fixture()
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "t.duckdb")


@pytest.fixture(scope="session")
def spark():  # type: ignore[no-untyped-def]
    """One local SparkSession for the whole test session (the JVM starts slowly); skips with the
    reason when the spark extra or Java 17+ is missing."""
    pytest.importorskip("pyspark", reason='the spark extra is not installed (pip install ".[spark]")')
    pytest.importorskip("pandas", reason='the spark extra is not installed (pip install ".[spark]")')
    from fabric_trace.lake.spark.session import JAVA_MIN, java_version, spark_session

    version = java_version()
    if version is None or version < JAVA_MIN:
        pytest.skip(f"Spark tests need Java {JAVA_MIN}+ (found: {version or 'no java'})")
    session = spark_session("local[2]", {"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false",
                                         "spark.driver.memory": "1g"})
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
