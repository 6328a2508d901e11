"""Tables and figures of a training run for the notebooks (04_train, 05_shap). No computation
beyond arranging what `train.TrainingRun` holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from hybridopt.modeling.metrics import CLASS_NAMES
from hybridopt.modeling.models import ENSEMBLE
from hybridopt.modeling.train import TrainingRun


def _ceiling(run: TrainingRun, key: str) -> float:
    v = run.ceiling.get(key, {}).get("accuracy")
    return float("nan") if v is None else float(v)


def metrics_table(run: TrainingRun) -> pd.DataFrame:
    """One row per model and baseline: accuracy by split beside the noise ceiling, gap, ROC-AUC,
    per-class precision/recall/F1 on test, CV score of the chosen settings."""
    rows = []
    for name, m in run.metrics.items():
        t = m["test"]
        cv = run.ensemble_cv["cv_roc_auc"] if name == ENSEMBLE else \
            run.searches[name].candidates[run.searches[name].best_index]["cv_roc_auc"]
        rows.append({"model": name, "train_acc": m["train"]["accuracy"], "val_acc": m["validation"]["accuracy"],
                     "val_ceiling": _ceiling(run, "validation"), "test_acc": t["accuracy"],
                     "test_ceiling": _ceiling(run, "test"), "test_acc_minus_ceiling": t["accuracy"] - _ceiling(run, "test"),
                     "gap_train_test": m["gap"]["train_minus_test"], "cv_roc_auc": cv, "val_roc_auc": m["validation"]["roc_auc"],
                     "test_roc_auc": t["roc_auc"],
                     **{f"{k}_{c}": t["per_class"][c][k] for c in ("lambda", "ecs") for k in ("precision", "recall", "f1")},
                     "test_predicted_lambda": t["predicted_lambda_share"]})
    for name, b in run.baselines.items():
        rows.append({"model": f"baseline: {name}", "test_acc": b["accuracy"], "test_ceiling": _ceiling(run, "test"),
                     "test_acc_minus_ceiling": b["accuracy"] - _ceiling(run, "test"),
                     **{f"{k}_{c}": b["per_class"][c][k] for c in ("lambda", "ecs") for k in ("precision", "recall", "f1")},
                     "test_predicted_lambda": b["predicted_lambda_share"]})
    return pd.DataFrame(rows).set_index("model")


def ceiling_table(run: TrainingRun) -> pd.DataFrame:
    rows = {
        "validation (majorities from train)": run.ceiling["validation"],
        "test (majorities from train+validation)": run.ceiling["test"],
        "all rows, cross-fitted": run.ceiling["crossfit_all"],
    }
    df = pd.DataFrame(rows).T
    keep = [c for c in ("accuracy", "plugin_accuracy", "coverage", "n_vectors", "min_group", "n_eval", "n") if c in df]
    return df[keep]


def verdict_table(run: TrainingRun) -> pd.DataFrame:
    rows = []
    for name, v in run.verdicts.items():
        row: dict[str, Any] = {"model": name, "outcome": v["outcome"]}
        for a in v["accept_criteria"]:
            val = a["value"]
            shown = f"{val:.3f}" if isinstance(val, float) else str(val)
            if a.get("feature"):
                shown += f" ({a['feature']})"
            row[a["criterion"]] = ("PASS " if a["pass"] else "no   ") + shown
        row["fail flags raised"] = ", ".join(f["flag"] for f in v["fail_flags"] if f["raised"]) or "none"
        row["notes"] = " ".join(v["notes"])
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def criteria_table(run: TrainingRun) -> pd.DataFrame:
    """The rules themselves (same for every model)."""
    v = next(iter(run.verdicts.values()))
    return pd.DataFrame([{"kind": "accept", "criterion": a["criterion"], "rule": a["rule"]} for a in v["accept_criteria"]]
                        + [{"kind": "fail flag", "criterion": f["flag"], "rule": f["rule"]} for f in v["fail_flags"]])


def search_table(run: TrainingRun) -> pd.DataFrame:
    rows = []
    for name, s in run.searches.items():
        best = s.candidates[s.best_index]
        rows.append({"model": name, "candidates_tried": len(s.candidates), "best_candidate": s.best_index + 1,
                     "best_is_plan_settings": s.best_index == 0, "cv_roc_auc": best["cv_roc_auc"],
                     "cv_roc_auc_std": best["cv_roc_auc_std"], "cv_accuracy": best["cv_accuracy"],
                     "seconds": round(s.seconds, 1), "budget_s": s.budget_s, "stopped_by_budget": s.stopped_by_budget,
                     "chosen_settings": s.best_settings, "notes": "; ".join(s.notes)})
    return pd.DataFrame(rows).set_index("model")


def importance_table(run: TrainingRun) -> pd.DataFrame:
    """Features x models: mean |SHAP| share (verdict basis), and the best model's own importance."""
    df = pd.DataFrame({f"shap: {m}": v["shap_share"] for m, v in run.importance.items()})
    best = run.importance[run.best]
    df[f"own ({best['own_kind']}): {run.best}"] = pd.Series(best["own_share"])
    return df.sort_values(f"shap: {run.best}", ascending=False)


