"""fabric: trace and analyse AI execution paths from OpenTelemetry exports."""

from __future__ import annotations

__version__ = "0.1.0"
