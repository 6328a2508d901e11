"""Simulator speed on one core: the full thesis schedule (five one-hour windows, ~180,000 pairs, ~360,000
contract lines) generated, run through the platform model and turned into contract rows
(`simulate.simulate`), then written as JSONL. Targets: at least 100,000 requests/s (contract lines per
second of `simulate`, median of --runs runs) and the whole thing (simulate + write) within 30 s.

    python benchmarks/bench_simulator.py [--profile full] [--seed 42] [--runs 3] [--cores 0] [--json out.json]
    python benchmarks/bench_simulator.py --per-request     # the per-request path (PlatformModel.submit/dispatch)

The process pins itself to the cores given (--cores, default "0": one core) with sched_setaffinity.
Timings on a shared machine are noisy: the load average is printed with the numbers, and so is the
thread's CPU time per run (requests_per_cpu_s), which other processes on the core do not inflate.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from hybridopt.emulation import simulate
from hybridopt.params import load_params

TARGET_REQUESTS_PER_S = 100_000.0
TARGET_TOTAL_S = 30.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--runs", type=int, default=3, help="simulate this many times; the median counts")
    ap.add_argument("--cores", default="0", help="comma-separated CPU ids to pin to ('' = no pinning)")
    ap.add_argument("--per-request", action="store_true", help="run the per-request path instead of the batch one")
    ap.add_argument("--out", default=None, help="where to write the JSONL (default: a temporary folder)")
    ap.add_argument("--json", default=None, help="write the numbers to this file")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    cores = sorted({int(c) for c in args.cores.split(",") if c.strip()})
    if cores:
        os.sched_setaffinity(0, cores)
    params = load_params(args.profile)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    simulate.generate_arrivals(params, args.seed)  # timed on its own: arrival_generation_s
    arrival_s = time.perf_counter() - t0
    runs_s: list[float] = []
    cpu_runs_s: list[float] = []
    res = None
    for _ in range(args.runs):
        c0 = time.thread_time()
        res = (simulate.simulate(params, args.seed, fast=False) if args.per_request
               else simulate.simulate(params, args.seed))
        cpu_runs_s.append(time.thread_time() - c0)
        runs_s.append(res.elapsed_s)
    assert res is not None
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        t2 = time.perf_counter()
        counts = simulate.write_jsonl(res.rows, out)
        write_s = time.perf_counter() - t2
        size = sum(p.stat().st_size for p in out.glob("*.jsonl"))
    lines = sum(counts.values())
    sim_s = statistics.median(runs_s)
    total = sim_s + write_s
    rps = lines / sim_s
    cpu_s = statistics.median(cpu_runs_s)
    numbers = {
        "profile": args.profile, "path": "per_request" if args.per_request else "default",
        "pairs": res.arrivals, "lines": lines, "files": len(counts), "cores": cores or "all",
        "arrival_generation_s": arrival_s, "simulate_runs_s": runs_s, "simulate_s": sim_s,
        "requests_per_s": rps, "simulate_cpu_runs_s": cpu_runs_s, "simulate_cpu_s": cpu_s,
        "requests_per_cpu_s": lines / cpu_s, "write_s": write_s, "total_s": total,
        "lines_per_s_with_write": lines / total,
        "jsonl_mb": size / 1e6, "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(numbers, indent=2))
    ok = rps >= TARGET_REQUESTS_PER_S and total <= TARGET_TOTAL_S
    print(f"simulator ({numbers['path']}, cores {numbers['cores']}): {lines:,} lines ({res.arrivals:,} pairs); "
          f"simulate median {sim_s:.2f} s of {len(runs_s)} = {rps:,.0f} requests/s (target >= "
          f"{TARGET_REQUESTS_PER_S:,.0f}; {lines / cpu_s:,.0f} per CPU second); + write {write_s:.1f} s = "
          f"{total:.1f} s (target <= {TARGET_TOTAL_S:.0f} s): "
          f"{'PASS' if ok else 'FAIL'}")
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
