"""``fabric trace export``: one trace, or the traces a filter selects, as a viewer's file."""

from __future__ import annotations

from enum import Enum

import duckdb

from fabric_trace.errors import UsageError
from fabric_trace.model import ReportFilter
from fabric_trace.pictures.spans import load_spans, resolve_trace_id, select_trace_ids
from fabric_trace.render.export import to_jaeger, to_perfetto, to_speedscope


class ExportFormat(str, Enum):
    """The file formats of ``fabric trace export``."""

    perfetto = "perfetto"
    speedscope = "speedscope"
    jaeger = "jaeger"

    def __str__(self) -> str:
        return self.value


def export_traces(con: duckdb.DuckDBPyConnection, fmt: ExportFormat | str, *, trace_id: str | None = None,
                  flt: ReportFilter | None = None, limit: int | None = None) -> tuple[bytes, int, int]:
    """Render one trace (``trace_id``) or every trace ``flt`` selects; returns (bytes, traces, spans)."""
    fmt = ExportFormat(fmt)
    if trace_id is not None:
        ids = [resolve_trace_id(con, trace_id)]
    else:
        ids = select_trace_ids(con, flt or ReportFilter(), limit)
        if not ids:
            raise UsageError("no trace matches the filters", hint="list traces with: fabric trace ls")
    spans = load_spans(con, ids)
    if fmt is ExportFormat.perfetto:
        data = to_perfetto(spans)
    elif fmt is ExportFormat.speedscope:
        data = to_speedscope(spans, f"trace {ids[0]}" if len(ids) == 1 else f"{len(ids)} traces")
    else:
        data = to_jaeger(spans)
    return data, len(ids), len(spans)
