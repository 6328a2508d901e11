"""Stage 01 (collection): the schedule, each window's outcomes and the load generator's health."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from hybridopt.collection import Manifest, legacy_summary, plan, summary_rows
from hybridopt.params import Params
from hybridopt.report.common import done


def plan_frame(params: Params, force: bool = False) -> pd.DataFrame:
    """The schedule as a table: window, load pattern, local hours, and whether it is done already."""
    tw = params.time_windows
    return pd.DataFrame([{"time_window": w, "load_pattern": tw[w].load_pattern,
                          "local_hours": f"{tw[w].start_hour:02d}-{tw[w].end_hour:02d}", "done_already": done}
                         for w, done in plan(params, force=force)])


def summary_frame(mans: Sequence[Manifest]) -> pd.DataFrame:
    """summary_rows as a DataFrame (one row per window)."""
    return pd.DataFrame(summary_rows(mans))


def outcomes_frame(mans: Sequence[Manifest]) -> pd.DataFrame:
    """Long table of lines per window, platform and outcome ("ok" or the error kind)."""
    rows = [{"time_window": m.get("time_window"), "platform": plat, "outcome": kind, "lines": n}
            for m in mans for plat, per in ((m.get("outcomes") or {}).get("by_platform") or {}).items()
            for kind, n in per.items()]
    return pd.DataFrame(rows, columns=["time_window", "platform", "outcome", "lines"])


def legacy_frame(params: Params) -> pd.DataFrame:
    """legacy_summary as a table for a legacy profile; an empty table for any other source."""
    return pd.DataFrame(legacy_summary(params)) if params.source == "legacy" else pd.DataFrame()


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
    return health, done(fig)
