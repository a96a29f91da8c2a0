"""Trust zones: the ``[trust]`` config section and the rules that put spans and peers in zones.

Rules (docs/trust.md, "Zones"), first that applies:

* an instrumented span is in the zone of its service (per resource): a ``[trust.services]``
  glob, else ``service.namespace``, else ``k8s.namespace.name``, else
  ``cloud.account.id``, else the service name (kind ``internal``);
* the peer of a client call that has no spans of its own is resolved by
  :func:`resolve_peers` (loopback, ``[trust.hosts]``, a known service, an
  internal gateway or domain, a model provider, else ``external:<host>``);
* the end user who started a workflow is the zone ``user``.

Configured zones (``[trust.zones.<name>]``) may set ``kind`` and ``level``.
Every pattern is a case-insensitive glob (``*``, ``?``, ``[...]``), matched in
DuckDB; user text is always a bound parameter, never pasted into SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

from fabric_trace.errors import ConfigError

#: Trust levels, least trusted first.
LEVELS: tuple[str, ...] = ("untrusted", "low", "medium", "high")

#: Zone kinds and their default trust level.
KIND_LEVEL: dict[str, str] = {"internal": "high", "provider": "medium", "external": "untrusted", "user": "low"}

#: Hosts that are inside the organisation unless the config replaces this list.
DEFAULT_INTERNAL_DOMAINS: tuple[str, ...] = (
    "*.svc", "*.svc.cluster.local", "*.cluster.local", "*.internal", "*.local", "*.localdomain",
    "10.*", "192.168.*", "172.1[6-9].*", "172.2[0-9].*", "172.3[0-1].*", "fd*:*",
)

#: Loopback hosts: always the caller's own zone, and exempt from ``plaintext_crossing``.
LOOPBACK: tuple[str, ...] = ("localhost", "*.localhost", "127.*", "::1", "0.0.0.0", "::")

#: Well-known model provider API hosts -> provider name (GenAI ``gen_ai.provider.name`` values).
DEFAULT_PROVIDER_HOSTS: tuple[tuple[str, str], ...] = (
    ("api.openai.com", "openai"),
    ("*.openai.azure.com", "azure.ai.openai"),
    ("*.services.ai.azure.com", "azure.ai.inference"),
    ("*.inference.ai.azure.com", "azure.ai.inference"),
    ("models.inference.ai.azure.com", "azure.ai.inference"),
    ("api.anthropic.com", "anthropic"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("*aiplatform.googleapis.com", "gcp.vertex_ai"),
    ("bedrock*.amazonaws.com", "aws.bedrock"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.cohere.com", "cohere"),
    ("api.cohere.ai", "cohere"),
    ("api.groq.com", "groq"),
    ("api.deepseek.com", "deepseek"),
    ("api.x.ai", "x_ai"),
    ("api.perplexity.ai", "perplexity"),
    ("api.together.xyz", "together"),
    ("api.together.ai", "together"),
    ("api.fireworks.ai", "fireworks"),
    ("openrouter.ai", "openrouter"),
    ("api.voyageai.com", "voyage"),
    ("*.ml.cloud.ibm.com", "ibm.watsonx.ai"),
)

#: Tools with side effects unless the config replaces this list (matched on the tool name).
DEFAULT_PRIVILEGED_TOOLS: tuple[str, ...] = (
    "send*", "create*", "delete*", "remove*", "update*", "write*", "set_*", "put_*", "post_*",
    "insert*", "upsert*", "drop*", "run_*", "exec*", "execute*", "shell*", "bash*", "*sql*",
    "transfer*", "pay*", "refund*", "charge*", "deploy*", "book*", "cancel*", "purchase*", "order_*",
    "email*", "*_email", "grant*", "revoke*", "approve*", "merge*", "commit*", "push*", "upload*",
)

_TOP_KEYS = frozenset({
    "internal_domains", "internal_gateways", "privileged_tools", "unprivileged_tools",
    "services", "hosts", "provider_hosts", "zones", "plaintext_exempt",
})
_ZONE_KEYS = frozenset({"kind", "level", "description"})
_ZONE_KINDS = ("internal", "external", "provider")


@dataclass(frozen=True)
class ZoneSpec:
    """A zone named in the config."""

    kind: str | None = None
    """``internal``, ``external`` or ``provider``; ``None`` keeps the kind the rules gave."""
    level: str | None = None
    """One of :data:`LEVELS`; ``None`` uses the kind's default."""
    description: str = ""
    """Free text shown nowhere but the config (for the reviewer)."""


