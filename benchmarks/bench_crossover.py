"""Crossover map and policy frontier on a LocalCluster: the default crossover grid (params
`closed_loop.crossover` of --profile, `full` = base.yaml's 5,670 runs) computed from scratch into a
temporary directory, then again from its cache; and the closed-loop policy frontier (`replay_profile`:
every policy x seed on the logged pairs) of --frontier-profile when its pairs and models exist.
Target: grid + frontier within 10 minutes of wall time on 2 cores.

    python benchmarks/bench_crossover.py [--profile full] [--frontier-profile quick] [--workers 2]

The frontier needs `make run` (or the profile's pipeline up to 06_decide) first: without its pairs
it is reported as not measured and the verdict covers the grid only (said so). Timings on a shared
machine are noisy: the load average is recorded beside them, and the CPU seconds of the runs too
(what a quiet core would spend). Writes reports/<profile>/benchmarks/bench_crossover.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from hybridopt import paths
from hybridopt.closedloop.grid import run_crossover
from hybridopt.closedloop.replay import replay_profile
from hybridopt.params import load_params

TARGET_S = 600.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full", help="whose crossover grid (default: full, the base grid)")
    ap.add_argument("--frontier-profile", default="quick", help="whose logged pairs the frontier replays")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    params = load_params(args.profile)
    out = {"profile": args.profile, "workers": args.workers, "cpus": os.cpu_count(),
           "load_average_before": list(os.getloadavg())}
    with tempfile.TemporaryDirectory(prefix="bench-crossover-") as tmp:
        t0 = time.perf_counter()
        first = run_crossover(params, n_workers=args.workers, force=True, progress=False, out=Path(tmp))
        grid_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = run_crossover(params, n_workers=args.workers, progress=False, out=Path(tmp))
        cache_s = time.perf_counter() - t0
    s = first.summary
    out["grid"] = {"tasks": s["tasks"], "computed": s["computed"], "status_counts": s["status_counts"],
                   "wall_s": round(grid_s, 1), "task_cpu_s": round(float(s["computed_task_cpu_s"]), 1),
                   "task_wall_s": round(float(s["computed_task_wall_s"]), 1)}
    out["cache_rerun"] = {"wall_s": round(cache_s, 2), "cached": again.summary["cached"],
                          "computed": again.summary["computed"]}
    print(f"crossover grid ({args.profile}): {s['tasks']:,} runs on {args.workers} workers in {grid_s:.1f} s wall "
          f"({s['computed_task_cpu_s']:.1f} CPU-s in runs; {s['status_counts']}); from the cache {cache_s:.2f} s "
          f"({again.summary['cached']:,} cached, {again.summary['computed']} computed)")

    fp = load_params(args.frontier_profile)
    if paths.processed(fp).pairs.is_file():
        t0 = time.perf_counter()
        doc = replay_profile(fp, workers=args.workers, log=lambda line: None, write=False)
        frontier_s = time.perf_counter() - t0
        out["frontier"] = {"profile": args.frontier_profile, "arrivals": doc["arrivals"],
                           "policies": len(doc["policies"]), "seeds": len(doc["seeds"]),
                           "wall_s": round(frontier_s, 1), "cpu_runs_s": doc["cpu_runs_s"]}
        print(f"frontier ({args.frontier_profile}): {doc['arrivals']:,} pairs x {len(doc['policies'])} policies x "
              f"{len(doc['seeds'])} seeds in {frontier_s:.1f} s wall")
    else:
        frontier_s = 0.0
        out["frontier"] = None
        print(f"frontier: not measured: {paths.processed(fp).pairs} does not exist (make run PROFILE="
              f"{args.frontier_profile} first); the verdict covers the grid only")
    total = grid_s + frontier_s
    out["load_average_after"] = list(os.getloadavg())
    out["total_s"] = round(total, 1)
    out["target_s"] = TARGET_S
    out["pass"] = bool(total <= TARGET_S and s["status_counts"].get("ok") == s["tasks"])
    dest = paths.resolve("reports/{profile}/benchmarks", params.profile) / "bench_crossover.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=1))
    print(f"grid + frontier {total:.1f} s (target <= {TARGET_S:.0f} s): {'PASS' if out['pass'] else 'FAIL'}; "
          f"load average {out['load_average_before'][0]:.1f} -> {out['load_average_after'][0]:.1f}; wrote {dest}")
    return 0 if out["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
