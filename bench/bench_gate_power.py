"""False-alarm rate and power of the default `fabric gate` at 10, 25 and 100 traces per workflow and side.

Every run is made by the fixture generator with the same number of traces in each of its three
workflows (support-agent, rag-answer, research-agent), written as OTLP JSON, ingested with the real
pipeline and gated with the default checks, exactly as `fabric gate` does
(:mod:`fabric_trace.gate.simulate`).

* **False alarms**: ``--pairs + 1`` unchanged runs per size (seeds 1, 2, ...), each gated against the
  next: the share of pairs whose verdict is FAIL (and, reported apart, INCONCLUSIVE).
* **Power**: for each slowdown factor (every span of every role ``f`` times slower), ``--power-pairs``
  candidates (seeds 10001, ...) each gated against one of the unchanged runs: the share that FAIL on
  an end-to-end latency check (``duration``), and on any check.

The smallest slowdown detected at a size is the smallest factor failing in at least 90 % of the pairs.

Usage::

    python bench/bench_gate_power.py --out bench/gate_power.json      # docs/ci.md figures
    python bench/bench_gate_power.py --sizes 10 --pairs 20 --power-pairs 10   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from typing import Any

from fabric_trace.fixtures_gen.scenario import ROLES
from fabric_trace.gate.simulate import LoadedSide, gate_sides, generated_side


def _side(root: str, name: str, n: int, seed: int, **knobs: Any) -> LoadedSide:
    side = generated_side(root, name, n, seed, **knobs)
    os.unlink(side.db)  # the loaded metrics are all the gate needs
    return side


def measure(n: int, pairs: int, power_pairs: int, factors: list[float], root: str) -> dict[str, Any]:
    t0 = time.time()
    runs = [_side(root, f"n{n}-s{seed}", n, seed) for seed in range(1, pairs + 2)]
    verdicts: Counter[str] = Counter()
    failing: Counter[str] = Counter()
    inconclusive: Counter[str] = Counter()
    checks = 0
    for base, cand in zip(runs, runs[1:]):
        outcome = gate_sides(base, cand)
        checks = max(checks, len(outcome.results))
        verdicts[outcome.verdict] += 1
        for r in outcome.failed:
            failing[f"{r.name} [{r.workflow}]"] += 1
        for r in outcome.inconclusive:
            inconclusive[r.name.split("[")[0].split(" ")[0] if r.kind != "structure" else r.name] += 1
    power = []
    for f in factors:
        e2e = anyfail = 0
        for j in range(power_pairs):
            cand = _side(root, f"n{n}-f{f}-s{j}", n, 10001 + j, latency_factor={r: f for r in ROLES})
            outcome = gate_sides(runs[j % len(runs)], cand)
            anyfail += outcome.verdict == "fail"
            e2e += any(r.metric == "duration" for r in outcome.failed)
        power.append({"factor": f, "pairs": power_pairs, "e2e_detected": e2e, "any_detected": anyfail,
                      "e2e_rate": round(e2e / power_pairs, 3), "any_rate": round(anyfail / power_pairs, 3)})
    smallest = next((p["factor"] for p in power if p["e2e_rate"] >= 0.9), None)
    return {
        "traces_per_workflow": n, "traces_per_side": 3 * n, "pairs": pairs, "checks_per_run": checks,
        "fail": verdicts["fail"], "inconclusive": verdicts["inconclusive"], "pass": verdicts["pass"],
        "false_alarm_rate": round(verdicts["fail"] / pairs, 4),
        "inconclusive_rate": round(verdicts["inconclusive"] / pairs, 4),
        "failing_checks": dict(failing.most_common()), "inconclusive_checks": dict(inconclusive.most_common()),
        "power": power, "smallest_slowdown_detected_90pct": smallest, "seconds": round(time.time() - t0, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10,25,100", help="traces per workflow and side (comma separated)")
    ap.add_argument("--pairs", type=int, default=150, help="unchanged pairs per size (false alarms)")
    ap.add_argument("--power-pairs", type=int, default=30, help="pairs per size and slowdown factor (power)")
    ap.add_argument("--factors", default="1.1,1.2,1.3,1.5,2.0", help="slowdown factors")
    ap.add_argument("--out", help="write the figures as JSON to this file")
    args = ap.parse_args(argv)
    factors = [float(x) for x in args.factors.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="fabric-gate-bench-") as root:
        for n in (int(x) for x in args.sizes.split(",")):
            res = measure(n, args.pairs, args.power_pairs, factors, root)
            results.append(res)
            print(json.dumps({k: v for k, v in res.items() if k not in ("failing_checks", "inconclusive_checks")}),
                  file=sys.stderr, flush=True)
    doc = {"load_average": os.getloadavg(), "cpus": os.cpu_count(), "results": results}
    print("| traces per workflow | pairs | false alarms | inconclusive runs | "
          + " | ".join(f"x{f:g} detected" for f in factors) + " | smallest slowdown detected (>= 90 %) |")
    print("|---:|---:|---:|---:|" + "---:|" * len(factors) + "---:|")
    for r in results:
        cells = " | ".join(f"{p['e2e_rate'] * 100:.0f} %" for p in r["power"])
        print(f"| {r['traces_per_workflow']} | {r['pairs']} | {r['fail']} ({r['false_alarm_rate'] * 100:.1f} %) | "
              f"{r['inconclusive']} ({r['inconclusive_rate'] * 100:.0f} %) | {cells} | "
              f"x{r['smallest_slowdown_detected_90pct'] or 'n/a'} |")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
