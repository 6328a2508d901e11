"""Router benchmark: package size, warm p50/p99 per call in-process, cold init in a fresh process.

    python benchmarks/bench_router.py --profile quick [--calls 2000] [--cold-runs 5] [--synthetic]

Uses the profile's trained model (models/<profile>/, with its decision/ when the decide stage ran:
the objective path) when it exists; otherwise, or with --synthetic, a 300-tree model of each
format trained on synthetic contexts, and the LightGBM one again with a synthetic decision/ fitted
by the decide stage's own code (said so in the output).
Limits: zip <= params router.target_package_mb (10 MB; router.max_package_mb is Lambda's hard
limit), warm p99 <= 1 ms per decision (direct and HTTP API v2 events), cold initialisation
(import + load, fresh `python -I -S`) <= 1 s. Exits 1 when a limit is not met.
Writes reports/<profile>/benchmarks/bench_router.json. Timings are noisy on a shared 2-core machine:
the load average is recorded with them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from hybridopt import model_dir as layout
from hybridopt.data.features import FeatureSpec
from hybridopt.params import load_params
from hybridopt.router.bench import cold_init, machine, warm_latency
from hybridopt.router.handler import Router
from hybridopt.router.package import build_package, router_config
from hybridopt.testing import write_synthetic_decision_dir, write_synthetic_model_dir

WARM_P99_LIMIT_US = 1000.0
COLD_LIMIT_MS = 1000.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--cold-runs", type=int, default=5)
    ap.add_argument("--synthetic", action="store_true", help="benchmark synthetic 300-tree models")
    args = ap.parse_args(argv)
    params = load_params(args.profile)
    cfg = router_config(params)
    trained = params.path("models_dir")
    results = {"profile": args.profile, "machine": machine(), "models": [],
               "limits": {"zip_mb": params.router.target_package_mb, "warm_p99_us": WARM_P99_LIMIT_US,
                          "cold_init_ms": COLD_LIMIT_MS}}
    with tempfile.TemporaryDirectory() as tmp:
        dirs = []
        if (trained / "model_metadata.json").is_file() and not args.synthetic:
            dirs.append(("trained+decision" if layout.decision_spec_path(trained).is_file() else "trained", trained))
        else:
            spec = FeatureSpec.from_params(params)
            for fmt in ("lightgbm", "xgboost"):
                dirs.append((f"synthetic-{fmt}-300", write_synthetic_model_dir(
                    spec, Path(tmp) / fmt, fmt, n_rows=6000, n_trees=300, seed=0)))
            objective = Path(tmp) / "objective"
            shutil.copytree(dirs[0][1], objective)
            write_synthetic_decision_dir(params, objective, n_pairs=20000, seed=0)
            dirs.append(("synthetic-lightgbm-300+decision", objective))
        for label, d in dirs:
            rep = build_package(d, Path(tmp) / f"{label}.zip", cfg, params.router.max_package_mb,
                                params.router.target_package_mb)
            router = Router.from_dir(d, cfg)
            warm = warm_latency(router, args.calls)
            cold = cold_init(rep.zip_path, args.cold_runs)
            results["models"].append({"label": label, "format": rep.model_format, "version": rep.model_version,
                                      "policy": rep.policy, "decision_version": rep.decision_version,
                                      "n_trees": len(router.model.trees), "zip_bytes": rep.zip_bytes,
                                      "unzipped_bytes": rep.unzipped_bytes, "model_bytes": rep.model_bytes,
                                      "decision_bytes": rep.decision_bytes, "warm": warm, "cold": cold})
    out = params.path("reports_dir") / "benchmarks" / "bench_router.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"router benchmark ({args.profile}; {results['machine']})")
    ok = True
    for m in results["models"]:
        w, c = m["warm"], m["cold"]
        print(f"  {m['label']:<32} {m['format']:<14} {m['policy']:<10} trees {m['n_trees']:>4}  "
              f"zip {m['zip_bytes'] / 1e6:6.3f} MB")
        for case in [k for k, v in w.items() if isinstance(v, dict)]:
            print(f"    warm {case:<20} p50 {w[case]['p50_us']:8.1f} µs   p99 {w[case]['p99_us']:8.1f} µs")
        print(f"    cold init (import + load) median {c['init_ms_median']:.1f} ms; import {c['import_ms']['median']:.1f}, "
              f"load {c['load_ms']['median']:.1f}, first call {c['first_call_ms']['median']:.2f}, "
              f"process wall {c['process_wall_ms']['median']:.0f} ms")
        met = (m["zip_bytes"] <= params.router.target_package_mb * 1e6
               and max(w["direct_event"]["p99_us"], w["http_api_v2_event"]["p99_us"]) <= WARM_P99_LIMIT_US
               and c["init_ms_median"] <= COLD_LIMIT_MS)
        print(f"    limits (zip <= {params.router.target_package_mb:g} MB, warm p99 <= {WARM_P99_LIMIT_US:g} µs, "
              f"cold init <= {COLD_LIMIT_MS:g} ms): {'met' if met else 'NOT met'}")
        ok &= met
    print(f"  wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
