"""The llm analyzer's kernel: model calls with their cost, and the turns of sessions.

``derive`` runs over one partition of whole sessions (Arrow in, Arrow out, no
store) in a private DuckDB (:func:`~fabric_trace.analyzers.contract.sql_kernel`):

* the candidate spans and what they report are read with SQL
  (:data:`CANDIDATES_SQL`; the attribute keys are in docs/llm.md);
* the layers of one call are folded into one row (:mod:`.calls`) and priced
  (:mod:`.config`, :mod:`.cost`): in SQL for the traces without layers to fold (nearly all:
  each candidate is a call), the rules' Python only for the others; the price entry is looked
  up once per model, the arithmetic is SQL (the same rows as the per-call rules, a test pins it);
* ``llm_call_store`` gets one row per call (view ``llm_calls``) and
  ``llm_turn_store`` one row per trace of a session (:mod:`.sessions`; views
  ``session_turns`` and ``sessions``).
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from fabric_trace.analyzers.contract import Derived, Partition, sql_kernel
from fabric_trace.analyzers.llm.calls import fold_calls
from fabric_trace.analyzers.llm.config import LlmSettings, parse_config
from fabric_trace.analyzers.llm.cost import price_calls
from fabric_trace.analyzers.llm.sessions import turns
from fabric_trace.model import FINDING_COLUMNS

#: Attribute keys, in order (the first present wins); docs/llm.md pins them.
REQUEST_MODEL_KEYS = ("gen_ai.request.model", "llm.request.model", "ai.model.id")
INVOCATION_MODEL_KEYS = ("model", "model_name")
REASONING_KEYS = ("gen_ai.usage.reasoning_tokens", "gen_ai.usage.output_tokens_details.reasoning_tokens",
                  "gen_ai.usage.completion_tokens_details.reasoning_tokens",
                  "llm.token_count.completion_details.reasoning", "ai.usage.reasoningTokens",
                  "llm.usage.reasoning_tokens")
TTFT_SECONDS_KEYS = ("gen_ai.response.time_to_first_chunk", "gen_ai.server.time_to_first_token",
                     "llm.time_to_first_token")
TTFT_MS_KEYS = ("ai.response.msToFirstChunk", "ai.stream.msToFirstChunk")
TTFT_EVENT = "First Token Stream Event"
#: ``llm.request.type`` (OpenLLMetry) and ``ai.operationId`` (Vercel AI SDK) -> operation.
OPERATION_ALIASES = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings",
                     "embeddings": "embeddings", "rerank": "rerank",
                     "ai.generatetext.dogenerate": "chat", "ai.streamtext.dostream": "chat",
                     "ai.generateobject.dogenerate": "chat", "ai.streamobject.dostream": "chat",
                     "ai.embed.doembed": "embeddings", "ai.embedmany.doembed": "embeddings"}
#: Operation when no attribute names one: from the role.
ROLE_OPERATION = {"llm": "chat", "embedding": "embeddings", "rerank": "rerank"}


def _attr(key: str) -> str:
    return f"json_extract_string(s.attributes, '$.\"{key}\"')"


def _num(key: str) -> str:
    return f"TRY_CAST({_attr(key)} AS DOUBLE)"


def _first(exprs: list[str]) -> str:
    return exprs[0] if len(exprs) == 1 else f"coalesce({', '.join(exprs)})"


def _candidates_sql() -> str:
    inv = _attr("llm.invocation_parameters")
    inv_model = [f"CASE WHEN json_valid({inv}) THEN nullif(trim(json_extract_string({inv}, '$.{k}')), '') END"
                 for k in INVOCATION_MODEL_KEYS]
    request_model = _first([f"nullif(trim({_attr(k)}), '')" for k in REQUEST_MODEL_KEYS[:2]] + inv_model
                           + [f"nullif(trim({_attr(REQUEST_MODEL_KEYS[2])}), '')"])
    aliases = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in OPERATION_ALIASES.items())
    roles = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in ROLE_OPERATION.items())
    op = (f"coalesce(lower(s.operation), CASE lower(coalesce({_attr('llm.request.type')}, {_attr('ai.operationId')})) "
          f"{aliases} END, CASE s.role {roles} END)")
    reasoning = f"TRY_CAST({_first([_num(k) for k in REASONING_KEYS])} AS BIGINT)"
    ttft = _first([f"{_num(k)} * 1e9" for k in TTFT_SECONDS_KEYS] + [f"{_num(k)} * 1e6" for k in TTFT_MS_KEYS]
                  + [f"""(CAST(json_extract(s.events, '$[*].time_ns')[list_position(
                          json_extract_string(s.events, '$[*].name'), '{TTFT_EVENT}')] AS DOUBLE) - s.start_ns)"""])
    exc = "list_filter(json_extract_string(s.events, '$[*].attributes.\"exception.type\"'), lambda x: x IS NOT NULL)[1]"
    return f"""
        SELECT s.trace_id, s.span_id, s.scope_id, s.role, s.name, s.service_name AS service, s.provider,
               {op} AS operation, {request_model} AS request_model, s.model AS model_reported,
               s.input_tokens, s.output_tokens, s.cached_input_tokens, {reasoning} AS reasoning_tokens,
               s.status_code, CASE WHEN s.status_code = 'ERROR' THEN coalesce({_attr('error.type')}, {exc}) END
                   AS error_type,
               s.start_ns, s.end_ns, TRY_CAST(round({ttft}) AS BIGINT) AS ttft_ns, s.user_id
        FROM span_store s
        WHERE s.role IN ('llm', 'embedding', 'rerank')
          AND (s.model IS NOT NULL OR s.input_tokens IS NOT NULL OR s.output_tokens IS NOT NULL
               OR s.operation IS NOT NULL OR {_attr('llm.request.type')} IS NOT NULL
               OR {_attr('llm.invocation_parameters')} IS NOT NULL)
    """


#: Arrow schema of the folded calls handed back to SQL.
_CALL_SCHEMA = pa.schema([
    ("trace_id", pa.string()), ("span_id", pa.string()), ("service", pa.string()), ("provider", pa.string()),
    ("operation", pa.string()), ("request_model", pa.string()), ("model", pa.string()),
    ("input_tokens", pa.int64()), ("output_tokens", pa.int64()), ("cached_input_tokens", pa.int64()),
    ("reasoning_tokens", pa.int64()), ("cost_usd", pa.float64()), ("cost_note", pa.string()),
    ("price_model", pa.string()), ("status_code", pa.string()), ("error_type", pa.string()),
    ("start_ns", pa.int64()), ("end_ns", pa.int64()), ("ttft_ns", pa.int64()), ("attempts", pa.int64()),
    ("span_ids", pa.list_(pa.string())), ("user_id", pa.string()),
])


def derive(part: Partition, config: Any) -> Derived:
    """The llm rows of one partition of whole sessions (a kernel: no store)."""
    from fabric_trace.analyzers.llm import ANALYZER

    if not _has_work(part.spans):  # no model call, no session: no rows (and no private database)
        findings = pa.table({c: pa.array([], pa.string()) for c in FINDING_COLUMNS})
        return Derived({t: pa.table({"trace_id": pa.array([], pa.string())}) for t in ANALYZER.tables}, findings)
    return sql_kernel(ANALYZER, part, config, derive_sql)


def _has_work(spans: pa.Table) -> bool:
    """Whether a partition has a span of a model-call role or a span naming a session."""
    if spans.num_rows == 0:
        return False
    roles = pc.is_in(spans.column("role"), value_set=pa.array(sorted(ROLE_OPERATION)))
    return bool(pc.any(roles).as_py()) or spans.column("session_id").null_count < spans.num_rows


#: Candidates (:func:`_candidates_sql`) with the call's ``model`` (reported, else requested) and the
#: span's parent.
_CANDS_SQL = """
    CREATE OR REPLACE TEMP TABLE _llm_cands AS
    SELECT c.* EXCLUDE (model_reported), coalesce(nullif(c.model_reported, ''), c.request_model) AS model
    FROM ({candidates}) c
