"""Synthetic training tables with the training table's schema (table.PAIR_COLUMNS + the feature
columns) and a KNOWN label probability per context, for tests and the training benchmark.

The label is drawn first: P(lambda better | context) = logistic(signal * score(context)), where the
score depends on workload, payload, time window, load pattern and weekend. The two outcomes are then
drawn to agree with it (label 1: Lambda >= 15 % faster and cheaper; label 0: Lambda slower or
dearer), so decision-quality numbers are consistent with the labels. `bayes_accuracy` is the
expected accuracy of the best possible classifier on the drawn contexts: mean of max(p, 1 - p).
Nothing here resembles the real platforms; it only has the right shape."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from ..features import FeatureSpec
from ..params import Params
from ..table import PAIR_COLUMNS


@dataclass(frozen=True)
class SyntheticTable:
    table: pd.DataFrame
    p_lambda: np.ndarray          # the true P(label = 1) of every row
    bayes_accuracy: float         # mean of max(p, 1 - p)


def synthetic_table(params: Params, n_pairs: int, seed: int, *, signal: float = 1.0,
                    time_windows: list[str] | None = None, days: int = 14,
                    fail_share: float = 0.01) -> SyntheticTable:
    """A training table of n_pairs synthetic pairs, one run per time window (as in the plan)."""
    rng = np.random.default_rng(seed)
    spec = FeatureSpec.from_params(params)
    windows = time_windows or list(params.time_windows)
    workloads = list(params.workloads)
    w = rng.integers(0, len(workloads), n_pairs)
    workload = np.array(workloads, dtype=object)[w]
    payload = np.array([rng.choice(params.workloads[x].payload_sizes_kb) for x in workload], dtype=float)
    tw_idx = rng.integers(0, len(windows), n_pairs)
    tw = np.array(windows, dtype=object)[tw_idx]
    lp = np.array([params.time_windows[x].load_pattern for x in tw], dtype=object)
    day = rng.integers(0, days, n_pairs)
    start = datetime(2025, 11, 3, tzinfo=params.tz)  # a Monday
    sent = []
    for d, t in zip(day, tw):
        win = params.time_windows[t]
        local = start + timedelta(days=int(d), hours=win.start_hour,
                                  seconds=float(rng.uniform(0, 3600 * max(1, win.end_hour - win.start_hour))))
        sent.append(local.astimezone(timezone.utc))
    sent_at = pd.to_datetime(pd.Series(sent), utc=True)
    weekend = (sent_at.dt.tz_convert(params.timezone).dt.day_of_week >= 5).to_numpy()

    # the true label probability
    size_rank = np.array([params.workloads[x].payload_sizes_kb.index(p) / max(1, len(params.workloads[x].payload_sizes_kb) - 1)
                          for x, p in zip(workload, payload)])
    tw_code = np.array([params.time_windows[t].code for t in tw], dtype=float)
    lp_code = np.array([params.load_patterns[x].code for x in lp], dtype=float)
    w_effect = np.array([0.8, 0.3, -0.2, -0.6, 0.0, 0.0, 0.0, 0.0])[w]
    score = (w_effect + (1.2 - 0.6 * w) * (size_rank - 0.5) + 0.25 * np.cos(tw_code) - 0.2 * (lp_code == 2)
             + 0.3 * weekend * (w == 1))
    p = 1.0 / (1.0 + np.exp(-signal * 2.0 * score))
    y = (rng.random(n_pairs) < p).astype(np.int64)

    # outcomes that agree with the label
    ecs_lat = np.exp(rng.normal(np.log(50 + 400 * w + 0.05 * payload), 0.3))
    ecs_cost = 2e-6 * (1 + w) * rng.uniform(0.8, 1.2, n_pairs)
    better = rng.uniform(0.3, 0.85, (2, n_pairs))
    which = rng.random(n_pairs) < 0.5
    worse_lat = np.where(which, rng.uniform(1.0, 2.5, n_pairs), rng.uniform(0.4, 1.5, n_pairs))
    worse_cost = np.where(which, rng.uniform(0.4, 1.5, n_pairs), rng.uniform(1.0, 2.0, n_pairs))
    lam_lat = ecs_lat * np.where(y == 1, better[0], worse_lat)
    lam_cost = ecs_cost * np.where(y == 1, better[1], worse_cost)
    lam_ok = rng.random(n_pairs) >= fail_share
    ecs_ok = rng.random(n_pairs) >= fail_share

    ids = [f"syn-{seed}-{i:07d}" for i in range(n_pairs)]
    table = pd.DataFrame({
        "pair_id": ids, "pairing": "paired", "gap_s": 0.0,
        "run_id": [f"run-{t}" for t in tw],
        "source": "simulator", "experiment": params.experiment,
        "workload_type": workload, "payload_size_kb": payload, "time_window": tw, "load_pattern": lp,
        "phase": "steady", "scheduled_rate_rps": 5.0, "sent_at": sent_at,
        "lambda_request_id": [i + "-l" for i in ids], "ecs_request_id": [i + "-e" for i in ids],
        "lambda_ok": lam_ok, "ecs_ok": ecs_ok,
        "lambda_error": np.where(lam_ok, None, "http_error"), "ecs_error": np.where(ecs_ok, None, "http_error"),
        "lambda_latency_ms": lam_lat, "ecs_latency_ms": ecs_lat,
        "lambda_cost_usd": lam_cost, "ecs_cost_usd": ecs_cost,
        "lambda_cold_start": rng.random(n_pairs) < 0.02,
        "latency_optimal": (lam_lat < ecs_lat).astype(np.int64),
        "cost_optimal": (lam_cost < ecs_cost).astype(np.int64),
        "balanced_optimal": y,
    })
    for c in ("workload_type", "time_window", "load_pattern", "pairing", "source", "experiment", "phase"):
        table[c] = table[c].astype("category")
    feats = spec.frame(table[["workload_type", "payload_size_kb", "sent_at", "time_window", "load_pattern"]])
    # payload_size_kb is both a pair column and a feature (the same value): keep one
    feats = feats.drop(columns=[c for c in feats.columns if c in PAIR_COLUMNS])
    table = pd.concat([table[list(PAIR_COLUMNS)], feats], axis=1)
    return SyntheticTable(table, p, float(np.maximum(p, 1 - p).mean()))
