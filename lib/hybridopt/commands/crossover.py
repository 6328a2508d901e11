"""`python -m hybridopt crossover --profile NAME [--scheduler ADDRESS] [--workers N] [--force]`: run the
profile's crossover grid (params `closed_loop.crossover`) on Dask: a LocalCluster of N processes by
default, or the running scheduler at ADDRESS (e.g. tcp://10.0.0.5:8786, or a FargateCluster's
scheduler address). Finished tasks are cached (a rerun computes only what is missing); a task that
fails or overruns its budget is recorded with its status and error. Writes results.parquet,
sweep.json and the crossover map (SVG, PDF) to the grid's out_dir and prints one line per workload."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} workers: at least 1 is needed")
    return n


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", required=True, help="params profile (params/<profile>.yaml)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="a running Dask scheduler (tcp://host:8786); default: a LocalCluster on this machine")
    parser.add_argument("--workers", type=_positive, default=None, metavar="N",
                        help="LocalCluster worker processes, one thread each (default: closed_loop.crossover.n_workers)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write results, cache and map here (default: closed_loop.crossover.out_dir)")
    parser.add_argument("--force", action="store_true", help="recompute every task (ignore the cache)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from hybridopt.closedloop.grid import run_crossover
    from hybridopt.closedloop.sweep import SweepError
    from hybridopt.errors import InputError
    from hybridopt.params import load_params
    from hybridopt.report import crossover as report

    params = load_params(args.profile)
    if args.scheduler and args.workers:
        raise InputError("--workers sizes a LocalCluster; with --scheduler the running cluster's workers are used")
    try:
        run_ = run_crossover(params, scheduler=args.scheduler, n_workers=args.workers, force=args.force,
                             progress=not args.no_progress, out=args.out)
    except SweepError as exc:
        raise InputError(str(exc)) from exc
    s = run_.summary
    counts = s["status_counts"]
    where = f"on {s['workers']} workers ({s['scheduler']})" if s["computed"] else "(nothing to compute)"
    print(f"crossover: profile {params.profile}, {s['tasks']} tasks {where}: {s['cached']} from the cache, "
          f"{s['computed']} computed ({s['computed_task_wall_s']:.1f} s in tasks, {s['computed_task_cpu_s']:.1f} s of CPU), "
          f"{s['wall_s']:.1f} s wall")
    print(f"  ok {counts['ok']}, failed {counts['failed']}, over budget {counts['over_budget']}"
          + (f", {s['missing']} not run (interrupted)" if s["interrupted"] else ""))
    bad = run_.frame[run_.frame["status"] != "ok"]
    for r in bad.head(5).itertuples():
        print(f"  {r.status}: {r.workload_type} {r.rate_rps:g} rps {r.payload_size_kb:g} KB {r.capacity} {r.policy} "
              f"seed {r.seed}: {str(r.error).splitlines()[0] if r.error else ''}")
    if len(bad) > 5:
        print(f"  ... {len(bad) - 5} more in {run_.dir / 'results.parquet'}")
    if s["interrupted"]:
        print(f"interrupted: {len(run_.frame)} of {s['tasks']} tasks done and cached; run the same command again "
              "to finish", file=sys.stderr)
        return 130
    section = report.crossover_section(params, run=run_)
    files = report.save_figure(section, run_.dir)
    print(section.text)
    for w, line in section.answers.items():
        print(f"  {line}")
    print(f"  results: {run_.dir / 'results.parquet'}; map: {', '.join(str(f) for f in files)}")
    return 0
