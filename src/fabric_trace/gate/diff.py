"""Structural diff of two sides: what calls what, how often, and which findings exist.

Sections (docs/ci.md, "Structural diff"):

* ``role`` edges: caller role -> callee role along the span tree, looking
  through transport spans (``http``/``rpc`` CLIENT and SERVER hops), e.g.
  ``agent -> policy``;
* ``service`` edges: a span whose parent runs in another service;
* ``peer`` edges: service -> peer for CLIENT/PRODUCER spans whose peer is
  not instrumented (no SERVER/CONSUMER child), e.g. a new external API;
* ``region`` edges: parent and child span in different ``cloud.region``s;
* ``trust`` crossings: from the trust analyzer's tables, when present;
* ``calls`` per trace by role, and retries per trace, within each workflow;
* ``findings``: finding kinds present on one side only.

An edge, crossing or finding kind is *added* when the baseline never shows
it and *removed* when the candidate never does. Whether that is more than
chance is tested on the share of traces that show it (Fisher's exact test;
a rare edge seen in 1 of 60 traces is not a signal). Calls per trace are
compared with Mann-Whitney U plus a practical threshold. All tests of one
diff form one family, Holm-adjusted at ``alpha``.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

from fabric_trace.analyzers.trust.config import DEFAULT_INTERNAL_DOMAINS, LOOPBACK
from fabric_trace.gate import stats
from fabric_trace.gate.budgets import GUARDRAIL_ROLES, SEVERITIES
from fabric_trace.gate.metrics import SideMetrics, table_names

#: Roles that only carry a call (looked through by role edges).
TRANSPORT_ROLES = ("http", "rpc")

#: Practical threshold of a calls-per-trace change: relative, and absolute (calls per trace).
CALLS_RELATIVE = 0.10
CALLS_ABSOLUTE = 0.25
RETRIES_ABSOLUTE = 0.1

_EDGE_SECTIONS = ("role", "service", "peer", "egress", "region", "trust")


@dataclass(frozen=True)
class DiffItem:
    """One structural element compared between the sides."""

    section: str
    """``role``, ``service``, ``peer``, ``region``, ``trust``, ``calls`` or ``findings``."""
    label: str
    """E.g. ``agent -> policy`` or ``agent-orchestrator -> api.weather.example.com``."""
    baseline_traces: int
    """Baseline traces showing it."""
    candidate_traces: int
    baseline_count: float
    """Occurrences in the baseline (calls: total calls)."""
    candidate_count: float
    baseline_per_trace: float
    candidate_per_trace: float
    change: str
    """``added``, ``removed``, ``increased``, ``decreased`` or ``unchanged``."""
    p_value: float | None = None
    p_adjusted: float | None = None
    significant: bool = False
    """Tested, beyond the practical threshold and ``p_adjusted < alpha``."""
    severity: str | None = None
    """For finding kinds: the highest severity seen."""
    workflow: str | None = None
    """For calls: the workflow compared."""
    role: str | None = None
    """For calls: the role (or ``retries``)."""
    practical: bool = True
    """For calls: the change exceeds the practical threshold (presence changes always do)."""

    @property
    def guardrail(self) -> bool:
        """A role edge into a guardrail role (``agent -> policy``)."""
        return self.section == "role" and self.label.rsplit(" -> ", 1)[-1] in GUARDRAIL_ROLES

    @property
    def category(self) -> str:
        """The gate category, e.g. ``peer_added``, ``calls_decreased``, ``finding_kind_added``."""
        section = {"trust": "trust_crossing", "findings": "finding_kind"}.get(self.section, self.section)
        return f"{section}_{self.change}"

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "section": self.section, "label": self.label, "change": self.change, "category": self.category,
            "baseline_traces": self.baseline_traces, "candidate_traces": self.candidate_traces,
            "baseline_count": self.baseline_count, "candidate_count": self.candidate_count,
            "baseline_per_trace": _round(self.baseline_per_trace), "candidate_per_trace": _round(self.candidate_per_trace),
            "p_value": _round(self.p_value), "p_adjusted": _round(self.p_adjusted),
            "significant": self.significant, "severity": self.severity,
            "workflow": self.workflow, "role": self.role,
        }


@dataclass
class StructuralDiff:
    """The whole diff."""

    baseline_traces: int
    candidate_traces: int
    items: list[DiffItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def changes(self) -> list[DiffItem]:
        """Items that differ (added, removed, increased, decreased), in display order."""
        return [i for i in self.items if i.change != "unchanged"]

    def by_category(self, category: str, *, min_traces: int = 1) -> list[DiffItem]:
        """Changed items of one category whose side shows them in at least ``min_traces`` traces."""
        out = []
        for item in self.items:
            if category == "guardrail_removed":
                if not (item.guardrail and item.change == "removed"):
                    continue
            elif item.category != category:
                continue
            shown = item.candidate_traces if item.change in ("added", "increased") else item.baseline_traces
            if shown >= min_traces:
                out.append(item)
        return out


def _round(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.6g}")


@dataclass
class TraceEdges:
    """Every edge of one store, per trace: row ``k`` says trace ``trace_id[k]`` (index ``trace_index[k]`` in
    the side's traces, -1 when not among them) shows edge ``(section[k], label[k])`` ``count[k]`` times."""

    trace_id: list[str | None]
    trace_index: np.ndarray
    section: list[str]
    label: list[str]
    count: np.ndarray

    def counts(self, traces: np.ndarray | None = None) -> dict[tuple[str, str], tuple[int, int]]:
        """(section, label) -> (traces showing it, occurrences), over every trace or the ``traces`` mask."""
        seen: dict[tuple[str, str], tuple[set[str], int]] = {}
        for k, key in enumerate(zip(self.section, self.label)):
            if traces is not None and (self.trace_index[k] < 0 or not traces[self.trace_index[k]]):
                continue
            ids, total = seen.get(key, (set(), 0))
            if self.trace_id[k] is not None:
                ids.add(self.trace_id[k])  # type: ignore[arg-type]
            seen[key] = (ids, total + int(self.count[k]))
        return {key: (len(ids), total) for key, (ids, total) in seen.items()}


def edge_counts(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], tuple[int, int]]:
    """(section, label) -> (traces showing it, occurrences) for every edge of one store."""
    return trace_edges(con).counts()