def temporal_table(run: TrainingRun) -> pd.DataFrame:
    rows = run.temporal.get("rows") or []
    if not rows:
        return pd.DataFrame({"reason": [run.temporal.get("reason")]})
    df = pd.DataFrame(rows).set_index("held_out_run")
    acc = [c for c in df.columns if c.endswith("_accuracy")]
    cols = ["n", "n_fit", "label_lambda_share", "ceiling", "ceiling_coverage", *acc, "unseen_in_fit"]
    return df[cols]


def decision_summary(run: TrainingRun) -> pd.DataFrame:
    cols = ["lambda_share", "total_cost_usd", "cost_per_1k_usd", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
            "latency_mean_ms", "regret_cost_usd", "regret_latency_mean_ms", "regret_latency_p95_ms", "failed"]
    return run.decision[cols]


# ------------------------------------------------------------------------------------------ figures
def confusion_figure(run: TrainingRun) -> plt.Figure:
    names = list(run.metrics)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.0))
    for ax, name in zip(np.atleast_1d(axes), names):
        cm = np.array(run.metrics[name]["test"]["confusion"])
        share = cm / cm.sum(axis=1, keepdims=True).clip(min=1)
        sns.heatmap(share, annot=cm, fmt="d", cmap="Blues", vmin=0, vmax=1, cbar=False, ax=ax,
                    xticklabels=CLASS_NAMES, yticklabels=CLASS_NAMES)
        ax.set(title=name, xlabel="predicted", ylabel="true")
    fig.suptitle("Test confusion matrices (colour: share of the true class)")
    fig.tight_layout()
    return fig


def calibration_figure(run: TrainingRun) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect")
    for name, c in run.calibration.items():
        if c["mean_predicted"]:
            ax.plot(c["mean_predicted"], c["observed"], marker="o", ms=3, label=name)
    ax.set(xlabel="mean predicted P(lambda) (decile bins)", ylabel="observed Lambda share", title="Calibration on test")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def frontier_figure(run: TrainingRun, latency: str = "latency_p95_ms") -> plt.Figure:
    """Cost per 1,000 requests against latency for every policy, with the best model's threshold
    sweep (P(lambda) >= t for t from 0 to 1) as a line."""
    fig, ax = plt.subplots(figsize=(7, 5))
    sw = run.sweep
    ax.plot(sw["cost_per_1k_usd"], sw[latency], color="grey", lw=1, marker=".", ms=4,
            label=f"{run.best}: threshold 0..1")
    d = run.decision
    sns.scatterplot(x=d["cost_per_1k_usd"], y=d[latency], hue=d.index, style=d.index, s=80, ax=ax)
    ax.set(xlabel="cost per 1,000 requests (USD)", ylabel=latency.replace("_", " "),
           title="Cost-latency frontier on the test pairs (lower left is better)")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def importance_figure(run: TrainingRun, meaningful_share: float) -> plt.Figure:
    df = pd.DataFrame({m: v["shap_share"] for m, v in run.importance.items()})
    df = df.loc[df.mean(axis=1).sort_values(ascending=False).index]
    long = df.reset_index(names="feature").melt(id_vars="feature", var_name="model", value_name="share")
    fig, ax = plt.subplots(figsize=(8, 5.5))
    sns.barplot(long, y="feature", x="share", hue="model", ax=ax)
    ax.axvline(meaningful_share, color="grey", ls=":", lw=1)
    ax.set(xlabel="mean |SHAP| share", title="Importance per model (dotted: 'contributes meaningfully')")
    fig.tight_layout()
    return fig


def timings_table(run: TrainingRun) -> pd.DataFrame:
    """Seconds per training step."""
    return pd.Series(run.timings_s, name="seconds").rename_axis("step").to_frame()


def artifact_sizes(model_dir: Path) -> pd.DataFrame:
    """The files of a model directory with their sizes in bytes."""
    return pd.Series({p.name: p.stat().st_size for p in sorted(model_dir.rglob("*")) if p.is_file()},
                     name="bytes", dtype="int64").rename_axis("file").to_frame()
