"""The A/B test at the plan's scale in virtual time: the profile's daily schedule, day after day,
until `ab.simulate_requests` arrivals, a seeded random arm per arrival, routed by the router's own
decision code, run on one platform model (`hybridopt.platforms.PlatformModel`).

Objective policy (the model folder has decision/): CLOSED LOOP. One router (one load tracker, as
the testbed proxy: both arms' requests pass through it) decides each arrival in time order, and the
platform model runs the chosen platform's attempt through the closed-loop event loop
(`hybridopt.closedloop.loop.run_closed_loop`, policy `hybridopt.closedloop.policies.ABArms`):
- before the router decides at time t, every attempt the platforms receive at or before t is
  dispatched (in the order they arrive, per platform, as the model requires), and every attempt
  whose client-side completion (`Outcome.completes_at_s`: the last response byte, or the client's
  timeout) is at or before t is reported completed to the router;
- the router reads its load features (arrivals strictly before t, in flight per platform), predicts,
  chooses (treatment: the objective; control: the workload rule) and counts the attempt as sent;
- the client sends at t (the router's own latency is not modelled: it is below a millisecond).
So the load the router sees is the load its own routing made. The sessions run in
`ab.simulate_processes` processes, whole sessions each (balanced by arrivals), each process with its
own router and platform model: allowed only when every session starts at least
`ab.simulate_idle_gap_s` after the previous one ends, when neither the platforms nor the router hold
anything of it (otherwise one process runs them all in order). The processes' ECS timelines merge
into one (the services' deployed tasks once, plus every task a process started). Control arrivals skip the outcome
boosters (they route by the rule and need no prediction); the plan's classifier's P(lambda) comes
from its library on the feature frame (equal to the packaged evaluator, tests prove it).

Classifier router (no decision/): open loop as before; arms by the classifier and the static rule,
then `simulate.replay` runs only the chosen platform of each arrival.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridopt.data.features import FeatureSpec
from hybridopt.decision.capacity import merge_disjoint
from hybridopt.params import Params
from hybridopt.router.handler import Router
from hybridopt.router.policy import DecisionPolicy
from hybridopt.router.package import router_config

CLOSED_LOOP = ("CLOSED LOOP in the simulator: one router decides every arrival in time order with its load "
               "tracker fed the simulated arrivals and completions (hybridopt.closedloop.loop); the platform model "
               "runs the chosen attempts, so the load is the routing's own. Not modelled: the router's own latency "
               "(< 1 ms), several routers with separate trackers (Lambda execution environments), any clock skew "
               "between router and client.")


def model_proba(model_dir: Path, X: pd.DataFrame) -> np.ndarray:
    """P(positive) of the serving model on a feature frame, through its library (fast for 10^5 rows)."""
    import json

    from hybridopt import model_dir as layout

    meta = json.loads((layout.metadata_path(Path(model_dir))).read_text())["serving"]
    f = str(Path(model_dir) / meta["file"])
    if meta["format"] == "lightgbm_text":
        import lightgbm as lgb

        return lgb.Booster(model_file=f).predict(X.to_numpy(np.float64))
    import xgboost as xgb

    b = xgb.Booster()
    b.load_model(f)
    return np.asarray(b.inplace_predict(X.to_numpy(np.float64)), dtype=np.float64)


def simulated_arrivals(params: Params, n_requests: int, seed: int) -> pd.DataFrame:
    """The profile's daily schedule, day after day, until n_requests arrivals (then cut)."""
    from hybridopt.emulation.simulate import DEFAULT_START_DATE, generate_arrivals

    frames, total, day = [], 0, 0
    while total < n_requests:
        a = generate_arrivals(params, seed + day, DEFAULT_START_DATE + timedelta(days=day))
        if len(a) == 0:
            raise ValueError("the profile's schedule generates no arrivals")
        a["t_s"] = a["t_s"] + day * 86400.0
        a["run_id"] = a["run_id"].astype(str) + f"-ab-d{day}"
        frames.append(a)
        total += len(a)
        day += 1
    arr = pd.concat(frames, ignore_index=True).sort_values("t_s", kind="stable").head(n_requests)
    return arr.reset_index(drop=True)