def trace_edges(con: duckdb.DuckDBPyConnection) -> TraceEdges:
    """Every edge of one store, per trace (see :class:`TraceEdges`)."""
    transport = ", ".join(f"'{r}'" for r in TRANSPORT_ROLES)
    sql = f"""
    WITH s AS (SELECT trace_id, span_id, parent_span_id, role, service_name, region, kind, peer FROM span_store),
    role_edges AS (
        SELECT c.trace_id,
            CASE WHEN p1.span_id IS NULL THEN NULL
                 WHEN p1.role NOT IN ({transport}) THEN p1.role
                 WHEN p2.span_id IS NULL THEN NULL
                 WHEN p2.role NOT IN ({transport}) THEN p2.role
                 WHEN p3.span_id IS NULL THEN NULL
                 WHEN p3.role NOT IN ({transport}) THEN p3.role
                 WHEN p4.span_id IS NULL THEN NULL
                 WHEN p4.role NOT IN ({transport}) THEN p4.role
            END AS src,
            c.role AS dst
        FROM s c
        LEFT JOIN s p1 ON p1.trace_id = c.trace_id AND p1.span_id = c.parent_span_id
        LEFT JOIN s p2 ON p2.trace_id = c.trace_id AND p2.span_id = p1.parent_span_id
        LEFT JOIN s p3 ON p3.trace_id = c.trace_id AND p3.span_id = p2.parent_span_id
        LEFT JOIN s p4 ON p4.trace_id = c.trace_id AND p4.span_id = p3.parent_span_id
        WHERE c.parent_span_id IS NOT NULL AND c.role NOT IN ({transport})
    ),
    edges AS (
        SELECT trace_id, 'role' AS section, src || ' -> ' || dst AS label FROM role_edges WHERE src IS NOT NULL
        UNION ALL
        SELECT c.trace_id, 'service', coalesce(p.service_name, '?') || ' -> ' || coalesce(c.service_name, '?')
        FROM s c JOIN s p ON p.trace_id = c.trace_id AND p.span_id = c.parent_span_id
        WHERE c.service_name IS DISTINCT FROM p.service_name
        UNION ALL
        SELECT c.trace_id, 'peer', coalesce(c.service_name, '?') || ' -> ' || c.peer
        FROM s c
        WHERE c.kind IN ('CLIENT', 'PRODUCER') AND c.peer IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM s k WHERE k.trace_id = c.trace_id AND k.parent_span_id = c.span_id
                          AND k.kind IN ('SERVER', 'CONSUMER'))
        UNION ALL
        SELECT c.trace_id, 'egress',
               coalesce(c.service_name, '?') || ' (' || coalesce(CASE WHEN c.role IN ({transport})
                   THEN coalesce(p.role, c.role) ELSE c.role END, '?') || ') -> ' || c.peer
        FROM s c LEFT JOIN s p ON p.trace_id = c.trace_id AND p.span_id = c.parent_span_id
        WHERE c.kind IN ('CLIENT', 'PRODUCER') AND c.peer IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM s k WHERE k.trace_id = c.trace_id AND k.parent_span_id = c.span_id
                          AND k.kind IN ('SERVER', 'CONSUMER'))
        UNION ALL
        SELECT c.trace_id, 'region',
               coalesce(p.service_name, '?') || ' (' || p.region || ') -> '
               || coalesce(c.service_name, '?') || ' (' || c.region || ')'
        FROM s c JOIN s p ON p.trace_id = c.trace_id AND p.span_id = c.parent_span_id
        WHERE c.region IS NOT NULL AND p.region IS NOT NULL AND c.region <> p.region
    )
    SELECT section, label, trace_id, count(*) FROM edges GROUP BY ALL ORDER BY ALL
    """
    rows = [tuple(r) for r in con.execute(sql).fetchall()
            if r[0] != "egress" or external_host(r[1].rsplit(" -> ", 1)[-1])] + _trust_crossings(con)
    index = {r[0]: i for i, r in enumerate(con.execute("SELECT trace_id FROM traces ORDER BY trace_id").fetchall())}
    return TraceEdges(
        trace_id=[r[2] for r in rows],
        trace_index=np.array([index.get(r[2], -1) for r in rows], dtype=np.int64),
        section=[r[0] for r in rows], label=[r[1] for r in rows],
        count=np.array([int(r[3]) for r in rows], dtype=np.int64),
    )


