"""The package's layers hold (import-linter contracts in pyproject.toml, ``[tool.importlinter]``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlinter.cli import lint_imports

    monkeypatch.chdir(REPO)
    monkeypatch.syspath_prepend(str(REPO / "src"))
    assert lint_imports(config_filename=os.fspath(REPO / "pyproject.toml"), no_cache=True) == 0
