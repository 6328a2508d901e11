"""Tables and figures of stage 06 (decide) for the notebook, drawn from a decisions document
(`hybridopt.decision.artifacts`: decisions.json as written). No computation beyond arranging it."""

from __future__ import annotations

from typing import Any, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from hybridopt.decision.evaluate import LOAD_BINS, NEITHER, WIN_MIN_PAIRS
from hybridopt.report.common import PLATFORM_COLOURS, done

KIND_COLOURS = {"static": "#555555", "classifier": "#7b3fa0", "objective": "#2a9d4b", "oracle": "#d62728"}
NEITHER_COLOUR = "#c8c8c8"
KIND_MARKERS = {"static": "s", "classifier": "D", "objective": "o", "oracle": "*"}


def _frame(doc: Mapping[str, Any], key: str) -> pd.DataFrame:
    return pd.DataFrame(doc.get(key) or [])


def _na(df: pd.DataFrame, col: str, i: int) -> str:
    """Why row i of a metric has no CI ("" when it has one); a zero-width interval has none."""
    why = df[f"{col}_ci_na"].iloc[i] if f"{col}_ci_na" in df else ""
    if isinstance(why, str) and why:
        return why
    lo, hi = df.get(f"{col}_ci_low"), df.get(f"{col}_ci_high")
    if lo is None or hi is None or pd.isna(lo.iloc[i]) or pd.isna(hi.iloc[i]):
        return "n/a"
    return "n/a: zero-width interval" if hi.iloc[i] <= lo.iloc[i] else ""


def ci_note(doc: Mapping[str, Any]) -> str:
    """One sentence on the table's CIs: given, or why not (said once rather than in every cell)."""
    p = _frame(doc, "policies")
    whys = {w for c in p.columns if c.endswith("_ci_na") for w in p[c] if isinstance(w, str) and w}
    blocks = _frame(doc, "blocks")
    shape = (f" ({len(blocks)} sessions, {int(blocks['blocks'].sum())} blocks of {blocks['block_s'].iloc[0]:g} s)"
             if not blocks.empty else "")
    if not whys:
        return f"Brackets: 95 % CIs from resampling minute blocks within sessions{shape}."
    return (f"95 % CIs from resampling minute blocks within sessions{shape}; where a CI is missing it is not "
            f"available: {'; '.join(sorted(w.removeprefix('n/a: ') for w in whys))}.")


def _ci(df: pd.DataFrame, col: str, fmt: str) -> pd.Series:
    """Value [low, high]; only the value when the CI is not available for every row alike (said
    once by `ci_note`), the value and "(n/a)" when only this row has none."""
    if col not in df:
        return pd.Series([""] * len(df), index=df.index)
    whys = [_na(df, col, i) for i in range(len(df))]
    common = len(set(whys)) == 1 and whys[0] != ""

    def one(i: int) -> str:
        v = df[col].iloc[i]
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        s = format(v, fmt)
        if whys[i] and not common:
            return f"{s} (n/a)"
        if not whys[i]:
            s += f" [{format(df[f'{col}_ci_low'].iloc[i], fmt)}, {format(df[f'{col}_ci_high'].iloc[i], fmt)}]"
        return s

    return pd.Series([one(i) for i in range(len(df))], index=df.index)


def _usd(x: float) -> str:
    """Dollars for markdown: the sign escaped (two bare $ in a paragraph would open TeX math)."""
    return f"-\\${-x:.5f}" if x < 0 else f"\\${x:.5f}"


def open_loop(doc: Mapping[str, Any]) -> str:
    return f"**{doc['open_loop']}**"


def notes_markdown(doc: Mapping[str, Any]) -> str:
    items = doc.get("notes") or []
    return "\n".join(f"- {n}" for n in items) if items else "_no notes_"


