"""Where an ingest's memory goes: peak RSS and DuckDB's own accounting, sampled while it runs.

Ingests FILE[,FILE...] into a new store at DB (``fabric_trace.ingest.pipeline.ingest``, no
analysis, as ``run_ingest(..., analyze=False)``) and every ``--every`` seconds records the
process RSS, Arrow's allocated bytes and DuckDB's ``duckdb_memory()`` by tag (read on a
second connection to the same database while the INSERT runs). Optional SQL statements
(``--sql "SET memory_limit='500MB'"``) run on the store connection first.

Usage::

    nice -n 10 python bench/ingest_memory.py FILE[,FILE...] DB [--sql STMT]... [--every 2]

Prints a sample line every ``--print-every`` samples and, last, one JSON line: spans, wall and
CPU seconds, peak RSS (``ru_maxrss``) and the largest figure seen per DuckDB tag. Input files:
``bench_ingest.py --data DIR`` keeps its generated ones; a Collector-framed protobuf file can
be cut at a frame boundary for a smaller one (``--prefix-bytes`` writes ``DB.input.bin``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import threading
import time


def prefix(src: str, n_bytes: int, out: str) -> None:
    """The first whole frames (4-byte big-endian length + message) of ``src`` up to ``n_bytes``."""
    done = 0
    with open(src, "rb") as f, open(out, "wb") as o:
        while done < n_bytes:
            hdr = f.read(4)
            if len(hdr) < 4:
                break
            body = f.read(int.from_bytes(hdr, "big"))
            o.write(hdr + body)
            done += 4 + len(body)


def rss_mb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024
    return -1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files")
    ap.add_argument("db")
    ap.add_argument("--sql", action="append", default=[])
    ap.add_argument("--every", type=float, default=2.0)
    ap.add_argument("--print-every", type=int, default=5)
    ap.add_argument("--prefix-bytes", type=float, help="ingest the first N bytes (whole frames) of the one protobuf FILE")
    args = ap.parse_args()

    import duckdb
    import pyarrow as pa

    from fabric_trace.ingest.pipeline import IngestOptions, ingest
    from fabric_trace.store.db import connect

    paths = args.files.split(",")
    if args.prefix_bytes:
        cut = args.db + ".input.bin"
        prefix(paths[0], int(args.prefix_bytes), cut)
        paths = [cut]
    for p in (args.db, args.db + ".wal"):
        if os.path.exists(p):
            os.remove(p)
    con = connect(args.db)
    for stmt in args.sql:
        con.execute(stmt)
    side = con.cursor()
    samples: list[dict] = []
    peak_tags: dict[str, int] = {}
    stop = threading.Event()

    def sample() -> None:
        t0 = time.monotonic()
        while not stop.is_set():
            try:
                rows = side.execute("SELECT tag, memory_usage_bytes >> 20, temporary_storage_bytes >> 20 "
                                    "FROM duckdb_memory() WHERE memory_usage_bytes + temporary_storage_bytes > 0"
                                    ).fetchall()
            except duckdb.Error:  # e.g. out of memory under a --sql memory_limit: the ingest reports it
                rows = []
            for tag, mem, _tmp in rows:
                peak_tags[tag] = max(peak_tags.get(tag, 0), int(mem))
            samples.append({"t": round(time.monotonic() - t0, 1), "rss_mb": rss_mb(),
                            "arrow_mb": pa.total_allocated_bytes() >> 20,
                            "duckdb_mb": {t: [m, tmp] for t, m, tmp in rows if m + tmp >= 10}})
            if len(samples) % args.print_every == 1:
                print(json.dumps(samples[-1]), flush=True)
            stop.wait(args.every)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    try:
        summary = ingest(con, args.db, paths, IngestOptions())
    finally:
        stop.set()
        thread.join()
    seconds = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"files": paths, "spans": summary.total("spans_ingested"), "seconds": round(seconds, 2),
                      "cpu_s": round(ru.ru_utime + ru.ru_stime, 2), "peak_rss_mb": round(ru.ru_maxrss / 1024),
                      "duckdb_peak_mb_by_tag": peak_tags, "sql": args.sql}))
    con.close()


if __name__ == "__main__":
    main()
