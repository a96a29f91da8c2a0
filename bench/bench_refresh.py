"""Incremental and bounded analysis (issue 12): what an ingest costs as the store grows.

Measures, each step in a fresh process (wall time and peak RSS of that process):

* ``ingest N``        : ingest the N-span store without analysis (the baseline of the full analysis);
* ``analyze N``       : a first full analysis of the N-span store (``refresh(force=True)``, batches of whole
                        traces; the store-wide statistics of an earlier run are dropped first, so a re-run
                        measures a first analysis too);
* ``add 10k to empty``: ingest + analyse 10k new spans into an empty store;
* ``add 10k to N``    : ingest + analyse the same 10k spans into a copy of the analysed N-span store
                        (incremental refresh: only the new spans' traces, their sessions, and the traces
                        whose what-if medians changed are derived again).

Usage::

    python bench/bench_refresh.py --spans 1000000 --work /tmp/refresh-bench --json bench/out/refresh.json

``--baseline-src DIR`` (e.g. main's ``src`` from ``git archive``) runs the analysis steps with that code
first, in the same run and on the same store, so the figures are compared at the same machine load.

Inputs are generated once into ``--work`` and reused (``fixtures_gen``, Collector-framed protobuf).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

STEP = r"""
import sys, time
from fabric_trace.config import Config
from fabric_trace.service import run_ingest
from fabric_trace.store import db as store
kind, db = sys.argv[1], sys.argv[2]
t = time.perf_counter()
if kind == "ingest":
    run_ingest(db, sys.argv[3:], analyze=False)
elif kind == "analyze":
    from fabric_trace.analyzers import registry
    from fabric_trace.analyzers.engine import refresh
    con = store.connect(db)
    for a in registry().values():  # a first analysis: no previous statistics (a re-run re-analyses)
        for st in a.stats:
            con.execute(f"DROP TABLE IF EXISTS {st.table}")
    refresh(con, Config(), force=True)
    con.close()
else:
    run_ingest(db, sys.argv[3:])
print(time.perf_counter() - t)
"""


def step(kind: str, db: str, *inputs: str, src: str | None = None) -> dict[str, Any]:
    """Run one step in a fresh process; wall seconds (inside) and peak RSS (``/usr/bin/time``).
    ``src``: run another checkout's code (its ``src`` directory first on ``PYTHONPATH``)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    load = os.getloadavg()[0]
    out = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", sys.executable, "-c", STEP, kind, db, *inputs],
                         capture_output=True, text=True, check=True, env=env)
    rss_kb, user, system = out.stderr.strip().splitlines()[-1].split()
    return {"step": kind, "seconds": round(float(out.stdout.strip().splitlines()[-1]), 2),
            "cpu_seconds": round(float(user) + float(system), 2), "peak_rss_mb": round(int(rss_kb) / 1024),
            "code": "baseline" if src is not None else "this", "load_before": round(load, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--add", type=int, default=10_000)
    ap.add_argument("--work", default="/tmp/fabric-refresh-bench")
    ap.add_argument("--json", default=None)
    ap.add_argument("--no-add", action="store_true", help="only ingest and the full analysis (the 10M-span run)")
    ap.add_argument("--baseline-src", default=None,
                    help="the src directory of another checkout (e.g. main from git archive): its analysis steps "
                         "run first, in the same run, on the same store")
    args = ap.parse_args()

    from fabric_trace.fixtures_gen import Scenario, write_otlp_proto
    from fabric_trace.fixtures_gen.scenario import DEFAULT_BASE_TIME_NS

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    big, small = work / f"store-{args.spans}.bin", work / f"add-{args.add}.bin"
    spans_per_trace = 28  # the generator's average
    if not big.exists():
        write_otlp_proto(Scenario(traces=max(1, args.spans // spans_per_trace), seed=42), big, framed=True)
    if not small.exists():  # other traces, one day later
        write_otlp_proto(Scenario(traces=max(1, args.add // spans_per_trace), seed=43,
                                  base_time_ns=DEFAULT_BASE_TIME_NS + 86_400 * 10**9), small, framed=True)
    results: list[dict[str, Any]] = []
    base = str(work / "base.duckdb")
    if not Path(base).exists():
        results.append({**step("ingest", base, str(big)), "label": f"ingest {args.spans:,} (no analysis)"})
    for src in ([args.baseline_src] if args.baseline_src else []) + [None]:
        tag = " (baseline)" if src else ""
        results.append({**step("analyze", base, src=src), "label": f"full analysis of {args.spans:,}{tag}"})
        if args.no_add:
            continue
        empty = str(work / "empty.duckdb")
        for p in (empty, empty + ".wal"):
            Path(p).unlink(missing_ok=True)
        results.append({**step("add", empty, str(small), src=src), "label": f"add {args.add:,} to an empty store{tag}"})
        grown = str(work / "grown.duckdb")
        shutil.copyfile(base, grown)
        results.append({**step("add", grown, str(small), src=src),
                        "label": f"add {args.add:,} to the {args.spans:,} store{tag}"})
    _report(args, results)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def _report(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    meta = {"spans": args.spans, "commit": _commit(), "baseline_src": args.baseline_src, "add": args.add,
            "cpus": os.cpu_count(), "load_avg": os.getloadavg(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for r in results:
        print(f"{r['label']:<51} {r['seconds']:>8.2f} s  cpu {r['cpu_seconds']:>8.2f} s  "
              f"peak RSS {r['peak_rss_mb']:>6} MB  (load {r['load_before']})", file=sys.stderr)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main()
