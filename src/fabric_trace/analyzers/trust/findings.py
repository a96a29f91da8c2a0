"""The trust findings (docs/trust.md, "Findings"), set-based over tree positions.

Every rule is one SQL statement over the temp tables :mod:`.trust` builds
(``_trust_pos``: tree positions in ``span_store`` scan order, read with ``POSITIONAL JOIN``;
``trust_crossing_store``: the crossings).
"Before T" always means *before T in depth-first order* (children by start
time): ``enter(P) < enter(T)`` holds exactly when P is an ancestor of T or
lies in an earlier sibling subtree of T or of one of T's ancestors
(:mod:`.trust_tree`), so no rule depends on clocks of different services
agreeing. The latest matching span before T is found with an ASOF join.
"""

from __future__ import annotations

import duckdb

from fabric_trace.analyzers.contract import write_findings
from fabric_trace.ingest.roles import OUTPUT_KEYS, POLICY_ALLOW_FLAGS, POLICY_DECISION_KEYS, POLICY_DENY_FLAGS

#: Finding kinds and their severity rule (documented in docs/trust.md).
SEVERITY: dict[str, str] = {
    "unguarded_tool_call": "high if the tool is privileged, else medium",
    "denied_tool_executed": "critical",
    "external_egress": "medium",
    "provider_egress": "info",
    "untrusted_input_to_privileged_tool": "high",
    "anonymous_privileged_action": "high if a privileged tool ran, else medium (external calls only)",
    "plaintext_crossing": "high to or from a non-internal zone (external, provider, user), else low",
}

#: String attributes holding a policy decision (first present wins): the keys that make a span
#: a policy check (ingest/roles.py), then generic keys read only on spans that already are one.
DECISION_KEYS: tuple[str, ...] = POLICY_DECISION_KEYS + ("decision",)
#: Boolean attributes that mean "denied" when true.
DENY_FLAGS: tuple[str, ...] = POLICY_DENY_FLAGS + ("blocked",)
#: Boolean attributes that mean "allowed" when true.
ALLOW_FLAGS: tuple[str, ...] = POLICY_ALLOW_FLAGS + ("allowed", "allow")
#: Top-level fields of a policy step's recorded output (OpenLLMetry ``traceloop.entity.output``,
#: OpenInference ``output.value``) read when no attribute holds the decision: a decision string,
#: then deny flags, then allow flags (the OpenAI Agents SDK's guardrail output has
#: ``tripwire_triggered``).
OUTPUT_DECISION: tuple[str, ...] = ("decision",)
OUTPUT_DENY: tuple[str, ...] = ("tripwire_triggered", "blocked")
OUTPUT_ALLOW: tuple[str, ...] = ("allowed", "allow")
#: Fields of that output naming what the decision concerns (when the span's own attributes do not).
OUTPUT_CALL_ID: tuple[str, ...] = ("tool_call_id",)
OUTPUT_TOOL: tuple[str, ...] = ("tool_name", "tool")

ALLOW_VALUES = ("allow", "allowed", "permit", "permitted", "pass", "passed", "approve", "approved", "accept",
                "accepted", "ok", "true", "yes", "success", "granted", "redact", "redacted", "modify",
                "modified", "sanitize", "sanitized", "auto-approved")
DENY_VALUES = ("deny", "denied", "block", "blocked", "reject", "rejected", "refuse", "refused", "fail", "failed",
               "forbid", "forbidden", "stop", "stopped", "false", "no", "flagged", "tripwire_triggered",
               "unauthorized", "disallow", "disallowed")

#: Roles of spans that may carry a tool name without a tool role (e.g. an MCP client call).
_TOOLISH_ROLES = ("internal", "http", "rpc", "workflow")


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


#: SQL over ``span_store`` alias ``s``: the span is a tool execution.
TOOL_SQL = (f"(s.role = 'tool' OR (s.tool_name IS NOT NULL AND s.role IN ({_quoted(_TOOLISH_ROLES)})))")


_DECISION_PATHS = "[" + ", ".join(f"'$.\"{k}\"'" for k in DECISION_KEYS + DENY_FLAGS + ALLOW_FLAGS) + "]"
_OUTPUT_SQL = "coalesce(" + ", ".join(f"json_extract_string(s.attributes, '$.\"{k}\"')" for k in OUTPUT_KEYS) + ")"
_OUTPUT_FIELDS = OUTPUT_DECISION + OUTPUT_DENY + OUTPUT_ALLOW + OUTPUT_CALL_ID + OUTPUT_TOOL
_FIELD_PATHS = "[" + ", ".join(f"'$.\"{k}\"'" for k in _OUTPUT_FIELDS) + "]"
_N_DECISION_FIELDS = len(OUTPUT_DECISION + OUTPUT_DENY + OUTPUT_ALLOW)


