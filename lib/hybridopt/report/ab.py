"""Stage 08 (A/B): the policy table and frontier of the offline evaluation, and the arms' latency."""

from __future__ import annotations

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
