"""Per-trace samples of one side (baseline or candidate), read from the derived tables.

:func:`load_side` runs a handful of set-based queries over the views the
analyzers maintain (``traces``, ``critical_path``, ``findings``, the locality
tables when present) and the span store, and returns a :class:`SideMetrics`:
numpy arrays aligned on the side's traces (ordered by trace id). Everything
the checks and the structural diff compare is a function of these arrays.

Definitions (docs/ci.md, "Metrics"):

* a *call* of role R is a span of role R whose parent is not of role R (a
  CLIENT -> SERVER -> handler chain of one retrieval counts once);
* LLM calls and tokens are read from the llm analyzer's ``llm_calls`` view
  (docs/llm.md): each model call once, however many instrumentation layers
  reported it (LangChain's ``ChatOpenAI`` over the OpenAI SDK's span is one
  call, not two); tokens are its input + output tokens;
* a *retry* is a span whose previous sibling of the same name (same parent)
  ended in ERROR before it started;
* critical-path time of a role is the sum of the critical-path segments
  attributed to spans of that role.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import numpy as np

from fabric_trace.gate.budgets import SEVERITIES

#: Workflow label of traces whose workflow is unknown.
NO_WORKFLOW = "(none)"

_INDEX_CTE = "WITH t AS (SELECT trace_id, row_number() OVER (ORDER BY trace_id) - 1 AS i FROM traces)"


@dataclass
class Findings:
    """The side's findings, one row per (trace, analyzer, kind, severity) with a count."""

    trace_index: np.ndarray
    """Index into the side's traces; -1 for a finding that names no (known) trace."""
    analyzer: np.ndarray
    kind: np.ndarray
    severity_rank: np.ndarray
    """Position in :data:`~fabric_trace.gate.budgets.SEVERITIES` (unknown severities rank 0)."""
    count: np.ndarray


@dataclass
class SideMetrics:
    """Everything the gate reads from one side, aligned on its traces."""

    label: str
    source: str
    workflow: np.ndarray
    duration_ms: np.ndarray
    has_error: np.ndarray
    incomplete: int
    cp_ns: dict[str, np.ndarray]
    """Critical-path ns per trace, by role (roles with some critical-path time only)."""
    calls: dict[str, np.ndarray]
    """Calls per trace, by role."""
    llm_tokens: np.ndarray
    """Input + output tokens per trace, of the llm analyzer's ``llm_calls`` (zeros without its tables)."""
    retries: np.ndarray
    findings: Findings
    llm_calls: np.ndarray | None = None
    """Model calls per trace: rows of the llm analyzer's ``llm_calls`` (``None``: zeros, e.g. without its
    tables)."""
    declared: dict[str, tuple[np.ndarray, np.ndarray | None]] = field(default_factory=dict)
    """The metrics the analyzer registry declares, per trace: name -> (values, ``None``) for kinds ``sample``
    and ``proportion``, (num, den) for ``ratio``; only those whose analyzer's tables this side has."""
    capabilities: frozenset[str] = field(default_factory=frozenset)
    """Registered analyzers whose tables this side has (``latency``, ``locality``, ``trust`` ...)."""
    incomplete_flags: np.ndarray | None = None
    """Per trace: incomplete (``incomplete`` counts them)."""

    def subset(self, traces: np.ndarray) -> SideMetrics:
        """The same side restricted to the traces of the boolean mask ``traces`` (findings that name no
        trace are left out)."""
        keep = np.asarray(traces, dtype=bool)
        new_index = np.cumsum(keep) - 1
        f = self.findings
        rows = (f.trace_index >= 0) & keep[np.clip(f.trace_index, 0, None)] if len(f.trace_index) else \
            np.zeros(0, dtype=bool)
        flags = self.incomplete_flags[keep] if self.incomplete_flags is not None else None
        return SideMetrics(
            label=self.label, source=self.source, workflow=self.workflow[keep], duration_ms=self.duration_ms[keep],
            has_error=self.has_error[keep], incomplete=int(flags.sum()) if flags is not None else 0,
            cp_ns={r: a[keep] for r, a in self.cp_ns.items() if a[keep].any()},
            calls={r: a[keep] for r, a in self.calls.items()},
            llm_tokens=self.llm_tokens[keep], retries=self.retries[keep],
            llm_calls=self.llm_calls[keep] if self.llm_calls is not None else None,
            findings=Findings(new_index[f.trace_index[rows]], f.analyzer[rows], f.kind[rows], f.severity_rank[rows],
                              f.count[rows]),
            declared={k: (v[keep], d[keep] if d is not None else None) for k, (v, d) in self.declared.items()},
            capabilities=self.capabilities, incomplete_flags=flags,
        )

    @property
    def n(self) -> int:
        """Number of traces."""
        return len(self.workflow)

    def workflows(self) -> list[str]:
        """The workflows present, sorted."""
        return sorted(set(self.workflow.tolist()))

    def mask(self, workflows: tuple[str, ...] | None) -> np.ndarray:
        """Boolean mask of the traces of ``workflows`` (``None`` = all traces)."""
        if workflows is None:
            return np.ones(self.n, dtype=bool)
        return np.isin(self.workflow, list(workflows))

    def zeros(self) -> np.ndarray:
        """A per-trace array of zeros."""
        return np.zeros(self.n, dtype=float)

    def cp_ms(self, role: str) -> np.ndarray:
        """Critical-path ms of ``role`` per trace (0 where the role is absent)."""
        ns = self.cp_ns.get(role)
        return ns / 1e6 if ns is not None else self.zeros()

    def calls_of(self, role: str) -> np.ndarray:
        """Calls of ``role`` per trace."""
        return self.calls.get(role, self.zeros())

    def finding_kind_counts(self, kind: str) -> np.ndarray:
        """Per-trace count of findings of ``kind`` (any analyzer, any severity)."""
        return self.findings_per_trace(None, (kind,), None)

    def findings_per_trace(self, analyzer: str | None, kinds: tuple[str, ...] | None,
                           min_severity: str | None) -> np.ndarray:
        """Per-trace count of the findings that match the filter."""
        f = self.findings
        keep = f.trace_index >= 0
        if analyzer is not None:
            keep &= f.analyzer == analyzer
        if kinds is not None:
            keep &= np.isin(f.kind, list(kinds))
        if min_severity is not None:
            keep &= f.severity_rank >= SEVERITIES.index(min_severity)
        return np.bincount(f.trace_index[keep], weights=f.count[keep], minlength=self.n).astype(float)

    def findings_total(self, analyzer: str | None, kinds: tuple[str, ...] | None, min_severity: str | None,
                       traces: np.ndarray) -> float:
        """Count of matching findings in the selected traces (``traces`` is a mask), plus trace-less ones
        when every trace is selected."""
        per_trace = float(self.findings_per_trace(analyzer, kinds, min_severity)[traces].sum())
        if not traces.all():
            return per_trace
        f = self.findings
        keep = f.trace_index < 0
        if analyzer is not None:
            keep &= f.analyzer == analyzer
        if kinds is not None:
            keep &= np.isin(f.kind, list(kinds))
        if min_severity is not None:
            keep &= f.severity_rank >= SEVERITIES.index(min_severity)
        return per_trace + float(f.count[keep].sum())

    def finding_kinds(self, analyzer: str | None, min_severity: str | None) -> set[str]:
        """Finding kinds present that match the filter."""
        f = self.findings
        keep = np.ones(len(f.kind), dtype=bool)
        if analyzer is not None:
            keep &= f.analyzer == analyzer
        if min_severity is not None:
            keep &= f.severity_rank >= SEVERITIES.index(min_severity)
        return set(f.kind[keep].tolist())


