"""A small model directory trained on SYNTHETIC contexts, in exactly the training step's layout
(model.txt | model.json, feature_columns.json, feature_spec.json, static_rule.json,
model_metadata.json). For the router's tests and for benchmarking before a real model exists;
every report that uses one says so (model_metadata.json `synthetic: true`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ..features import FeatureSpec


def synthetic_contexts(spec: FeatureSpec, n: int, seed: int) -> pd.DataFrame:
    """Random request contexts over the spec's categories, with a known P(lambda is optimal)."""
    rng = np.random.default_rng(seed)
    workloads = sorted(spec.workload_codes)
    windows = sorted(spec.time_window_codes)
    patterns = sorted(spec.load_pattern_codes)
    w = rng.choice(workloads, n)
    tw = rng.choice(windows, n)
    hours = np.array([rng.integers(*spec.time_window_hours[x]) for x in tw])
    day = pd.Timestamp("2025-11-17", tz=spec.timezone) + pd.to_timedelta(rng.integers(0, 7, n), unit="D")
    sent_at = (day + pd.to_timedelta(hours, unit="h") + pd.to_timedelta(rng.integers(0, 3600, n), unit="s"))
    payload = np.exp(rng.uniform(np.log(0.5), np.log(10240), n))
    lp = rng.choice(patterns, n)
    logit = (2.5 - 0.55 * np.log1p(payload) - 0.4 * np.array([spec.load_pattern_codes[x] for x in lp])
             + 0.5 * (np.array([spec.time_window_codes[x] for x in tw]) % 2))
    p = 1.0 / (1.0 + np.exp(-logit))
    label = (rng.random(n) < p).astype(int)
    return pd.DataFrame({"workload_type": w, "payload_size_kb": payload, "sent_at": sent_at.tz_convert("UTC"),
                         "time_window": tw, "load_pattern": lp, "label": label, "p_true": p})


def write_synthetic_model_dir(spec: FeatureSpec, out_dir: str | Path,
                              fmt: Literal["lightgbm", "xgboost"] = "lightgbm", n_rows: int = 4000,
                              n_trees: int = 100, seed: int = 0) -> Path:
    """Train a small booster on synthetic contexts and write the serving layout into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = synthetic_contexts(spec, n_rows, seed)
    X = spec.frame(ctx)
    y = ctx["label"].to_numpy()
    if fmt == "lightgbm":
        import lightgbm as lgb

        booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 15, "seed": seed,
                             "learning_rate": 0.1, "num_threads": 1}, lgb.Dataset(X, y), n_trees)
        booster.save_model(str(out / "model.txt"))
        serving = {"format": "lightgbm_text", "file": "model.txt"}
    else:
        import xgboost as xgb

        booster = xgb.train({"objective": "binary:logistic", "max_depth": 4, "eta": 0.1, "seed": seed,
                             "nthread": 1}, xgb.DMatrix(X, y, feature_names=list(X.columns)), n_trees)
        booster.save_model(str(out / "model.json"))
        serving = {"format": "xgboost_json", "file": "model.json"}
    share = ctx.groupby("workload_type")["label"].mean()
    static_rule = {w: ("lambda" if share.get(w, 0.0) >= 0.5 else "ecs") for w in spec.workload_codes}
    (out / "feature_columns.json").write_text(json.dumps(spec.columns))
    (out / "feature_spec.json").write_text(spec.to_json())
    (out / "static_rule.json").write_text(json.dumps(static_rule, indent=2, sort_keys=True))
    meta = {"model_version": f"synthetic-{fmt}-seed{seed}", "synthetic": True, "family": fmt,
            "serving": {**serving, "label": "synthetic_optimal", "threshold": 0.5, "positive_class": "lambda"}}
    (out / "model_metadata.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    return out