def _decision_sql(v: str, o: str) -> str:
    """SQL: the normalised decision (allow, deny, unknown) from ``v``, the list of
    ``json_extract_string(attributes, _DECISION_PATHS)``, else from ``o``, the list of
    ``json_extract_string(output, _FIELD_PATHS)`` of the step's recorded output."""
    n1, n2 = len(DECISION_KEYS), len(DECISION_KEYS) + len(DENY_FLAGS)
    n3 = n2 + len(ALLOW_FLAGS)
    m1, m2 = len(OUTPUT_DECISION), len(OUTPUT_DECISION) + len(OUTPUT_DENY)
    m3 = m2 + len(OUTPUT_ALLOW)

    def first(x: str, lo: int, hi: int) -> str:
        return "coalesce(" + ", ".join(f"{x}[{i}]" for i in range(lo, hi + 1)) + ")"

    raw = f"coalesce({first(v, 1, n1)}, {first(o, 1, m1)})"
    deny = f"coalesce({first(v, n1 + 1, n2)}, {first(o, m1 + 1, m2)})"
    allow = f"coalesce({first(v, n2 + 1, n3)}, {first(o, m2 + 1, m3)})"
    return f"""CASE WHEN lower(trim({raw})) IN ({_quoted(ALLOW_VALUES)}) THEN 'allow'
                    WHEN lower(trim({raw})) IN ({_quoted(DENY_VALUES)}) THEN 'deny'
                    WHEN {raw} IS NOT NULL THEN 'unknown'
                    WHEN lower({deny}) = 'true' THEN 'deny'
                    WHEN lower({deny}) = 'false' THEN 'allow'
                    WHEN lower({allow}) = 'true' THEN 'allow'
                    WHEN lower({allow}) = 'false' THEN 'deny'
                    ELSE 'unknown' END"""


