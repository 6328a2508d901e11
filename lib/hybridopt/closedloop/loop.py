"""The closed-loop event loop: arrivals routed AT SEND TIME by a policy, the chosen platform's attempt
run by the platform model (`hybridopt.platforms.PlatformModel`) on a virtual clock.

Per arrival at time t, in time order:
1. every attempt the platforms receive at or before t is dispatched (`Pending.dispatch_at_s`: in
   the order they arrive, as the model requires); every attempt whose client-side completion
   (`Outcome.completes_at_s`: the last response byte, or the client's timeout) is at or before t is
   handed to the policy as completed;
2. the policy reads its load state (a LoadTracker: arrivals strictly before t, in flight per
   platform), chooses a platform and counts the attempt as sent;
3. the client sends at t (the router's own latency, below a millisecond, is not modelled).
After the last arrival every remaining attempt is dispatched. So the ECS queue, its autoscaling,
Lambda's environments, cold starts and concurrency evolve with what the policy routed, and the load
the policy read is the load its own routing made.

The platforms act on an attempt when it reaches them (`dispatch_at_s`) and know its completion then;
with a shared client uplink (a client preset's `uplink`) an upload is projected with the bodies
known at its dispatch (a body sent later may no longer stretch it), as in the simulated A/B.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass
from datetime import date, datetime
from typing import Hashable, Mapping, NamedTuple, Protocol, Sequence

import numpy as np
import pandas as pd

from hybridopt.decision import capacity
from hybridopt.params import Params
from hybridopt.platforms import PlatformModel
from hybridopt.platforms.outcome import Outcome, Pending

#: The load columns recorded per arrival: what the policy read when it decided.
LOAD_COLUMNS = ("in_flight_lambda", "in_flight_ecs", "workload_in_flight_lambda", "workload_in_flight_ecs")
CLOSED_LOOP = ("CLOSED LOOP in the simulator: every arrival is routed at its send time by the policy, whose load "
               "tracker is fed the simulated arrivals, sends and completions; the platform model runs only the "
               "chosen attempt, so the ECS queue, autoscaling, Lambda environments and cold starts are the "
               "routing's own. Not modelled: the router's own latency (< 1 ms), several routers with separate "
               "trackers, clock skew between router and client.")


class Routed(NamedTuple):
    """A policy's answer for one arrival."""
    platform: str                          # lambda | ecs
    token: Hashable                        # handed back in `completed` when the attempt completes
    load: Mapping[str, float] | None       # the load state it read (None: it reads none)


class SendTimePolicy(Protocol):
    """Routes one arrival at its send time, told first which of its earlier attempts completed."""
    name: str
    detail: str

    def route(self, i: int, t_s: float, workload: str, payload_kb: float, completed: Sequence[Hashable]) -> Routed: ...


@dataclass
class LoopRun:
    """One closed-loop run."""
    rows: pd.DataFrame                    # contract rows, one per arrival, in arrival (time) order
    load: pd.DataFrame                    # per arrival: what the policy read (LOAD_COLUMNS), NaN if nothing
    timeline: capacity.CapacityTimeline   # the ECS tasks the run ran, on the rows' clock (sent_at)
    model: PlatformModel
    origin_s: float                       # Unix seconds of model time 0
    wall_s: float


def origin_s(params: Params, start: date) -> float:
    """Unix seconds of model time 0: midnight of `start` in params.timezone."""
    return datetime(start.year, start.month, start.day, tzinfo=params.tz).timestamp()


