"""A/B statistics on synthetic arms with known differences: the CIs cover the truth at about the
stated rate, exclude zero at about alpha when there is no difference, and the planning numbers
scale as they must."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hybridopt import testing
from hybridopt.ab import stats as ab


def test_quantiles_from_counts_equal_numpy() -> None:
    rng = np.random.default_rng(0)
    v = np.sort(rng.choice(rng.lognormal(4, 1, 50), 50, replace=False))
    counts = rng.integers(0, 5, size=(30, 50)).astype(float)
    counts[:, 0] += 1
    qs = [0.5, 0.95, 0.99]
    got = ab._quantiles_from_counts(v, counts, qs)
    for b in range(30):
        expanded = np.repeat(v, counts[b].astype(int))
        for q, g in zip(qs, got):
            assert g[b] == pytest.approx(np.quantile(expanded, q), rel=1e-12)


def test_grouped_and_row_bootstrap_agree(monkeypatch) -> None:
    """Above INDEX_BOOTSTRAP_MAX the multinomial path is used: same SEs as row resampling on the
    same data (600 replicates: Monte Carlo error of an SE is about 3 %)."""
    df, _ = testing.synthetic_arms(30_000, seed=3)
    vals = {m: ab._values(df[df.arm == "control"], m) for m in ab.METRICS}
    grouped = ab.bootstrap_arm(vals, 600, np.random.default_rng(1))
    monkeypatch.setattr(ab, "INDEX_BOOTSTRAP_MAX", 10 ** 9)
    rows = ab.bootstrap_arm(vals, 600, np.random.default_rng(2))
    for m in ("bill_avg_usd_per_request", "latency_p50_ms", "latency_p95_ms", "error_rate"):
        assert np.std(grouped[m]) == pytest.approx(np.std(rows[m]), rel=0.15), m
        assert np.mean(grouped[m]) == pytest.approx(np.mean(rows[m]), rel=0.01), m


def test_known_difference_is_found_with_the_right_sign() -> None:
    df, truth = testing.synthetic_arms(8000, seed=5, latency_ratio=0.85, cost_ratio=0.9, error_treatment=0.008,
                                  accuracy_treatment=0.7)
    res = ab.compare_arms(df, n_resamples=800, seed=1)
    cmp = res.comparison
    for m in ("bill_avg_usd_per_request", "marginal_avg_usd_per_request", "latency_p50_ms", "latency_p95_ms",
              "error_rate", "slo_miss_rate", "routing_accuracy"):
        # (coverage of the truth is a rate: checked over replications in the slow tests below)
        assert cmp.loc[m, "significant"] and not cmp.loc[m, "ci_low"] <= 0 <= cmp.loc[m, "ci_high"], m
        assert np.sign(cmp.loc[m, "difference"]) == np.sign(truth[m])
    assert set(cmp["test"]) == {"Welch t-test", "Mood's median test", "bootstrap (CI inversion)",
                                "Fisher's exact test"}
    assert res.arms.loc["treatment", "requests"] == 8000


@pytest.mark.slow
def test_ci_coverage_with_a_known_difference() -> None:
    """95 % CIs cover the true difference in about 95 % of 60 replications (allowing 3 binomial SEs)."""
    cov = ab.coverage_check(2000, replications=60, seed=100, n_resamples=400, latency_ratio=0.9,
                            cost_ratio=0.93, error_treatment=0.01, accuracy_treatment=0.66)
    for m, row in cov.iterrows():
        assert row["coverage"] >= 0.95 - 3 * np.sqrt(0.95 * 0.05 / 60), (m, row.to_dict())


@pytest.mark.slow
def test_no_difference_rejects_at_about_alpha() -> None:
    cov = ab.coverage_check(2000, replications=60, seed=200, n_resamples=400)
    for m, row in cov.iterrows():
        assert row["true_difference"] == 0
        assert row["rejects_zero"] <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 60), (m, row.to_dict())
    # and the per-metric tests: p < alpha about alpha of the time
    pvals = []
    for r in range(40):
        df, _ = testing.synthetic_arms(1500, seed=300 + r)
        pvals.append(ab.compare_arms(df, n_resamples=200, seed=r).comparison["p_value"])
    rates = (pd.concat(pvals, axis=1) < 0.05).mean(axis=1)
    assert (rates <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 40)).all(), rates.to_dict()


def test_plan_power_scales_with_sample_size() -> None:
    df, _ = testing.synthetic_arms(4000, seed=9, latency_ratio=0.95)
    res = ab.compare_arms(df, n_resamples=600, seed=2)
    same = ab.plan_power(res, plan_requests=8000, treatment_share=0.5)
    z = 1.959964 + 0.841621
    for m in ab.METRICS:
        assert same.loc[m, "mde_at_plan"] == pytest.approx(z * res.boot_se[m], rel=1e-4)
    big = ab.plan_power(res, plan_requests=32000)
    assert big.loc["latency_p50_ms", "mde_at_plan"] == pytest.approx(same.loc["latency_p50_ms", "mde_at_plan"] / 2, rel=1e-6)
    # requests needed for the observed difference: at that size the MDE equals the difference
    need = same.loc["latency_p50_ms", "requests_for_observed"]
    at_need = ab.plan_power(res, plan_requests=int(round(need)))
    assert at_need.loc["latency_p50_ms", "mde_at_plan"] == pytest.approx(
        abs(res.comparison.loc["latency_p50_ms", "difference"]), rel=1e-3)
    assert big.attrs["plan_requests"] == 32000


def test_ab_frame_joins_the_oracle_where_pairs_exist() -> None:
    req = pd.DataFrame({"arm": ["control", "treatment", "treatment"], "platform": ["lambda", "ecs", "ecs"],
                        "workload_type": ["a", "a", "b"], "payload_size_kb": [1.0, 1.0, 5.0],
                        "time_window": ["m", "m", "m"], "load_pattern": ["low", "low", "low"],
                        "latency_ms": [10.0, 20.0, 30.0], "bill_usd": [1e-6] * 3, "ok": [True, True, False]})
    pairs = pd.DataFrame({"workload_type": ["a", "a", "a"], "payload_size_kb": [1.0, 1.0, 1.0],
                          "time_window": ["m"] * 3, "load_pattern": ["low"] * 3, "balanced_optimal": [1, 1, 0]})
    out = ab.ab_frame(req, pairs)
    assert out["oracle_platform"].tolist()[:2] == ["lambda", "lambda"] and pd.isna(out["oracle_platform"].iloc[2])
    arms = ab.arm_table(out)
    assert arms.loc["control", "routing_accuracy"] == 1.0 and arms.loc["treatment", "routing_accuracy"] == 0.0
    assert arms.loc["treatment", "with_oracle"] == 1 and arms.loc["treatment", "error_rate"] == 0.5


def test_bad_frames_are_named() -> None:
    df, _ = testing.synthetic_arms(50, seed=1)
    with pytest.raises(ab.ABError, match="bill_usd"):
        ab.compare_arms(df.drop(columns="bill_usd"))
    with pytest.raises(ab.ABError, match="both arms"):
        ab.compare_arms(df[df.arm == "control"])
    with pytest.raises(ab.ABError, match="'c'"):
        ab.compare_arms(df.assign(arm="c"))
