"""The configuration file: ``fabric.toml``, or ``[tool.fabric]`` in ``pyproject.toml``.

Looked up in this order: ``--config FILE``, ``$FABRIC_CONFIG``, ``./fabric.toml``,
``./pyproject.toml`` (only if it has a ``[tool.fabric]`` table). Every section is
optional; each consumer validates its own section (docs/config.md).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fabric_trace.errors import ConfigError
from fabric_trace.ingest.normalize import Projection, compile_projection
from fabric_trace.ingest.roles import DEFAULT_RULES, rules_from_config

#: Sections read outside the analyzers; each registered analyzer adds its own (``Analyzer.sections``).
CORE_SECTIONS = frozenset({"roles", "gate", "ingest"})


def known_sections() -> frozenset[str]:
    """Every section a config file may have: the core ones plus the registered analyzers'."""
    from fabric_trace.analyzers import registry

    return CORE_SECTIONS | {s for a in registry().values() for s in a.sections}


@dataclass(frozen=True)
class Config:
    """A loaded configuration. ``data`` holds the raw validated sections."""

    path: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        """One top-level section (an empty dict when absent)."""
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self.path}: [{name}] must be a table")
        return value

    def projection(self) -> Projection:
        """The ingest crosswalk with this config's role rules applied."""
        roles = self.section("roles")
        extra = rules_from_config(roles.get("rules", []))
        rules = extra if roles.get("replace_defaults", False) else extra + DEFAULT_RULES
        return compile_projection(rules)


def load_config(path: str | None = None, *, cwd: str | os.PathLike[str] | None = None) -> Config:
    """Load the configuration (see module docstring for the lookup order)."""
    base = Path(cwd) if cwd else Path.cwd()
    explicit = path or os.environ.get("FABRIC_CONFIG")
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise ConfigError(f"config file {explicit} does not exist")
        return _load(p, table_path=("tool", "fabric") if p.name == "pyproject.toml" else ())
    candidate = base / "fabric.toml"
    if candidate.is_file():
        return _load(candidate, ())
    pyproject = base / "pyproject.toml"
    if pyproject.is_file():
        cfg = _load(pyproject, ("tool", "fabric"), missing_ok=True)
        if cfg.data:
            return cfg
    return Config()


def _load(p: Path, table_path: tuple[str, ...], missing_ok: bool = False) -> Config:
    try:
        with open(p, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None
    for key in table_path:
        doc = doc.get(key, {}) if isinstance(doc, dict) else {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{p}: [{'.'.join(table_path)}] must be a table")
    known = known_sections()
    unknown = set(doc) - known
    if unknown:
        raise ConfigError(
            f"{p}: unknown section(s): {', '.join(sorted(unknown))}",
            hint=f"known sections: {', '.join(sorted(known))}",
        )
    cfg = Config(path=str(p), data=doc)
    cfg.projection()  # validate role rules early
    return cfg
