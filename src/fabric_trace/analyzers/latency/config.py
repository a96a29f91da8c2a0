"""The latency analyzer's config: ``[workflows]`` rules (the workflow a trace belongs to) and ``[latency]``.

Rule, first that applies:

1. a ``[[workflows.rules]]`` entry of the config whose globs match the root
   span (``root_name`` and/or ``service``) gives ``workflow``;
2. ``gen_ai.workflow.name`` (or ``traceloop.workflow.name``) on the root;
3. the agent name on the root (``gen_ai.agent.name`` / ``agent.name``);
4. the root span's name with ids and numbers normalised away: UUIDs and long
   hex runs become ``{id}``, other digit runs ``{n}`` (``GET /users/42`` ->
   ``GET /users/{n}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fabric_trace.errors import ConfigError

NORMALIZED_NAME_SQL = (
    "regexp_replace(regexp_replace(regexp_replace(coalesce(r.name, ''), "
    "'[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}', '{id}', 'g'), "
    "'\\b[0-9a-fA-F]*[0-9][0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\\b|\\b[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*[0-9][0-9a-fA-F]*\\b', "
    "'{id}', 'g'), '\\b[0-9]+\\b', '{n}', 'g')"
)


def _rules(config: Any) -> list[dict[str, str]]:
    section = config.section("workflows") if hasattr(config, "section") else {}
    rules = section.get("rules", [])
    if not isinstance(rules, list):
        raise ConfigError("[workflows] rules must be an array of tables")
    out = []
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict) or "workflow" not in rule:
            raise ConfigError(f"workflows.rules[{i}] needs a 'workflow' name")
        unknown = set(rule) - {"workflow", "root_name", "service"}
        if unknown:
            raise ConfigError(f"workflows.rules[{i}] has unknown keys: {', '.join(sorted(unknown))}")
        if not ("root_name" in rule or "service" in rule):
            raise ConfigError(f"workflows.rules[{i}] needs root_name and/or service (globs)")
        out.append({k: str(v) for k, v in rule.items()})
    return out


def workflow_sql(config: Any) -> tuple[str, list[Any]]:
    """SQL expression (over the root span aliased ``r``) for the workflow, with parameters."""
    whens: list[str] = []
    params: list[Any] = []
    for rule in _rules(config):
        conds = []
        if "root_name" in rule:
            conds.append("lower(r.name) GLOB lower(?)")
            params.append(rule["root_name"])
        if "service" in rule:
            conds.append("lower(r.service_name) GLOB lower(?)")
            params.append(rule["service"])
        whens.append(f"WHEN {' AND '.join(conds)} THEN ?")
        params.append(rule["workflow"])
    fallback = f"coalesce(r.workflow_name, r.agent_name, {NORMALIZED_NAME_SQL})"
    if whens:
        return "CASE " + " ".join(whens) + f" ELSE {fallback} END", params
    return fallback, params


def max_skew(config: Any) -> int | None:
    """``[latency] adjust_skew_max_ns`` (set by ``--adjust-skew``); None = detect only."""
    data = getattr(config, "data", {}) or {}
    value = (data.get("latency") or {}).get("adjust_skew_max_ns")
    return None if value is None else int(value)


@dataclass(frozen=True)
class LatencySettings:
    """The validated ``[latency]`` and ``[workflows]`` sections."""

    workflow_rules: tuple[dict[str, str], ...]
    max_skew_ns: int | None


def parse_config(config: Any) -> LatencySettings:
    """Validate the sections the latency analyzer reads."""
    return LatencySettings(tuple(_rules(config)), max_skew(config))
