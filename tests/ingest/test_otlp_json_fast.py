"""The msgspec fast path for OTLP/JSON lines gives exactly what the general decoder gives, or nothing.

Every comparison decodes the same line twice into fresh batches -- once with the
general decoder only (``orjson.loads`` + :func:`decode_json_value`), once offering it
to :func:`decode_otlp_line` first -- and compares the whole batch state: every
column value (canonical attribute/event/link JSON compared as text), extras,
groups and their location prefixes, resources, scopes, rejections and repairs.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from json_helpers import SID, TID, anyvalues, attr, garbage, valid_spans

from fabric_trace.ingest.batch import SPAN_COLUMNS, SpanBatch
from fabric_trace.ingest.container import decode_stream
from fabric_trace.ingest.container_json import call_json_decoder
from fabric_trace.ingest.json_dispatch import decode_json_value
from fabric_trace.ingest.limits import Limits
from fabric_trace.ingest.otlp_json_fast import decode_otlp_line

REPO = Path(__file__).resolve().parents[2]


def dump(value: Any) -> bytes:
    """JSON text of a test value (the standard library takes ints beyond 64 bits, orjson does not)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value).encode()


def state(b: SpanBatch) -> dict[str, Any]:
    return {
        "columns": {c: list(getattr(b, c)) for c in SPAN_COLUMNS},
        "extras": {k: list(v) for k, v in b.extras.items()},
        "groups": (list(b.group_start), list(b.group_prefix), list(b.group_resource), list(b.group_scope)),
        "resources": dict(b.resources),
        "scopes": dict(b.scopes),
        "rejections": [(r.where, r.reason, r.action, r.raw, r.trace_id, r.span_id) for r in b.rejections],
        "spans_rejected": b.spans_rejected,
    }


