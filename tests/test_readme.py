"""The README's commands work: the Quickstart is two commands, CI runs its test command, and the
"Everyday use" commands run in order on what the Quickstart made."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:] if end < 0 else README[start:end]


def _commands(section: str) -> list[str]:
    """The command lines of the first ``sh`` block of a section, comments removed."""
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "no sh block"
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_quickstart_is_two_commands_and_ci_runs_its_test_command() -> None:
    quick = _commands(_section("Quickstart"))
    assert len(quick) == 2
    assert quick[0].endswith("pip install . && fabric demo")
    assert quick[1].endswith('pip install ".[test]" && python -m pytest')
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    assert ci[-1] == "python -m pytest"  # exactly the README's test command
    assert 'pip install --quiet ".[test]"' in ci


def test_development_documents_the_fast_loop() -> None:
    dev = _commands(_section("Development"))
    assert 'python -m pytest -m "not slow"' in dev and "python -m pytest" in dev


def _fabric(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fabric_trace", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=900, env={"PATH": "", "HOME": str(cwd)})


@pytest.mark.slow
def test_everyday_use_runs_in_order_on_what_the_quickstart_made(tmp_path: Path) -> None:
    (tmp_path / "fixtures").symlink_to(REPO / "fixtures")  # the commands run in a clone's folder
    demo = _fabric(["demo", "--format", "json"], tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert set(json.loads(demo.stdout)) == {"latency", "locality", "trust", "llm"}  # one JSON document
    assert (tmp_path / "fabric-demo.duckdb").exists()
    commands = _commands(_section("Everyday use"))
    assert len(commands) >= 8
    for line in commands:
        argv = shlex.split(line)
        assert argv[0] == "fabric", line
        res = _fabric(argv[1:], tmp_path)
        assert res.returncode == 0, (line, res.stderr[-2000:])
        assert "Traceback" not in res.stderr
        if argv[1:3] == ["trace", "show"]:
            assert "no trace" not in res.stderr and res.stdout.strip(), line
    assert (tmp_path / "gate.xml").exists()
