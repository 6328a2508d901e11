"""Stage 08 (A/B): the policy table and frontier of the offline evaluation, the arms' latency, and
the objective policy's A/B against the per-workload rule (arms, bills, differences, routing by load)."""

from __future__ import annotations

import json
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from hybridopt.report.common import done

#: The columns of the offline policy table a supervisor reads (the rest stay in the frame).
POLICY_COLUMNS = ["lambda_share", "cost_per_request_usd", "cost_per_request_usd_low", "cost_per_request_usd_high",
                  "latency_p50_ms", "latency_p95_ms", "latency_p95_ms_low", "latency_p95_ms_high", "failure_rate",
                  "regret_cost_per_request_usd", "regret_latency_ms", "oracle_agreement"]


def policy_table(policies: pd.DataFrame) -> pd.DataFrame:
    """The offline evaluation's table (ab.offline.evaluate_policies) reduced to POLICY_COLUMNS."""
    return policies[[c for c in POLICY_COLUMNS if c in policies.columns]]


def policy_frontier_figure(policies: pd.DataFrame) -> plt.Figure:
    """Cost per request against latency p95 per policy, with the bootstrap CIs as error bars."""
    p = policies.reset_index()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.errorbar(p["cost_per_request_usd"] * 1e6, p["latency_p95_ms"],
                xerr=[(p["cost_per_request_usd"] - p["cost_per_request_usd_low"]) * 1e6,
                      (p["cost_per_request_usd_high"] - p["cost_per_request_usd"]) * 1e6],
                yerr=[p["latency_p95_ms"] - p["latency_p95_ms_low"], p["latency_p95_ms_high"] - p["latency_p95_ms"]],
                fmt="none", ecolor="grey", alpha=0.6)
    sns.scatterplot(data=p, x=p["cost_per_request_usd"] * 1e6, y="latency_p95_ms", hue="policy", s=70, ax=ax)
    ax.set(xlabel="cost per request (µUSD)", ylabel="latency p95 (ms)", title="Policies on held-out pairs (95 % CIs)")
    ax.legend(fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")
    return done(fig)


def latency_ecdf_figure(frame: pd.DataFrame, title: str) -> plt.Figure:
    """Empirical CDF of client latency per arm (log scale)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    sns.ecdfplot(data=frame, x="latency_ms", hue="arm", log_scale=True, ax=ax)
    ax.set(title=title, xlabel="latency (ms)")
    return done(fig)


def vs_static_table(vs_static: pd.DataFrame) -> pd.DataFrame:
    """Each policy minus the static rule, one column per statistic (ab.offline.evaluate_policies)."""
    return vs_static.pivot(index="policy", columns="statistic", values="difference")


def coverage_table(known: pd.DataFrame, none: pd.DataFrame) -> pd.DataFrame:
    """The synthetic checks side by side: a known difference, and none."""
    return pd.concat({"known difference": known, "no difference": none}, axis=1)


# ------------------------------------------------------------------ the objective policy's A/B
#: Cost metrics are shown per 1,000 requests (the bill's and the decide stage's unit).
_PER_1K = {"bill_avg_usd_per_request": "bill avg USD per 1k requests",
           "marginal_avg_usd_per_request": "marginal avg USD per 1k requests"}


def arms_table(res: Any, bills: pd.DataFrame | list[dict[str, Any]]) -> pd.DataFrame:
    """Per arm (ab.stats.compare_arms's `arms` beside the arms' bills): requests, Lambda share, the
    average bill and marginal cost per 1,000 requests, latency quantiles, error and SLO-miss rates."""
    b = bills if isinstance(bills, pd.DataFrame) else pd.DataFrame(bills).set_index("arm")
    a = res.arms.copy()
    out = pd.DataFrame({"requests": a["requests"].astype(int), "lambda_share": a["lambda_share"],
                        "bill avg USD per 1k requests": b["avg_usd_per_1k_requests"].reindex(a.index),
                        "marginal avg USD per 1k requests": 1000 * a["marginal_avg_usd_per_request"],
                        "latency p50 ms": a["latency_p50_ms"], "latency p95 ms": a["latency_p95_ms"],
                        "latency p99 ms": a["latency_p99_ms"], "error rate": a["error_rate"],
                        "SLO-miss rate": a["slo_miss_rate"]}, index=a.index)
    return out.dropna(axis=1, how="all")


def comparison_table(res: Any) -> pd.DataFrame:
    """Treatment minus control per metric with its 95 % CI and test (costs per 1,000 requests)."""
    c = res.comparison.copy()
    cols = ["control", "treatment", "difference", "ci_low", "ci_high"]
    for m in _PER_1K:
        if m in c.index:
            c.loc[m, cols] = c.loc[m, cols].astype(float) * 1000
    c = c.rename(index=_PER_1K)
    return c[[*cols, "relative_difference", "test", "p_value", "significant", "n_control", "n_treatment"]]


def bills_table(bills: pd.DataFrame | list[dict[str, Any]]) -> pd.DataFrame:
    """The arms' bills (ab.billing.arm_bills): what each arm's requests were billed, split into what
    its requests drove and the shared fleet, and the extrapolated average per 1,000 requests."""
    b = bills if isinstance(bills, pd.DataFrame) else pd.DataFrame(bills).set_index("arm")
    cols = ["requests", "lambda_requests", "ecs_requests", "request_driven_usd", "fleet_usd", "bill_usd",
            "avg_usd_per_1k_requests", "capacity_basis"]
    return b[[c for c in cols if c in b.columns]]


def facts_table(facts: dict[str, Any]) -> pd.DataFrame:
    """The simulated run's scalar facts (counts, durations, versions, what the loop models)."""
    keep = {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in facts.items()
            if not isinstance(v, list)}
    return pd.Series(keep, name="value").to_frame()


#: Bins of the workload's ECS requests in flight (upper edges, inclusive).
LOAD_BINS = [(0, 0, "0"), (1, 1, "1"), (2, 3, "2-3"), (4, 7, "4-7"), (8, 10 ** 9, "8+")]


def routing_by_load_figure(frame: pd.DataFrame, title: str) -> plt.Figure:
    """Share of each arm's requests sent to Lambda by how many of the workload's requests were in
    flight on ECS when the router decided, one panel per workload (objective path frames)."""
    f = frame.dropna(subset=["workload_in_flight_ecs"]).copy()
    wif = f["workload_in_flight_ecs"].to_numpy()
    f["ECS in flight (workload)"] = None
    for lo, hi, label in LOAD_BINS:
        f.loc[(wif >= lo) & (wif <= hi), "ECS in flight (workload)"] = label
    f["to Lambda"] = (f["platform"] == "lambda").astype(float)
    workloads = sorted(f["workload_type"].astype(str).unique())
    fig, axes = plt.subplots(1, len(workloads), figsize=(3.2 * len(workloads), 3.4), sharey=True, squeeze=False)
    order = [b[2] for b in LOAD_BINS]
    for ax, w in zip(axes[0], workloads):
        sub = f[f["workload_type"] == w]
        sns.pointplot(data=sub, x="ECS in flight (workload)", y="to Lambda", hue="arm", order=order,
                      hue_order=["control", "treatment"], errorbar=None, ax=ax, dodge=0.2)
        ax.set(title=w, ylim=(-0.05, 1.05), ylabel="share sent to Lambda")
        if ax is not axes[0][0] and ax.get_legend():
            ax.get_legend().remove()
    fig.suptitle(title)
    return done(fig)
