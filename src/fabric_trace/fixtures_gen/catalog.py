"""The committed fixture set: which scenarios, where, and how to (re)write them.

``fixtures/generate.py`` calls :func:`write_fixture_set`; the tests call it
into a temporary directory and compare bytes with the committed files.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from . import generate
from .scenario import Scenario
from .writers import write_otlp_jsonl, write_otlp_proto

#: The demo: a healthy 200-trace scenario (``fixtures/demo/``).
DEMO = Scenario(traces=200, seed=7)

_SMALL = Scenario(traces=24, seed=11)

#: Small scenario files for analyzer tests (``fixtures/scenarios/<name>.jsonl``), all with seed 11
#: so that each is *paired* with ``healthy``: same traces, ids and structure except what the knobs touch.
SCENARIOS: dict[str, Scenario] = {
    "healthy": _SMALL,
    "retrieval-regression": _SMALL.with_(latency_factor={"retrieval": 2.0}),
    "remote-state": _SMALL.with_(remote_state_fraction=0.5, state_region="eu-west-1", cache_miss_rate=0.4,
                                 repeat_fetch_rate=0.5),
    "trust-violations": _SMALL.with_(unguarded_tool_rate=0.3, denied_tool_executed_rate=0.2, policy_deny_rate=0.1,
                                     external_tool_rate=0.6, plaintext_rate=0.5, anonymous_rate=0.3),
    "prefix-cache": _SMALL.with_(prefix_cache_miss_rate=0.5, missing_cached_tokens_rate=0.2),
    "faults": _SMALL.with_(error_rate=0.2, retry_rate=0.3, clock_skew_ns=25_000_000, async_rate=1.0),
}

SPANS_PER_REQUEST = 256


def truth_json(truth_dict: dict[str, object]) -> bytes:
    """The canonical bytes of a ground-truth file (indented, sorted keys, trailing newline)."""
    return orjson.dumps(truth_dict, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def write_fixture_set(root: str | Path) -> dict[str, int]:
    """Write every committed fixture under ``root`` (the repo's ``fixtures/``); returns {relative path: size}."""
    root = Path(root)
    out: dict[str, int] = {}
    jobs = [("demo", "demo", DEMO, True)] + [("scenarios", name, sc, False) for name, sc in SCENARIOS.items()]
    for folder, name, scenario, demo in jobs:
        d = root / folder
        d.mkdir(parents=True, exist_ok=True)
        gen = generate(scenario)
        files = [f"{name}.jsonl"]
        write_otlp_jsonl(gen, d / files[0], spans_per_request=SPANS_PER_REQUEST)
        if demo:  # the demo's truth is not committed (1.5 MB): use generate(DEMO).truth
            files.append(f"{name}.bin")
            write_otlp_proto(gen, d / files[1], framed=True, spans_per_request=SPANS_PER_REQUEST)
        else:
            files.append(f"{name}.truth.json")
            (d / files[1]).write_bytes(truth_json(gen.truth.to_dict()))
        for f in files:
            out[f"{folder}/{f}"] = (d / f).stat().st_size
    return out
