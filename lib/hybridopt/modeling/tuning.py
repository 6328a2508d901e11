"""Seeded CV search of one model family within a wall-clock budget.

Candidate 1 is the thesis plan's settings; the rest are drawn by `ParameterSampler` from the
params space (seeded). Each candidate is scored by k-fold grouped, stratified CV ROC-AUC (mean over
folds). The search stops BEFORE a candidate that would overrun the budget (estimated from the
slowest candidate so far); that cut is recorded, since only then can two seeded runs differ.
The best candidate's out-of-fold probabilities are kept: averaged over the ensemble's members they
are exactly the CV of the soft-voting ensemble on the same folds."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import ParameterSampler, cross_val_predict

from hybridopt.modeling.models import make_model, threads
from hybridopt.params import ModelSearch


@dataclass
class SearchResult:
    model: str
    best_settings: dict[str, Any]
    best_index: int
    candidates: list[dict[str, Any]]          # settings, cv_roc_auc (mean, std), cv_accuracy, seconds
    oof_proba: np.ndarray                     # best candidate, rows of the CV sample
    stopped_by_budget: bool
    budget_s: float
    seconds: float
    notes: list[str] = field(default_factory=list)


def candidate_settings(search: ModelSearch, seed: int) -> list[dict[str, Any]]:
    """The plan's settings, then up to n_iter - 1 distinct draws from the space (plan values for
    keys the space does not vary)."""
    out = [dict(search.plan)]
    if search.n_iter > 1 and search.space:
        space = {k: list(v) for k, v in search.space.items()}
        n_grid = int(np.prod([len(v) for v in space.values()]))
        for draw in ParameterSampler(space, n_iter=min(search.n_iter * 4, n_grid), random_state=seed):
            cand = {**search.plan, **draw}
            if cand not in out:
                out.append(cand)
            if len(out) >= search.n_iter:
                break
    return out


def _fold_scores(y: np.ndarray, proba: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]],
                 threshold: float) -> tuple[list[float], list[float]]:
    aucs, accs = [], []
    for _, held in folds:
        yh, ph = y[held], proba[held]
        aucs.append(float(roc_auc_score(yh, ph)) if len(np.unique(yh)) == 2 else float("nan"))
        accs.append(float(accuracy_score(yh, (ph >= threshold).astype(int))))
    return aucs, accs


def search_model(name: str, search: ModelSearch, X: pd.DataFrame, y: np.ndarray,
                 folds: list[tuple[np.ndarray, np.ndarray]], *, seed: int, n_jobs: int,
                 threshold: float = 0.5, clock: Callable[[], float] = time.perf_counter,
                 log: Callable[[str], None] | None = None) -> SearchResult:
    """Cross-validate the candidates of one family on (X, y) with the given folds."""
    t_start = clock()
    cands = candidate_settings(search, seed)
    rows: list[dict[str, Any]] = []
    best_oof: np.ndarray | None = None
    best_i, best_auc = 0, -np.inf
    slowest = 0.0
    stopped = False
    notes: list[str] = []
    for i, settings in enumerate(cands):
        elapsed = clock() - t_start
        if i > 0 and elapsed + slowest > search.budget_s:
            stopped = True
            notes.append(f"budget {search.budget_s:.0f} s reached after {i} of {len(cands)} candidates")
            break
        t0 = clock()
        model = make_model(name, settings, list(X.columns), seed, threads(len(X), n_jobs))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            proba = cross_val_predict(model, X, y, cv=folds, method="predict_proba", n_jobs=1)[:, 1]
        conv = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
        if conv:
            notes.append(f"candidate {i + 1}: {conv} fold(s) stopped at max_iter without converging")
        secs = clock() - t0
        slowest = max(slowest, secs)
        aucs, accs = _fold_scores(y, proba, folds, threshold)
        mean_auc = float(np.nanmean(aucs)) if not np.isnan(aucs).all() else float("nan")
        rows.append({"candidate": i + 1, "settings": settings, "cv_roc_auc": mean_auc,
                     "cv_roc_auc_std": float(np.nanstd(aucs)) if not np.isnan(aucs).all() else float("nan"),
                     "cv_accuracy": float(np.mean(accs)), "seconds": round(secs, 3)})
        if log:
            log(f"  {name} candidate {i + 1}/{len(cands)}: CV ROC-AUC {mean_auc:.4f} "
                f"accuracy {np.mean(accs):.4f} ({secs:.1f} s)")
        score = mean_auc if not np.isnan(mean_auc) else -np.inf
        if best_oof is None or score > best_auc:
            best_i, best_auc, best_oof = i, score, proba
    assert best_oof is not None
    return SearchResult(name, dict(cands[best_i]), best_i, rows, best_oof, stopped, search.budget_s,
                        clock() - t_start, notes)


def ensemble_cv(y: np.ndarray, oofs: list[np.ndarray], folds: list[tuple[np.ndarray, np.ndarray]],
                threshold: float = 0.5) -> dict[str, float]:
    """CV scores of the soft-voting ensemble from its members' out-of-fold probabilities."""
    proba = np.mean(np.vstack(oofs), axis=0)
    aucs, accs = _fold_scores(y, proba, folds, threshold)
    return {"cv_roc_auc": float(np.nanmean(aucs)), "cv_roc_auc_std": float(np.nanstd(aucs)),
            "cv_accuracy": float(np.mean(accs))}
