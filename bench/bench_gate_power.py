"""False-alarm rate and power of the default `fabric gate` at 10, 25 and 100 traces per workflow and side.

Runs are made by the fixture generator with its three workflows (support-agent, rag-answer,
research-agent), written as OTLP JSON, ingested with the real pipeline and gated with the default
checks exactly as `fabric gate` does (:mod:`fabric_trace.gate.simulate`). Ingesting thousands of small
runs would take hours, so each workload is generated and ingested once as a large *pool* and every run
is drawn from it: ``n`` random traces of each workflow (the two runs of a pair are disjoint).

* **False alarms**: ``--pairs`` pairs of runs drawn from the unchanged pool (``--pool`` traces per
  workflow): the share of pairs whose verdict is FAIL (and, reported apart, INCONCLUSIVE).
* **Power**: for each slowdown factor ``f`` (every span of every role ``f`` times slower), a pool of
  ``--slow-pool`` traces per workflow; ``--power-pairs`` pairs of a baseline from the unchanged pool and a
  candidate from the slow one: the share that FAIL on an end-to-end latency check (``duration``), and
  on any check.

The smallest slowdown detected at a size is the smallest factor failing in at least 90 % of the pairs.
Each false-alarm rate comes with its exact (Clopper-Pearson) one-sided 95 % upper bound.

Where the time goes (profiled on 2 shared cores): generating and ingesting a pool costs about 7 ms of CPU
per trace, once; drawing a run from it 0.02 s; one gate run (checks + structural diff) 0.1-0.5 s, most of
it the exact rank-sum distributions (cached by sample sizes, see ``stats._rank_sum_distribution``). So
the runs are drawn from pools rather than generated, and the pools are large (2000 traces a workflow by
default: a pair at 100 traces a workflow uses a tenth of it), so that the pairs are close to independent
draws of the workload and the binomial bound holds. ``cpu_seconds`` in the JSON splits pools and runs.

Usage::

    python bench/bench_gate_power.py --out bench/gate_power.json      # the docs/ci.md figures
    python bench/bench_gate_power.py --sizes 10 --pairs 50 --power-pairs 20 --pool 300 --slow-pool 100
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

import numpy as np
from scipy import stats as sps

from fabric_trace.fixtures_gen.scenario import ROLES
from fabric_trace.gate.simulate import LoadedSide, gate_sides, generated_side, sample_side


def _label(r: Any) -> str:
    return r.name if r.kind == "structure" else f"{r.metric} {r.stat}"


def upper_bound(failures: int, trials: int, confidence: float = 0.95) -> float:
    """Exact (Clopper-Pearson) one-sided upper confidence bound of a binomial rate (0 of n: about 3 / n)."""
    if trials <= 0:
        return 1.0
    if failures >= trials:
        return 1.0
    return float(sps.beta.ppf(confidence, failures + 1, trials - failures))


def measure(n: int, pairs: int, power_pairs: int, pool: LoadedSide, slow: dict[float, LoadedSide],
            seed: int, section: dict[str, Any] | None = None) -> dict[str, Any]:
    t0, c0 = time.time(), time.process_time()
    rng = np.random.default_rng(seed)
    verdicts: Counter[str] = Counter()
    failing: Counter[str] = Counter()
    inconclusive: Counter[str] = Counter()
    checks = 0
    for _ in range(pairs):
        base, taken = sample_side(pool, n, rng)
        cand, _ = sample_side(pool, n, rng, exclude=taken)
        outcome = gate_sides(base, cand, section)
        checks = max(checks, len(outcome.results))
        verdicts[outcome.verdict] += 1
        failing.update({f"{r.name} [{r.workflow}]" for r in outcome.failed})
        inconclusive.update({_label(r) for r in outcome.inconclusive})
    power = []
    for f, slow_pool in slow.items():
        e2e = anyfail = 0
        for _ in range(power_pairs):
            base, _ = sample_side(pool, n, rng)
            cand, _ = sample_side(slow_pool, n, rng)
            outcome = gate_sides(base, cand, section)
            anyfail += outcome.verdict == "fail"
            e2e += any(r.metric == "duration" for r in outcome.failed)
        power.append({"factor": f, "pairs": power_pairs, "e2e_detected": e2e, "any_detected": anyfail,
                      "e2e_rate": round(e2e / power_pairs, 3), "any_rate": round(anyfail / power_pairs, 3)})
    smallest = next((p["factor"] for p in power if p["e2e_rate"] >= 0.9), None)
    return {
        "traces_per_workflow": n, "traces_per_side": 3 * n, "pairs": pairs, "checks_per_run": checks,
        "fail": verdicts["fail"], "inconclusive": verdicts["inconclusive"], "pass": verdicts["pass"],
        "false_alarm_rate": round(verdicts["fail"] / pairs, 4),
        "false_alarm_upper_95": round(upper_bound(verdicts["fail"], pairs), 4),
        "inconclusive_rate": round(verdicts["inconclusive"] / pairs, 4),
        "failing_checks": dict(failing.most_common()),
        "inconclusive_checks_in_runs": dict(inconclusive.most_common()),
        "power": power, "smallest_slowdown_detected_90pct": smallest, "seconds": round(time.time() - t0, 1),
        "cpu_seconds": round(time.process_time() - c0, 1),
        "cpu_seconds_per_run": round((time.process_time() - c0) / max(1, pairs + power_pairs * len(slow)), 3),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10,25,100", help="traces per workflow and side (comma separated)")
    ap.add_argument("--pairs", type=int, default=300, help="unchanged pairs per size (false alarms)")
    ap.add_argument("--power-pairs", type=int, default=60, help="pairs per size and slowdown factor (power)")
    ap.add_argument("--factors", default="1.1,1.2,1.3,1.5,2.0", help="slowdown factors")
    ap.add_argument("--pool", type=int, default=2000, help="traces per workflow of the unchanged pool")
    ap.add_argument("--slow-pool", type=int, default=700, help="traces per workflow of each slow pool")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--alpha", type=float, help="[gate] alpha (default: the gate's default)")
    ap.add_argument("--out", help="write the figures as JSON to this file")
    args = ap.parse_args(argv)
    factors = [float(x) for x in args.factors.split(",")]
    sizes = [int(x) for x in args.sizes.split(",")]
    t0 = time.time()
    results = []
    with tempfile.TemporaryDirectory(prefix="fabric-gate-bench-") as root:
        pool = generated_side(root, "pool", args.pool, args.seed, keep_edges=True)
        slow = {f: generated_side(root, f"slow{f:g}", args.slow_pool, args.seed + 1 + i, keep_edges=True,
                                  latency_factor={r: f for r in ROLES}) for i, f in enumerate(factors)}
        pool_cpu = time.process_time()
        print(f"pools ingested in {time.time() - t0:.0f} s ({pool_cpu:.0f} CPU s)", file=sys.stderr, flush=True)
        for n in sizes:
            section = {"alpha": args.alpha} if args.alpha is not None else None
            res = measure(n, args.pairs, args.power_pairs, pool, slow, args.seed * 1000 + n, section)
            results.append(res)
            print(json.dumps({k: v for k, v in res.items() if k not in ("failing_checks",)}),
                  file=sys.stderr, flush=True)
    doc = {"args": vars(args), "load_average_at_end": os.getloadavg(), "cpus": os.cpu_count(),
           "seconds": round(time.time() - t0, 1),
           "cpu_seconds": {"pools": round(pool_cpu, 1), "total": round(time.process_time(), 1)},
           "results": results}
    print("| traces per workflow | pairs | false alarms (95 % upper bound) | inconclusive runs | "
          + " | ".join(f"x{f:g} detected" for f in factors) + " | smallest slowdown detected (>= 90 %) |")
    print("|---:|---:|---:|---:|" + "---:|" * len(factors) + "---:|")
    for r in results:
        cells = " | ".join(f"{p['e2e_rate'] * 100:.0f} %" for p in r["power"])
        print(f"| {r['traces_per_workflow']} | {r['pairs']} | {r['fail']} ({r['false_alarm_rate'] * 100:.1f} %; "
              f"<= {r['false_alarm_upper_95'] * 100:.2f} %) | "
              f"{r['inconclusive']} ({r['inconclusive_rate'] * 100:.0f} %) | {cells} | "
              f"x{r['smallest_slowdown_detected_90pct'] or 'n/a'} |")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
