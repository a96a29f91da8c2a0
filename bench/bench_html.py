"""Pictures benchmark: ``fabric report html`` and ``fabric trace export`` on a large database.

Builds (or reuses, with ``--db``) a database of N generated spans and analyses
it, then times, in this process with CPU time beside wall time:

* the HTML report (``collect``: aggregates from SQL plus the sampled traces'
  spans; ``render``: SVG and template), with its size and waterfall count;
* beside it, on the same store in the same run, ``fabric report latency``'s
  report builder (the floor a text report costs) and a bare
  ``SELECT ... FROM traces`` scan (the floor of any report);
* a Perfetto export of one trace and of ``--many`` traces.

Usage::

    python bench/bench_html.py --spans 1000000 [--db bench/out/1m.duckdb]

Writes ``bench/out/html.json`` (and the report as ``bench/out/report.html``).
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


def _timed(label: str, fn: Any, out: list[dict[str, Any]], **extra: Any) -> Any:
    t, c = time.perf_counter(), _cpu()
    value = fn()
    wall, cpu = time.perf_counter() - t, _cpu() - c
    row = {"step": label, "seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), **extra}
    out.append(row)
    print(f"{label:32} {wall:7.2f} s (cpu {cpu:6.2f} s)  peak RSS {row['peak_rss_mb']:6} MB", flush=True)
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--db", default=None, help="reuse (or create) this database")
    ap.add_argument("--many", type=int, default=1000, help="traces in the multi-trace Perfetto export")
    ap.add_argument("--out", default=str(Path(__file__).parent / "out"))
    args = ap.parse_args()

    from fabric_trace.analyzers.latency.report import LatencyOptions, build_latency_report
    from fabric_trace.model import ReportFilter
    from fabric_trace.fixtures_gen import Scenario, write_otlp_proto
    from fabric_trace.pictures.export import export_traces
    from fabric_trace.pictures.report_data import HtmlOptions, collect, summary
    from fabric_trace.render.html import render_report
    from fabric_trace.service import open_analyzed, run_ingest

    tmp = tempfile.TemporaryDirectory(prefix="fabric-bench-")
    db_path = args.db or os.path.join(tmp.name, "bench.duckdb")
    if not Path(db_path).exists():
        src = os.path.join(tmp.name, "bench.bin")
        t = time.perf_counter()
        write_otlp_proto(Scenario(traces=max(1, args.spans // 28), seed=42), src, framed=True)
        print(f"generated in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        t = time.perf_counter()
        run_ingest(db_path, [src])
        print(f"ingested and analysed in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    results: list[dict[str, Any]] = []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open_analyzed(db_path) as con:  # brings the derived tables up to date (not timed)
        n = con.execute("SELECT count(*) FROM span_store").fetchone()[0]
        traces = con.execute("SELECT count(*) FROM traces").fetchone()[0]
        print(f"{n:,} spans, {traces:,} traces in {db_path}", file=sys.stderr)
        _timed("floor: scan traces", lambda: con.execute(
            "SELECT workflow, quantile_cont(duration_ns, 0.95), count(*) FROM traces GROUP BY ALL").fetchall(), results)
        _timed("baseline: report latency", lambda: build_latency_report(con, LatencyOptions()), results)
        opt = HtmlOptions()
        data = _timed("html: collect", lambda: collect(con, opt), results)
        html = _timed("html: render", lambda: render_report(data, summary(data)), results)
        total = sum(r["seconds"] for r in results if r["step"].startswith("html:"))
        size = len(html.encode())
        (out / "report.html").write_text(html, encoding="utf-8")
        results.append({"step": "html: total", "seconds": round(total, 3), "bytes": size,
                        "waterfalls": len(data["waterfalls"]), "spans_drawn": sum(len(w.spans) for w in data["waterfalls"])})
        print(f"html report: {total:.2f} s, {size / 1e6:.2f} MB, {len(data['waterfalls'])} waterfalls", flush=True)
        tid = data["waterfalls"][0].trace_id if data["waterfalls"] else None
        if tid:
            blob = _timed("export perfetto: 1 trace", lambda: export_traces(con, "perfetto", trace_id=tid), results)
            results[-1]["bytes"] = len(blob[0])
        blob = _timed(f"export perfetto: {args.many} traces",
                      lambda: export_traces(con, "perfetto", flt=ReportFilter(), limit=args.many), results)
        results[-1].update(bytes=len(blob[0]), spans=blob[2])
    (out / "html.json").write_text(json.dumps(
        {"meta": {"spans": n, "traces": traces, "cpus": os.cpu_count(), "load_avg": os.getloadavg()},
         "results": results}, indent=2))
    tmp.cleanup()


if __name__ == "__main__":
    main()
