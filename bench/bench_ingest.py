"""Ingest benchmark: fabric against DuckDB's own JSON reader (the floor), in the same run.

Generates N spans with the fixture generator (streamed, constant memory) as
OTLP JSON lines, gzip JSON lines and Collector-framed protobuf, then times, each
in a fresh subprocess (so peak RSS is that run's own), alternating floor and fabric
``--repeat`` times per format:

* ``floor``: DuckDB's ``read_json`` with typed ``columns`` flattening the JSON-lines
  file (the ``.gz`` one for gzip) into a table in a new database file, in one SQL
  statement (``CREATE TABLE AS``, three ``unnest``): what reading these bytes into
  DuckDB costs at least. For protobuf the floor is that of the JSON lines of the
  same spans (DuckDB has no protobuf reader);
* ``fabric``: ``run_ingest(db, [FILE], analyze=False)`` (everything
  included: decoding, normalized columns, attributes, primary key, manifest);
* ``baseline`` (``--baseline``): the straightforward loop — ``json.loads`` each line, walk the
  dicts into row tuples (ids, times, name, kind, status, attributes as JSON
  text), insert into DuckDB with a primary key via Arrow. Protobuf baseline:
  ``ExportTraceServiceRequest.FromString`` + the same walk over messages.

Usage::

    python bench/bench_ingest.py --spans 1000000 [--formats jsonl,jsonl.gz,proto] [--repeat 2] [--out bench/out]

Prints a line per run (wall time, CPU time of the run's process, spans/s, peak RSS,
the 1-minute load average before the run), then per format fabric's wall and CPU
time as a ratio to the floor's (medians over the repeats), and writes
``bench/out/ingest.json``. The machine's speed varies from hour to hour and with other
jobs: the ratio, measured in the same run, is the figure.
"""

from __future__ import annotations

import argparse
import statistics
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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

