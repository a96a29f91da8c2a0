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

from fabric_trace.analyzers.llm.config import LlmSettings

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
