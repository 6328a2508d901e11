"""Stage 06 evaluation: the minute-block bootstrap, the Pareto flags, and the whole decide step on a
small simulated profile (leave-session-out, serving files, scoring unseen logs with them)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from hybridopt import model_dir as layout
from hybridopt.data.preprocess import ingest_and_audit, preprocess
from hybridopt.decision import evaluate, outcomes
from hybridopt.decision.artifacts import decide_profile, decide_unseen, load_decision, load_or_decide
from hybridopt.decision.bill import policy_bill
from hybridopt.decision.capacity import capacity_for
from hybridopt.decision.evaluate import (CI_NO_VARIATION, CI_ONE_BLOCK, OPEN_LOOP, DecisionInputError, blocks, ci_reason,
                                         frontier, quantile_cis, quantiles)
from hybridopt.decision.policies import objectives
from hybridopt.emulation import simulate
from hybridopt.errors import InputError
from hybridopt.params import load_params


# ------------------------------------------------------------------------------------ bootstrap
def test_blocks_resample_within_sessions_and_the_ci_follows_block_variation() -> None:
    rng = np.random.default_rng(1)
    sessions = np.array(["a"] * 6000 + ["b"] * 3000, dtype=object)
    t = np.concatenate([np.sort(rng.uniform(0, 6000, 6000)), np.sort(rng.uniform(0, 3000, 3000))])
    b = blocks(sessions, t, 60.0, 2000, seed=3)
    per = pd.Series(b.session).value_counts()
    assert per["a"] == 100 and per["b"] == 50
    for s in ("a", "b"):
        assert (b.weights[:, b.session == s].sum(axis=1) == per[s]).all()
    offset = rng.normal(0, 1.0, len(b.session))[b.index]            # every minute shares a shift
    x = offset + rng.normal(0, 0.1, len(t))
    lo, hi = b.ci(x, np.ones(len(t)))
    assert lo < x.mean() < hi
    block_means = pd.Series(x).groupby(b.index).mean()
    expected = 2 * 1.96 * block_means.std() / np.sqrt(len(block_means))
    assert 0.7 < (hi - lo) / expected < 1.3                         # far wider than an iid bootstrap's
    assert (hi - lo) > 3 * 2 * 1.96 * x.std() / np.sqrt(len(x))    # the iid-pair interval's width


def test_quantile_intervals_bracket_the_exact_quantiles() -> None:
    rng = np.random.default_rng(2)
    n = 20000
    t = np.sort(rng.uniform(0, 7200, n))
    lat = rng.lognormal(6.0, 0.7, n)
    b = blocks(np.array(["s"] * n, dtype=object), t, 60.0, 500, seed=0)
    for (lo, hi), q in zip(quantile_cis(b, lat, (0.5, 0.95, 0.99)), (50, 95, 99)):
        v = np.percentile(lat, q)
        assert lo <= v * 1.006 and v <= hi * 1.006 and (hi - lo) / v < 0.15


def test_quantile_points_are_the_bootstrap_statistic_and_sit_inside_their_intervals() -> None:
    rng = np.random.default_rng(4)
    n = 5000
    t = np.sort(rng.uniform(0, 3600, n))
    lat = np.where(rng.random(n) < 0.1, rng.uniform(9990, 10020, n), rng.lognormal(7.0, 0.5, n))
    b = blocks(np.array(["s"] * n, dtype=object), t, 60.0, 300, seed=1)
    for pt, (lo, hi) in quantiles(b, lat, (0.5, 0.95, 0.99)):
        assert lo <= pt <= hi and lat.min() <= pt <= lat.max()
    p95, p99 = quantiles(b, lat, (0.95, 0.99))
    assert p95[0] <= p99[0] and p95[1][0] <= p99[1][1]


def test_one_block_per_session_gives_no_interval_and_says_why() -> None:
    rng = np.random.default_rng(5)
    sessions = np.array(["a"] * 300 + ["b"] * 200, dtype=object)
    t = rng.uniform(0, 50, 500)                                   # every session inside one 60 s block
    lat = rng.lognormal(7.0, 0.6, 500)
    b = blocks(sessions, t, 60.0, 200, seed=0)
    assert b.single_block()
    (pt, (lo, hi)), = quantiles(b, lat, (0.95,))
    assert lo == hi == pt                                         # the resamples are the sample itself
    assert abs(pt - np.percentile(lat, 95)) <= np.percentile(lat, 95) * 0.006
    assert ci_reason(b.single_block(), pt, (lo, hi)) == CI_ONE_BLOCK
    assert ci_reason(False, 0.5, (0.5, 0.5)) == CI_NO_VARIATION
    assert ci_reason(False, 0.5, (0.4, 0.6)) == ""
    two = blocks(sessions, np.where(sessions == "a", t, t + rng.choice([0.0, 60.0], 500)), 60.0, 200, seed=0)
    assert not two.single_block()


def test_pareto_flags_leave_out_dominated_policies_and_oracles() -> None:
    pol = pd.DataFrame({"policy": ["a", "b", "c", "d", "oracle"], "kind": ["static"] * 4 + ["oracle"],
                        "judged_by": "default", "bill_avg_usd_per_1k_requests": [1.0, 2.0, 1.5, 1.0, 0.1],
                        "latency_p95_ms": [500.0, 100.0, 600.0, 500.0, 10.0]})
    for c in ("bill_avg_usd_per_1k_requests", "latency_p95_ms"):
        pol[f"{c}_ci_low"], pol[f"{c}_ci_high"] = pol[c], pol[c]
    f = frontier(pol).set_index("policy")["pareto"]
    assert f.to_dict() == {"a": True, "b": True, "c": False, "d": True, "oracle": False}


# ------------------------------------------------------------------------- decide, end to end
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small simulated profile (the smoke schedule at 12 s per window) with its own folders, small
    boosters and fewer leak-guard probes (the method is the same; only the sizes are smaller)."""
    root = tmp_path_factory.mktemp("decide")
    d = {k: str(root / k) for k in ("raw", "processed", "models", "reports")}
    phases = {"low_load": [{"name": "steady", "duration_s": 12, "arrival_rate_rps": 5}],
              "medium_load": [{"name": "steady", "duration_s": 12, "arrival_rate_rps": 15}],
              "burst_load": [{"name": "baseline", "duration_s": 5, "arrival_rate_rps": 5},
                             {"name": "burst", "duration_s": 3, "arrival_rate_rps": 30},
                             {"name": "recovery", "duration_s": 4, "arrival_rate_rps": 5}],
              "ramp_load": [{"name": "ramp", "duration_s": 12, "arrival_rate_rps": 5, "ramp_to_rps": 25}]}
    over = {"data": {"raw_dir": d["raw"], "processed_dir": d["processed"], "models_dir": d["models"],
                     "reports_dir": d["reports"]},
            "load_patterns": {k: {"phases": v} for k, v in phases.items()},
            "decision": {"bootstrap_resamples": 200, "bootstrap_block_s": 4},
            "training": {"search": {"lightgbm": {"plan": {"n_estimators": 25}}}}}
    params = load_params("smoke", overrides=over)
    res = simulate.simulate(params, 5)
    simulate.write_jsonl(res.rows, root / "raw")
    simulate.write_capacity(res.model, params, root / "raw")
    ingest_and_audit(params)
    preprocess(params)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(outcomes, "N_TREES", 25)
        mp.setattr(evaluate, "CAUSAL_PROBES", 20)
        doc = decide_profile(params, log=lambda s: None)
        unseen = decide_unseen(params, root / "raw", log=lambda s: None)
    return params, doc, unseen, root


