"""Offline policy evaluation on paired outcomes with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hybridopt.ab.offline import evaluate_policies, router_choices
from hybridopt.data.features import FeatureSpec
from hybridopt.params import load_params
from hybridopt.router.handler import Router
from hybridopt.router.package import router_config
from hybridopt.testing import synthetic_contexts, write_synthetic_model_dir

PROFILE = "thesis-2025-11"


def _pairs(n: int, seed: int) -> pd.DataFrame:
    params = load_params(PROFILE)
    spec = FeatureSpec.from_params(params)
    ctx = synthetic_contexts(spec, n, seed)
    rng = np.random.default_rng(seed)
    lam_lat = rng.lognormal(np.log(100 + ctx.payload_size_kb / 20), 0.3)
    ecs_lat = rng.lognormal(np.log(150), 0.3, n)
    lam_cost = 1e-6 + ctx.payload_size_kb.to_numpy() * 1e-9
    ecs_cost = np.full(n, 3e-6)
    label = ((lam_lat < ecs_lat) & (lam_cost < ecs_cost)).astype(int)
    return ctx.assign(pair_id=[f"p{i}" for i in range(n)], lambda_latency_ms=lam_lat, ecs_latency_ms=ecs_lat,
                      lambda_cost_usd=lam_cost, ecs_cost_usd=ecs_cost, lambda_ok=True, ecs_ok=rng.random(n) > 0.01,
                      balanced_optimal=label)


def test_reference_policies_have_the_known_values() -> None:
    pairs = _pairs(3000, 1)
    rule = {w: "lambda" for w in pairs.workload_type.unique()}
    table, diffs = evaluate_policies(pairs, "balanced_optimal", rule, n_resamples=300, seed=1)
    assert table.loc["always_lambda", "cost_per_request_usd"] == pytest.approx(pairs.lambda_cost_usd.mean())
    assert table.loc["always_ecs", "latency_p50_ms"] == pytest.approx(np.quantile(pairs.ecs_latency_ms, 0.5))
    assert table.loc["always_ecs", "failure_rate"] == pytest.approx(1 - pairs.ecs_ok.mean())
    assert table.loc["oracle", "regret_cost_per_request_usd"] == 0 and table.loc["oracle", "oracle_agreement"] == 1
    assert table.loc["static_rule", "lambda_share"] == 1.0        # every workload mapped to lambda
    for p, row in table.iterrows():
        for s in ("cost_per_request_usd", "latency_p95_ms", "regret_latency_ms"):
            assert row[f"{s}_low"] <= row[s] <= row[f"{s}_high"], (p, s)
    # always_lambda equals the static rule here: paired difference exactly 0
    same = diffs[(diffs.policy == "always_lambda")]
    assert (same.difference == 0).all() and (same.ci_low == 0).all() and (same.ci_high == 0).all()
    cheaper = diffs[(diffs.policy == "cheaper_of_pair") & (diffs.statistic == "cost_per_request_usd")].iloc[0]
    assert cheaper.difference < 0 and cheaper.excludes_zero


def test_served_model_through_the_router(tmp_path) -> None:
    params = load_params(PROFILE)
    spec = FeatureSpec.from_params(params)
    model_dir = write_synthetic_model_dir(spec, tmp_path, "lightgbm", n_rows=2000, n_trees=40, seed=3)
    router = Router.from_dir(model_dir, router_config(params))
    pairs = _pairs(400, 2)
    to_lambda, proba = router_choices(router, pairs)
    import lightgbm as lgb

    ref = lgb.Booster(model_file=str(model_dir / "model.txt")).predict(spec.frame(pairs))
    assert np.max(np.abs(proba - ref)) <= 1e-9 and (to_lambda == (ref >= 0.5)).all()
    table, _ = evaluate_policies(pairs, "balanced_optimal", router.static_rule, {"model": to_lambda},
                                 n_resamples=200)
    assert "model" in table.index and table.loc["model", "lambda_share"] == pytest.approx(to_lambda.mean())
