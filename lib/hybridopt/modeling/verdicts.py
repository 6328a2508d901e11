"""The thesis plan's success criteria, applied to one model.

Accept (all must hold): test accuracy in [accuracy_min, accuracy_max]; train - test accuracy gap
< gap_max; top feature's |SHAP| share < top_feature_max; at least min_meaningful_features features
with a share >= meaningful_share ("contributing meaningfully"); |precision(lambda) -
precision(ecs)| < precision_gap_max.
Fail flags (any one fails the model): accuracy > fail_accuracy_above (a lookup table), accuracy <
fail_accuracy_below, gap > fail_gap_above, a feature's share > fail_top_feature_above.
Outcome: "accept", "fail", or "neither" (not all accept criteria hold, no fail flag)."""

from __future__ import annotations

from typing import Any

from hybridopt.params import Verdict


def verdict(*, test_accuracy: float, train_accuracy: float, shares: dict[str, float], precision_gap: float,
            criteria: Verdict, ceiling: float | None = None) -> dict[str, Any]:
    """The verdict table of one model (criteria rows, fail flags, outcome, notes)."""
    c = criteria
    gap = train_accuracy - test_accuracy
    top_name = max(shares, key=lambda k: shares[k]) if shares else None
    top = shares[top_name] if top_name else float("nan")
    meaningful = sorted((k for k, v in shares.items() if v >= c.meaningful_share), key=lambda k: -shares[k])
    accept = [
        {"criterion": "test accuracy in range", "value": test_accuracy,
         "rule": f"{c.accuracy_min:.2f} <= accuracy <= {c.accuracy_max:.2f}",
         "pass": c.accuracy_min <= test_accuracy <= c.accuracy_max},
        {"criterion": "train/test gap", "value": gap, "rule": f"gap < {c.gap_max:.2f}", "pass": gap < c.gap_max},
        {"criterion": "top feature share", "value": top, "feature": top_name,
         "rule": f"top |SHAP| share < {c.top_feature_max:.2f}", "pass": top < c.top_feature_max},
        {"criterion": "features contributing meaningfully", "value": len(meaningful), "features": meaningful,
         "rule": f">= {c.min_meaningful_features} features with share >= {c.meaningful_share:.2f}",
         "pass": len(meaningful) >= c.min_meaningful_features},
        {"criterion": "precision gap between classes", "value": precision_gap,
         "rule": f"|precision(lambda) - precision(ecs)| < {c.precision_gap_max:.2f}",
         "pass": precision_gap < c.precision_gap_max},
    ]
    flags = [
        {"flag": "accuracy above (lookup table)", "value": test_accuracy,
         "rule": f"accuracy > {c.fail_accuracy_above:.2f}", "raised": test_accuracy > c.fail_accuracy_above},
        {"flag": "accuracy below", "value": test_accuracy,
         "rule": f"accuracy < {c.fail_accuracy_below:.2f}", "raised": test_accuracy < c.fail_accuracy_below},
        {"flag": "overfitting gap", "value": gap, "rule": f"gap > {c.fail_gap_above:.2f}",
         "raised": gap > c.fail_gap_above},
        {"flag": "one feature dominates", "value": top, "feature": top_name,
         "rule": f"a feature's share > {c.fail_top_feature_above:.2f}", "raised": top > c.fail_top_feature_above},
    ]
    if any(f["raised"] for f in flags):
        outcome = "fail"
    elif all(a["pass"] for a in accept):
        outcome = "accept"
    else:
        outcome = "neither"
    notes = []
    if ceiling is not None:
        if ceiling < c.accuracy_min:
            notes.append(f"the noise ceiling {ceiling:.3f} is below the accept range's floor "
                         f"{c.accuracy_min:.2f}: no model of these features can be accepted on this data")
        if ceiling < c.fail_accuracy_below:
            notes.append(f"the noise ceiling {ceiling:.3f} is below the fail floor {c.fail_accuracy_below:.2f}: "
                         "'accuracy below' says more about the labels than about the model")
        if test_accuracy > ceiling + 0.02:
            notes.append(f"test accuracy {test_accuracy:.3f} exceeds the estimated ceiling {ceiling:.3f} by "
                         "more than 2 points: check the ceiling's coverage")
    return {"outcome": outcome, "accept_criteria": accept, "fail_flags": flags, "train_test_gap": gap,
            "top_feature": top_name, "top_share": top, "meaningful_features": meaningful, "notes": notes}
