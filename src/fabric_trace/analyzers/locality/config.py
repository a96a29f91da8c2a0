"""What counts as a state access, its outcome, and where it is served: the ``[locality]`` rules.

Everything here is data plus small SQL-expression builders; the analyzer
(:mod:`fabric_trace.analyzers.locality`) assembles them into set-based
queries. The rules are documented one by one in docs/locality.md and the
config keys in docs/config.md (``[locality]``).

Only values that come from fabric itself or from a validated config reach the
SQL text, always through :func:`sql_str` / :func:`sql_list`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fabric_trace.errors import ConfigError

#: Attributes that record a cache lookup's outcome, first present wins.
DEFAULT_HIT_ATTRIBUTES: tuple[str, ...] = (
    "cache.hit",  # boolean, the common hand-instrumented form (Sentry conventions too)
    "cache_hit",
    "cache.result",  # "hit" / "miss"
    "cache.status",
    "gen_ai.cache.hit",  # semantic / LLM response caches
    "llm.cache_hit",
    "litellm.cache_hit",
    "http.response.header.x-cache",  # CDN / HTTP caches: ["HIT from ..."]
    "http.response.header.cf-cache-status",
)

#: Normalised attribute values meaning hit / miss (anything else: not reported).
HIT_VALUES: tuple[str, ...] = ("true", "1", "hit", "hits", "yes", "fresh", "revalidated")
MISS_VALUES: tuple[str, ...] = ("false", "0", "miss", "misses", "no", "expired", "stale", "refresh_miss")

#: ``db.system`` values that are key-value caches.
DEFAULT_CACHE_SYSTEMS: tuple[str, ...] = ("redis", "memcached", "valkey", "keydb", "dragonfly")

#: Cache commands that read a key (upper case) and that write or delete one.
CACHE_READ_OPS: tuple[str, ...] = (
    "GET", "MGET", "GETEX", "HGET", "HMGET", "HGETALL", "JSON.GET", "GETS", "GET_MULTI", "GET_MANY",
)
CACHE_WRITE_OPS: tuple[str, ...] = (
    "SET", "SETEX", "PSETEX", "SETNX", "MSET", "HSET", "HMSET", "GETSET", "APPEND", "JSON.SET",
    "DEL", "UNLINK", "DELETE", "ADD", "REPLACE", "CAS", "SET_MULTI", "SET_MANY", "DELETE_MULTI",
)

#: Roles whose spans are state accesses besides caches and LLM calls.
DEFAULT_ACCESS_ROLES: tuple[str, ...] = ("retrieval", "vector_store", "memory", "database")

#: Attributes whose value identifies an LLM call's stable prompt prefix, first present wins.
DEFAULT_PROMPT_FINGERPRINT_ATTRIBUTES: tuple[str, ...] = (
    "gen_ai.system_instructions",
    "llm.input_messages.0.message.content",
    "gen_ai.prompt.0.content",
    "langfuse.observation.prompt.name",
)

#: Below this many input tokens providers do not cache a prefix (OpenAI and Anthropic: 1,024).
DEFAULT_MIN_PROMPT_TOKENS = 1024

#: Small attributes read from candidate spans, in this order (``_x[i]`` in SQL, 1-based).
EXTRACT_KEYS: tuple[str, ...] = (
    "cache.key",
    "db.operation.name",
    "db.operation",
    "cache.operation",
    "db.query.text",
    "db.statement",
    "gen_ai.data_source.id",
    "gen_ai.retrieval.query.text",
)

ACCESS_TYPES: tuple[str, ...] = (
    "cache", "prefix_cache", "retrieval", "vector_store", "memory", "database", "service_call",
)
OUTCOMES: tuple[str, ...] = ("hit", "miss", "not_reported")
REMOTE_CLASSES: tuple[str, ...] = ("local", "cross_zone", "cross_region", "unknown")

_KNOWN_KEYS = frozenset({
    "hit_attributes", "cache_systems", "infer_cache_outcome", "access_roles", "service_calls",
    "min_prompt_tokens", "prompt_fingerprint_attributes", "peer_locations",
})
_GLOB_CHARS = re.compile(r"[*?\[]")


def sql_str(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def sql_list(values: tuple[str, ...] | list[str]) -> str:
    """A parenthesised list of SQL string literals (``('a', 'b')``); never empty."""
    return "(" + ", ".join(sql_str(v) for v in values) + ")" if values else "(NULL)"


def json_path(key: str) -> str:
    """The JSON path of a (dotted) attribute key: ``$."cache.hit"``."""
    return '$."' + key.replace('"', '\\"') + '"'


@dataclass(frozen=True)
class PeerLocation:
    """Where an uninstrumented peer runs: ``pattern`` is an exact peer or a glob."""

    pattern: str
    region: str | None
    zone: str | None

    @property
    def is_glob(self) -> bool:
        """Whether ``pattern`` contains glob characters."""
        return bool(_GLOB_CHARS.search(self.pattern))


@dataclass(frozen=True)
class LocalityConfig:
    """The validated ``[locality]`` section (defaults: docs/config.md)."""

    hit_attributes: tuple[str, ...] = DEFAULT_HIT_ATTRIBUTES
    """Attributes holding a lookup's hit/miss outcome, first present wins."""
    cache_systems: tuple[str, ...] = DEFAULT_CACHE_SYSTEMS
    """``db_system`` values that are caches (their GETs are lookups, SETs refills)."""
    infer_cache_outcome: bool = True
    """Infer hit/miss of cache GETs without a hit attribute (miss = refilled by a SET of the key)."""
    access_roles: tuple[str, ...] = DEFAULT_ACCESS_ROLES
    """Roles whose (non-server) spans are state accesses."""
    service_calls: bool = True
    """Count CLIENT calls whose SERVER child runs in another resource as accesses."""
    min_prompt_tokens: int = DEFAULT_MIN_PROMPT_TOKENS
    """Smallest input-token count for which a 0-cached-tokens call can be a prefix-cache miss."""
    prompt_fingerprint_attributes: tuple[str, ...] = DEFAULT_PROMPT_FINGERPRINT_ATTRIBUTES
    """Attributes identifying the prompt prefix; calls whose values differ never match."""
    peer_locations: tuple[PeerLocation, ...] = field(default_factory=tuple)
    """Peer -> location, in config order (exact names before globs)."""

    @staticmethod
    def from_config(config: Any) -> LocalityConfig:
        """Validate ``config.section("locality")``; raises :class:`ConfigError`."""
        section = config.section("locality") if hasattr(config, "section") else {}
        return parse_section(section)


