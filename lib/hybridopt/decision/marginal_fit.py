"""`fit_marginal(requests, params)`: the `MarginalCost` of one more request per platform, from training
logs and params (hybridopt.decision.objective documents how it is used).

- `lambda_billed_ms[w]`: per payload size (target_payload_size_kb) the median billed ms of the
  workload's successful Lambda attempts, billed as in the bill (`bill.lambda_billing`: rounded up to
  1 ms, INIT per params.cost.bill_lambda_init).
- `lambda_memory_mb[w]`: the median memory the attempts report, else params.workloads.<w>.lambda_memory_mb.
- `ecs_service_ms[w]`: per payload size the median time a worker is held by a successful ECS attempt:
  execution_time_ms + the CPU sample the app takes after its timed region
  (params.testbed.fargate.cpu_sample_ms).
- `ecs_capacity[w]`: min_tasks x worker slots per task; `ecs_task_usd_per_s[w]`: the task's vCPU and
  GB prices per second; `ecs_autoscaling[w]`: params' autoscaling is on and that workload's service
  may scale (max_tasks > min_tasks); `ecs_slots_per_task`: worker slots one task holds.
- prices: params.prices; `sources` names each one's source and how each table was made.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hybridopt.decision.bill import lambda_billing
from hybridopt.decision.objective import MarginalCost
from hybridopt.emulation.simulate import ENVELOPE_BYTES
from hybridopt.params import Params


def _medians(rows: pd.DataFrame, values: np.ndarray, what: str, workload: str) -> list[tuple[float, float]]:
    kb = rows["target_payload_size_kb"].astype("float64").to_numpy()
    ok = np.isfinite(values) & np.isfinite(kb)
    if not ok.any():
        raise ValueError(f"fit_marginal: no successful {what} attempt of workload {workload!r} with a measured "
                         f"time in the training logs")
    med = pd.Series(values[ok]).groupby(kb[ok]).median()
    return [(float(k), float(v)) for k, v in med.sort_index().items()]


def fit_marginal(requests: pd.DataFrame, params: Params) -> MarginalCost:
    """The marginal-cost tables and prices (see the module docstring) from a training request frame."""
    missing = [c for c in ("platform", "workload_type", "target_payload_size_kb", "error", "execution_time_ms",
                           "billed_duration_ms", "init_duration_ms", "cold_start", "memory_limit_mb",
                           "actual_payload_size_kb") if c not in requests]
    if missing:
        raise ValueError(f"fit_marginal: the request frame lacks columns {missing}")
    pr, fg = params.prices, params.testbed.fargate
    plat = requests["platform"].astype(str).to_numpy()
    work = requests["workload_type"].astype(str).to_numpy()
    ok = requests["error"].isna().to_numpy()
    sample_ms = float(fg.cpu_sample_ms.value)
    lam_all = requests[plat == "lambda"]
    billing = lambda_billing(lam_all, params)
    billed_ms, memory_mb, service_ms, counts = {}, {}, {}, {}
    for w, wl in params.workloads.items():
        sel_l = (work[plat == "lambda"] == w) & ok[plat == "lambda"]
        rows_l = lam_all[sel_l]
        billed_ms[w] = _medians(rows_l, billing["billed_ms"].to_numpy()[sel_l], "Lambda", w)
        mem = rows_l["memory_limit_mb"].astype("float64").dropna()
        memory_mb[w] = float(mem.median()) if len(mem) else float(wl.lambda_memory_mb)
        rows_e = requests[(plat == "ecs") & (work == w) & ok]
        service_ms[w] = _medians(rows_e, rows_e["execution_time_ms"].astype("float64").to_numpy() + sample_ms, "ECS", w)
        counts[w] = (len(rows_l), len(rows_e))
    slots = int(fg.worker_slots_per_task.value)
    rest = params.cost.api_gateway == "rest"
    gw = pr.api_gateway_rest_request_usd if rest else pr.api_gateway_http_request_usd
    n_l = sum(a for a, _ in counts.values())
    n_e = sum(b for _, b in counts.values())
    sources = {
        "lambda_gb_s_usd": pr.lambda_gb_s_usd.source, "lambda_request_usd": pr.lambda_request_usd.source,
        "gateway_request_usd": gw.source,
        "alb_usd_per_gb": f"{pr.alb_lcu_hour_usd.source} / {pr.alb_gb_per_lcu_hour.source}",
        "ecs_task_usd_per_s": f"{pr.fargate_vcpu_hour_usd.source}; {pr.fargate_gb_hour_usd.source}",
        "ecs_capacity": f"params.workloads.<w>.fargate.min_tasks x {slots} worker slots per task "
                        f"({fg.worker_slots_per_task.source})",
        "ecs_autoscaling": fg.autoscaling.enabled.source,
        "lambda_max_payload_kb": f"{params.testbed.lambda_.invoke_payload_limit_bytes.source}; minus the event "
                                 f"overhead ({params.testbed.lambda_.event_overhead_bytes.source}) and the request "
                                 f"envelope around the payload ({ENVELOPE_BYTES} bytes)",
        "lambda_billed_ms": f"medians per payload size of {n_l:,} successful Lambda attempts of the training logs "
                            f"(billed ms rounded up to 1 ms; INIT billed: {params.cost.bill_lambda_init})",
        "lambda_memory_mb": "median memory_limit_mb of the Lambda attempts, else params.workloads.<w>.lambda_memory_mb",
        "ecs_service_ms": f"medians per payload size of {n_e:,} successful ECS attempts of the training logs: "
                          f"execution_time_ms + the {sample_ms:g} ms CPU sample after the timed region "
                          f"({fg.cpu_sample_ms.source})",
    }
    return MarginalCost(
        lambda_gb_s_usd=pr.lambda_gb_s_usd.value, lambda_request_usd=pr.lambda_request_usd.value,
        gateway_request_usd=gw.value, gateway=params.cost.api_gateway, lambda_memory_mb=memory_mb,
        lambda_billed_ms=billed_ms, alb_usd_per_gb=pr.alb_lcu_hour_usd.value / pr.alb_gb_per_lcu_hour.value,
        ecs_task_usd_per_s={w: (wl.fargate.vcpu * pr.fargate_vcpu_hour_usd.value
                                + wl.fargate.memory_gb * pr.fargate_gb_hour_usd.value) / 3600.0
                            for w, wl in params.workloads.items()},
        ecs_capacity={w: wl.fargate.min_tasks * slots for w, wl in params.workloads.items()},
        ecs_service_ms=service_ms,
        ecs_autoscaling={w: bool(fg.autoscaling.enabled.value) and wl.fargate.max_tasks > wl.fargate.min_tasks
                         for w, wl in params.workloads.items()},
        ecs_slots_per_task=slots,
        lambda_max_payload_kb=(params.testbed.lambda_.invoke_payload_limit_bytes.value
                               - params.testbed.lambda_.event_overhead_bytes.value - ENVELOPE_BYTES) / 1024.0,
        sources=sources)
