"""python -m hybridopt replay-policy: routing policies judged CLOSED LOOP in the simulator.

Every policy routes the profile's logged pairs at their send times through the router's decision
code; the platform model runs only the chosen attempt, so each policy's own routing makes the load it
is judged under. Per policy: the bill (decision.bill on the run's own Fargate task timeline), latency
p50/p95/p99, failure rate and SLO misses, means and 95 % CIs over params `closed_loop.replay.seeds`;
beside them the decide stage's OPEN-LOOP numbers on the same pairs, and where the two disagree.

    --policy objective --setting "SLO x2"    the objective policy at a setting of params decision.settings
    --policy threshold --setting 4           ECS until 4 requests are in flight on the workload's service
    --policy all                             every policy (the default); writes closed_loop.json
A wrong input (no pairs, no decision folder for a learned policy, an unknown policy) is an InputError:
one line, exit 2 (hybridopt.cli).
"""

from __future__ import annotations

import argparse
import math

from hybridopt.commands._common import table
from hybridopt.params import load_params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", required=True, help="params profile (params/<profile>.yaml)")
    parser.add_argument("--policy", action="append", default=None,
                        help="always_lambda | always_ecs | workload_rule | lookup_table | classifier@0.5 | "
                             "classifier@best | objective | threshold | all (repeatable; default all)")
    parser.add_argument("--setting", action="append", default=None,
                        help="with --policy objective: a decision.settings name; with --policy threshold: the "
                             "in-flight limit (repeatable: one policy each)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="platform-model seeds (default params closed_loop.replay.seeds)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default params closed_loop.replay.workers)")


def policy_list(policies: list[str] | None, settings: list[str] | None) -> list[str] | None:
    """The policy names the arguments ask for (None: all)."""
    from hybridopt.closedloop.replay import ReplayInputError

    if not policies or policies == ["all"]:
        if settings:
            raise ReplayInputError("--setting needs --policy objective or --policy threshold")
        return None
    out: list[str] = []
    for p in policies:
        if p in ("objective", "threshold") and settings:
            out += [p if (p == "objective" and s == "default") else f"{p}:{s}" for s in settings]
        elif p == "threshold":
            raise ReplayInputError("--policy threshold needs --setting LIMIT (requests in flight)")
        else:
            out.append(p)
    return out


def _fmt(v: float, lo: float, hi: float, fmt: str) -> str:
    s = format(v, fmt)
    return s + (f" [{format(lo, fmt)}, {format(hi, fmt)}]" if lo is not None and not math.isnan(lo) else "")


def run(args: argparse.Namespace) -> int:
    from hybridopt.closedloop.replay import replay_profile

    params = load_params(args.profile)
    names = policy_list(args.policy, args.setting)
    doc = replay_profile(params, names, args.seeds, args.workers, write=names is None)
    opened = {r["policy"]: r for r in doc["open"]}
    rows: list[tuple[str, object]] = [("arrivals", f"{doc['arrivals']:,} pairs in {len(doc['sessions'])} sessions"),
                                      ("seeds", doc["seeds"])]
    for r in doc["closed"]:
        nan = float("nan")
        g = {k: (nan if v is None else v) for k, v in r.items()}
        line = (f"CLOSED bill ${_fmt(g['bill_usd_per_1k'], g['bill_usd_per_1k_ci_low'], g['bill_usd_per_1k_ci_high'], '.4f')}"
                f"/1k, p95 {_fmt(g['p95_ms'], g['p95_ms_ci_low'], g['p95_ms_ci_high'], ',.0f')} ms, failures "
                f"{_fmt(g['failure_rate'], g['failure_rate_ci_low'], g['failure_rate_ci_high'], '.3f')}, "
                f"lambda {g['lambda_share']:.2f}")
        o = opened.get(r["policy"])
        if o:
            line += (f" | OPEN bill ${o['bill_avg_usd_per_1k_requests']:.4f}/1k, p95 {o['latency_p95_ms']:,.0f} ms, "
                     f"failures {o['failure_rate']:.3f}")
        rows.append((r["policy"], line))
    dis = [c for c in doc["comparison"] if c["disagree"]]
    rows.append(("closed vs open disagree (CIs apart)",
                 "; ".join(f"{c['policy']} {c['metric']}" for c in dis) if dis else
                 ("none" if doc["comparison"] else "no open-loop decisions.json")))
    if doc["skipped"]:
        rows.append(("skipped (no decision folder)", ", ".join(doc["skipped"])))
    rows += [("seconds", f"{doc['wall_s']:.1f} wall, {doc['cpu_runs_s']:.1f} in runs")]
    if "path" in doc:
        rows.append(("wrote", doc["path"]))
    print(f"replay-policy {params.profile} (CLOSED LOOP in the simulator; open loop from the decide stage)")
    print(table(rows))
    return 0
