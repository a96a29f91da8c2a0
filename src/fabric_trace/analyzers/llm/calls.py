"""One row per model call: the de-duplication rule (docs/llm.md, "One call, one row").

A *candidate* is a span that reports a model call (role ``llm``, ``embedding`` or
``rerank`` with a model, a token count, a GenAI operation or invocation
parameters). Several instrumentation layers can each emit a candidate for the
same call; they are folded into one call by two rules:

1. **Nesting.** A candidate inside another candidate (its ancestor) is the same
   call seen by a lower layer (LangChain's ``ChatOpenAI`` over the OpenAI SDK's
   ``ChatCompletion``; an SDK span over a lower SDK span). The top-most
   candidate is the call; the innermost candidates below it (the *leaves*) are
   its attempts::

       ChatOpenAI (LLM)            |------------------------------|   the call
         ChatCompletion (LLM)        |--x--|                          attempt 1 (error)
         ChatCompletion (LLM)                |------------------|     attempt 2

   Values come from the last successful leaf (the wire), then the top span.
   HTTP CLIENT spans under the wire spans (an SDK span over its HTTP requests) are
   not calls: each is an attempt (``attempts``: per attempt span, its HTTP CLIENT
   children, at least 1).
   Exception: when two or more leaves succeeded, the top span is a wrapper of
   several calls (a chain that reports their total), so each leaf is a call and
   the wrapper is dropped.
2. **Same call, two instrumentations.** Two calls of the same trace from
   different instrumentation scopes are one when one's time interval contains
   the other's, they are the same kind of call (role), their models agree (equal,
   or one a prefix of the other, or unreported) and they report the same input
   and output tokens, with at least one of them reported by both. The
   containing one is kept and its unreported values are filled from the other.

Walks are iterative (agent traces can be deep) and a parent cycle ends a walk.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

#: Values a call takes from its spans: the wire (last successful leaf) first, then the top span.
FILLED = ("provider", "operation", "request_model", "model", "input_tokens", "output_tokens", "cached_input_tokens",
          "reasoning_tokens", "ttft_ns", "user_id")


def _top_candidates(parent: dict[tuple[str, str], str | None], cands: set[tuple[str, str]]
                    ) -> dict[tuple[str, str], tuple[str, str]]:
    """For every candidate, the top-most candidate among itself and its ancestors."""
    top_above: dict[tuple[str, str], tuple[str, str] | None] = {}  # node -> top-most candidate among ancestors-or-self
    for start in cands:
        path: list[tuple[str, str]] = []
        on_path: set[tuple[str, str]] = set()
        node: tuple[str, str] | None = start
        known: tuple[str, str] | None = None
        while node is not None and node not in top_above and node not in on_path:
            path.append(node)
            on_path.add(node)
            p = parent.get(node)
            node = (node[0], p) if p is not None and (node[0], p) in parent else None
        if node is not None and node in top_above:
            known = top_above[node]
        for n in reversed(path):  # from the top down
            if known is None and n in cands:
                known = n
            top_above[n] = known
    return {c: top_above[c] or c for c in cands}


def _merge_into(call: dict[str, Any], other: dict[str, Any]) -> None:
    for k in FILLED:
        if call.get(k) is None and other.get(k) is not None:
            call[k] = other[k]


def _fold(top: dict[str, Any], leaves: list[dict[str, Any]], http: dict[tuple[str, str], int]) -> dict[str, Any]:
    """One call from a top span and the leaves of the layers below it (``http``: HTTP CLIENT children
    per span, each an attempt on the wire)."""
    call = dict(top)
    call["span_ids"] = sorted({top["span_id"], *(x["span_id"] for x in leaves)})
    call["attempts"] = sum(max(1, http.get((x["trace_id"], x["span_id"]), 0)) for x in (leaves or [top]))
    if not leaves:
        return call
    leaves = sorted(leaves, key=lambda x: (x["end_ns"], x["start_ns"], x["span_id"]))
    ok = [x for x in leaves if x["status_code"] != "ERROR"]
    wire = ok[-1] if ok else leaves[-1]
    merged = {k: wire.get(k) for k in FILLED}
    _merge_into(merged, top)
    call.update(merged)
    if top["status_code"] != "ERROR" and not ok:
        call["status_code"], call["error_type"] = "ERROR", top.get("error_type") or wire.get("error_type")
    elif call["status_code"] == "ERROR" and call.get("error_type") is None:
        call["error_type"] = wire.get("error_type")
    return call


def _models_agree(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return True
    a, b = a.lower(), b.lower()
    return a.startswith(b) or b.startswith(a)


def _same_call(outer: dict[str, Any], inner: dict[str, Any]) -> bool:
    if outer["scope_id"] == inner["scope_id"] or outer["role"] != inner["role"]:
        return False
    if not (outer["start_ns"] <= inner["start_ns"] and inner["end_ns"] <= outer["end_ns"]):
        return False
    if not _models_agree(outer.get("model"), inner.get("model")):
        return False
    both = 0
    for k in ("input_tokens", "output_tokens"):
        x, y = outer.get(k), inner.get(k)
        if x is not None and y is not None:
            if x != y:
                return False
            both += 1
    return both > 0


def _cross_layer(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rule 2: fold calls of one trace that two instrumentations reported (see the module docstring)."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for c in calls:
        groups[(c["trace_id"], c["role"], c.get("input_tokens"), c.get("output_tokens"))].append(c)
    dropped: set[int] = set()
    for group in groups.values():
        if len(group) < 2:
            continue
        group.sort(key=lambda c: (c["end_ns"] - c["start_ns"], c["span_id"]))
        for i, inner in enumerate(group):  # shortest first: each joins the shortest call containing it
            if id(inner) in dropped:
                continue
            for outer in group[i + 1:]:
                if id(outer) not in dropped and _same_call(outer, inner):
                    _merge_into(outer, inner)
                    outer["span_ids"] = sorted({*outer["span_ids"], *inner["span_ids"]})
                    outer["attempts"] = max(outer["attempts"], inner["attempts"])
                    dropped.add(id(inner))
                    break
    return [c for c in calls if id(c) not in dropped]


def fold_calls(spans: list[tuple[str, str, str | None]], cands: list[dict[str, Any]],
               http: dict[tuple[str, str], int] | None = None) -> list[dict[str, Any]]:
    """The calls of a partition: ``spans`` is every (trace_id, span_id, parent_span_id); ``cands``
    the candidate rows (dicts with the columns of ``derive._candidates_sql``); ``http`` the number of
    HTTP CLIENT children per (trace_id, span_id). Returns one dict per call (the top span's columns,
    filled values, ``span_ids`` and ``attempts``)."""
    http = http or {}
    parent = {(t, s): p for t, s, p in spans}
    by_key = {(c["trace_id"], c["span_id"]): c for c in cands}
    tops = _top_candidates(parent, set(by_key))
    below: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    has_inner: set[tuple[str, str]] = set()
    for key, top in tops.items():
        if key != top:
            below[top].append(key)
            p = parent.get(key)
            has_inner.add(top)
            # the nearest candidate ancestor of a candidate is not a leaf
            node, seen = key, {key}
            while p is not None and (key[0], p) not in seen:
                node = (key[0], p)
                seen.add(node)
                if node in by_key:
                    has_inner.add(node)
                    break
                p = parent.get(node)
    calls: list[dict[str, Any]] = []
    for key, top in tops.items():
        if key != top:
            continue
        leaves = [by_key[k] for k in below.get(key, []) if k not in has_inner]
        ok = [x for x in leaves if x["status_code"] != "ERROR"]
        if len(ok) >= 2:  # a wrapper of several calls: each leaf is a call
            calls.extend(_fold(x, [], http) for x in leaves)
        else:
            calls.append(_fold(by_key[key], leaves, http))
    return _cross_layer(calls)
