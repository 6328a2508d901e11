"""The closed-loop replay of a profile: its inputs, policies, the comparison with open loop, the
report, and (slow) the whole replay on the smoke profile's simulated pairs with a decision folder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hybridopt.cli import main
from hybridopt.closedloop import replay
from hybridopt.commands.replay_policy import policy_list
from hybridopt.params import load_params
from hybridopt.report import closed_loop as report


@pytest.fixture(scope="module")
def smoke():
    return load_params("smoke")


def test_arrivals_from_pairs_are_one_per_pair_in_time_order(smoke) -> None:
    pairs = pd.DataFrame({"workload_type": ["heavy_processing", "lightweight_api", "lightweight_api"],
                          "payload_size_kb": [3072.0, 1.0, 5.0], "time_window": "midday", "load_pattern": "medium_load",
                          "run_id": "r", "sent_at": pd.to_datetime(["2025-11-24T12:00:02+05:30", "2025-11-24T12:00:00+05:30",
                                                                    "2025-11-25T00:10:00+05:30"])})
    a, start = replay.arrivals_from_pairs(smoke, pairs)
    assert start.isoformat() == "2025-11-24"
    assert a["t_s"].tolist() == [12 * 3600.0, 12 * 3600.0 + 2, 86400.0 + 600]
    assert a["workload_type"].tolist() == ["lightweight_api", "heavy_processing", "lightweight_api"]
    with pytest.raises(replay.ReplayInputError, match="no pairs"):
        replay.arrivals_from_pairs(smoke, pairs.iloc[:0])
    with pytest.raises(replay.ReplayInputError, match="lack columns"):
        replay.arrivals_from_pairs(smoke, pairs.drop(columns=["run_id"]))


def test_policy_names_and_arguments(smoke) -> None:
    every, skipped = replay.policy_names(smoke, True)
    assert every[:6] == ["always_lambda", "always_ecs", "workload_rule", "lookup_table", "classifier@0.5", "classifier@best"]
    assert "objective" in every and "objective:SLO x2" in every and "threshold:2" in every and not skipped
    some, skipped = replay.policy_names(smoke, False)
    assert some == ["always_lambda", "always_ecs", "threshold:2"] and "objective" in skipped
    assert policy_list(None, None) is None and policy_list(["all"], None) is None
    assert policy_list(["objective", "threshold"], ["4"]) == ["objective:4", "threshold:4"]
    assert policy_list(["objective"], ["default", "SLO x2"]) == ["objective", "objective:SLO x2"]
    with pytest.raises(replay.ReplayInputError, match="--setting LIMIT"):
        policy_list(["threshold"], None)


def _closed(policy: str, m: str, v: float, lo: float, hi: float) -> dict:
    return {"policy": policy, m: v, f"{m}_ci_low": lo, f"{m}_ci_high": hi}


def test_compare_flags_intervals_apart_only() -> None:
    metrics = replay.COMPARED
    closed = pd.DataFrame([{**{k: v for m in metrics for k, v in _closed("a", m, 1.0, 0.9, 1.1).items()}},
                           {**{k: v for m in metrics for k, v in _closed("b", m, 2.0, 1.9, 2.1).items()}}])
    back = {v: k for k, v in replay.OPEN_COLUMNS.items()}
    opened = pd.DataFrame([{"policy": "a", **{k: v for m in metrics for k, v in _closed("a", back[m], 1.05, 1.0, 1.2).items()
                                              if k != "policy"}},
                           {"policy": "b", **{k: v for m in metrics for k, v in _closed("b", back[m], 3.0, 2.5, 3.5).items()
                                              if k != "policy"}}])
    cmp = replay.compare(closed, opened)
    assert len(cmp) == 2 * len(metrics)
    assert not cmp[cmp.policy == "a"]["disagree"].any() and cmp[cmp.policy == "b"]["disagree"].all()
    assert cmp[cmp.policy == "b"]["difference"].tolist() == pytest.approx([-1.0] * len(metrics))
    rk = replay.rankings(closed, opened)
    assert rk.set_index("policy").loc["a", "p95_ms_rank_closed"] == 1
    assert replay.compare(closed, pd.DataFrame()).empty


@pytest.mark.slow
def test_replay_of_the_smoke_profile(tmp_path) -> None:
    """Simulated smoke logs through preprocess, a synthetic decision folder, then every policy closed
    loop over two seeds: every run routes every pair, the threshold rule and always-* behave as
    defined, the objective policy really used its tracker, the report's tables and figure build and
    the findings panel reads the result."""
    from hybridopt.data.features import FeatureSpec
    from hybridopt.data.preprocess import ingest_and_audit, preprocess
    from hybridopt.emulation.simulate import simulate_profile
    from hybridopt.report.findings import closed_loop_finding
    from hybridopt.testing import write_synthetic_decision_dir, write_synthetic_model_dir

    params = load_params("smoke", overrides={"data": {"raw_dir": str(tmp_path / "raw"),
                                                      "processed_dir": str(tmp_path / "processed"),
                                                      "reports_dir": str(tmp_path / "reports"),
                                                      "models_dir": str(tmp_path / "models")}})
    simulate_profile(params, seed=42, out_dir=tmp_path / "raw")
    ingest_and_audit(params)
    preprocess(params)
    d = write_synthetic_model_dir(FeatureSpec.from_params(params), tmp_path / "models", "lightgbm", n_rows=1500,
                                  n_trees=20, seed=4)
    write_synthetic_decision_dir(params, d, n_pairs=3000, seed=4)
    doc = replay.replay_profile(params, log=lambda s: None)
    n = doc["arrivals"]
    assert n > 1000 and doc["skipped"] == [] and doc["seeds"] == [1, 2]
    runs = pd.DataFrame(doc["runs"])
    assert (runs["requests"] == n).all() and (runs["model_out_of_order"] == 0).all()
    assert len(runs) == 2 * len(doc["policies"]) and runs["capacity_basis"].eq("simulator").all()
    by = runs.set_index(["policy", "seed"])
    assert by.loc[("always_lambda", 1), "lambda_share"] == 1.0 and by.loc[("always_ecs", 2), "lambda_share"] == 0.0
    assert 0.0 < by.loc[("threshold:2", 1), "lambda_share"] < 1.0
    assert 0.0 < by.loc[("objective", 1), "lambda_share"] < 1.0
    # seeds change the platforms' draws, not the arrivals
    assert by.loc[("always_ecs", 1), "p50_ms"] != by.loc[("always_ecs", 2), "p50_ms"]
    closed = pd.DataFrame(doc["closed"]).set_index("policy")
    assert closed.loc["objective", "seeds"] == 2
    assert closed.loc["always_ecs", "bill_usd_per_1k_ci_low"] <= closed.loc["always_ecs", "bill_usd_per_1k"]
    assert doc["open"] == [] and doc["comparison"] == []           # no decisions.json in tmp: said so
    saved = json.loads((tmp_path / "reports" / "closed_loop" / "closed_loop.json").read_text())
    assert saved["provenance"]["params_hash"] == params.hash
    assert replay.load_or_replay(params, log=lambda s: None)["wall_s"] == saved["wall_s"]   # reused
    assert len(report.closed_table(saved)) == len(doc["policies"])
    assert report.comparison_table(saved).empty and "No open-loop" in report.intro_markdown(saved)
    assert report.frontier_figure(saved).axes and report.frontier_table(saved)["pareto"].any()
    assert set(report.FRONTIER_FORMATS) <= set(report.frontier_table(saved).columns)
    assert "lowest bill" in report.summary_markdown(saved)
    f = closed_loop_finding(saved, "x")
    assert "lowest bill" in f.text and f"{n:,} logged pairs" in f.text
    assert np.isfinite(report.runs_table(saved)["wall_s"]).all()
    # two worker processes give the same runs as one
    par = replay.replay_runs(params, ["threshold:2", "objective"], [1], workers=2, log=lambda s: None)
    for _, r in par.iterrows():
        ser = by.loc[(r["policy"], 1)]
        assert r["bill_usd"] == pytest.approx(ser["bill_usd"], rel=1e-12) and r["p95_ms"] == ser["p95_ms"]


def test_command_names_a_missing_stage(tmp_path, capsys, monkeypatch) -> None:
    """replay-policy without pairs: one line naming the stage to run, exit 2."""
    from hybridopt.params import load as load_mod

    real = load_mod.load_params

    def fake(profile, params_dir=None, overrides=None):
        return real(profile, params_dir, {"data": {"processed_dir": str(tmp_path / "none")}})

    monkeypatch.setattr("hybridopt.commands.replay_policy.load_params", fake)
    assert main(["replay-policy", "--profile", "smoke"]) == 2
    err = capsys.readouterr().err
    assert "pairs.parquet is missing" in err and "preprocess --profile smoke" in err


def test_compare_reads_an_open_loop_ci_written_as_null() -> None:
    """decisions.json writes a CI it could not estimate (one block per session) as null."""
    m = replay.COMPARED[0]
    back = {v: k for k, v in replay.OPEN_COLUMNS.items()}
    closed = pd.DataFrame([_closed("a", mm, 1.0, 0.9, 1.1) for mm in replay.COMPARED[:1]])
    for mm in replay.COMPARED[1:]:
        closed[mm], closed[f"{mm}_ci_low"], closed[f"{mm}_ci_high"] = 1.0, 0.9, 1.1
    opened = pd.DataFrame([{"policy": "a", **{back[mm]: 1.5 for mm in replay.COMPARED},
                            **{f"{back[mm]}_ci_low": None for mm in replay.COMPARED},
                            **{f"{back[mm]}_ci_high": None for mm in replay.COMPARED}}], dtype=object)
    cmp = replay.compare(closed, opened)
    row = cmp[cmp.metric == m].iloc[0]
    assert row["open"] == 1.5 and pd.isna(row["open_ci_low"]) and pd.isna(row["open_ci_high"])
