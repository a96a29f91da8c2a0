"""Ingest benchmark: fabric vs a plain-Python baseline, in the same run.

Generates N spans with the fixture generator (streamed, constant memory) as
OTLP JSON lines, gzip JSON lines and Collector-framed protobuf, then times, each
in a fresh subprocess (so peak RSS is that run's own):

* ``fabric``: ``fabric trace ingest FILE --db NEW.duckdb --no-analyze`` (everything
  included: decoding, normalized columns, attributes, primary key, manifest);
* ``baseline``: the straightforward loop — ``json.loads`` each line, walk the
  dicts into row tuples (ids, times, name, kind, status, attributes as JSON
  text), insert into DuckDB with a primary key via Arrow. Protobuf baseline:
  ``ExportTraceServiceRequest.FromString`` + the same walk over messages.

Usage::

    python bench/bench_ingest.py --spans 1000000 [--formats jsonl,jsonl.gz,proto] [--out bench/out]

Prints a table (wall time, CPU time of the run's process, spans/s, peak RSS, the
1-minute load average before the run) and writes ``bench/out/ingest.json``. Other
jobs on the machine inflate wall time first: compare the CPU seconds too, and re-run
when the load is low.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASELINE = r'''
import gzip, json, sys, time, resource
import duckdb, pyarrow as pa
path, db, fmt = sys.argv[1], sys.argv[2], sys.argv[3]
KINDS = ["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"]
STATUS = ["UNSET", "OK", "ERROR"]
def anyv(v):
    for k in ("stringValue", "boolValue", "doubleValue"):
        if k in v: return v[k]
    if "intValue" in v: return int(v["intValue"])
    if "arrayValue" in v: return [anyv(x) for x in v["arrayValue"].get("values", [])]
    if "kvlistValue" in v: return {kv["key"]: anyv(kv.get("value", {})) for kv in v["kvlistValue"].get("values", [])}
    return None
cols = {k: [] for k in ("trace_id","span_id","parent_span_id","name","kind","start_ns","end_ns","status_code","attributes","service_name")}
con = duckdb.connect(db)
con.execute("CREATE TABLE spans (trace_id VARCHAR, span_id VARCHAR, parent_span_id VARCHAR, name VARCHAR, kind VARCHAR, start_ns BIGINT, end_ns BIGINT, status_code VARCHAR, attributes JSON, service_name VARCHAR, PRIMARY KEY (trace_id, span_id))")
def flush():
    if not cols["trace_id"]: return
    con.register("b", pa.table(cols)); con.execute("INSERT INTO spans SELECT * FROM b ON CONFLICT DO NOTHING"); con.unregister("b")
    for v in cols.values(): v.clear()
def add(tid, sid, pid, name, kind, st, en, status, attrs, svc):
    c = cols
    c["trace_id"].append(tid); c["span_id"].append(sid); c["parent_span_id"].append(pid); c["name"].append(name)
    c["kind"].append(kind); c["start_ns"].append(st); c["end_ns"].append(en); c["status_code"].append(status)
    c["attributes"].append(json.dumps(attrs)); c["service_name"].append(svc)
    if len(c["trace_id"]) >= 50000: flush()
t0 = time.perf_counter()
con.execute("BEGIN")
if fmt.startswith("jsonl"):
    f = gzip.open(path, "rb") if fmt.endswith(".gz") else open(path, "rb")
    for line in f:
        doc = json.loads(line)
        for rs in doc.get("resourceSpans", []):
            res = {kv["key"]: anyv(kv.get("value", {})) for kv in rs.get("resource", {}).get("attributes", [])}
            svc = res.get("service.name")
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    attrs = {kv["key"]: anyv(kv.get("value", {})) for kv in s.get("attributes", [])}
                    add(s["traceId"].lower(), s["spanId"].lower(), (s.get("parentSpanId") or "").lower() or None, s.get("name", ""),
                        KINDS[s.get("kind", 0)], int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"]),
                        STATUS[s.get("status", {}).get("code", 0)], attrs, svc)
else:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    def pv(v):
        w = v.WhichOneof("value")
        if w is None: return None
        if w == "array_value": return [pv(x) for x in v.array_value.values]
        if w == "kvlist_value": return {kv.key: pv(kv.value) for kv in v.kvlist_value.values}
        if w == "bytes_value": return v.bytes_value.hex()
        return getattr(v, w)
    data = open(path, "rb").read(); pos = 0
    while pos < len(data):
        n = int.from_bytes(data[pos:pos+4], "big"); msg = ExportTraceServiceRequest.FromString(data[pos+4:pos+4+n]); pos += 4 + n
        for rs in msg.resource_spans:
            res = {kv.key: pv(kv.value) for kv in rs.resource.attributes}; svc = res.get("service.name")
            for ss in rs.scope_spans:
                for s in ss.spans:
                    attrs = {kv.key: pv(kv.value) for kv in s.attributes}
                    add(s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex() or None, s.name, KINDS[s.kind],
                        s.start_time_unix_nano, s.end_time_unix_nano, STATUS[s.status.code], attrs, svc)
flush()
con.execute("COMMIT")
n = con.execute("SELECT count(*) FROM spans").fetchone()[0]
con.close()
el = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"spans": n, "seconds": el, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": ru.ru_maxrss / 1024}))
'''

FABRIC = r'''
import json, resource, sys, time
from fabric_trace.service import run_ingest
path, db = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
s = run_ingest(db, [path], analyze=False)
el = time.perf_counter() - t0
d = s.as_dict()
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"spans": d["spans_ingested"], "seconds": el, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": ru.ru_maxrss / 1024}))
'''


def generate(n_spans: int, workdir: Path, formats: list[str]) -> dict[str, Path]:
    from fabric_trace.fixtures_gen import Scenario, write_otlp_jsonl, write_otlp_proto

    traces = max(1, n_spans // 28)  # the default scenario averages ~28 spans per trace
    scenario = Scenario(traces=traces, seed=42)
    out: dict[str, Path] = {}
    jsonl = workdir / "bench.jsonl"
    if "jsonl" in formats or "jsonl.gz" in formats:
        write_otlp_jsonl(scenario, jsonl, spans_per_request=512)
        out["jsonl"] = jsonl
    if "jsonl.gz" in formats:
        gz = workdir / "bench.jsonl.gz"
        with open(jsonl, "rb") as src, gzip.open(gz, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst)
        out["jsonl.gz"] = gz
    if "proto" in formats:
        pb = workdir / "bench.bin"
        write_otlp_proto(scenario, pb, framed=True, spans_per_request=512)
        out["proto"] = pb
    return {k: v for k, v in out.items() if k in formats}


def run(code: str, *args: str) -> dict[str, float]:
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"benchmark subprocess failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--formats", default="jsonl,jsonl.gz,proto")
    ap.add_argument("--out", default=str(Path(__file__).parent / "out"))
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--data", help="keep the generated inputs in this directory and reuse them on the next run")
    args = ap.parse_args()
    formats = args.formats.split(",")
    results = []
    with tempfile.TemporaryDirectory(prefix="fabric-bench-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        data = Path(args.data) / str(args.spans) if args.data else work
        data.mkdir(parents=True, exist_ok=True)
        done = data / "complete"
        if args.data and done.exists() and set(formats) <= set(done.read_text().split()):
            files = {f: data / {"jsonl": "bench.jsonl", "jsonl.gz": "bench.jsonl.gz", "proto": "bench.bin"}[f] for f in formats}
        else:
            files = generate(args.spans, data, formats)
            if args.data:
                done.write_text(" ".join(files))
        print(f"generated {args.spans:,} spans in {time.perf_counter() - t:.1f} s: "
              + ", ".join(f"{k} {p.stat().st_size / 1e6:.0f} MB" for k, p in files.items()), file=sys.stderr)
        for fmt, path in files.items():
            for impl in (["baseline"] if not args.no_baseline else []) + ["fabric"]:
                db = work / f"{impl}-{fmt}.duckdb"
                load = os.getloadavg()[0]
                r = run(BASELINE, str(path), str(db), fmt) if impl == "baseline" else run(FABRIC, str(path), str(db))
                r.update(impl=impl, format=fmt, spans_per_s=r["spans"] / r["seconds"], load_before=load)
                results.append(r)
                print(f"{fmt:9} {impl:9} {r['spans']:>10,} spans {r['seconds']:7.2f} s {r['cpu_s']:7.2f} s CPU "
                      f"{r['spans_per_s']:>10,.0f} spans/s  peak RSS {r['peak_rss_mb']:7.0f} MB  (load {load:.2f})",
                      flush=True)
                db.unlink(missing_ok=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    meta = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "spans": args.spans,
            "loadavg_end": os.getloadavg()}
    Path(args.out, "ingest.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main()
