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
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchlib import generated_store, timed


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
    from fabric_trace.store import db as store

    tmp = tempfile.TemporaryDirectory(prefix="fabric-bench-")
    db_path = args.db or os.path.join(tmp.name, "bench.duckdb")
    generated_store(db_path, args.spans, tmp.name, analyze=False)
    con = store.connect(db_path)
    n = con.execute("SELECT count(*) FROM span_store").fetchone()[0]
    print(f"{n:,} spans in {db_path}", file=sys.stderr)
    results: list[dict[str, Any]] = []
    config = Config()
    from fabric_trace.analyzers.engine import refresh

    timed(f"derive all ({', '.join(registry())})", lambda: refresh(con, config, force=True), results, spans=n)
    timed("report latency", lambda: build_latency_report(con, LatencyOptions()), results, spans=n)
    timed("report locality", lambda: build_locality_report(con), results, spans=n)
    timed("report trust", lambda: build_trust_report(con), results, spans=n)
    con.close()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.out, "reports.json").write_text(json.dumps(
        {"meta": {"spans": n, "cpus": os.cpu_count(), "load_avg": os.getloadavg()}, "results": results}, indent=2))
    tmp.cleanup()


if __name__ == "__main__":
    main()
