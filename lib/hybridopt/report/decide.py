"""Tables and figures of stage 06 (decide) for the notebook, drawn from a decisions document
(`hybridopt.decision.artifacts`: decisions.json as written). No computation beyond arranging it."""

from __future__ import annotations

from typing import Any, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from hybridopt.decision.evaluate import LOAD_BINS
from hybridopt.report.common import PLATFORM_COLOURS, done

KIND_COLOURS = {"static": "#555555", "classifier": "#7b3fa0", "objective": "#2a9d4b", "oracle": "#d62728"}
KIND_MARKERS = {"static": "s", "classifier": "D", "objective": "o", "oracle": "*"}


def _frame(doc: Mapping[str, Any], key: str) -> pd.DataFrame:
    return pd.DataFrame(doc.get(key) or [])


def _ci(df: pd.DataFrame, col: str, fmt: str) -> pd.Series:
    lo, hi = df.get(f"{col}_ci_low"), df.get(f"{col}_ci_high")

    def one(i: int) -> str:
        v = df[col].iloc[i]
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        s = format(v, fmt)
        if lo is not None and pd.notna(lo.iloc[i]) and pd.notna(hi.iloc[i]):
            s += f" [{format(lo.iloc[i], fmt)}, {format(hi.iloc[i], fmt)}]"
        return s

    return pd.Series([one(i) for i in range(len(df))], index=df.index)


def open_loop(doc: Mapping[str, Any]) -> str:
    return f"**{doc['open_loop']}**"


def notes_markdown(doc: Mapping[str, Any]) -> str:
    items = doc.get("notes") or []
    return "\n".join(f"- {n}" for n in items) if items else "_no notes_"


def summary_markdown(doc: Mapping[str, Any]) -> str:
    """The objective policy beside the best static policy, in words, with their CIs."""
    s = doc["summary"]
    best, obj = s["best_static"], s["policies"]["objective"]
    b = s["policies"][best]

    def reg(r: Mapping[str, Any]) -> str:
        return (f"${r['regret_usd_per_1k_requests']:+.5f} per 1,000 [{r['regret_usd_per_1k_requests_ci_low']:+.5f}, "
                f"{r['regret_usd_per_1k_requests_ci_high']:+.5f}] and {r['regret_ms_per_request']:+.0f} ms per request "
                f"[{r['regret_ms_per_request_ci_low']:+.0f}, {r['regret_ms_per_request_ci_high']:+.0f}]")

    return (f"Judged by the `{s['objective']}` objective ({s['objective_kind']}) against its own oracle on "
            f"{doc['data']['pairs']:,} {'held-out ' if doc['mode'] == 'leave_session_out' else ''}pairs: the objective "
            f"policy's regret is {reg(obj)} (SLO misses {obj['slo_miss_share']:.3f}, bill "
            f"${obj['bill_avg_usd_per_1k_requests']:.5f} per 1,000); the best static policy by the same objective, "
            f"`{best}`, has {reg(b)} (SLO misses {b['slo_miss_share']:.3f}, bill ${b['bill_avg_usd_per_1k_requests']:.5f} "
            f"per 1,000). By the objective's aggregate score ({s['score_rule']}) the objective policy scores "
            f"{'better' if s['objective_scores_better_than_best_static'] else 'no better'} than `{best}`. "
            "Negative dollars: cheaper than the oracle, which pays for meeting the SLO.")


def policy_table(doc: Mapping[str, Any]) -> pd.DataFrame:
    """One row per policy: what it routed, its bill, latency, failures and regret, with 95 % CIs."""
    p = _frame(doc, "policies")
    out = pd.DataFrame({
        "kind": p["kind"], "judged by": p["judged_by"], "Lambda share": p["lambda_share"].round(3),
        "bill $/1k requests": _ci(p, "bill_avg_usd_per_1k_requests", ".5f"),
        "marginal $/1k": _ci(p, "marginal_avg_usd_per_1k_requests", ".5f"),
        "p50 ms": p["latency_p50_ms"].round(0), "p95 ms": _ci(p, "latency_p95_ms", ".0f"), "p99 ms": p["latency_p99_ms"].round(0),
        "failure rate": _ci(p, "failure_rate", ".4f"), "SLO misses": _ci(p, "slo_miss_share", ".4f"),
        "regret $/1k": _ci(p, "regret_usd_per_1k_requests", "+.5f"), "regret ms/request": _ci(p, "regret_ms_per_request", "+.0f"),
        "regret objective $/1k": (_ci(p, "regret_objective_usd_per_1k_requests", "+.5f")
                                  if "regret_objective_usd_per_1k_requests" in p else ""),
        "agrees with oracle": p["oracle_agreement"].round(3)})
    out.index = p["policy"]
    return out


