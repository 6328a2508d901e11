"""One training run, pure: the training table and params in, every number the reports need out.

Steps: X/y/groups -> 60/20/20 grouped split -> CV search per family (on a grouped sample of the
training split, same folds for every family) -> final fit of each family on the training split ->
soft-voting ensemble of the best three by validation ROC-AUC -> metrics on train/validation/test
-> noise ceilings -> SHAP and own importance -> verdicts -> best portable model -> decision quality
on the test pairs -> leave-one-run-out (temporal) with the chosen settings."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from hybridopt.data.features import FeatureSpec
from hybridopt.modeling import ceiling as ceil
from hybridopt.modeling.data import (
    feature_matrix,
    pair_groups,
    require_columns,
    target,
    training_categories,
)
from hybridopt.modeling.decision import (
    apply_static_rule,
    decision_table,
    reference_policies,
    static_rule,
    threshold_sweep,
)
from hybridopt.modeling.importance import model_importance, shap_shares
from hybridopt.modeling.metrics import calibration, classification_metrics
from hybridopt.modeling.models import (
    BASE_MODELS,
    ENSEMBLE,
    TREE_MODELS,
    Classifier,
    FamilyModel,
    make_ensemble,
    make_model,
    positive_proba,
    threads,
)
from hybridopt.modeling.splits import (
    grouped_folds,
    leave_one_run_out,
    random_split,
    sample_groups,
)
from hybridopt.modeling.tuning import SearchResult, ensemble_cv, search_model
from hybridopt.modeling.verdicts import verdict
from hybridopt.params import Params

SPLITS = ("train", "validation", "test")


@dataclass
class TrainingRun:
    target: str
    spec: FeatureSpec
    data_hash: str
    n_rows: int
    split_sizes: dict[str, int]
    split_label_share: dict[str, float]
    searches: dict[str, SearchResult]
    ensemble_members: list[str]
    ensemble_cv: dict[str, float]
    models: dict[str, Classifier]
    metrics: dict[str, dict[str, dict[str, Any]]]          # model -> split -> metrics
    calibration: dict[str, dict[str, list[float]]]          # model -> curve on test
    baselines: dict[str, dict[str, Any]]                    # static rule / majority on test
    ceiling: dict[str, dict[str, Any]]
    importance: dict[str, dict[str, Any]]
    verdicts: dict[str, dict[str, Any]]
    selection: dict[str, Any]
    static_rule: dict[str, str]
    decision: pd.DataFrame
    sweep: pd.DataFrame
    temporal: dict[str, Any]
    categories: dict[str, list[str]]
    test_proba: dict[str, np.ndarray]
    splits: dict[str, np.ndarray]                          # row positions in the table
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def best(self) -> str:
        return str(self.selection["model"])


def table_hash(table: pd.DataFrame) -> str:
    """A content hash of a table (column names, order and values)."""
    h = hashlib.sha256(",".join(map(str, table.columns)).encode())
    h.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def select_best(val_auc: dict[str, float], rule_portable: list[str], tie: float, prefer: str) -> dict[str, Any]:
    """Highest validation ROC-AUC among the portable families; within `tie` of it, `prefer`."""
    portable = {m: val_auc[m] for m in rule_portable if m in val_auc}
    if not portable:
        raise ValueError(f"no portable model among {sorted(val_auc)} (selection.portable={rule_portable})")
    top = max(portable, key=lambda m: portable[m])
    chosen = prefer if prefer in portable and portable[top] - portable[prefer] <= tie else top
    overall = max(val_auc, key=lambda m: val_auc[m])
    return {"model": chosen, "val_roc_auc": portable[chosen], "best_overall": overall,
            "best_overall_val_roc_auc": val_auc[overall],
            "gap_to_best_overall": val_auc[overall] - portable[chosen],
            "candidates_val_roc_auc": dict(val_auc)}


def _fit(name: str, settings: dict[str, Any], X: pd.DataFrame, y: np.ndarray, seed: int, n_jobs: int) -> FamilyModel:
    model = make_model(name, settings, list(X.columns), seed, threads(len(X), n_jobs)).fit(X, y)
    if name == "random_forest":
        # a threaded forest sums its trees' probabilities in whatever order the threads finish,
        # so the last bits of P(lambda) vary run to run; predict single-threaded (also faster per row)
        model.set_params(n_jobs=1)
    return model


def train_all(params: Params, table: pd.DataFrame, log: Callable[[str], None] = print) -> TrainingRun:
    """Run the whole training on one training table."""
    tp = params.training
    spec = FeatureSpec.from_params(params)
    label = params.labels.target
    seed = tp.seed
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    def tick(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - since, 3)
        return now

    require_columns(table, ["pair_id", "run_id", "workload_type"], "training table")
    table = table.reset_index(drop=True)
    X = feature_matrix(table, spec)
    y = target(table, label)
    groups = pair_groups(table)
    parts = random_split(y, groups, params.split.train, params.split.validation, params.split.test, params.split.seed)
    log(f"{len(table):,} pairs, label {label} Lambda share {y.mean():.3f}; split "
        + ", ".join(f"{k} {len(v):,}" for k, v in parts.items()))
    tr, va, te = parts["train"], parts["validation"], parts["test"]
    Xtr, ytr = X.iloc[tr], y[tr]
    t = tick("prepare", t0)

    # --- CV search (same grouped sample and folds for every family)
    cv_rows = sample_groups(ytr, groups[tr], tp.cv_max_rows, seed)
    Xcv, ycv = Xtr.iloc[cv_rows].reset_index(drop=True), ytr[cv_rows]
    folds = grouped_folds(ycv, groups[tr][cv_rows], tp.cv_folds, seed)
    log(f"CV search on {len(cv_rows):,} training rows, {tp.cv_folds} folds")
    searches: dict[str, SearchResult] = {}
    for name in BASE_MODELS:
        searches[name] = search_model(name, tp.search[name], Xcv, ycv, folds, seed=seed, n_jobs=tp.n_jobs,
                                      threshold=tp.threshold, log=log)
    t = tick("cv_search", t)

    # --- final fits on the whole training split
    models: dict[str, Classifier] = {}
    for name in BASE_MODELS:
        ts = time.perf_counter()
        models[name] = _fit(name, searches[name].best_settings, Xtr, ytr, seed, tp.n_jobs)
        timings[f"fit_{name}"] = round(time.perf_counter() - ts, 3)
    val_auc_base = {m: float(classification_metrics(y[va], positive_proba(models[m], X.iloc[va]))["roc_auc"] or 0.0)
                    for m in BASE_MODELS}
    members = sorted(BASE_MODELS, key=lambda m: -val_auc_base[m])[: tp.ensemble_size]
    models[ENSEMBLE] = make_ensemble({m: models[m] for m in members}).fit(Xtr, ytr)
    ens_cv = ensemble_cv(ycv, [searches[m].oof_proba for m in members], folds, tp.threshold)
    log(f"ensemble of {members}: CV ROC-AUC {ens_cv['cv_roc_auc']:.4f}")
    t = tick("final_fits", t)

    # --- metrics
    names = [*BASE_MODELS, ENSEMBLE]
    metrics: dict[str, dict[str, dict[str, Any]]] = {}
    curves: dict[str, dict[str, list[float]]] = {}
    test_proba: dict[str, np.ndarray] = {}
    for name in names:
        metrics[name] = {}
        for split, idx in parts.items():
            proba = positive_proba(models[name], X.iloc[idx])
            metrics[name][split] = classification_metrics(y[idx], proba, tp.threshold)
            if split == "test":
                test_proba[name] = proba
                curves[name] = calibration(y[idx], proba)
        m = metrics[name]
        m["gap"] = {"train_minus_test": m["train"]["accuracy"] - m["test"]["accuracy"],
                    "train_minus_validation": m["train"]["accuracy"] - m["validation"]["accuracy"]}
    rule = static_rule(table.iloc[tr], label)
    majority = int(ytr.mean() >= 0.5)
    baselines = {
        "static_rule": classification_metrics(y[te], apply_static_rule(table.iloc[te], rule).astype(float), tp.threshold),
        "majority_class": classification_metrics(y[te], np.full(len(te), float(majority)), tp.threshold),
    }
    t = tick("metrics", t)

    # --- noise ceilings
    keys = ceil.vector_keys(X)
    fitv = np.concatenate([tr, va])
    ceilings = {
        "validation": ceil.heldout_ceiling(keys[tr], ytr, keys[va], y[va], tp.ceiling_min_group),
        "test": ceil.heldout_ceiling(keys[fitv], y[fitv], keys[te], y[te], tp.ceiling_min_group),
        "crossfit_all": ceil.crossfit_ceiling(keys, y, grouped_folds(y, groups, tp.ceiling_folds, seed),
                                              tp.ceiling_min_group),
        "plugin_test": ceil.plugin_ceiling(keys[te], y[te], tp.ceiling_min_group),
    }
    log(f"noise ceiling: test {_fmt(ceilings['test']['accuracy'])} (coverage {ceilings['test']['coverage']:.2f}), "
        f"cross-fitted {_fmt(ceilings['crossfit_all']['accuracy'])}, plug-in {_fmt(ceilings['crossfit_all']['plugin_accuracy'])}")
    t = tick("ceiling", t)

    # --- importance and verdicts
    rng = np.random.default_rng(seed)
    explain_idx = rng.choice(te, size=min(tp.explain_rows, len(te)), replace=False)  # random order: any prefix is a sample
    bg_idx = np.sort(rng.choice(tr, size=min(tp.background_rows, len(tr)), replace=False))
    perm_idx = np.sort(rng.choice(va, size=min(2000, len(va)), replace=False))
    importance: dict[str, dict[str, Any]] = {}
    verdicts: dict[str, dict[str, Any]] = {}
    for name in names:
        ts = time.perf_counter()
        shares = shap_shares(name, models[name], X.iloc[explain_idx], X.iloc[bg_idx], seed, tp.agnostic_explain_rows)
        kind, own = model_importance(name, models[name], X.iloc[perm_idx], y[perm_idx], seed, n_jobs=1)
        importance[name] = {"shap_share": shares, "own_kind": kind, "own_share": own,
                            "explained_rows": int(len(explain_idx) if name in TREE_MODELS else min(len(explain_idx), tp.agnostic_explain_rows)),
                            "method": "tree_path_dependent" if name in TREE_MODELS else "permutation_probability", "seconds": round(time.perf_counter() - ts, 3)}
        m = metrics[name]
        verdicts[name] = verdict(test_accuracy=m["test"]["accuracy"], train_accuracy=m["train"]["accuracy"],
                                 shares=shares, precision_gap=m["test"]["precision_gap"], criteria=tp.verdict,
                                 ceiling=ceilings["test"]["accuracy"])
    t = tick("importance", t)

    # --- selection
    val_auc = {n: float(metrics[n]["validation"]["roc_auc"] or 0.0) for n in names}
    selection = select_best(val_auc, list(tp.selection.portable), tp.selection.tie_tolerance, tp.selection.prefer)
    selection["rule"] = tp.selection.rule
    log(f"best (rule {tp.selection.rule}): {selection['model']} val ROC-AUC {selection['val_roc_auc']:.4f}; "
        f"best overall {selection['best_overall']} (+{selection['gap_to_best_overall']:.4f})")

    # --- decision quality on the test pairs
    test_pairs = table.iloc[te].reset_index(drop=True)
    policies = reference_policies(test_pairs, label, rule)
    for name in names:
        policies[f"model:{name}"] = test_proba[name] >= tp.threshold
    decision = decision_table(test_pairs, policies)
    sweep = threshold_sweep(test_pairs, test_proba[selection["model"]])
    t = tick("decision", t)

    # --- temporal: leave one run out, chosen settings
    temporal = _temporal(params, table, X, y, groups, searches, members, log)
    tick("temporal", t)
    timings["total"] = round(time.perf_counter() - t0, 3)

    return TrainingRun(
        target=label, spec=spec, data_hash=table_hash(table), n_rows=len(table),
        split_sizes={k: int(len(v)) for k, v in parts.items()},
        split_label_share={k: float(y[v].mean()) for k, v in parts.items()},
        searches=searches, ensemble_members=members, ensemble_cv=ens_cv, models=models, metrics=metrics,
        calibration=curves, baselines=baselines, ceiling=ceilings, importance=importance, verdicts=verdicts,
        selection=selection, static_rule=rule, decision=decision, sweep=sweep, temporal=temporal,
        categories=training_categories(table.iloc[tr]), test_proba=test_proba, splits=parts, timings_s=timings)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _temporal(params: Params, table: pd.DataFrame, X: pd.DataFrame, y: np.ndarray, groups: np.ndarray,
              searches: dict[str, SearchResult], members: list[str], log: Callable[[str], None]) -> dict[str, Any]:
    tp = params.training
    order = pd.to_datetime(table["sent_at"], utc=True).to_numpy() if "sent_at" in table.columns else None
    rf = leave_one_run_out(table["run_id"].astype(str).to_numpy(), groups, tp.temporal_min_runs,
                           tp.temporal_max_folds, order)
    if not rf.folds:
        log(f"temporal split skipped: {rf.reason}")
        return {"runs": rf.runs, "rows": [], "reason": rf.reason}
    keys = ceil.vector_keys(X)
    rows = []
    for run, (fit, held) in zip(rf.runs, rf.folds):
        fit = fit[sample_groups(y[fit], groups[fit], tp.cv_max_rows, tp.seed)]
        unseen = {c: sorted(set(table[c].iloc[held].astype(str)) - set(table[c].iloc[fit].astype(str)))
                  for c in ("workload_type", "time_window", "load_pattern")}
        probas = {}
        for name in BASE_MODELS:
            model = _fit(name, searches[name].best_settings, X.iloc[fit], y[fit], tp.seed, tp.n_jobs)
            probas[name] = positive_proba(model, X.iloc[held])
        probas[ENSEMBLE] = np.mean([probas[m] for m in members], axis=0)
        rule = static_rule(table.iloc[fit], params.labels.target)
        probas["static_rule"] = apply_static_rule(table.iloc[held], rule).astype(float)
        yh = y[held]
        k = min(tp.ceiling_folds, max(2, len(np.unique(groups[held])) // 2))
        c = ceil.crossfit_ceiling(keys[held], yh, grouped_folds(yh, groups[held], k, tp.seed), tp.ceiling_min_group) \
            if len(held) >= 2 * k else {"accuracy": None, "coverage": 0.0}
        row = {"held_out_run": run, "n": int(len(held)), "n_fit": int(len(fit)), "label_lambda_share": float(yh.mean()),
               "ceiling": c["accuracy"], "ceiling_coverage": c["coverage"],
               "unseen_in_fit": {k2: v for k2, v in unseen.items() if v}}
        for name, p in probas.items():
            mm = classification_metrics(yh, p, tp.threshold)
            row[f"{name}_accuracy"] = mm["accuracy"]
            row[f"{name}_roc_auc"] = mm["roc_auc"]
        rows.append(row)
        log(f"  temporal: held out {run} ({len(held):,} pairs): ensemble accuracy {row[f'{ENSEMBLE}_accuracy']:.3f}, "
            f"ceiling {_fmt(row['ceiling'])}" + (f", unseen {row['unseen_in_fit']}" if row["unseen_in_fit"] else ""))
    return {"runs": rf.runs, "rows": rows, "reason": None}