def summary_markdown(doc: Mapping[str, Any]) -> str:
    """The objective policy beside the best static policy, in words, with their CIs where given."""
    s = doc["summary"]
    best, obj = s["best_static"], s["policies"]["objective"]
    b = s["policies"][best]

    def rng(r: Mapping[str, Any], key: str, f: Any) -> str:
        lo, hi = r.get(f"{key}_ci_low"), r.get(f"{key}_ci_high")
        if r.get(f"{key}_ci_na") or lo is None or hi is None or not hi > lo:
            return ""
        return f" [{f(lo)}, {f(hi)}]"

    def reg(r: Mapping[str, Any]) -> str:
        return (f"{_usd(r['regret_usd_per_1k_requests'])} per 1,000 requests"
                f"{rng(r, 'regret_usd_per_1k_requests', _usd)} and {r['regret_ms_per_request']:,.0f} ms per request"
                f"{rng(r, 'regret_ms_per_request', lambda v: f'{v:,.0f}')}")

    return (f"Judged by the `{s['objective']}` objective ({s['objective_kind']}) against its own oracle on "
            f"{doc['data']['pairs']:,} {'held-out ' if doc['mode'] == 'leave_session_out' else ''}pairs: the objective "
            f"policy's regret is {reg(obj)} (SLO misses {obj['slo_miss_share']:.3f}, bill "
            f"{_usd(obj['bill_avg_usd_per_1k_requests'])} per 1,000); the best static policy by the same objective, "
            f"`{best}`, has {reg(b)} (SLO misses {b['slo_miss_share']:.3f}, bill {_usd(b['bill_avg_usd_per_1k_requests'])} "
            f"per 1,000). By the objective's aggregate score ({s['score_rule']}) the objective policy scores "
            f"{'better' if s['objective_scores_better_than_best_static'] else 'no better'} than `{best}`. "
            "Regret is the extra marginal cost and latency against the oracle, not the bill; negative dollars: "
            f"cheaper than the oracle, which pays for meeting the SLO. {ci_note(doc)}")


def policy_table(doc: Mapping[str, Any]) -> pd.DataFrame:
    """One row per policy: what it routed, its bill, latency, failures and regret, with 95 % CIs."""
    p = _frame(doc, "policies")
    out = pd.DataFrame({
        "kind": p["kind"], "judged by": p["judged_by"], "Lambda share": p["lambda_share"].round(3),
        "bill $/1k requests": _ci(p, "bill_avg_usd_per_1k_requests", ".5f"),
        "marginal $/1k": _ci(p, "marginal_avg_usd_per_1k_requests", ".5f"),
        "p50 ms": _ci(p, "latency_p50_ms", ",.0f"), "p95 ms": _ci(p, "latency_p95_ms", ",.0f"),
        "p99 ms": _ci(p, "latency_p99_ms", ",.0f"),
        "failure rate": _ci(p, "failure_rate", ".4f"), "SLO misses": _ci(p, "slo_miss_share", ".4f"),
        "regret $/1k": _ci(p, "regret_usd_per_1k_requests", ".5f"), "regret ms/request": _ci(p, "regret_ms_per_request", ",.0f"),
        "regret objective $/1k": (_ci(p, "regret_objective_usd_per_1k_requests", ".5f")
                                  if "regret_objective_usd_per_1k_requests" in p else ""),
        "agrees with oracle": p["oracle_agreement"].round(3)})
    out.index = p["policy"]
    return out


BY_WORKLOAD_COLUMNS = {"lambda_share": "Lambda share", "marginal_avg_usd_per_1k_requests": "marginal $/1k",
                       "latency_p95_ms": "p95 ms", "failure_rate": "failure rate", "slo_miss_share": "SLO misses",
                       "regret_usd_per_1k_requests": "regret $/1k", "regret_ms_per_request": "regret ms/request"}
#: Number formats of `by_workload_table`'s columns (for Exporter.table's `formats`).
BY_WORKLOAD_FORMATS = {"pairs": "{:,.0f}", "Lambda share": "{:.3f}", "marginal $/1k": "{:.5f}", "p95 ms": "{:,.0f}",
                       "failure rate": "{:.4f}", "SLO misses": "{:.4f}", "regret $/1k": "{:.5f}",
                       "regret ms/request": "{:,.0f}"}


