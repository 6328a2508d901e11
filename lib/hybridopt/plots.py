"""Figures and small display helpers for the EDA and preprocessing notebooks.

Every figure function returns a closed matplotlib Figure (a notebook displays it once)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .table import LABEL_COLUMNS

PLATFORM_COLOURS = {"lambda": "#e07b00", "ecs": "#1f6fb4", "unknown": "#888888"}


def _done(fig: plt.Figure) -> plt.Figure:
    fig.tight_layout()
    plt.close(fig)
    return fig


def markdown_list(items: list[str]) -> Any:
    from IPython.display import Markdown

    return Markdown("\n".join(f"- {s}" for s in items) if items else "_nothing to report_")


def latency_by_payload(requests: pd.DataFrame) -> plt.Figure:
    """Median client latency (IQR band) by payload size, per platform, one panel per workload."""
    ok = requests[requests["ok"] & requests["platform"].isin(("lambda", "ecs"))]
    workloads = sorted(ok["workload_type"].astype(str).unique())
    fig, axes = plt.subplots(1, max(len(workloads), 1), figsize=(4 * max(len(workloads), 1), 3.4), squeeze=False)
    for ax, w in zip(axes[0], workloads):
        g = ok[ok["workload_type"] == w]
        for platform, gp in g.groupby("platform", observed=True):
            q = gp.groupby("target_payload_size_kb")["total_ms"].quantile([0.25, 0.5, 0.75]).unstack()
            ax.plot(q.index, q[0.5], marker="o", color=PLATFORM_COLOURS[str(platform)], label=str(platform))
            ax.fill_between(q.index, q[0.25], q[0.75], color=PLATFORM_COLOURS[str(platform)], alpha=0.2)
        ax.set_xscale("log")
        ax.set_title(w)
        ax.set_xlabel("payload (KB)")
        ax.set_ylabel("client latency, median and IQR (ms)")
        ax.legend()
    return _done(fig)


def rows_per_cell(cells: pd.DataFrame) -> plt.Figure:
    """Logged rows per run x (platform, workload)."""
    if cells.empty:
        return _done(plt.figure())
    pv = cells.groupby(["run_id", "platform", "workload_type"])["rows"].sum().unstack(["platform", "workload_type"])
    pv.columns = [f"{p}\n{w}" for p, w in pv.columns]
    fig, ax = plt.subplots(figsize=(1.1 * len(pv.columns) + 3, 0.6 * len(pv) + 2))
    sns.heatmap(pv.fillna(0), annot=True, fmt=".0f", cmap="Blues", ax=ax, cbar=False)
    ax.set_xlabel("")
    ax.set_ylabel("run")
    return _done(fig)


def missing_shares(missing: pd.DataFrame) -> plt.Figure:
    """Share of missing values per contract column and platform."""
    if missing.empty:
        return _done(plt.figure())
    pv = missing.pivot_table(index="column", columns="platform", values="missing_share", sort=False)
    fig, ax = plt.subplots(figsize=(1.6 * len(pv.columns) + 3, 0.28 * len(pv) + 1.5))
    sns.heatmap(pv, annot=True, fmt=".2f", cmap="Reds", vmin=0, vmax=1, ax=ax, cbar=False)
    ax.set_title("share of missing values")
    return _done(fig)


def clock_hours(clock: pd.DataFrame) -> plt.Figure:
    """Local hours observed in each run vs the hours of the time window it claims."""
    rows = [{"run": f"{r['run_id']}\n({r['window_local_hours'].split(' ')[0]})", "hour": h, "rows": n}
            for _, r in clock.iterrows() for h, n in r["observed_local_hours"].items()]
    if not rows:
        return _done(plt.figure())
    df = pd.DataFrame(rows)
    pv = df.pivot_table(index="run", columns="hour", values="rows", fill_value=0).reindex(columns=range(24),
                                                                                           fill_value=0)
    fig, ax = plt.subplots(figsize=(12, 0.6 * len(pv) + 1.8))
    sns.heatmap(pv, cmap="Greens", ax=ax, cbar=False, annot=False)
    ax.set_xlabel("local hour (profile timezone)")
    ax.set_ylabel("run (claimed window)")
    return _done(fig)


def gap_histogram(pairs: pd.DataFrame) -> plt.Figure:
    """Time between the two requests of time-matched pairs."""
    fig, ax = plt.subplots(figsize=(6, 3))
    m = pairs[pairs["pairing"] == "matched"]
    if len(m):
        sns.histplot(m["gap_s"], bins=25, ax=ax)
    ax.set_xlabel("gap between the Lambda and the ECS request (s)")
    ax.set_title(f"time-matched pairs: {len(m):,}")
    return _done(fig)


def label_share_heatmap(table: pd.DataFrame, label: str) -> plt.Figure:
    """Share of pairs where Lambda wins, workload x load pattern, for each label."""
    labels = [label] + [c for c in LABEL_COLUMNS if c != label]
    fig, axes = plt.subplots(1, len(labels), figsize=(5 * len(labels), 3.2))
    for ax, lab in zip(np.atleast_1d(axes), labels):
        pv = table.assign(_y=table[lab].astype("float64")).pivot_table(
            index="workload_type", columns="load_pattern", values="_y", aggfunc="mean")
        sns.heatmap(pv, annot=True, fmt=".2f", cmap="vlag", vmin=0, vmax=1, ax=ax, cbar=False)
        ax.set_title(f"{lab}: share Lambda" + (" (target)" if lab == label else ""))
    return _done(fig)


def label_by_payload(table: pd.DataFrame, label: str) -> plt.Figure:
    """Share of Lambda-optimal pairs by payload size, one line per workload."""
    g = table.assign(_y=table[label].astype("float64")).groupby(["workload_type", "payload_size_kb"])["_y"].mean()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for w, s in g.groupby(level=0):
        ax.plot(s.index.get_level_values(1), s.values, marker="o", label=w)
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("payload (KB)")
    ax.set_ylabel(f"share {label}")
    ax.legend(fontsize=8)
    return _done(fig)


def outcomes_by_window(outcomes: pd.DataFrame, schedule: list[str]) -> plt.Figure | None:
    """Attempts per time window by outcome ("ok" or the error kind), one panel per platform
    (`outcomes` from collect.outcomes_frame). None when nothing was collected."""
    if outcomes.empty:
        return None
    order = [w for w in schedule if w in set(outcomes["time_window"])]
    g = sns.catplot(data=outcomes, x="time_window", y="lines", hue="outcome", col="platform", kind="bar",
                    order=order, height=3.6, aspect=1.4, errorbar=None)
    g.set_titles("{col_name}")
    g.set_xticklabels(rotation=20)
    g.figure.suptitle("Attempts per window by outcome (ok or error kind)", y=1.04)
    plt.close(g.figure)
    return g.figure


def outcomes_table(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Lines per (window, platform) and outcome."""
    if outcomes.empty:
        return outcomes
    return outcomes.pivot_table(index=["time_window", "platform"], columns="outcome", values="lines", aggfunc="sum",
                                fill_value=0)


