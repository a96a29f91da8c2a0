"""Fuzz campaign, in-suite part: hypothesis drives byte mutations of one seed per decoder
family (tests/fuzz_inputs.py). Properties: only a FabricError escapes; every quarantine
record is located and explained; decoding takes bounded time; one damaged span in a
document costs that span only. The longer campaign is bench/fuzz_ingest.py (results in
bench/README.md)."""

from __future__ import annotations

import json
import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_inputs import check, decode, mutate, otlp_doc, seeds

SEEDS = seeds()
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("family", sorted(SEEDS))
@FUZZ
@given(seed=st.integers(0, 2**32), count=st.integers(1, 8))
def test_mutated_input_never_escapes(family: str, seed: int, count: int) -> None:
    data = mutate(SEEDS[family], random.Random(seed), count)
    t0 = time.perf_counter()
    batch, _ = decode(data)
    assert time.perf_counter() - t0 < 5
    check(batch)


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_escape(data: bytes) -> None:
    batch, _ = decode(data)
    check(batch)


@FUZZ
@given(pos=st.integers(0, 10**9), byte=st.sampled_from(list(b'{}[]",:\x00\x01\xff@ ')), pretty=st.booleans())
def test_one_bad_byte_in_a_span_costs_that_span_only(pos: int, byte: int, pretty: bool) -> None:
    n = 20
    doc = otlp_doc(n)
    data = json.dumps(doc, indent=2 if pretty else None).encode()
    start = data.index(b'"spans"')
    first = data.index(b"{", start)
    end = data.rindex(b"}", 0, data.rindex(b"]"))  # inside the spans list
    at = first + 1 + pos % (end - first - 1)
    mutated = data[:at] + bytes([byte]) + data[at + 1 :]
    batch, err = decode(mutated)
    assert err is None
    check(batch)
    assert len(batch) + batch.spans_rejected >= n - 1
    assert len([r for r in batch.rejections if r.action == "rejected"]) <= 1