def by_workload_table(doc: Mapping[str, Any], policies: tuple[str, ...] = (
        "always_lambda", "always_ecs", "workload_rule", "lookup_table", "classifier@best", "objective", "oracle")
        ) -> pd.DataFrame:
    """Some policies' routing per workload: Lambda share, marginal cost, p95, SLO misses, regret."""
    b = _frame(doc, "by_workload")
    if b.empty:
        return b
    b = b[b["policy"].isin(policies)].set_index(["workload_type", "policy"]).sort_index()
    return b.drop(columns=["n_pairs"])


def wins_table(doc: Mapping[str, Any]) -> pd.DataFrame:
    """Workload x payload rows, ECS load columns: the platform the objective prefers for the cell
    and the oracle's Lambda share in it (pairs in brackets)."""
    w = _frame(doc, "wins")
    if w.empty:
        return w
    w["cell"] = [f"{a} ({s:.2f}, n={n})" for a, s, n in zip(w["objective_prefers"], w["oracle_lambda_share"], w["n_pairs"])]
    t = w.pivot_table(index=["workload_type", "payload_size_kb"], columns="ecs_load", values="cell", aggfunc="first")
    return t[[c for c in LOAD_BINS if c in t.columns]]


def wins_figure(doc: Mapping[str, Any]) -> plt.Figure:
    """Heatmap of the oracle's Lambda share by workload x payload (rows) and ECS load (columns)."""
    w = _frame(doc, "wins")
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.32 * w[["workload_type", "payload_size_kb"]].drop_duplicates().shape[0] + 1)))
    if w.empty:
        ax.set_axis_off()
        return done(fig)
    share = w.pivot_table(index=["workload_type", "payload_size_kb"], columns="ecs_load", values="oracle_lambda_share")
    share = share[[c for c in LOAD_BINS if c in share.columns]]
    n = w.pivot_table(index=["workload_type", "payload_size_kb"], columns="ecs_load", values="n_pairs").reindex_like(share)
    annot = share.map(lambda v: "" if pd.isna(v) else f"{v:.2f}") + n.map(lambda v: "" if pd.isna(v) else f"\nn={v:.0f}")
    sns.heatmap(share, annot=annot, fmt="", cmap=sns.diverging_palette(240, 30, as_cmap=True), vmin=0, vmax=1, ax=ax,
                cbar_kws={"label": "oracle sends to Lambda (share)"}, annot_kws={"fontsize": 7})
    ax.set(xlabel="ECS service load when decided (in flight / worker capacity)", ylabel="workload, payload KB",
           title="Where each platform wins (the default objective's oracle)")
    return done(fig)


def pareto_figure(doc: Mapping[str, Any]) -> plt.Figure:
    """Bill per 1,000 requests against p95 latency per policy with 95 % CIs; Pareto-efficient
    policies joined; the oracles as stars (reference points, not reachable)."""
    f = _frame(doc, "frontier")
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    for kind, g in f.groupby("kind"):
        x, y = g["bill_avg_usd_per_1k_requests"], g["latency_p95_ms"]
        xerr = np.vstack([x - g["bill_avg_usd_per_1k_requests_ci_low"], g["bill_avg_usd_per_1k_requests_ci_high"] - x])
        yerr = np.vstack([y - g["latency_p95_ms_ci_low"], g["latency_p95_ms_ci_high"] - y])
        ax.errorbar(x, y, xerr=np.abs(xerr), yerr=np.abs(yerr), fmt=KIND_MARKERS.get(kind, "o"),
                    color=KIND_COLOURS.get(kind, "k"), ms=12 if kind == "oracle" else 7, capsize=2, lw=0.8,
                    label=kind, alpha=0.85)
        for _, r in g.iterrows():
            ax.annotate(r["policy"], (r["bill_avg_usd_per_1k_requests"], r["latency_p95_ms"]), fontsize=6.5,
                        xytext=(4, 3), textcoords="offset points")
    front = f[f["pareto"]].sort_values("bill_avg_usd_per_1k_requests")
    ax.plot(front["bill_avg_usd_per_1k_requests"], front["latency_p95_ms"], color="#2a9d4b", lw=1, ls="--",
            label="Pareto frontier (non-oracle)")
    ax.set(xlabel="bill, average USD per 1,000 requests (95 % CI)", ylabel="p95 latency of chosen attempts, ms (95 % CI)",
           title="Policies: bill against p95 (lower left is better; OPEN LOOP)")
    ax.legend(fontsize=8)
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
        "decision features": ", ".join(g["feature_columns"]),
        "no response counts in flight for (s)": g["missing_completion_s"]}})