FLOOR = r'''
import json, resource, sys, time
import duckdb
path, db = sys.argv[1], sys.argv[2]
KV = "STRUCT(key VARCHAR, value JSON)[]"
COLUMNS = ("{resourceSpans: 'STRUCT(resource STRUCT(attributes " + KV + ", droppedAttributesCount BIGINT), "
           "schemaUrl VARCHAR, scopeSpans STRUCT(scope STRUCT(name VARCHAR, version VARCHAR, attributes " + KV + "), "
           "schemaUrl VARCHAR, spans STRUCT(traceId VARCHAR, spanId VARCHAR, parentSpanId VARCHAR, "
           "traceState VARCHAR, flags BIGINT, name VARCHAR, kind INTEGER, startTimeUnixNano VARCHAR, "
           "endTimeUnixNano VARCHAR, attributes " + KV + ", droppedAttributesCount BIGINT, events JSON, "
           "droppedEventsCount BIGINT, links JSON, droppedLinksCount BIGINT, "
           "status STRUCT(code INTEGER, message VARCHAR))[])[])[]'}")
SQL = f"""CREATE TABLE spans AS
WITH rs AS (SELECT unnest(resourceSpans) AS rs FROM read_json(?, format='newline_delimited', columns={COLUMNS})),
ss AS (SELECT unnest(rs.scopeSpans) AS ss FROM rs),
sp AS (SELECT ss.scope AS scope, unnest(ss.spans) AS s FROM ss)
SELECT lower(s.traceId) AS trace_id, lower(s.spanId) AS span_id, lower(nullif(s.parentSpanId, '')) AS parent_span_id,
       s.traceState AS trace_state, s.flags, s.name, s.kind,
       CAST(s.startTimeUnixNano AS BIGINT) AS start_ns, CAST(s.endTimeUnixNano AS BIGINT) AS end_ns,
       s.status.code AS status_code, s.status.message AS status_message, s.attributes, s.events, s.links,
       scope.name AS scope_name, scope.version AS scope_version
FROM sp"""
t0 = time.perf_counter()
con = duckdb.connect(db)
con.execute(SQL, [path])
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


def run(code: str, *args: str, src: str | None = None) -> dict[str, float]:
    env = dict(os.environ)
    if src:  # another checkout's package first on the path (--compare)
        env["PYTHONPATH"] = str(Path(src, "src")) + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False, env=env)
    if res.returncode != 0:
        raise SystemExit(f"benchmark subprocess failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--formats", default="jsonl,jsonl.gz,proto")
    ap.add_argument("--repeat", type=int, default=2, help="floor/fabric pairs per format (alternating)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "out"))
    ap.add_argument("--baseline", action="store_true", help="also run the plain-Python loader once per format")
    ap.add_argument("--no-floor", action="store_true", help="run fabric only")
    ap.add_argument("--compare", metavar="CHECKOUT",
                    help="also run fabric from this checkout (e.g. a worktree of the previous commit) "
                         "in each round, as 'fabric@prev'")
    ap.add_argument("--data", help="keep the generated inputs in this directory and reuse them on the next run")
    args = ap.parse_args()
    formats = args.formats.split(",")
    results = []
    ratios: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="fabric-bench-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        data = Path(args.data) / str(args.spans) if args.data else work
        data.mkdir(parents=True, exist_ok=True)
        done = data / "complete"
        # the floor of protobuf reads the JSON lines of the same spans
        needed = sorted(set(formats) | ({"jsonl"} if "proto" in formats and not args.no_floor else set()))
        names = {"jsonl": "bench.jsonl", "jsonl.gz": "bench.jsonl.gz", "proto": "bench.bin"}
        if args.data and done.exists() and set(needed) <= set(done.read_text().split()):
            files = {f: data / names[f] for f in needed}
        else:
            files = generate(args.spans, data, needed)
            if args.data:
                done.write_text(" ".join(files))
        print(f"generated {args.spans:,} spans in {time.perf_counter() - t:.1f} s: "
              + ", ".join(f"{k} {p.stat().st_size / 1e6:.0f} MB" for k, p in files.items()), file=sys.stderr)

        def once(impl: str, fmt: str, rep: int) -> dict[str, Any]:
            db = work / f"{impl}-{fmt}.duckdb"
            load = os.getloadavg()[0]
            if impl == "baseline":
                r = run(BASELINE, str(files[fmt]), str(db), fmt)
            elif impl == "floor":
                r = run(FLOOR, str(files["jsonl" if fmt == "proto" else fmt]), str(db))
            elif impl == "fabric@prev":
                r = run(FABRIC, str(files[fmt]), str(db), src=args.compare)
            else:
                r = run(FABRIC, str(files[fmt]), str(db))
            r.update(impl=impl, format=fmt, rep=rep, spans_per_s=r["spans"] / r["seconds"], load_before=load)
            results.append(r)
            print(f"{fmt:9} {impl:9} {r['spans']:>10,} spans {r['seconds']:7.2f} s {r['cpu_s']:7.2f} s CPU "
                  f"{r['spans_per_s']:>10,.0f} spans/s  peak RSS {r['peak_rss_mb']:7.0f} MB  (load {load:.2f})",
                  flush=True)
            db.unlink(missing_ok=True)
            Path(str(db) + ".wal").unlink(missing_ok=True)
            return r

        for fmt in formats:
            if args.baseline:
                once("baseline", fmt, 0)
            impls = ["fabric"] + (["fabric@prev"] if args.compare else [])
            pairs: dict[str, list[tuple[float, float]]] = {i: [] for i in impls}
            for rep in range(args.repeat):
                floor = None if args.no_floor else once("floor", fmt, rep)
                for impl in impls:
                    fab = once(impl, fmt, rep)
                    if floor is not None:
                        pairs[impl].append((fab["seconds"] / floor["seconds"], fab["cpu_s"] / floor["cpu_s"]))
            for impl, got in pairs.items():
                if not got:
                    continue
                key = fmt if impl == "fabric" else f"{fmt} {impl}"
                ratios[key] = {"time": statistics.median(p[0] for p in got),
                               "cpu": statistics.median(p[1] for p in got)}
                print(f"{fmt:9} {impl} / floor: time {ratios[key]['time']:.2f}x, CPU {ratios[key]['cpu']:.2f}x "
                      f"(pairs: {', '.join(f'{a:.2f}/{b:.2f}' for a, b in got)})", flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    meta = {"cpus": os.cpu_count(), "cpu_model": _cpu_model(), "python": sys.version.split()[0],
            "spans": args.spans, "loadavg_end": os.getloadavg()}
    Path(args.out, "ingest.json").write_text(json.dumps({"meta": meta, "ratios": ratios, "results": results},
                                                        indent=2))


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