def test_decide_judges_every_policy_against_its_own_oracle(tiny) -> None:
    params, doc, _, _ = tiny
    assert doc["open_loop"] == OPEN_LOOP and "OPEN LOOP" in doc["open_loop"]
    pol = pd.DataFrame(doc["policies"]).set_index("policy")
    names = set(objectives(params))
    expected = {"always_lambda", "always_ecs", "workload_rule", "lookup_table", "classifier@0.5", "classifier@best",
                *("objective" if n == "default" else f"objective:{n}" for n in names),
                *("oracle" if n == "default" else f"oracle:{n}" for n in names)}
    assert set(pol.index) == expected
    assert len(doc["folds"]) == len(doc["data"]["sessions"]) == 5
    assert pol.loc["always_lambda", "lambda_share"] == 1.0 and pol.loc["always_ecs", "lambda_share"] == 0.0
    oracles = pol[pol["kind"] == "oracle"]
    assert (oracles["regret_usd_per_1k_requests"] == 0).all() and (oracles["oracle_agreement"] == 1).all()
    weighted = pol[pol["objective_kind"] == "weighted"]
    assert (weighted["regret_objective_usd_per_1k_requests"] >= -1e-12).all()   # nothing beats its own oracle
    for c in ("bill_avg_usd_per_1k_requests", "failure_rate", "slo_miss_share", "regret_ms_per_request",
              "latency_p50_ms", "latency_p95_ms", "latency_p99_ms"):
        given = pol[f"{c}_ci_na"] == ""
        g = pol[given]
        assert (g[f"{c}_ci_low"] <= g[c] + 1e-12).all() and (g[c] <= g[f"{c}_ci_high"] + 1e-12).all(), c
        assert (g[f"{c}_ci_high"] > g[f"{c}_ci_low"]).all(), c              # never a zero-width interval
        assert pol.loc[~given, f"{c}_ci_low"].isna().all() and pol.loc[~given, f"{c}_ci_high"].isna().all(), c
    assert (pol["bill_avg_usd_per_1k_requests_ci_na"] == "").all()
    assert doc["leak_guard"]["check_causal"]["passed"] and doc["leak_guard"]["check_causal"]["max_abs_diff"] == 0.0
    fr = pd.DataFrame(doc["frontier"])
    assert fr["pareto"].any() and not fr.loc[fr["kind"] == "oracle", "pareto"].any()
    cov = pd.DataFrame(doc["coverage"])
    assert set(cov["platform"]) == {"lambda", "ecs"} and "all" in set(cov["workload_type"])
    assert doc["summary"]["best_static"] in {"always_lambda", "always_ecs", "workload_rule", "lookup_table"}
    w = pd.DataFrame(doc["wins"])
    both = w["both_fail_share"] > 0.5
    assert (w.loc[both, "winner"] == "neither").all()
    assert (w.loc[~both, "winner"] == w.loc[~both, "objective_prefers"]).all()
    assert (w["low_confidence"] == (w["n_pairs"] < evaluate.WIN_MIN_PAIRS)).all()
    g = doc["leak_guard"]
    assert g["plan_features"] == len(params.features.columns) and \
        g["plan_features"] + g["load_features"] == len(g["feature_columns"])


