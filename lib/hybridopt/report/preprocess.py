"""Stage 03 (preprocessing): pairing, labels and gates as tables and figures."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from pandas.io.formats.style import Styler

from hybridopt.data.table import LABEL_COLUMNS
from hybridopt.report.common import done, payload_axis


def gap_histogram(pairs: pd.DataFrame) -> plt.Figure:
    """Time between the two requests of time-matched pairs."""
    fig, ax = plt.subplots(figsize=(6, 3))
    m = pairs[pairs["pairing"] == "matched"]
    if len(m):
        sns.histplot(m["gap_s"], bins=25, ax=ax)
    else:
        ax.text(0.5, 0.5, "no time-matched pairs: every pair shares a pair_id", ha="center", va="center",
                transform=ax.transAxes, color="grey")
        ax.set(xticks=[], yticks=[])
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
    payload_axis(ax, table["payload_size_kb"].unique())
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("payload (KB)")
    ax.set_ylabel(f"share {label}")
    ax.legend(fontsize=8)
    return done(fig)


def row_counts(card: dict[str, Any]) -> pd.DataFrame:
    """From input lines to training rows (the data card's `rows`)."""
    return pd.Series(card["rows"], name="rows").rename_axis("step").to_frame()


def pairing_table(card: dict[str, Any]) -> pd.DataFrame:
    """Direct pairs (shared pair_id) and time-matched pairs side by side, one row per count (counts
    stay integers beside the rates)."""
    matched = card["pairing"]["matched"]
    columns = {
        "direct": dict(card["pairing"]["direct"]),
        "time-matched": {**{k: v for k, v in matched.items()
                            if k not in ("per_workload", "gap_s_histogram", "gap_s_quantiles")},
                         **{f"gap_s {q}": v for q, v in (matched.get("gap_s_quantiles") or {}).items()}},
    }
    rows = list(dict.fromkeys(k for col in columns.values() for k in col))
    return pd.DataFrame({name: pd.Series([col.get(r) for r in rows], index=rows, dtype=object)
                         for name, col in columns.items()}).rename_axis("count")


def matched_per_workload(card: dict[str, Any]) -> pd.DataFrame:
    rows = card["pairing"]["matched"].get("per_workload", [])
    if not rows:
        return pd.DataFrame({"note": ["no time-matched pairs: every pair shares a pair_id"]})
    return pd.DataFrame(rows)


def label_shares(card: dict[str, Any]) -> pd.DataFrame:
    """Share of pairs where Lambda wins, per workload (rows) and label (columns), and overall."""
    by = pd.DataFrame(card["label_shares"]["by_workload"]).T
    return pd.concat([by, pd.DataFrame({"all": card["label_shares"]["overall"]}).T]).rename_axis("workload_type")


def cost_options(card: dict[str, Any]) -> pd.DataFrame:
    return pd.Series(card["cost_options"], name="value").rename_axis("cost option").to_frame()


def cost_latency_medians(table: pd.DataFrame) -> pd.DataFrame:
    """Median cost (USD) and client latency (ms) per workload and platform over the training pairs."""
    cols = ["lambda_cost_usd", "ecs_cost_usd", "lambda_latency_ms", "ecs_latency_ms"]
    return table.groupby("workload_type", observed=True)[cols].median()


def feature_summary(table: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """count, mean, std, min, quartiles and max of each feature."""
    return table[features].describe().T.rename_axis("feature")


def gates_table(gates: list[dict[str, Any]]) -> pd.DataFrame:
    """The data card's gates as a table, one row per gate."""
    return pd.DataFrame(gates, columns=["gate", "scope", "value", "threshold", "pass"])


def colour_pass(styler: Styler) -> Styler:
    """A gates table's `pass` column: True in green, False in bold red."""
    return styler.map(lambda v: "color: green" if v is True else ("color: red; font-weight: bold" if v is False else ""),
                      subset=["pass"])
