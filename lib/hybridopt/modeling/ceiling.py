"""The noise ceiling: the best accuracy ANY classifier of these features can reach on this data.

Every model is a function of the feature vector, so on rows that share a vector it predicts one
label; the best it can do there is that vector's majority label. The Bayes accuracy is therefore
sum over vectors of P(vector) * max(P(lambda | vector), P(ecs | vector)). It is estimated here:
- held-out (the number shown beside accuracies): each vector's majority label is learned on one
  part of the data and scored on another part; only vectors with at least `min_group` fitting rows
  count, and the share of rows covered is reported. Slightly pessimistic (finite-sample majorities).
- plug-in (in-sample): the same majority scored on the rows it was learned from. Optimistic.
The true ceiling lies between the two when coverage is high. On continuous features (every row its
own vector) coverage drops to 0 and the ceiling is reported as unknown, not guessed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def vector_keys(X: pd.DataFrame) -> np.ndarray:
    """One uint64 key per row, equal for identical feature vectors."""
    return pd.util.hash_pandas_object(X.reset_index(drop=True), index=False).to_numpy(dtype=np.uint64)


def _majorities(keys: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    df = pd.DataFrame({"key": keys, "y": y})
    g = df.groupby("key", sort=False)["y"].agg(["size", "sum"])
    g["majority"] = (g["sum"] * 2 >= g["size"]).astype(np.int64)
    return g


def heldout_ceiling(keys_fit: np.ndarray, y_fit: np.ndarray, keys_eval: np.ndarray, y_eval: np.ndarray,
                    min_group: int) -> dict[str, Any]:
    """Accuracy on the eval rows of the majority label per feature vector learned on the fit rows
    (vectors with >= min_group fit rows only)."""
    maj = _majorities(keys_fit, np.asarray(y_fit))
    maj = maj[maj["size"] >= min_group]
    pred = pd.Series(keys_eval).map(maj["majority"]).to_numpy(dtype=np.float64)
    covered = ~np.isnan(pred)
    n_cov = int(covered.sum())
    acc = float((pred[covered] == np.asarray(y_eval)[covered]).mean()) if n_cov else None
    return {"accuracy": acc, "coverage": n_cov / len(keys_eval) if len(keys_eval) else 0.0,
            "n_eval": int(len(keys_eval)), "n_covered": n_cov, "n_vectors": int(len(maj)),
            "min_group": int(min_group)}


def plugin_ceiling(keys: np.ndarray, y: np.ndarray, min_group: int) -> dict[str, Any]:
    """In-sample majority accuracy over vectors with >= min_group rows (upper estimate)."""
    g = _majorities(keys, np.asarray(y))
    g = g[g["size"] >= min_group]
    n = int(g["size"].sum())
    hits = np.maximum(g["sum"], g["size"] - g["sum"]).sum()
    return {"accuracy": float(hits / n) if n else None, "coverage": n / len(keys) if len(keys) else 0.0,
            "n_vectors": int(len(g))}


def crossfit_ceiling(keys: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]],
                     min_group: int) -> dict[str, Any]:
    """Held-out ceiling with every row scored once by majorities learned on the other folds."""
    y = np.asarray(y)
    hits = 0
    covered = 0
    for fit, held in folds:
        r = heldout_ceiling(keys[fit], y[fit], keys[held], y[held], min_group)
        covered += r["n_covered"]
        hits += round((r["accuracy"] or 0.0) * r["n_covered"])
    plug = plugin_ceiling(keys, y, min_group)
    return {"accuracy": hits / covered if covered else None, "coverage": covered / len(y) if len(y) else 0.0,
            "n": int(len(y)), "plugin_accuracy": plug["accuracy"], "n_vectors": plug["n_vectors"],
            "min_group": int(min_group), "folds": len(folds)}
