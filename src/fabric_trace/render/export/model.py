"""The span record every exporter and the HTML waterfall draw from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class ExportSpan:
    """One span as the exporters need it (times in integer ns since the epoch)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    service: str
    start_ns: int
    end_ns: int
    kind: str = "INTERNAL"
    role: str = "internal"
    status_code: str = "UNSET"
    status_message: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)
    """The resource attributes (``service.name`` included when known)."""
    resource_id: str = ""
    scope_name: str | None = None
    scope_version: str | None = None
    flags: int | None = None
    depth: int = 0
    self_ns: int | None = None
    critical_ns: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None

    @property
    def end_clipped(self) -> int:
        """The end, never before the start (a negative duration draws as zero)."""
        return self.end_ns if self.end_ns >= self.start_ns else self.start_ns