@dataclass(frozen=True)
class TrustConfig:
    """The validated ``[trust]`` section."""

    internal_domains: tuple[str, ...] = DEFAULT_INTERNAL_DOMAINS
    internal_gateways: tuple[str, ...] = ()
    privileged_tools: tuple[str, ...] = DEFAULT_PRIVILEGED_TOOLS
    unprivileged_tools: tuple[str, ...] = ()
    plaintext_exempt: tuple[str, ...] = ()
    """Peer hosts whose ``http://`` traffic is protected otherwise (a mesh with mTLS)."""
    services: tuple[tuple[str, str], ...] = ()
    """(service-name glob, zone), first match wins."""
    hosts: tuple[tuple[str, str], ...] = ()
    """(peer-host glob, zone), first match wins."""
    provider_hosts: tuple[tuple[str, str], ...] = DEFAULT_PROVIDER_HOSTS
    zones: dict[str, ZoneSpec] = field(default_factory=dict)


def _str_list(section: dict[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    if key not in section:
        return default
    value = section[key]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"[trust] {key} must be a list of non-empty strings (globs)")
    return tuple(v.lower() for v in value)


def _str_map(section: dict[str, Any], key: str) -> tuple[tuple[str, str], ...]:
    value = section.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(k, str) and k and isinstance(v, str) and v
                                              for k, v in value.items()):
        raise ConfigError(f"[trust.{key}] must map globs to non-empty names, e.g. \"payments-*\" = \"pci\"")
    return tuple((k.lower(), v) for k, v in value.items())


def load_trust_config(config: Any) -> TrustConfig:
    """Validate ``[trust]`` of ``config`` (a :class:`fabric_trace.config.Config` or None)."""
    section = config.section("trust") if config is not None and hasattr(config, "section") else {}
    unknown = set(section) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"[trust] has unknown key(s): {', '.join(sorted(unknown))}",
                          hint="known keys: " + ", ".join(sorted(_TOP_KEYS)))
    zones_raw = section.get("zones", {})
    if not isinstance(zones_raw, dict):
        raise ConfigError("[trust.zones] must be a table of [trust.zones.<name>] tables")
    zones: dict[str, ZoneSpec] = {}
    for name, spec in zones_raw.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"[trust.zones.{name}] must be a table (kind, level, description)")
        bad = set(spec) - _ZONE_KEYS
        if bad:
            raise ConfigError(f"[trust.zones.{name}] has unknown key(s): {', '.join(sorted(bad))}")
        kind, level = spec.get("kind"), spec.get("level")
        if kind is not None and kind not in _ZONE_KINDS:
            raise ConfigError(f"[trust.zones.{name}] kind must be one of {', '.join(_ZONE_KINDS)}, not {kind!r}")
        if level is not None and level not in LEVELS:
            raise ConfigError(f"[trust.zones.{name}] level must be one of {', '.join(LEVELS)}, not {level!r}")
        zones[name] = ZoneSpec(kind, level, str(spec.get("description", "")))
    provider_hosts = _str_map(section, "provider_hosts") + DEFAULT_PROVIDER_HOSTS
    return TrustConfig(
        internal_domains=_str_list(section, "internal_domains", DEFAULT_INTERNAL_DOMAINS),
        internal_gateways=_str_list(section, "internal_gateways", ()),
        privileged_tools=_str_list(section, "privileged_tools", DEFAULT_PRIVILEGED_TOOLS),
        unprivileged_tools=_str_list(section, "unprivileged_tools", ()),
        plaintext_exempt=_str_list(section, "plaintext_exempt", ()),
        services=_str_map(section, "services"),
        hosts=_str_map(section, "hosts"),
        provider_hosts=provider_hosts,
        zones=zones,
    )