_TOOLS = f"""
CREATE OR REPLACE TEMP TABLE _trust_priv AS
WITH names AS (SELECT DISTINCT s.tool_name FROM span_store s WHERE {TOOL_SQL} AND s.tool_name IS NOT NULL)
SELECT tool_name,
       EXISTS (SELECT 1 FROM _trust_pat q WHERE q.list = 'privileged' AND lower(tool_name) GLOB q.pattern)
       AND NOT EXISTS (SELECT 1 FROM _trust_pat q WHERE q.list = 'unprivileged'
                       AND lower(tool_name) GLOB q.pattern) AS privileged
FROM names;

CREATE OR REPLACE TEMP TABLE _trust_tool0 AS
SELECT p.pos, p.trace_no, p.enter, p.exit, p.tool_anc, s.trace_id, s.span_id, s.tool_name, s.tool_call_id,
       s.resource_id
FROM span_store s POSITIONAL JOIN _trust_pos p
WHERE {TOOL_SQL};

-- nested spans of one tool execution (same call id, else same name) count once: the outermost
CREATE OR REPLACE TEMP TABLE _trust_tool AS
SELECT t.*, z.zone, coalesce(v.privileged, false) AS privileged
FROM _trust_tool0 t LEFT JOIN _trust_tool0 a ON a.pos = t.tool_anc
JOIN _trust_res z ON z.resource_id = t.resource_id
LEFT JOIN _trust_priv v ON v.tool_name = t.tool_name
WHERE a.pos IS NULL OR NOT (
      (t.tool_call_id IS NOT NULL AND a.tool_call_id IS NOT NULL AND t.tool_call_id = a.tool_call_id)
      OR ((t.tool_call_id IS NULL OR a.tool_call_id IS NULL) AND t.tool_name IS NOT DISTINCT FROM a.tool_name));

CREATE OR REPLACE TEMP TABLE _trust_pol AS
SELECT p.pos, p.trace_no, d.span_id,
       coalesce(d.pid, d.o[{_N_DECISION_FIELDS + 1}]) AS pid,
       coalesce(d.pname, {", ".join(f"d.o[{_N_DECISION_FIELDS + 1 + len(OUTPUT_CALL_ID) + i}]" for i in range(len(OUTPUT_TOOL)))}) AS pname,
       {_decision_sql('d.v', 'd.o')} AS decision, p.enter
FROM (SELECT e.*, CASE WHEN json_valid(e.out) AND json_type(e.out) = 'OBJECT'
                       THEN json_extract_string(e.out, {_FIELD_PATHS}) END AS o
      FROM (SELECT s.rowid AS srow, s.span_id, s.tool_call_id AS pid, s.tool_name AS pname,
                   json_extract_string(s.attributes, {_DECISION_PATHS}) AS v,
                   {_OUTPUT_SQL} AS out
            FROM span_store s WHERE s.role = 'policy') e) d
JOIN _trust_pos p ON p.srow = d.srow;

-- The latest decision before each tool that concerns it: same call id; else (a call id missing
-- on either side) same tool name; a decision naming neither concerns every tool.
CREATE OR REPLACE TEMP TABLE _trust_guard AS
WITH q AS (
    SELECT t.pos, p.span_id AS pspan, p.enter AS penter, p.decision
    FROM _trust_tool t ASOF JOIN _trust_pol p
      ON p.trace_no = t.trace_no AND p.pid = t.tool_call_id AND t.enter > p.enter
    UNION ALL
    SELECT t.pos, p.span_id, p.enter, p.decision
    FROM (SELECT * FROM _trust_tool WHERE tool_call_id IS NOT NULL) t
    ASOF JOIN (SELECT * FROM _trust_pol WHERE pid IS NULL) p
      ON p.trace_no = t.trace_no AND p.pname = t.tool_name AND t.enter > p.enter
    UNION ALL
    SELECT t.pos, p.span_id, p.enter, p.decision
    FROM (SELECT * FROM _trust_tool WHERE tool_call_id IS NULL) t ASOF JOIN _trust_pol p
      ON p.trace_no = t.trace_no AND p.pname = t.tool_name AND t.enter > p.enter
    UNION ALL
    SELECT t.pos, p.span_id, p.enter, p.decision
    FROM _trust_tool t ASOF JOIN (SELECT * FROM _trust_pol WHERE pid IS NULL AND pname IS NULL) p
      ON p.trace_no = t.trace_no AND t.enter > p.enter
)
SELECT pos, arg_max(pspan, penter) AS pspan, max(penter) AS penter, arg_max(decision, penter) AS decision
FROM q GROUP BY pos;

-- Untrusted content: retrieval steps, calls into external zones, spans entered from one.
CREATE OR REPLACE TEMP TABLE _trust_src AS
SELECT p.trace_no, p.enter, p.exit, s.span_id, 'retrieval' AS source_kind, z.zone AS source_zone
FROM span_store s POSITIONAL JOIN _trust_pos p JOIN _trust_res z ON z.resource_id = s.resource_id
WHERE s.role = 'retrieval'
UNION ALL
SELECT x.trace_no, p.enter, p.exit, x.parent_span_id, 'external', x.to_zone
FROM trust_crossing_store x JOIN _trust_pos p ON p.pos = x.anchor_pos
WHERE x.crossing = 'peer' AND x.to_kind = 'external'
UNION ALL
SELECT x.trace_no, p.enter, p.exit, x.child_span_id, 'external', x.from_zone
FROM trust_crossing_store x JOIN _trust_pos p ON p.pos = x.to_pos
WHERE x.crossing = 'call' AND x.from_kind = 'external';

CREATE OR REPLACE TEMP TABLE _trust_llm AS
SELECT p.trace_no, p.enter, p.exit, s.span_id FROM span_store s POSITIONAL JOIN _trust_pos p
WHERE s.role = 'llm';

CREATE OR REPLACE TEMP TABLE _trust_egress AS
SELECT x.trace_id, x.parent_span_id, x.from_zone, x.to_zone, x.to_kind, x.peer, x.protocol, x.trace_no,
       x.anchor_pos
FROM trust_crossing_store x
WHERE x.crossing IN ('peer', 'call') AND x.from_kind = 'internal' AND x.to_kind IN ('external', 'provider');
"""