def _str_list(section: dict[str, Any], key: str, default: tuple[str, ...], *, lower: bool = False) -> tuple[str, ...]:
    if key not in section:
        return default
    value = section[key]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"[locality] {key} must be a list of non-empty strings")
    return tuple(v.strip().lower() if lower else v.strip() for v in value)


def _bool(section: dict[str, Any], key: str, default: bool) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"[locality] {key} must be true or false, not {value!r}")
    return value


def _location(peer: str, value: Any) -> PeerLocation:
    where = f"[locality.peer_locations] {peer!r}"
    if isinstance(value, str):
        parts = [p.strip() for p in value.split("/")]
        if not 1 <= len(parts) <= 2 or not all(parts):
            raise ConfigError(f"{where}: expected \"region\" or \"region/zone\", not {value!r}")
        return PeerLocation(peer.lower(), parts[0], parts[1] if len(parts) == 2 else None)
    if isinstance(value, dict):
        unknown = set(value) - {"region", "zone"}
        if unknown or not value:
            raise ConfigError(f"{where}: a table takes region and/or zone only")
        for k, v in value.items():
            if not isinstance(v, str) or not v.strip():
                raise ConfigError(f"{where}: {k} must be a non-empty string")
        return PeerLocation(peer.lower(), value.get("region"), value.get("zone"))
    raise ConfigError(f"{where}: expected a string or a table, not {type(value).__name__}")


def parse_section(section: dict[str, Any]) -> LocalityConfig:
    """Validate a raw ``[locality]`` table."""
    if not isinstance(section, dict):
        raise ConfigError("[locality] must be a table")
    unknown = set(section) - _KNOWN_KEYS
    if unknown:
        raise ConfigError(
            f"[locality] has unknown key(s): {', '.join(sorted(unknown))}",
            hint=f"known keys: {', '.join(sorted(_KNOWN_KEYS))}",
        )
    roles = _str_list(section, "access_roles", DEFAULT_ACCESS_ROLES, lower=True)
    bad = [r for r in roles if r in ("cache", "llm") or r not in _ROLES]
    if bad:
        raise ConfigError(
            f"[locality] access_roles: {', '.join(bad)} not allowed",
            hint="roles other than cache and llm (those are always accesses): " + ", ".join(
                r for r in _ROLES if r not in ("cache", "llm")),
        )
    mpt = section.get("min_prompt_tokens", DEFAULT_MIN_PROMPT_TOKENS)
    if isinstance(mpt, bool) or not isinstance(mpt, int) or mpt < 0:
        raise ConfigError(f"[locality] min_prompt_tokens must be an integer >= 0, not {mpt!r}")
    peers_raw = section.get("peer_locations", {})
    if not isinstance(peers_raw, dict):
        raise ConfigError("[locality] peer_locations must be a table of peer = \"region/zone\"")
    peers = [_location(str(k), v) for k, v in peers_raw.items()]
    peers.sort(key=lambda p: p.is_glob)  # exact names first, then globs in config order
    return LocalityConfig(
        hit_attributes=_str_list(section, "hit_attributes", DEFAULT_HIT_ATTRIBUTES),
        cache_systems=_str_list(section, "cache_systems", DEFAULT_CACHE_SYSTEMS, lower=True),
        infer_cache_outcome=_bool(section, "infer_cache_outcome", True),
        access_roles=roles,
        service_calls=_bool(section, "service_calls", True),
        min_prompt_tokens=int(mpt),
        prompt_fingerprint_attributes=_str_list(
            section, "prompt_fingerprint_attributes", DEFAULT_PROMPT_FINGERPRINT_ATTRIBUTES),
        peer_locations=tuple(peers),
    )


