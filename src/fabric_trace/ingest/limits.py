"""Resource limits applied while reading and decoding one input file.

Every limit protects the process against hostile or broken input (decompression
bombs, absurd length prefixes, endless lines, deep nesting). The defaults follow
docs/reliability (OTLP recommends 64 MiB per message after decompression).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from fabric_trace.errors import UsageError

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


@dataclass(frozen=True)
class Limits:
    """Limits for one ingest run (immutable; build a new one with :func:`dataclasses.replace`).

    * ``max_decompressed_bytes``: total bytes a gzip/zstd file may expand to; beyond it the
      whole file is refused (``InputError``) so nothing of a bomb is loaded.
    * ``max_frame_bytes``: largest length-prefixed protobuf frame (checked before reading it),
      and largest decompressed payload of one legacy zstd frame.
    * ``max_line_bytes``: longest JSON line; a longer line is quarantined and skipped.
    * ``max_document_bytes``: largest whole JSON document held in memory; for a raw protobuf
      message (decoded in pieces above 64 MiB), the largest top-level field (one resourceSpans).
    * ``max_json_depth``: nesting depth kept in OTLP/JSON attribute values (deeper -> emptied).
    * ``max_value_depth``: nesting depth kept in protobuf ``AnyValue`` (deeper -> emptied).
    * ``max_string_bytes``: longest attribute string value in UTF-8 bytes (longer -> truncated
      on a character boundary).
    """

    max_decompressed_bytes: int = 1 * GIB
    max_frame_bytes: int = 64 * MIB
    max_line_bytes: int = 64 * MIB
    max_document_bytes: int = 1 * GIB
    max_json_depth: int = 64
    max_value_depth: int = 64
    max_string_bytes: int = 64 * KIB

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise UsageError(f"limit {f.name} must be a positive integer, got {value!r}")


DEFAULT_LIMITS = Limits()
