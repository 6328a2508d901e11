"""What the best tree model learned (05_shap): SHAP values, interaction strengths and if-then rules.

- `shap_frame`: path-dependent TreeSHAP of class 1 on a sample, as a shap.Explanation for plots.
- `interaction_strengths`: mean |SHAP interaction| per feature pair on a sample. The features are
  float category CODES (no pandas `category` dtype, no categorical splits), which is the case shap
  computes correctly for both boosters (stack-check.md 2, item 2); the sum of each row's
  interaction matrix is checked against its SHAP values before anything is reported.
- `surrogate_rules`: a shallow decision tree fitted to the best model's DECISIONS on the readable
  base inputs (workload, payload, hour, time window, weekend, load pattern; the engineered features
  are functions of these), turned into if-then rules with support, the model's and the labels'
  Lambda share in the leaf, and the surrogate's fidelity to the model.
- `dependence_frame`, `sample_rows`: the payload dependence data and the explained sample."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import shap
from sklearn.tree import DecisionTreeClassifier

from hybridopt import model_dir as layout
from hybridopt.data.features import FeatureSpec
from hybridopt.modeling.importance import positive_class_shap, tree_shap_values
from hybridopt.modeling.models import TreeModel

if TYPE_CHECKING:
    from hybridopt.params import Params

#: readable base inputs of the surrogate: feature column -> (display name, code map name or None)
BASE_INPUTS = {
    "workload_type_encoded": ("workload", "workload_codes"),
    "payload_size_kb": ("payload_kb", None),
    "hour_of_day": ("hour", None),
    "time_window_encoded": ("time_window", "time_window_codes"),
    "is_weekend": ("weekend", None),
    "load_pattern_encoded": ("load_pattern", "load_pattern_codes"),
}


class InteractionError(RuntimeError):
    """SHAP interaction values do not add up to the SHAP values (a known shap pitfall)."""


def shap_explanation(model: TreeModel, X: pd.DataFrame) -> shap.Explanation:
    values, base = tree_shap_values(model, X)
    return shap.Explanation(values=values, base_values=np.full(len(X), base), data=X.to_numpy(),
                            feature_names=list(X.columns))


def interaction_values(model: TreeModel, X: pd.DataFrame) -> np.ndarray:
    """(rows, f, f) SHAP interaction values of class 1, checked to sum to the SHAP values."""
    explainer = shap.TreeExplainer(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        inter = np.asarray(explainer.shap_interaction_values(X), dtype=np.float64)
        if inter.ndim == 4:
            inter = inter[..., 1]
        values = positive_class_shap(explainer.shap_values(X))
    err = float(np.abs(inter.sum(axis=2) - values).max())
    if err > 1e-3 * max(1.0, float(np.abs(values).max())):
        raise InteractionError(f"SHAP interaction rows do not sum to SHAP values (max error {err:.3g})")
    return inter


def interaction_strengths(model: TreeModel, X: pd.DataFrame, top: int = 10) -> tuple[pd.DataFrame, float]:
    """Top off-diagonal feature pairs by mean |interaction| (both halves summed), and the seconds."""
    t0 = time.perf_counter()
    inter = interaction_values(model, X)
    secs = time.perf_counter() - t0
    mean_abs = np.abs(inter).mean(axis=0)
    cols = list(X.columns)
    main_total = float(np.trace(mean_abs))
    rows = []
    for i in range(len(cols)):
        for j in range(i + 1, len(cols)):
            rows.append({"feature_a": cols[i], "feature_b": cols[j], "mean_abs_interaction": 2 * mean_abs[i, j]})
    df = pd.DataFrame(rows).sort_values("mean_abs_interaction", ascending=False, ignore_index=True)
    df["share_of_main_effects"] = df["mean_abs_interaction"] / main_total if main_total > 0 else np.nan
    return df.head(top), secs


def _decode(spec: FeatureSpec, col: str, lo: float, hi: float) -> str:
    name, codes_attr = BASE_INPUTS[col]
    if codes_attr:
        codes: dict[str, int] = getattr(spec, codes_attr)
        inside = [k for k, v in sorted(codes.items(), key=lambda kv: kv[1]) if lo < v <= hi]
        return f"{name} in {{{', '.join(inside)}}}"
    if col == "is_weekend":
        return "weekend" if lo >= 0.5 else "weekday"
    if np.isinf(lo):
        return f"{name} <= {hi:g}"
    if np.isinf(hi):
        return f"{name} > {lo:g}"
    return f"{lo:g} < {name} <= {hi:g}"


def surrogate_rules(X: pd.DataFrame, model_decision: np.ndarray, y: np.ndarray, spec: FeatureSpec,
                    max_depth: int, min_leaf_share: float, seed: int) -> tuple[pd.DataFrame, float]:
    """If-then rules of a shallow tree that imitates the model. Returns (rules, fidelity)."""
    cols = [c for c in BASE_INPUTS if c in X.columns]
    Xb = X[cols].to_numpy()
    tree = DecisionTreeClassifier(max_depth=max_depth, min_samples_leaf=max(1, int(min_leaf_share * len(X))),
                                  random_state=seed).fit(Xb, model_decision)
    fidelity = float((tree.predict(Xb) == model_decision).mean())
    t = tree.tree_
    leaf_of = tree.apply(Xb)
    rules = []

    def walk(node: int, bounds: dict[str, tuple[float, float]]) -> None:
        if t.children_left[node] == -1:
            in_leaf = leaf_of == node
            conds = [_decode(spec, c, lo, hi) for c, (lo, hi) in bounds.items()]
            model_share = float(model_decision[in_leaf].mean())
            rules.append({
                "rule": "IF " + (" AND ".join(conds) if conds else "(always)"),
                "then": "lambda" if model_share >= 0.5 else "ecs",
                "support": float(in_leaf.mean()), "n": int(in_leaf.sum()),
                "model_lambda_share": model_share,
                "label_lambda_share": float(y[in_leaf].mean()),
                "label_agreement": float((y[in_leaf] == (model_share >= 0.5)).mean()),
            })
            return
        col = cols[t.feature[node]]
        thr = float(t.threshold[node])
        lo, hi = bounds.get(col, (-np.inf, np.inf))
        walk(t.children_left[node], {**bounds, col: (lo, min(hi, thr))})
        walk(t.children_right[node], {**bounds, col: (max(lo, thr), hi)})

    walk(0, {})
    df = pd.DataFrame(rules).sort_values("support", ascending=False, ignore_index=True)
    return df, fidelity


PAYLOAD_FAMILY = ("payload_size_kb", "payload_squared", "payload_log", "payload_workload_interaction",
                  "payload_hour_interaction", "payload_time_window_interaction", "payload_load_pattern_interaction")


def dependence_frame(expl: shap.Explanation, spec: FeatureSpec) -> pd.DataFrame:
    """Per explained row: workload name, payload, SHAP of payload_size_kb alone and of every feature
    built from the payload together (its effect is spread over seven correlated features)."""
    X = pd.DataFrame(expl.data, columns=expl.feature_names)
    V = pd.DataFrame(expl.values, columns=expl.feature_names)
    names = {v: k for k, v in spec.workload_codes.items()}
    fam = [c for c in PAYLOAD_FAMILY if c in V]
    return pd.DataFrame({"workload": X["workload_type_encoded"].round().astype(int).map(names),
                         "payload_kb": X["payload_size_kb"],
                         "shap_payload_size_kb": V["payload_size_kb"] if "payload_size_kb" in V else np.nan,
                         "shap_payload_all": V[fam].sum(axis=1)})


def sample_rows(X: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """A seeded sample of at most n rows, in their original order."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(X), size=min(n, len(X)), replace=False))
    return X.iloc[idx]


