"""Shared test fixtures: the real OTLP samples, temporary databases, the CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = Path(os.environ.get("FABRIC_SAMPLES", REPO.parent / "shared" / "data" / "otlp-samples"))


@pytest.fixture(scope="session")
def samples() -> Path:
    """The real OTLP sample files (../shared/data/otlp-samples)."""
    if not SAMPLES.is_dir():
        pytest.fail(f"real OTLP samples not found at {SAMPLES}; set FABRIC_SAMPLES")
    return SAMPLES


@pytest.fixture()
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "t.duckdb")