def _classifier(router: Router, model_dir: Path, arr: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(P(lambda), the classifier's platform is lambda) per arrival."""
    spec: FeatureSpec = router.spec
    ctx = arr[["workload_type", "payload_size_kb", "sent_at", "time_window", "load_pattern"]]
    p_pos = model_proba(model_dir, spec.frame(ctx))
    p_lambda = p_pos if router.positive_class == "lambda" else 1 - p_pos
    return p_lambda, (p_pos >= router.threshold) == (router.positive_class == "lambda")


def simulated_ab(params: Params, model_dir: Path, n_requests: int | None = None, seed: int | None = None,
                 ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The A/B at the plan's scale in virtual time: (analysis frame, run facts)."""
    n = n_requests or params.ab.simulate_requests
    s = params.ab.seed if seed is None else seed
    t0 = time.perf_counter()
    arr = simulated_arrivals(params, n, s)
    router = Router.from_dir(model_dir, router_config(params))
    rng = np.random.default_rng([s, 3])
    treat = rng.random(len(arr)) < params.ab.treatment_share
    p_lambda, model_lambda = _classifier(router, Path(model_dir), arr)
    if router.decision is None:
        rows, extra = _open_loop(params, router, arr, treat, model_lambda, s)
    else:
        rows, extra = _closed_loop(params, router, Path(model_dir), arr, treat, s)
    rows = rows.assign(arm=np.where(treat, "treatment", "control"), router_probability=p_lambda)
    from hybridopt.ab.online import requests_frame

    frame, bills = requests_frame(rows, params, extra.pop("timeline"), extra.pop("per_arrival"))
    days = (arr["t_s"].max() - arr["t_s"].min()) / 86400.0 if len(arr) else 0.0
    facts = {"requests": len(frame), "virtual_days": float(days), "seconds": round(time.perf_counter() - t0, 1),
             "treatment_share": float(treat.mean()), "model_version": router.model_version,
             "windows_per_day": len(params.time_windows), **extra,
             "bills": bills.table.reset_index().to_dict(orient="records"), "bill_note": bills.table.attrs["note"],
             "capacity_basis": bills.whole.capacity_basis}
    return frame, facts


def _open_loop(params: Params, router: Router, arr: pd.DataFrame, treat: np.ndarray, model_lambda: np.ndarray,
               seed: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    from hybridopt.emulation.simulate import replay

    static_lambda = arr["workload_type"].map(router.static_rule).to_numpy() == "lambda"
    to_lambda = np.where(treat, model_lambda, static_lambda)
    rows = replay(params, arr.assign(platform=np.where(to_lambda, "lambda", "ecs")), seed)
    return rows, {"policy": "classifier", "loop": "open", "timeline": None, "per_arrival": None}


def _closed_loop(params: Params, router: Router, model_dir: Path, arr: pd.DataFrame, treat: np.ndarray, seed: int
                 ) -> tuple[pd.DataFrame, dict[str, Any]]:
    pol = router.decision
    assert pol is not None
    if not arr["t_s"].is_monotonic_increasing:
        raise ValueError("simulated arrivals must be in time order")
    ctx = arr[["workload_type", "payload_size_kb", "sent_at", "time_window", "load_pattern"]]
    rows14 = pol.spec.frame(ctx).to_numpy(dtype=np.float64)
    arms = np.where(treat, "treatment", "control")
    groups = session_groups(arr, params.ab.simulate_processes, params.ab.simulate_idle_gap_s)
    if len(groups) == 1:
        parts = [_group_run(params, model_dir, arr, rows14, arms, seed, 0, pol)]
    else:
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        dump = params.model_dump(mode="json", by_alias=True)
        with ProcessPoolExecutor(max_workers=len(groups), mp_context=get_context("spawn")) as ex:
            futs = [ex.submit(_group_task, dump, model_dir, arr.iloc[at], rows14[at], arms[at], seed, g)
                    for g, at in enumerate(groups)]
            parts = [f.result() for f in futs]
    at = np.concatenate(groups)
    back = np.empty(len(at), dtype=np.int64)
    back[at] = np.arange(len(at))                      # row of the concatenation holding arrival i
    rows = pd.concat([p["rows"] for p in parts], ignore_index=True).iloc[back].reset_index(drop=True)
    per = pd.concat([p["per_arrival"] for p in parts], ignore_index=True).iloc[back].reset_index(drop=True)
    completions = {k: sum(int(p["completions"][k]) for p in parts) for k in parts[0]["completions"]}
    return rows, {"policy": "objective", "loop": "closed", "closed_loop": CLOSED_LOOP + _split_note(len(groups), params),
                  "processes": len(groups), "timeline": merge_disjoint([p["timeline"] for p in parts]),
                  "per_arrival": per, "model_out_of_order": sum(int(p["out_of_order"]) for p in parts),
                  "completions": completions, "decision_version": pol.version}


def _split_note(n: int, params: Params) -> str:
    if n == 1:
        return ""
    return (f" The sessions ran in {n} processes, whole sessions each, each session starting idle: every session "
            f"begins at least {params.ab.simulate_idle_gap_s:g} s after the previous one ends, when the platforms and "
            f"the router hold nothing of it (ab.simulate_idle_gap_s).")


def session_groups(arr: pd.DataFrame, processes: int, idle_gap_s: float) -> list[np.ndarray]:
    """Arrival positions (ascending) per process: whole sessions (run_id), balanced by arrivals
    (largest first to the least loaded). One group, every arrival, when processes is 1, when there
    is one session, or when two sessions are less than idle_gap_s apart (or overlap)."""
    n = len(arr)
    if processes <= 1 or n == 0:
        return [np.arange(n)]
    codes, names = pd.factorize(arr["run_id"].astype(str).to_numpy(dtype=object))
    if len(names) < 2:
        return [np.arange(n)]
    t = arr["t_s"].to_numpy(dtype=np.float64)
    first = np.full(len(names), np.inf)
    last = np.full(len(names), -np.inf)
    np.minimum.at(first, codes, t)
    np.maximum.at(last, codes, t)
    order = np.argsort(first, kind="stable")
    if np.any(first[order][1:] - last[order][:-1] < idle_gap_s):
        return [np.arange(n)]
    counts = np.bincount(codes, minlength=len(names))
    k = min(processes, len(names))
    load = [0] * k
    group_of = np.empty(len(names), dtype=np.int64)
    for c in np.argsort(-counts, kind="stable").tolist():
        g = int(np.argmin(load))
        group_of[c] = g
        load[g] += int(counts[c])
    return [np.flatnonzero(group_of[codes] == g) for g in range(k)]


def _group_task(dump: dict[str, Any], model_dir: Path, arr: pd.DataFrame, rows14: np.ndarray, arms: np.ndarray,
                seed: int, group: int) -> dict[str, Any]:
    """A worker process's share (the params from their JSON dump: a Params does not pickle)."""
    return _group_run(Params.model_validate(dump), model_dir, arr, rows14, arms, seed, group)


def _group_run(params: Params, model_dir: Path, arr: pd.DataFrame, rows14: np.ndarray, arms: np.ndarray, seed: int,
               group: int, pol: DecisionPolicy | None = None) -> dict[str, Any]:
    """One router (its own load tracker; `pol`, else the model folder's) and one platform model over
    these sessions, closed loop."""
    from hybridopt.closedloop.loop import run_closed_loop
    from hybridopt.closedloop.policies import ABArms
    from hybridopt.emulation.simulate import DEFAULT_START_DATE
    from hybridopt.platforms import PlatformModel

    pol = pol or Router.from_dir(model_dir, router_config(params)).decision
    assert pol is not None
    a = arr.reset_index(drop=True)
    ab = ABArms(pol, rows14.tolist(), list(arms))
    rng = np.random.default_rng([seed, 2] if group == 0 else [seed, 2, group])
    run = run_closed_loop(params, a, ab, seed, DEFAULT_START_DATE,
                          model=PlatformModel(params.testbed, params.workloads, rng))
    return {"rows": run.rows, "timeline": run.timeline, "per_arrival": ab.per_arrival(),
            "out_of_order": int(run.model.out_of_order), "completions": dict(pol.completions)}
