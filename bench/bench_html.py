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
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchlib import generated_store, timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--db", default=None, help="reuse (or create) this database")
    ap.add_argument("--many", type=int, default=1000, help="traces in the multi-trace Perfetto export")
    ap.add_argument("--out", default=str(Path(__file__).parent / "out"))
    args = ap.parse_args()

    from fabric_trace.analyzers.latency.report import LatencyOptions, build_latency_report
    from fabric_trace.model import ReportFilter
    from fabric_trace.pictures.export import export_traces
    from fabric_trace.pictures.report_data import HtmlOptions, collect, summary
    from fabric_trace.render.html import render_report
    from fabric_trace.service import open_analyzed

    tmp = tempfile.TemporaryDirectory(prefix="fabric-bench-")
    db_path = args.db or os.path.join(tmp.name, "bench.duckdb")
    generated_store(db_path, args.spans, tmp.name, analyze=True)
    results: list[dict[str, Any]] = []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open_analyzed(db_path) as con:  # brings the derived tables up to date (not timed)
        n = con.execute("SELECT count(*) FROM span_store").fetchone()[0]
        traces = con.execute("SELECT count(*) FROM traces").fetchone()[0]
        print(f"{n:,} spans, {traces:,} traces in {db_path}", file=sys.stderr)
        timed("floor: scan traces", lambda: con.execute(
            "SELECT workflow, quantile_cont(duration_ns, 0.95), count(*) FROM traces GROUP BY ALL").fetchall(), results)
        timed("baseline: report latency", lambda: build_latency_report(con, LatencyOptions()), results)
        opt = HtmlOptions()
        data = timed("html: collect", lambda: collect(con, opt), results)
        html = timed("html: render", lambda: render_report(data, summary(data)), results)
        total = sum(r["seconds"] for r in results if r["step"].startswith("html:"))
        size = len(html.encode())
        (out / "report.html").write_text(html, encoding="utf-8")
        results.append({"step": "html: total", "seconds": round(total, 3), "bytes": size,
                        "waterfalls": len(data["waterfalls"]), "spans_drawn": sum(len(w.spans) for w in data["waterfalls"])})
        print(f"html report: {total:.2f} s, {size / 1e6:.2f} MB, {len(data['waterfalls'])} waterfalls", flush=True)
        tid = data["waterfalls"][0].trace_id if data["waterfalls"] else None
        if tid:
            blob = timed("export perfetto: 1 trace", lambda: export_traces(con, "perfetto", trace_id=tid), results)
            results[-1]["bytes"] = len(blob[0])
        blob = timed(f"export perfetto: {args.many} traces",
                      lambda: export_traces(con, "perfetto", flt=ReportFilter(), limit=args.many), results)
        results[-1].update(bytes=len(blob[0]), spans=blob[2])
    (out / "html.json").write_text(json.dumps(
        {"meta": {"spans": n, "traces": traces, "cpus": os.cpu_count(), "load_avg": os.getloadavg()},
         "results": results}, indent=2))
    tmp.cleanup()


if __name__ == "__main__":
    main()
