"""Router benchmark: package size, warm p50/p99 per call in-process, cold init in a fresh process.

    python benchmarks/bench_router.py --profile thesis-2025-11 [--calls 2000] [--cold-runs 5]

Uses the profile's trained model (models/<profile>/) when it exists; otherwise, or with
--synthetic, a 300-tree model of each format trained on synthetic contexts (said so in the output).
Targets (issue 6): zip < 50 MB (aim < 10 MB); warm per call < 10 ms (aim p99 < 1 ms).
Writes reports/<profile>/benchmarks/bench_router.json. Timings are noisy on a shared 2-core machine:
the load average is recorded with them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from hybridopt.data.features import FeatureSpec
from hybridopt.params import load_params
from hybridopt.router.bench import cold_init, machine, warm_latency
from hybridopt.router.handler import Router
from hybridopt.router.package import build_package, router_config
from hybridopt.testing import write_synthetic_model_dir


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="thesis-2025-11")
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--cold-runs", type=int, default=5)
    ap.add_argument("--synthetic", action="store_true", help="benchmark synthetic 300-tree models")
    args = ap.parse_args(argv)
    params = load_params(args.profile)
    cfg = router_config(params)
    trained = params.path("models_dir")
    results = {"profile": args.profile, "machine": machine(), "models": []}
    with tempfile.TemporaryDirectory() as tmp:
        dirs = []
        if (trained / "model_metadata.json").is_file() and not args.synthetic:
            dirs.append(("trained", trained))
        else:
            spec = FeatureSpec.from_params(params)
            for fmt in ("lightgbm", "xgboost"):
                dirs.append((f"synthetic-{fmt}-300", write_synthetic_model_dir(
                    spec, Path(tmp) / fmt, fmt, n_rows=6000, n_trees=300, seed=0)))
        for label, d in dirs:
            rep = build_package(d, Path(tmp) / f"{label}.zip", cfg, params.router.max_package_mb,
                                params.router.target_package_mb)
            router = Router.from_dir(d, cfg)
            warm = warm_latency(router, args.calls)
            cold = cold_init(rep.zip_path, args.cold_runs)
            results["models"].append({"label": label, "format": rep.model_format, "version": rep.model_version,
                                      "n_trees": len(router.model.trees), "zip_bytes": rep.zip_bytes,
                                      "unzipped_bytes": rep.unzipped_bytes, "model_bytes": rep.model_bytes,
                                      "warm": warm, "cold": cold})
    out = params.path("reports_dir") / "benchmarks" / "bench_router.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"router benchmark ({args.profile}; {results['machine']})")
    ok = True
    for m in results["models"]:
        w, c = m["warm"], m["cold"]
        print(f"  {m['label']:<22} {m['format']:<14} trees {m['n_trees']:>4}  zip {m['zip_bytes'] / 1e6:6.3f} MB")
        for case in ("direct_event", "http_api_v2_event", "model_only"):
            print(f"    warm {case:<18} p50 {w[case]['p50_us']:8.1f} µs   p99 {w[case]['p99_us']:8.1f} µs")
        print(f"    cold init (import + load) median {c['init_ms_median']:.1f} ms; import {c['import_ms']['median']:.1f}, "
              f"load {c['load_ms']['median']:.1f}, first call {c['first_call_ms']['median']:.2f}, "
              f"process wall {c['process_wall_ms']['median']:.0f} ms")
        ok &= m["zip_bytes"] < params.router.max_package_mb * 1e6 and w["direct_event"]["p99_us"] < 10_000
    print(f"  targets (zip < {params.router.max_package_mb} MB, warm p99 < 10 ms): {'met' if ok else 'NOT met'}")
    print(f"  wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
