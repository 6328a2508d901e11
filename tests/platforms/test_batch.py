"""The batch path (hybridopt.platforms.batch, what `simulate.run_model` uses by default) against the
per-request path (PlatformModel.submit / settle / dispatch / apply_client_timeout): on the same schedule
and seed they must give the very same rows, leave the model in the same state and the random stream at
the same place, for every branch of the model (door limits, throttling, cold starts, keep-alive policies,
function and gateway timeouts, ECS queues and stalls, autoscaling, routing, the shared uplink and the
inflation forms)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hybridopt.emulation import simulate
from hybridopt.params import load_params
from hybridopt.platforms import PlatformModel, batch

LIGHT, THUMB, MEDIUM, HEAVY = "lightweight_api", "thumbnail_processing", "medium_processing", "heavy_processing"


def v(x: Any) -> dict[str, Any]:
    return {"value": x}


FITTED = {"client_preset": "fitted"}   # shared uplink + round-trip inflation
CASES: dict[str, dict[str, Any]] = {
    "distant": {},
    "fitted_uplink_round_trip": {"testbed": FITTED},
    "fitted_additive": {"testbed": {**FITTED, "clients": {"fitted": {"inflation": {"form": v("additive")}}}}},
    "fitted_multiplicative": {"testbed": {**FITTED,
                                          "clients": {"fitted": {"inflation": {"form": v("multiplicative")}}}}},
    "same_region_no_jitter": {"testbed": {"client_preset": "same_region",
                                          "clients": {"same_region": {"rtt_jitter_sigma": v(0.0)}}}},
    "lambda_limits": {
        # throttling (concurrency and scaling tokens), 413s at both limits, function and gateway timeouts
        "testbed": {"lambda": {"account_concurrency": v(6), "scaling_burst_envs": v(3),
                               "scaling_refill_envs_per_s": v(0.5), "function_timeout_s": v(2),
                               "api_gateway_integration_timeout_s": v(2.1),
                               "keep_alive": {"policy": v("fixed"), "idle_timeout_s": v(20),
                                              "max_env_lifetime_s": v(60)}}},
        "workloads": {HEAVY: {"payload_sizes_kb": [7000, 11000, 512]}}},
    "ecs_autoscaling_lor_buffered": {
        "testbed": {"fargate": {"routing": v("least_outstanding_requests"), "alb_buffers_request_body": v(True),
                                "worker_slots_per_task": v(3),
                                "autoscaling": {"enabled": v(True), "target_value": v(2), "metric_period_s": v(5),
                                                "scale_out_datapoints": v(1), "scale_in_datapoints": v(2),
                                                "scale_out_cooldown_s": v(5), "scale_in_cooldown_s": v(5),
                                                "task_start_s": v(3), "health_check_s": v(2)}}},
        "workloads": {w: {"fargate": {"min_tasks": 1, "max_tasks": 4}} for w in (LIGHT, THUMB, MEDIUM, HEAVY)}},
    "ecs_stalls_request_count_metric": {
        # streamed bodies that stall behind a busy worker, an ALB that keeps the target connection open
        "testbed": {"fargate": {"queued_receive_bytes": v(65536), "alb_closes_target_on_client_close": v(False),
                                "alb_idle_timeout_s": v(4),
                                "autoscaling": {"enabled": v(True), "metric": v("request_count_per_target"),
                                                "target_value": v(30), "metric_period_s": v(10),
                                                "scale_out_datapoints": v(1), "task_start_s": v(5),
                                                "health_check_s": v(0)}}},
        "workloads": {MEDIUM: {"payload_sizes_kb": [2048, 4096]},
                      HEAVY: {"fargate": {"min_tasks": 1, "max_tasks": 3}}}},
}


def _params(case: dict[str, Any]) -> Any:
    return load_params("smoke", overrides=copy.deepcopy(case)) if case else load_params("smoke")


def _state(model: PlatformModel) -> dict[str, Any]:
    """Everything the two paths must leave alike: counters, environments, tasks and the random stream."""
    fns = {w: (f.cold_starts, f.warm_starts, f.throttled, f.reclaimed, f._tokens, f._push_seq,
               sorted((e.id, e.requests, e.expires_at) for e in f.idle),
               sorted((end, e.id, e.requests) for end, _, e in f.busy))
           for w, f in model.lambda_.functions.items()}
    svcs = {w: (s.served, s.unavailable, s.abandoned, s.scale_outs, s.scale_ins, s._rr, sorted(s._queued),
                s.task_intervals(), [k.served for k in s.history], [list(k.slots) for k in s.history])
            for w, s in model.ecs.services.items()}
    counters = (model.submitted, model.dispatched, model.out_of_order, model.last_submit_s,
                dict(model.last_dispatch_s), list(model.client._recent))
    return {"functions": fns, "services": svcs, "counters": counters,
            "next_draws": (model.draws.u(), model.draws.z())}


def _one_pass(model: PlatformModel) -> PlatformModel:
    """With a shared uplink, run_model goes request by request twice (ECS bodies held off the link in the
    second pass); told to hold nothing, it makes the one pass the batch path makes, so the two compare."""
    if model.client.uplink is not None:
        model.with_ecs_holds({})
    return model


def test_an_uplink_run_holds_queued_ecs_bodies_on_either_path() -> None:
    params = _params(CASES["fitted_uplink_round_trip"])
    arrivals = simulate.generate_arrivals(params, seed=5)
    models = [PlatformModel(params.testbed, params.workloads, np.random.default_rng([5, 2])) for _ in range(3)]
    fast = simulate.run_model(models[0], arrivals, params.experiment, fast=True)
    slow = simulate.run_model(models[1], arrivals, params.experiment, fast=False)
    pd.testing.assert_frame_equal(fast, slow)
    assert models[0].held_ecs_bodies > 0
    one = simulate.run_model(_one_pass(models[2]), arrivals, params.experiment, fast=True)
    assert not one["total_ms"].equals(fast["total_ms"])


@pytest.mark.parametrize("name", list(CASES))
def test_batch_path_equals_the_per_request_path(name: str) -> None:
    params = _params(CASES[name])
    arrivals = simulate.generate_arrivals(params, seed=5)
    models = [_one_pass(PlatformModel(params.testbed, params.workloads, np.random.default_rng([5, 2])))
              for _ in range(2)]
    fast = simulate.run_model(models[0], arrivals, params.experiment, fast=True)
    slow = simulate.run_model(models[1], arrivals, params.experiment, fast=False)
    pd.testing.assert_frame_equal(fast, slow)
    assert _state(models[0]) == _state(models[1])


def test_the_cases_reach_the_branches_they_are_for() -> None:
    """Guards the test above: each case produces the outcomes it was written to compare."""
    def rows(name: str) -> pd.DataFrame:
        return simulate.replay(_params(CASES[name]), simulate.generate_arrivals(_params(CASES[name]), seed=5), 5)

    lam = rows("lambda_limits")
    lam = lam[lam.platform == "lambda"]
    assert {413, 500, 502, 504}.issubset(set(lam.http_status.dropna().astype(int)))
    assert lam.cold_start.fillna(False).sum() > 3
    auto = simulate.simulate(_params(CASES["ecs_autoscaling_lor_buffered"]), 5)
    assert sum(s.scale_outs for s in auto.model.ecs.services.values()) > 0
    assert sum(s.scale_ins for s in auto.model.ecs.services.values()) > 0
    stall = simulate.simulate(_params(CASES["ecs_stalls_request_count_metric"]), 5)
    ecs = stall.rows[stall.rows.platform == "ecs"]
    assert (ecs.error == "timeout").any() and (ecs.http_status == 504).any()
    fitted = simulate.simulate(_params(CASES["fitted_uplink_round_trip"]), 5)
    up = fitted.model.client.uplink
    assert up is not None and up.peak_flows > 1
    assert (fitted.rows[fitted.rows.platform == "lambda"].error == "timeout").any()   # stretched uploads


def test_one_platform_arrivals_and_a_reused_model() -> None:
    """Arrival tables with lambda-only and ecs-only rows, run twice on the same model (state carried over)."""
    params = _params(CASES["fitted_uplink_round_trip"])
    arr = simulate.generate_arrivals(params, seed=3).iloc[:600].copy()
    arr["platform"] = np.where(np.arange(len(arr)) % 3 == 0, "lambda", np.where(np.arange(len(arr)) % 3 == 1,
                                                                              "ecs", "both"))
    second = arr.assign(t_s=arr.t_s + 30.0)
    models = [_one_pass(PlatformModel(params.testbed, params.workloads, np.random.default_rng(9))) for _ in range(2)]
    for table in (arr, second):
        fast = simulate.run_model(models[0], table, params.experiment, fast=True)
        slow = simulate.run_model(models[1], table, params.experiment, fast=False)
        pd.testing.assert_frame_equal(fast, slow)
    assert _state(models[0]) == _state(models[1])


def test_run_batch_checks_its_inputs() -> None:
    params = _params({})
    m = PlatformModel(params.testbed, params.workloads, np.random.default_rng(1))
    with pytest.raises(ValueError, match="platform"):
        batch.run_batch(m, [0.0], ["fargate"], [LIGHT], [10])
    with pytest.raises(ValueError, match="workload_type"):
        batch.run_batch(m, [0.0], ["ecs"], ["video"], [10])
    with pytest.raises(ValueError, match="payload_bytes"):
        batch.run_batch(m, [0.0], ["ecs"], [LIGHT], [-1])
    with pytest.raises(ValueError, match="same length"):
        batch.run_batch(m, [0.0, 1.0], ["ecs"], [LIGHT], [1])
    assert all(len(c) == 0 for c in batch.run_batch(m, [], [], [], []).values())
