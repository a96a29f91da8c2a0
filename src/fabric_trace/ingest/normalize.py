"""The semantic-convention crosswalk: normalized columns derived at ingest.

Each normalized column is the first present value among an ordered list of
attribute keys (span attributes, or resource attributes for where the span
runs). The lists below are the documented rules (docs/normalization.md).
They are compiled into one SQL projection that DuckDB evaluates vectorised
over a staged batch: every JSON document is parsed once per batch, not once
per key.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from fabric_trace.ingest.roles import DEFAULT_RULES, RoleRule

# --- span-attribute crosswalk: column -> keys, first present wins ---------------
SPAN_KEYS: dict[str, tuple[str, ...]] = {
    "operation": ("gen_ai.operation.name",),
    "model": (
        "gen_ai.response.model",
        "gen_ai.request.model",
        "llm.model_name",
        "embedding.model_name",
        "ai.model.id",
        "llm.request.model",
        "llm.response.model",
    ),
    "provider_raw": (
        "gen_ai.provider.name",
        "gen_ai.system",
        "llm.provider",
        "llm.system",
        "ai.model.provider",
    ),
    "input_tokens": (
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "llm.token_count.prompt",
        "ai.usage.promptTokens",
        "ai.usage.inputTokens",
        "llm.usage.prompt_tokens",
    ),
    "output_tokens": (
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.token_count.completion",
        "ai.usage.completionTokens",
        "ai.usage.outputTokens",
        "llm.usage.completion_tokens",
    ),
    "cached_input_tokens": (
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
        "llm.token_count.prompt_details.cache_read",
        "gen_ai.usage.input_tokens_details.cached_tokens",
        "gen_ai.usage.prompt_tokens_details.cached_tokens",
        "ai.usage.cachedInputTokens",
    ),
    "peer_addr": (
        "server.address",
        "net.peer.name",
        "service.peer.name",
        "peer.service",
        "db.instance",
    ),
    "url": ("url.full", "http.url", "gen_ai.openai.api_base", "url"),
    "url_scheme_attr": ("url.scheme", "http.scheme"),
    "peer_ip": ("network.peer.address", "net.sock.peer.addr", "net.peer.ip"),
    "user_id": (
        "enduser.id",
        "user.id",
        "langfuse.user.id",
        "traceloop.association.properties.user_id",
        "ai.telemetry.metadata.userId",
        "enduser.pseudo.id",
    ),
    "session_id": (
        "gen_ai.conversation.id",
        "session.id",
        "langfuse.session.id",
        "traceloop.association.properties.session_id",
        "traceloop.association.properties.conversation_id",
        "traceloop.association.properties.thread_id",
        "ai.telemetry.metadata.sessionId",
    ),
    "tool_name": ("gen_ai.tool.name", "tool.name", "tool_call.function.name", "ai.toolCall.name"),
    "tool_call_id": ("gen_ai.tool.call.id", "tool_call.id", "ai.toolCall.id"),
    "agent_name": ("gen_ai.agent.name", "agent.name"),
    "workflow_name": ("gen_ai.workflow.name", "traceloop.workflow.name"),
    "db_system": ("db.system.name", "db.system"),
    "span_region": ("cloud.region",),
    "span_zone": ("cloud.availability_zone",),
}

# --- resource-attribute crosswalk ---------------------------------------------
RESOURCE_KEYS: dict[str, tuple[str, ...]] = {
    "service_name": ("service.name",),
    "service_namespace": ("service.namespace",),
    "region": ("cloud.region",),
    "zone": ("cloud.availability_zone",),
    "host": ("host.name", "host.id", "k8s.pod.name", "k8s.node.name", "service.instance.id"),
    "res_user_id": ("enduser.id", "user.id"),
}

#: Provider values renamed by the GenAI conventions (old -> current).
PROVIDER_RENAMES: dict[str, str] = {
    "az.ai.inference": "azure.ai.inference",
    "az.ai.openai": "azure.ai.openai",
    "azure": "azure.ai.openai",
    "vertex_ai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "google": "gcp.gen_ai",
    "mistralai": "mistral_ai",
    "aws": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "xai": "x_ai",
}


def _path(key: str) -> str:
    return '$."' + key.replace('"', '\\"') + '"'


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Projection:
    """The compiled crosswalk: SQL for the normalized columns of ``span_store``.

    Expressions refer to ``a1..aN`` (the span attributes ``span_keys`` as text, NULL
    when absent), ``l{i}`` (``lower(a{i})``, only for the attributes in ``lowered``),
    ``r1..rM`` (the resource attributes ``resource_keys``), the intermediate
    columns of ``intermediates`` (evaluated once per span, in a projection below the
    columns), ``_n`` (the lowercased span name) and ``kind``. Each dict of ``late`` is a
    further projection layer over the one before; names starting with ``_`` are
    helpers, and ``stored`` lists the stored columns in ``span_store`` order.
    """

    span_keys: tuple[str, ...]
    resource_keys: tuple[str, ...]
    lowered: tuple[int, ...]
    intermediates: dict[str, str]
    columns: dict[str, str]
    late: tuple[dict[str, str], ...] = ()
    stored: tuple[str, ...] = ()

    @property
    def span_paths(self) -> tuple[str, ...]:
        """JSON paths of the span attributes (``json_extract_string`` form)."""
        return tuple(_path(k) for k in self.span_keys)

    @property
    def resource_paths(self) -> tuple[str, ...]:
        """JSON paths of the resource attributes."""
        return tuple(_path(k) for k in self.resource_keys)


def extract_columns(json_expr: str, keys: tuple[str, ...], prefix: str) -> tuple[str, list[str]]:
    """SQL reading attributes ``keys`` of the JSON object ``json_expr`` as text.

    Returns ``(source, columns)``: compute ``source AS _x_{prefix}`` once per row, then
    ``columns`` (``... AS {prefix}{i}`` for each key, NULL when absent) over it.

    The source is one ``json_transform`` into a STRUCT of only these keys: the
    document is parsed once and each value read by name. DuckDB struct fields are
    case-insensitive, so a key set with keys that differ only in case uses a
    ``json_extract_string`` path list instead. (The two differ only in how a double
    in exponent form is written: ``1e+21`` against ``1e21``.)
    """
    if len({k.lower() for k in keys}) == len(keys):
        spec = "{" + ", ".join(f'{json.dumps(k)}: "VARCHAR"' for k in keys) + "}"
        source = f"json_transform({json_expr}, {_sql_str(spec)})"
        return source, [f"_x_{prefix}[{_sql_str(k)}] AS {prefix}{i}" for i, k in enumerate(keys, 1)]
    paths = "[" + ", ".join(_sql_str(_path(k)) for k in keys) + "]"
    source = f"json_extract_string({json_expr}, {paths})"
    return source, [f"_x_{prefix}[{i}] AS {prefix}{i}" for i in range(1, len(keys) + 1)]


def compile_projection(rules: tuple[RoleRule, ...] = DEFAULT_RULES) -> Projection:
    """Compile the crosswalk and the role rules into SQL expressions (see :class:`Projection`).

    Every literal comes from fabric's own tables or a validated config; strings are
    quoted with ``_sql_str``.
    """
    span_keys: list[str] = []
    index: dict[str, int] = {}
    lowered: set[int] = set()

    def a(key: str) -> str:
        if key not in index:
            index[key] = len(span_keys) + 1
            span_keys.append(key)
        return f"a{index[key]}"

    def low(key: str) -> str:
        a(key)
        lowered.add(index[key])
        return f"l{index[key]}"

    def first(keys: tuple[str, ...]) -> str:
        return "coalesce(" + ", ".join(a(k) for k in keys) + ")" if len(keys) > 1 else a(keys[0])

    res_keys: list[str] = []
    rindex: dict[str, int] = {}

    def r(key: str) -> str:
        if key not in rindex:
            rindex[key] = len(res_keys) + 1
            res_keys.append(key)
        return f"r{rindex[key]}"

    def rfirst(keys: tuple[str, ...]) -> str:
        return "coalesce(" + ", ".join(r(k) for k in keys) + ")" if len(keys) > 1 else r(keys[0])

    def tokens(keys: tuple[str, ...]) -> str:
        return f"TRY_CAST(TRY_CAST({first(keys)} AS DOUBLE) AS BIGINT)"

    renames = " ".join(
        f"WHEN {_sql_str(old)} THEN {_sql_str(new)}" for old, new in PROVIDER_RENAMES.items()
    )
    intermediates: dict[str, str] = {
        "_p_raw": first(SPAN_KEYS["provider_raw"]),
        "_url": first(SPAN_KEYS["url"]),
        "_peer": first(SPAN_KEYS["peer_addr"]),
    }
    # The Vercel AI SDK's provider id is "openai.chat"-style (provider "." API); it sends it as
    # ai.model.provider and, on its model-call spans, as gen_ai.system too. A value equal to the
    # span's ai.model.provider is that id; other values are already provider names (some of
    # which have dots of their own: azure.ai.inference, aws.bedrock).
    provider_l = (f"lower(CASE WHEN _p_raw = {a('ai.model.provider')} THEN split_part(_p_raw, '.', 1) "
                  "ELSE _p_raw END)")
    url_host = (
        "nullif(lower(regexp_extract(_url, "
        r"'^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?(\[[^\]]*\]|[^:/?#]*)', 1)), '')"
    )
    url_scheme = "nullif(lower(regexp_extract(_url, '^([A-Za-z][A-Za-z0-9+.-]*)://', 1)), '')"

    role_first, *role_late = role_stages(rules, a, low)
    columns: dict[str, str] = {
        "service_name": f"coalesce({rfirst(RESOURCE_KEYS['service_name'])}, 'unknown_service')",
        "service_namespace": rfirst(RESOURCE_KEYS["service_namespace"]),
        "region": f"coalesce({rfirst(RESOURCE_KEYS['region'])}, {first(SPAN_KEYS['span_region'])})",
        "zone": f"coalesce({rfirst(RESOURCE_KEYS['zone'])}, {first(SPAN_KEYS['span_zone'])})",
        "host": rfirst(RESOURCE_KEYS["host"]),
        "_ri": role_first["_ri"],
        "operation": first(SPAN_KEYS["operation"]),
        "model": first(SPAN_KEYS["model"]),
        "provider": f"CASE {provider_l} {renames} ELSE {provider_l} END",
        "input_tokens": tokens(SPAN_KEYS["input_tokens"]),
        "output_tokens": tokens(SPAN_KEYS["output_tokens"]),
        "cached_input_tokens": tokens(SPAN_KEYS["cached_input_tokens"]),
        # lower(coalesce(peer address, host of the URL, peer ip)); the regular expression
        # only runs for spans without a peer address but with a URL
        "peer": (f"lower(CASE WHEN _peer IS NOT NULL THEN _peer WHEN _url IS NOT NULL "
                 f"THEN coalesce({url_host}, {first(SPAN_KEYS['peer_ip'])}) ELSE {first(SPAN_KEYS['peer_ip'])} END)"),
        "url_scheme": (f"CASE WHEN _url IS NULL THEN lower({first(SPAN_KEYS['url_scheme_attr'])}) "
                       f"ELSE coalesce({url_scheme}, lower({first(SPAN_KEYS['url_scheme_attr'])})) END"),
        "user_id": f"coalesce({first(SPAN_KEYS['user_id'])}, {rfirst(RESOURCE_KEYS['res_user_id'])})",
        "session_id": first(SPAN_KEYS["session_id"]),
        # OpenLLMetry names its tools (and agents) only by entity name
        "tool_name": (f"coalesce({first(SPAN_KEYS['tool_name'])}, CASE WHEN {low('traceloop.span.kind')} = 'tool' "
                      f"THEN {a('traceloop.entity.name')} END)"),
        "tool_call_id": first(SPAN_KEYS["tool_call_id"]),
        "agent_name": (f"coalesce({first(SPAN_KEYS['agent_name'])}, CASE WHEN {low('traceloop.span.kind')} = 'agent' "
                       f"THEN {a('traceloop.entity.name')} END)"),
        "workflow_name": first(SPAN_KEYS["workflow_name"]),
        "db_system": f"lower({first(SPAN_KEYS['db_system'])})",
    }
    return Projection(
        span_keys=tuple(span_keys),
        resource_keys=tuple(res_keys),
        lowered=tuple(sorted(lowered)),
        intermediates=intermediates,
        columns=columns,
        late=tuple(role_late),
        stored=STORED_COLUMNS,
    )


#: The normalized columns of ``span_store``, in its column order (store/schema.sql).
STORED_COLUMNS: tuple[str, ...] = (
    "service_name", "service_namespace", "region", "zone", "host", "role", "operation", "model", "provider",
    "input_tokens", "output_tokens", "cached_input_tokens", "peer", "url_scheme", "user_id", "session_id",
    "tool_name", "tool_call_id", "agent_name", "workflow_name", "db_system", "role_source", "role_evidence",
    "role_rival", "role_rival_source", "role_rival_evidence",
)


def _glob_sql(lowered_expr: str, pattern: str) -> str:
    return f"{lowered_expr} GLOB {_sql_str(pattern.lower())}"


def _rule_cond(rule: RoleRule, a: Callable[[str], str], low: Callable[[str], str]) -> str:
    """SQL: every condition of ``rule`` holds."""
    conds: list[str] = []
    if rule.attr:
        if rule.equals:
            vals = ", ".join(_sql_str(v.lower()) for v in rule.equals)
            conds.append(f"{low(rule.attr)} IN ({vals})")
        elif rule.glob:
            conds.append(_glob_sql(low(rule.attr), rule.glob))
        elif rule.json_fields:
            # a cheap substring test first: only a value naming a field is parsed
            v = a(rule.attr)
            named = " OR ".join(f"contains({v}, {_sql_str(json.dumps(f))})" for f in rule.json_fields)
            paths = " OR ".join(f"json_exists({v}, {_sql_str(_path(f))})" for f in rule.json_fields)
            # (CASE, not AND: DuckDB evaluates both sides of AND, and json_exists fails on non-JSON)
            conds.append(f"coalesce(CASE WHEN ({named}) AND json_valid({v}) THEN json_type({v}) = 'OBJECT' "
                         f"AND ({paths}) END, false)")
        else:
            conds.append(f"{a(rule.attr)} IS NOT NULL")
    if rule.name_glob:
        conds.append(_glob_sql("_n", rule.name_glob))
    if rule.kinds:
        conds.append("kind IN (" + ", ".join(_sql_str(k) for k in rule.kinds) + ")")
    conds.extend(f"({_rule_cond(c, a, low)})" for c in rule.also)
    return " AND ".join(conds)


def _rule_index(rules: tuple[RoleRule, ...], a: Callable[[str], str], low: Callable[[str], str],
                other_than: str | None = None, after: str | None = None) -> str:
    """SQL: the 1-based index of the first rule that matches (0 if none).

    With ``other_than`` (a SQL expression giving a role), only rules giving another
    role count: the strongest evidence against that role. ``after`` (a SQL expression
    giving a rule index, 0 for none) says that no rule up to it but that one matches
    (it is the first match): then a span no rule matched (``after`` = 0) has no rival
    and only later rules are tested, each after the cheap ``index > after`` (the same
    result, with most conditions skipped).

    A run of consecutive rules that each compare the same attribute with values
    (``attr`` + ``equals`` only) becomes one WHEN (value in any of them) with an inner
    CASE giving the first rule listing the value: the same result, but a span without
    that attribute skips the whole run with one test.
    """
    whens: list[str] = []
    i = 0
    while i < len(rules):
        rule = rules[i]
        run = [rule]
        if _equals_only(rule):
            while i + len(run) < len(rules) and _equals_only(rules[i + len(run)]) \
                    and rules[i + len(run)].attr == rule.attr:
                run.append(rules[i + len(run)])
        if len(run) > 1:
            ref = low(rule.attr)  # type: ignore[arg-type]
            first: dict[str, int] = {}
            for k, r in enumerate(run):
                for v in r.equals:
                    first.setdefault(v.lower(), i + k + 1)
            if other_than is not None:
                inner_role = " ".join(f"WHEN {_sql_str(v)} THEN {_sql_str(rules[n - 1].role)}"
                                      for v, n in first.items())
            vals = ", ".join(_sql_str(v) for v in first)
            inner = " ".join(f"WHEN {_sql_str(v)} THEN {n}" for v, n in first.items())
            cond = f"{ref} IN ({vals})"
            if other_than is not None:
                cond += f" AND (CASE {ref} {inner_role} END) <> {other_than}"
            if after is not None:
                cond = f"{after} < {i + len(run)} AND {cond}"
            whens.append(f"WHEN {cond} THEN (CASE {ref} {inner} END)")
        else:
            cond = _rule_cond(rule, a, low)
            if other_than is not None:
                cond = f"({cond}) AND {_sql_str(rule.role)} <> {other_than}"
            if after is not None:
                cond = f"{after} < {i + 1} AND {cond}"
            whens.append(f"WHEN {cond} THEN {i + 1}")
        i += len(run)
    if after is not None:
        whens.insert(0, f"WHEN {after} = 0 THEN 0")
    return "CASE " + " ".join(whens) + " ELSE 0 END"


def role_stages(rules: tuple[RoleRule, ...], a: Callable[[str], str],
                low: Callable[[str], str]) -> tuple[dict[str, str], ...]:
    """The role columns in four projection layers (each layer reads the one before).

    ``_ri`` is the rule that gave the role and ``_rv`` the strongest rule giving another
    role (0: none); the other columns are read from the rule tables by index. Separate
    layers keep each rule CASE evaluated once per span (an alias used in the same
    SELECT would be expanded into every use), and let the rival's conditions compare
    with the ``role`` column rather than index the rule table again in every branch.
    """
    def pick(values: list[str]) -> str:
        return "[" + ", ".join(_sql_str(v) for v in values) + "]"

    roles = pick([r.role for r in rules])
    tiers = pick([r.tier for r in rules])
    evidence = pick([r.evidence for r in rules])
    first = {"_ri": _rule_index(rules, a, low)}
    second = {
        "role": f"coalesce({roles}[_ri], 'internal')",
        "role_source": f"coalesce({tiers}[_ri], 'none')",
        "role_evidence": f"{evidence}[_ri]",
    }
    third = {"_rv": _rule_index(rules, a, low, other_than="role", after="_ri")}
    fourth = {
        "role_rival": f"{roles}[_rv]",
        "role_rival_source": f"{tiers}[_rv]",
        "role_rival_evidence": f"{evidence}[_rv]",
    }
    return first, second, third, fourth


def _equals_only(rule: RoleRule) -> bool:
    return bool(rule.attr and rule.equals and not rule.glob and not rule.name_glob and not rule.kinds
                and not rule.also)