"""

#: Traces whose candidates need the folding rules of :mod:`.calls`: a candidate with a candidate
#: among its ancestors (rule 1: the walk over every ancestor a parent chain reaches, cycles
#: included, finds every pair the rule can fold), two candidates of one span id, or two that rule 2
#: could fold (same role and tokens). In every other trace each candidate is a call of its own.
_FOLDED_TRACES_SQL = """
    CREATE OR REPLACE TEMP TABLE _llm_folded AS
    WITH RECURSIVE up(trace_id, node) AS (
        SELECT c.trace_id, s.parent_span_id FROM _llm_cands c
        JOIN span_store s ON s.trace_id = c.trace_id AND s.span_id = c.span_id
        WHERE s.parent_span_id IS NOT NULL
        UNION
        SELECT u.trace_id, s.parent_span_id FROM up u
        JOIN span_store s ON s.trace_id = u.trace_id AND s.span_id = u.node
        WHERE s.parent_span_id IS NOT NULL
    )
    SELECT DISTINCT u.trace_id FROM up u SEMI JOIN _llm_cands c ON c.trace_id = u.trace_id AND c.span_id = u.node
    UNION SELECT trace_id FROM _llm_cands GROUP BY trace_id, span_id HAVING count(*) > 1
    UNION SELECT trace_id FROM _llm_cands GROUP BY trace_id, role, input_tokens, output_tokens HAVING count(*) > 1
