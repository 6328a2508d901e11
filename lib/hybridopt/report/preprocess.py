"""Stage 03 (preprocessing): pairing, labels and gates as tables and figures."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from hybridopt.data.table import LABEL_COLUMNS
from hybridopt.report.common import done


def gap_histogram(pairs: pd.DataFrame) -> plt.Figure:
    """Time between the two requests of time-matched pairs."""
    fig, ax = plt.subplots(figsize=(6, 3))
    m = pairs[pairs["pairing"] == "matched"]
    if len(m):
        sns.histplot(m["gap_s"], bins=25, ax=ax)
    ax.set_xlabel("gap between the Lambda and the ECS request (s)")
    ax.set_title(f"time-matched pairs: {len(m):,}")
    return done(fig)


def label_share_heatmap(table: pd.DataFrame, label: str) -> plt.Figure:
    """Share of pairs where Lambda wins, workload x load pattern, for each label."""
    labels = [label] + [c for c in LABEL_COLUMNS if c != label]
    fig, axes = plt.subplots(1, len(labels), figsize=(5 * len(labels), 3.2))
    for ax, lab in zip(np.atleast_1d(axes), labels):
        pv = table.assign(_y=table[lab].astype("float64")).pivot_table(
            index="workload_type", columns="load_pattern", values="_y", aggfunc="mean")
        sns.heatmap(pv, annot=True, fmt=".2f", cmap="vlag", vmin=0, vmax=1, ax=ax, cbar=False)
        ax.set_title(f"{lab}: share Lambda" + (" (target)" if lab == label else ""))
    return done(fig)


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
    return done(fig)


def gates_table(gates: list[dict[str, Any]]) -> Any:
    """The gates as a styled table: pass in green, fail in bold red."""
    return pd.DataFrame(gates).style.map(
        lambda v: "color: green" if v is True else ("color: red; font-weight: bold" if v is False else ""),
        subset=["pass"])
