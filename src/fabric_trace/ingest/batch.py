"""The contract between decoders and the writer: a columnar batch of spans.

Every decoder (OTLP JSON, OTLP protobuf, Jaeger, Zipkin) turns its input into
calls on a :class:`SpanSink`:

* ``sink.resource(attributes, schema_url, dropped)`` -> resource id (interned),
* ``sink.scope(name, version, attributes, schema_url, dropped)`` -> scope id,
* ``sink.span(row)`` with a tuple in :data:`SPAN_FIELDS` order,
* ``sink.reject(where, reason, raw=..., trace_id=..., span_id=...)`` for a
  record that cannot be loaded (it is quarantined, the rest of the file goes on),
* ``sink.repair(where, reason, trace_id=..., span_id=...)`` for a value that was
  loaded after a documented repair (over-deep value emptied, over-size value
  truncated, NaN dropped...). The span is kept; the repair is recorded.

Values in a span row are already normalised:

* ids: lowercase hex ``str`` (trace 32 chars, span 16 chars), validated with
  :func:`check_trace_id` / :func:`check_span_id`; parent ``None`` for a root;
* times: ``int`` nanoseconds since the epoch (never through ``float``);
* kind: one of :data:`SPAN_KINDS`; status code: one of :data:`STATUS_CODES`;
* attributes: a ``dict`` of key -> Python value (str, bool, int, float, list,
  dict for kvlist, base64 ``str`` for bytes, ``None`` for an empty value);
* events: ``list`` of ``{"time_ns", "name", "attributes", "dropped_attributes_count"}``;
* links: ``list`` of ``{"trace_id", "span_id", "trace_state", "flags",
  "attributes", "dropped_attributes_count"}``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

#: Order of the fields of a span row passed to :meth:`SpanSink.span`.
SPAN_FIELDS: tuple[str, ...] = (
    "where",  # location in the file (str), e.g. "line 17" or "byte 4096, resourceSpans[0]..."
    "trace_id",
    "span_id",
    "parent_span_id",
    "trace_state",
    "flags",
    "name",
    "kind",
    "start_ns",
    "end_ns",
    "status_code",
    "status_message",
    "attributes",
    "events",
    "links",
    "dropped_attributes_count",
    "dropped_events_count",
    "dropped_links_count",
    "resource_id",
    "scope_id",
)

SPAN_KINDS: tuple[str, ...] = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_CODES: tuple[str, ...] = ("UNSET", "OK", "ERROR")

#: Largest valid nanosecond timestamp (DuckDB BIGINT / TIMESTAMP_NS upper bound).
MAX_TIME_NS = 2**63 - 1

_HEX = frozenset("0123456789abcdef")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


class SpanSink(Protocol):
    """What a decoder writes to. Implemented by :class:`SpanBatch`."""

    def resource(self, attributes: dict[str, Any], schema_url: str | None, dropped: int) -> str: ...

    def scope(
        self,
        name: str | None,
        version: str | None,
        attributes: dict[str, Any],
        schema_url: str | None,
        dropped: int,
    ) -> str: ...

    def span(self, row: tuple[Any, ...]) -> None: ...

    def reject(
        self,
        where: str,
        reason: str,
        *,
        raw: bytes | str | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
    ) -> None: ...

    def repair(
        self, where: str, reason: str, *, trace_id: str | None = None, span_id: str | None = None
    ) -> None: ...


def check_trace_id(value: str) -> str | None:
    """Return the reason a lowercase-hex trace id is invalid, or ``None`` if it is valid."""
    if len(value) != 32:
        return f"trace id has {len(value)} hex chars, expected 32"
    if not _HEX.issuperset(value):
        return "trace id is not hex"
    if value == _ZERO_TRACE:
        return "trace id is all zeros"
    return None


def check_span_id(value: str) -> str | None:
    """Return the reason a lowercase-hex span id is invalid, or ``None`` if it is valid."""
    if len(value) != 16:
        return f"span id has {len(value)} hex chars, expected 16"
    if not _HEX.issuperset(value):
        return "span id is not hex"
    if value == _ZERO_SPAN:
        return "span id is all zeros"
    return None


def check_time(value: int, what: str) -> str | None:
    """Return the reason a nanosecond timestamp is out of range, or ``None``."""
    if value < 0 or value > MAX_TIME_NS:
        return f"{what} {value} is out of range (0..2^63-1 ns)"
    return None


def _intern_key(payload: Any) -> str:
    return hashlib.blake2b(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS), digest_size=8).hexdigest()


@dataclass
class Rejection:
    """One quarantined (``action='rejected'``) or repaired (``action='repaired'``) record."""

    where: str
    reason: str
    action: str
    raw: str | None = None
    trace_id: str | None = None
    span_id: str | None = None


@dataclass
class SpanBatch:
    """A columnar batch of decoded spans, resources, scopes and rejections.

    Resources and scopes are interned by content so each is stored once.
    """

    spans: list[tuple[Any, ...]] = field(default_factory=list)
    resources: dict[str, tuple[str, str | None, int]] = field(default_factory=dict)
    scopes: dict[str, tuple[str | None, str | None, str, str | None, int]] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)
    spans_rejected: int = 0
    raw_limit: int = 4096

    def resource(self, attributes: dict[str, Any], schema_url: str | None, dropped: int) -> str:
        """Intern a resource and return its id (a content hash)."""
        rid = _intern_key([attributes, schema_url, dropped])
        if rid not in self.resources:
            self.resources[rid] = (orjson.dumps(attributes).decode(), schema_url, dropped)
        return rid

    def scope(
        self,
        name: str | None,
        version: str | None,
        attributes: dict[str, Any],
        schema_url: str | None,
        dropped: int,
    ) -> str:
        """Intern an instrumentation scope and return its id (a content hash)."""
        sid = _intern_key([name, version, attributes, schema_url, dropped])
        if sid not in self.scopes:
            self.scopes[sid] = (name, version, orjson.dumps(attributes).decode(), schema_url, dropped)
        return sid

    def span(self, row: tuple[Any, ...]) -> None:
        """Add one decoded span row (fields in :data:`SPAN_FIELDS` order)."""
        self.spans.append(row)

    def reject(
        self,
        where: str,
        reason: str,
        *,
        raw: bytes | str | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
        counts_as_span: bool = True,
    ) -> None:
        """Quarantine one record. ``counts_as_span`` is False for a record that is not a span
        (an undecodable line or frame holding an unknown number of spans)."""
        self.rejections.append(
            Rejection(where, reason, "rejected", _excerpt(raw, self.raw_limit), trace_id, span_id)
        )
        if counts_as_span:
            self.spans_rejected += 1

    def repair(
        self, where: str, reason: str, *, trace_id: str | None = None, span_id: str | None = None
    ) -> None:
        """Record a repair made to a span that is still loaded."""
        self.rejections.append(Rejection(where, reason, "repaired", None, trace_id, span_id))

    def __len__(self) -> int:
        return len(self.spans)

    def clear(self) -> None:
        """Empty the batch after it was written.

        Resources and scopes are cleared too: the writer stores them with
        ``ON CONFLICT DO NOTHING``, and decoders intern them again when they meet them.
        """
        self.spans.clear()
        self.resources.clear()
        self.scopes.clear()
        self.rejections.clear()
        self.spans_rejected = 0


def _excerpt(raw: bytes | str | None, limit: int) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bytes):
        head = raw[:limit]
        text = head.decode("utf-8", errors="backslashreplace")
    else:
        text = raw[:limit]
    if len(raw) > limit:
        text += f"... ({len(raw)} bytes/chars in all)"
    return text
