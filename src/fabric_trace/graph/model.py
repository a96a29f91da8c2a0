"""Value objects of the call-graph algorithms (see docs/critical-path.md).

Everything here is immutable. Times are integer nanoseconds since the epoch,
never floats. A :class:`Span` is a read-only copy of the columns of
``span_store`` that the graph algorithms need (like Jaeger's ``CPSpan``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

#: Kinds of :class:`Repair` records, in the order the repairs are applied.
DUPLICATE_SPAN_ID: Final = "duplicate_span_id"
IMPLAUSIBLE_TIME: Final = "implausible_time"
NEGATIVE_DURATION: Final = "negative_duration"
ORPHAN: Final = "orphan"
SELF_PARENT: Final = "self_parent"
CYCLE_CUT: Final = "cycle_cut"
EXTRA_ROOT: Final = "extra_root"
CLOCK_SKEW: Final = "clock_skew"
CLOCK_SKEW_ADJUSTED: Final = "clock_skew_adjusted"
CLOCK_SKEW_EXCEEDS_MAX: Final = "clock_skew_exceeds_max"
CHILD_CLIPPED: Final = "child_clipped"
CHILD_OUTSIDE_PARENT: Final = "child_outside_parent"

REPAIR_KINDS: Final[tuple[str, ...]] = (
    DUPLICATE_SPAN_ID,
    IMPLAUSIBLE_TIME,
    NEGATIVE_DURATION,
    ORPHAN,
    SELF_PARENT,
    CYCLE_CUT,
    EXTRA_ROOT,
    CLOCK_SKEW,
    CLOCK_SKEW_ADJUSTED,
    CLOCK_SKEW_EXCEEDS_MAX,
    CHILD_CLIPPED,
    CHILD_OUTSIDE_PARENT,
)

#: Repair kinds that mean data is missing: the trace is marked ``incomplete``.
INCOMPLETE_KINDS: Final = frozenset({ORPHAN})


@dataclass(frozen=True, slots=True)
class Span:
    """The columns of one span that the graph algorithms read."""

    span_id: str
    """Lowercase hex span id."""
    parent_span_id: str | None
    """Parent span id; ``None`` (or ``""``) for a root."""
    start_ns: int
    """Start time, ns since the epoch."""
    end_ns: int
    """End time, ns since the epoch (may be < start: repaired as zero-length)."""
    kind: str = "INTERNAL"
    """OTLP span kind: INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER, UNSPECIFIED."""
    service_name: str | None = None
    """``service.name`` of the emitting resource."""
    host: str | None = None
    """Host of the emitting resource (the clock domain, see clock skew)."""
    trace_id: str = ""
    """Trace id (all spans given to the per-trace functions share it)."""
    name: str = ""
    """Span name."""
    status_code: str = "UNSET"
    """UNSET, OK or ERROR."""
    links: tuple[tuple[str, str], ...] = ()
    """Span links as ``(trace_id, span_id)`` pairs."""

    @staticmethod
    def coerce(value: Span | Mapping[str, Any]) -> Span:
        """Return ``value`` as a :class:`Span` (accepts a row mapping of ``span_store``)."""
        if isinstance(value, Span):
            return value
        parent = value.get("parent_span_id") or None
        links = value.get("links") or ()
        if isinstance(links, str):
            import orjson

            links = orjson.loads(links) or ()
        pairs = tuple(
            (str(link.get("trace_id") or ""), str(link.get("span_id") or ""))
            for link in links
            if isinstance(link, Mapping)
        )
        return Span(
            span_id=str(value["span_id"]),
            parent_span_id=parent,
            start_ns=int(value["start_ns"]),
            end_ns=int(value["end_ns"]),
            kind=str(value.get("kind") or "UNSPECIFIED"),
            service_name=value.get("service_name"),
            host=value.get("host"),
            trace_id=str(value.get("trace_id") or ""),
            name=str(value.get("name") or ""),
            status_code=str(value.get("status_code") or "UNSET"),
            links=pairs,
        )


def coerce_spans(spans: Iterable[Span | Mapping[str, Any]]) -> list[Span]:
    """Coerce every element of ``spans`` to :class:`Span`."""
    return [Span.coerce(s) for s in spans]


@dataclass(frozen=True, slots=True, order=True)
class Segment:
    """One piece of a critical path: ``span_id`` was blocking during [start_ns, end_ns)."""

    start_ns: int
    """Segment start (inclusive), ns."""
    end_ns: int
    """Segment end (exclusive), ns; always > ``start_ns``."""
    span_id: str
    """The span that was on the critical path during the segment."""

    @property
    def duration_ns(self) -> int:
        """Length of the segment in ns."""
        return self.end_ns - self.start_ns


@dataclass(frozen=True, slots=True)
class Repair:
    """One repair or warning applied to a trace before analysis (never silent).

    The optional fields are filled where they mean something for ``kind``:
    ``offset_ns`` is the clock-skew delta, the negative duration, the ns
    clipped off a child, or how far an implausible start was moved; ``count`` is the number of copies for duplicates.
    """

    trace_id: str
    """Trace the repair applies to."""
    kind: str
    """One of :data:`REPAIR_KINDS`."""
    span_id: str
    """The span repaired (the child, for clipping and skew)."""
    parent_span_id: str | None = None
    """The parent involved (missing parent, cut edge target, skew/clip parent)."""
    offset_ns: int | None = None
    """Skew delta / negative duration / clipped ns, see above."""
    service: str | None = None
    """Service of ``span_id`` (clock skew)."""
    parent_service: str | None = None
    """Service of the parent (clock skew)."""
    count: int = 1
    """How many occurrences this record stands for (duplicates: copies seen)."""

    def sort_key(self) -> tuple[str, int, str]:
        """Canonical order: trace, pipeline order of the kind, span id."""
        return (self.trace_id, REPAIR_KINDS.index(self.kind), self.span_id)


@dataclass(frozen=True, slots=True)
class SpanMetrics:
    """Per-span results."""

    span_id: str
    """The span."""
    root_span_id: str
    """Root of the (repaired) tree the span belongs to."""
    depth: int
    """Edges from the root (root = 0)."""
    child_count: int
    """Direct children in the repaired tree (all kinds, clipped or not)."""
    start_ns: int
    """Start after repairs (skew shift applied)."""
    end_ns: int
    """End after repairs (>= start, skew shift applied)."""
    self_ns: int
    """Duration minus the union of the children's intervals clipped to the span."""
    on_critical_path_ns: int
    """Sum of this span's critical-path segments."""
    shift_ns: int = 0
    """Clock-skew shift applied to this span (0 unless adjustment is enabled)."""


