"""The five model families. Every model takes the float64 feature DataFrame (category features as
integer codes: never pandas `str`) and exposes predict_proba; column 1 is P(Lambda is better).

Fixed settings that are not searched: seeds, thread counts, XGBoost `hist`, LightGBM deterministic
row-wise training and `gain` importance, the MLP's preprocessing (one-hot of the three category
codes, standard scaling of everything else; unknown codes encode as all-zero, not an error)."""

from __future__ import annotations

from typing import Any, Final, Mapping, TypeAlias

import lightgbm as lgb
import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, VotingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from hybridopt import model_dir
from hybridopt.modeling.data import CATEGORY_FEATURES

BASE_MODELS: Final = ("random_forest", "xgboost", "lightgbm", "mlp")
ENSEMBLE: Final = "ensemble"
ALL_MODELS: Final = (*BASE_MODELS, ENSEMBLE)
TREE_MODELS: Final = ("random_forest", "xgboost", "lightgbm")
#: A fitted tree model of one family (what TreeSHAP explains).
TreeModel: TypeAlias = RandomForestClassifier | xgb.XGBClassifier | lgb.LGBMClassifier
#: A model of one of the families (`make_model`): the tree models and the MLP pipeline.
FamilyModel: TypeAlias = TreeModel | Pipeline
#: Any model training fits: a family's, or the soft-voting ensemble of them (`make_ensemble`).
Classifier: TypeAlias = FamilyModel | VotingClassifier
SERVING_FORMAT: Final = {"lightgbm": ("lightgbm_text", model_dir.SERVING_FILES["lightgbm_text"]),
                         "xgboost": ("xgboost_json", model_dir.SERVING_FILES["xgboost_json"])}


def _clean(settings: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(settings)
    if "hidden_layer_sizes" in out and isinstance(out["hidden_layer_sizes"], list):
        out["hidden_layer_sizes"] = tuple(out["hidden_layer_sizes"])
    return out


#: Fits on fewer rows run on one thread: starting threads costs more than they save there (measured
#: here, 2 cores: LightGBM on 1,320 rows 0.54 s on one thread against 4.1 s on two, XGBoost 0.24 s
#: against 1.3 s).
SINGLE_THREAD_ROWS: Final = 20_000


def threads(n_rows: int, n_jobs: int) -> int:
    """Threads for one fit on `n_rows` rows, at most `n_jobs` (params training.n_jobs)."""
    return 1 if n_rows < SINGLE_THREAD_ROWS else max(1, n_jobs)


def make_model(name: str, settings: Mapping[str, Any], columns: list[str], seed: int, n_jobs: int) -> FamilyModel:
    """An unfitted model of family `name` with the searched `settings` and the fixed ones."""
    s = _clean(settings)
    if name == "random_forest":
        return RandomForestClassifier(**s, random_state=seed, n_jobs=n_jobs)
    if name == "xgboost":
        return xgb.XGBClassifier(**s, tree_method="hist", random_state=seed, n_jobs=n_jobs,
                                 eval_metric="logloss")
    if name == "lightgbm":
        return lgb.LGBMClassifier(**s, random_state=seed, n_jobs=n_jobs, verbose=-1, deterministic=True,
                                  force_row_wise=True, importance_type="gain")
    if name == "mlp":
        cats = [c for c in columns if c in CATEGORY_FEATURES]
        nums = [c for c in columns if c not in CATEGORY_FEATURES]
        prep = ColumnTransformer([
            ("categories", OneHotEncoder(handle_unknown="ignore", sparse_output=False), cats),
            ("scaled", StandardScaler(), nums),
        ])
        return Pipeline([("prep", prep), ("mlp", MLPClassifier(**s, random_state=seed))])
    raise ValueError(f"unknown model family {name!r} (expected one of {BASE_MODELS})")


def make_ensemble(members: Mapping[str, FamilyModel]) -> VotingClassifier:
    """Soft voting over already-fitted members (frozen: fitting the ensemble does not refit them).
    Its probability is the mean of the members' probabilities."""
    return VotingClassifier([(n, FrozenEstimator(m)) for n, m in members.items()], voting="soft")


def positive_proba(model: Classifier, X: pd.DataFrame | np.ndarray) -> np.ndarray:
    """P(class 1 = Lambda) for every row."""
    proba = model.predict_proba(X)
    return np.asarray(proba, dtype=np.float64)[:, 1]


def own_importance(name: str, model: Classifier) -> dict[str, float] | None:
    """The model's built-in importance as shares summing to 1 (None when it has none)."""
    if name not in TREE_MODELS:
        return None
    imp = np.asarray(model.feature_importances_, dtype=np.float64)
    total = imp.sum()
    cols = list(model.feature_names_in_)
    return {c: float(v / total) if total > 0 else 0.0 for c, v in zip(cols, imp)}
