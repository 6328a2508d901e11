"""One cell of the crossover map: one workload at one payload size, arriving as a Poisson stream at a
constant rate for `duration_s`, routed closed loop by one policy on the profile's platform model
with the Fargate capacity set to `ecs_tasks` tasks x `ecs_workers` worker slots per task (fixed:
min_tasks = max_tasks = ecs_tasks for every workload service, so no autoscaling).

Policies: `always_lambda`, `always_ecs`, `hybrid` (the load-aware threshold rule with its limit at the
service's worker slots, ecs_tasks x ecs_workers: ECS until every worker is busy or has a request
queued for it, then Lambda) and `threshold:K` (the same rule at limit K).

The static policies read no state, so their closed loop is the open replay of their routing: they
run on the simulator's batch path (`hybridopt.closedloop.loop.run_static`: the same model, several
times faster; another sample of it, since the random numbers are drawn in another order), unless
the client preset shares an uplink. `CELL_VERSION` enters the cache key: it changes when a cell's
numbers do.

The row (`FRAME_COLUMNS`, the sweep's results frame) carries the run's bill per 1,000 requests
(`hybridopt.decision.bill.bill` on the run's own capacity timeline) with ONE change: the ALB's hourly
charge is prorated to the run's span (first send to last completion) instead of billed per clock
hour touched, so a run shorter than an hour stands for the steady state it samples (a whole hour's
ALB charge over a few minutes of requests would otherwise decide the cell). Latency p50/p95/p99,
failure rate and the objective (`hybridopt.closedloop.metrics`) come from the same run. Every run
starts from the model's initial state (no warm Lambda environments, the deployed tasks idle).
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Final

import numpy as np
import pandas as pd

from hybridopt.closedloop.loop import SendTimePolicy, run_closed_loop, run_static
from hybridopt.closedloop.metrics import run_metrics
from hybridopt.closedloop.policies import InFlightThreshold, Static
from hybridopt.params import Params

FRAME_COLUMNS: Final = ("task_id", "workload_type", "rate_rps", "payload_size_kb", "capacity", "ecs_tasks",
                        "ecs_workers", "policy", "policy_detail", "seed", "requests", "bill_usd_per_1k", "p50_ms",
                        "p95_ms", "p99_ms", "failure_rate", "objective_usd_per_1k", "status", "error", "wall_s")
POLICIES: Final = ("always_lambda", "always_ecs", "hybrid")
#: Bumped when a cell's computation changes its numbers (part of the sweep's cache key): 2 = the
#: static policies on the batch path.
CELL_VERSION: Final = 2
#: The cell's arrivals start at this local hour of the simulator's start date.
START_HOUR: Final = 12


def capacity_label(ecs_tasks: int, ecs_workers: int) -> str:
    return f"{int(ecs_tasks)}x{int(ecs_workers)}"


def with_capacity(params: Params, ecs_tasks: int, ecs_workers: int) -> Params:
    """The params with every workload service fixed at `ecs_tasks` tasks of `ecs_workers` worker slots."""
    if int(ecs_tasks) < 1 or int(ecs_workers) < 1:
        raise ValueError(f"Fargate capacity needs >= 1 task and >= 1 worker per task, got {ecs_tasks}x{ecs_workers}")
    wls = {w: wl.model_copy(update={"fargate": wl.fargate.model_copy(update={"min_tasks": int(ecs_tasks),
                                                                            "max_tasks": int(ecs_tasks)})})
           for w, wl in params.workloads.items()}
    fg = params.testbed.fargate
    slots = fg.worker_slots_per_task.model_copy(update={
        "value": int(ecs_workers), "basis": "assumption",
        "source": f"crossover map: Fargate capacity {capacity_label(ecs_tasks, ecs_workers)} (tasks x workers)"})
    testbed = params.testbed.model_copy(update={"fargate": fg.model_copy(update={"worker_slots_per_task": slots})})
    return params.model_copy(update={"workloads": wls, "testbed": testbed})


def shared_uplink(params: Params) -> bool:
    """Whether the client preset shares one uplink among the bodies in flight (the closed loop then
    projects each upload at its dispatch, the batch path settles the link first: the static policies
    take the closed loop too, so that the three policies of a cell see the same network model)."""
    up = params.testbed.clients[params.testbed.client_preset].uplink
    return up is not None and bool(up.enabled.value)


def task_id(params: Params, workload_type: str, rate_rps: float, payload_size_kb: float, ecs_tasks: int,
            ecs_workers: int, policy: str, seed: int, duration_s: float) -> str:
    """A stable hash of a cell's inputs (the params hash included)."""
    key = json.dumps([params.hash, workload_type, float(rate_rps), float(payload_size_kb), int(ecs_tasks),
                      int(ecs_workers), policy, int(seed), float(duration_s)], separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def poisson_arrivals(params: Params, workload_type: str, rate_rps: float, payload_size_kb: float, seed: int,
                     duration_s: float, run_id: str) -> pd.DataFrame:
    """Poisson arrivals at `rate_rps` over [0, duration_s) from START_HOUR (seeded [seed, 11])."""
    from hybridopt.emulation.simulate import DEFAULT_START_DATE

    rng = np.random.default_rng([int(seed), 11])
    expect = rate_rps * duration_s
    gaps = rng.exponential(1.0 / rate_rps, int(expect + 10.0 * np.sqrt(expect) + 20))
    off = np.cumsum(gaps)
    while off[-1] < duration_s:                     # practically never: extend the stream
        off = np.concatenate([off, off[-1] + np.cumsum(rng.exponential(1.0 / rate_rps, len(off)))])
    off = off[off < duration_s]
    t = START_HOUR * 3600.0 + off
    base = pd.Timestamp(pd.Timestamp(DEFAULT_START_DATE).tz_localize(params.tz))
    return pd.DataFrame({"t_s": t, "workload_type": workload_type, "payload_size_kb": float(payload_size_kb),
                         "time_window": "crossover", "load_pattern": "poisson", "run_id": run_id,
                         "phase": "constant", "scheduled_rate_rps": float(rate_rps),
                         "sent_at": base + pd.to_timedelta(t, unit="s")})


def make_policy(policy: str, workload_type: str, ecs_tasks: int, ecs_workers: int) -> SendTimePolicy:
    """The cell's send-time policy. None of them records a load: the static ones read none, the
    threshold rule only its workload's ECS requests in flight (`InFlightThreshold`: the same decisions
    as `Threshold`, which also keeps the arrival windows that the crossover does not report)."""
    if policy == "always_lambda":
        return Static(policy, "every request to Lambda", "lambda")
    if policy == "always_ecs":
        return Static(policy, "every request to ECS", "ecs")
    if policy == "hybrid":
        return InFlightThreshold(policy, {workload_type: int(ecs_tasks) * int(ecs_workers)})
    if policy.startswith("threshold:"):
        try:
            limit = int(policy.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"policy {policy!r}: the limit after 'threshold:' must be an integer") from None
        return InFlightThreshold(policy, {workload_type: limit})
    raise ValueError(f"policy {policy!r} is not one of {POLICIES} or threshold:<limit>")


def crossover_cell(params: Params, workload_type: str, rate_rps: float, payload_size_kb: float, ecs_tasks: int,
                   ecs_workers: int, policy: str, seed: int, duration_s: float) -> dict[str, Any]:
    """One simulator run of a crossover cell: a row of the sweep's results frame (FRAME_COLUMNS)."""
    from hybridopt.emulation.simulate import DEFAULT_START_DATE

    t0 = time.perf_counter()
    if workload_type not in params.workloads:
        raise ValueError(f"workload_type {workload_type!r} is not one of {sorted(params.workloads)}")
    if not (rate_rps > 0 and np.isfinite(rate_rps)):
        raise ValueError(f"rate_rps must be > 0, got {rate_rps}")
    if not (duration_s > 0 and np.isfinite(duration_s)):
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    if not (payload_size_kb >= 0 and np.isfinite(payload_size_kb)):
        raise ValueError(f"payload_size_kb must be >= 0, got {payload_size_kb}")
    tid = task_id(params, workload_type, rate_rps, payload_size_kb, ecs_tasks, ecs_workers, policy, seed, duration_s)
    p = with_capacity(params, ecs_tasks, ecs_workers)
    arr = poisson_arrivals(p, workload_type, rate_rps, payload_size_kb, seed, duration_s, f"xo-{tid}")
    if len(arr) == 0:
        raise ValueError(f"no arrivals in {duration_s} s at {rate_rps} requests/s (seed {seed}): run longer")
    pol = make_policy(policy, workload_type, ecs_tasks, ecs_workers)
    if isinstance(pol, Static) and not shared_uplink(p):
        run = run_static(p, arr, pol.platform, seed, DEFAULT_START_DATE)
    else:
        run = run_closed_loop(p, arr, pol, seed, DEFAULT_START_DATE)
    m = run_metrics(p, run)
    n = m["requests"]
    start = float(arr["t_s"].iloc[0])
    end = float(np.nanmax(arr["t_s"].to_numpy() + run.rows["total_ms"].fillna(0.0).to_numpy(dtype=np.float64) / 1000.0))
    span_s = max(end - start, 0.0)
    alb_prorated = p.prices.alb_hour_usd.value * span_s / 3600.0 if m["alb_hour_usd"] > 0 else 0.0
    shift_per_1k = (alb_prorated - m["alb_hour_usd"]) / n * 1000.0
    detail = pol.detail
    return {"task_id": tid, "workload_type": workload_type, "rate_rps": float(rate_rps),
            "payload_size_kb": float(payload_size_kb), "capacity": capacity_label(ecs_tasks, ecs_workers),
            "ecs_tasks": int(ecs_tasks), "ecs_workers": int(ecs_workers), "policy": policy,
            "policy_detail": f"{detail}; lambda share {m['lambda_share']:.3f}", "seed": int(seed),
            "requests": int(n), "bill_usd_per_1k": m["bill_usd_per_1k"] + shift_per_1k, "p50_ms": m["p50_ms"],
            "p95_ms": m["p95_ms"], "p99_ms": m["p99_ms"], "failure_rate": m["failure_rate"],
            "objective_usd_per_1k": m["objective_usd_per_1k"] + shift_per_1k, "status": "ok", "error": "",
            "wall_s": time.perf_counter() - t0}

