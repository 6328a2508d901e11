"""The bill of an A/B test, per arm (`hybridopt.decision.bill`), and each request's share of it.

Both arms run on ONE fleet: the same ECS services (their deployed tasks, and the tasks autoscaling
added for the load of both arms) behind the same ALB. What the test can attribute to an arm:
- request-driven lines (`REQUEST_ITEMS`): the Lambda GB-s, Lambda requests and API Gateway
  requests of the arm's own attempts (exact, per request), and the ALB's LCUs of its ECS attempts;
- fleet lines (`FLEET_ITEMS`): Fargate task-hours and ALB hours, billed as the fleet ran in each
  session (`bill`'s rule: a workload service is billed in a session when the arm sent at least one
  request to it there, the ALB when the arm sent any to ECS). An A/B on one fleet cannot say which
  arm made it scale: the fleet lines are those of the shared fleet for both arms.

The arm's average bill per request, extrapolated to all N requests of the test as if this arm's
policy had routed all of them on this fleet: (N / n_arm x its request-driven dollars + its fleet
dollars) / N = request-driven dollars / n_arm + fleet dollars / N (`avg_usd_per_request`;
`avg_usd_per_1k_requests`). Each request's `bill_usd` is its share of that: its own Lambda lines (or,
on ECS, an equal share of its arm's LCU dollars) plus the arm's fleet dollars / N, so the arm's mean
`bill_usd` is its average. The LCU lines scale linearly in this extrapolation (the ALB bills the max
of four dimensions per hour: linear while the same dimension binds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from hybridopt.data.contract import ARMS
from hybridopt.decision import bill as billing
from hybridopt.decision.capacity import CapacityTimeline
from hybridopt.params import Params

REQUEST_ITEMS: Final = ("lambda_duration", "lambda_requests", "api_gateway_requests", "alb_lcu")
FLEET_ITEMS: Final = ("fargate_vcpu", "fargate_memory", "alb_hours")
NOTE: Final = ("Per-request figures are AVERAGES of the arm's bill, extrapolated to all the test's requests: the arm's "
               "request-driven lines (Lambda, API Gateway, ALB LCUs) / its requests + its fleet lines / all requests. "
               "Both arms run on ONE fleet, and an A/B on one fleet cannot say which arm made it scale: an arm's "
               "fleet_usd is the shared fleet's Fargate task-hours (as the services ran for both arms) of every ECS "
               "service the arm sent requests to (ecs_services), in each session it did, in full, plus the ALB hours "
               "if it used ECS. A service both arms used is in both arms' fleet_usd, so the arms' fleet lines do not "
               "add up to `both` (the fleet AWS bills once); an arm that sends fewer workloads to ECS carries fewer "
               "services' task-hours.")


@dataclass
class ArmBills:
    bills: dict[str, billing.Bill]     # per arm: the bill of its attempts (fleet lines as the fleet ran)
    whole: billing.Bill                # both arms: what AWS would send for the test
    table: pd.DataFrame                # one row per arm (and "both")
    bill_usd: np.ndarray               # per request (row-aligned with the input): its share, see the module


def lambda_usd(rows: pd.DataFrame, params: Params) -> np.ndarray:
    """Each Lambda attempt's own bill lines (GB-s, request, API Gateway), in dollars."""
    pr = params.prices
    b = billing.lambda_billing(rows, params)
    gw = pr.api_gateway_rest_request_usd if params.cost.api_gateway == "rest" else pr.api_gateway_http_request_usd
    return (b["gb_s"].to_numpy() * pr.lambda_gb_s_usd.value + b["invoked"].to_numpy(dtype=np.float64)
            * pr.lambda_request_usd.value + b["gateway_units"].to_numpy() * gw.value)


def arm_bills(rows: pd.DataFrame, params: Params, timeline: CapacityTimeline | None = None) -> ArmBills:
    """The bill per arm and each request's share (module docstring). `rows`: contract-shaped attempts
    with an `arm` column (the columns `hybridopt.decision.bill.bill` reads); attempts of no known
    platform are in their arm's request count but billed nothing."""
    if "arm" not in rows.columns:
        raise ValueError("arm_bills: the request frame has no `arm` column")
    df = rows.reset_index(drop=True)
    arm = df["arm"].astype(str).to_numpy(dtype=object)
    plat = df["platform"].astype(str).to_numpy(dtype=object)
    n_all = len(df)
    whole = billing.bill(df, params, timeline)
    share = np.zeros(n_all)
    lam = plat == "lambda"
    if lam.any():
        share[lam] = lambda_usd(df[lam], params)
    bills, rows_out = {}, []
    for a in ARMS:
        m = arm == a
        n = int(m.sum())
        if n == 0:
            continue
        part = df[m]
        known = part["platform"].astype(str).isin(["lambda", "ecs"]).to_numpy()
        b = billing.bill(part[known], params, timeline) if known.any() else None
        if b is not None:
            b.requests = n
            bills[a] = b
        usd = b.usd_by("item") if b is not None else {}
        request_usd = sum(usd.get(i, 0.0) for i in REQUEST_ITEMS)
        fleet_usd = sum(usd.get(i, 0.0) for i in FLEET_ITEMS)
        ecs = m & (plat == "ecs")
        if ecs.any():
            share[ecs] = usd.get("alb_lcu", 0.0) / int(ecs.sum())
        share[m] += fleet_usd / n_all
        avg = request_usd / n + fleet_usd / n_all
        services = ", ".join(sorted(df.loc[ecs, "workload_type"].astype(str).unique())) if ecs.any() else ""
        rows_out.append({"arm": a, "requests": n, "lambda_requests": int((m & lam).sum()), "ecs_requests": int(ecs.sum()),
                         "ecs_services": services,
                         "request_driven_usd": request_usd, "fleet_usd": fleet_usd,
                         "bill_usd": request_usd + fleet_usd, "avg_usd_per_request": avg,
                         "avg_usd_per_1k_requests": 1000.0 * avg, "capacity_basis": b.capacity_basis if b else None})
    rows_out.append({"arm": "both", "requests": n_all, "lambda_requests": int(lam.sum()),
                     "ecs_requests": int((plat == "ecs").sum()),
                     "ecs_services": ", ".join(sorted(df.loc[plat == "ecs", "workload_type"].astype(str).unique())),
                     "request_driven_usd": sum(whole.usd_by("item").get(i, 0.0) for i in REQUEST_ITEMS),
                     "fleet_usd": sum(whole.usd_by("item").get(i, 0.0) for i in FLEET_ITEMS),
                     "bill_usd": whole.total_usd, "avg_usd_per_request": whole.total_usd / n_all if n_all else np.nan,
                     "avg_usd_per_1k_requests": 1000.0 * whole.total_usd / n_all if n_all else np.nan,
                     "capacity_basis": whole.capacity_basis})
    table = pd.DataFrame(rows_out).set_index("arm")
    table.attrs["note"] = NOTE
    return ArmBills(bills, whole, table, share)