def run_closed_loop(params: Params, arrivals: pd.DataFrame, policy: SendTimePolicy, seed: int, start: date,
                    model: PlatformModel | None = None) -> LoopRun:
    """Route every arrival (columns simulate.ARRIVAL_COLUMNS but `platform`; sorted by t_s, model
    seconds from midnight of `start`) by `policy` and run it on `model` (default: a fresh model of
    `params` seeded [seed, 2], as `simulate.replay`)."""
    from hybridopt.emulation.simulate import ENVELOPE_BYTES, outcome_rows

    t0 = time.perf_counter()
    a = arrivals.reset_index(drop=True)
    need = [c for c in ("t_s", "workload_type", "payload_size_kb", "time_window", "load_pattern", "run_id", "sent_at")
            if c not in a.columns]
    if need:
        raise ValueError(f"closed loop: the arrivals lack columns {need}")
    t_arr = a["t_s"].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(t_arr)) or np.any(np.diff(t_arr) < 0):
        raise ValueError("closed loop: arrivals.t_s must be finite and in time order")
    kb_arr = a["payload_size_kb"].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(kb_arr)) or (kb_arr < 0).any():
        raise ValueError("closed loop: arrivals.payload_size_kb must be finite and >= 0")
    if model is None:
        model = PlatformModel(params.testbed, params.workloads, np.random.default_rng([seed, 2]))
    unknown = sorted(set(a["workload_type"].astype(str)) - set(model.workloads))
    if unknown:
        raise ValueError(f"closed loop: arrivals.workload_type holds {unknown}, not in params.workloads "
                         f"{sorted(model.workloads)}")
    n = len(a)
    t = t_arr.tolist()
    work = a["workload_type"].astype(str).tolist()
    kb = kb_arr.tolist()
    nbytes = (np.rint(kb_arr * 1024.0).astype(np.int64) + ENVELOPE_BYTES).tolist()
    submit, dispatch, timeout, route = model.submit, model.dispatch, model.apply_client_timeout, policy.route
    pending: list[tuple[float, int, Pending, Hashable]] = []     # (dispatch_at_s, arrival, Pending, token)
    done: list[tuple[float, int, Hashable]] = []                 # (completes_at_s, arrival, token)
    outs: list[Outcome | None] = [None] * n
    platform_of: list[str] = [""] * n
    load = np.full((n, len(LOAD_COLUMNS)), np.nan)

    def run_until(now: float) -> list[Hashable]:
        while pending and pending[0][0] <= now:
            _, k, p, tok = heapq.heappop(pending)
            o = timeout(dispatch(p))
            outs[k] = o
            heapq.heappush(done, (o.completes_at_s, k, tok))
        finished = []
        while done and done[0][0] <= now:
            finished.append(heapq.heappop(done)[2])
        return finished

    for i in range(n):
        ti = t[i]
        r = route(i, ti, work[i], kb[i], run_until(ti))
        p = submit(ti, r.platform, work[i], nbytes[i])
        heapq.heappush(pending, (p.dispatch_at_s, i, p, r.token))
        platform_of[i] = r.platform
        if r.load is not None:
            ld = r.load
            load[i] = [ld["in_flight_lambda"], ld["in_flight_ecs"], ld["workload_in_flight_lambda"],
                       ld["workload_in_flight_ecs"]]
    last = run_until(float("inf"))
    finish = getattr(policy, "finish", None)
    if finish is not None:
        finish(last)
    done_outs: list[Outcome] = [o for o in outs if o is not None]
    assert len(done_outs) == n
    rows = outcome_rows(a.assign(platform=platform_of), list(range(n)), platform_of, done_outs, params.experiment)
    org = origin_s(params, start)
    timeline = capacity.from_model(model.ecs, org)
    return LoopRun(rows, pd.DataFrame(load, columns=list(LOAD_COLUMNS)), timeline, model, org,
                   time.perf_counter() - t0)


def run_static(params: Params, arrivals: pd.DataFrame, platform: str, seed: int, start: date) -> LoopRun:
    """Every arrival to `platform`: a policy that reads no state routes the same whatever the load,
    so its closed loop is the open replay of that routing, run here on the simulator's batch path
    (`hybridopt.emulation.simulate.run_model`, the same model seeded [seed, 2]). The platforms'
    dynamics are the same as in `run_closed_loop`; only the order in which the model draws its
    random numbers differs (every send first, then every dispatch), so the run is another sample of
    the same model, not the same numbers. `load` is empty (nothing was read)."""
    from hybridopt.emulation.simulate import run_model

    if platform not in ("lambda", "ecs"):
        raise ValueError(f"closed loop: platform must be lambda or ecs, got {platform!r}")
    t0 = time.perf_counter()
    a = arrivals.reset_index(drop=True)
    t_arr = a["t_s"].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(t_arr)) or np.any(np.diff(t_arr) < 0):
        raise ValueError("closed loop: arrivals.t_s must be finite and in time order")
    model = PlatformModel(params.testbed, params.workloads, np.random.default_rng([seed, 2]))
    rows = run_model(model, a.assign(platform=platform), params.experiment)
    org = origin_s(params, start)
    load = pd.DataFrame(np.full((len(a), len(LOAD_COLUMNS)), np.nan), columns=list(LOAD_COLUMNS))
    return LoopRun(rows, load, capacity.from_model(model.ecs, org), model, org, time.perf_counter() - t0)
