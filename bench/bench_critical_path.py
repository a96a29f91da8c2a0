"""Benchmark: critical path + self time over a whole store, baseline vs fabric.

Generates N spans of realistic agent traces into a DuckDB file (or reads the
``span_store`` of ``--db``), then runs each implementation in its own fresh
process and reports spans/s and peak RSS (``resource.getrusage``):

* ``networkx``: the straightforward baseline, one ``nx.DiGraph`` per trace,
  Jaeger's walk on it;
* ``reference``: :func:`fabric_trace.graph.analyze_trace` per trace (plain dicts);
* ``fabric``: :func:`fabric_trace.graph.iter_trace_metrics` (bucketed SQL + numpy).

    python bench/bench_critical_path.py --spans 1000000 --json bench.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import resource
import sys
import tempfile
import time
from importlib import resources
from typing import Any

import duckdb
import networkx as nx
import pyarrow as pa

COLS = ("trace_id", "span_id", "parent_span_id", "name", "kind", "start_ns", "end_ns",
        "status_code", "service_name", "host", "role")
MS = 1_000_000


def generate(n_spans: int, seed: int) -> dict[str, list[Any]]:
    """Agent-like traces: a gateway SERVER span, an agent loop of LLM calls (on a
    proxy host, sometimes skewed or overhanging) and tool calls (some parallel,
    some via a retriever service with a DB call), async PRODUCER->CONSUMER jobs,
    and ~1% of traces with a lost span (orphans)."""
    rnd = random.Random(seed)
    out: dict[str, list[Any]] = {c: [] for c in COLS}
    t_base = 1_700_000_000 * 10**9

    def new_id() -> str:
        return f"{rnd.getrandbits(64):016x}"

    while len(out["span_id"]) < n_spans:
        tid = f"{rnd.getrandbits(128):032x}"
        rows: list[tuple[Any, ...]] = []
        skew = rnd.choice((0,) * 18 + (rnd.randint(-20, 20) * MS, rnd.randint(1, 3) * MS))

        def add(parent: str | None, name: str, kind: str, s: int, e: int, svc: str,
                host: str, role: str, err: bool = False) -> str:
            sid = new_id()
            rows.append((tid, sid, parent, name, kind, s, e, "ERROR" if err else "UNSET", svc, host, role))
            return sid

        t0 = t_base + rnd.randint(0, 86_400_000) * MS
        steps = rnd.randint(1, 12)
        t = t0 + rnd.randint(1, 5) * MS
        body: list[tuple[Any, ...]] = []
        root = new_id()
        agent = new_id()
        for _ in range(steps):
            llm_s, llm_e = t, t + rnd.randint(200, 3000) * MS
            llm = add(agent, "chat gpt-4o", "CLIENT", llm_s, llm_e, "agent", "h-agent", "llm",
                      rnd.random() < 0.02)
            if rnd.random() < 0.5:  # server side on the proxy: skewed clock, slight overhang
                lat = rnd.randint(1, 20) * MS
                add(llm, "POST /v1/chat", "SERVER", llm_s + lat + skew, llm_e - lat + skew
                    + rnd.choice((0, 0, 0, 2 * lat)), "llm-proxy", "h-proxy", "llm")
            t = llm_e + rnd.randint(0, 3) * MS
            n_tools = rnd.choice((0, 1, 1, 1, 2, 3))
            par = rnd.random() < 0.4
            tool_end = t
            for k in range(n_tools):
                ts = t if par else tool_end
                te = ts + rnd.randint(5, 800) * MS
                tool = add(agent, "execute_tool search", "INTERNAL", ts, te, "agent", "h-agent", "tool")
                if rnd.random() < 0.5:
                    c = add(tool, "GET /retrieve", "CLIENT", ts + MS, te - MS, "agent", "h-agent", "retrieval")
                    s2 = add(c, "retrieve", "SERVER", ts + 2 * MS, te - 2 * MS, "retriever", "h-ret", "retrieval")
                    add(s2, "SELECT docs", "CLIENT", ts + 3 * MS, te - 3 * MS, "retriever", "h-ret", "db")
                if rnd.random() < 0.1:
                    p = add(tool, "enqueue", "PRODUCER", ts + MS, ts + 2 * MS, "agent", "h-agent", "queue")
                    add(p, "process", "CONSUMER", te, te + rnd.randint(10, 900) * MS, "worker", "h-w", "queue")
                tool_end = max(tool_end, te)
            t = tool_end + rnd.randint(0, 3) * MS
        body = rows
        rows = []
        rows.append((tid, root, None, "POST /agent", "SERVER", t0, t + 2 * MS, "UNSET", "gateway", "h-gw", "http"))
        rows.append((tid, agent, root, "invoke_agent", "INTERNAL", t0 + MS, t, "UNSET", "agent", "h-agent", "agent"))
        rows += body
        if rnd.random() < 0.01 and len(rows) > 3:
            rows.pop(rnd.randrange(1, len(rows)))
        for r in rows:
            for c, v in zip(COLS, r):
                out[c].append(v)
    return out


def create_store(path: str, n_spans: int, seed: int) -> int:
    """Create ``path`` with fabric's schema and ``n_spans`` generated spans."""
    data = generate(n_spans, seed)
    tbl = pa.table(data)
    con = duckdb.connect(path)
    con.execute("SET enable_progress_bar = false")
    con.execute(resources.files("fabric_trace.store").joinpath("schema.sql").read_text())
    con.register("gen", tbl)
    con.execute(f"""INSERT INTO span_store ({", ".join(COLS)}, attributes, events, links,
        dropped_attributes_count, dropped_events_count, dropped_links_count, resource_id,
        scope_id, file_id, content_hash)
        SELECT {", ".join(COLS)}, '{{}}', '[]', '[]', 0, 0, 0, 'r', 's', 1, 0 FROM gen""")
    ((count,),) = con.execute("SELECT count(*) FROM span_store").fetchall()
    con.close()
    return int(count)


