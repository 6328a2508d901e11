"""Splits that never put one pair (group) in two sets.

- `random_split`: train/validation/test by the fractions in params (60/20/20), stratified on the
  label, drawn over GROUPS (a group's label for stratification is its majority label).
- `grouped_folds`: k stratified folds over groups (the CV search).
- `leave_one_run_out`: one fold per run_id, when there are enough runs (the temporal split).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split


class SplitError(ValueError):
    """A split cannot be made from this data."""


def _group_labels(y: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, inv = np.unique(groups, return_inverse=True)
    pos = np.bincount(inv, weights=y, minlength=len(uniq))
    cnt = np.bincount(inv, minlength=len(uniq))
    return uniq, (pos * 2 >= cnt).astype(np.int64)


def _stratify_or_none(labels: np.ndarray, n_pick: float) -> np.ndarray | None:
    counts = np.bincount(labels, minlength=2)
    return labels if counts.min() >= 2 and n_pick >= 2 else None


def random_split(y: np.ndarray, groups: np.ndarray, train: float, validation: float, test: float,
                 seed: int) -> dict[str, np.ndarray]:
    """Row indices of train / validation / test, disjoint by group, stratified by group label."""
    if abs(train + validation + test - 1.0) > 1e-9:
        raise SplitError(f"fractions {train}/{validation}/{test} do not sum to 1")
    uniq, glab = _group_labels(y, groups)
    if len(uniq) < 5:
        raise SplitError(f"{len(uniq)} pair groups are too few for a train/validation/test split")
    rest_g, test_g = train_test_split(uniq, test_size=test, random_state=seed,
                                      stratify=_stratify_or_none(glab, test * len(uniq)))
    rest_lab = glab[np.searchsorted(uniq, rest_g)]
    val_share = validation / (train + validation)
    train_g, val_g = train_test_split(rest_g, test_size=val_share, random_state=seed,
                                      stratify=_stratify_or_none(rest_lab, val_share * len(rest_g)))
    out = {name: np.flatnonzero(np.isin(groups, g)) for name, g in
           (("train", train_g), ("validation", val_g), ("test", test_g))}
    assert_disjoint(groups, out)
    return out


def grouped_folds(y: np.ndarray, groups: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (fit, held-out) index pairs; folds are stratified over groups and partition the rows."""
    uniq, glab = _group_labels(y, groups)
    if len(uniq) < k:
        raise SplitError(f"{len(uniq)} pair groups are too few for {k} folds")
    counts = np.bincount(glab, minlength=2)
    strat = glab if counts.min() >= k else np.zeros_like(glab)
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    row_group = np.searchsorted(uniq, groups)
    folds = []
    for _, held_g in skf.split(np.zeros(len(uniq)), strat):
        held = np.isin(row_group, held_g)
        folds.append((np.flatnonzero(~held), np.flatnonzero(held)))
    return folds


@dataclass(frozen=True)
class RunFolds:
    runs: list[str]                                  # held-out label per fold (run id, or "a+b+c")
    folds: list[tuple[np.ndarray, np.ndarray]]       # (fit rows, held-out rows) per fold
    reason: str | None = None                        # why there are no folds


def leave_one_run_out(run_ids: np.ndarray, groups: np.ndarray, min_runs: int, max_folds: int = 10,
                      order: np.ndarray | None = None) -> RunFolds:
    """One fold per run (runs ordered by `order`, e.g. their first send time). With more than
    max_folds runs, consecutive runs are held out together in max_folds blocks. Groups that span
    two runs are dropped from the fitting side of a fold (a pair is never on both sides)."""
    run_ids = np.asarray(run_ids).astype(str)
    if order is None:
        runs = sorted(set(run_ids.tolist()))
    else:
        first = pd.Series(np.asarray(order)).groupby(run_ids).min()
        runs = [str(r) for r in first.sort_values(kind="stable").index]
    if len(runs) < min_runs:
        return RunFolds(runs, [], f"{len(runs)} run(s) < temporal_min_runs={min_runs}: no temporal split")
    blocks = [list(b) for b in np.array_split(np.array(runs, dtype=object), min(max_folds, len(runs)))]
    labels, folds = [], []
    for block in blocks:
        held = np.isin(run_ids, block)
        held_groups = np.unique(groups[held])
        fit = ~held & ~np.isin(groups, held_groups)
        labels.append("+".join(block))
        folds.append((np.flatnonzero(fit), np.flatnonzero(held)))
    return RunFolds(labels, folds)


def assert_disjoint(groups: np.ndarray, parts: dict[str, np.ndarray]) -> None:
    """Raise SplitError if a group appears in two parts."""
    seen: dict[int, str] = {}
    for name, idx in parts.items():
        for g in np.unique(groups[idx]).tolist():
            other = seen.setdefault(g, name)
            if other != name:
                raise SplitError(f"pair group {g} is in both {other} and {name}")


def sample_groups(y: np.ndarray, groups: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    """Row positions of a seeded, label-stratified sample of whole groups with about max_rows
    rows (all rows when max_rows is 0 or not smaller than the data)."""
    n = len(y)
    if max_rows <= 0 or max_rows >= n:
        return np.arange(n)
    uniq, glab = _group_labels(y, groups)
    keep_share = max_rows / n
    keep_g, _ = train_test_split(uniq, train_size=keep_share, random_state=seed,
                                 stratify=_stratify_or_none(glab, keep_share * len(uniq)))
    return np.flatnonzero(np.isin(groups, keep_g))
