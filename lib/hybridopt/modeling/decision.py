"""Decision quality: what routing each pair by a policy would have cost and how fast it would have
been, using the pair's two measured outcomes (the pair table's OUTCOME columns, never features).

A policy is one boolean per pair: True = send to Lambda. For each policy: total and per-request
cost, latency p50/p95/p99 and mean over the chosen attempts, how many chosen attempts failed, and
the regret against the oracle (the target label: the better platform of each pair as the labels
define it). Reference policies: always-Lambda, always-ECS, the per-workload static rule (the old
lookup table, learned on the training pairs), the oracle, and the single-objective oracles
(cheaper of the pair, faster of the pair) that bound the cost-latency frontier.

Latency percentiles are over chosen attempts with a measured latency (failed attempts keep their
measured time when they have one); chosen attempts without a latency or cost are counted."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from hybridopt.modeling.data import require_columns

OUTCOME_COLUMNS = ("lambda_latency_ms", "ecs_latency_ms", "lambda_cost_usd", "ecs_cost_usd")


def static_rule(train: pd.DataFrame, label: str) -> dict[str, str]:
    """Per workload, the platform the training label favours most often (ties: Lambda)."""
    require_columns(train, ["workload_type", label], "static rule")
    share = train.groupby(train["workload_type"].astype(str))[label].mean()
    return {str(w): ("lambda" if s >= 0.5 else "ecs") for w, s in share.sort_index().items()}


def apply_static_rule(pairs: pd.DataFrame, rule: Mapping[str, str], default: str = "ecs") -> np.ndarray:
    """Route by the rule; workloads it does not know go to `default`."""
    return pairs["workload_type"].astype(str).map(lambda w: rule.get(w, default) == "lambda").to_numpy(dtype=bool)


def policy_outcome(pairs: pd.DataFrame, to_lambda: np.ndarray) -> dict[str, Any]:
    """Cost and latency of routing `pairs` by `to_lambda`."""
    require_columns(pairs, OUTCOME_COLUMNS, "decision quality")
    to_lambda = np.asarray(to_lambda, dtype=bool)
    if len(to_lambda) != len(pairs):
        raise ValueError(f"policy has {len(to_lambda)} decisions for {len(pairs)} pairs")
    lat = np.where(to_lambda, pairs["lambda_latency_ms"].to_numpy(float), pairs["ecs_latency_ms"].to_numpy(float))
    cost = np.where(to_lambda, pairs["lambda_cost_usd"].to_numpy(float), pairs["ecs_cost_usd"].to_numpy(float))
    failed = 0
    if "lambda_ok" in pairs.columns and "ecs_ok" in pairs.columns:
        ok = np.where(to_lambda, pairs["lambda_ok"].astype(bool).to_numpy(), pairs["ecs_ok"].astype(bool).to_numpy())
        failed = int((~ok).sum())
    has_lat = np.isfinite(lat)
    has_cost = np.isfinite(cost)
    pct = np.percentile(lat[has_lat], [50, 95, 99]) if has_lat.any() else [np.nan] * 3
    return {
        "n": int(len(pairs)), "lambda_share": float(to_lambda.mean()) if len(pairs) else 0.0,
        "total_cost_usd": float(cost[has_cost].sum()),
        "cost_per_1k_usd": float(cost[has_cost].mean() * 1000) if has_cost.any() else float("nan"),
        "latency_mean_ms": float(lat[has_lat].mean()) if has_lat.any() else float("nan"),
        "latency_p50_ms": float(pct[0]), "latency_p95_ms": float(pct[1]), "latency_p99_ms": float(pct[2]),
        "failed": failed, "missing_latency": int((~has_lat).sum()), "missing_cost": int((~has_cost).sum()),
    }


def reference_policies(pairs: pd.DataFrame, label: str, rule: Mapping[str, str]) -> dict[str, np.ndarray]:
    """always_lambda, always_ecs, static_rule, oracle (the label), cheaper_of_pair, faster_of_pair."""
    n = len(pairs)
    lam_lat, ecs_lat = pairs["lambda_latency_ms"].to_numpy(float), pairs["ecs_latency_ms"].to_numpy(float)
    lam_c, ecs_c = pairs["lambda_cost_usd"].to_numpy(float), pairs["ecs_cost_usd"].to_numpy(float)
    return {
        "always_lambda": np.ones(n, dtype=bool),
        "always_ecs": np.zeros(n, dtype=bool),
        "static_rule": apply_static_rule(pairs, rule),
        "oracle": pairs[label].to_numpy().astype(bool),
        "cheaper_of_pair": np.nan_to_num(lam_c, nan=np.inf) < np.nan_to_num(ecs_c, nan=np.inf),
        "faster_of_pair": np.nan_to_num(lam_lat, nan=np.inf) < np.nan_to_num(ecs_lat, nan=np.inf),
    }


def decision_table(pairs: pd.DataFrame, policies: Mapping[str, np.ndarray], oracle: str = "oracle") -> pd.DataFrame:
    """One row per policy with cost, latency and regret versus the oracle policy."""
    rows = {name: policy_outcome(pairs, d) for name, d in policies.items()}
    ref = rows[oracle]
    for r in rows.values():
        r["regret_cost_usd"] = r["total_cost_usd"] - ref["total_cost_usd"]
        r["regret_latency_mean_ms"] = r["latency_mean_ms"] - ref["latency_mean_ms"]
        r["regret_latency_p95_ms"] = r["latency_p95_ms"] - ref["latency_p95_ms"]
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("policy")


def threshold_sweep(pairs: pd.DataFrame, proba: np.ndarray, thresholds: np.ndarray | None = None) -> pd.DataFrame:
    """Cost and latency of routing by P(lambda) >= t for a range of t (the model's frontier)."""
    ts = np.linspace(0.0, 1.0, 21) if thresholds is None else thresholds
    rows = []
    for t in ts:
        o = policy_outcome(pairs, np.asarray(proba) >= t)
        rows.append({"threshold": float(t), **o})
    return pd.DataFrame(rows)