def _roles() -> tuple[str, ...]:
    from fabric_trace.ingest.roles import ROLES

    return ROLES


_ROLES = _roles()


# --- SQL expression builders ---------------------------------------------------------------


def outcome_value_sql(raw: str) -> str:
    """Normalise a raw hit attribute (``true``, ``"MISS"``, ``["HIT from x"]``) to hit/miss/NULL."""
    word = f"regexp_extract(lower({raw}), '[a-z0-9_]+')"
    return (f"CASE WHEN {word} IN {sql_list(HIT_VALUES)} THEN 'hit' "
            f"WHEN {word} IN {sql_list(MISS_VALUES)} THEN 'miss' END")


def extract_paths(cfg: LocalityConfig) -> tuple[list[str], dict[str, int]]:
    """JSON paths read from a candidate span in one parse, and the 1-based index of each key.

    The list is :data:`EXTRACT_KEYS`, then the hit attributes, then the prompt
    fingerprint attributes (a key listed twice is read once).
    """
    keys: list[str] = []
    index: dict[str, int] = {}
    for k in EXTRACT_KEYS + cfg.hit_attributes + cfg.prompt_fingerprint_attributes:
        if k not in index:
            keys.append(k)
            index[k] = len(keys)
    return [json_path(k) for k in keys], index


def first_of(x: str, index: dict[str, int], keys: tuple[str, ...]) -> str:
    """SQL: the first non-NULL of ``keys`` in the extracted list ``x``."""
    refs = [f"{x}[{index[k]}]" for k in keys]
    if not refs:
        return "NULL::VARCHAR"
    return refs[0] if len(refs) == 1 else "coalesce(" + ", ".join(refs) + ")"


def cache_op_sql(x: str, name: str) -> str:
    """The cache command of a span: ``db.operation.name`` etc., else the first word of the query or name."""
    i = {k: EXTRACT_KEYS.index(k) + 1 for k in EXTRACT_KEYS}
    query = f"coalesce({x}[{i['db.query.text']}], {x}[{i['db.statement']}])"
    return (f"upper(coalesce({x}[{i['db.operation.name']}], {x}[{i['db.operation']}], "
            f"{x}[{i['cache.operation']}], nullif(regexp_extract({query}, '^\\s*([A-Za-z_.]+)', 1), ''), "
            f"nullif(regexp_extract({name}, '^([A-Za-z_.]+)', 1), '')))")


def cache_key_sql(x: str) -> str:
    """The key of a cache command: ``cache.key``, else the second word of the query text."""
    i = {k: EXTRACT_KEYS.index(k) + 1 for k in EXTRACT_KEYS}
    query = f"coalesce({x}[{i['db.query.text']}], {x}[{i['db.statement']}])"
    return f"coalesce({x}[{i['cache.key']}], nullif(regexp_extract({query}, '^\\s*\\S+\\s+(\\S+)', 1), ''))"


def retrieval_key_sql(x: str) -> str:
    """``<data source>:<query text>`` of a retrieval span (NULL without a query text)."""
    i = {k: EXTRACT_KEYS.index(k) + 1 for k in EXTRACT_KEYS}
    return (f"CASE WHEN {x}[{i['gen_ai.retrieval.query.text']}] IS NOT NULL THEN "
            f"coalesce({x}[{i['gen_ai.data_source.id']}], '') || ':' || {x}[{i['gen_ai.retrieval.query.text']}] END")


#: A parameter placeholder ($1, ?, %s, :name) makes a query text useless as a fetch key.
PLACEHOLDER_RE = r"\$[0-9]+|\?|%s|%\([a-z_]+\)s|[^:]:[A-Za-z_][A-Za-z0-9_]*"
READ_QUERY_RE = r"^\s*(SELECT|GET|FIND|SEARCH|QUERY|MATCH|SCAN)\b"


def database_key_sql(x: str) -> str:
    """A literal read query (no placeholders) of a database span, else NULL."""
    i = {k: EXTRACT_KEYS.index(k) + 1 for k in EXTRACT_KEYS}
    query = f"coalesce({x}[{i['db.query.text']}], {x}[{i['db.statement']}])"
    return (f"CASE WHEN regexp_matches({query}, '{READ_QUERY_RE}', 'i') "
            f"AND NOT regexp_matches({query}, '{PLACEHOLDER_RE}') THEN {query} END")


def peer_rows(cfg: LocalityConfig) -> list[tuple[int, str, bool, str | None, str | None]]:
    """Rows ``(position, pattern, is_glob, region, zone)`` of the peer-location table."""
    return [(i, p.pattern, p.is_glob, p.region, p.zone) for i, p in enumerate(cfg.peer_locations)]