def test_the_bill_of_a_policy_is_the_bill_module_s(tiny) -> None:
    params, doc, _, root = tiny
    pairs = pd.read_parquet(root / "processed" / "pairs.parquet")
    requests = pd.read_parquet(root / "processed" / "requests.parquet")
    direct = policy_bill(pairs, np.ones(len(pairs), dtype=bool), requests, params, capacity_for(params, root / "raw"))
    pol = pd.DataFrame(doc["policies"]).set_index("policy")
    assert pol.loc["always_lambda", "bill_usd"] == pytest.approx(direct.total_usd, rel=1e-9)
    lines = pd.DataFrame(doc["bill_lines"])
    assert lines[lines["policy"] == "always_lambda"]["usd"].sum() == pytest.approx(direct.total_usd, rel=1e-9)


def test_serving_files_round_trip_and_score_unseen_logs_without_refit(tiny) -> None:
    params, doc, unseen, root = tiny
    ddir = layout.decision_dir(root / "models")
    for p, qs in layout.DECISION_MODEL_FILES.items():
        for f in qs.values():
            assert (ddir / f).is_file()
    spec = json.loads(layout.decision_spec_path(root / "models").read_text())
    assert spec["latency_transform"] == "log" and spec["version"] == 1
    assert spec["feature_columns"][:14] == list(params.features.columns) and len(spec["feature_columns"]) == 22
    assert spec["objective"] == objectives(params)["default"].to_dict()
    saved = load_decision(root / "models")
    assert saved.fitted.rule == spec["workload_rule"] == doc["serving"]["workload_rule"]
    assert unseen["mode"] == "unseen_data" and unseen["data"]["pairs"] == doc["data"]["pairs"]
    pol = pd.DataFrame(unseen["policies"]).set_index("policy")
    pairs = pd.read_parquet(root / "processed" / "pairs.parquet")
    by_rule = pairs["workload_type"].astype(str).map(lambda w: spec["workload_rule"].get(w) == "lambda").mean()
    assert pol.loc["workload_rule", "lambda_share"] == pytest.approx(by_rule)
    assert unseen["serving"]["trained_sessions"] == sorted(doc["data"]["sessions"])
    assert any(n.startswith("NOT UNSEEN") for n in unseen["notes"]) and not any(
        n.startswith("NOT UNSEEN") for n in doc["notes"])


