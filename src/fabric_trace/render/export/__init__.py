"""Traces as files for the viewers people already use: Perfetto, speedscope, Jaeger UI.

Pure functions from :class:`~.model.ExportSpan` lists to JSON bytes; loading
spans from the store is :mod:`fabric_trace.pictures.spans`. Rules:
docs/exports.md.
"""

from __future__ import annotations

from fabric_trace.render.export.jaeger import to_jaeger
from fabric_trace.render.export.lanes import assign_lanes
from fabric_trace.render.export.model import ExportSpan
from fabric_trace.render.export.perfetto import to_perfetto
from fabric_trace.render.export.speedscope import to_speedscope

__all__ = ["ExportSpan", "assign_lanes", "to_jaeger", "to_perfetto", "to_speedscope"]
