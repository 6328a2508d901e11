"""The objective's choices from predictions and its oracle from measurements."""

from __future__ import annotations

import math

import pytest
from hybridopt.decision.objective import MarginalCost, Measured, Objective, Prediction

SLO = {"api": 1000.0, "heavy": 10000.0}


def pred(p50: float, p95: float, fail: float, usd: float) -> Prediction:
    return Prediction(p50, p95, fail, usd)


def test_slo_cheapest_takes_the_cheaper_platform_that_meets_the_slo() -> None:
    o = Objective("slo_cheapest", SLO, max_failure=0.01)
    both_ok = {"lambda": pred(100, 400, 0.0, 5e-6), "ecs": pred(90, 600, 0.0, 1e-7)}
    assert o.choose("api", both_ok) == "ecs"
    ecs_slow = {"lambda": pred(100, 400, 0.0, 5e-6), "ecs": pred(900, 1600, 0.0, 1e-7)}
    assert o.choose("api", ecs_slow) == "lambda"
    ecs_unreliable = {"lambda": pred(100, 400, 0.0, 5e-6), "ecs": pred(90, 300, 0.2, 1e-7)}
    assert o.choose("api", ecs_unreliable) == "lambda"
    neither = {"lambda": pred(1500, 3000, 0.0, 5e-6), "ecs": pred(1200, 2000, 0.0, 1e-7)}
    assert o.choose("api", neither) == "ecs"           # the lower p95 among the reliable ones
    both_fail = {"lambda": pred(1500, 3000, 0.5, 5e-6), "ecs": pred(1200, 2000, 0.3, 1e-7)}
    assert o.choose("api", both_fail) == "ecs"         # the less likely to fail


def test_slo_oracle_uses_measured_outcomes() -> None:
    o = Objective("slo_cheapest", SLO)
    m = {"lambda": Measured(300.0, True, 4e-6), "ecs": Measured(200.0, True, 1e-7)}
    assert o.oracle("api", m) == "ecs"
    m = {"lambda": Measured(300.0, True, 4e-6), "ecs": Measured(1200.0, True, 1e-7)}
    assert o.oracle("api", m) == "lambda"
    m = {"lambda": Measured(1300.0, True, 4e-6), "ecs": Measured(10000.0, False, 1e-7)}
    assert o.oracle("api", m) == "lambda"              # the only success, though late
    m = {"lambda": Measured(None, False, 4e-6), "ecs": Measured(10000.0, False, 1e-7)}
    assert o.oracle("api", m) == "ecs"                 # both failed: the cheaper


def test_weighted_objective_trades_dollars_for_seconds() -> None:
    cheap_slow = pred(2000, 4000, 0.0, 1e-7)
    dear_fast = pred(200, 400, 0.0, 2e-5)
    lo = Objective("weighted", SLO, value_of_time_usd_per_s=1e-7)
    hi = Objective("weighted", SLO, value_of_time_usd_per_s=1e-3)
    preds = {"lambda": dear_fast, "ecs": cheap_slow}
    assert lo.choose("api", preds) == "ecs" and hi.choose("api", preds) == "lambda"
    assert math.isclose(hi.predicted_usd(dear_fast), 2e-5 + 1e-3 * 0.2)
    failed = Measured(None, False, 0.0)
    assert math.isclose(hi.measured_usd(failed), 1e-3 * 10.0)


def test_objective_round_trips_and_rejects_bad_settings() -> None:
    o = Objective("weighted", SLO, 0.02, 1e-4, 5.0, "p95", "w")
    assert Objective.from_dict(o.to_dict()) == o
    with pytest.raises(ValueError, match="kind"):
        Objective("cheapest", SLO)
    with pytest.raises(ValueError, match="> 0"):
        Objective("slo_cheapest", {"api": 0.0})
    with pytest.raises(KeyError, match="no SLO"):
        Objective("slo_cheapest", SLO).choose("thumb", {"ecs": pred(1, 1, 0, 0)})


def marginal(autoscaling: bool) -> MarginalCost:
    return MarginalCost(lambda_gb_s_usd=0.0000166667, lambda_request_usd=2e-7, gateway_request_usd=3.5e-6,
                        gateway="rest", lambda_memory_mb={"api": 128.0},
                        lambda_billed_ms={"api": [(1.0, 100.0), (10.0, 200.0)]}, alb_usd_per_gb=0.008,
                        ecs_task_usd_per_s={"api": 0.01234 / 3600}, ecs_capacity={"api": 2},
                        ecs_service_ms={"api": [(1.0, 100.0), (10.0, 200.0)]}, ecs_autoscaling={"api": autoscaling},
                        ecs_slots_per_task=2)


def test_marginal_cost_of_one_request() -> None:
    m = marginal(autoscaling=True)
    # 150 ms billed (interpolated at 5.5 KB) x 0.125 GB x price + request + REST API
    assert math.isclose(m.lambda_usd("api", 5.5), 0.150 * 0.125 * 0.0000166667 + 2e-7 + 3.5e-6)
    below = m.ecs_usd("api", 1024.0, workload_in_flight_ecs=1)
    assert math.isclose(below, 1 / 1024 * 0.008)                     # 1 MB through the ALB only
    above = m.ecs_usd("api", 1024.0, workload_in_flight_ecs=2)
    # the autoscaler buys capacity: half a task (one of its two slots) for the 200 ms of service
    assert math.isclose(above - below, 0.01234 / 3600 * 0.200 / 2)
    assert marginal(autoscaling=False).ecs_usd("api", 1024.0, 5) == below
    assert MarginalCost.from_dict(m.to_dict()) == m


def test_when_both_platforms_are_doomed_the_cheaper_is_chosen_as_the_oracle_would() -> None:
    o = Objective("slo_cheapest", SLO, max_failure=0.01)
    doomed = {"lambda": pred(100, 200, 0.99992, 3.5e-6), "ecs": pred(10000, 10000, 0.99993, 1e-7)}
    assert o.choose("heavy", doomed) == "ecs"          # failure chances within 1 %: the cheaper
    doomed_dear_ecs = {"lambda": pred(100, 200, 0.99992, 3.5e-6), "ecs": pred(10000, 10000, 0.99993, 1e-5)}
    assert o.choose("heavy", doomed_dear_ecs) == "lambda"
    clearly = {"lambda": pred(100, 200, 0.5, 3.5e-6), "ecs": pred(10000, 10000, 0.9, 1e-7)}
    assert o.choose("heavy", clearly) == "lambda"      # clearly less likely to fail


def test_a_payload_over_the_invoke_limit_costs_only_the_gateway() -> None:
    m = MarginalCost(**{**marginal(False).__dict__, "lambda_max_payload_kb": 6000.0})
    assert m.lambda_usd("api", 8192.0) == 3.5e-6
    assert m.lambda_usd("api", 10.0) > 3.5e-6
    assert MarginalCost.from_dict(m.to_dict()) == m
    assert marginal(False).to_dict()["lambda_max_payload_kb"] is None
