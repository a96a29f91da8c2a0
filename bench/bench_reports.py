"""Analysis benchmark: derived tables and reports on a large database.

Builds (or reuses, with ``--db``) a database of N generated spans, then times,
each in this process with CPU time beside wall time:

* each analyzer's ``derive`` (latency = call graphs + critical path + self
  time; locality; trust), in registry order;
* each report (``fabric report latency|locality|trust``) once the derived
  tables exist.

Usage::

    python bench/bench_reports.py --spans 1000000 [--db bench/out/1m.duckdb] [--keep]

Writes ``bench/out/reports.json``. The call-graph baseline (networkx per trace)
is in ``bench/bench_critical_path.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _timed(label: str, fn: Any, spans: int, out: list[dict[str, Any]]) -> Any:
    t, c = time.perf_counter(), _cpu()
    value = fn()
    wall, cpu = time.perf_counter() - t, _cpu() - c
    row = {"step": label, "seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
           "spans_per_s": round(spans / wall) if wall else None,
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    out.append(row)
    print(f"{label:28} {wall:7.2f} s (cpu {cpu:6.2f} s) {row['spans_per_s'] or 0:>12,} spans/s  "
          f"peak RSS {row['peak_rss_mb']:6} MB", flush=True)
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--db", default=None, help="reuse (or create) this database")
    ap.add_argument("--out", default=str(Path(__file__).parent / "out"))
    args = ap.parse_args()

    from fabric_trace.analyzers import registry
    from fabric_trace.analyzers.latency.report import LatencyOptions, build_latency_report
    from fabric_trace.analyzers.locality.report import build_locality_report
    from fabric_trace.analyzers.trust.report import build_trust_report
    from fabric_trace.config import Config
    from fabric_trace.fixtures_gen import Scenario, write_otlp_proto
    from fabric_trace.service import run_ingest
    from fabric_trace.store import db as store

    tmp = tempfile.TemporaryDirectory(prefix="fabric-bench-")
    db_path = args.db or os.path.join(tmp.name, "bench.duckdb")
    if not Path(db_path).exists():
        src = os.path.join(tmp.name, "bench.bin")
        t = time.perf_counter()
        write_otlp_proto(Scenario(traces=max(1, args.spans // 28), seed=42), src, framed=True)
        print(f"generated in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        t = time.perf_counter()
        run_ingest(db_path, [src], analyze=False)
        print(f"ingested in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    con = store.connect(db_path)
    n = con.execute("SELECT count(*) FROM span_store").fetchone()[0]
    print(f"{n:,} spans in {db_path}", file=sys.stderr)
    results: list[dict[str, Any]] = []
    config = Config()
    from fabric_trace.analyzers.engine import refresh

    _timed(f"derive all ({', '.join(registry())})", lambda: refresh(con, config, force=True), n, results)
    _timed("report latency", lambda: build_latency_report(con, LatencyOptions()), n, results)
    _timed("report locality", lambda: build_locality_report(con), n, results)
    _timed("report trust", lambda: build_trust_report(con), n, results)
    con.close()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.out, "reports.json").write_text(json.dumps(
        {"meta": {"spans": n, "cpus": os.cpu_count(), "load_avg": os.getloadavg()}, "results": results}, indent=2))
    tmp.cleanup()


if __name__ == "__main__":
    main()