def load_for_explanation(params: Params, model_dir: str | Path | None = None) -> dict[str, Any]:
    """The served model and the test rows it was evaluated on (from models/<profile>/ and the
    training table). Keys: model (ServingModel), booster, X_test, y_test, test (table rows)."""
    from hybridopt import paths
    from hybridopt.modeling.artifacts import ArtifactError, load_serving
    from hybridopt.modeling.data import feature_matrix, target

    d = Path(model_dir) if model_dir is not None else params.path("models_dir")
    served = load_serving(d)
    split_path = layout.splits_path(d)
    if not split_path.is_file():
        raise ArtifactError(f"{split_path}: missing (rerun 04_train)")
    table_path = paths.processed(params).training_table
    if not table_path.is_file():
        raise ArtifactError(f"{table_path}: missing: run stage 03 first (notebook 03_preprocess or "
                            f"`python -m hybridopt preprocess --profile {params.profile}`)")
    table = pd.read_parquet(table_path)
    from hybridopt.modeling.train import table_hash
    if table_hash(table) != served.meta["data"]["table_hash"]:
        raise ArtifactError(f"{paths.processed(params).training_table} is not the table {d} was trained on "
                            "(hash differs): rerun 04_train")
    splits = pd.read_parquet(split_path)
    test_ids = set(splits.loc[splits["split"] == "test", "pair_id"].astype(str))
    test = table[table["pair_id"].astype(str).isin(test_ids)].reset_index(drop=True)
    if len(test) != len(test_ids):
        raise ArtifactError(f"{split_path}: {len(test_ids)} test pairs, {len(test)} found in the training table "
                            "(the table changed since training: rerun 04_train)")
    X_test = feature_matrix(test, served.spec)
    decision = (served.predict_proba(X_test.to_numpy()) >= served.threshold).astype(int)
    return {"model": served, "booster": served.booster, "X_test": X_test,
            "y_test": target(test, served.meta["serving"]["label"]), "test": test, "decision": decision}