def generator_health(summary: pd.DataFrame, cpu_pct_p95_max: float,
                     event_loop_lag_ms_p99_max: float) -> tuple[pd.DataFrame, plt.Figure | None]:
    """The load generator's CPU p95 and event-loop lag p99 per window against their limits
    (`summary` from collect.summary_frame): the table and a figure (None when no window has health)."""
    cols = ["time_window", "cpu_pct_p95", "event_loop_lag_ms_p99", "saturated", "saturation_reason"]
    if summary.empty:
        return summary, None
    health = summary[cols].dropna(subset=["cpu_pct_p95"])
    if health.empty:
        return health, None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for ax, col, limit, colour, label in ((axes[0], "cpu_pct_p95", cpu_pct_p95_max, "tab:blue", "CPU p95 (% of one core)"),
                                          (axes[1], "event_loop_lag_ms_p99", event_loop_lag_ms_p99_max, "tab:orange",
                                           "event-loop lag p99 (ms)")):
        sns.barplot(data=health, x="time_window", y=col, ax=ax, color=colour)
        ax.axhline(limit, ls="--", color="tab:red")
        ax.set(ylabel=label, xlabel="")
        ax.tick_params(axis="x", rotation=20)
    return health, _done(fig)


def gates_table(gates: list[dict[str, Any]]) -> Any:
    """The gates as a styled table: pass in green, fail in bold red."""
    return pd.DataFrame(gates).style.map(
        lambda v: "color: green" if v is True else ("color: red; font-weight: bold" if v is False else ""),
        subset=["pass"])
