"""Decide benchmark: the serving fit of stage 06 on ~180,000 pairs (the `full` simulator profile)
against a 10-minute budget on this 2-core machine: the per-platform outcome models (p50, p95, fail),
the classifier and its out-of-fold threshold search (leave one session out), i.e. what
`decide` refits on all sessions; the decision features (load state) and the leak guard timed beside.
`--evaluate` also times the whole `decide` (leave-session-out + serving refit + bills).

Data: the profile's processed pairs and requests (data/<profile>/processed). When they do not
exist the profile is simulated and preprocessed into a temporary folder first (timed separately).

    python benchmarks/bench_decide.py [--profile full] [--evaluate] [--json out.json]
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
from hybridopt.data.features import FeatureSpec
from hybridopt.decision.artifacts import decide_profile, missing_completion_s
from hybridopt.decision.evaluate import prepare
from hybridopt.decision.marginal_fit import fit_marginal
from hybridopt.decision.outcomes import fit_outcomes
from hybridopt.decision.policies import (
    best_threshold,
    fit_classifier,
    label_array,
    measured_outcomes,
    objectives,
    out_of_fold_proba,
    served_family,
)
from hybridopt.modeling.artifacts import jsonable
from hybridopt.params import Params, load_params

BUDGET_S = 600.0


def _inputs(params: Params, tmp: Path) -> tuple[Params, str, float]:
    """The profile's params, pointed at simulated data in `tmp` when its processed files are missing."""
    d = paths.processed(params)
    if d.pairs.is_file() and d.requests.is_file():
        return params, f"processed pairs of {d.dir}", 0.0
    from hybridopt.data.preprocess import ingest_and_audit, preprocess
    from hybridopt.emulation import simulate

    t = time.perf_counter()
    over = {"data": {"raw_dir": str(tmp / "raw"), "processed_dir": str(tmp / "processed"),
                     "models_dir": str(tmp / "models"), "reports_dir": str(tmp / "reports")}}
    p = load_params(params.profile, overrides=over)
    res = simulate.simulate(p, 42)
    simulate.write_jsonl(res.rows, tmp / "raw")
    simulate.write_capacity(res.model, p, tmp / "raw")
    ingest_and_audit(p)
    preprocess(p)
    return p, f"simulated now ({params.profile}, seed 42) into {tmp}", time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full")
    ap.add_argument("--evaluate", action="store_true", help="also time the whole decide (leave-session-out)")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        params, source, sim_s = _inputs(load_params(args.profile), Path(tmp))
        d = paths.processed(params)
        pairs, requests = pd.read_parquet(d.pairs), pd.read_parquet(d.requests)
        print(f"data: {source}: {len(pairs):,} pairs, {len(requests):,} requests")
        print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()}", flush=True)
        timings: dict[str, float] = {}

        def tick(name: str, since: float) -> float:
            now = time.perf_counter()
            timings[name] = round(now - since, 2)
            print(f"  {name}: {timings[name]:.1f} s", flush=True)
            return now

        t = time.perf_counter()
        spec = FeatureSpec.from_params(params)
        inp = prepare(params, pairs, requests, spec, tuple(float(w) for w in params.decision.load_windows_s),
                      missing_completion_s(params))
        t = tick("features_and_leak_guard", t)
        mc = fit_marginal(inp.requests, params)
        t = tick("fit_marginal", t)
        tp, seed = params.training, params.decision.seed
        models = fit_outcomes(inp.X, inp.pairs, seed, tp.n_jobs)
        t = tick("outcome_models", t)
        fam = served_family(params, None)
        y = label_array(inp.pairs, params.labels.target)
        lab = np.isfinite(y)
        X14 = inp.X[list(spec.columns)]
        fit_classifier(fam, X14[lab], y[lab].astype(np.int64), seed, tp.n_jobs)
        t = tick("classifier", t)
        oof, method = out_of_fold_proba(fam, X14, np.nan_to_num(y).astype(np.int64), lab, inp.sessions, seed,
                                        tp.n_jobs, tp.cv_max_rows)
        out = measured_outcomes(inp.pairs, inp.X["workload_in_flight_ecs"].to_numpy(), mc)
        thr, _ = best_threshold(objectives(params)["default"], out, oof)
        t = tick("classifier_threshold_oof", t)
        train_s = timings["outcome_models"] + timings["classifier"] + timings["classifier_threshold_oof"]
        models.predict(inp.X.iloc[:1])
        row = inp.X.iloc[[len(inp.X) // 2]]
        lat = []
        for _ in range(200):
            t1 = time.perf_counter_ns()
            models.predict(row)
            lat.append((time.perf_counter_ns() - t1) / 1000.0)
        res: dict[str, object] = {
            "data": source, "simulate_and_preprocess_s": round(sim_s, 1), "pairs": int(len(pairs)),
            "sessions": len(set(inp.sessions)), "timings_s": timings,
            "outcome_models_plus_classifiers_s": round(train_s, 1), "budget_s": BUDGET_S,
            "within_budget": train_s <= BUDGET_S, "classifier": fam.name, "threshold": thr, "threshold_method": method,
            "outcome_rows": models.trained_rows,
            "predict_one_pair_six_boosters_us": {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99))},
            "load_average_after": os.getloadavg()}
        if args.evaluate:
            t = time.perf_counter()
            doc = decide_profile(params, Path(tmp) / "decide", Path(tmp) / "models", log=lambda s: print(f"    {s}", flush=True))
            res["decide_whole_s"] = round(time.perf_counter() - t, 1)
            res["decide_reported_s"] = doc["seconds"]
    print(f"outcome models + classifiers: {train_s:.1f} s (budget {BUDGET_S:.0f} s): "
          f"{'WITHIN' if train_s <= BUDGET_S else 'OVER'} budget")
    print(json.dumps(jsonable(res), indent=2))
    if args.json:
        args.json.write_text(json.dumps(jsonable(res), indent=2))
    return 0 if train_s <= BUDGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
