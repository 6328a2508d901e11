"""Outcome models: decision features (14 + causal load state), quantile coverage on data with known
quantiles, the failure model, and the coverage table itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hybridopt.data.features import FeatureSpec, LeakError, assert_leak_free
from hybridopt.decision.load_frame import load_features_at, seconds
from hybridopt.decision.load_state import feature_names
from hybridopt.decision.outcomes import (
    OutcomeDataError,
    coverage,
    decision_features,
    fit_outcomes,
    load_requests,
)
from hybridopt.params import load_params
from scipy import stats

WINDOWS = (10.0, 60.0)


@pytest.fixture(scope="module")
def smoke():
    return load_params("smoke")


def known_pairs(params, n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Paired requests with KNOWN latency distributions: log latency ~ N(mu(workload, payload), 0.4)
    on Lambda, N(mu + 0.3, 0.25) on ECS; ECS fails with probability 0.3 above 1 MB, else never."""
    rng = np.random.default_rng(seed)
    works = list(params.workloads)
    w = np.array(works, dtype=object)[rng.integers(0, len(works), n)]
    kb = np.array([rng.choice(params.workloads[x].payload_sizes_kb) for x in w], dtype=float)
    t = np.cumsum(rng.exponential(0.5, n))
    sent = pd.Timestamp("2025-11-24T06:30:00Z") + pd.to_timedelta(t, unit="s")
    mu = np.log(80.0) + 0.35 * np.log1p(kb)
    lam = np.exp(rng.normal(mu, 0.4))
    ecs = np.exp(rng.normal(mu + 0.3, 0.25))
    ecs_ok = ~((kb > 1024) & (rng.random(n) < 0.3))
    run = np.where(t < t[n // 2], "run-a", "run-b")
    pairs = pd.DataFrame({"pair_id": [f"p{i}" for i in range(n)], "pairing": "paired", "run_id": run,
                          "workload_type": w, "payload_size_kb": kb, "sent_at": sent, "time_window": "midday",
                          "load_pattern": "medium_load", "lambda_latency_ms": lam, "ecs_latency_ms": ecs,
                          "lambda_ok": True, "ecs_ok": ecs_ok, "mu": mu})
    reqs = pd.concat([pd.DataFrame({"request_id": [f"p{i}-{p}" for i in range(n)], "pair_id": pairs["pair_id"],
                                    "run_id": run, "platform": p, "workload_type": w, "sent_at": sent,
                                    "total_ms": pairs[f"{p}_latency_ms"]}) for p in ("lambda", "ecs")],
                     ignore_index=True)
    return pairs, reqs


def test_decision_features_are_the_14_then_the_causal_load_state(smoke) -> None:
    pairs, reqs = known_pairs(smoke, 400, seed=1)
    spec = FeatureSpec.from_params(smoke)
    X = decision_features(pairs, reqs, spec, WINDOWS, 10.0)
    assert list(X.columns) == [*spec.columns, *feature_names(WINDOWS)]
    assert_leak_free(X[spec.columns], spec)
    i = 250   # one pair, by hand: the load state of its own run strictly before its decision time
    run = reqs[reqs["run_id"] == pairs["run_id"].iloc[i]]
    direct = load_features_at(run, seconds(pairs["sent_at"].iloc[[i]]), pairs["workload_type"].to_numpy()[[i]],
                              WINDOWS, 10.0)
    np.testing.assert_array_equal(X.loc[i, list(feature_names(WINDOWS))].to_numpy(dtype=float), direct.to_numpy()[0])
    first_of_b = int(np.flatnonzero(pairs["run_id"] == "run-b")[0])
    assert X.loc[first_of_b, "arrivals_60s_rps"] == 0.0      # runs are separate sessions
    assert X.loc[first_of_b - 1, "arrivals_60s_rps"] > 0.0


def test_the_feature_guard_runs_on_the_decision_features(smoke) -> None:
    pairs, reqs = known_pairs(smoke, 50, seed=2)
    spec = FeatureSpec.from_params(smoke)
    forbidding = FeatureSpec(**{**spec.__dict__, "forbidden": [*spec.forbidden, "payload_log"]})
    with pytest.raises(LeakError, match="payload_log"):
        decision_features(pairs, reqs, forbidding, WINDOWS, 10.0)


def test_unpaired_requests_are_arrivals_of_their_own() -> None:
    reqs = pd.DataFrame({"request_id": ["a", "b", "c"], "pair_id": pd.array([None, "x", None], dtype="string"),
                         "run_id": "r", "platform": ["lambda", "ecs", "ecs"], "workload_type": "w",
                         "sent_at": pd.to_datetime(["2025-11-24T00:00:00Z"] * 3).as_unit("us"),
                         "total_ms": [1.0, 2.0, 3.0]})
    out = load_requests(reqs)
    assert list(out["pair_id"]) == ["unpaired:a", "x", "unpaired:c"]
    assert str(out["sent_at"].dtype) == "datetime64[ns, UTC]"


def test_quantile_models_cover_their_quantiles_on_held_out_pairs(smoke) -> None:
    pairs, reqs = known_pairs(smoke, 6000, seed=3)
    X = decision_features(pairs, reqs, FeatureSpec.from_params(smoke), WINDOWS, 10.0)
    fit, held = np.arange(4000), np.arange(4000, 6000)
    models = fit_outcomes(X.iloc[fit], pairs.iloc[fit], seed=0, n_jobs=1)
    preds = models.predict(X.iloc[held])
    cov = coverage(pairs.iloc[held].reset_index(drop=True), {p: v.reset_index(drop=True) for p, v in preds.items()})
    allrow = cov[cov["workload_type"] == "all"].set_index("platform")
    for p in ("lambda", "ecs"):
        assert abs(allrow.loc[p, "p50_coverage"] - 0.5) < 0.05
        assert abs(allrow.loc[p, "p95_coverage"] - 0.95) < 0.03
    mu = pairs["mu"].to_numpy()[held]
    true95 = np.exp(mu + stats.norm.ppf(0.95) * 0.4)               # Lambda's true p95
    assert np.median(np.abs(np.log(preds["lambda"]["p95_ms"].to_numpy() / true95))) < 0.12
    assert (preds["ecs"]["p95_ms"] >= preds["ecs"]["p50_ms"]).all()
    big = pairs["payload_size_kb"].to_numpy()[held] > 1024
    pf = preds["ecs"]["p_fail"].to_numpy()
    assert abs(pf[big].mean() - 0.3) < 0.06 and pf[~big].mean() < 0.03
    assert models.trained_rows["ecs"]["failed"] == int((~pairs["ecs_ok"].iloc[fit]).sum())


def test_coverage_counts_successful_attempts_against_the_predictions() -> None:
    pairs = pd.DataFrame({"workload_type": ["a", "a", "a", "b"], "lambda_latency_ms": [10.0, 20.0, 30.0, 5.0],
                          "lambda_ok": [True, True, False, True], "ecs_latency_ms": [1.0, 1.0, 1.0, np.nan],
                          "ecs_ok": [True, True, True, False]})
    preds = {"lambda": pd.DataFrame({"p50_ms": [15.0, 15.0, 15.0, 4.0], "p95_ms": [25.0, 25.0, 25.0, 6.0],
                                     "p_fail": [0.1, 0.1, 0.1, 0.0]}),
             "ecs": pd.DataFrame({"p50_ms": [1.0] * 4, "p95_ms": [2.0] * 4, "p_fail": [0.0, 0.0, 0.0, 1.0]})}
    c = coverage(pairs, preds).set_index(["platform", "workload_type"])
    assert c.loc[("lambda", "a"), "n_ok_with_latency"] == 2
    assert c.loc[("lambda", "a"), "p50_coverage"] == 0.5 and c.loc[("lambda", "a"), "p95_coverage"] == 1.0
    assert c.loc[("lambda", "b"), "p50_coverage"] == 0.0
    assert c.loc[("lambda", "all"), "failure_rate"] == 0.25
    assert c.loc[("ecs", "b"), "n_ok_with_latency"] == 0 and np.isnan(c.loc[("ecs", "b"), "p95_coverage"])
    assert c.loc[("ecs", "all"), "mean_predicted_p_fail"] == 0.25


def test_a_platform_without_any_success_cannot_be_modelled(smoke) -> None:
    pairs, reqs = known_pairs(smoke, 60, seed=4)
    X = decision_features(pairs, reqs, FeatureSpec.from_params(smoke), WINDOWS, 10.0)
    pairs = pairs.assign(ecs_ok=False)
    with pytest.raises(OutcomeDataError, match="no successful ecs attempt"):
        fit_outcomes(X, pairs, seed=0, n_jobs=1)
