"""Tables and figures of 09_closed_loop from closed_loop.json (`hybridopt.closedloop.replay`): the
closed-loop table, the open loop beside it and where they disagree, the frontier, the runs."""

from __future__ import annotations

import math
from typing import Any, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from adjustText import adjust_text

from hybridopt.decision.evaluate import frontier
from hybridopt.report.common import done
from hybridopt.report.decide import _ci

METRIC_LABELS = {"bill_usd_per_1k": "bill $/1k", "p95_ms": "p95 ms", "failure_rate": "failure rate",
                 "slo_miss_share": "SLO misses"}
FORMATS = {"bill_usd_per_1k": ".5f", "p95_ms": ",.0f", "failure_rate": ".4f", "slo_miss_share": ".4f"}


def _md(text: str) -> str:
    """Text for markdown: $ escaped (two bare $ in a paragraph would open TeX math)."""
    return text.replace("$", "\\$")


def _frame(doc: Mapping[str, Any], key: str) -> pd.DataFrame:
    return pd.DataFrame(doc.get(key) or [])


def kind_of(policy: str) -> str:
    if policy.startswith("threshold:"):
        return "threshold"
    if policy.startswith("objective"):
        return "objective"
    if policy.startswith("classifier"):
        return "classifier"
    return "static"


def intro_markdown(doc: Mapping[str, Any]) -> str:
    """What was replayed and how long it took."""
    seeds = doc.get("seeds") or []
    s = (f"**{doc['closed_loop']}**\n\n{doc['arrivals']:,} logged pairs ({len(doc.get('sessions') or [])} sessions) "
         f"replayed under {len(doc.get('policies') or [])} policies x {len(seeds)} seeds {seeds}: "
         f"{doc['wall_s']:,.0f} s wall, {doc['cpu_runs_s']:,.0f} s in the runs. 95 % intervals are Student-t "
         f"over the seeds (the arrivals are the same logged pairs in every run; the seed draws the platforms' "
         f"randomness: service times, network, cold starts).")
    if doc.get("skipped"):
        s += f"\n\nNot replayed (the profile has no decision folder): {', '.join(doc['skipped'])}."
    om = doc.get("open_meta") or {}
    if not om.get("present"):
        s += f"\n\nNo open-loop results to compare: the decide stage writes {om.get('path', 'decisions.json')}."
    elif not om.get("same_params"):
        s += (f"\n\nThe open-loop decisions.json was made with other params (hash {om.get('params_hash')}): "
              "rerun 06_decide for a like-for-like comparison.")
    return s


def closed_table(doc: Mapping[str, Any]) -> pd.DataFrame:
    """One row per policy: closed-loop means over seeds with 95 % CIs."""
    c = _frame(doc, "closed")
    out = pd.DataFrame({
        "Lambda share": _ci(c, "lambda_share", ".3f"), "bill $/1k requests": _ci(c, "bill_usd_per_1k", ".5f"),
        "p50 ms": _ci(c, "p50_ms", ",.0f"), "p95 ms": _ci(c, "p95_ms", ",.0f"), "p99 ms": _ci(c, "p99_ms", ",.0f"),
        "failure rate": _ci(c, "failure_rate", ".4f"), "SLO misses": _ci(c, "slo_miss_share", ".4f"),
        "objective $/1k": _ci(c, "objective_usd_per_1k", ".4f"), "seeds": c["seeds"], "what": c["policy_detail"]})
    out.index = c["policy"]
    return out


def comparison_table(doc: Mapping[str, Any]) -> pd.DataFrame:
    """Per policy present in both: closed loop and open loop side by side per metric; `!` marks a
    metric whose two intervals do not overlap."""
    cmp = _frame(doc, "comparison")
    if cmp.empty:
        return pd.DataFrame()
    rows: dict[str, dict[str, str]] = {}
    for _, r in cmp.iterrows():
        fmt = FORMATS[r["metric"]]
        lab = METRIC_LABELS[r["metric"]]
        row = rows.setdefault(r["policy"], {})
        ci_c = "" if pd.isna(r["closed_ci_low"]) else f" [{r['closed_ci_low']:{fmt}}, {r['closed_ci_high']:{fmt}}]"
        ci_o = "" if pd.isna(r["open_ci_low"]) else f" [{r['open_ci_low']:{fmt}}, {r['open_ci_high']:{fmt}}]"
        row[f"{lab} closed"] = f"{r['closed']:{fmt}}{ci_c}"
        row[f"{lab} open"] = f"{r['open']:{fmt}}{ci_o}" + (" !" if r["disagree"] else "")
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "policy"
    return out


