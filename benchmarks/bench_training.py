"""Training benchmark (issue 5): all five model families including the CV search, the metrics,
ceilings, SHAP importance, decision quality and the temporal split on ~180,000 pairs, against a
10-minute budget on this 2-core machine; then single-row prediction latency of the saved best
model through its serving format (no sklearn wrapper), and its size.

Data: the simulator's training table of the profile when it exists
(data/<profile>/processed/training_table.parquet, e.g. after `python -m hybridopt simulate
--profile full` and `preprocess`), otherwise a SYNTHETIC table of the same schema and size
(hybridopt.testing; says so in the output).

    python benchmarks/bench_training.py [--profile full] [--rows 180000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import hybridopt.modeling  # noqa: F401  (first: OpenMP wait policy before the boosters load)
import numpy as np
import pandas as pd
from hybridopt import paths
from hybridopt.modeling.artifacts import jsonable, load_serving, save_artifacts
from hybridopt.modeling.train import train_all
from hybridopt.params import load_params
from hybridopt.testing import synthetic_table

BUDGET_S = 600.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full")
    ap.add_argument("--rows", type=int, default=180_000, help="synthetic rows when there is no simulator table")
    ap.add_argument("--table", type=Path, default=None, help="a training table to use instead")
    ap.add_argument("--calls", type=int, default=1000, help="single-row predictions to time")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args(argv)

    params = load_params(args.profile)
    path = args.table or paths.processed(params).training_table
    if path.is_file():
        table = pd.read_parquet(path)
        source = f"simulator/real table {path}"
    else:
        t = time.perf_counter()
        table = synthetic_table(params, args.rows, seed=params.training.seed).table
        source = f"SYNTHETIC table of the training-table schema ({path} does not exist; built in {time.perf_counter() - t:.1f} s)"
    print(f"data: {source}: {len(table):,} pairs")
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()}")

    t0 = time.perf_counter()
    run = train_all(params, table, log=lambda s: print(f"[{time.perf_counter() - t0:6.1f} s] {s}", flush=True))
    train_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        out = save_artifacts(run, params, Path(tmp) / "models")
        served = load_serving(out)
        size = (out / served.meta["serving"]["file"]).stat().st_size
        X = table.loc[:, served.columns].to_numpy(dtype=np.float64)
        rows = X[np.random.default_rng(0).choice(len(X), size=args.calls + 20)]
        lat = []
        for i, r in enumerate(rows):
            row = r.reshape(1, -1)
            t = time.perf_counter_ns()
            served.predict_proba(row)
            if i >= 20:
                lat.append((time.perf_counter_ns() - t) / 1000.0)
    lat_a = np.array(lat)
    res = {
        "data": source, "pairs": len(table), "load_average_after": os.getloadavg(),
        "train_all_s": round(train_s, 1), "budget_s": BUDGET_S, "within_budget": train_s <= BUDGET_S,
        "timings_s": run.timings_s,
        "search": {m: {"candidates": len(s.candidates), "stopped_by_budget": s.stopped_by_budget,
                       "seconds": round(s.seconds, 1)} for m, s in run.searches.items()},
        "test_accuracy": {m: round(v["test"]["accuracy"], 4) for m, v in run.metrics.items()},
        "test_ceiling": run.ceiling["test"]["accuracy"],
        "best": run.best, "serving_format": served.fmt, "model_bytes": size,
        "single_row_us": {"p50": round(float(np.percentile(lat_a, 50)), 1),
                          "p99": round(float(np.percentile(lat_a, 99)), 1), "calls": len(lat_a)},
    }
    print(json.dumps(jsonable(res), indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(jsonable(res), indent=2))
    print(f"\ntrain_all {train_s:.1f} s ({'within' if res['within_budget'] else 'OVER'} the {BUDGET_S:.0f} s budget); "
          f"{served.fmt} single row p50 {res['single_row_us']['p50']} us, p99 {res['single_row_us']['p99']} us; "
          f"{size:,} bytes")
    return 0 if res["within_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
