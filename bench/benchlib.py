"""What the in-process benchmarks share: CPU time beside wall time, one timed step, and a
generated store (``bench_reports.py``, ``bench_html.py``)."""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path
from typing import Any


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(label: str, fn: Any, out: list[dict[str, Any]], *, spans: int | None = None, **extra: Any) -> Any:
    """Run ``fn()``, append its wall and CPU seconds and the peak RSS so far to ``out``, print a line."""
    t, c = time.perf_counter(), cpu_seconds()
    value = fn()
    wall, cpu = time.perf_counter() - t, cpu_seconds() - c
    row: dict[str, Any] = {"step": label, "seconds": round(wall, 3), "cpu_seconds": round(cpu, 3)}
    if spans is not None:
        row["spans_per_s"] = round(spans / wall) if wall else None
    row.update(peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), **extra)
    out.append(row)
    rate = f" {row['spans_per_s'] or 0:>12,} spans/s " if spans is not None else "  "
    print(f"{label:32} {wall:7.2f} s (cpu {cpu:6.2f} s){rate}peak RSS {row['peak_rss_mb']:6} MB", flush=True)
    return value


def generated_store(db_path: str, spans: int, workdir: str, *, analyze: bool) -> None:
    """Create ``db_path`` from ``spans`` generated spans (seed 42, Collector-framed protobuf, ~28
    spans a trace) unless it exists; ``analyze`` runs the analysis with the ingest."""
    if Path(db_path).exists():
        return
    from fabric_trace.fixtures_gen import Scenario, write_otlp_proto
    from fabric_trace.service import run_ingest

    src = os.path.join(workdir, "bench.bin")
    t = time.perf_counter()
    write_otlp_proto(Scenario(traces=max(1, spans // 28), seed=42), src, framed=True)
    print(f"generated in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    t = time.perf_counter()
    run_ingest(db_path, [src], analyze=analyze)
    print(f"ingested{' and analysed' if analyze else ''} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
