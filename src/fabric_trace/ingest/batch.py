"""The contract between decoders and the writer: a columnar batch of spans.

Every decoder (OTLP JSON, OTLP protobuf, Jaeger, Zipkin) turns its input into
calls on a :class:`SpanBatch`:

* ``sink.resource(attributes, schema_url, dropped)`` -> resource id (interned),
* ``sink.scope(name, version, attributes, schema_url, dropped)`` -> scope id,
* spans, column by column (no row tuples, no per-span method call):

  1. ``cols = sink.group(prefix, resource_id, scope_id)`` starts a run of spans
     sharing a resource, a scope and a location prefix, and returns the tuple of
     ``append`` functions of the dense columns (:data:`SPAN_COLUMNS` order);
  2. for each span, the decoder appends one value to *every* dense column
     (``index`` is the span's position in the input list: its location is
     ``f"{prefix}{index}]"``);
  3. right after, ``sink.extra(field, value)`` sets an optional field
     (:data:`EXTRA_FIELDS`) of that span when it is not the default;
  4. ``sink.end_group()`` after the run (a pipeline batch may flush here);

* ``sink.reject(where, reason, raw=..., trace_id=..., span_id=...)`` for a
  record that cannot be loaded (it is quarantined, the rest of the file goes on),
* ``sink.repair(where, reason, trace_id=..., span_id=...)`` for a value that was
  loaded after a documented repair (over-deep value emptied, over-size value
  truncated, NaN dropped...). The span is kept; the repair is recorded.

Values are already normalised:

* ids: lowercase hex ``str`` (trace 32 chars, span 16 chars), validated with
  :func:`check_trace_id` / :func:`check_span_id`; parent ``None`` for a root;
* times: ``int`` nanoseconds since the epoch (never through ``float``);
* kind: one of :data:`SPAN_KINDS`; status code: one of :data:`STATUS_CODES`;
* attributes: the *canonical attribute JSON*, ``orjson.dumps`` of a ``dict`` of
  key -> Python value (str, bool, int, float, list, dict for kvlist, base64
  ``str`` for bytes, ``None`` for an empty value), keys in input order, last value
  of a duplicate key kept in the position of its first occurrence
  (:func:`attributes_json`). Every decoder produces the same text for the same
  values, so equal spans from different encodings store and hash equal;
* events / links (extras): ``orjson.dumps`` of a ``list`` of
  ``{"time_ns", "name", "attributes", "dropped_attributes_count"}`` /
  ``{"trace_id", "span_id", "trace_state", "flags", "attributes",
  "dropped_attributes_count"}`` (attribute values as above, as dicts).

:attr:`SpanBatch.spans` materialises the classic row tuples (:data:`SPAN_FIELDS`
order, attributes/events/links as Python values) for tests and debugging; it
is not used on the ingest path.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

#: Order of the fields of a materialised span row (:attr:`SpanBatch.spans`, :meth:`SpanBatch.span`).
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

#: Dense columns: one value per span, appended through the functions :meth:`SpanBatch.group` returns.
SPAN_COLUMNS: tuple[str, ...] = (
    "index",
    "trace_id",
    "span_id",
    "parent_span_id",
    "flags",
    "name",
    "kind",
    "start_ns",
    "end_ns",
    "status_code",
    "attributes",
)

#: Optional fields and their defaults; set with :meth:`SpanBatch.extra` only when not the default.
EXTRA_FIELDS: dict[str, Any] = {
    "trace_state": None,
    "status_message": None,
    "events": "[]",
    "links": "[]",
    "dropped_attributes_count": 0,
    "dropped_events_count": 0,
    "dropped_links_count": 0,
}

SPAN_KINDS: tuple[str, ...] = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_CODES: tuple[str, ...] = ("UNSET", "OK", "ERROR")

#: Largest valid nanosecond timestamp (DuckDB BIGINT / TIMESTAMP_NS upper bound).
MAX_TIME_NS = 2**63 - 1

#: Canonical JSON of an empty attribute set / event list / link list.
EMPTY_OBJECT = "{}"
EMPTY_LIST = "[]"

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

    def group(self, prefix: str, resource_id: str, scope_id: str) -> tuple[Callable[[Any], None], ...]: ...

    def extra(self, field: str, value: Any) -> None: ...

    def end_group(self) -> None: ...

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


def attributes_json(value: Any, _dumps: Callable[[Any], bytes] = orjson.dumps) -> str:
    """The canonical JSON of an attribute dict, event list or link list (``orjson.dumps``).

    Returned as ``str``: orjson's ``bytes`` keep its whole output buffer allocated
    (about 4 KiB each, whatever the length), a ``str`` copy is exactly sized.
    """
    return _dumps(value).decode()


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


class SpanBatch:
    """A columnar batch of decoded spans, resources, scopes and rejections.

    Dense columns are plain lists (attributes named as in :data:`SPAN_COLUMNS`),
    extras are sparse ``(row, value)`` lists, and runs of spans ("groups") share a
    location prefix, a resource id and a scope id. Resources and scopes are
    interned by content so each is stored once per batch.
    """

    def __init__(self, raw_limit: int = 4096) -> None:
        self.index: list[int] = []
        self.trace_id: list[str] = []
        self.span_id: list[str] = []
        self.parent_span_id: list[str | None] = []
        self.flags: list[int | None] = []
        self.name: list[str] = []
        self.kind: list[str] = []
        self.start_ns: list[int] = []
        self.end_ns: list[int] = []
        self.status_code: list[str] = []
        self.attributes: list[str] = []
        #: field -> [(row, value)] for the optional fields that are not the default.
        self.extras: dict[str, list[tuple[int, Any]]] = {f: [] for f in EXTRA_FIELDS}
        # groups: first row, location prefix, resource id, scope id
        self.group_start: list[int] = []
        self.group_prefix: list[str] = []
        self.group_resource: list[str] = []
        self.group_scope: list[str] = []
        self.resources: dict[str, tuple[str, str | None, int]] = {}
        self.scopes: dict[str, tuple[str | None, str | None, str, str | None, int]] = {}
        self.rejections: list[Rejection] = []
        self.spans_rejected = 0
        self.raw_limit = raw_limit
        self._appenders = tuple(getattr(self, c).append for c in SPAN_COLUMNS)

    # ------------------------------------------------------------------ decoder side

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

    def group(self, prefix: str, resource_id: str, scope_id: str) -> tuple[Callable[[Any], None], ...]:
        """Start a run of spans; return the ``append`` functions of the dense columns."""
        self.group_start.append(len(self.trace_id))
        self.group_prefix.append(prefix)
        self.group_resource.append(resource_id)
        self.group_scope.append(scope_id)
        return self._appenders

    def extra(self, field: str, value: Any) -> None:
        """Set an optional field (see :data:`EXTRA_FIELDS`) of the span appended last."""
        self.extras[field].append((len(self.trace_id) - 1, value))

    def end_group(self) -> None:
        """A run of spans is complete (subclasses may hand the batch on here)."""

    def span(self, row: tuple[Any, ...]) -> None:
        """Add one span given as a full row in :data:`SPAN_FIELDS` order (tests, debugging).

        ``where`` is the span's whole location; attributes, events and links may be
        Python values (serialised here) or canonical JSON.
        """
        (where, tid, sid, parent, ts, flags, name, kind, start, end, code, msg, attrs, events, links,
         da, de, dl, rid, scid) = row  # fmt: skip
        add_span(self, where, -1, rid, scid, tid, sid, parent, flags, name, kind, start, end, code,
                 _as_json(attrs), trace_state=ts, status_message=msg, events=_as_json(events),
                 links=_as_json(links), dropped=(da, de, dl))

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

    def mark(self) -> tuple[int, ...]:
        """A checkpoint for :meth:`rollback` (the sizes of everything a decoder appends to)."""
        return (len(self.trace_id), *(len(v) for v in self.extras.values()), len(self.group_start),
                len(self.resources), len(self.scopes), len(self.rejections), self.spans_rejected)  # fmt: skip

    def rollback(self, mark: tuple[int, ...]) -> None:
        """Undo everything added since :meth:`mark` (no flush may have happened in between)."""
        n, *rest = mark
        for col in SPAN_COLUMNS:
            del getattr(self, col)[n:]
        for values, size in zip(self.extras.values(), rest):
            del values[size:]
        groups, n_res, n_scopes, n_rej, self.spans_rejected = rest[len(self.extras):]
        for lst in (self.group_start, self.group_prefix, self.group_resource, self.group_scope):
            del lst[groups:]
        for table, size in ((self.resources, n_res), (self.scopes, n_scopes)):
            for key in list(table)[size:]:  # dicts keep insertion order: the new keys are last
                del table[key]
        del self.rejections[n_rej:]

    # ------------------------------------------------------------------ writer side

    def __len__(self) -> int:
        return len(self.trace_id)

    def where(self, row: int) -> str:
        """The location of span ``row`` in its input."""
        g = bisect.bisect_right(self.group_start, row) - 1
        k = self.index[row]
        return self.group_prefix[g] if k < 0 else f"{self.group_prefix[g]}{k}]"

    def wheres(self) -> list[str]:
        """The locations of all spans, in row order."""
        return [self.where(i) for i in range(len(self))]

    def group_runs(self) -> list[tuple[int, int]]:
        """(group, number of spans) for every non-empty group, in row order."""
        starts = self.group_start
        ends = starts[1:] + [len(self.trace_id)]
        return [(g, e - s) for g, (s, e) in enumerate(zip(starts, ends)) if e > s]

    def extra_column(self, field: str) -> list[Any]:
        """An optional field as a dense list (defaults filled in)."""
        out = [EXTRA_FIELDS[field]] * len(self)
        for row, value in self.extras[field]:
            out[row] = value
        return out

    def clear(self) -> None:
        """Empty the batch after it was written (the append functions stay valid).

        Resources and scopes are cleared too: the writer stores them with
        ``ON CONFLICT DO NOTHING``, and decoders intern them again when they meet them.
        """
        self.clear_spans()
        self.rejections.clear()
        self.spans_rejected = 0

    def clear_spans(self) -> None:
        """Empty the spans, groups, resources and scopes after they were converted for the
        writer, keeping the rejections and repairs (they are written with the whole batch)."""
        for col in SPAN_COLUMNS:
            getattr(self, col).clear()
        for values in self.extras.values():
            values.clear()
        self.group_start.clear()
        self.group_prefix.clear()
        self.group_resource.clear()
        self.group_scope.clear()
        self.resources.clear()
        self.scopes.clear()

    @property
    def spans(self) -> list[tuple[Any, ...]]:
        """The spans as row tuples in :data:`SPAN_FIELDS` order (attributes, events and
        links parsed back into Python values). For tests and debugging."""
        n = len(self)
        extra = {f: self.extra_column(f) for f in EXTRA_FIELDS}
        rid = [""] * n
        scid = [""] * n
        for g, count in self.group_runs():
            s = self.group_start[g]
            rid[s : s + count] = [self.group_resource[g]] * count
            scid[s : s + count] = [self.group_scope[g]] * count
        loads = orjson.loads
        return [
            (
                self.where(i), self.trace_id[i], self.span_id[i], self.parent_span_id[i],
                extra["trace_state"][i], self.flags[i], self.name[i], self.kind[i], self.start_ns[i],
                self.end_ns[i], self.status_code[i], extra["status_message"][i], loads(self.attributes[i]),
                loads(extra["events"][i]), loads(extra["links"][i]), extra["dropped_attributes_count"][i],
                extra["dropped_events_count"][i], extra["dropped_links_count"][i], rid[i], scid[i],
            )  # fmt: skip
            for i in range(n)
        ]


def malformed_reason(exc: BaseException) -> str:
    """The quarantine reason of a span whose decoding raised ``exc``.

    Names what is wrong with the input; Python's internal wording (``maximum
    recursion depth exceeded``) never becomes a reason.
    """
    if isinstance(exc, RecursionError):
        return "malformed span (a value is nested too deeply)"
    return f"malformed span ({type(exc).__name__}: {str(exc)[:200]})"


def add_span(
    sink: SpanSink,
    prefix: str,
    index: int,
    resource_id: str,
    scope_id: str,
    trace_id: str,
    span_id: str,
    parent_span_id: str | None,
    flags: int | None,
    name: str,
    kind: str,
    start_ns: int,
    end_ns: int,
    status_code: str,
    attributes: str,
    *,
    trace_state: str | None = None,
    status_message: str | None = None,
    events: str = EMPTY_LIST,
    links: str = EMPTY_LIST,
    dropped: tuple[int, int, int] = (0, 0, 0),
) -> None:
    """Add one span as a group of its own (for decoders whose spans each carry their own
    resource and scope, e.g. Jaeger and Zipkin). ``index`` -1 means ``prefix`` is the whole location."""
    ak, at, asid, apar, aflags, aname, akind, astart, aend, acode, aattr = sink.group(prefix, resource_id, scope_id)
    ak(index)
    at(trace_id)
    asid(span_id)
    apar(parent_span_id)
    aflags(flags)
    aname(name)
    akind(kind)
    astart(start_ns)
    aend(end_ns)
    acode(status_code)
    aattr(attributes)
    for field, value in (("trace_state", trace_state), ("status_message", status_message), ("events", events),
                         ("links", links), ("dropped_attributes_count", dropped[0]),
                         ("dropped_events_count", dropped[1]), ("dropped_links_count", dropped[2])):  # fmt: skip
        if value != EXTRA_FIELDS[field]:
            sink.extra(field, value)
    sink.end_group()


def _as_json(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode()
    if isinstance(value, str):
        return value
    return attributes_json(value)


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