def test_the_notebook_reuses_decisions_made_with_the_same_params_and_pairs(tiny) -> None:
    params, doc, _, _ = tiny
    again = load_or_decide(params, force=False, log=lambda s: None)
    assert again["created_at"] == doc["created_at"]


def test_unseen_logs_without_requests_or_pairs_are_named(tiny, tmp_path) -> None:
    params, _, _, root = tiny
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no request logs"):
        decide_unseen(params, tmp_path / "empty", tmp_path / "out", log=lambda s: None)
    lam = tmp_path / "lambda_only"
    lam.mkdir()
    src = sorted((root / "raw").glob("*.jsonl"))[0]
    keep = [x for x in src.read_text().splitlines() if '"platform": "lambda"' in x or '"platform":"lambda"' in x]
    assert keep
    (lam / src.name).write_text("\n".join(keep) + "\n")
    with pytest.raises(DecisionInputError, match="no pair of a Lambda and an ECS attempt"):
        decide_unseen(params, lam, tmp_path / "out", log=lambda s: None)


def test_the_summary_ranks_by_the_objective_s_own_score(tiny) -> None:
    _, doc, _, _ = tiny
    s = doc["summary"]
    statics = {"always_lambda", "always_ecs", "workload_rule", "lookup_table"}
    assert set(s["scores"]) == statics | {"objective"}
    assert s["best_static"] == min(statics, key=lambda k: tuple(s["scores"][k]))
    assert s["objective_scores_better_than_best_static"] == (tuple(s["scores"]["objective"])
                                                              < tuple(s["scores"][s["best_static"]]))


def test_bad_inputs_to_decide_are_one_line_and_exit_2(tiny, tmp_path, capsys) -> None:
    from hybridopt.cli import main

    _, _, _, root = tiny

    def run(model, data) -> list[str]:
        assert main(["decide", "--profile", "smoke", "--model", str(model), "--data", str(data),
                     "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), err
        return err[0]

    assert "nowhere" in run(root / "models", tmp_path / "nowhere")
    spec_file = layout.DECISION_SPEC
    for name, damage in (("garbage-spec", lambda d: (d / spec_file).write_bytes(b"\x00\xff garbage")),
                         ("old-spec", lambda d: (d / spec_file).write_text('{"version": 0}')),
                         ("keyless-spec", lambda d: (d / spec_file).write_text('{"version": 1}')),
                         ("truncated-model", lambda d: (d / "lambda_p95.txt").write_text(
                             (d / "lambda_p95.txt").read_text()[:500])),
                         ("missing-model", lambda d: (d / "ecs_fail.txt").unlink())):
        models = tmp_path / name
        shutil.copytree(root / "models", models)
        damage(layout.decision_dir(models))
        line = run(models, root / "raw")
        named = "lambda_p95.txt" if name == "truncated-model" else "ecs_fail.txt" if name == "missing-model" \
            else spec_file
        assert named in line, (name, line)
