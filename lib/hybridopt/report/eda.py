"""Stage 02 (EDA): the audit's tables and the figures of the logs.

Every figure function returns a closed matplotlib Figure (a notebook displays it once)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from hybridopt.report.common import PLATFORM_COLOURS, done, payload_axis


def audit_tables(a: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The audit's sections as DataFrames (for display)."""
    lines = a["lines"]
    buckets = pd.DataFrame([{"bucket": b, "lines": lines[b]} for b in ("kept", "repaired", "quarantined")]
                           + [{"bucket": "total", "lines": lines["lines_total"]}])
    reasons = pd.DataFrame([{"bucket": "repaired", "reason": k, "lines": v} for k, v in lines["repairs"].items()]
                           + [{"bucket": "quarantined", "reason": k, "lines": v}
                              for k, v in lines["quarantine_reasons"].items()],
                           columns=["bucket", "reason", "lines"])
    clock = pd.DataFrame(a["clock"])
    return {
        "buckets": buckets,
        "reasons": reasons,
        "files": pd.DataFrame(lines["files"]),
        "cells": pd.DataFrame(a["cells"]),
        "status": pd.DataFrame(a["status"]),
        "coverage_runs": pd.DataFrame(a["coverage"]["runs"]),
        "coverage_cells": pd.DataFrame(a["coverage"]["cells"]),
        "payload_sizes": pd.DataFrame(a["payload_sizes"]),
        "clock": clock,
        "constant_columns": pd.DataFrame(a["constant_columns"]),
        "missing": pd.DataFrame(a["missing"]),
        "latency_ceiling": pd.DataFrame(a["latency_ceiling"]),
        "generator": pd.DataFrame(a["generator"]),
    }


def unlogged_share_table(cells: pd.DataFrame) -> pd.DataFrame:
    """Estimated share of unlogged attempts, run x workload by platform (coverage cells)."""
    if cells.empty:
        return pd.DataFrame()
    return cells.pivot_table(index=["run_id", "workload_type"], columns="platform", values="unlogged_share_est")


def clock_table(clock: pd.DataFrame) -> pd.DataFrame:
    """Per run: the window it claims, its local hours, the share of rows inside them, pass/fail."""
    cols = ["run_id", "time_window", "window_local_hours", "consistent_share", "pass"]
    return clock[[c for c in cols if c in clock.columns]]


def duplicates_table(audit: dict[str, Any]) -> pd.DataFrame:
    return pd.Series(audit["duplicates"], name="count").rename_axis("check").to_frame()


def generator_table(generator: pd.DataFrame) -> pd.DataFrame:
    """The load generator's health per collection window; legacy logs carry no manifests, and the
    table then says so in one row."""
    known = generator.dropna(how="all", subset=[c for c in generator.columns if c != "run_id"]) \
        if len(generator) else generator
    if known.empty:
        return pd.DataFrame({"note": ["no collection manifests: these logs carry no load-generator health"]})
    return known.reset_index(drop=True)


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
        payload_axis(ax, g["target_payload_size_kb"].unique())
        ax.set_title(w)
        ax.set_xlabel("payload (KB)")
        ax.set_ylabel("client latency, median and IQR (ms)")
        ax.legend()
    return done(fig)


def rows_per_cell(cells: pd.DataFrame) -> plt.Figure:
    """Logged rows per run and platform (rows) and workload (columns)."""
    if cells.empty:
        return done(plt.figure())
    pv = cells.groupby(["run_id", "platform", "workload_type"])["rows"].sum().unstack("workload_type")
    pv.index = [f"{r} · {p}" for r, p in pv.index]
    fig, ax = plt.subplots(figsize=(1.8 * len(pv.columns) + 4, 0.38 * len(pv) + 1.5))
    sns.heatmap(pv.fillna(0), annot=True, fmt=".0f", cmap="Blues", ax=ax, cbar=False)
    ax.tick_params(axis="x", labelrotation=0)
    ax.set_xlabel("")
    ax.set_ylabel("run · platform")
    return done(fig)


def missing_shares(missing: pd.DataFrame) -> plt.Figure:
    """Share of missing values per contract column and platform."""
    if missing.empty:
        return done(plt.figure())
    pv = missing.pivot_table(index="column", columns="platform", values="missing_share", sort=False)
    fig, ax = plt.subplots(figsize=(1.6 * len(pv.columns) + 3, 0.28 * len(pv) + 1.5))
    sns.heatmap(pv, annot=True, fmt=".2f", cmap="Reds", vmin=0, vmax=1, ax=ax, cbar=False)
    ax.set_title("share of missing values")
    return done(fig)


def clock_hours(clock: pd.DataFrame) -> plt.Figure:
    """Local hours observed in each run vs the hours of the time window it claims."""
    rows = [{"run": f"{r['run_id']}\n({r['window_local_hours'].split(' ')[0]})", "hour": h, "rows": n}
            for _, r in clock.iterrows() for h, n in r["observed_local_hours"].items()]
    if not rows:
        return done(plt.figure())
    df = pd.DataFrame(rows)
    pv = df.pivot_table(index="run", columns="hour", values="rows", fill_value=0).reindex(columns=range(24),
                                                                                           fill_value=0)
    fig, ax = plt.subplots(figsize=(12, 0.6 * len(pv) + 1.8))
    sns.heatmap(pv, cmap="Greens", ax=ax, cbar=False, annot=False)
    ax.set_xlabel("local hour (profile timezone)")
    ax.set_ylabel("run (claimed window)")
    return done(fig)
