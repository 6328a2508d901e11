"""Training library: splits, verdicts, noise ceiling, decision quality, selection, tuning
budget, surrogate rules. Fast; the end-to-end runs are in test_modeling_pipeline.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hybridopt.data.features import FeatureSpec, LeakError
from hybridopt.modeling import ceiling as ceil
from hybridopt.modeling.data import TableError, feature_matrix, pair_groups, target
from hybridopt.modeling.decision import (
    decision_table,
    policy_outcome,
    reference_policies,
    static_rule,
)
from hybridopt.modeling.explain import surrogate_rules
from hybridopt.modeling.splits import (
    SplitError,
    assert_disjoint,
    grouped_folds,
    leave_one_run_out,
    random_split,
    sample_groups,
)
from hybridopt.modeling.train import select_best
from hybridopt.modeling.tuning import candidate_settings, search_model
from hybridopt.modeling.verdicts import verdict
from hybridopt.params import ModelSearch
from hybridopt.testing import synthetic_table


# ------------------------------------------------------------------------------------------ splits
def _matched_table(n: int, seed: int) -> pd.DataFrame:
    """Time-matched style pairs: some ECS requests are reused by two pairs (legacy matching)."""
    rng = np.random.default_rng(seed)
    ecs = [f"e{i}" for i in rng.integers(0, int(n * 0.8), n)]
    return pd.DataFrame({"pair_id": [f"p{i}" for i in range(n)], "lambda_request_id": [f"l{i}" for i in range(n)],
                         "ecs_request_id": ecs, "run_id": rng.choice(["r1", "r2", "r3", "r4"], n),
                         "y": rng.integers(0, 2, n)})


def test_pair_groups_join_pairs_that_share_a_request():
    t = pd.DataFrame({"pair_id": ["a", "b", "c", "d", "a"], "lambda_request_id": ["l1", "l2", "l3", "l4", "l5"],
                      "ecs_request_id": ["e1", "e1", "e2", "e3", "e4"]})
    g = pair_groups(t)
    assert g[0] == g[1] == g[4]          # a-b share e1; the two rows of pair a
    assert len({g[0], g[2], g[3]}) == 3


def test_no_pair_or_request_in_two_splits():
    t = _matched_table(3000, 1)
    y = t["y"].to_numpy()
    groups = pair_groups(t)
    parts = random_split(y, groups, 0.6, 0.2, 0.2, seed=42)
    assert sum(len(v) for v in parts.values()) == len(t)
    for col in ("pair_id", "lambda_request_id", "ecs_request_id"):
        sets = {k: set(t[col].iloc[v]) for k, v in parts.items()}
        assert not (sets["train"] & sets["validation"]) and not (sets["train"] & sets["test"]) \
            and not (sets["validation"] & sets["test"]), col
    sizes = {k: len(v) / len(t) for k, v in parts.items()}
    assert sizes["train"] == pytest.approx(0.6, abs=0.03) and sizes["test"] == pytest.approx(0.2, abs=0.03)
    shares = [y[v].mean() for v in parts.values()]
    assert max(shares) - min(shares) < 0.03   # stratified
    for fit, held in grouped_folds(y, groups, 5, seed=1):
        assert not set(groups[fit]) & set(groups[held])
    loro = leave_one_run_out(t["run_id"].to_numpy(), groups, min_runs=3)
    assert loro.runs == ["r1", "r2", "r3", "r4"]
    for fit, held in loro.folds:
        assert not set(groups[fit]) & set(groups[held])
        assert len(set(t["run_id"].iloc[held])) == 1


def test_assert_disjoint_catches_a_shared_group():
    with pytest.raises(SplitError, match="both"):
        assert_disjoint(np.array([0, 1, 1]), {"train": np.array([0, 1]), "test": np.array([2])})


def test_temporal_split_needs_enough_runs_and_blocks_many():
    groups = np.arange(6)
    assert leave_one_run_out(np.array(["a", "a", "b", "b", "a", "b"]), groups, min_runs=3).reason
    many = leave_one_run_out(np.array([f"r{i}" for i in range(6)]), groups, min_runs=3, max_folds=3,
                             order=np.arange(6)[::-1])
    assert many.runs == ["r5+r4", "r3+r2", "r1+r0"]


def test_sample_groups_keeps_whole_groups():
    t = _matched_table(2000, 3)
    groups = pair_groups(t)
    idx = sample_groups(t["y"].to_numpy(), groups, 800, seed=0)
    kept = set(groups[idx])
    assert np.isin(groups, list(kept)).sum() == len(idx)
    assert 600 < len(idx) < 1000


# ---------------------------------------------------------------------------------------- verdicts
def _shares(top: float, n_meaningful: int, n: int = 20) -> dict[str, float]:
    """top share, then n_meaningful - 1 features at 6 %, the rest spread evenly."""
    s = {"f0": top, **{f"f{i}": 0.06 for i in range(1, n_meaningful)}}
    rest = 1.0 - sum(s.values())
    for i in range(n_meaningful, n):
        s[f"f{i}"] = rest / (n - n_meaningful)
    assert all(v < 0.05 for k, v in s.items() if int(k[1:]) >= n_meaningful)
    return s


def test_verdict_accept(params):
    v = verdict(test_accuracy=0.82, train_accuracy=0.84, shares=_shares(0.30, 6), precision_gap=0.05,
                criteria=params.training.verdict)
    assert v["outcome"] == "accept" and len(v["meaningful_features"]) == 6


@pytest.mark.parametrize("kw, flag", [
    ({"test_accuracy": 0.97, "train_accuracy": 0.98}, "accuracy above (lookup table)"),
    ({"test_accuracy": 0.65, "train_accuracy": 0.66}, "accuracy below"),
    ({"test_accuracy": 0.78, "train_accuracy": 0.90}, "overfitting gap"),
    ({"shares": {"a": 0.55, "b": 0.45}}, "one feature dominates"),
])
def test_verdict_fail_flags(params, kw, flag):
    args = {"test_accuracy": 0.82, "train_accuracy": 0.84, "shares": _shares(0.30, 6), "precision_gap": 0.05}
    v = verdict(**{**args, **kw}, criteria=params.training.verdict)
    assert v["outcome"] == "fail"
    assert [f["flag"] for f in v["fail_flags"] if f["raised"]] == [flag]


@pytest.mark.parametrize("kw, failing", [
    ({"test_accuracy": 0.72, "train_accuracy": 0.72}, "test accuracy in range"),        # 70-75 %: no flag
    ({"test_accuracy": 0.80, "train_accuracy": 0.87}, "train/test gap"),                # 5-10 %
    ({"shares": _shares(0.45, 6)}, "top feature share"),                                # 40-50 %
    ({"shares": _shares(0.30, 4)}, "features contributing meaningfully"),
    ({"precision_gap": 0.20}, "precision gap between classes"),
])
def test_verdict_neither(params, kw, failing):
    args = {"test_accuracy": 0.82, "train_accuracy": 0.84, "shares": _shares(0.30, 6), "precision_gap": 0.05}
    v = verdict(**{**args, **kw}, criteria=params.training.verdict)
    assert v["outcome"] == "neither"
    assert [a["criterion"] for a in v["accept_criteria"] if not a["pass"]] == [failing]


def test_verdict_boundaries_and_ceiling_note(params):
    c = params.training.verdict
    v = verdict(test_accuracy=0.75, train_accuracy=0.80, shares=_shares(0.30, 5), precision_gap=0.149,
                criteria=c, ceiling=0.73)
    gap = [a for a in v["accept_criteria"] if a["criterion"] == "train/test gap"][0]
    assert gap["pass"] is False                       # 0.05 is not < 0.05
    assert [a["pass"] for a in v["accept_criteria"]][0] is True    # 0.75 is in [0.75, 0.90]
    assert any("below the accept range" in n for n in v["notes"])


# ----------------------------------------------------------------------------------------- ceiling
def _known_bayes(n: int, n_vectors: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, float]:
    rng = np.random.default_rng(seed)
    p_vec = rng.uniform(0.05, 0.95, n_vectors)
    vec = rng.integers(0, n_vectors, n)
    X = pd.DataFrame({"a": (vec % 7).astype(float), "b": (vec // 7).astype(float)})
    p = p_vec[vec]
    y = (rng.random(n) < p).astype(np.int64)
    return X, y, float(np.maximum(p, 1 - p).mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ceiling_recovers_known_bayes_accuracy(seed):
    X, y, bayes = _known_bayes(30000, 60, seed)
    keys = ceil.vector_keys(X)
    folds = grouped_folds(y, np.arange(len(y)), 5, seed)
    est = ceil.crossfit_ceiling(keys, y, folds, min_group=20)
    assert est["coverage"] == 1.0 and est["n_vectors"] == 60
    assert abs(est["accuracy"] - bayes) < 0.02
    assert abs(est["plugin_accuracy"] - bayes) < 0.02
    half = len(y) // 2
    held = ceil.heldout_ceiling(keys[:half], y[:half], keys[half:], y[half:], 20)
    assert abs(held["accuracy"] - bayes) < 0.02


def test_ceiling_of_synthetic_table_matches_its_bayes_accuracy(params):
    s = synthetic_table(params, 30000, seed=5)
    X = feature_matrix(s.table, FeatureSpec.from_params(params))
    y = target(s.table, "balanced_optimal")
    est = ceil.crossfit_ceiling(ceil.vector_keys(X), y, grouped_folds(y, pair_groups(s.table), 5, 0), 20)
    assert est["coverage"] > 0.95
    assert abs(est["accuracy"] - s.bayes_accuracy) < 0.02


def test_ceiling_is_unknown_on_continuous_features():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.random(500)})
    y = rng.integers(0, 2, 500)
    est = ceil.heldout_ceiling(ceil.vector_keys(X[:250]), y[:250], ceil.vector_keys(X[250:]), y[250:], 20)
    assert est["accuracy"] is None and est["coverage"] == 0.0


# ------------------------------------------------------------------------------- decision quality
def _hand_pairs() -> pd.DataFrame:
    # pair:                  A      B      C      D
    return pd.DataFrame({
        "workload_type": ["w1", "w1", "w2", "w2"],
        "lambda_latency_ms": [100.0, 300.0, 50.0, 400.0],
        "ecs_latency_ms": [200.0, 100.0, 80.0, 150.0],
        "lambda_cost_usd": [1.0, 3.0, 0.5, 4.0],
        "ecs_cost_usd": [2.0, 1.0, 1.0, 2.0],
        "lambda_ok": [True, True, True, False],
        "ecs_ok": [True, True, True, True],
        "balanced_optimal": [1, 0, 1, 0],
    })


def test_decision_quality_on_hand_made_pairs():
    pairs = _hand_pairs()
    always_l = policy_outcome(pairs, np.ones(4, bool))
    assert always_l["total_cost_usd"] == 8.5
    assert always_l["latency_mean_ms"] == 212.5
    assert always_l["latency_p50_ms"] == 200.0                       # median of 50, 100, 300, 400
    assert always_l["latency_p95_ms"] == pytest.approx(385.0)        # linear: 300 + 0.85 * 100
    assert always_l["failed"] == 1
    rule = static_rule(pairs, "balanced_optimal")
    assert rule == {"w1": "lambda", "w2": "lambda"}                  # ties go to Lambda
    pol = reference_policies(pairs, "balanced_optimal", rule)
    pol["model:x"] = np.array([True, False, False, False])
    d = decision_table(pairs, pol)
    assert d.loc["oracle", "total_cost_usd"] == 1.0 + 1.0 + 0.5 + 2.0
    assert d.loc["oracle", "latency_mean_ms"] == (100 + 100 + 50 + 150) / 4
    assert d.loc["always_ecs", "regret_cost_usd"] == pytest.approx(6.0 - 4.5)
    assert d.loc["always_ecs", "regret_latency_mean_ms"] == pytest.approx(132.5 - 100.0)
    assert d.loc["model:x", "total_cost_usd"] == 1.0 + 1.0 + 1.0 + 2.0
    assert d.loc["model:x", "regret_cost_usd"] == pytest.approx(0.5)
    assert d.loc["model:x", "latency_mean_ms"] == (100 + 100 + 80 + 150) / 4
    assert d.loc["cheaper_of_pair", "lambda_share"] == 0.5
    assert list(pol["faster_of_pair"]) == [True, False, True, False]
    assert d.loc["oracle", "regret_cost_usd"] == 0.0


def test_decision_counts_missing_outcomes():
    pairs = _hand_pairs()
    pairs.loc[0, "lambda_latency_ms"] = np.nan
    o = policy_outcome(pairs, np.ones(4, bool))
    assert o["missing_latency"] == 1 and o["latency_mean_ms"] == pytest.approx(250.0)
    with pytest.raises(ValueError, match="3 decisions for 4 pairs"):
        policy_outcome(pairs, np.ones(3, bool))


# ------------------------------------------------------------------------------ data and selection
def test_feature_matrix_guards_and_target_checks(params):
    spec = FeatureSpec.from_params(params)
    t = synthetic_table(params, 200, seed=1).table
    with pytest.raises(TableError, match="missing columns"):
        feature_matrix(t.drop(columns=["payload_log"]), spec)
    leaky = FeatureSpec(**{**spec.__dict__, "columns": [*spec.columns, "lambda_latency_ms"]})
    with pytest.raises(LeakError):
        feature_matrix(t, leaky)
    bad = t.copy()
    bad.loc[0, "balanced_optimal"] = 2
    with pytest.raises(TableError, match="not 0/1"):
        target(bad, "balanced_optimal")
    with pytest.raises(TableError, match="not one of"):
        target(t, "lambda_latency_ms")


def test_select_best_rule():
    auc = {"random_forest": 0.80, "xgboost": 0.781, "lightgbm": 0.780, "mlp": 0.79, "ensemble": 0.81}
    s = select_best(auc, ["lightgbm", "xgboost"], tie=0.002, prefer="lightgbm")
    assert s["model"] == "lightgbm" and s["best_overall"] == "ensemble"
    assert s["gap_to_best_overall"] == pytest.approx(0.03)
    s = select_best({**auc, "xgboost": 0.79}, ["lightgbm", "xgboost"], tie=0.002, prefer="lightgbm")
    assert s["model"] == "xgboost"
    with pytest.raises(ValueError, match="no portable"):
        select_best({"mlp": 0.7}, ["lightgbm"], 0.0, "lightgbm")


def test_candidates_start_with_the_plan_and_budget_stops_search():
    search = ModelSearch(n_iter=5, budget_s=10.0, plan={"n_estimators": 20, "max_depth": 3},
                         space={"max_depth": [2, 3, 4], "learning_rate": [0.1, 0.3]})
    cands = candidate_settings(search, seed=0)
    assert cands[0] == {"n_estimators": 20, "max_depth": 3} and len(cands) == 5
    assert len({tuple(sorted(c.items())) for c in cands}) == 5
    assert candidate_settings(search, seed=0) == cands
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.random(400), "b": rng.random(400)})
    y = (X["a"] + 0.3 * rng.random(400) > 0.6).astype(int).to_numpy()
    folds = grouped_folds(y, np.arange(400), 3, 0)
    ticks = iter(np.arange(0.0, 1000.0, 4.0))     # each clock read advances 4 "seconds"
    r = search_model("xgboost", search, X, y, folds, seed=0, n_jobs=1, clock=lambda: float(next(ticks)))
    assert r.stopped_by_budget and len(r.candidates) < 5 and r.candidates[0]["settings"] == cands[0]
    assert r.oof_proba.shape == (400,)


def test_surrogate_rules_are_readable(params):
    spec = FeatureSpec.from_params(params)
    s = synthetic_table(params, 3000, seed=2)
    X = feature_matrix(s.table, spec)
    decision = (X["workload_type_encoded"] <= 1).to_numpy().astype(int)   # lightweight/thumbnail -> lambda
    rules, fidelity = surrogate_rules(X, decision, target(s.table, "balanced_optimal"), spec, 2, 0.02, 0)
    assert fidelity == 1.0
    assert rules["support"].sum() == pytest.approx(1.0)
    lam = rules[rules["then"] == "lambda"]["rule"].tolist()
    assert any("workload in {lightweight_api, thumbnail_processing}" in r for r in lam)
