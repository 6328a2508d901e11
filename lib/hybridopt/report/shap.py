"""Stage 05 (SHAP): the importance table and the figures of what the served model learned."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.colors import BoundaryNorm
import numpy as np
import pandas as pd
import seaborn as sns
import shap

from hybridopt.report.common import done, payload_axis


def share_table(expl: shap.Explanation, importance: dict[str, Any]) -> pd.DataFrame:
    """Mean |SHAP| share per feature on this sample beside the verdict's share (04_train) and the
    model's own importance, largest first. `importance` is model_metadata['importance'][model]."""
    mean_abs = np.abs(expl.values).mean(0)
    out = pd.DataFrame({"shap_share (this sample)": mean_abs / mean_abs.sum(),
                        "shap_share (verdict, 04)": pd.Series(importance["shap_share"]),
                        f"own {importance['own_kind']}": pd.Series(importance["own_share"])},
                       index=expl.feature_names)
    return out.sort_values("shap_share (this sample)", ascending=False)


def payload_dependence_figure(dep: pd.DataFrame) -> plt.Figure:
    """SHAP of payload_size_kb alone and of the whole payload family against payload size, by
    workload (`dep` from dependence_frame), one legend below both panels. Returns a closed Figure."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=False)
    order = sorted(dep["workload"].dropna().unique())
    for ax, col in zip(axes, ["shap_payload_size_kb", "shap_payload_all"]):
        sns.scatterplot(dep, x="payload_kb", y=col, hue="workload", hue_order=order, alpha=0.6, s=18, ax=ax,
                        legend=ax is axes[0])
        payload_axis(ax, dep["payload_kb"].unique())
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(xlabel="payload (KB, log)", ylabel=f"SHAP ({col.removeprefix('shap_')}), log-odds of Lambda")
    handles, labels = axes[0].get_legend_handles_labels()
    if axes[0].get_legend() is not None:
        axes[0].get_legend().remove()
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=max(len(labels), 1), frameon=False)
    plt.close(fig)
    return fig


def beeswarm_figure(expl: shap.Explanation, max_display: int = 14) -> plt.Figure:
    """shap's beeswarm: one dot per explained pair and feature, coloured by the feature's value."""
    plt.figure()
    shap.plots.beeswarm(expl, max_display=max_display, show=False, plot_size=(9, 0.45 * max_display + 1.5))
    fig = plt.gcf()
    fig.axes[0].set_title("SHAP values per test pair (colour: feature value)")
    return done(fig)


def log_scatter_figure(expl: shap.Explanation, feature: str, colour: str,
                       colour_codes: Mapping[str, int] | None = None) -> plt.Figure:
    """shap's dependence scatter of `feature` on a log x axis whose limits and ticks come from the
    data (report.common.payload_axis), coloured by `colour`; `colour_codes` (name ->
    code, e.g. FeatureSpec.workload_codes) names a categorical colour feature's codes on its colour bar.

    shap's own band (a histogram with linear bins, starting below zero) and its x jitter (a share of
    the smallest gap, in linear units) are left out: on a log axis the band covers the plot and the
    jitter moves small values by a large factor."""
    x = np.asarray(expl[:, feature].data, dtype="float64")
    x = x[np.isfinite(x)]
    if not len(x) or x.min() <= 0:
        raise ValueError(f"{feature}: a log axis needs positive values (smallest {x.min() if len(x) else None})")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    shap.plots.scatter(expl[:, feature], color=expl[:, colour], hist=False, x_jitter=0, ax=ax, show=False)
    payload_axis(ax, np.unique(x))
    ax.set_xlabel(f"{feature} (log)")
    bar = fig.axes[-1] if len(fig.axes) > 1 else None
    norm = ax.collections[0].norm if ax.collections else None
    if colour_codes and bar is not None and isinstance(norm, BoundaryNorm):
        edges = np.asarray(norm.boundaries)
        names = [name for name, _ in sorted(colour_codes.items(), key=lambda kv: kv[1])]
        if len(edges) == len(names) + 1:  # one colour band per code, in code order
            bar.set_yticks((edges[:-1] + edges[1:]) / 2, names)
    return done(fig)