def write_config_tables(con: duckdb.DuckDBPyConnection, cfg: TrustConfig) -> None:
    """Materialise the config as temp tables ``_trust_pat`` and ``_trust_zonecfg``.

    ``_trust_pat(list, ord, pattern, value)``: one row per glob of each list
    (``ord`` keeps the config order, first match wins).
    """
    rows: list[tuple[str, int, str, str | None]] = []

    def add(name: str, items: Any) -> None:
        for i, item in enumerate(items):
            pattern, value = (item, None) if isinstance(item, str) else item
            rows.append((name, i, pattern, value))

    add("internal_domain", cfg.internal_domains)
    add("internal_gateway", cfg.internal_gateways)
    add("loopback", LOOPBACK)
    add("privileged", cfg.privileged_tools)
    add("unprivileged", cfg.unprivileged_tools)
    add("plaintext_exempt", cfg.plaintext_exempt)
    add("service_zone", cfg.services)
    add("host_zone", cfg.hosts)
    add("provider_host", cfg.provider_hosts)
    con.execute("CREATE OR REPLACE TEMP TABLE _trust_pat (list VARCHAR, ord INTEGER, pattern VARCHAR, value VARCHAR)")
    if rows:
        con.executemany("INSERT INTO _trust_pat VALUES (?, ?, ?, ?)", rows)
    con.execute("CREATE OR REPLACE TEMP TABLE _trust_zonecfg (zone VARCHAR, kind VARCHAR, level VARCHAR)")
    if cfg.zones:
        con.executemany("INSERT INTO _trust_zonecfg VALUES (?, ?, ?)",
                        [(z, s.kind, s.level) for z, s in cfg.zones.items()])
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _trust_levels AS SELECT * FROM (VALUES "
        + ", ".join(f"('{k}', '{v}')" for k, v in KIND_LEVEL.items())
        + ") t(kind, level)"
    )


def _first(list_name: str, subject: str) -> str:
    """SQL: value of the first glob of ``list_name`` matching ``subject`` (NULL if none)."""
    return (f"(SELECT p.value FROM _trust_pat p WHERE p.list = '{list_name}' "
            f"AND {subject} GLOB p.pattern ORDER BY p.ord LIMIT 1)")


def _any(list_name: str, subject: str) -> str:
    """SQL: whether any glob of ``list_name`` matches ``subject``."""
    return f"EXISTS (SELECT 1 FROM _trust_pat p WHERE p.list = '{list_name}' AND {subject} GLOB p.pattern)"


#: The zone of every resource of ``span_store`` (with the config tables of :func:`write_config_tables`).
ZONES_SQL = f"""
WITH r AS (SELECT DISTINCT resource_id, service_name, service_namespace FROM span_store),
z AS (
    SELECT r.resource_id, r.service_name,
           coalesce({_first('service_zone', 'lower(r.service_name)')},
                    nullif(r.service_namespace, ''),
                    nullif(json_extract_string(res.attributes, '$."k8s.namespace.name"'), ''),
                    nullif(json_extract_string(res.attributes, '$."cloud.account.id"'), ''),
                    r.service_name) AS zone
    FROM r LEFT JOIN resources res USING (resource_id)
)
SELECT z.resource_id, z.service_name, z.zone,
       coalesce(c.kind, 'internal') AS zone_kind,
       coalesce(c.level, l.level) AS trust_level
FROM z LEFT JOIN _trust_zonecfg c ON c.zone = z.zone
LEFT JOIN _trust_levels l ON l.kind = coalesce(c.kind, 'internal')
ORDER BY z.resource_id, z.service_name
"""