def general(line: bytes, b: SpanBatch, where: str = "line 1") -> None:
    """What container_json does with a line the fast path declined."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        b.reject(where, f"invalid JSON: {exc}", raw=line, counts_as_span=False)
        return
    call_json_decoder(decode_json_value, value, where, b, line)


def both(line: bytes) -> tuple[SpanBatch, SpanBatch, bool]:
    """(general-only batch, fast-then-general batch, whether the fast path took the line)."""
    ref = SpanBatch()
    general(line, ref)
    fast = SpanBatch()
    took = decode_otlp_line(line, "line 1", fast) is not None
    if not took:
        assert state(fast) == state(SpanBatch()), "a declined line must leave the batch untouched"
        general(line, fast)
    return ref, fast, took


def assert_same(line: bytes) -> bool:
    ref, fast, took = both(line)
    assert state(fast) == state(ref)
    return took


def doc_of(spans: list[dict[str, Any]], resource: Any = None, scope: Any = None) -> dict[str, Any]:
    rs: dict[str, Any] = {"scopeSpans": [{"spans": spans}]}
    if resource is not None:
        rs["resource"] = resource
    if scope is not None:
        rs["scopeSpans"][0]["scope"] = scope
    return {"resourceSpans": [rs]}


def canonical_span(**over: Any) -> dict[str, Any]:
    s: dict[str, Any] = {
        "traceId": TID, "spanId": SID, "parentSpanId": "", "flags": 256, "name": "chat gpt-4o", "kind": 3,
        "startTimeUnixNano": "1767225600000000000", "endTimeUnixNano": "1767225600500000000",
        "attributes": [attr("gen_ai.request.model", {"stringValue": "gpt-4o"}),
                       attr("gen_ai.usage.input_tokens", {"intValue": "120"}),
                       attr("temperature", {"doubleValue": 0.2}), attr("stream", {"boolValue": True}),
                       attr("stop", {"arrayValue": {"values": [{"stringValue": "\n"}]}}),
                       attr("meta", {"kvlistValue": {"values": [attr("a", {"intValue": 1})]}})],
        "events": [{"timeUnixNano": "1767225600100000000", "name": "first token",
                    "attributes": [attr("n", {"intValue": "1"})]}],
        "links": [{"traceId": TID, "spanId": "00f067aa0ba902b7", "attributes": [attr("k", {"stringValue": "v"})]}],
        "status": {"code": 2, "message": "boom"},
    }  # fmt: skip
    s.update(over)
    return s


def test_canonical_line_takes_the_fast_path_with_identical_rows() -> None:
    resource = {"attributes": [attr("service.name", {"stringValue": "gw"})], "droppedAttributesCount": 1}
    scope = {"name": "openai", "version": "1.2", "attributes": [attr("x", {"boolValue": False})]}
    line = orjson.dumps(doc_of([canonical_span(), canonical_span(spanId="a1b2c3d4e5f60718", kind=1,
                                                                  parentSpanId=SID, status={})],
                               resource, scope))  # fmt: skip
    assert assert_same(line)


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "SPAN_KIND_SERVER"},  # enum name: general decoder
        {"kind": 9},  # unknown kind: repaired
        {"traceId": TID.upper()},  # upper-case hex: both lower-case it
        {"traceId": "W47/95gDgQPSabYzgT/GDA=="},  # base64 (Tempo)
        {"traceId": "0" * 32},  # rejected
        {"parentSpanId": "0" * 16},  # all-zero parent: a root
        {"parentSpanId": "xyz"},  # rejected
        {"startTimeUnixNano": 1767225600000000000},  # int64 as a number
        {"startTimeUnixNano": "-5"},  # negative: rejected
        {"endTimeUnixNano": str(2**63)},  # out of range: rejected
        {"name": 5},  # wrong type: rejected
        {"name": "x" * 20_000},  # long: the general decoder checks the 64 KiB cut
        {"flags": -1},
        {"status": {"code": "STATUS_CODE_ERROR"}},
        {"status": {"code": None, "message": None}},
        {"attributes": {}},  # not a list
        {"attributes": None},
        {"attributes": [attr("a", {"stringValue": "x"}), attr("a", {"stringValue": "y"})]},  # duplicate key
        {"attributes": [attr("a", {"intValue": "12345678901234567890"})]},  # not an int64
        {"attributes": [attr("a", {"intValue": " 7"})]},
        {"attributes": [attr("a", {"doubleValue": "NaN"})]},
        {"attributes": [attr("a", {"doubleValue": 1e300})]},
        {"attributes": [attr("a", {"doubleValue": 3})]},  # an integer double
        {"attributes": [attr("a", {"boolValue": True, "intValue": 5})]},  # two fields: order decides
        {"attributes": [attr("a", {"intValue": "5", "boolValue": True})]},
        {"attributes": [attr("a", {"doubleValue": 1.5, "boolValue": True})]},
        {"attributes": [attr("a", {})]},  # the empty value
        {"attributes": [attr("a", {"string_value": "x"})]},  # snake_case
        {"attributes": [{"key": "a"}]},  # no value
        {"attributes": [{"value": {"stringValue": "x"}}]},  # no key
        {"events": [{"name": "no time"}]},
        {"events": [{"time_unix_nano": "5", "name": "snake"}]},
        {"links": [{"traceId": "", "spanId": SID}]},  # dropped with a repair
        {"trace_state": "snake"},
        {"droppedAttributesCount": "3"},
        {"unknownField": 1},
    ],
)
def test_every_change_gives_the_general_decoders_result(change: dict[str, Any]) -> None:
    assert_same(orjson.dumps(doc_of([canonical_span(), canonical_span(spanId="a1b2c3d4e5f60718", **change)])))


@pytest.mark.parametrize(
    "line",
    [
        b"", b"{}", b"[]", b"null", b'{"resourceSpans": null}', b'{"resource_spans": []}', b'{"batches": []}',
        b'{"resourceSpans": [{"instrumentationLibrarySpans": [{"spans": []}]}]}',
        b'{"resourceSpans": [{"resource": 5, "scopeSpans": []}]}',
        b'{"resourceSpans": [{"schema_url": "s", "scopeSpans": []}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"scope": {"name": ""}, "spans": []}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"scope": {"name": 1}, "spans": []}]}]}',
        b'{"resourceSpans": [{"scopeSpans": null}]}',
        b'{"resourceSpans": [{"scopeSpans": [{}]}]}',
        b'\xef\xbb\xbf{"resourceSpans": []}', b'{"resourceSpans": [], }', b'{"resourceSpans": "\\ud800"}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "\xff"}]}]}]}',
        b'{"resourceSpans": [], "resourceSpans": [{"scopeSpans": [{"spans": [' + orjson.dumps(canonical_span()) + b"]}]}]}",
    ],
)  # fmt: skip
def test_odd_documents(line: bytes) -> None:
    assert_same(line)


def test_duplicate_json_keys_last_wins_in_both() -> None:
    s = orjson.dumps(canonical_span()).decode()
    line = '{"resourceSpans":[{"scopeSpans":[{"spans":[' + s[:-1] + ',"name":"second","kind":1}]}]}]}'
    assert assert_same(line.encode())


def test_a_refused_line_leaves_the_batch_as_it_was() -> None:
    b = SpanBatch()
    ok = orjson.dumps(doc_of([canonical_span()]))
    assert decode_otlp_line(ok, "line 1", b) == "otlp-json"
    before = state(b)
    bad = orjson.dumps({"resourceSpans": [
        {"resource": {"attributes": [attr("service.name", {"stringValue": "other"})]},
         "scopeSpans": [{"scope": {"name": "s"}, "spans": [canonical_span(spanId="a1b2c3d4e5f60718")]}]},
        {"scopeSpans": [{"spans": [canonical_span(kind="SERVER")]}]},
    ]})  # fmt: skip
    assert decode_otlp_line(bad, "line 2", b) is None
    assert state(b) == before


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(valid_spans(), min_size=1, max_size=4), st.lists(anyvalues(), max_size=3))
def test_valid_documents_identical(spans: list[tuple[dict[str, Any], Any]], res: list[tuple[dict[str, Any], Any]]) -> None:
    resource = {"attributes": [attr(f"r{i}", v) for i, (v, _) in enumerate(res)]}
    assert_same(orjson.dumps(doc_of([s for s, _ in spans], resource, {"name": "lib"})))


_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*path, i))
    return out


def _mutate(doc: Any, path: tuple[Any, ...], how: str, junk: Any) -> Any:
    if not path:
        return junk
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    key = path[-1]
    value = parent[key]
    if how == "replace":
        parent[key] = junk
    elif how == "null":
        parent[key] = None
    elif how == "retype":
        parent[key] = (str(value) if isinstance(value, (int, float)) and not isinstance(value, bool)
                       else int(value) if isinstance(value, str) and value.isdigit() else [value])  # fmt: skip
    elif how == "delete":
        del parent[key]
    elif how == "snake" and isinstance(key, str):
        parent[_SNAKE.sub("_", key).lower()] = parent.pop(key)
    elif how == "extra" and isinstance(parent, dict):
        parent["extraField"] = junk
    return doc


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_spans(), st.data())
def test_mutated_documents_identical(span: tuple[dict[str, Any], Any], data: st.DataObject) -> None:
    doc = doc_of([span[0], canonical_span()], {"attributes": [attr("service.name", {"stringValue": "s"})]},
                 {"name": "lib"})  # fmt: skip
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = data.draw(st.sampled_from(paths))
        how = data.draw(st.sampled_from(["replace", "null", "retype", "delete", "snake", "extra"]))
        try:
            doc = _mutate(doc, path, how, data.draw(garbage))
        except (KeyError, IndexError, TypeError, ValueError):
            continue
    assert_same(dump(doc))


@settings(max_examples=200, deadline=None)
@given(garbage)
def test_garbage_identical(value: Any) -> None:
    assert_same(dump(value))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_identical(raw: bytes) -> None:
    assert_same(raw)


def _decode_file(data: bytes, fast: bool) -> tuple[str, SpanBatch, int]:
    b = SpanBatch()
    taken = 0

    def counting(line: bytes, where: str, sink: Any) -> str | None:
        nonlocal taken
        out = decode_otlp_line(line, where, sink)
        taken += out is not None
        return out

    label = decode_stream(io.BytesIO(data), "t", b, Limits(), decode_json_value, counting if fast else None)
    return label, b, taken


def _jsonl_files(samples: Path) -> list[Path]:
    return sorted([*samples.rglob("*.jsonl"), *samples.rglob("*.json"), *(REPO / "fixtures").rglob("*.jsonl")])


def test_every_jsonl_sample_and_fixture_identical(samples: Path) -> None:
    files = _jsonl_files(samples)
    assert len(files) >= 10
    for path in files:
        data = path.read_bytes()
        label, ref, _ = _decode_file(data, fast=False)
        label2, got, taken = _decode_file(data, fast=True)
        assert (label2, state(got)) == (label, state(ref)), path
        if "fixtures" in path.parts or "generated" in path.parts:  # what OTLP encoders write: all fast
            lines = sum(1 for ln in data.splitlines() if ln.strip())
            assert taken == lines, path


def test_mixed_file_line_numbers_and_quarantine() -> None:
    good = orjson.dumps(doc_of([canonical_span()]))
    odd = orjson.dumps(doc_of([canonical_span(spanId="a1b2c3d4e5f60718", kind="SPAN_KIND_CLIENT")]))
    bad = orjson.dumps(doc_of([canonical_span(spanId="b1b2c3d4e5f60718", traceId="zz")]))
    data = b"\n".join([good, b"", odd, b"{not json", bad, good.replace(SID.encode(), b"c1b2c3d4e5f60718")]) + b"\n"
    label, ref, _ = _decode_file(data, fast=False)
    label2, got, taken = _decode_file(data, fast=True)
    assert (label2, state(got)) == (label, state(ref)) and taken == 2
    assert [(r.where, r.action) for r in got.rejections] == [
        ("line 4", "rejected"), ("line 5, resourceSpans[0].scopeSpans[0].spans[0]", "rejected")]


_number_text = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(2**70), 2**70).map(str),
    st.builds(lambda m, f, e: f"{m}.{f}e{e}", st.integers(-(10**20), 10**20), st.integers(0, 10**25),
              st.integers(-330, 310)),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_number_text, min_size=1, max_size=6))
def test_number_parsing_identical(numbers: list[str]) -> None:
    """msgspec and orjson read every JSON number the same (doubles, big integers, exponents)."""
    attrs = ",".join(f'{{"key":"d{i}","value":{{"doubleValue":{n}}}}},{{"key":"i{i}","value":{{"intValue":{n}}}}}'
                     for i, n in enumerate(numbers))  # fmt: skip
    span = orjson.dumps(canonical_span(attributes=[])).decode().replace('"attributes":[]', f'"attributes":[{attrs}]')
    assert_same(('{"resourceSpans":[{"scopeSpans":[{"spans":[' + span + "]}]}]}").encode())


@pytest.mark.parametrize("indent", [True, False])
def test_whole_documents_take_the_fast_path_too(indent: bool) -> None:
    doc = doc_of([canonical_span(), canonical_span(spanId="a1b2c3d4e5f60718")])
    data = b"\n  " + (json.dumps(doc, indent=2).encode() if indent else orjson.dumps(doc))  # no newline at the end
    label, ref, _ = _decode_file(data, fast=False)
    label2, got, taken = _decode_file(data, fast=True)
    assert (label2, state(got)) == (label, state(ref)) and taken == 1 and label == "otlp-json"
    # pretty-printed: one document read whole; compact on one line: a JSON line
    assert got.group_prefix[0].startswith("document 1 at byte 3, resourceSpans[0]" if indent else "line 2, ")
