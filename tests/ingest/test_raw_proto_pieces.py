"""A big raw protobuf message decoded in pieces gives exactly what decoding it whole gives.

The thresholds are lowered so that small messages take the piece path; every test
compares the whole batch state (rows, resources, scopes, rejections with their
locations, byte offsets and reasons) with a whole decode of the same bytes.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_otlp_proto import ld, make_span, request, varint

from fabric_trace.errors import FabricError
from fabric_trace.ingest import container
from fabric_trace.ingest.batch import SPAN_COLUMNS, SpanBatch
from fabric_trace.ingest.json_dispatch import decode_json_value
from fabric_trace.ingest.limits import Limits


def state(b: SpanBatch) -> dict[str, Any]:
    return {
        "columns": {c: list(getattr(b, c)) for c in SPAN_COLUMNS},
        "extras": {k: list(v) for k, v in b.extras.items()},
        "groups": (list(b.group_prefix), list(b.group_resource), list(b.group_scope)),
        "resources": dict(b.resources),
        "scopes": dict(b.scopes),
        "rejections": [(r.where, r.reason, r.action, r.raw, r.trace_id, r.span_id) for r in b.rejections],
    }


def decode(data: bytes, pieces: bool, monkeypatch: pytest.MonkeyPatch, piece: int = 1) -> tuple[str, dict[str, Any]]:
    with monkeypatch.context() as m:
        if pieces:
            m.setattr(container, "RAW_WHOLE_BYTES", 0)
            m.setattr(container, "_RAW_PIECE_BYTES", piece)
        b = SpanBatch()
        try:
            label = container.decode_stream(io.BytesIO(data), "t", b, Limits(), decode_json_value)
        except FabricError as exc:  # the same error either way
            return f"error: {exc}", state(b)
    return label, state(b)


def assert_same(data: bytes, monkeypatch: pytest.MonkeyPatch, piece: int = 1) -> tuple[str, dict[str, Any]]:
    whole = decode(data, False, monkeypatch)
    assert decode(data, True, monkeypatch, piece) == whole
    return whole


def _message(n_rs: int = 6) -> bytes:
    return b"".join(request([make_span(10 * r + k, attrs={"n": k, "svc": f"s{r}"}) for k in range(3)],
                            resource={"service.name": f"svc-{r}"}) for r in range(n_rs))  # fmt: skip


@pytest.mark.parametrize("piece", [1, 200, 1000, 1 << 20])
def test_valid_message_in_pieces(monkeypatch: pytest.MonkeyPatch, piece: int) -> None:
    label, st_ = assert_same(_message(), monkeypatch, piece)
    assert label == "otlp-proto" and len(st_["columns"]["span_id"]) == 18 and not st_["rejections"]
    assert st_["groups"][0][-1].startswith("resourceSpans[5].scopeSpans[0]")


def test_real_protobuf_samples_in_pieces(samples: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for path in sorted(samples.rglob("*.pb")):
        assert_same(path.read_bytes(), monkeypatch, 300)


@pytest.mark.parametrize(
    "damage",
    [
        lambda m: m[: len(m) - 7],  # cut off in the last field
        lambda m: m[:5],  # cut off in the first one
        lambda m: m + b"\x0a\xff\xff",  # a length cut off at the end
        lambda m: m + varint(0) + b"junk",  # field number 0
        lambda m: m[:200] + b"\x0b" + m[200:],  # wire type 3 (a group) in the middle
        lambda m: ld(1, b"\x12\x05\xff\xfe") + m,  # a resourceSpans upb refuses, first
        lambda m: m + ld(1, ld(2, ld(2, b"\x0a\x10" + b"\x01" * 16 + b"\x2a\x02\xff\xfe"))),  # bad UTF-8 name
        lambda m: m + varint(2 << 3 | 0) + varint(7) + ld(5, b"xyz") + m,  # unknown top-level fields
    ],
)
def test_damaged_messages_in_pieces(monkeypatch: pytest.MonkeyPatch, damage: Any) -> None:
    for piece in (1, 150, 1 << 20):
        assert_same(damage(_message()), monkeypatch, piece)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.integers(1, 5), st.integers(1, 2000), st.data())
def test_random_damage_in_pieces(monkeypatch: pytest.MonkeyPatch, n_rs: int, piece: int, data: st.DataObject) -> None:
    msg = bytearray(_message(n_rs))
    for _ in range(data.draw(st.integers(0, 3))):
        at = data.draw(st.integers(0, len(msg) - 1))
        how = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if how == "flip":
            msg[at] ^= data.draw(st.integers(1, 255))
        elif how == "cut":
            del msg[at:]
            if not msg:
                msg = bytearray(b"\x0a\x00")
        else:
            msg[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    if msg[:1] != b"\x0a":  # stays a raw message to the format detection
        msg[:0] = b"\x0a\x00"
    assert_same(bytes(msg), monkeypatch, piece)


def test_a_field_beyond_max_document_bytes_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from fabric_trace.errors import InputError

    msg = _message()
    monkeypatch.setattr(container, "RAW_WHOLE_BYTES", 0)
    monkeypatch.setattr(container, "_RAW_PIECE_BYTES", 10)
    with pytest.raises(InputError, match="more than 100 bytes"):
        container.decode_stream(io.BytesIO(msg), "t", SpanBatch(), Limits(max_document_bytes=100), decode_json_value)
