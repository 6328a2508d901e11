"""End-to-end training on small synthetic tables: seeded runs are identical, artifacts load through
the serving format alone, evaluation handles categories the model never saw."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hybridopt.data.features import FeatureSpec
from hybridopt.modeling.artifacts import ArtifactError, load_serving, save_artifacts
from hybridopt.modeling.data import feature_matrix
from hybridopt.modeling.evaluate import score_pairs
from hybridopt.modeling.explain import (
    dependence_frame,
    interaction_strengths,
    sample_rows,
    shap_explanation,
)
from hybridopt.modeling.models import positive_proba
from hybridopt.modeling.train import train_all
from hybridopt.params import load_params
from hybridopt.report.shap import payload_dependence_figure, share_table
from hybridopt.testing import synthetic_table

pytestmark = pytest.mark.slow  # end-to-end training runs (about a minute together)

TINY = {"training": {
    "cv_max_rows": 1200, "cv_folds": 3, "explain_rows": 40, "agnostic_explain_rows": 15, "background_rows": 10,
    "search": {m: {"n_iter": 2, "budget_s": 600} for m in ("random_forest", "xgboost", "lightgbm", "mlp")},
}}


@pytest.fixture(scope="module")
def tiny_params():
    return load_params("thesis-2025-11", overrides=TINY)


@pytest.fixture(scope="module")
def tiny_table(tiny_params):
    # four of the five windows, as in the real logs: late_night is never seen in training
    return synthetic_table(tiny_params, 2500, seed=11,
                           time_windows=["early_morning", "morning_peak", "midday", "evening"]).table


@pytest.fixture(scope="module")
def run(tiny_params, tiny_table):
    return train_all(tiny_params, tiny_table, log=lambda s: None)


def _rounded(obj):
    """Floats to 10 significant digits: a threaded forest in the CV folds sums its trees in varying
    order (last-bit differences); everything discrete must match exactly."""
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v) for v in obj]
    if isinstance(obj, float):
        return obj if obj != obj else float(f"{obj:.10g}")
    return obj


def _strip(run) -> dict:
    return {"metrics": run.metrics, "ceiling": run.ceiling, "importance": {k: v["shap_share"] for k, v in run.importance.items()},
            "verdicts": run.verdicts, "selection": run.selection, "decision": run.decision.to_dict(),
            "temporal": run.temporal, "settings": {k: s.best_settings for k, s in run.searches.items()},
            "cv": {k: [c["cv_roc_auc"] for c in s.candidates] for k, s in run.searches.items()}}


@pytest.mark.slow
def test_seeded_runs_give_identical_metrics(run, tiny_params, tiny_table):
    again = train_all(tiny_params, tiny_table, log=lambda s: None)
    assert not any(s.stopped_by_budget for s in run.searches.values())
    assert _rounded(_strip(again)) == _rounded(_strip(run))
    for name in run.metrics:
        for split in ("train", "validation", "test"):
            assert again.metrics[name][split]["confusion"] == run.metrics[name][split]["confusion"]
            assert again.metrics[name][split]["accuracy"] == run.metrics[name][split]["accuracy"]


def test_run_reports_every_model_split_and_baseline(run):
    assert set(run.metrics) == {"random_forest", "xgboost", "lightgbm", "mlp", "ensemble"}
    for m in run.metrics.values():
        assert set(m) == {"train", "validation", "test", "gap"}
        t = m["test"]
        assert 0 <= t["accuracy"] <= 1 and set(t["per_class"]) == {"ecs", "lambda"}
        assert np.array(t["confusion"]).sum() == run.split_sizes["test"]
    assert len(run.ensemble_members) == 3
    assert run.selection["model"] in ("lightgbm", "xgboost")
    assert run.temporal["runs"] and len(run.temporal["rows"]) == 4
    for shares in (v["shap_share"] for v in run.importance.values()):
        assert sum(shares.values()) == pytest.approx(1.0)
    assert {"always_lambda", "always_ecs", "static_rule", "oracle", "model:ensemble"} <= set(run.decision.index)
    assert run.ceiling["test"]["accuracy"] is not None


def test_artifacts_serve_without_pickle_and_evaluate_unseen_categories(run, tiny_params, tiny_table, tmp_path):
    out = save_artifacts(run, tiny_params, tmp_path / "m", table=tiny_table)
    meta = json.loads((out / "model_metadata.json").read_text())
    s = meta["serving"]
    assert s["label"] == "balanced_optimal" and s["threshold"] == 0.5 and s["positive_class"] == "lambda"
    assert (out / s["file"]).is_file() and s["format"] in ("lightgbm_text", "xgboost_json")
    assert json.loads((out / "feature_columns.json").read_text()) == list(tiny_params.features.columns)
    assert set(json.loads((out / "static_rule.json").read_text()).values()) <= {"lambda", "ecs"}
    for key in ("metrics", "verdicts", "ceiling", "chosen_settings", "selection", "params_hash", "git",
                "library_versions", "data"):
        assert key in meta
    from hybridopt.modeling.evaluate import training_overlap
    assert training_overlap(out, tiny_table) == {
        "train_or_validation": run.split_sizes["train"] + run.split_sizes["validation"], "test": run.split_sizes["test"]}
    served = load_serving(out)
    spec = FeatureSpec.from_params(tiny_params)
    X = feature_matrix(tiny_table, spec)
    np.testing.assert_allclose(served.predict_proba(X.to_numpy()), positive_proba(run.models[run.best], X),
                               rtol=1e-6, atol=1e-7)

    # new data: late_night (known to the spec, never in training) and a window nobody defined
    new = synthetic_table(tiny_params, 600, seed=12, time_windows=["late_night", "midday"]).table
    new["time_window"] = new["time_window"].astype(str)
    new.loc[new.index[:50], "time_window"] = "dawn_patrol"
    res = score_pairs(served, new, "balanced_optimal", min_group=5, folds=3)
    assert res["unknown_to_model"] == {"time_window": {"dawn_patrol": 50}}
    assert res["n_scored"] == 550 and "late_night" in res["unseen_in_training"]["time_window"]
    assert res["metrics_unseen"]["n"] == res["unseen_in_training"]["time_window"]["late_night"]
    assert "model" in res["decision"].index

    (out / s["file"]).unlink()
    with pytest.raises(ArtifactError, match="missing"):
        load_serving(out)


def test_shap_interactions_of_best_model(run, tiny_params, tiny_table):
    X = feature_matrix(tiny_table, FeatureSpec.from_params(tiny_params)).iloc[:60]
    model = run.models[run.best]
    expl = shap_explanation(model, X)
    raw = model.predict(X, raw_score=True) if run.best == "lightgbm" else model.predict(X, output_margin=True)
    np.testing.assert_allclose(expl.values.sum(axis=1) + expl.base_values, raw, atol=1e-4)
    top, secs = interaction_strengths(model, X, top=5)
    assert len(top) == 5 and (top["mean_abs_interaction"].diff().dropna() <= 1e-12).all()


@pytest.mark.slow
def test_explanation_sample_shares_and_dependence_figure(run, tiny_params, tiny_table):
    spec = FeatureSpec.from_params(tiny_params)
    X_all = feature_matrix(tiny_table, spec)
    X = sample_rows(X_all, 50, seed=3)
    assert len(X) == 50 and X.index.is_monotonic_increasing and X.equals(sample_rows(X_all, 50, seed=3))
    assert len(sample_rows(X_all.iloc[:10], 50, seed=3)) == 10
    expl = shap_explanation(run.models[run.best], X)
    shares = share_table(expl, run.importance[run.best])
    col = "shap_share (this sample)"
    assert shares[col].sum() == pytest.approx(1.0) and shares[col].is_monotonic_decreasing
    assert set(shares.index) == set(spec.columns)
    dep = dependence_frame(expl, spec)
    fig = payload_dependence_figure(dep)
    assert len(fig.axes) >= 2 and fig.axes[0].get_xscale() == "log"


def test_evaluate_command_scores_a_folder_of_contract_logs(run, tiny_params, tmp_path):
    """`python -m hybridopt evaluate` through the real ingest/audit/cost/pairing/labels, on logs with
    a time window the model never saw in training (late_night)."""
    from hybridopt.cli import main

    from tests.conftest import contract_line, write_jsonl

    model_dir = save_artifacts(run, tiny_params, tmp_path / "model")
    new = synthetic_table(tiny_params, 160, seed=21, time_windows=["late_night", "midday"]).table
    lines = []
    for r in new.itertuples():
        for plat, lat in (("lambda", r.lambda_latency_ms), ("ecs", r.ecs_latency_ms)):
            lines.append(contract_line(
                request_id=f"{r.pair_id}-{plat}", pair_id=r.pair_id, run_id=str(r.run_id), platform=plat,
                workload_type=str(r.workload_type), target_payload_size_kb=float(r.payload_size_kb),
                time_window=str(r.time_window), load_pattern=str(r.load_pattern),
                sent_at=r.sent_at.isoformat(), total_ms=float(lat), first_byte_ms=float(lat) * 0.9,
                execution_time_ms=float(lat) * 0.8, billed_duration_ms=float(np.ceil(lat * 0.8)),
                memory_limit_mb=float(tiny_params.workloads[str(r.workload_type)].lambda_memory_mb)
                if plat == "lambda" else None,
                cold_start=False if plat == "lambda" else None, instance_id=f"{plat}-1",
                actual_payload_size_kb=float(r.payload_size_kb)))
    write_jsonl(tmp_path / "logs" / "run.jsonl", lines)
    rc = main(["evaluate", "--profile", "thesis-2025-11", "--data", str(tmp_path / "logs"),
               "--model", str(model_dir), "--out", str(tmp_path / "out")])
    assert rc == 0
    res = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert res["n_pairs"] == 160 and res["n_scored"] == 160 and res["pairs_direct"] == 160
    assert res["unseen_in_training"]["time_window"]["late_night"] > 0
    assert 0 <= res["metrics"]["accuracy"] <= 1
    assert {r["policy"] for r in res["decision"]} >= {"model", "oracle", "static_rule", "always_lambda"}
