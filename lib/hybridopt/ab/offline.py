"""Offline policy evaluation on held-out paired data: what each routing policy would have cost and
how fast it would have been, from each pair's two measured outcomes, with paired bootstrap CIs
(all policies are evaluated on the same resampled pairs, so their differences are paired too).

Policies: always-Lambda, always-ECS, the static per-workload rule, the oracle (the training label),
the single-objective oracles (cheaper / faster of the pair), the served model through the router's
own code path (FeatureSpec.row + the pure-Python trees of the Lambda package), and any further
models given as P(lambda) arrays. Regret is per request against the oracle: cost regret =
mean(cost chosen - cost the oracle chose), likewise latency. Point estimates use the training
step's `modeling.decision` definitions (the same numbers as 04_train's decision table).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np
import pandas as pd

from hybridopt import model_dir as layout
from hybridopt.modeling.decision import reference_policies

if TYPE_CHECKING:
    from hybridopt.params import Params
    from hybridopt.router.handler import Router

STATS = ("cost_per_request_usd", "latency_mean_ms", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
         "failure_rate", "regret_cost_per_request_usd", "regret_latency_ms", "oracle_agreement")


def router_choices(router: "Router", pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(to_lambda, P(lambda)) of the served model for every pair, via Router.route (treatment arm)."""
    proba = np.empty(len(pairs))
    for i, r in enumerate(pairs.itertuples(index=False)):
        d = router.route({"workload_type": str(r.workload_type), "payload_size_kb": float(r.payload_size_kb),
                          "timestamp": pd.Timestamp(r.sent_at).isoformat(), "time_window": str(r.time_window),
                          "load_pattern": str(r.load_pattern), "arm": "treatment"})
        proba[i] = d.probability_lambda
    return proba >= router.threshold, proba


def _chosen(pairs: pd.DataFrame, to_lambda: np.ndarray) -> dict[str, np.ndarray]:
    t = np.asarray(to_lambda, dtype=bool)
    lat = np.where(t, pairs["lambda_latency_ms"].to_numpy(float), pairs["ecs_latency_ms"].to_numpy(float))
    cost = np.where(t, pairs["lambda_cost_usd"].to_numpy(float), pairs["ecs_cost_usd"].to_numpy(float))
    if "lambda_ok" in pairs.columns and "ecs_ok" in pairs.columns:
        ok = np.where(t, pairs["lambda_ok"].astype(bool).to_numpy(), pairs["ecs_ok"].astype(bool).to_numpy())
    else:
        ok = np.ones(len(pairs), dtype=bool)
    return {"latency": lat, "cost": cost, "fail": (~ok).astype(float), "to_lambda": t}


def _stats(ch: dict[str, np.ndarray], oracle: dict[str, np.ndarray], idx: np.ndarray) -> np.ndarray:
    """(B, len(STATS)) statistics on resampled pair indices idx (B, n)."""
    lat, cost = ch["latency"][idx], ch["cost"][idx]
    has_nan = np.isnan(lat).any()
    qf = np.nanquantile if has_nan else np.quantile
    meanf = np.nanmean if has_nan or np.isnan(cost).any() else np.mean
    q = qf(lat, [0.5, 0.95, 0.99], axis=1)
    return np.column_stack([
        meanf(cost, axis=1), meanf(lat, axis=1), q[0], q[1], q[2], ch["fail"][idx].mean(axis=1),
        meanf(cost - oracle["cost"][idx], axis=1), meanf(lat - oracle["latency"][idx], axis=1),
        (ch["to_lambda"][idx] == oracle["to_lambda"][idx]).mean(axis=1)])


def evaluate_policies(pairs: pd.DataFrame, label: str, rule: Mapping[str, str],
                      extra: Mapping[str, np.ndarray] | None = None, n_resamples: int = 1000,
                      confidence: float = 0.95, seed: int = 0, baseline: str = "static_rule",
                      batch: int = 50) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(table, differences): per policy each statistic with its CI; and each policy minus the
    baseline policy (default the static rule) with a paired CI."""
    if len(pairs) < 2:
        raise ValueError(f"offline evaluation needs pairs, got {len(pairs)}")
    policies = dict(reference_policies(pairs, label, rule))
    for name, to_lambda in (extra or {}).items():
        policies[name] = np.asarray(to_lambda, dtype=bool)
    chosen = {k: _chosen(pairs, v) for k, v in policies.items()}
    oracle = chosen["oracle"]
    full = np.arange(len(pairs))[None, :]
    points = {k: _stats(c, oracle, full)[0] for k, c in chosen.items()}
    rng = np.random.default_rng(seed)
    boots = {k: np.empty((n_resamples, len(STATS))) for k in chosen}
    for start in range(0, n_resamples, batch):
        b = min(batch, n_resamples - start)
        idx = rng.integers(0, len(pairs), size=(b, len(pairs)))
        for k, c in chosen.items():
            boots[k][start:start + b] = _stats(c, oracle, idx)
    lo_q, hi_q = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    rows, diffs = [], []
    for k in chosen:
        lo, hi = np.nanquantile(boots[k], [lo_q, hi_q], axis=0)
        row = {"policy": k, "lambda_share": float(policies[k].mean()), "n": len(pairs)}
        for j, s in enumerate(STATS):
            row[s], row[f"{s}_low"], row[f"{s}_high"] = points[k][j], lo[j], hi[j]
        rows.append(row)
        if baseline in boots and k != baseline:
            d = boots[k] - boots[baseline]
            dlo, dhi = np.nanquantile(d, [lo_q, hi_q], axis=0)
            for j, s in enumerate(STATS[:6]):
                diffs.append({"policy": k, "statistic": s, "difference": points[k][j] - points[baseline][j],
                              "ci_low": dlo[j], "ci_high": dhi[j],
                              "excludes_zero": not dlo[j] <= 0 <= dhi[j]})
    table = pd.DataFrame(rows).set_index("policy")
    table.attrs.update(n_resamples=n_resamples, confidence=confidence, baseline=baseline)
    return table, pd.DataFrame(diffs)


def heldout_pairs(table: pd.DataFrame, model_dir: str | Path, params: Params) -> tuple[pd.DataFrame, str]:
    """The held-out rows: the training step's split (analysis/splits.parquet) when it exists,
    else the same grouped, stratified split recomputed from params.split."""
    split_name = params.ab.heldout_split
    f = layout.splits_path(Path(model_dir))
    if f.is_file():
        s = pd.read_parquet(f)
        ids = set(s.loc[s["split"] == split_name, "pair_id"].astype(str))
        return table[table["pair_id"].astype(str).isin(ids)].reset_index(drop=True), f"{split_name} split of {f.name}"
    from hybridopt.modeling.data import pair_groups
    from hybridopt.modeling.splits import random_split

    y = table[params.labels.target].to_numpy().astype(int)
    idx = random_split(y, pair_groups(table), params.split.train, params.split.validation, params.split.test,
                       params.split.seed)[split_name]
    return table.iloc[idx].reset_index(drop=True), f"{split_name} split recomputed (params.split)"
