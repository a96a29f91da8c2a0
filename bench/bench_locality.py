"""Benchmark: the locality analyzer (derive) and ``fabric report locality`` on a 1M-span store.

Builds the database with the fixture generator (or takes ``--db``), then, in a
fresh process per run (so the peak RSS is the analysis's own), times:

* ``derive``: :func:`fabric_trace.analyzers.locality.derive` and the commit
  of its tables (the latency analyzer's tables already exist: it runs after
  it on every refresh);
* ``report``: :func:`fabric_trace.analyzers.locality.report.build_locality_report`
  plus rendering it as JSON.

It prints seconds, spans/s and peak RSS (``resource.getrusage``) per run and
the median over ``--runs``; ``--json FILE`` writes them.

    python bench/bench_locality.py --spans 1000000 --json bench-locality.json
    python bench/bench_locality.py --db /tmp/locbench/1M.duckdb --runs 3

The generated data is deliberately unhealthy, so that every part of the
analysis has work: 20% cache misses, 20% of state calls to replicas in another
region, 20% repeated fetches, 20% prefix-cache misses, 10% of LLM calls
without cached-token counts (Scenario knobs below).

Figures (2-core dev VM shared with other jobs; 1,054,665 spans, 36,000 traces,
534,647 accesses; ``--runs 3``, each run in a fresh process):

    load average 1.7:  run 1 4.14 s, run 2 3.76 s, run 3 4.10 s
                       median 4.10 s = derive + commit 3.69 s + report 0.37 s,
                       257,000 spans/s, CPU 5.8-6.3 s (DuckDB uses both cores),
                       peak RSS 1.15 GB
    load average 4-5:  5.4-14 s for the same work (the other jobs take the cores)

The what-if replays 24,000 of the 36,000 traces (721,000 spans) in about 0.4 s.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
from typing import Any

SCENARIO = dict(cache_miss_rate=0.2, remote_state_fraction=0.2, state_region="eu-west-1", repeat_fetch_rate=0.2,
                prefix_cache_miss_rate=0.2, missing_cached_tokens_rate=0.1, seed=3)
SPANS_PER_TRACE = 29.3  # the generator's average with these knobs


def build(path: str, n_spans: int) -> None:
    """Generate ~``n_spans`` spans and ingest them into ``path`` (all analyzers run once)."""
    from fabric_trace.fixtures_gen import Scenario, write_otlp_jsonl
    from fabric_trace.service import run_ingest

    traces = max(1, round(n_spans / SPANS_PER_TRACE))
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "spans.jsonl")
        t = time.perf_counter()
        stats = write_otlp_jsonl(Scenario(traces=traces, **SCENARIO), src, spans_per_request=512)
        print(f"generated {stats.spans:,} spans / {stats.traces:,} traces in {time.perf_counter() - t:.1f} s",
              file=sys.stderr)
        t = time.perf_counter()
        run_ingest(path, [src])
        print(f"ingested (with every analyzer) in {time.perf_counter() - t:.1f} s", file=sys.stderr)


def _run(path: str, out: Any) -> None:
    """One measured run, in its own process."""
    from fabric_trace.analyzers.engine import refresh
    from fabric_trace.analyzers.locality.report import build_locality_report
    from fabric_trace.config import Config
    from fabric_trace.render.formats import render
    from fabric_trace.store import db as store

    con = store.connect(path)
    ((spans,),) = con.execute("SELECT count(*) FROM span_store").fetchall()
    c0, t0 = time.process_time(), time.perf_counter()
    refresh(con, Config(), force=True)  # every analyzer, in batches (locality alone is no longer a store-wide step)
    t1 = time.perf_counter()
    text = render(build_locality_report(con), "json")
    t2, c2 = time.perf_counter(), time.process_time()
    con.close()
    out.put({
        "spans": int(spans), "derive_s": t1 - t0, "report_s": t2 - t1, "total_s": t2 - t0,
        "cpu_s": c2 - c0, "spans_per_s": spans / (t2 - t0),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "json_bytes": len(text),
    })


def measure(path: str) -> dict[str, Any]:
    """Run :func:`_run` in a fresh process and return its figures."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_run, args=(path, q))
    p.start()
    res = q.get()
    p.join()
    return res


def main(argv: list[str] | None = None) -> int:
    """Build or take the database, measure ``--runs`` times, print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", type=int, default=1_000_000, help="spans to generate (default 1,000,000)")
    ap.add_argument("--db", help="use this database instead of generating one (built there if missing)")
    ap.add_argument("--runs", type=int, default=3, help="measured runs (default 3); the median is reported")
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args(argv)
    tmp = None
    path = args.db
    if path is None:
        tmp = tempfile.TemporaryDirectory()
        path = os.path.join(tmp.name, "bench.duckdb")
    if not os.path.exists(path):
        build(path, args.spans)
    runs = []
    for k in range(args.runs):
        r = measure(path)
        runs.append(r)
        print(f"run {k + 1}: derive {r['derive_s']:.2f} s + report {r['report_s']:.2f} s = {r['total_s']:.2f} s "
              f"(cpu {r['cpu_s']:.2f} s), {r['spans_per_s']:,.0f} spans/s, peak RSS {r['peak_rss_mb']:.0f} MB",
              flush=True)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"median of {len(runs)}: {med['total_s']:.2f} s for {int(med['spans']):,} spans "
          f"(derive {med['derive_s']:.2f} s, report {med['report_s']:.2f} s), "
          f"{med['spans_per_s']:,.0f} spans/s, peak RSS {med['peak_rss_mb']:.0f} MB, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"runs": runs, "median": med, "scenario": SCENARIO}, f, indent=2, sort_keys=True)
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
