"""The Parquet lake and the Spark engine (issue 13): Spark local[N] vs DuckDB on the same machine,
and how the Spark run scales with the number of partitions it groups the spans into.

Steps, each in a fresh process (wall time measured outside, so Spark's JVM start is included;
CPU seconds of the process and its children, e.g. the JVM and the Python workers, and peak RSS of
the largest one by ``/usr/bin/time``):

* ``ingest``: the generated store (no analysis);
* ``export``: ``fabric lake export`` of it;
* ``duckdb``: a full analysis by the DuckDB engine (``fabric analyze`` after a forced refresh);
* ``spark P``: ``fabric analyze --engine spark --master local[N] --conf spark.sql.shuffle.partitions=P``
  for each P of ``--partitions``.

Then the derived row counts of both engines are compared (the row-for-row check is the test suite's).

Usage::

    python bench/bench_lake.py --spans 100000 --work /tmp/lake-bench --partitions 2,8,32 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ANALYZE_DUCKDB = r"""
import sys
from fabric_trace.analyzers.engine import refresh
from fabric_trace.config import Config
from fabric_trace.store import db as store
con = store.connect(sys.argv[1])
refresh(con, Config(), force=True)
con.close()
"""


def _tree_cpu(root: int, seen: dict[int, float]) -> None:
    """Record in ``seen`` the CPU seconds so far (user + system, own only) of ``root``'s descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    procs: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            procs[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        seen[pid] = max(seen.get(pid, 0.0), procs[pid][1])
        stack.extend(children.get(pid, []))


def run(label: str, argv: list[str]) -> dict[str, Any]:
    """Run one step in a fresh process: wall seconds, CPU seconds, peak RSS. The CPU seconds are those
    of the whole process tree (sampled every 0.5 s from /proc: the JVM Spark starts is not waited for,
    so ``/usr/bin/time`` does not see it), at least ``/usr/bin/time``'s figure."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:  # a file, not a pipe: Spark's log could fill a pipe
        proc = subprocess.Popen(["/usr/bin/time", "-f", "%M %U %S", *argv], stdout=subprocess.DEVNULL, stderr=err)
        seen: dict[int, float] = {}
        while proc.poll() is None:
            _tree_cpu(proc.pid, seen)
            time.sleep(0.5)
        wall = time.perf_counter() - start
        err.seek(0)
        stderr = err.read()
    if proc.returncode != 0:
        sys.exit(f"{label} failed ({proc.returncode}):\n{stderr[-3000:]}")
    rss_kb, user, system = stderr.strip().splitlines()[-1].split()
    waited = float(user) + float(system)
    tree = sum(seen.values())
    row = {"label": label, "seconds": round(wall, 1), "cpu_seconds": round(max(waited, tree), 1),
           "peak_rss_mb": round(int(rss_kb) / 1024)}
    print(f"{label:<44} {row['seconds']:>8.1f} s  cpu {row['cpu_seconds']:>8.1f} s  "
          f"peak RSS {row['peak_rss_mb']:>6} MB", file=sys.stderr, flush=True)
    return row


def counts(sql_con: Any, names: list[str]) -> dict[str, int]:
    return {n: sql_con.execute(f"SELECT count(*) FROM {n}").fetchall()[0][0] for n in names}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=100_000)
    ap.add_argument("--work", default="/tmp/fabric-lake-bench")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--partitions", default="2,8,32")
    ap.add_argument("--buckets", type=int, default=16)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from fabric_trace.fixtures_gen import Scenario, write_otlp_proto

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"spans-{args.spans}.bin"
    if not src.exists():  # ~28 spans per trace; 400 traces a day over the days the generator spreads them
        write_otlp_proto(Scenario(traces=max(1, args.spans // 28), seed=42), src, framed=True)
    db, lake = work / "store.duckdb", work / "lake"
    fabric = [sys.executable, "-m", "fabric_trace"]
    results = []
    if not db.exists():
        results.append(run("ingest (no analysis)", [*fabric, "trace", "ingest", str(src), "--db", str(db),
                                                    "--no-analyze"]))
    results.append(run("lake export", [*fabric, "lake", "export", "--db", str(db), "--out", str(lake),
                                       "--buckets", str(args.buckets)]))
    results.append(run("DuckDB engine: full analysis", [sys.executable, "-c", ANALYZE_DUCKDB, str(db)]))
    for p in [int(x) for x in args.partitions.split(",")]:
        results.append(run(f"Spark {args.master}, {p} shuffle partitions",
                           [*fabric, "analyze", "--engine", "spark", "--lake", str(lake), "--master", args.master,
                            "--conf", f"spark.sql.shuffle.partitions={p}", "--conf", "spark.ui.enabled=false",
                            "--conf", "spark.driver.memory=4g"]))
    import duckdb

    from fabric_trace.config import Config
    from fabric_trace.lake.read import connect_lake, derived_catalog

    names = list(derived_catalog())
    con = duckdb.connect(str(db), read_only=True)
    duck = counts(con, names)
    con.close()
    lcon = connect_lake(lake, Config())
    spark = counts(lcon, names)
    spans = lcon.execute("SELECT count(*) FROM span_store").fetchall()[0][0]
    partitions = lcon.execute("SELECT count(DISTINCT parse_dirpath(filename)) FROM "
                              "read_parquet(?, filename = true)", [str(lake / "spans" / "*" / "*" / "*.parquet")]
                              ).fetchall()[0][0]
    lcon.close()
    meta = {"spans": spans, "lake_partitions": partitions, "master": args.master, "cpus": os.cpu_count(),
            "load_avg": os.getloadavg(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "same_row_counts": duck == spark, "rows": duck}
    print(json.dumps(meta, indent=2), file=sys.stderr)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main()