def build_zones(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``_trust_res`` (zone of each resource of the store, with dense service and zone numbers)
    from the store-wide ``trust_zone_store``."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _trust_res AS
        SELECT resource_id, service_name, zone, zone_kind, trust_level,
               dense_rank() OVER (ORDER BY service_name) AS svc_no,
               dense_rank() OVER (ORDER BY zone) AS zone_no
        FROM trust_zone_store
        """
    )


def resolve_peers(con: duckdb.DuckDBPyConnection) -> None:
    """Resolve every distinct (peer host, provider) of ``_trust_cand`` into ``_trust_peer``.

    ``zone`` NULL means "the caller's own zone" (loopback, or an internal
    host whose zone cannot be told): no crossing. ``kind`` and ``level`` apply
    ``[trust.zones]`` over the rule's ``default_kind``.
    """
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _trust_peer AS
        WITH h AS (SELECT DISTINCT host, provider FROM _trust_cand),
        svc AS (SELECT lower(service_name) AS name, min(zone) AS zone FROM _trust_res GROUP BY 1),
        m AS (
            SELECT h.host, h.provider,
                   h.host IS NOT NULL AND {_any('loopback', 'h.host')} AS loopback,
                   {_first('host_zone', 'h.host')} AS host_zone,
                   h.host IS NOT NULL AND {_any('internal_gateway', 'h.host')} AS gateway,
                   h.host IS NOT NULL AND {_any('internal_domain', 'h.host')} AS internal,
                   coalesce(h.provider, {_first('provider_host', 'h.host')}) AS provider_name,
                   nullif(regexp_extract(h.host, '^[^.]+\\.([^.]+)\\.svc(\\.|$)', 1), '') AS k8s_ns
            FROM h
        ),
        k AS (
            SELECT m.*, (SELECT min(svc.zone) FROM svc WHERE svc.name = m.host
                            OR (m.internal AND svc.name = split_part(m.host, '.', 1))) AS service_zone
            FROM m
        )
        , r AS (
        SELECT host, provider, loopback,
               CASE WHEN host IS NULL THEN CASE WHEN provider IS NOT NULL THEN 'provider' END
                    WHEN loopback THEN 'loopback'
                    WHEN host_zone IS NOT NULL THEN 'host_rule'
                    WHEN service_zone IS NOT NULL THEN 'known_service'
                    WHEN gateway THEN 'internal_gateway'
                    WHEN internal THEN 'internal_domain'
                    WHEN provider_name IS NOT NULL THEN 'provider'
                    ELSE 'external' END AS rule,
               CASE WHEN host IS NULL THEN CASE WHEN provider IS NOT NULL THEN 'provider:' || provider END
                    WHEN loopback THEN NULL
                    WHEN host_zone IS NOT NULL THEN host_zone
                    WHEN service_zone IS NOT NULL THEN service_zone
                    WHEN gateway OR internal THEN k8s_ns
                    WHEN provider_name IS NOT NULL THEN 'provider:' || provider_name
                    ELSE 'external:' || host END AS zone,
               CASE WHEN host IS NULL OR (NOT loopback AND host_zone IS NULL AND service_zone IS NULL
                                          AND NOT gateway AND NOT internal AND provider_name IS NOT NULL)
                    THEN 'provider'
                    WHEN loopback OR host_zone IS NOT NULL OR service_zone IS NOT NULL OR gateway OR internal
                    THEN 'internal'
                    ELSE 'external' END AS default_kind
        FROM k
        )
        SELECT r.*, coalesce(c.kind, r.default_kind) AS kind, coalesce(c.level, l.level) AS level
        FROM r LEFT JOIN _trust_zonecfg c ON c.zone = r.zone
        LEFT JOIN _trust_levels l ON l.kind = coalesce(c.kind, r.default_kind)
        """
    )
