"""The cost of one call from the price table (docs/llm.md, "Cost").

``cost_usd = uncached input x input + cached input x cached_input + output x output`` (per 1M
tokens) ``+ per_call``. ``input_tokens`` includes the cached tokens (OTel GenAI and OpenAI count
them so); when a provider reports more cached than input tokens it counted them apart (Anthropic
style) and all ``input_tokens`` are uncached. Reasoning tokens are part of ``output_tokens`` and
are not charged twice. The cost is NULL, with a note, when the model has no price or a token count
the price needs is not reported; it is never estimated.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from fabric_trace.analyzers.llm.config import LlmSettings, Price

PER_MTOK = 1_000_000.0


def price_call(settings: LlmSettings, call: dict[str, Any]) -> tuple[float | None, str | None, str | None]:
    """``(cost_usd, cost_note, price entry's model)`` of one call."""
    model, provider = call.get("model"), call.get("provider")
    price = settings.match(model, provider) or settings.match(call.get("request_model"), provider)
    if price is None:
        if model is None and call.get("request_model") is None:
            return None, "model not reported", None
        where = f" ({provider})" if provider else ""
        return None, f"no price for model {model or call.get('request_model')}{where}", None
    inp, out, cached = call.get("input_tokens"), call.get("output_tokens"), call.get("cached_input_tokens")
    if price.input is not None and inp is None:
        return None, "input tokens not reported", price.model
    if price.output is not None and out is None:
        return None, "output tokens not reported", price.model
    note = None
    cost = price.per_call or 0.0
    if price.input is not None:
        assert inp is not None
        hit = cached or 0
        if cached is None and price.cached_input is not None:
            note = "cached tokens not reported: input charged in full"
        uncached = inp - hit if hit <= inp else inp
        cost += uncached * price.input / PER_MTOK
        cost += hit * (price.cached_input if price.cached_input is not None else price.input) / PER_MTOK
    if price.output is not None:
        assert out is not None
        cost += out * price.output / PER_MTOK
    return round(cost, 10), note, price.model


def _no_price_note(model: str | None, request_model: str | None, provider: str | None) -> str:
    if model is None and request_model is None:
        return "model not reported"
    where = f" ({provider})" if provider else ""
    return f"no price for model {model or request_model}{where}"


#: :func:`price_call` over a table of calls in SQL: the same steps and the same floating-point
#: operations in the same order (a missing term adds 0.0, which changes nothing); the rounding to
#: 10 decimals is Python's, afterwards (:func:`price_calls`).
_PRICED_SQL = """
    SELECT c.*,
        CASE WHEN p.price_model IS NULL
                  OR (p.p_input IS NOT NULL AND c.input_tokens IS NULL)
                  OR (p.p_output IS NOT NULL AND c.output_tokens IS NULL) THEN NULL
             ELSE ((coalesce(p.p_per_call, 0.0)
                    + CASE WHEN p.p_input IS NULL THEN 0.0 ELSE
                        CAST(CASE WHEN coalesce(c.cached_input_tokens, 0) <= c.input_tokens
                                  THEN c.input_tokens - coalesce(c.cached_input_tokens, 0)
                                  ELSE c.input_tokens END AS DOUBLE) * p.p_input / 1000000.0 END)
                   + CASE WHEN p.p_input IS NULL THEN 0.0 ELSE
                        CAST(coalesce(c.cached_input_tokens, 0) AS DOUBLE)
                        * coalesce(p.p_cached_input, p.p_input) / 1000000.0 END)
                  + CASE WHEN p.p_output IS NULL THEN 0.0 ELSE
                        CAST(c.output_tokens AS DOUBLE) * p.p_output / 1000000.0 END
        END AS cost_usd,
        CASE WHEN p.price_model IS NULL THEN p.no_price_note
             WHEN p.p_input IS NOT NULL AND c.input_tokens IS NULL THEN 'input tokens not reported'
             WHEN p.p_output IS NOT NULL AND c.output_tokens IS NULL THEN 'output tokens not reported'
             WHEN p.p_input IS NOT NULL AND c.cached_input_tokens IS NULL AND p.p_cached_input IS NOT NULL
                  THEN 'cached tokens not reported: input charged in full'
        END AS cost_note,
        p.price_model
    FROM {calls} c JOIN _llm_prices p
      ON c.model IS NOT DISTINCT FROM p.model AND c.request_model IS NOT DISTINCT FROM p.request_model
     AND c.provider IS NOT DISTINCT FROM p.provider
"""

_PRICES_SCHEMA = pa.schema([
    ("model", pa.string()), ("request_model", pa.string()), ("provider", pa.string()),
    ("price_model", pa.string()), ("no_price_note", pa.string()), ("p_input", pa.float64()),
    ("p_cached_input", pa.float64()), ("p_output", pa.float64()), ("p_per_call", pa.float64()),
])


def price_calls(con: duckdb.DuckDBPyConnection, settings: LlmSettings, calls: str, order_by: str) -> pa.Table:
    """:func:`price_call` for every row of the table or view ``calls`` on ``con`` (columns ``model``,
    ``request_model``, ``provider`` and the token counts): its rows with ``cost_usd``, ``cost_note``
    and ``price_model`` added, ordered by ``order_by``. The price entry is looked up once per
    (model, requested model, provider), the arithmetic runs in SQL."""
    rows: list[tuple[Any, ...]] = []
    for model, request_model, provider in con.execute(
            f"SELECT DISTINCT model, request_model, provider FROM {calls}").fetchall():
        price: Price | None = settings.match(model, provider) or settings.match(request_model, provider)
        if price is None:
            rows.append((model, request_model, provider, None, _no_price_note(model, request_model, provider),
                         None, None, None, None))
        else:
            rows.append((model, request_model, provider, price.model, None, price.input, price.cached_input,
                         price.output, price.per_call))
    prices = pa.table(list(zip(*rows)) if rows else [[] for _ in _PRICES_SCHEMA], schema=_PRICES_SCHEMA)
    con.register("_llm_prices", prices)
    try:
        out = con.sql(_PRICED_SQL.format(calls=calls) + f" ORDER BY {order_by}").to_arrow_table()
    finally:
        con.unregister("_llm_prices")
    i = out.schema.get_field_index("cost_usd")
    rounded = [None if x is None else round(x, 10) for x in out.column(i).to_pylist()]
    return out.set_column(i, "cost_usd", pa.array(rounded, pa.float64()))
