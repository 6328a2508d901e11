"""The policy set: objective variants from params, the objective's score of a routing, static rules
and lookup tables learned by it, the classifier threshold, and the per-pair choices made with the
router's own Objective code."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hybridopt.decision.objective import MarginalCost, Measured, Objective, Prediction
from hybridopt.decision.policies import (
    PairOutcomes,
    PolicyError,
    apply_lookup,
    apply_rule,
    best_threshold,
    check_slos,
    lookup_table,
    marginal_costs,
    objective_choice,
    objectives,
    oracle_choice,
    policy_score,
    served_family,
    workload_rule,
)
from hybridopt.params import load_params

SLO = {"api": 1000.0, "heavy": 10000.0}


def outcomes(workload, payload, lam_lat, lam_ok, lam_usd, ecs_lat, ecs_ok, ecs_usd) -> PairOutcomes:
    a = lambda x, t=float: np.asarray(x, dtype=t)  # noqa: E731
    return PairOutcomes(a(workload, object), a(payload), {"lambda": a(lam_lat), "ecs": a(ecs_lat)},
                        {"lambda": a(lam_ok, bool), "ecs": a(ecs_ok, bool)}, {"lambda": a(lam_usd), "ecs": a(ecs_usd)})


def test_objective_variants_follow_params() -> None:
    p = load_params("smoke")
    objs = objectives(p)
    d = p.decision.objective
    assert objs["default"].kind == d.kind and objs["default"].slo_p95_ms == d.slo_p95_ms
    half = objs["SLO x0.5"]
    assert half.slo_p95_ms == {w: v * 0.5 for w, v in d.slo_p95_ms.items()} and half.kind == d.kind
    w = objs["weighted 1e-3 $/s"]
    assert w.kind == "weighted" and w.value_of_time_usd_per_s == 1e-3 and w.failure_penalty_s == d.failure_penalty_s
    assert set(objs) == {"default", *(s.name for s in p.decision.settings)}
    twice = load_params("smoke", overrides={"decision": {"settings": [{"name": "a"}, {"name": "a"}]}})
    with pytest.raises(PolicyError, match="used twice"):
        objectives(twice)
    with pytest.raises(PolicyError, match="no SLO for workloads \\['unknown'\\]"):
        check_slos(objs["default"], np.array(["unknown", "heavy_processing"], dtype=object))


def test_slo_score_counts_excess_misses_and_failures_then_cost() -> None:
    o = Objective("slo_cheapest", SLO, max_failure=0.0)
    n = 20
    # api: Lambda always within the SLO; ECS slow on 2 of 20 (10 %: 5 % beyond the allowance), cheaper
    ecs_lat = np.full(n, 100.0)
    ecs_lat[:2] = 5000.0
    out = outcomes(["api"] * n, [1.0] * n, [200.0] * n, [True] * n, [3e-6] * n, ecs_lat, [True] * n, [1e-7] * n)
    s_l = policy_score(o, out, np.ones(n, dtype=bool))
    s_e = policy_score(o, out, np.zeros(n, dtype=bool))
    assert s_l == (0.0, pytest.approx(3e-6))
    assert s_e[0] == pytest.approx(0.05) and s_e[1] == pytest.approx(1e-7)
    assert workload_rule(o, out) == {"api": "lambda"}          # meets the SLO beats cheaper
    allowed = Objective("slo_cheapest", {"api": 6000.0, "heavy": 1.0}, max_failure=0.0)
    assert workload_rule(allowed, out) == {"api": "ecs"}       # both meet it: the cheaper
    failing = outcomes(["api"] * 4, [1.0] * 4, [100.0] * 4, [True, True, True, False], [1e-6] * 4,
                       [100.0] * 4, [True] * 4, [1e-6] * 4)
    assert policy_score(Objective("slo_cheapest", SLO, max_failure=0.1), failing, np.ones(4, bool))[0] == pytest.approx(0.15)


def test_weighted_score_is_the_mean_measured_objective() -> None:
    o = Objective("weighted", SLO, value_of_time_usd_per_s=1e-3, failure_penalty_s=10.0)
    out = outcomes(["api"] * 2, [1.0, 1.0], [1000.0, np.nan], [True, False], [1e-5, 1e-5],
                   [10.0, 10.0], [True, True], [0.0, 0.0])
    expect = np.mean([o.measured_usd(Measured(1000.0, True, 1e-5)), o.measured_usd(Measured(None, False, 1e-5))])
    assert policy_score(o, out, np.ones(2, dtype=bool)) == (0.0, pytest.approx(expect))


def test_lookup_table_per_payload_with_the_rule_for_unseen_cells() -> None:
    o = Objective("slo_cheapest", SLO, max_failure=0.0)
    # small payloads: both fast, ECS cheaper; large: ECS too slow
    kb = np.array([1.0] * 10 + [500.0] * 10)
    ecs_lat = np.where(kb > 1, 3000.0, 100.0)
    out = outcomes(["api"] * 20, kb, [300.0] * 20, [True] * 20, [2e-6] * 20, ecs_lat, [True] * 20, [1e-7] * 20)
    table = lookup_table(o, out)
    assert table == {"api": {"1": "ecs", "500": "lambda"}}
    rule = workload_rule(o, out)
    assert rule == {"api": "lambda"}
    got = apply_lookup(table, rule, np.array(["api", "api", "api", "heavy"], dtype=object),
                       np.array([1.0, 500.0, 42.0, 1.0]))
    assert got.tolist() == [False, True, True, False]        # 42 KB: the rule; unknown workload: ECS
    assert apply_rule(rule, np.array(["api", "heavy"], dtype=object)).tolist() == [True, False]


def test_choices_are_the_objective_and_oracle_of_every_pair() -> None:
    rng = np.random.default_rng(0)
    n = 300
    o = Objective("slo_cheapest", SLO, max_failure=0.05)
    work = rng.choice(["api", "heavy"], n).astype(object)
    preds = {p: pd.DataFrame({"p50_ms": rng.uniform(50, 5000, n), "p95_ms": rng.uniform(500, 20000, n),
                              "p_fail": rng.uniform(0, 0.1, n)}) for p in ("lambda", "ecs")}
    preds = {p: v.assign(p95_ms=np.maximum(v["p95_ms"], v["p50_ms"])) for p, v in preds.items()}
    cost = {p: rng.uniform(0, 1e-5, n) for p in ("lambda", "ecs")}
    got = objective_choice(o, work, preds, cost)
    for i in range(n):
        pr = {p: Prediction(*(float(preds[p][c].iloc[i]) for c in ("p50_ms", "p95_ms", "p_fail")), float(cost[p][i]))
              for p in ("lambda", "ecs")}
        assert got[i] == (o.choose(work[i], pr) == "lambda")
    lat = {p: np.where(rng.random(n) < 0.1, np.nan, rng.uniform(50, 12000, n)) for p in ("lambda", "ecs")}
    ok = {p: np.isfinite(lat[p]) & (rng.random(n) > 0.05) for p in ("lambda", "ecs")}
    out = PairOutcomes(work, np.ones(n), lat, ok, cost)
    orc = oracle_choice(o, out)
    for i in range(n):
        m = {p: Measured(None if np.isnan(lat[p][i]) else float(lat[p][i]), bool(ok[p][i]), float(cost[p][i]))
             for p in ("lambda", "ecs")}
        assert orc[i] == (o.oracle(work[i], m) == "lambda")
    # the oracle is never beaten, pair by pair, under the weighted objective
    w = Objective("weighted", SLO, value_of_time_usd_per_s=1e-4)
    best = oracle_choice(w, out)
    for trial in (np.ones(n, bool), np.zeros(n, bool), rng.random(n) < 0.5):
        assert policy_score(w, out, best)[1] <= policy_score(w, out, trial)[1] + 1e-15


def test_best_threshold_takes_the_routing_the_objective_prefers() -> None:
    o = Objective("slo_cheapest", SLO, max_failure=0.0)
    n = 200
    needs_lambda = np.arange(n) < 80                                   # ECS too slow on these
    ecs_lat = np.where(needs_lambda, 4000.0, 100.0)
    out = outcomes(["api"] * n, [1.0] * n, [300.0] * n, [True] * n, [2e-6] * n, ecs_lat, [True] * n, [0.0] * n)
    p_lambda = np.where(needs_lambda, 0.72, 0.28)
    t, rows = best_threshold(o, out, p_lambda)
    assert 0.28 < t <= 0.72 and abs(t - 0.5) <= 0.05 + 1e-9          # the whole band scores alike: nearest 0.5
    assert len(rows) == 19 and min(r["excess"] for r in rows) == 0.0
    assert best_threshold(o, out, np.where(needs_lambda, 0.95, 0.9))[0] == 0.95


def test_marginal_costs_add_task_seconds_only_at_capacity_with_autoscaling() -> None:
    common = dict(lambda_gb_s_usd=1.6667e-5, lambda_request_usd=2e-7, gateway_request_usd=3.5e-6, gateway="rest",
                  lambda_memory_mb={"api": 128.0}, lambda_billed_ms={"api": [(1.0, 100.0), (10.0, 200.0)]},
                  alb_usd_per_gb=0.008, ecs_task_usd_per_s={"api": 1e-5}, ecs_capacity={"api": 4},
                  ecs_service_ms={"api": [(1.0, 50.0)]}, ecs_slots_per_task=4)
    work, kb, inflight = np.array(["api"] * 3, dtype=object), np.array([1.0, 5.5, 5.5]), np.array([0.0, 3.0, 4.0])
    on = MarginalCost(**common, ecs_autoscaling={"api": True})
    off = MarginalCost(**common, ecs_autoscaling={"api": False})
    c_on, c_off = marginal_costs(on, work, kb, inflight), marginal_costs(off, work, kb, inflight)
    for i in range(3):
        assert c_on["lambda"][i] == pytest.approx(on.lambda_usd("api", kb[i]))
        assert c_on["ecs"][i] == pytest.approx(on.ecs_usd("api", kb[i], inflight[i]))
        assert c_off["ecs"][i] == pytest.approx(off.ecs_usd("api", kb[i], inflight[i]))
    assert c_on["ecs"][2] - c_off["ecs"][2] == pytest.approx(1e-5 * 0.05 / 4)    # a quarter of a task
    assert c_on["ecs"][1] == c_off["ecs"][1]


def test_the_classifier_family_is_the_served_one_when_there_is_one() -> None:
    p = load_params("smoke")
    meta = {"serving": {"model": "xgboost"}, "chosen_settings": {"xgboost": {"n_estimators": 50, "max_depth": 3}}}
    f = served_family(p, meta, "/m/quick/model_metadata.json")
    assert f.name == "xgboost" and f.settings == {"n_estimators": 50, "max_depth": 3}
    assert f.source.startswith("/m/quick/model_metadata.json") and "<profile>" not in f.source
    g = served_family(p, None)
    assert g.name == "lightgbm" and g.settings == dict(p.training.search["lightgbm"].plan) and "plan" in g.source
