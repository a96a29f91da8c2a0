"""The generator's span model: small mutable dataclasses, independent of any encoding.

Ids are lowercase hex strings (trace 32 chars, span 16 chars), times integer
nanoseconds, ``kind`` and ``status_code`` the OTLP enum integers. ``resource``
and ``scope`` index the tables of :class:`GeneratedTraces` (or of the
topology when streaming).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .scenario import Scenario
from .topology import Instance
from .truth import GroundTruth

INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER = 1, 2, 3, 4, 5
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2

#: W3C "sampled" + HAS_IS_REMOTE (bit 8); IS_REMOTE (bit 9) is added when the parent is remote.
FLAGS_LOCAL_PARENT = 0x101
FLAGS_REMOTE_PARENT = 0x301


@dataclass(slots=True)
class GenEvent:
    """A span event."""

    time_ns: int
    name: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class GenLink:
    """A span link to another span (possibly in another trace)."""

    trace_id: str
    span_id: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class GenSpan:
    """One generated span.

    ``role`` is the generator's own label of the span (see ``fixtures/README.md``);
    it is *not* exported, so analyzers must infer it from the attributes.
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: int
    start_ns: int
    end_ns: int
    resource: int
    scope: int
    attributes: dict[str, Any]
    role: str = ""
    events: list[GenEvent] = field(default_factory=list)
    links: list[GenLink] = field(default_factory=list)
    status_code: int = STATUS_UNSET
    status_message: str = ""
    flags: int = FLAGS_LOCAL_PARENT

    def to_dict(self) -> dict[str, Any]:
        """A plain-dict view (snake_case keys), handy in tests and notebooks."""
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "name": self.name,
            "kind": self.kind,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "resource": self.resource,
            "scope": self.scope,
            "attributes": dict(self.attributes),
            "role": self.role,
            "events": [
                {"time_ns": e.time_ns, "name": e.name, "attributes": dict(e.attributes)} for e in self.events
            ],
            "links": [
                {"trace_id": ln.trace_id, "span_id": ln.span_id, "attributes": dict(ln.attributes)}
                for ln in self.links
            ],
            "status_code": self.status_code,
            "status_message": self.status_message,
            "flags": self.flags,
        }


@dataclass
class GeneratedTraces:
    """The output of :func:`fabric_trace.fixtures_gen.generate`.

    ``spans`` are in export order (per trace, by end time); ``resources`` is the
    resource table indexed by :attr:`GenSpan.resource`; ``scopes`` the
    ``(name, version)`` table indexed by :attr:`GenSpan.scope`.
    """

    scenario: Scenario
    spans: list[GenSpan]
    resources: list[Instance]
    scopes: list[tuple[str, str]]
    truth: GroundTruth

    def service_of(self, span: GenSpan) -> str:
        """``service.name`` of a span's resource."""
        return self.resources[span.resource].service_name

    def by_id(self) -> dict[tuple[str, str], GenSpan]:
        """Index of spans by ``(trace_id, span_id)``."""
        return {(s.trace_id, s.span_id): s for s in self.spans}
