"""What one closed-loop run measured, and means with confidence intervals over seeds.

Per run (`run_metrics`):
- `bill_usd`: `hybridopt.decision.bill.bill` of the run's rows with the run's own capacity timeline
  (the Fargate tasks the simulated services actually ran), `bill_usd_per_1k` its average per 1,000
  requests; `alb_hour_usd` the part billed as whole ALB hours (the hourly charge a run shorter than
  an hour pays in full);
- latency p50/p95/p99 (ms) of the attempts with a latency (total_ms; a client timeout counts its
  timeout), `latency_missing` the others; `failure_rate`: attempts with an error; `slo_miss_share`:
  attempts that failed or were slower than the default objective's SLO of their workload;
- `lambda_share`;
- `objective_usd_per_1k`: per 1,000 requests, the bill per request plus the objective's value of
  time x (latency + failure_penalty_s per failure), the weighted objective of params
  `decision.objective` (value_of_time_usd_per_s, failure_penalty_s) on measured outcomes
  (`hybridopt.decision.policies.measured_objective_usd`, the bill standing for the cost).

Over seeds (`over_seeds`): per group the mean of each metric and a 95 % Student-t interval over the
seeds' values (mean +- t(0.975, n-1) x sd / sqrt(n)); one seed gives no interval (NaN).
"""

from __future__ import annotations

import math
from typing import Any, Final, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from hybridopt.closedloop.loop import LoopRun
from hybridopt.decision.bill import bill as bill_of
from hybridopt.decision.objective import Objective
from hybridopt.decision.policies import measured_objective_usd
from hybridopt.params import Params

METRICS: Final = ("bill_usd_per_1k", "p50_ms", "p95_ms", "p99_ms", "failure_rate", "slo_miss_share", "lambda_share",
                  "objective_usd_per_1k")
CONFIDENCE: Final = 0.95


def default_objective(params: Params) -> Objective:
    """params decision.objective as an Objective."""
    o = params.decision.objective
    return Objective(kind=o.kind, slo_p95_ms=dict(o.slo_p95_ms), max_failure=o.max_failure,
                     value_of_time_usd_per_s=o.value_of_time_usd_per_s, failure_penalty_s=o.failure_penalty_s,
                     latency_quantile=o.latency_quantile, name="default")


def run_metrics(params: Params, run: LoopRun, objective: Objective | None = None) -> dict[str, Any]:
    """One run's bill, latency, failures and objective (see the module docstring)."""
    rows = run.rows
    n = len(rows)
    b = bill_of(rows, params, run.timeline)
    lat = rows["total_ms"].to_numpy(dtype=np.float64)
    ok = rows["error"].isna().to_numpy()
    fin = np.isfinite(lat)
    pct = np.percentile(lat[fin], [50, 95, 99]) if fin.any() else [math.nan] * 3
    o = objective or default_objective(params)
    per_request_usd = b.total_usd / n if n else math.nan
    obj = measured_objective_usd(o, lat, ok, np.full(n, per_request_usd)) if n else np.array([math.nan])
    slo = rows["workload_type"].astype(str).map(dict(o.slo_p95_ms)).to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        miss = ~ok | ~(lat <= slo)
    alb_hours = float(sum(x.usd for x in b.lines if x.item == "alb_hours"))
    return {"requests": int(n), "bill_usd": float(b.total_usd), "bill_usd_per_1k": float(b.avg_usd_per_1k_requests),
            "alb_hour_usd": alb_hours, "p50_ms": float(pct[0]), "p95_ms": float(pct[1]), "p99_ms": float(pct[2]),
            "latency_missing": int((~fin).sum()), "failure_rate": float((~ok).mean()) if n else math.nan,
            "slo_miss_share": float(miss.mean()) if n else math.nan,
            "lambda_share": float((rows["platform"] == "lambda").mean()) if n else math.nan,
            "objective_usd_per_1k": float(np.mean(obj) * 1000.0), "capacity_basis": b.capacity_basis,
            "ecs_tasks_started": int(sum(1 for s in run.timeline.services.values() for t in s.tasks
                                         if t.start_s is not None)),
            "lambda_cold_starts": int(rows["cold_start"].fillna(False).astype(bool).sum())}


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high) of a Student-t interval over the values (NaN bounds for fewer than 2)."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    m = float(v.mean())
    if len(v) < 2:
        return m, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return m, m - half, m + half


def over_seeds(runs: pd.DataFrame, by: Sequence[str], metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Per group of `by`: seeds, and per metric its mean and 95 % interval over the seeds
    (`<m>`, `<m>_ci_low`, `<m>_ci_high`)."""
    missing = [c for c in [*by, "seed", *metrics] if c not in runs.columns]
    if missing:
        raise ValueError(f"over_seeds: the runs lack columns {missing}")
    out = []
    for key, g in runs.groupby(list(by), sort=False):
        row: dict[str, Any] = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row["seeds"] = int(g["seed"].nunique())
        for m in metrics:
            row[m], row[f"{m}_ci_low"], row[f"{m}_ci_high"] = t_interval(g[m].to_numpy(dtype=np.float64))
        out.append(row)
    return pd.DataFrame(out)