def disagreements_markdown(doc: Mapping[str, Any]) -> str:
    """Where closed and open loop disagree: metrics whose intervals are apart, and rank changes."""
    cmp = _frame(doc, "comparison")
    if cmp.empty:
        return "No open-loop results on these pairs to compare with."
    lines = []
    for m, g in cmp.groupby("metric", sort=False):
        dis = g[g["disagree"].astype(bool)]
        if len(dis):
            fmt = FORMATS[str(m)]
            parts = [f"{r['policy']} {r['open']:{fmt}} -> {r['closed']:{fmt}}" for _, r in dis.iterrows()]
            lines.append(f"- **{_md(METRIC_LABELS[str(m)])}** (open -> closed), {len(dis)} of {len(g)} policies apart: "
                         + "; ".join(parts))
        else:
            lines.append(f"- **{_md(METRIC_LABELS[str(m)])}**: the intervals overlap for every policy")
    rk = _frame(doc, "rankings")
    if not rk.empty:
        for m in METRIC_LABELS:
            oc, cc = f"{m}_rank_open", f"{m}_rank_closed"
            best_o = rk.loc[rk[oc] == rk[oc].min(), "policy"].tolist()
            best_c = rk.loc[rk[cc] == rk[cc].min(), "policy"].tolist()
            moved = rk[(rk[oc] - rk[cc]).abs() >= 3]["policy"].tolist()
            same = "the same" if set(best_o) == set(best_c) else "a different"
            lines.append(f"- lowest {_md(METRIC_LABELS[m])}: open loop {', '.join(best_o)}; closed loop {', '.join(best_c)} "
                         f"({same} policy)" + (f"; moved 3 or more places: {', '.join(moved)}" if moved else ""))
    return "\n".join(lines)


def frontier_table(doc: Mapping[str, Any]) -> pd.DataFrame:
    """Closed-loop bill against p95 per policy with CIs; `pareto`: no other policy at least as good on
    both and better on one (hybridopt.decision.evaluate.frontier)."""
    c = _frame(doc, "closed")
    f = pd.DataFrame({"policy": c["policy"], "kind": [kind_of(p) for p in c["policy"]], "judged_by": "default",
                      **{f"bill_avg_usd_per_1k_requests{s}": c[f"bill_usd_per_1k{s}"] for s in ("", "_ci_low", "_ci_high")},
                      **{f"latency_p95_ms{s}": c[f"p95_ms{s}"] for s in ("", "_ci_low", "_ci_high")}})
    return frontier(f)


KIND_COLOURS = {"static": "#555555", "classifier": "#7b3fa0", "objective": "#2a9d4b", "threshold": "#e07b00"}
KIND_MARKERS = {"static": "s", "classifier": "D", "objective": "o", "threshold": "^"}
#: frontier_table's display formats: dollars per 1,000 to 5 decimals, milliseconds whole
FRONTIER_FORMATS = {**{f"bill_avg_usd_per_1k_requests{s}": "{:.5f}" for s in ("", "_ci_low", "_ci_high")},
                    **{f"latency_p95_ms{s}": "{:,.0f}" for s in ("", "_ci_low", "_ci_high")}}


