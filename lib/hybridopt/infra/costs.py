"""What an hour of each load pattern of the schedule costs on the deployed platforms (the README's
cost note; `python -m hybridopt infra cost --profile aws`).

The hour's requests come from the project's platform model (`emulation.simulate`, the profile's
schedule, one seed): every pair sends one request to each platform. They are billed as AWS would
bill them by the project's bill (`decision.bill`) with the prices in params, the ECS tasks as the
model ran them (its minimum tasks, plus what its autoscaling added):

- Lambda: billed GB-s x $/GB-s + requests x $/request + API Gateway requests;
- Fargate provisioned: the services' minimum tasks for the whole hour, what the stack keeps running
  whatever the load;
- Fargate as modelled: the task-seconds the modelled services ran (per second, 1-minute minimum
  for the tasks autoscaling added);
- ALB: every clock hour the window touches plus the LCU-hours (per hour the largest of its four
  dimensions).

Not in params' prices, so not in the totals: CloudWatch Logs ingestion and storage, public IPv4
addresses (the ALB's and one per task), ECR storage, data transfer out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from hybridopt.params import Params

#: Columns of `hourly_costs` (USD unless named otherwise).
COLUMNS = ("time_window", "load_pattern", "pairs", "lambda_invocations", "lambda_gb_s", "lambda_usd",
           "fargate_provisioned_usd", "fargate_modelled_usd", "alb_usd", "total_usd")


@dataclass(frozen=True)
class CostNote:
    table: pd.DataFrame
    seed: int
    profile: str
    service_preset: str

    def render(self) -> str:
        t = self.table
        head = ("| window | load pattern | pairs/h | Lambda invocations | Lambda GB-s | Lambda + API GW $ | "
                "Fargate min tasks $ | Fargate modelled $ | ALB $ | total $ |")
        lines = [head, "|" + "---|" * 10]
        for r in t.itertuples():
            lines.append(f"| {r.time_window} | {r.load_pattern} | {r.pairs:,} | {r.lambda_invocations:,} | "
                         f"{r.lambda_gb_s:,.0f} | {r.lambda_usd:.2f} | {r.fargate_provisioned_usd:.3f} | "
                         f"{r.fargate_modelled_usd:.3f} | {r.alb_usd:.2f} | {r.total_usd:.2f} |")
        lines.append(f"\nprofile {self.profile}, service preset {self.service_preset}, simulator seed {self.seed}; "
                     "total = Lambda + Fargate modelled + ALB")
        return "\n".join(lines)


def provisioned_fargate_usd_per_hour(params: Params) -> float:
    """The services' minimum tasks for one hour."""
    pr = params.prices
    return sum(w.fargate.min_tasks * (w.fargate.vcpu * pr.fargate_vcpu_hour_usd.value
                                      + w.fargate.memory_gb * pr.fargate_gb_hour_usd.value)
               for w in params.workloads.values())


def hourly_costs(params: Params, seed: int = 42) -> CostNote:
    """One row per time window of the schedule (each one hour of its load pattern)."""
    from hybridopt.decision import capacity
    from hybridopt.decision.bill import bill
    from hybridopt.emulation import simulate

    res = simulate.simulate(params, seed)
    rows = res.rows.copy()
    rows["sent_at"] = pd.to_datetime(rows["sent_at"], utc=True, format="ISO8601")
    d = simulate.DEFAULT_START_DATE
    origin_s = datetime(d.year, d.month, d.day, tzinfo=params.tz).timestamp()
    b = bill(rows, params, capacity.from_model(res.model.ecs, origin_s))
    lines = b.frame()
    provisioned = provisioned_fargate_usd_per_hour(params)
    out = []
    for window, g in rows.groupby("time_window", sort=False):
        tw = params.time_windows[str(window)]
        hours = params.load_patterns[tw.load_pattern].duration_s / 3600.0
        runs = set(g["run_id"].astype(str))
        mine = lines[lines["session"].astype(str).isin(runs)]
        lam = mine[mine["platform"] == "lambda"]
        fargate = mine[mine["item"].astype(str).str.startswith("fargate")]
        alb = mine[mine["item"].astype(str).str.startswith("alb")]
        lam_usd, fg_usd, alb_usd = float(lam["usd"].sum()), float(fargate["usd"].sum()), float(alb["usd"].sum())
        out.append({"time_window": str(window), "load_pattern": tw.load_pattern, "pairs": int(g["pair_id"].nunique()),
                    "lambda_invocations": int(lam.loc[lam["item"] == "lambda_requests", "quantity"].sum()),
                    "lambda_gb_s": float(lam.loc[lam["item"] == "lambda_duration", "quantity"].sum()),
                    "lambda_usd": lam_usd, "fargate_provisioned_usd": provisioned * hours,
                    "fargate_modelled_usd": fg_usd, "alb_usd": alb_usd, "total_usd": lam_usd + fg_usd + alb_usd})
    table = pd.DataFrame(out, columns=list(COLUMNS))
    order = {k: tw.code for k, tw in params.time_windows.items()}
    table = table.sort_values("time_window", key=lambda s: s.map(order)).reset_index(drop=True)
    return CostNote(table=table, seed=seed, profile=params.profile, service_preset=params.testbed.service_preset)