_FINDINGS = """
-- unguarded_tool_call / denied_tool_executed
SELECT CASE WHEN g.pspan IS NULL THEN 'unguarded_tool_call' ELSE 'denied_tool_executed' END,
       CASE WHEN g.pspan IS NOT NULL THEN 'critical' WHEN t.privileged THEN 'high' ELSE 'medium' END,
       t.trace_id, t.span_id,
       CASE WHEN g.pspan IS NULL
            THEN 'tool ' || coalesce(t.tool_name, '?') || ' ran with no policy or guardrail decision before it'
            ELSE 'tool ' || coalesce(t.tool_name, '?') || ' ran after policy span ' || g.pspan || ' denied it'
       END,
       json_object('tool_name', t.tool_name, 'tool_call_id', t.tool_call_id, 'privileged', t.privileged,
                   'zone', t.zone, 'policy_span_id', g.pspan, 'decision', g.decision)
FROM _trust_tool t LEFT JOIN _trust_guard g ON g.pos = t.pos
WHERE g.pspan IS NULL OR g.decision = 'deny'
UNION ALL
-- external_egress / provider_egress
SELECT CASE WHEN e.to_kind = 'provider' THEN 'provider_egress' ELSE 'external_egress' END,
       CASE WHEN e.to_kind = 'provider' THEN 'info' ELSE 'medium' END,
       e.trace_id, e.parent_span_id,
       CASE WHEN e.to_kind = 'provider' THEN 'model call to ' || e.to_zone
            ELSE 'call leaves the organisation to ' || e.to_zone END,
       json_object('from_zone', e.from_zone, 'to_zone', e.to_zone, 'peer', e.peer, 'protocol', e.protocol)
FROM _trust_egress e
UNION ALL
-- untrusted_input_to_privileged_tool
SELECT 'untrusted_input_to_privileged_tool', 'high', t.trace_id, t.span_id,
       s.source_kind || ' content (span ' || s.span_id || ') reaches LLM call ' || l.span_id
           || ' whose output triggers privileged tool ' || coalesce(t.tool_name, '?')
           || ' with no policy decision in between',
       json_object('path', [s.span_id, l.span_id, t.span_id], 'source_kind', s.source_kind,
                   'source_zone', s.source_zone, 'tool_name', t.tool_name, 'tool_call_id', t.tool_call_id)
FROM (SELECT * FROM _trust_tool WHERE privileged) t
ASOF JOIN _trust_llm l ON l.trace_no = t.trace_no AND t.enter > l.exit
ASOF JOIN _trust_src s ON s.trace_no = l.trace_no AND l.enter > s.exit
LEFT JOIN _trust_guard g ON g.pos = t.pos
WHERE g.pspan IS NULL OR g.penter < s.enter
UNION ALL
-- plaintext_crossing
SELECT 'plaintext_crossing',
       CASE WHEN x.to_kind <> 'internal' OR x.from_kind <> 'internal' THEN 'high' ELSE 'low' END,
       x.trace_id, coalesce(x.parent_span_id, x.child_span_id),
       'plaintext http:// from zone ' || x.from_zone || ' to ' || x.to_zone,
       json_object('from_zone', x.from_zone, 'to_zone', x.to_zone, 'peer', x.peer, 'crossing', x.crossing)
FROM trust_crossing_store x
WHERE x.scheme = 'http' AND (x.peer IS NULL OR x.peer NOT IN (SELECT host FROM _trust_exempt))
"""

_ANONYMOUS = """
WITH actions AS (
    SELECT t.trace_no, t.enter, t.span_id, 'privileged_tool' AS action, t.tool_name AS name
    FROM _trust_tool t SEMI JOIN _trust_anon USING (trace_no) WHERE t.privileged
    UNION ALL
    SELECT e.trace_no, p.enter, e.parent_span_id, 'external_call', e.to_zone
    FROM _trust_egress e SEMI JOIN _trust_anon USING (trace_no) JOIN _trust_pos p ON p.pos = e.anchor_pos
    WHERE e.to_kind = 'external'
), per AS (
    SELECT a.trace_no, arg_min(a.span_id, a.enter) AS first_span,
           count(*) FILTER (WHERE action = 'privileged_tool') AS privileged_tools,
           count(*) FILTER (WHERE action = 'external_call') AS external_calls,
           list({'span_id': a.span_id, 'action': a.action, 'name': a.name} ORDER BY a.enter)[1:20] AS sample
    FROM actions a GROUP BY a.trace_no
)
SELECT 'anonymous_privileged_action',
       CASE WHEN per.privileged_tools > 0 THEN 'high' ELSE 'medium' END,
       tr.trace_id, per.first_span,
       'workflow without end-user identity runs ' || per.privileged_tools || ' privileged tool call(s) and '
           || per.external_calls || ' external call(s)',
       json_object('privileged_tools', per.privileged_tools, 'external_calls', per.external_calls,
                   'actions', to_json(per.sample))
FROM per JOIN _trust_tr tr USING (trace_no)
"""

_EXEMPT = """
CREATE OR REPLACE TEMP TABLE _trust_exempt AS
SELECT DISTINCT x.peer AS host FROM trust_crossing_store x
WHERE x.scheme = 'http' AND x.peer IS NOT NULL
  AND EXISTS (SELECT 1 FROM _trust_pat q WHERE q.list IN ('loopback', 'plaintext_exempt') AND x.peer GLOB q.pattern)
"""


def insert_findings(con: duckdb.DuckDBPyConnection) -> None:
    """Build the rule tables and append every trust finding to ``finding_store``."""
    con.execute(_TOOLS)
    con.execute(_EXEMPT)
    write_findings(con, "trust", _FINDINGS)
    write_findings(con, "trust", _ANONYMOUS)
    for table in ("_trust_priv", "_trust_tool0", "_trust_tool", "_trust_pol", "_trust_guard", "_trust_src",
                  "_trust_llm", "_trust_egress", "_trust_exempt"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
