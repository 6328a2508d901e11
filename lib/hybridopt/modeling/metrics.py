"""Classification metrics of one model on one split. Class 1 = Lambda, class 0 = ECS.
ROC-AUC of a binary problem is the same number for both classes (ranking by P(ECS) is the reverse
ranking), so it is reported once."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)

CLASS_NAMES = ("ecs", "lambda")


def classification_metrics(y: np.ndarray, proba: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """accuracy, per-class precision/recall/F1/support, ROC-AUC, log-loss, Brier, confusion matrix
    (rows = true ecs/lambda, columns = predicted ecs/lambda), positive share."""
    y = np.asarray(y, dtype=np.int64)
    proba = np.clip(np.asarray(proba, dtype=np.float64), 0.0, 1.0)
    pred = (proba >= threshold).astype(np.int64)
    prec, rec, f1, sup = precision_recall_fscore_support(y, pred, labels=[0, 1], zero_division=0)
    both = len(np.unique(y)) == 2
    out: dict[str, Any] = {
        "n": int(len(y)),
        "accuracy": float(accuracy_score(y, pred)),
        "roc_auc": float(roc_auc_score(y, proba)) if both else None,
        "log_loss": float(log_loss(y, proba, labels=[0, 1])) if len(y) else None,
        "brier": float(brier_score_loss(y, proba, pos_label=1)) if len(y) else None,
        "label_lambda_share": float(y.mean()) if len(y) else None,
        "predicted_lambda_share": float(pred.mean()) if len(y) else None,
        "per_class": {name: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                             "support": int(sup[i])} for i, name in enumerate(CLASS_NAMES)},
        "confusion": confusion_matrix(y, pred, labels=[0, 1]).tolist(),
    }
    out["precision_gap"] = abs(out["per_class"]["lambda"]["precision"] - out["per_class"]["ecs"]["precision"])
    out["macro_f1"] = float(np.mean(f1))
    return out


def calibration(y: np.ndarray, proba: np.ndarray, n_bins: int = 10) -> dict[str, list[float]]:
    """Reliability curve with quantile bins: mean predicted P(lambda) vs observed Lambda share."""
    if len(np.unique(y)) < 2:
        return {"mean_predicted": [], "observed": []}
    obs, pred = calibration_curve(y, proba, n_bins=n_bins, strategy="quantile")
    return {"mean_predicted": pred.tolist(), "observed": obs.tolist()}
