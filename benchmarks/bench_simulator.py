"""Simulator speed: the full thesis schedule (five one-hour windows, ~180,000 pairs, ~360,000 contract
lines) generated, simulated and written as JSONL. Target (issue 4): at most 30 s on this 2-core machine.

    python benchmarks/bench_simulator.py [--profile full] [--seed 42] [--out DIR] [--json out.json]

Timings on a shared 2-core machine are noisy; the load average is printed with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from hybridopt.emulation import simulate
from hybridopt.params import load_params


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default=None, help="where to write the JSONL (default: a temporary folder)")
    ap.add_argument("--json", default=None, help="write the numbers to this file")
    args = ap.parse_args()
    params = load_params(args.profile)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        simulate.generate_arrivals(params, args.seed)  # timed on its own: arrival_generation_s
        t1 = time.perf_counter()
        res = simulate.simulate(params, args.seed)
        t2 = time.perf_counter()
        counts = simulate.write_jsonl(res.rows, out)
        t3 = time.perf_counter()
        cpu = time.process_time() - cpu0
        size = sum(p.stat().st_size for p in out.glob("*.jsonl"))
    lines = sum(counts.values())
    total = (t3 - t2) + res.elapsed_s
    numbers = {
        "profile": args.profile, "pairs": res.arrivals, "lines": lines, "files": len(counts),
        "arrival_generation_s": t1 - t0, "simulate_s": res.elapsed_s, "write_s": t3 - t2,
        "total_s": total, "lines_per_s": lines / total, "model_requests_per_s": lines / res.elapsed_s,
        "cpu_s": cpu, "jsonl_mb": size / 1e6, "load_average_before": load_before,
        "load_average_after": os.getloadavg(), "cpus": os.cpu_count(),
    }
    print(json.dumps(numbers, indent=2))
    ok = total <= 30.0
    print(f"simulator: {lines:,} lines ({res.arrivals:,} pairs) in {total:.1f} s "
          f"(simulate {res.elapsed_s:.1f} s + write {t3 - t2:.1f} s; {lines / total:,.0f} lines/s): "
          f"{'PASS' if ok else 'FAIL'} (target <= 30 s)")
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