def external_host(host: str) -> bool:
    """Whether ``host`` (a span's peer, maybe with a port) is outside the organisation: not a cluster or
    private name (the trust analyzer's default internal domains) and not loopback."""
    name = host.strip().lower()
    if name.startswith("[") and "]" in name:
        name = name[1:name.index("]")]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if "." not in name and ":" not in name:
        return False  # a bare service name resolves inside the cluster
    return not any(fnmatch.fnmatchcase(name, pattern) for pattern in (*DEFAULT_INTERNAL_DOMAINS, *LOOPBACK))


def _trust_crossings(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    """Trust-zone crossings per trace, from the trust analyzer's ``trust_crossings`` table when it exists:
    rows of (``trust``, label, trace id, occurrences)."""
    names = table_names(con)
    if "trust_crossings" not in names:
        return []
    cols = {r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = 'trust_crossings'").fetchall()}
    pair = next(((a, b) for a, b in (("from_zone", "to_zone"), ("src_zone", "dst_zone"), ("source_zone", "target_zone"))
                 if {a, b} <= cols), None)
    if pair is None or "trace_id" not in cols:
        return []
    label = f"{pair[0]} || ' -> ' || {pair[1]}"
    if "to_kind" in cols:
        label += " || coalesce(' (' || to_kind || ')', '')"
    rows = con.execute(
        f"SELECT 'trust', {label}, trace_id, count(*) FROM trust_crossings "
        f"WHERE {pair[0]} IS DISTINCT FROM {pair[1]} GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    return [tuple(r) for r in rows if r[1] is not None]


def structural_diff(
    base: SideMetrics,
    cand: SideMetrics,
    base_edges: dict[tuple[str, str], tuple[int, int]],
    cand_edges: dict[tuple[str, str], tuple[int, int]],
    *,
    alpha: float = 0.01,
    correction: str = "holm",
) -> StructuralDiff:
    """Compare the two sides' structure (edges, calls per trace, finding kinds)."""
    diff = StructuralDiff(base.n, cand.n)
    pending: list[dict[str, Any]] = []
    for key in sorted(set(base_edges) | set(cand_edges), key=lambda k: (_EDGE_SECTIONS.index(k[0]), k[1])):
        bt, bc = base_edges.get(key, (0, 0))
        ct, cc = cand_edges.get(key, (0, 0))
        pending.append(_presence_item(key[0], key[1], bt, bc, ct, cc, base.n, cand.n))
    # calls per trace are compared within each workflow: the workflow mix of two runs varies, and
    # workflows differ in how many calls they make, so a pooled comparison would flag the mix.
    for workflow in sorted(set(base.workflows()) | set(cand.workflows())):
        mb, mc = base.mask((workflow,)), cand.mask((workflow,))
        for role in sorted(set(base.calls) | set(cand.calls)):
            pending.append(_calls_item(workflow, role, base.calls_of(role)[mb], cand.calls_of(role)[mc],
                                       CALLS_ABSOLUTE))
        pending.append(_calls_item(workflow, "retries", base.retries[mb], cand.retries[mc], RETRIES_ABSOLUTE))
    for (analyzer, kind), (bt, bc, ct, cc, sev) in sorted(_finding_kinds(base, cand).items()):
        item = _presence_item("findings", f"{analyzer}:{kind}", bt, bc, ct, cc, base.n, cand.n)
        item["severity"] = sev
        pending.append(item)

    tested = [i for i, item in enumerate(pending) if item["p_value"] is not None]
    adjusted = stats.adjust([pending[i]["p_value"] for i in tested], correction)
    for i, p_adj in zip(tested, adjusted):
        pending[i]["p_adjusted"] = p_adj
        pending[i]["significant"] = bool(pending[i].get("practical", True)) and p_adj < alpha
    for item in pending:
        diff.items.append(DiffItem(**item))
    if "trust" not in base.capabilities or "trust" not in cand.capabilities:
        diff.notes.append("trust crossings not compared: the trust analyzer's tables are missing on "
                          + _missing_sides(base, cand, "trust"))
    return diff


def _missing_sides(base: SideMetrics, cand: SideMetrics, cap: str) -> str:
    sides = [s.label for s in (base, cand) if cap not in s.capabilities]
    return " and ".join(sides) if sides else "neither side"


def _presence_item(section: str, label: str, bt: int, bc: float, ct: int, cc: float,
                   bn: int, cn: int) -> dict[str, Any]:
    item: dict[str, Any] = {
        "section": section, "label": label, "baseline_traces": bt, "candidate_traces": ct,
        "baseline_count": bc, "candidate_count": cc,
        "baseline_per_trace": bc / bn if bn else math.nan, "candidate_per_trace": cc / cn if cn else math.nan,
        "change": "unchanged", "p_value": None,
    }
    if bt == 0 and ct > 0:
        item["change"] = "added"
        item["p_value"] = stats.fisher(bt, bn, ct, cn, "greater").p_value
    elif ct == 0 and bt > 0:
        item["change"] = "removed"
        item["p_value"] = stats.fisher(bt, bn, ct, cn, "less").p_value
    return item


def _calls_item(workflow: str, role: str, b: np.ndarray, c: np.ndarray, absolute: float) -> dict[str, Any]:
    bm = float(b.mean()) if len(b) else math.nan
    cm = float(c.mean()) if len(c) else math.nan
    delta = cm - bm
    item: dict[str, Any] = {
        "section": "calls", "label": f"{workflow}: {role}", "workflow": workflow, "role": role,
        "baseline_traces": int((b > 0).sum()), "candidate_traces": int((c > 0).sum()),
        "baseline_count": float(b.sum()), "candidate_count": float(c.sum()),
        "baseline_per_trace": bm, "candidate_per_trace": cm, "change": "unchanged", "p_value": None,
    }
    if not (len(b) and len(c)) or delta == 0 or (not b.any() and not c.any()):
        return item
    direction = "greater" if delta > 0 else "less"
    item["change"] = "increased" if delta > 0 else "decreased"
    item["p_value"] = stats.mann_whitney(b, c, direction).p_value
    item["practical"] = abs(delta) > max(CALLS_RELATIVE * abs(bm), absolute)
    return item


def _finding_kinds(base: SideMetrics, cand: SideMetrics) -> dict[tuple[str, str], tuple[int, float, int, float, str]]:
    """(analyzer, kind) -> (baseline traces, baseline count, candidate traces, candidate count, max severity)."""
    out: dict[tuple[str, str], list[Any]] = {}
    for side_index, side in enumerate((base, cand)):
        f = side.findings
        for ti, analyzer, kind, rank, count in zip(f.trace_index, f.analyzer, f.kind, f.severity_rank, f.count):
            entry = out.setdefault((analyzer, kind), [set(), 0.0, set(), 0.0, 0])
            entry[side_index * 2].add(int(ti) if ti >= 0 else -1)
            entry[side_index * 2 + 1] += float(count)
            entry[4] = max(entry[4], int(rank))
    return {
        key: (len(v[0] - {-1}) or (1 if v[0] else 0), v[1], len(v[2] - {-1}) or (1 if v[2] else 0), v[3], SEVERITIES[v[4]])
        for key, v in out.items()
    }