def table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Names of the tables and views of the main schema."""
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' "
        "UNION SELECT view_name FROM duckdb_views() WHERE schema_name = 'main' AND NOT internal"
    ).fetchall()
    return {r[0] for r in rows}


def capabilities(names: set[str]) -> frozenset[str]:
    """Which registered analyzers' tables exist (every derived table and view it declares)."""
    from fabric_trace.analyzers import registry

    caps = set()
    for analyzer in registry().values():
        owned = {*analyzer.tables, *analyzer.views}
        if owned and owned <= names:
            caps.add(analyzer.name)
    return frozenset(caps)


def load_side(con: duckdb.DuckDBPyConnection, label: str, source: str) -> SideMetrics:
    """Read the per-trace samples of one (refreshed) store."""
    names = table_names(con)
    rows = con.execute(
        "SELECT coalesce(workflow, ?), duration_ns, has_error, coalesce(incomplete, false) "
        "FROM traces ORDER BY trace_id", [NO_WORKFLOW]
    ).fetchall()
    n = len(rows)
    workflow = np.array([r[0] for r in rows], dtype=object)
    # a trace with no plausible span time has no duration (NaN): never averaged in as 0
    duration_ms = np.array([np.nan if r[1] is None else r[1] / 1e6 for r in rows], dtype=float)
    has_error = np.array([bool(r[2]) for r in rows], dtype=bool)
    incomplete_flags = np.array([bool(r[3]) for r in rows], dtype=bool)
    incomplete = int(incomplete_flags.sum())

    cp_ns = _by_role(con, n, f"""
        {_INDEX_CTE}
        SELECT t.i, coalesce(s.role, 'internal') AS role, sum(c.end_ns - c.start_ns)
        FROM critical_path c JOIN t USING (trace_id)
        LEFT JOIN span_store s ON s.trace_id = c.trace_id AND s.span_id = c.span_id
        GROUP BY ALL
    """)
    calls = _by_role(con, n, f"""
        {_INDEX_CTE}
        SELECT t.i, s.role, count(*)
        FROM span_store s JOIN t USING (trace_id)
        LEFT JOIN span_store p ON p.trace_id = s.trace_id AND p.span_id = s.parent_span_id
        WHERE p.role IS DISTINCT FROM s.role
        GROUP BY ALL
    """)
    caps = capabilities(names)
    llm_calls, llm_tokens = _llm_calls(con, n, caps)
    retries = _per_trace(con, n, f"""
        {_INDEX_CTE}
        SELECT t.i, count(*) FROM (
            SELECT trace_id, start_ns,
                   lag(status_code) OVER w AS prev_status, lag(end_ns) OVER w AS prev_end
            FROM span_store WHERE parent_span_id IS NOT NULL
            WINDOW w AS (PARTITION BY trace_id, parent_span_id, name ORDER BY start_ns, span_id)
        ) x JOIN t USING (trace_id)
        WHERE x.prev_status = 'ERROR' AND x.prev_end <= x.start_ns
        GROUP BY ALL
    """)
    findings = _findings(con, names)
    return SideMetrics(
        label=label, source=source, workflow=workflow, duration_ms=duration_ms, has_error=has_error,
        incomplete=incomplete, cp_ns=cp_ns, calls=calls, llm_tokens=llm_tokens, retries=retries,
        findings=findings, declared=_declared(con, n, caps), capabilities=caps, incomplete_flags=incomplete_flags,
        llm_calls=llm_calls,
    )


