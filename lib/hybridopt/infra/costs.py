"""What an hour of each load pattern of the schedule costs on the deployed platforms (the README's
cost note; `python -m hybridopt infra cost --profile aws`).

The hour's requests come from the project's platform model (`emulation.simulate`, the profile's
schedule, one seed): every pair sends one request to each platform. They are billed by the project's
cost model (`data.cost`) with the prices in params:

- Lambda: billed GB-s x $/GB-s + requests x $/request + API Gateway requests (`cost.lambda_cost_usd`);
- Fargate provisioned: the services' minimum tasks for the whole hour (task-hours x (vCPU x $/vCPU-h
  + GB x $/GB-h)), what the stack keeps running whatever the load;
- Fargate as modelled: the cost model's amortised task cost (minimum tasks, or more in the minutes
  the modelled autoscaling ran more), ALB excluded;
- ALB: one ALB-hour plus the processed-bytes LCUs of the ECS requests (`cost.ecs_cost_usd`'s share).

Not in params' prices, so not in the totals: CloudWatch Logs ingestion and storage, public IPv4
addresses (the ALB's and one per task), ECR storage, data transfer out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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
    from hybridopt.data.cost import ecs_cost_usd, lambda_cost_usd
    from hybridopt.emulation import simulate

    rows = simulate.simulate(params, seed).rows.copy()
    rows["sent_at"] = pd.to_datetime(rows["sent_at"], utc=True, format="ISO8601")
    no_alb = params.model_copy(update={"cost": params.cost.model_copy(update={"include_alb": False})})
    rows["lambda_usd"] = lambda_cost_usd(rows, params)
    rows["ecs_usd"] = ecs_cost_usd(rows, params)
    rows["ecs_compute_usd"] = ecs_cost_usd(rows, no_alb)
    error = rows["error"].astype(object)
    invoked = (rows["platform"] == "lambda") & ~error.isin(("payload_too_large", "throttled", "connection",
                                                            "client_error"))
    mem = rows["workload_type"].map({k: w.lambda_memory_mb for k, w in params.workloads.items()}).astype(float)
    rows["gb_s"] = np.where(invoked, np.ceil(rows["billed_duration_ms"].fillna(0.0)) / 1000.0 * mem / 1024.0, 0.0)
    provisioned = provisioned_fargate_usd_per_hour(params)
    out = []
    for window, g in rows.groupby("time_window", sort=False):
        tw = params.time_windows[str(window)]
        hours = params.load_patterns[tw.load_pattern].duration_s / 3600.0
        e = g[g["platform"] == "ecs"]
        alb_bytes = (e["ecs_usd"] - e["ecs_compute_usd"]).sum()
        # the cost model shares the ALB-hour over the minutes that had requests: bill the whole hour
        minutes_with_requests = e["sent_at"].dt.floor("min").nunique()
        alb_hour_part = params.prices.alb_hour_usd.value / 60.0 * minutes_with_requests
        alb = params.prices.alb_hour_usd.value * hours + (alb_bytes - alb_hour_part)
        lam = float(g["lambda_usd"].sum())
        modelled = float(e["ecs_compute_usd"].sum())
        out.append({"time_window": str(window), "load_pattern": tw.load_pattern, "pairs": int(g["pair_id"].nunique()),
                    "lambda_invocations": int(invoked[g.index].sum()), "lambda_gb_s": float(g["gb_s"].sum()),
                    "lambda_usd": lam, "fargate_provisioned_usd": provisioned * hours,
                    "fargate_modelled_usd": modelled, "alb_usd": float(alb), "total_usd": lam + modelled + float(alb)})
    table = pd.DataFrame(out, columns=list(COLUMNS))
    order = {k: tw.code for k, tw in params.time_windows.items()}
    table = table.sort_values("time_window", key=lambda s: s.map(order)).reset_index(drop=True)
    return CostNote(table=table, seed=seed, profile=params.profile, service_preset=params.testbed.service_preset)
