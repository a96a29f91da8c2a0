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


@pytest.fixture()
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "t.duckdb")
