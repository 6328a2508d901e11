"""Cost of each request attempt, in USD, from params.prices (each price carries its source).

Lambda (behind API Gateway):
    ceil(billed ms) / 1000 x memory GB x price per GB-s        (1 ms granularity)
  + Lambda per-request price                                   (only when Lambda was invoked)
  + API Gateway per-request price (REST; HTTP API: per started 512 KB)
  where billed ms = the platform's reported billed_duration_ms (a REPORT line's Billed Duration, which
  includes INIT since Aug 2025), else ceil(execution_time_ms) + ceil(init_duration_ms) on cold
  starts. cost.bill_lambda_init = false prices the pre-August-2025 rule: INIT is taken out again.
  A request the front door rejected (413, 429) never invoked Lambda; a throttled (429) or
  unconnected request is not billed by API Gateway either.

Fargate (behind an ALB), per workload service:
  amortised (default): the cost of the tasks provisioned in each minute, shared by the requests
    that service received in that minute: tasks x (vCPU x $/vCPU-h + GB x $/GB-h) / 60 / requests;
    tasks = max(min_tasks, distinct instance_ids seen in the minute).
  marginal (option): task $/s x the request's execution time (the share of a task it occupied).
  + ALB share (cost.include_alb): the ALB-hour of each minute shared by every ECS request of the run
    in that minute, plus the processed-bytes LCU charge of the payload (GB / GB-per-LCU-h x $/LCU-h;
    the bytes dimension only: the other LCU dimensions are far from binding at these rates).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hybridopt.params import Params

FRONT_DOOR_REJECTIONS = ("payload_too_large", "throttled")


def lambda_cost_usd(df: pd.DataFrame, params: Params) -> pd.Series:
    """Cost of Lambda attempts (rows with platform == 'lambda'); NaN for other rows."""
    pr, opt = params.prices, params.cost
    is_l = (df["platform"] == "lambda").to_numpy()
    mem_cfg = df["workload_type"].astype("string").map({k: w.lambda_memory_mb for k, w in params.workloads.items()})
    mem_mb = df["memory_limit_mb"].fillna(mem_cfg.astype("float64")).to_numpy(dtype=np.float64)
    error = df["error"].astype(object)
    rejected = error.isin(FRONT_DOOR_REJECTIONS).to_numpy()
    unconnected = error.isin(("connection", "client_error")).to_numpy()
    invoked = ~rejected & ~unconnected
    cold = df["cold_start"].fillna(False).to_numpy(dtype=bool) & invoked
    init_ms = np.ceil(df["init_duration_ms"].fillna(0.0).to_numpy(dtype=np.float64))
    reported = df["billed_duration_ms"].to_numpy(dtype=np.float64)       # includes INIT (REPORT line)
    executed = np.ceil(df["execution_time_ms"].fillna(0.0).to_numpy(dtype=np.float64))
    if opt.bill_lambda_init:
        from_parts = executed + np.where(cold, init_ms, 0.0)
        billed_ms = np.where(np.isnan(reported), from_parts, np.ceil(reported))
    else:
        billed_ms = np.where(np.isnan(reported), executed,
                             np.maximum(np.ceil(reported) - np.where(cold, init_ms, 0.0), 0.0))
    billed_ms = np.where(invoked, billed_ms, 0.0)
    duration = billed_ms / 1000.0 * mem_mb / 1024.0 * pr.lambda_gb_s_usd.value
    requests = np.where(invoked, pr.lambda_request_usd.value, 0.0)
    if opt.api_gateway == "rest":
        gw_unit = np.full(len(df), pr.api_gateway_rest_request_usd.value)
    else:
        size_kb = df["actual_payload_size_kb"].fillna(df["target_payload_size_kb"]).to_numpy(dtype=np.float64)
        gw_unit = np.maximum(1.0, np.ceil(size_kb / 512.0)) * pr.api_gateway_http_request_usd.value
    gw_billed = ~unconnected & ~(error == "throttled").to_numpy()
    gateway = np.where(gw_billed, gw_unit, 0.0)
    return pd.Series(np.where(is_l, duration + requests + gateway, np.nan), index=df.index, name="cost_usd")


def _task_usd_per_s(df: pd.DataFrame, params: Params) -> np.ndarray:
    pr = params.prices
    per_hour = {k: w.fargate.vcpu * pr.fargate_vcpu_hour_usd.value + w.fargate.memory_gb * pr.fargate_gb_hour_usd.value
                for k, w in params.workloads.items()}
    return df["workload_type"].astype("string").map(per_hour).to_numpy(dtype=np.float64) / 3600.0


def ecs_cost_usd(df: pd.DataFrame, params: Params) -> pd.Series:
    """Cost of ECS attempts (rows with platform == 'ecs'); NaN for other rows."""
    pr, opt = params.prices, params.cost
    is_e = (df["platform"] == "ecs").to_numpy()
    out = np.full(len(df), np.nan)
    if not is_e.any():
        return pd.Series(out, index=df.index, name="cost_usd")
    e = df.loc[is_e, ["run_id", "workload_type", "sent_at", "instance_id", "execution_time_ms", "total_ms",
                      "error", "actual_payload_size_kb", "target_payload_size_kb"]].copy()
    reached = ~e["error"].astype(object).isin(("connection", "client_error")).to_numpy()
    e["minute"] = e["sent_at"].dt.floor("min")
    usd_s = _task_usd_per_s(e, params)
    if opt.fargate_mode == "amortised":
        keys = [e["run_id"].astype(str), e["workload_type"].astype(str), e["minute"]]
        g = e.assign(_reached=reached).groupby(keys, sort=False)
        n_req = g["_reached"].transform("sum").to_numpy(dtype=np.float64)
        n_inst = g["instance_id"].transform("nunique").to_numpy(dtype=np.float64)
        min_tasks = e["workload_type"].astype("string").map(
            {k: w.fargate.min_tasks for k, w in params.workloads.items()}).to_numpy(dtype=np.float64)
        tasks = np.maximum(min_tasks, n_inst)
        compute = np.where(reached, tasks * usd_s * 60.0 / np.maximum(n_req, 1.0), 0.0)
    else:
        busy_ms = e["execution_time_ms"].fillna(e["total_ms"]).fillna(0.0).to_numpy(dtype=np.float64)
        compute = np.where(reached, usd_s * busy_ms / 1000.0, 0.0)
    alb = np.zeros(len(e))
    if opt.include_alb:
        n_run_minute = (e.assign(_reached=reached).groupby([e["run_id"].astype(str), e["minute"]], sort=False)
                        ["_reached"].transform("sum").to_numpy(dtype=np.float64))
        hour_share = pr.alb_hour_usd.value / 60.0 / np.maximum(n_run_minute, 1.0)
        size_gb = (e["actual_payload_size_kb"].fillna(e["target_payload_size_kb"]).to_numpy(dtype=np.float64)
                   / 1024.0 / 1024.0)
        lcu = size_gb / pr.alb_gb_per_lcu_hour.value * pr.alb_lcu_hour_usd.value
        alb = np.where(reached, hour_share + lcu, 0.0)
    out[is_e] = compute + alb
    return pd.Series(out, index=df.index, name="cost_usd")


def add_costs(df: pd.DataFrame, params: Params) -> pd.DataFrame:
    """A copy of the requests frame with `cost_usd` per attempt (NaN for unknown platforms)."""
    out = df.copy()
    lam = lambda_cost_usd(df, params)
    ecs = ecs_cost_usd(df, params)
    out["cost_usd"] = lam.fillna(ecs)
    return out