def by_workload_table(doc: Mapping[str, Any], policies: tuple[str, ...] = (
        "always_lambda", "always_ecs", "workload_rule", "lookup_table", "classifier@best", "objective", "oracle")
        ) -> pd.DataFrame:
    """Some policies' routing per workload: pairs, Lambda share, marginal cost, p95, failures, SLO
    misses, regret (readable headers; formats in BY_WORKLOAD_FORMATS)."""
    b = _frame(doc, "by_workload")
    if b.empty:
        return b
    b = b[b["policy"].isin(policies)].copy()
    b["policy"] = pd.Categorical(b["policy"], [p for p in policies if p in set(b["policy"])], ordered=True)
    b = b.sort_values(["workload_type", "policy"]).rename(columns={"workload_type": "workload", "n_pairs": "pairs",
                                                                    **BY_WORKLOAD_COLUMNS})
    b["policy"] = b["policy"].astype(str)
    return b.set_index(["workload", "policy"])[["pairs", *BY_WORKLOAD_COLUMNS.values()]]


def _kb(x: float) -> str:
    return f"{x / 1024:g} MB" if x >= 1024 else f"{x:g} KB"


def _winner(w: pd.DataFrame) -> pd.Series:
    """The cell's winner: "neither" when most pairs failed on both platforms (older documents
    without `winner`: the preferred platform)."""
    return w["winner"] if "winner" in w else w["objective_prefers"]


def _low(w: pd.DataFrame) -> pd.Series:
    return w["low_confidence"].astype(bool) if "low_confidence" in w else w["n_pairs"] < WIN_MIN_PAIRS


def wins_table(doc: Mapping[str, Any]) -> pd.DataFrame:
    """Workload x payload rows, ECS load columns: the cell's winner ("neither (both fail)" when most
    pairs failed on both platforms), the oracle's Lambda share and the pairs ("low n" under
    WIN_MIN_PAIRS)."""
    w = _frame(doc, "wins")
    if w.empty:
        return w
    win = _winner(w).map(lambda x: "neither (both fail)" if x == NEITHER else x)
    w["cell"] = [f"{a} (Lambda share {s:.2f}, n={n}{', low n' if low else ''})"
                 for a, s, n, low in zip(win, w["oracle_lambda_share"], w["n_pairs"], _low(w))]
    w["payload"] = w["payload_size_kb"].map(_kb)
    w["order"] = w["payload_size_kb"]
    t = w.pivot_table(index=["workload_type", "order", "payload"], columns="ecs_load", values="cell", aggfunc="first")
    t = t.droplevel("order")
    t.index.names = ["workload", "payload"]
    t.columns.name = "ECS load"
    return t[[c for c in LOAD_BINS if c in t.columns]]


def wins_figure(doc: Mapping[str, Any]) -> plt.Figure:
    """Heatmap of the oracle's Lambda share by workload x payload (rows) and ECS load (columns);
    cells where most pairs failed on both platforms are grey and marked, cells with fewer than
    WIN_MIN_PAIRS pairs hatched."""
    w = _frame(doc, "wins")
    fig, ax = plt.subplots(figsize=(7.5, max(3.0, 0.34 * w[["workload_type", "payload_size_kb"]].drop_duplicates().shape[0] + 1.5)))
    if w.empty:
        ax.set_axis_off()
        return done(fig)
    w["neither"] = _winner(w) == NEITHER
    w["low"] = _low(w)
    idx = ["workload_type", "payload_size_kb"]
    share = w.pivot_table(index=idx, columns="ecs_load", values="oracle_lambda_share")
    share = share[[c for c in LOAD_BINS if c in share.columns]]
    n = w.pivot_table(index=idx, columns="ecs_load", values="n_pairs").reindex_like(share)
    neither = w.pivot_table(index=idx, columns="ecs_load", values="neither", aggfunc="max").reindex_like(share)
    low = w.pivot_table(index=idx, columns="ecs_load", values="low", aggfunc="max").reindex_like(share)
    annot = share.copy().astype(object)
    for i in range(share.shape[0]):
        for j in range(share.shape[1]):
            v, k = share.iat[i, j], n.iat[i, j]
            annot.iat[i, j] = "" if pd.isna(v) else ("both fail" if neither.iat[i, j] == 1 else f"{v:.2f}") + f"\nn={k:.0f}"
    shown = share.mask(neither.fillna(0).astype(bool))
    sns.heatmap(shown, annot=annot, fmt="", cmap=sns.diverging_palette(240, 30, as_cmap=True), vmin=0, vmax=1, ax=ax,
                cbar_kws={"label": "oracle sends to Lambda (share)"}, annot_kws={"fontsize": 7})
    for i in range(share.shape[0]):
        for j in range(share.shape[1]):
            if neither.iat[i, j] == 1:
                ax.add_patch(plt.Rectangle((j, i), 1, 1, facecolor=NEITHER_COLOUR, edgecolor="white", zorder=0.5))
                ax.text(j + 0.5, i + 0.5, annot.iat[i, j], ha="center", va="center", fontsize=7, color="#222")
            if low.iat[i, j] == 1:
                ax.add_patch(plt.Rectangle((j, i), 1, 1, fill=False, hatch="///", edgecolor="#777", lw=0, zorder=2))
    ax.set_yticks(np.arange(share.shape[0]) + 0.5,
                  [f"{wl}, {_kb(float(kb))}" for wl, kb in share.index], rotation=0, fontsize=8)
    ax.set(xlabel="ECS service load when decided (in flight / worker capacity)", ylabel="workload, payload",
           title=f"Where each platform wins (the default objective's oracle)\n"
                 f"grey: most pairs fail on both platforms; hatched: fewer than {WIN_MIN_PAIRS} pairs")
    return done(fig)


