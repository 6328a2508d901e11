"""Feature importance as shares that sum to 1.

- Verdict importance: mean |SHAP| per feature divided by the sum over features, on a seeded sample
  of test rows. Tree models: TreeExplainer (path-dependent TreeSHAP; log-odds for the boosters,
  probability for the forest) on `explain_rows`. MLP and ensemble: shap's PermutationExplainer on
  P(lambda) (3 antithetic permutations, independent masker over a background sample of training
  rows) on the first `agnostic_explain_rows` of those rows, as it is ~100x slower.
  Shares are scale-free, so they compare across models.
- Own importance: the forest's impurity decrease, XGBoost's and LightGBM's gain; for the MLP and
  the ensemble (which have none) the permutation importance (ROC-AUC drop, negative drops as 0).
Engineered features that are transforms of one input (payload, payload_squared, payload_log) share
that input's importance between them in whatever way the trees happened to split."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import shap
from sklearn.inspection import permutation_importance

from hybridopt.modeling.models import TREE_MODELS, Classifier, TreeModel, own_importance, positive_proba


def _shares(values: np.ndarray, columns: list[str]) -> dict[str, float]:
    mean_abs = np.abs(values).mean(axis=0)
    total = mean_abs.sum()
    return {c: float(v / total) if total > 0 else 0.0 for c, v in zip(columns, mean_abs)}


def positive_class_shap(values: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """Normalise shap's output shapes to (rows, features) for class 1."""
    if isinstance(values, list):
        values = values[1] if len(values) == 2 else values[0]
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 3:
        arr = arr[:, :, 1] if arr.shape[2] == 2 else arr[:, :, 0]
    return arr


def tree_shap_values(model: TreeModel, X: pd.DataFrame) -> tuple[np.ndarray, float]:
    """(rows, features) SHAP values of class 1 and the base value, path-dependent TreeSHAP."""
    explainer = shap.TreeExplainer(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        values = positive_class_shap(explainer.shap_values(X))
    base = np.ravel(explainer.expected_value)
    return values, float(base[1] if len(base) == 2 else base[0])


def permutation_shap_values(model: Classifier, X: pd.DataFrame, background: pd.DataFrame, seed: int) -> np.ndarray:
    """(rows, features) SHAP values of P(lambda) by shap's PermutationExplainer."""
    cols = list(X.columns)

    def f(a: np.ndarray) -> np.ndarray:
        return positive_proba(model, pd.DataFrame(a, columns=cols))

    masker = shap.maskers.Independent(background.to_numpy(), max_samples=len(background))
    explainer = shap.PermutationExplainer(f, masker, seed=seed)
    expl = explainer(X.to_numpy(), max_evals=3 * (2 * len(cols) + 1), silent=True)
    return np.asarray(expl.values, dtype=np.float64)


def shap_shares(name: str, model: Classifier, X_explain: pd.DataFrame, background: pd.DataFrame,
                seed: int, agnostic_rows: int | None = None) -> dict[str, float]:
    """Mean |SHAP| share per feature (the verdict importance). Model-agnostic explanations use the
    first `agnostic_rows` rows of X_explain."""
    if name in TREE_MODELS:
        values, _ = tree_shap_values(model, X_explain)
    else:
        rows = X_explain if agnostic_rows is None else X_explain.iloc[:agnostic_rows]
        values = permutation_shap_values(model, rows, background, seed)
    return _shares(values, list(X_explain.columns))


def model_importance(name: str, model: Classifier, X_val: pd.DataFrame, y_val: np.ndarray, seed: int,
                     n_jobs: int = 1) -> tuple[str, dict[str, float]]:
    """(kind, shares): built-in importance for tree models, else permutation importance."""
    own = own_importance(name, model)
    if own is not None:
        kind = {"random_forest": "impurity", "xgboost": "gain", "lightgbm": "gain"}[name]
        return kind, own
    r = permutation_importance(model, X_val, y_val, scoring="roc_auc", n_repeats=3, random_state=seed,
                               n_jobs=n_jobs)
    drops = np.clip(r.importances_mean, 0.0, None)
    total = drops.sum()
    return "permutation_roc_auc", {c: float(v / total) if total > 0 else 0.0
                                   for c, v in zip(X_val.columns, drops)}


def top_feature(shares: dict[str, float]) -> tuple[str, float]:
    name = max(shares, key=lambda k: shares[k])
    return name, shares[name]
