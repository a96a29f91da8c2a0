"""The ``[llm]`` config section: the model price table (docs/llm.md, "Cost").

The bundled table (``data/prices.toml``, dated, with its source) is the
default; ``[[llm.prices]]`` entries of ``fabric.toml`` override a bundled entry
with the same model and provider, or add one; ``bundled_prices = false`` drops
the bundled table::

    [llm]
    bundled_prices = true
    [[llm.prices]]
    model = "my-finetune"        # matched as docs/llm.md says (snapshot dates stripped)
    provider = "openai"          # optional: without it the entry matches any provider
    input = 0.30                 # USD per 1M uncached input tokens
    cached_input = 0.15          # USD per 1M cached input tokens (absent: charged as input)
    output = 1.20                # USD per 1M output tokens
    per_call = 0.0               # USD per request (optional)
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from fabric_trace.errors import ConfigError

_PRICE_KEYS = {"model", "provider", "input", "cached_input", "output", "per_call"}
_SECTION_KEYS = {"bundled_prices", "prices"}

#: Snapshot suffixes dropped when a name has no entry of its own: ``-2024-07-18``, ``-20240718``,
#: ``@20240718`` (Vertex AI), and OpenAI's older ``-MMDD`` (``gpt-4-0613``).
_DATE_SUFFIX = re.compile(r"(?:[-@](?:\d{4}-\d{2}-\d{2}|20\d{6})|-(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))$")


@dataclass(frozen=True)
class Price:
    """One entry of the price table (USD per 1M tokens; ``per_call`` USD per request)."""

    model: str
    provider: str | None
    input: float | None
    cached_input: float | None
    output: float | None
    per_call: float | None
    origin: str
    """``bundled (as of DATE)`` or ``fabric.toml``."""


@dataclass(frozen=True)
class LlmSettings:
    """The validated ``[llm]`` section: the effective price table."""

    prices: tuple[Price, ...]
    as_of: str | None
    """Date of the bundled table (``None`` when it is not used)."""
    index: dict[tuple[str, str | None], Price] = field(default_factory=dict, compare=False, repr=False)
    """(model, provider) -> entry; built by :func:`parse_config`."""

    def match(self, model: str | None, provider: str | None) -> Price | None:
        """The price entry for ``model`` served by ``provider`` (docs/llm.md, "Cost"), or ``None``."""
        if not model:
            return None
        index = self.index
        # a provider id with a suffix (the Vercel AI SDK's ``openai.chat``) also matches its first part
        providers = [] if provider is None else [provider, *([provider.split(".", 1)[0]] if "." in provider else [])]
        for name in candidate_names(model):
            for p in providers:
                if (name, p) in index:
                    return index[(name, p)]
            if (name, None) in index:
                return index[(name, None)]
            if provider is None:
                hit = _any_provider(index, name)
                if hit is not None:
                    return hit
        return None


def _any_provider(index: dict[tuple[str, str | None], Price], name: str) -> Price | None:
    """A call whose provider is not reported matches an entry of any provider (the first, by provider)."""
    hits = sorted((p for (m, _), p in index.items() if m == name), key=lambda p: p.provider or "")
    return hits[0] if hits else None


def candidate_names(model: str) -> list[str]:
    """Names tried in order: the model as reported (lowercased), without a ``provider/`` prefix,
    then each without a snapshot date suffix."""
    name = model.strip().lower()
    names = [name]
    if "/" in name:
        names.append(name.rsplit("/", 1)[1])
    for n in list(names):
        stripped = _DATE_SUFFIX.sub("", n)
        if stripped != n and stripped:
            names.append(stripped)
    out: list[str] = []
    for n in names:
        if n not in out:
            out.append(n)
    return out


def _number(entry: dict[str, Any], key: str, where: str) -> float | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"{where}: {key} must be a number >= 0 (USD), not {value!r}")
    return float(value)


def _price(entry: Any, where: str, origin: str) -> Price:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(entry) - _PRICE_KEYS
    if unknown:
        raise ConfigError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
    model = entry.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"{where} needs a model name")
    provider = entry.get("provider")
    if provider is not None and (not isinstance(provider, str) or not provider.strip()):
        raise ConfigError(f"{where}: provider must be a non-empty string")
    nums = {k: _number(entry, k, where) for k in ("input", "cached_input", "output", "per_call")}
    if all(v is None for v in nums.values()):
        raise ConfigError(f"{where} ({model}) gives no price: set input, output and/or per_call")
    return Price(model.strip().lower(), provider.strip().lower() if provider else None, nums["input"],
                 nums["cached_input"], nums["output"], nums["per_call"], origin)


def bundled() -> tuple[tuple[Price, ...], str]:
    """The bundled price table and its date."""
    text = resources.files("fabric_trace.analyzers.llm").joinpath("data", "prices.toml").read_text(encoding="utf-8")
    doc = tomllib.loads(text)
    as_of = str(doc["as_of"])
    return tuple(_price(e, f"prices.toml prices[{i}]", f"bundled (as of {as_of})")
                 for i, e in enumerate(doc["prices"])), as_of


def parse_config(config: Any) -> LlmSettings:
    """Validate ``[llm]`` and build the effective price table."""
    section = config.section("llm") if hasattr(config, "section") else {}
    unknown = set(section) - _SECTION_KEYS
    if unknown:
        raise ConfigError(f"[llm] has unknown keys: {', '.join(sorted(unknown))}")
    use_bundled = section.get("bundled_prices", True)
    if not isinstance(use_bundled, bool):
        raise ConfigError("[llm] bundled_prices must be true or false")
    entries = section.get("prices", [])
    if not isinstance(entries, list):
        raise ConfigError("[llm] prices must be an array of tables ([[llm.prices]])")
    table: dict[tuple[str, str | None], Price] = {}
    as_of = None
    if use_bundled:
        prices, as_of = bundled()
        table.update({(p.model, p.provider): p for p in prices})
    for i, entry in enumerate(entries):
        p = _price(entry, f"llm.prices[{i}]", "fabric.toml")
        if p.provider is None:  # an entry for any provider replaces the bundled ones of that model
            table = {k: v for k, v in table.items() if k[0] != p.model or v.origin == "fabric.toml"}
        table[(p.model, p.provider)] = p
    return LlmSettings(tuple(table.values()), as_of, dict(table))