def pareto_figure(doc: Mapping[str, Any]) -> plt.Figure:
    """Bill per 1,000 requests against p95 latency per policy, with 95 % CIs where given. The
    frontier policies and the default oracle are named on the plot; every policy has a number,
    listed beside it. The Pareto frontier is drawn when it has two or more policies; a single
    efficient policy is said to dominate. The client's timeout is marked: p95 cannot exceed it."""
    f = _frame(doc, "frontier").reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(11, 6))
    f["no"] = np.arange(1, len(f) + 1)
    for kind, g in f.groupby("kind"):
        x, y = g["bill_avg_usd_per_1k_requests"], g["latency_p95_ms"]
        xerr = np.vstack([x - g["bill_avg_usd_per_1k_requests_ci_low"], g["bill_avg_usd_per_1k_requests_ci_high"] - x])
        yerr = np.vstack([y - g["latency_p95_ms_ci_low"], g["latency_p95_ms_ci_high"] - y])
        ax.errorbar(x, y, xerr=np.nan_to_num(np.abs(xerr)), yerr=np.nan_to_num(np.abs(yerr)),
                    fmt=KIND_MARKERS.get(kind, "o"), color=KIND_COLOURS.get(kind, "k"), ms=12 if kind == "oracle" else 7,
                    capsize=2, lw=0.8, label=kind, alpha=0.85)
    named = f["pareto"] | (f["policy"] == "oracle")
    ax.autoscale_view()
    to_px = ax.transData.transform
    taken: list[np.ndarray] = []
    offsets = [(5, 4), (5, -11), (-16, 4), (-16, -11), (5, 15), (-16, 15), (5, -22), (-16, -22), (16, 4), (16, -11),
               (-27, 4), (-27, -11), (16, 15), (-27, 15), (16, -22), (-27, -22)]
    for k, r in f.sort_values("latency_p95_ms", kind="stable").iterrows():
        xy = (r["bill_avg_usd_per_1k_requests"], r["latency_p95_ms"])
        if not np.all(np.isfinite(xy)):
            continue
        base = to_px(xy)
        # the first offset whose label does not sit on an earlier one (in display pixels)
        px = fig.dpi / 72.0
        off = next((o for o in offsets if all(np.abs(base + np.array(o) * px - t).max() > 10 * px for t in taken)),
                   offsets[0])
        taken.append(base + np.array(off) * px)
        if named[k]:
            ax.annotate(f"{r['no']} {r['policy']}", xy, fontsize=8, fontweight="bold", xytext=off,
                        textcoords="offset points", color="#111")
        else:
            ax.annotate(str(r["no"]), xy, fontsize=7, xytext=off, textcoords="offset points", color="#333")
    front = f[f["pareto"]].sort_values("bill_avg_usd_per_1k_requests")
    if len(front) >= 2:
        ax.plot(front["bill_avg_usd_per_1k_requests"], front["latency_p95_ms"], color="#2a9d4b", lw=1, ls="--",
                label="Pareto frontier (non-oracle)")
    elif len(front) == 1:
        ax.text(0.01, 0.9, f"{front['policy'].iloc[0]} dominates every other deployable policy (as cheap and as fast "
                "or better): the frontier is this one point", transform=ax.transAxes, fontsize=8, color="#2a9d4b")
    timeout_s = (doc.get("leak_guard") or {}).get("missing_completion_s")
    if timeout_s:
        ax.axhline(float(timeout_s) * 1000, color="#b22", ls=":", lw=1,
                   label=f"client timeout {float(timeout_s) * 1000:,.0f} ms (p95 here: over 5 % got no response)")
    ax.set(xlabel="bill, average USD per 1,000 requests (95 % CI where given)",
           ylabel="p95 latency of chosen attempts, ms (95 % CI where given)",
           title="Policies: bill against p95 (lower left is better; OPEN LOOP)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    listing = "\n".join(f"{r['no']:>2} {r['policy']}" for _, r in f.iterrows())
    ax.text(1.01, 0.62, listing, transform=ax.transAxes, fontsize=7, va="top", family="monospace")
    return done(fig)


def coverage_table(doc: Mapping[str, Any]) -> pd.DataFrame:
    c = _frame(doc, "coverage")
    return c.set_index(["platform", "workload_type"]) if not c.empty else c


def coverage_figure(doc: Mapping[str, Any]) -> plt.Figure:
    """Held-out coverage of the predicted p50 and p95 per platform and workload, with the targets."""
    c = _frame(doc, "coverage")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, (col, target) in zip(axes, (("p50_coverage", 0.5), ("p95_coverage", 0.95))):
        if not c.empty:
            sns.barplot(c, x="workload_type", y=col, hue="platform", palette=PLATFORM_COLOURS, ax=ax)
        ax.axhline(target, color="grey", ls="--", lw=1)
        ax.set(ylim=(0, 1), xlabel="", ylabel="share of successful held-out attempts at or below",
               title=f"{col.split('_')[0]} (target {target})")
        ax.tick_params(axis="x", rotation=30, labelsize=7)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:                                   # one legend, outside the bars
        fig.legend(handles, labels, title="platform", loc="upper left", bbox_to_anchor=(1.0, 0.9), fontsize=8)
    return done(fig)


def bill_table(doc: Mapping[str, Any], policies: tuple[str, ...] = ("always_lambda", "always_ecs", "workload_rule",
                                                                     "objective", "oracle")) -> pd.DataFrame:
    """Dollars per bill item (rows) for some policies (columns)."""
    b = _frame(doc, "bill_lines")
    if b.empty:
        return b
    b = b[b["policy"].isin(policies)]
    t = b.pivot_table(index="item", columns="policy", values="usd", aggfunc="sum", fill_value=0.0)
    t.loc["total"] = t.sum()
    return t[[p for p in policies if p in t.columns]]


def folds_table(doc: Mapping[str, Any]) -> pd.DataFrame:
    rows = [{"held out": f["held_out"], "pairs": f["n_test"], "fitted on": f["n_train"],
             "workload rule": ", ".join(f"{k}: {v}" for k, v in f["workload_rule"].items()),
             "classifier@best threshold": f["threshold_best"], "threshold from": f["threshold_method"]}
            for f in doc.get("folds") or []]
    return pd.DataFrame(rows)


def leak_guard_table(doc: Mapping[str, Any]) -> pd.DataFrame:
    g = doc["leak_guard"]
    c = g["check_causal"]
    return pd.DataFrame({"value": {
        "check_causal probes": c["probes"], "largest change of a load feature": c["max_abs_diff"],
        "passed": c["passed"], "feature guard": g["feature_guard"],
        f"decision features ({_feature_count(g)})": ", ".join(g["feature_columns"]),
        "no response counts in flight for (s)": g["missing_completion_s"]}})


def _feature_count(g: Mapping[str, Any]) -> str:
    """ "14 plan features + 8 load features" (older documents: the total)."""
    if "plan_features" in g:
        return f"{g['plan_features']} plan features + {g['load_features']} load features"
    return f"{len(g['feature_columns'])} columns"