@dataclass(frozen=True, slots=True)
class TraceFacts:
    """Per-trace results."""

    trace_id: str
    """The trace."""
    root_span_id: str
    """Main root: earliest-starting parentless root (see docs/critical-path.md)."""
    root_count: int
    """Number of roots after repairs (parentless + orphans + cut cycles)."""
    start_ns: int | None
    """Earliest span start (after repairs); ``None`` if no span of the trace has a plausible time."""
    end_ns: int | None
    """Latest span end (after repairs); ``None`` like ``start_ns``."""
    duration_ns: int | None
    """``end_ns - start_ns``: the end-to-end wall-clock time of the trace (``None``: unknown)."""
    root_duration_ns: int | None
    """Duration of the main root (= its critical-path length; ``None``: unknown)."""
    span_count: int
    """Distinct span ids."""
    error_count: int
    """Spans with status ERROR."""
    incomplete: bool
    """Some parent is missing (orphans were promoted to roots)."""
    repair_count: int
    """Number of :class:`Repair` records for the trace."""


@dataclass(frozen=True)
class TraceAnalysis:
    """Everything :func:`fabric_trace.graph.reference.analyze_trace` computes for one trace."""

    facts: TraceFacts
    """Per-trace facts."""
    spans: dict[str, SpanMetrics]
    """Per-span metrics by span id."""
    critical_paths: dict[str, tuple[Segment, ...]]
    """Critical path of every root, by root span id, segments in time order."""
    repairs: tuple[Repair, ...] = field(default_factory=tuple)
    """Repairs applied, sorted."""