def _llm_calls(con: duckdb.DuckDBPyConnection, n: int, caps: frozenset[str]) -> tuple[np.ndarray, np.ndarray]:
    """Model calls and their input + output tokens per trace, from the llm analyzer's ``llm_calls`` view:
    one row per call across instrumentation layers (a span of role ``llm`` inside another is the same call
    seen by a lower layer, not a second call). Zeros when the store has no llm tables (the checks of these
    metrics then say so, :func:`~fabric_trace.gate.samples.missing_source`)."""
    if "llm" not in caps:
        return np.zeros(n, dtype=float), np.zeros(n, dtype=float)
    calls, tokens = np.zeros(n, dtype=float), np.zeros(n, dtype=float)
    for i, count, total in con.execute(f"""
        {_INDEX_CTE}
        SELECT t.i, count(*), sum(coalesce(c.input_tokens, 0) + coalesce(c.output_tokens, 0))
        FROM llm_calls c JOIN t USING (trace_id)
        GROUP BY ALL
    """).fetchall():
        calls[int(i)], tokens[int(i)] = float(count), float(total or 0)
    return calls, tokens


def _per_trace(con: duckdb.DuckDBPyConnection, n: int, sql: str) -> np.ndarray:
    out = np.zeros(n, dtype=float)
    for i, value in con.execute(sql).fetchall():
        out[int(i)] = float(value or 0)
    return out


def _by_role(con: duckdb.DuckDBPyConnection, n: int, sql: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for i, role, value in con.execute(sql).fetchall():
        arr = out.get(role)
        if arr is None:
            arr = out[role] = np.zeros(n, dtype=float)
        arr[int(i)] = float(value or 0)
    return {role: arr for role, arr in out.items() if arr.any()}


def _findings(con: duckdb.DuckDBPyConnection, names: set[str]) -> Findings:
    if "findings" not in names:
        empty = np.array([], dtype=object)
        return Findings(np.array([], dtype=np.int64), empty, empty, np.array([], dtype=np.int64),
                        np.array([], dtype=float))
    rows = con.execute(f"""
        {_INDEX_CTE}
        SELECT coalesce(t.i, -1), f.analyzer, f.kind, lower(f.severity), count(*)
        FROM findings f LEFT JOIN t USING (trace_id)
        GROUP BY ALL ORDER BY ALL
    """).fetchall()
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    return Findings(
        trace_index=np.array([int(r[0]) for r in rows], dtype=np.int64),
        analyzer=np.array([r[1] for r in rows], dtype=object),
        kind=np.array([r[2] for r in rows], dtype=object),
        severity_rank=np.array([rank.get(r[3], 0) for r in rows], dtype=np.int64),
        count=np.array([float(r[4]) for r in rows], dtype=float),
    )


def _declared(con: duckdb.DuckDBPyConnection, n: int, caps: frozenset[str]) -> dict[str, tuple[np.ndarray,
                                                                                                 np.ndarray | None]]:
    """Per-trace values of every metric the registered analyzers declare (``GateMetric.sql``), for the
    analyzers whose tables this store has; traces a query does not return count 0."""
    from fabric_trace.gate.budgets import registry_metrics

    out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for metric, _ in registry_metrics():
        if metric.source not in caps or metric.sql is None:
            continue
        ratio = metric.kind == "ratio"
        values, den = np.zeros(n, dtype=float), (np.zeros(n, dtype=float) if ratio else None)
        cols = "q.num, q.den" if ratio else "q.value, NULL"
        for i, v, d in con.execute(f"{_INDEX_CTE} SELECT t.i, {cols} FROM ({metric.sql}) q JOIN t USING (trace_id)"
                                   ).fetchall():
            values[int(i)] = float(v or 0)
            if den is not None:
                den[int(i)] = float(d or 0)
        out[metric.name] = (values, den)
    return out
