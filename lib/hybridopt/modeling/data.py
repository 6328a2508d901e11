"""From the training table to what a model sees: X (the declared features, float64, leak-guarded),
y (the target label as 0/1, 1 = Lambda) and the pair groups that keep a pair in one split."""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from hybridopt.data.features import FeatureSpec, assert_leak_free
from hybridopt.data.table import LABEL_COLUMNS
from hybridopt.errors import InputError

#: Feature columns that are category codes (one-hot for the MLP; decoded in rules).
CATEGORY_FEATURES: Final = {
    "workload_type_encoded": "workload_type",
    "time_window_encoded": "time_window",
    "load_pattern_encoded": "load_pattern",
}
#: Context columns whose values a model may never have seen.
CONTEXT_CATEGORIES: Final = ("workload_type", "time_window", "load_pattern")


class TableError(InputError):
    """The training table lacks a column or holds values training cannot use."""


def require_columns(table: pd.DataFrame, columns: list[str] | tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise TableError(f"{what}: missing columns {missing} (have {list(table.columns)})")


def feature_matrix(table: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """The declared features, in order, as float64, checked by the leak guard."""
    require_columns(table, spec.columns, "training table")
    X = table.loc[:, list(spec.columns)].astype(np.float64)
    bad = [c for c in X.columns if not np.isfinite(X[c].to_numpy()).all()]
    if bad:
        raise TableError(f"training table: feature columns {bad} hold NaN or infinite values")
    X = X.reset_index(drop=True)
    assert_leak_free(X, spec)
    return X


def target(table: pd.DataFrame, label: str) -> np.ndarray:
    """The target label as int64 0/1 (1 = Lambda is the better platform)."""
    if label not in LABEL_COLUMNS:
        raise TableError(f"target {label!r} is not one of {LABEL_COLUMNS}")
    require_columns(table, [label], "training table")
    y = pd.to_numeric(table[label], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isin(y, (0.0, 1.0))
    if bad.any():
        raise TableError(f"training table: label {label} has {int(bad.sum())} values that are not 0/1")
    return y.astype(np.int64)


def pair_groups(table: pd.DataFrame) -> np.ndarray:
    """One group id per row such that rows sharing a pair_id, or a Lambda or ECS request (time
    matching may reuse a request), share a group: connected components over those keys."""
    require_columns(table, ["pair_id"], "training table")
    n = len(table)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for col in ("pair_id", "lambda_request_id", "ecs_request_id"):
        if col not in table.columns:
            continue
        values = table[col].astype("string").reset_index(drop=True)
        first: dict[str, int] = {}
        for i, v in enumerate(values):
            if v is pd.NA:
                continue
            j = first.setdefault(v, i)
            if j != i:
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[ri] = rj
    roots = np.fromiter((find(i) for i in range(n)), dtype=np.int64, count=n)
    _, groups = np.unique(roots, return_inverse=True)
    return groups.astype(np.int64)


def training_categories(table: pd.DataFrame) -> dict[str, list[str]]:
    """The context categories present in a table (recorded with the model)."""
    return {c: sorted(table[c].astype("string").dropna().unique().tolist())
            for c in CONTEXT_CATEGORIES if c in table.columns}
