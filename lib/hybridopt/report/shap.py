"""Stage 05 (SHAP): the importance table and the figures of what the served model learned."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import shap


def share_table(expl: shap.Explanation, importance: dict[str, Any]) -> pd.DataFrame:
    """Mean |SHAP| share per feature on this sample beside the verdict's share (04_train) and the
    model's own importance, largest first. `importance` is model_metadata['importance'][model]."""
    mean_abs = np.abs(expl.values).mean(0)
    out = pd.DataFrame({"shap_share (this sample)": mean_abs / mean_abs.sum(),
                        "shap_share (verdict, 04)": pd.Series(importance["shap_share"]),
                        f"own {importance['own_kind']}": pd.Series(importance["own_share"])},
                       index=expl.feature_names)
    return out.sort_values("shap_share (this sample)", ascending=False)


def payload_dependence_figure(dep: pd.DataFrame) -> Any:
    """SHAP of payload_size_kb alone and of the whole payload family against payload size, by
    workload (`dep` from dependence_frame). Returns a closed Figure."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=False)
    for ax, col in zip(axes, ["shap_payload_size_kb", "shap_payload_all"]):
        sns.scatterplot(dep, x="payload_kb", y=col, hue="workload", alpha=0.5, s=18, ax=ax)
        ax.set_xscale("log")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(xlabel="payload (KB, log)", ylabel=f"SHAP ({col.removeprefix('shap_')}), log-odds of Lambda")
    fig.tight_layout()
    plt.close(fig)
    return fig
