"""python -m hybridopt ab: the online A/B test through the router (Artillery on the local testbed,
or against the student's AWS endpoints with --aws-opt-in), or --simulate it at the plan's scale."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hybridopt.ab import online as abtest
from hybridopt.ab import stats as ab
from hybridopt.errors import InputError
from hybridopt.params import load_params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", required=True, help="params profile (params/<profile>.yaml)")
    parser.add_argument("--simulate", action="store_true", help="virtual-time A/B (ab.simulate_requests)")
    parser.add_argument("--requests", type=int, default=None, help="override the number of requests")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="route with this model folder instead of the profile's models/<profile>")
    parser.add_argument("--aws-opt-in", action="store_true",
                        help="aws profile: send real traffic through the router to collection.lambda_base_url "
                             "and collection.ecs_base_url (costs money)")


def run(args: argparse.Namespace) -> int:
    params = load_params(args.profile)
    a = params.ab
    model_dir = args.model_dir or params.path("models_dir")
    if args.simulate:
        frame, facts = abtest.simulated_ab(params, model_dir, args.requests)
        where = f"simulator: {facts['requests']:,} requests over {facts['virtual_days']:.1f} virtual days"
    else:
        upstreams = None
        if params.source == "aws":
            if not args.aws_opt_in:
                raise InputError(f"profile {params.profile} sends real traffic to AWS: pass --aws-opt-in to run it")
            upstreams = (params.collection.lambda_base_url, params.collection.ecs_base_url)
        zp = abtest.ensure_package(params, model_dir)
        run_ = abtest.run_testbed_ab(params, zp, n_requests=args.requests, upstreams=upstreams)
        if run_.artillery_rc != 0 or run_.requests.empty:
            print(f"error: Artillery exited {run_.artillery_rc}; see {run_.out_dir / 'artillery.log'}", file=sys.stderr)
            return 1
        frame = run_.requests
        led = run_.ledger
        where = (f"{'aws' if upstreams else 'testbed'}: {run_.lines} lines ({led.kept + led.repaired} used, "
                 f"{led.quarantined} quarantined) in {run_.seconds:.0f} s ({run_.out_dir})")
    res = ab.compare_arms(frame, a.bootstrap_resamples, a.confidence, a.alpha, a.seed)
    plan = ab.plan_power(res, a.plan_requests, a.treatment_share, a.alpha, a.power)
    print(f"A/B {params.profile} ({where})")
    print(res.arms.to_string(float_format=lambda v: f"{v:.6g}"))
    print(res.comparison[["difference", "ci_low", "ci_high", "test", "p_value"]].to_string(
        float_format=lambda v: f"{v:.4g}"))
    print(f"plan: {a.plan_requests:,} requests, MDE per metric:")
    print(plan[["mde_at_plan", "mde_relative", "requests_for_observed"]].to_string(float_format=lambda v: f"{v:.4g}"))
    return 0