def frontier_figure(doc: Mapping[str, Any]) -> plt.Figure:
    """Closed loop: bill per 1,000 against p95 with 95 % CIs over seeds, the Pareto frontier dashed;
    each policy's open-loop point hollow, joined to its closed-loop point by a thin line."""
    f = frontier_table(doc)
    opened = {r["policy"]: r for r in doc.get("open") or []}
    fig, ax = plt.subplots(figsize=(9, 5.8))
    labels = []
    for kind, g in f.groupby("kind"):
        x, y = g["bill_avg_usd_per_1k_requests"].astype(float), g["latency_p95_ms"].astype(float)
        xerr = np.vstack([x - g["bill_avg_usd_per_1k_requests_ci_low"].astype(float),
                          g["bill_avg_usd_per_1k_requests_ci_high"].astype(float) - x])
        yerr = np.vstack([y - g["latency_p95_ms_ci_low"].astype(float), g["latency_p95_ms_ci_high"].astype(float) - y])
        col = KIND_COLOURS.get(str(kind), "k")
        ax.errorbar(x, y, xerr=np.nan_to_num(np.abs(xerr)), yerr=np.nan_to_num(np.abs(yerr)),
                    fmt=KIND_MARKERS.get(str(kind), "o"), color=col, ms=7, capsize=2, lw=0.8,
                    label=f"{kind} (closed loop)")
        for _, r in g.iterrows():
            labels.append(ax.text(float(r["bill_avg_usd_per_1k_requests"]), float(r["latency_p95_ms"]), r["policy"],
                                  fontsize=6.5))
            o = opened.get(r["policy"])
            if o and o.get("bill_avg_usd_per_1k_requests") is not None and o.get("latency_p95_ms") is not None:
                ox, oy = float(o["bill_avg_usd_per_1k_requests"]), float(o["latency_p95_ms"])
                ax.plot([ox, r["bill_avg_usd_per_1k_requests"]], [oy, r["latency_p95_ms"]], color=col, lw=0.5, alpha=0.5)
                ax.plot(ox, oy, KIND_MARKERS.get(str(kind), "o"), mfc="none", color=col, ms=7, alpha=0.7)
    front = f[f["pareto"]].sort_values("bill_avg_usd_per_1k_requests")
    ax.plot(front["bill_avg_usd_per_1k_requests"], front["latency_p95_ms"], color="#2a9d4b", lw=1, ls="--",
            label="Pareto frontier (closed loop)")
    if opened:
        ax.plot([], [], "o", mfc="none", color="#555555", label="open loop (same policy, hollow)")
    ax.set(xlabel="bill, average USD per 1,000 requests (95 % CI over seeds)",
           ylabel="p95 latency, ms (95 % CI over seeds)",
           title="Policies closed loop: bill against p95 (lower left is better)")
    ax.legend(fontsize=7.5)
    if labels:    # policies close together: labels moved apart, each joined to its point
        adjust_text(labels, ax=ax, arrowprops={"arrowstyle": "-", "color": "#888888", "lw": 0.4})
    return done(fig)


def runs_table(doc: Mapping[str, Any]) -> pd.DataFrame:
    """Every run: policy, seed, what it measured and how long it took."""
    r = _frame(doc, "runs")
    cols = ["policy", "seed", "requests", "lambda_share", "bill_usd", "bill_usd_per_1k", "p95_ms", "failure_rate",
            "lambda_cold_starts", "ecs_tasks_started", "model_out_of_order", "loop_s", "wall_s"]
    return r[[c for c in cols if c in r.columns]].round(5)


def summary_markdown(doc: Mapping[str, Any]) -> str:
    """The cheapest, the fastest and the least-failing policy closed loop, and whether open loop
    picked the same."""
    c = _frame(doc, "closed")
    if c.empty:
        return "No closed-loop runs."
    out = []
    for m, fmt, what in (("bill_usd_per_1k", ".5f", "lowest bill"), ("p95_ms", ",.0f", "lowest p95"),
                         ("failure_rate", ".4f", "fewest failures"), ("slo_miss_share", ".4f", "fewest SLO misses")):
        v = c[m].astype(float)
        best = c.loc[v.idxmin()]
        lo, hi = best[f"{m}_ci_low"], best[f"{m}_ci_high"]
        ci = "" if (lo is None or (isinstance(lo, float) and math.isnan(lo))) else f" [{lo:{fmt}}, {hi:{fmt}}]"
        out.append(f"- {what}: **{best['policy']}** ({best[m]:{fmt}}{ci})")
    return "Closed loop, means over seeds with 95 % CIs:\n" + "\n".join(out)
