"""Live-ingest benchmark: ``fabric collect`` against ``fabric trace ingest`` of the same spans, same run.

Generates N spans with the fixture generator, cut into OTLP requests of 512 spans
(the SDK's default export batch), encoded as protobuf and as OTLP/JSON. Then, for
each encoding, each in a fresh subprocess:

* ``ingest``: the same requests written to one file (Collector-framed protobuf, or
  JSON lines, one request per line) and loaded with ``fabric trace ingest FILE --db
  NEW --no-analyze`` -- the floor a receiver is measured against;
* ``collect``: ``fabric collect --listen 127.0.0.1:0 --db NEW --no-analyze
  --no-snapshot``, fed by ``--clients`` concurrent keep-alive connections (threads of
  this process posting the pre-encoded bodies, optionally gzip). The clock runs from
  the first request to the last ``200``; a ``200`` is sent only after the spans are
  committed, so the rate is spans *received and stored*. 503 answers (queue full) are
  retried after ``Retry-After`` and counted.

Usage::

    python bench/bench_collect.py --spans 200000 [--clients 4] [--gzip] [--encodings proto,json]

Prints wall seconds, spans/s, the CPU seconds of the fabric process and the load
average before each run, and writes ``bench/out/collect.json``. The machine may be
shared: compare ratios within one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

FABRIC = [sys.executable, "-m", "fabric_trace"]


def generate(n_spans: int) -> tuple[list[bytes], list[bytes]]:
    """(protobuf bodies, JSON bodies) of the same requests."""
    from fabric_trace.fixtures_gen import Scenario
    from fabric_trace.fixtures_gen.writers import encode_request_json, encode_request_proto, iter_requests

    scenario = Scenario(traces=max(1, n_spans // 20), seed=42)  # ~28 spans per trace: more than enough
    proto: list[bytes] = []
    js: list[bytes] = []
    total = 0
    for batch in iter_requests(scenario, spans_per_request=512):
        proto.append(encode_request_proto(batch))
        js.append(encode_request_json(batch).rstrip(b"\n"))
        total += len(batch.spans)
        if total >= n_spans:
            break
    return proto, js


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_ingest(bodies: list[bytes], encoding: str, work: Path) -> dict[str, float]:
    path = work / ("requests.bin" if encoding == "proto" else "requests.jsonl")
    with open(path, "wb") as f:
        for b in bodies:
            f.write(len(b).to_bytes(4, "big") + b if encoding == "proto" else b + b"\n")
    db = work / f"ingest-{encoding}.duckdb"
    cpu0, t0 = _children_cpu(), time.perf_counter()
    res = subprocess.run([*FABRIC, "trace", "ingest", str(path), "--db", str(db), "--no-analyze", "--json"],
                         capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if res.returncode:
        raise SystemExit(f"ingest failed: {res.stderr}")
    return {"seconds": seconds, "cpu_s": _children_cpu() - cpu0, "spans": json.loads(res.stdout)["spans_ingested"]}


def _client(port: int, bodies: list[bytes], ctype: str, gz: bool, stats: dict[str, int], lock: threading.Lock) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": ctype}
    if gz:
        headers["Content-Encoding"] = "gzip"
    for body in bodies:
        for _attempt in range(100):
            conn.request("POST", "/v1/traces", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                break
            if resp.status != 503:
                raise SystemExit(f"collect answered {resp.status}")
            with lock:
                stats["retries"] += 1
            time.sleep(float(resp.getheader("Retry-After") or 1))
        else:
            raise SystemExit("gave up after 100 retries")
    conn.close()


def run_collect(bodies: list[bytes], encoding: str, work: Path, clients: int, gz: bool,
                extra: list[str]) -> dict[str, float]:
    db = work / f"collect-{encoding}.duckdb"
    cpu0 = _children_cpu()
    proc = subprocess.Popen([*FABRIC, "collect", "--listen", "127.0.0.1:0", "--db", str(db), "--no-analyze",
                             "--no-snapshot", "--json", "--progress-interval", "3600", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    m = re.search(r"127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        raise SystemExit(f"collect did not start: {line}{proc.stderr.read()}")
    port = int(m.group(1))
    payload = [gzip.compress(b, 1) for b in bodies] if gz else bodies
    ctype = "application/x-protobuf" if encoding == "proto" else "application/json"
    stats = {"retries": 0}
    lock = threading.Lock()
    shares = [payload[i::clients] for i in range(clients)]
    threads = [threading.Thread(target=_client, args=(port, s, ctype, gz, stats, lock)) for s in shares]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    proc.send_signal(2)
    out, err = proc.communicate(timeout=600)
    if proc.returncode:
        raise SystemExit(f"collect exited {proc.returncode}: {err}")
    summary = json.loads(out)
    return {"seconds": seconds, "cpu_s": _children_cpu() - cpu0, "spans": summary["spans_ingested"],
            "transactions": summary["transactions"], "retries_503": stats["retries"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=200_000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--gzip", action="store_true", help="gzip the request bodies (Content-Encoding: gzip)")
    ap.add_argument("--encodings", default="proto,json")
    ap.add_argument("--collect-args", default="", help="extra options for fabric collect, e.g. '--batch-wait 0.05'")
    ap.add_argument("--out", default=str(Path(__file__).parent / "out"))
    args = ap.parse_args()
    t = time.perf_counter()
    proto, js = generate(args.spans)
    n = sum(1 for _ in proto)
    print(f"generated {n} requests of <= 512 spans in {time.perf_counter() - t:.1f} s "
          f"(proto {sum(map(len, proto)) / 1e6:.1f} MB, json {sum(map(len, js)) / 1e6:.1f} MB)")
    results = []
    with tempfile.TemporaryDirectory(prefix="fabric-bench-collect-") as tmp:
        work = Path(tmp)
        for encoding in args.encodings.split(","):
            bodies = proto if encoding == "proto" else js
            for impl in ("ingest", "collect"):
                load = os.getloadavg()[0]
                if impl == "ingest":
                    r = run_ingest(bodies, encoding, work)
                else:
                    r = run_collect(bodies, encoding, work, args.clients, args.gzip, args.collect_args.split())
                r.update(impl=impl, encoding=encoding + ("+gzip" if args.gzip and impl == "collect" else ""),
                         spans_per_s=r["spans"] / r["seconds"], load_before=load)
                results.append(r)
                extra = (f"  {r['transactions']:.0f} transactions, {r['retries_503']:.0f} x 503"
                         if impl == "collect" else "")
                print(f"{impl:8} {r['encoding']:11} {r['spans']:>9,.0f} spans {r['seconds']:7.2f} s "
                      f"{r['spans_per_s']:>9,.0f} spans/s  cpu {r['cpu_s']:6.2f} s  (load {load:.2f}){extra}",
                      flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "collect.json").write_text(json.dumps(
        {"spans": args.spans, "clients": args.clients, "gzip": args.gzip, "cpus": os.cpu_count(),
         "results": results}, indent=2))


if __name__ == "__main__":
    main()
