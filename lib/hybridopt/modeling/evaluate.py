"""Score the saved model on another table (or folder of logs).

The features are rebuilt from the pairs' context with the MODEL's saved feature spec (so the codes
are the ones it was trained with). Context values the spec has no code for cannot be encoded: those
pairs are counted per column and value and left out ("unknown_to_model"). Values the spec knows but
the training split never contained (e.g. a time window absent from training) are scored and
reported separately ("unseen_in_training"), since the model extrapolates there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridopt import model_dir as layout
from hybridopt.data.features import FeatureSpec, assert_leak_free
from hybridopt.modeling import ceiling as ceil
from hybridopt.modeling.artifacts import ArtifactError, ServingModel
from hybridopt.modeling.data import (
    CONTEXT_CATEGORIES,
    pair_groups,
    require_columns,
    target,
)
from hybridopt.modeling.decision import decision_table, reference_policies
from hybridopt.modeling.metrics import classification_metrics
from hybridopt.modeling.splits import SplitError, grouped_folds
from hybridopt.params import Params

CODE_MAPS = {"workload_type": "workload_codes", "time_window": "time_window_codes", "load_pattern": "load_pattern_codes"}
CONTEXT = ["workload_type", "payload_size_kb", "sent_at", "time_window", "load_pattern"]


def encodable(pairs: pd.DataFrame, spec: FeatureSpec) -> tuple[np.ndarray, dict[str, dict[str, int]]]:
    """Mask of pairs every context value of which the spec can encode, and the counts of the rest."""
    ok = np.ones(len(pairs), dtype=bool)
    unknown: dict[str, dict[str, int]] = {}
    for col, attr in CODE_MAPS.items():
        s = pairs[col].astype("string").fillna("<null>")
        bad = ~s.isin(list(getattr(spec, attr))).to_numpy()
        if bad.any():
            unknown[col] = {str(k): int(v) for k, v in s[bad].value_counts().items()}
        ok &= ~bad
    return ok, unknown


def score_pairs(model: ServingModel, pairs: pd.DataFrame, label: str, min_group: int = 20,
                folds: int = 5, seed: int = 42) -> dict[str, Any]:
    """Accuracy, ceiling, decision quality and category coverage of the model on labelled pairs."""
    require_columns(pairs, [*CONTEXT, "pair_id", label], "evaluate")
    pairs = pairs[pairs[label].notna()].reset_index(drop=True)
    ok, unknown = encodable(pairs, model.spec)
    scored = pairs[ok].reset_index(drop=True)
    out: dict[str, Any] = {"n_pairs": int(len(pairs)), "n_scored": int(len(scored)),
                           "unknown_to_model": unknown, "label": label,
                           "threshold": model.threshold, "serving_format": model.fmt}
    if not len(scored):
        out["error"] = "no pair could be encoded with the model's feature spec"
        return out
    X = model.spec.frame(scored[CONTEXT])
    assert_leak_free(X, model.spec)
    y = target(scored, label)
    proba = model.predict_proba(X.to_numpy())
    out["metrics"] = classification_metrics(y, proba, model.threshold)

    seen = model.meta.get("data", {}).get("training_categories", {})
    unseen_mask = np.zeros(len(scored), dtype=bool)
    unseen: dict[str, dict[str, int]] = {}
    for col in CONTEXT_CATEGORIES:
        if col not in seen:
            continue
        s = scored[col].astype("string")
        m = ~s.isin(seen[col]).to_numpy()
        if m.any():
            unseen[col] = {str(k): int(v) for k, v in s[m].value_counts().items()}
            unseen_mask |= m
    out["unseen_in_training"] = unseen
    out["n_unseen_in_training"] = int(unseen_mask.sum())
    if unseen_mask.any() and (~unseen_mask).any():
        out["metrics_seen"] = classification_metrics(y[~unseen_mask], proba[~unseen_mask], model.threshold)
        out["metrics_unseen"] = classification_metrics(y[unseen_mask], proba[unseen_mask], model.threshold)

    groups = pair_groups(scored)
    try:
        f = grouped_folds(y, groups, folds, seed)
        out["ceiling"] = ceil.crossfit_ceiling(ceil.vector_keys(X), y, f, min_group)
    except SplitError as exc:
        out["ceiling"] = {"accuracy": None, "reason": str(exc)}
    policies = reference_policies(scored, label, model.static_rule)
    policies["model"] = proba >= model.threshold
    out["decision"] = decision_table(scored, policies)
    return out


def pairs_from_logs(params: Params, data_dir: Path | None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Labelled pairs of a folder of logs through the preprocessing steps (ingest, audit, cost,
    pairing, labels), nothing written. Features are left to `score_pairs`."""
    from hybridopt.data.audit import is_probe
    from hybridopt.data.cost import add_costs
    from hybridopt.data.labels import add_labels
    from hybridopt.data.pairing import pair
    from hybridopt.data.preprocess import ingest_and_audit

    result, audit = ingest_and_audit(params, data_dir, write=False)
    requests = result.requests[~is_probe(result.requests).to_numpy()]  # the network probe is not a pair to score
    pairs, report = pair(add_costs(requests, params), params)
    pairs = add_labels(pairs, params)
    info = {"data_dir": str(result.data_dir), "lines": audit.get("lines"),
            "pairs_direct": int((pairs["pairing"] == "paired").sum()),
            "pairs_matched": int((pairs["pairing"] == "matched").sum())}
    return pairs, info


def training_overlap(model_dir: Path, pairs: pd.DataFrame) -> dict[str, int]:
    """How many of these pairs the model was trained, selected or tested on (by pair_id, from the
    model's analysis/splits.parquet; empty when that file is absent)."""
    path = layout.splits_path(Path(model_dir))
    if not path.is_file() or "pair_id" not in pairs.columns:
        return {}
    try:
        splits = pd.read_parquet(path, columns=["pair_id", "split"])
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise ArtifactError(f"{path}: not a readable splits table ({' '.join(str(exc).split())[:200]}): "
                            "retrain the model (notebook 04_train) or delete the file") from None
    ids = set(pairs["pair_id"].astype(str))
    inside = splits[splits["pair_id"].astype(str).isin(ids)]
    counts = inside["split"].value_counts()
    return {"train_or_validation": int(counts.get("train", 0) + counts.get("validation", 0)),
            "test": int(counts.get("test", 0))}