"""

#: HTTP CLIENT children per span (each an attempt on the wire, :mod:`.calls`).
_HTTP_SQL = ("SELECT trace_id, parent_span_id, count(*) AS n FROM span_store WHERE role = 'http' AND kind = 'CLIENT' "
             "AND parent_span_id IS NOT NULL GROUP BY ALL")

_CALL_COLUMNS = [f.name for f in _CALL_SCHEMA if f.name not in ("cost_usd", "cost_note", "price_model")]


def _calls(con: duckdb.DuckDBPyConnection, settings: LlmSettings) -> pa.Table:
    """The partition's calls (one row per call, :data:`_CALL_SCHEMA`), ordered by trace, start, span.

    A candidate of a trace without layers to fold is its own call, in SQL; the traces with layers
    (:data:`_FOLDED_TRACES_SQL`) go through :func:`~.calls.fold_calls`. Pricing: :func:`~.cost.price_calls`."""
    con.execute(_CANDS_SQL.format(candidates=_candidates_sql()))
    if not con.execute("SELECT count(*) FROM _llm_cands").fetchall()[0][0]:
        con.execute("DROP TABLE _llm_cands")
        return _CALL_SCHEMA.empty_table()
    con.execute(_FOLDED_TRACES_SQL)
    folded = _folded_calls(con)
    con.register("_llm_folded_calls", folded)
    try:
        con.execute(f"""
            CREATE OR REPLACE TEMP VIEW _llm_all_calls AS
            SELECT {', '.join(f'c.{c}' for c in _CALL_COLUMNS if c not in ('attempts', 'span_ids'))},
                   greatest(1, coalesce(h.n, 0)) AS attempts, [c.span_id] AS span_ids
            FROM _llm_cands c LEFT JOIN ({_HTTP_SQL}) h ON h.trace_id = c.trace_id AND h.parent_span_id = c.span_id
            WHERE c.trace_id NOT IN (SELECT trace_id FROM _llm_folded)
            UNION ALL BY NAME SELECT * FROM _llm_folded_calls
        """)
        priced = price_calls(con, settings, "_llm_all_calls", "trace_id, start_ns, span_id")
    finally:
        con.execute("DROP VIEW IF EXISTS _llm_all_calls")
        con.unregister("_llm_folded_calls")
        con.execute("DROP TABLE _llm_cands")
        con.execute("DROP TABLE _llm_folded")
    return priced.select([f.name for f in _CALL_SCHEMA]).cast(_CALL_SCHEMA)


def _folded_calls(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """:func:`~.calls.fold_calls` over the candidates of the traces in ``_llm_folded`` (without prices)."""
    schema = pa.schema([_CALL_SCHEMA.field(c) for c in _CALL_COLUMNS])
    cur = con.execute("SELECT * FROM _llm_cands SEMI JOIN _llm_folded USING (trace_id)")
    cols = [d[0] for d in cur.description]
    cands = [dict(zip(cols, row)) for row in cur.fetchall()]
    if not cands:
        return schema.empty_table()
    spans = con.execute("SELECT trace_id, span_id, parent_span_id FROM span_store SEMI JOIN _llm_folded USING (trace_id)"
                        ).fetchall()
    http = {(t, p): n for t, p, n in con.execute(
        f"SELECT * FROM ({_HTTP_SQL}) SEMI JOIN _llm_folded USING (trace_id)").fetchall()}
    calls = fold_calls(spans, cands, http)
    # column by column (a dict per row cost ~3 s per million calls)
    return pa.table([pa.array([c.get(f.name) for c in calls], f.type) for f in schema], schema=schema)


def derive_sql(con: duckdb.DuckDBPyConnection, config: Any) -> None:
    """Fill ``llm_call_store`` and ``llm_turn_store`` from the partition on ``con``."""
    settings = config if isinstance(config, LlmSettings) else parse_config(config)
    con.register("_llm_calls", _calls(con, settings))
    try:
        con.execute("""
            CREATE TEMP TABLE _llm_trace_user AS
            SELECT s.trace_id, arg_min(s.user_id, (ls.depth, s.start_ns, s.span_id)) AS user_id
            FROM span_store s JOIN latency_spans ls ON ls.trace_id = s.trace_id AND ls.span_id = s.span_id
            WHERE s.user_id IS NOT NULL GROUP BY s.trace_id
        """)
        con.execute("""
            INSERT INTO llm_call_store
            SELECT c.trace_id, c.span_id, t.session_id, coalesce(c.user_id, u.user_id), t.workflow, c.service,
                   c.provider, c.operation, c.request_model, c.model, c.input_tokens, c.output_tokens,
                   c.cached_input_tokens, c.reasoning_tokens, c.cost_usd, c.cost_note, c.price_model,
                   c.status_code, c.error_type, c.start_ns, c.end_ns, c.end_ns - c.start_ns, c.ttft_ns,
                   ls.on_critical_path_ns, c.attempts, c.span_ids
            FROM _llm_calls c
            LEFT JOIN latency_traces t ON t.trace_id = c.trace_id
            LEFT JOIN latency_spans ls ON ls.trace_id = c.trace_id AND ls.span_id = c.span_id
            LEFT JOIN _llm_trace_user u ON u.trace_id = c.trace_id
        """)
    finally:
        con.unregister("_llm_calls")
    rows = con.execute("""
        SELECT t.trace_id, t.session_id, u.user_id, t.start_ns, t.end_ns
        FROM latency_traces t LEFT JOIN _llm_trace_user u USING (trace_id)
        WHERE t.session_id IS NOT NULL
    """).fetchall()
    con.register("_llm_turns", turns(rows))
    try:
        con.execute("INSERT INTO llm_turn_store SELECT * FROM _llm_turns")
    finally:
        con.unregister("_llm_turns")
    con.execute("DROP TABLE _llm_trace_user")
