"""Benchmark: the trust analysis (derive + report) on a large store.

Builds (or reuses, with ``--db``) a database of about ``--spans`` spans of the
fixture generator's multi-service agent traces (with unguarded and denied
tools, anonymous traces, external and plaintext calls), brings its derived
tables up to date once, then measures in a fresh process:

* ``derive``: :func:`fabric_trace.analyzers.trust.derive` in one transaction
  (zones, crossings, tree positions, every finding);
* ``report``: :func:`build_trust_report` rendered as JSON, and the Mermaid map;

and prints wall seconds, CPU seconds (all threads), spans/s (derive + report)
and the peak RSS of that process (``VmHWM``), plus the 1-minute
load average: on a shared machine the wall time depends on the other jobs,
the CPU time much less.

    python bench/bench_trust.py --spans 1000000 --db /tmp/trust1m.duckdb --json bench_trust.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from typing import Any


def create_store(path: str, n_spans: int, seed: int) -> None:
    """Generate ~n_spans spans as OTLP/JSON lines and ingest them (derived tables refreshed)."""
    from fabric_trace.fixtures_gen import Scenario, write_otlp_jsonl
    from fabric_trace.service import run_ingest

    scenario = Scenario(traces=max(1, int(n_spans / 26.5) + 1), seed=seed, unguarded_tool_rate=0.2,
                        denied_tool_executed_rate=0.1, policy_deny_rate=0.05, anonymous_rate=0.2,
                        plaintext_rate=0.3, external_tool_rate=0.4)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "bench.jsonl")
        t0 = time.perf_counter()
        stats = write_otlp_jsonl(scenario, src)
        t1 = time.perf_counter()
        run_ingest(path, [src])
        t2 = time.perf_counter()
    print(f"generated {stats.spans:,} spans in {t1 - t0:.1f} s; ingested + analysed in {t2 - t1:.1f} s",
          file=sys.stderr)


def peak_rss_mb() -> float:
    """Peak resident set of this process image, in MB.

    ``VmHWM`` from /proc (Linux): unlike ``ru_maxrss``, it is not inherited from
    the parent that forked this process, so a big parent does not inflate it.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _measure(path: str, queue: Any) -> None:
    import duckdb

    from fabric_trace.analyzers.engine import refresh
    from fabric_trace.analyzers.trust.report import build_trust_report, trust_map
    from fabric_trace.render.trustmap import render_map
    from fabric_trace.config import Config
    from fabric_trace.render.formats import render

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    con = duckdb.connect(path)
    n_spans = con.execute("SELECT count(*) FROM span_store").fetchone()[0]
    n_traces = con.execute("SELECT count(DISTINCT trace_id) FROM span_store").fetchone()[0]
    t0, c0 = time.perf_counter(), cpu()
    refresh(con, Config(), force=True)  # every analyzer, in batches (trust alone is no longer a store-wide step)
    t1, c1 = time.perf_counter(), cpu()
    text = render(build_trust_report(con), "json")
    t2, c2 = time.perf_counter(), cpu()
    mermaid = render_map(trust_map(con), "mermaid")
    t3, c3 = time.perf_counter(), cpu()
    findings = dict(con.execute("SELECT kind, count(*) FROM findings WHERE analyzer = 'trust' GROUP BY 1").fetchall())
    crossings = con.execute("SELECT count(*) FROM trust_crossings").fetchone()[0]
    con.close()
    queue.put({
        "spans": n_spans, "traces": n_traces, "crossings": crossings, "findings": findings,
        "derive_s": round(t1 - t0, 3), "report_s": round(t2 - t1, 3), "map_s": round(t3 - t2, 3),
        "derive_report_s": round(t2 - t0, 3), "spans_per_s": round(n_spans / (t2 - t0)),
        "derive_cpu_s": round(c1 - c0, 3), "report_cpu_s": round(c2 - c1, 3), "map_cpu_s": round(c3 - c2, 3),
        "load_average": round(os.getloadavg()[0], 2),
        "report_bytes": len(text), "map_bytes": len(mermaid),
        "peak_rss_mb": peak_rss_mb(),
    })


def main(argv: list[str] | None = None) -> int:
    """Build or reuse the store, then time the trust analysis in a fresh process."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", type=int, default=1_000_000, help="spans to generate (default 1,000,000)")
    ap.add_argument("--db", help="database to reuse or create (default: a temporary file)")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3, help="measurements (the best is reported)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)
    tmp = None
    path = args.db
    if path is None:
        tmp = tempfile.TemporaryDirectory()
        path = os.path.join(tmp.name, "bench.duckdb")
    ctx = mp.get_context("spawn")
    if not os.path.exists(path):
        try:
            # in its own process, so the ingest's memory stays out of the measurements
            maker = ctx.Process(target=create_store, args=(path, args.spans, args.seed))
            maker.start()
            maker.join()
            if maker.exitcode != 0:
                raise SystemExit(f"creating {path} failed (exit {maker.exitcode})")
        except BaseException:
            for leftover in (path, path + ".wal"):
                if os.path.exists(leftover):
                    os.remove(leftover)
            raise
    runs = []
    for _ in range(args.repeat):
        queue = ctx.Queue()
        proc = ctx.Process(target=_measure, args=(path, queue))
        proc.start()
        runs.append(queue.get())
        proc.join()
    best = min(runs, key=lambda r: r["derive_report_s"])
    best["runs_derive_report_s"] = [r["derive_report_s"] for r in runs]
    best["cpus"] = os.cpu_count()
    print(json.dumps(best, indent=2, sort_keys=True))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(best, f, indent=2, sort_keys=True)
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