# --- the implementations, each run in a fresh process ------------------------------

def _traces(con: duckdb.DuckDBPyConnection) -> Any:
    """Yield the spans of each trace as a list of dicts (trace_id order)."""
    cols = "trace_id, span_id, parent_span_id, kind, start_ns, end_ns, service_name, host, status_code"
    reader = con.sql(f"SELECT {cols} FROM span_store ORDER BY trace_id").to_arrow_reader(100_000)
    cur: list[dict[str, Any]] = []
    for batch in reader:
        for row in batch.to_pylist():
            if cur and row["trace_id"] != cur[0]["trace_id"]:
                yield cur
                cur = []
            cur.append(row)
    if cur:
        yield cur


def run_networkx(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Baseline: nx.DiGraph per trace; clip children, Jaeger walk, self time."""
    spans = cp_total = 0
    for rows in _traces(con):
        g = nx.DiGraph()
        for r in rows:
            g.add_node(r["span_id"], start=r["start_ns"], end=max(r["end_ns"], r["start_ns"]), kind=r["kind"])
        for r in rows:
            if r["parent_span_id"] in g:
                g.add_edge(r["parent_span_id"], r["span_id"])
        spans += len(rows)
        for root in [v for v in g if g.in_degree(v) == 0]:
            win = {root: (g.nodes[root]["start"], g.nodes[root]["end"])}
            for p, c in nx.bfs_edges(g, root):
                if p not in win or (g.nodes[p]["kind"] == "PRODUCER" and g.nodes[c]["kind"] == "CONSUMER"):
                    continue
                (ps, pe), cs, ce = win[p], g.nodes[c]["start"], g.nodes[c]["end"]
                if cs < pe and (cs >= ps or ce > ps):
                    win[c] = (max(cs, ps), min(ce, pe))
            cur, t, back = root, win[root][1], False
            while True:
                best = None
                for c in g.successors(cur):
                    if c in win and win[c][1] <= t and win[c][0] < t and (best is None or win[c][1] > win[best][1]):
                        best = c
                if best is not None:
                    cp_total += t - win[best][1]
                    cur, t = best, win[best][1]
                    continue
                cp_total += t - win[cur][0]
                if cur == root:
                    break
                t, cur = win[cur][0], next(iter(g.predecessors(cur)))
            for v in g:
                s, e = g.nodes[v]["start"], g.nodes[v]["end"]
                reach, cov = s, 0
                for a, b in sorted((max(g.nodes[c]["start"], s), min(g.nodes[c]["end"], e)) for c in g.successors(v)):
                    if b > reach:
                        cov += b - max(a, reach)
                        reach = b
    return spans, cp_total


def run_reference(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """fabric's pure-Python reference, one trace at a time."""
    from fabric_trace.graph import analyze_trace

    spans = cp_total = 0
    for rows in _traces(con):
        a = analyze_trace(rows)
        spans += a.facts.span_count
        cp_total += sum(s.duration_ns for segs in a.critical_paths.values() for s in segs)
    return spans, cp_total


def run_fabric(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """fabric's batch implementation (bucketed SQL + numpy)."""
    import pyarrow.compute as pc

    from fabric_trace.graph import iter_trace_metrics

    spans = cp_total = 0
    for mb in iter_trace_metrics(con):
        spans += mb.spans.num_rows
        cp_total += pc.sum(pc.subtract(mb.segments["end_ns"], mb.segments["start_ns"])).as_py() or 0
    return spans, cp_total


IMPLS = {"networkx": run_networkx, "reference": run_reference, "fabric": run_fabric}


def _child(name: str, db: str, threads: int, q: Any) -> None:
    con = duckdb.connect(db, read_only=True)
    con.execute(f"SET threads = {threads}").fetchall()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    spans, cp = IMPLS[name](con)
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    q.put({"impl": name, "spans": spans, "seconds": round(dt, 3), "cpu_seconds": round(cpu, 3),
           "spans_per_s": round(spans / dt), "peak_rss_mb": r1.ru_maxrss // 1024,
           "critical_path_ns": cp})


def _generate(path: str, n_spans: int, seed: int) -> None:
    # in its own process, so that the parent (whose peak RSS the runners
    # inherit through fork + exec) stays small
    create_store(path, n_spans, seed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--db", help="read span_store of this DuckDB file instead of generating")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--impl", action="append", choices=sorted(IMPLS), help="default: all")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db
        if db is None:
            db = os.path.join(tmp, "bench.duckdb")
            t0 = time.perf_counter()
            gen = mp.get_context("spawn").Process(target=_generate, args=(db, args.spans, args.seed))
            gen.start()
            gen.join()
            print(f"generated {args.spans} spans in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        ctx = mp.get_context("spawn")
        results = []
        for name in args.impl or list(IMPLS):
            q = ctx.Queue()
            p = ctx.Process(target=_child, args=(name, db, args.threads, q))
            p.start()
            p.join()
            if p.exitcode != 0 or q.empty():
                print(f"{name}: failed with exit code {p.exitcode}", file=sys.stderr)
                return 1
            results.append(q.get())
    print(f"{'impl':<10} {'spans':>9} {'seconds':>8} {'cpu s':>7} {'spans/s':>9} {'peak RSS MB':>11}")
    for r in results:
        print(f"{r['impl']:<10} {r['spans']:>9} {r['seconds']:>8.2f} {r['cpu_seconds']:>7.2f} "
              f"{r['spans_per_s']:>9} {r['peak_rss_mb']:>11}")
    print(f"load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores",
          file=sys.stderr)
    if len({r["critical_path_ns"] for r in results}) > 1:
        print("warning: critical-path totals differ between implementations", file=sys.stderr)
    doc = json.dumps({"spans": results[0]["spans"] if results else 0, "results": results}, indent=2)
    print(doc)
    if args.json:
        with open(args.json, "w") as f:
            f.write(doc + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
