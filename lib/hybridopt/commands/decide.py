"""python -m hybridopt decide: routing policies judged by an explicit objective against its oracle.

Without --data: leave-session-out on the profile's processed pairs (stages 02-03), then the outcome
models, rules and classifier refitted on all sessions into models/<profile>/decision/. With --data:
a folder of logs the saved models never saw, through the same audit, pairing and features, scored
with the saved models (no refit). Either way decisions.json (OPEN LOOP: the logged load). A wrong
input (missing stage outputs, a broken model folder, logs without pairs) is an InputError: one line,
exit 2 (hybridopt.cli).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hybridopt.commands._common import table
from hybridopt.params import load_params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", required=True, help="params profile (params/<profile>.yaml)")
    parser.add_argument("--data", type=Path, default=None,
                        help="score this folder of logs with the SAVED models (no refit) instead of evaluating "
                             "the profile's processed pairs leave-session-out")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for decisions.json (default: reports/<profile>/decide, with --data "
                             "reports/<profile>/decide/unseen)")
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: models/<profile>)")


def run(args: argparse.Namespace) -> int:
    from hybridopt.decision.artifacts import decide_profile, decide_unseen

    params = load_params(args.profile)
    t0 = time.perf_counter()
    if args.data is None:
        doc = decide_profile(params, args.out, args.model)
    else:
        doc = decide_unseen(params, args.data, args.out, args.model)
    pol = {r["policy"]: r for r in doc["policies"]}
    s = doc["summary"]
    rows: list[tuple[str, object]] = [("mode", doc["mode"]), ("pairs", f"{doc['data']['pairs']:,} in "
                                      f"{len(doc['data']['sessions'])} sessions")]
    for name in ("always_lambda", "always_ecs", "workload_rule", "lookup_table", "classifier@0.5",
                 "classifier@best", "objective", "oracle"):
        r = pol[name]
        rows.append((name, f"bill ${r['bill_avg_usd_per_1k_requests']:.5f}/1k, p95 {r['latency_p95_ms']:.0f} ms, "
                           f"SLO miss {r['slo_miss_share']:.3f}, regret ${r['regret_usd_per_1k_requests']:+.5f}/1k "
                           f"{r['regret_ms_per_request']:+.0f} ms"))
    rows += [("best static (by the objective)", s["best_static"]),
             ("objective scores better than it", "yes" if s["objective_scores_better_than_best_static"] else "no"),
             ("leak guard", f"{doc['leak_guard']['check_causal']['probes']} probes, passed"),
             ("seconds", f"{time.perf_counter() - t0:.1f}"), ("wrote", doc["path"])]
    for note in doc.get("notes") or []:
        rows.append(("note", note))
    print(f"decide {params.profile} (OPEN LOOP: the logged load; routing would change it)")
    print(table(rows))
    return 0
