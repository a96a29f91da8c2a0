"""The llm analyzer's kernel: model calls with their cost, and the turns of sessions.

``derive`` runs over one partition of whole sessions (Arrow in, Arrow out, no
store) in a private DuckDB (:func:`~fabric_trace.analyzers.contract.sql_kernel`):

* the candidate spans and what they report are read with SQL
  (:data:`CANDIDATES_SQL`; the attribute keys are in docs/llm.md);
* the layers of one call are folded into one row (:mod:`.calls`) and priced
  (:mod:`.config`, :mod:`.cost`);
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
from fabric_trace.analyzers.llm.cost import price_call
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


def _calls(con: duckdb.DuckDBPyConnection, settings: LlmSettings) -> pa.Table:
    cur = con.execute(_candidates_sql())
    cols = [d[0] for d in cur.description]
    cands = []
    for row in cur.fetchall():
        c = dict(zip(cols, row))
        c["model"] = c.pop("model_reported") or c["request_model"]
        cands.append(c)
    if not cands:
        return _CALL_SCHEMA.empty_table()
    spans = con.execute("SELECT trace_id, span_id, parent_span_id FROM span_store").fetchall()
    http = {(t, p): n for t, p, n in con.execute(
        "SELECT trace_id, parent_span_id, count(*) FROM span_store WHERE role = 'http' AND kind = 'CLIENT' "
        "AND parent_span_id IS NOT NULL GROUP BY ALL").fetchall()}
    calls = fold_calls(spans, cands, http)
    for c in calls:
        c["cost_usd"], c["cost_note"], c["price_model"] = price_call(settings, c)
    calls.sort(key=lambda c: (c["trace_id"], c["start_ns"], c["span_id"]))
    # column by column (a dict per row cost ~3 s per million calls)
    return pa.table([pa.array([c.get(f.name) for c in calls], f.type) for f in _CALL_SCHEMA], schema=_CALL_SCHEMA)


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
