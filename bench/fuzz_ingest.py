"""Ingest fuzz campaign, long form: many mutated inputs per decoder family, each decoded in a
fresh budget of time and memory, plus the large hostile inputs of issue 18.

Per family (the seeds of tests/fuzz_inputs.py: OTLP JSON lines and document, Jaeger, Zipkin,
protobuf, gzip and zstd JSON lines) it decodes ``--runs`` inputs, each the seed with 1-16
random byte mutations (replace, insert, delete, cut, splice, repeat), and checks that only a
``FabricError`` escapes, that every quarantine record has a location and a reason, and the
time per input. Then it times the large cases: a 100k-deep document, a 30 MB document with
300 random byte mutations, gzip/zstd bombs (4 GiB) of newlines and of zeros, and a 500 MB JSON line
(peak RSS of a subprocess, with the 64 MiB line limit).

Usage::

    python bench/fuzz_ingest.py [--runs 3000] [--seed 18] [--large] [--out bench/out/fuzz.json]

Results are in bench/README.md ("Fuzz campaign").
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fuzz_inputs import check, decode, mutate, otlp_doc, seeds  # noqa: E402


def campaign(runs: int, seed: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for family, data in sorted(seeds().items()):
        rnd = random.Random(f"{seed}-{family}")
        worst = 0.0
        errors = spans = quarantined = repaired = 0
        t_all = time.perf_counter()
        for _ in range(runs):
            mutated = mutate(data, rnd, rnd.randint(1, 16))
            t0 = time.perf_counter()
            batch, err = decode(mutated)  # anything but a FabricError propagates and fails the run
            worst = max(worst, time.perf_counter() - t0)
            check(batch)
            errors += err is not None
            spans += len(batch)
            quarantined += sum(r.action == "rejected" for r in batch.rejections)
            repaired += sum(r.action == "repaired" for r in batch.rejections)
        out[family] = {"inputs": runs, "refused_whole": errors, "spans": spans, "quarantined": quarantined,
                       "repaired": repaired, "worst_s": round(worst, 4),
                       "mean_ms": round((time.perf_counter() - t_all) / runs * 1000, 3)}
        print(f"{family:18} {runs} inputs, no escape; refused whole {errors}, spans {spans}, "
              f"quarantined {quarantined}, repaired {repaired}; worst {worst:.3f} s", flush=True)
    return out


_RSS = r"""
import io, resource, sys, time
from fabric_trace.ingest.batch import SpanBatch
from fabric_trace.ingest.container import decode_stream
from fabric_trace.ingest.json_dispatch import decode_json_value
from fabric_trace.ingest.otlp_json_fast import decode_otlp_line
from fabric_trace.ingest.limits import Limits
from fabric_trace.errors import FabricError
b = SpanBatch()
t0 = time.perf_counter()
try:
    with open(sys.argv[1], "rb") as f:
        label = decode_stream(f, "x", b, Limits(), decode_json_value, decode_otlp_line)
except FabricError as exc:
    label = "refused: " + exc.message
# VmHWM is this process's own peak (ru_maxrss would carry the parent's peak over the fork)
hwm = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM"))
print(round(time.perf_counter() - t0, 2), round(time.process_time(), 2), hwm // 1024, len(b), len(b.rejections), label)
"""


def _sub(path: Path) -> str:
    return subprocess.run([sys.executable, "-c", _RSS, str(path)], capture_output=True, text=True,
                          check=True).stdout.strip()


def large(tmp: Path) -> dict[str, str]:
    import zstandard

    cases: dict[str, str] = {}

    def bomb(name: str, fill: bytes, gib: int, kind: str) -> Path:
        p = tmp / name
        chunk = fill * (1 << 20)
        with open(p, "wb") as f:
            if kind == "gzip":
                c = zlib.compressobj(9, zlib.DEFLATED, 31)
                for _ in range(gib << 10):
                    f.write(c.compress(chunk))
                f.write(c.flush())
            else:
                w = zstandard.ZstdCompressor().stream_writer(f)
                for _ in range(gib << 10):
                    w.write(chunk)
                w.flush(zstandard.FLUSH_FRAME)
        return p

    deep = tmp / "deep.json"
    deep.write_bytes(b'{"a":' * 100_000 + b"1" + b"}" * 100_000)
    cases["100k-deep document (600 KB)"] = _sub(deep)
    rnd = random.Random(18)
    doc = bytearray(json.dumps(otlp_doc(40_000), indent=2).encode())
    for _ in range(300):
        doc[rnd.randrange(len(doc))] = rnd.choice(b'{}[]",:\x00x9 \n')
    fuzzed = tmp / "fuzzed.json"
    fuzzed.write_bytes(bytes(doc))
    cases[f"{len(doc) / 1e6:.0f} MB document, 300 mutated bytes (40,000 spans)"] = _sub(fuzzed)
    for fill, label in ((b"\n", "newlines"), (b"\0", "zeros")):
        for kind in ("gzip", "zstd"):
            p = bomb(f"bomb.{kind}", fill, 4, kind)
            cases[f"{kind} bomb, 4 GiB of {label} ({p.stat().st_size / 1e6:.1f} MB)"] = _sub(p)
            p.unlink()
    line = tmp / "line.json"
    with open(line, "wb") as f:
        f.write(b'{"resourceSpans": [], "x": "')
        block = b"a" * (1 << 20)
        for _ in range(500):
            f.write(block)
        f.write(b'"}\n')
        f.write(json.dumps(otlp_doc(1)).encode() + b"\n")
    cases["500 MB JSON line, then one span"] = _sub(line)
    for k, v in cases.items():
        print(f"{k:55} wall s, CPU s, peak RSS MB, spans, quarantine rows, label: {v}", flush=True)
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--large", action="store_true", help="also the large hostile inputs (needs ~1 GB of disk)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "fuzz.json"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    result: dict[str, object] = {"campaign": campaign(args.runs, args.seed)}
    if args.large:
        with tempfile.TemporaryDirectory() as tmp:
            result["large"] = large(Path(tmp))
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["load"] = os.getloadavg()[0]
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
