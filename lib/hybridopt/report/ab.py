"""Stage 08 (A/B): the policy table and frontier of the offline evaluation, the arms' latency, and
the objective policy's A/B against the per-workload rule (arms, bills, differences, routing by load)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from hybridopt.report.common import done

if TYPE_CHECKING:
    from hybridopt.router.handler import Router


def served_policy(router: "Router") -> str:
    """What the router's treatment arm serves, in words."""
    if router.decision is not None:
        return "objective policy " + router.decision.version
    return "the plan's classifier (no decision/: run 06_decide)"

#: The columns of the offline policy table a supervisor reads (the rest stay in the frame).
POLICY_COLUMNS = ["lambda_share", "cost_per_request_usd", "cost_per_request_usd_low", "cost_per_request_usd_high",
                  "latency_p50_ms", "latency_p95_ms", "latency_p95_ms_low", "latency_p95_ms_high", "failure_rate",
                  "regret_cost_per_request_usd", "regret_latency_ms", "oracle_agreement"]


#: Per-request cost columns of the offline tables, shown per 1,000 requests (06's unit).
_COST_1K = {"cost_per_request_usd": "cost USD per 1k requests", "cost_per_request_usd_low": "cost per 1k low",
            "cost_per_request_usd_high": "cost per 1k high",
            "regret_cost_per_request_usd": "regret cost USD per 1k requests"}


def _per_1k(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in _COST_1K:
        if c in out.columns:
            out[c] = out[c].astype(float) * 1000
    return out.rename(columns=_COST_1K)


def policy_table(policies: pd.DataFrame) -> pd.DataFrame:
    """The offline evaluation's table (ab.offline.evaluate_policies) reduced to POLICY_COLUMNS,
    costs per 1,000 requests."""
    return _per_1k(policies[[c for c in POLICY_COLUMNS if c in policies.columns]])


def policy_frontier_figure(policies: pd.DataFrame) -> plt.Figure:
    """Cost per request against latency p95 per policy, with the bootstrap CIs as error bars."""
    p = policies.reset_index()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.errorbar(p["cost_per_request_usd"] * 1e3, p["latency_p95_ms"],
                xerr=[(p["cost_per_request_usd"] - p["cost_per_request_usd_low"]) * 1e3,
                      (p["cost_per_request_usd_high"] - p["cost_per_request_usd"]) * 1e3],
                yerr=[p["latency_p95_ms"] - p["latency_p95_ms_low"], p["latency_p95_ms_high"] - p["latency_p95_ms"]],
                fmt="none", ecolor="grey", alpha=0.6)
    sns.scatterplot(data=p, x=p["cost_per_request_usd"] * 1e3, y="latency_p95_ms", hue="policy", s=70, ax=ax)
    ax.set(xlabel="cost per 1,000 requests (USD)", ylabel="latency p95 (ms)", title="Policies on held-out pairs (95 % CIs)")
    ax.legend(fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")
    return done(fig)


def latency_ecdf_figure(frame: pd.DataFrame, title: str) -> plt.Figure:
    """Empirical CDF of client latency per arm (log scale)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    sns.ecdfplot(data=frame, x="latency_ms", hue="arm", log_scale=True, ax=ax)
    ax.set(title=title, xlabel="latency (ms)")
    return done(fig)


def vs_static_table(vs_static: pd.DataFrame) -> pd.DataFrame:
    """Each policy minus the static rule, one column per statistic (ab.offline.evaluate_policies)."""
    return _per_1k(vs_static.pivot(index="policy", columns="statistic", values="difference"))


def coverage_table(known: pd.DataFrame, none: pd.DataFrame) -> pd.DataFrame:
    """The synthetic checks side by side: a known difference, and none."""
    return pd.concat({"known difference": known, "no difference": none}, axis=1)


# ------------------------------------------------------------------ the objective policy's A/B
#: Cost metrics are shown per 1,000 requests (the bill's and the decide stage's unit).
_PER_1K = {"bill_avg_usd_per_request": "bill avg USD per 1k requests",
           "marginal_avg_usd_per_request": "marginal avg USD per 1k requests"}


def arms_table(res: Any, bills: pd.DataFrame | list[dict[str, Any]]) -> pd.DataFrame:
    """Per arm (ab.stats.compare_arms's `arms` beside the arms' bills): requests, Lambda share, the
    average bill and marginal cost per 1,000 requests, latency quantiles, error and SLO-miss rates."""
    b = bills if isinstance(bills, pd.DataFrame) else pd.DataFrame(bills).set_index("arm")
    a = res.arms.copy()
    out = pd.DataFrame({"requests": a["requests"].astype(int), "lambda_share": a["lambda_share"],
                        "bill avg USD per 1k requests": b["avg_usd_per_1k_requests"].reindex(a.index),
                        "marginal avg USD per 1k requests": 1000 * a["marginal_avg_usd_per_request"],
                        "latency p50 ms": a["latency_p50_ms"], "latency p95 ms": a["latency_p95_ms"],
                        "latency p99 ms": a["latency_p99_ms"], "error rate": a["error_rate"],
                        "SLO-miss rate": a["slo_miss_rate"]}, index=a.index)
    return out.dropna(axis=1, how="all")


def comparison_table(res: Any) -> pd.DataFrame:
    """Treatment minus control per metric with its 95 % CI and test (costs per 1,000 requests)."""
    c = res.comparison.copy()
    cols = ["control", "treatment", "difference", "ci_low", "ci_high"]
    for m in _PER_1K:
        if m in c.index:
            c.loc[m, cols] = c.loc[m, cols].astype(float) * 1000
    c = c.rename(index=_PER_1K)
    c["p_value"] = [p_value_text(float(p)).removeprefix("p ").removeprefix("= ") for p in c["p_value"]]
    c["significant"] = c["significant"].map({True: "yes", False: "no"})
    return c[[*cols, "relative_difference", "test", "p_value", "significant", "n_control", "n_treatment"]]


def bills_table(bills: pd.DataFrame | list[dict[str, Any]]) -> pd.DataFrame:
    """The arms' bills (ab.billing.arm_bills): what each arm's requests were billed, split into what
    its requests drove and the shared fleet, and the extrapolated average per 1,000 requests."""
    b = bills if isinstance(bills, pd.DataFrame) else pd.DataFrame(bills).set_index("arm")
    cols = ["requests", "lambda_requests", "ecs_requests", "ecs_services", "request_driven_usd", "fleet_usd", "bill_usd",
            "avg_usd_per_1k_requests", "capacity_basis"]
    return b[[c for c in cols if c in b.columns]]


def facts_table(facts: dict[str, Any]) -> pd.DataFrame:
    """The simulated run's scalar facts (counts, durations, versions, what the loop models)."""
    keep = {k: (", ".join(f"{kk} {vv:,}" if isinstance(vv, int) else f"{kk} {vv}" for kk, vv in v.items())
                if isinstance(v, dict) else v) for k, v in facts.items()
            if not isinstance(v, list) and k != "bill_note"}
    return pd.Series(keep, name="value").to_frame()


#: Bins of the workload's ECS requests in flight (upper edges, inclusive).
LOAD_BINS = [(0, 0, "0"), (1, 1, "1"), (2, 3, "2-3"), (4, 7, "4-7"), (8, 10 ** 9, "8+")]


def routing_by_load_figure(frame: pd.DataFrame, title: str) -> plt.Figure:
    """Share of each arm's requests sent to Lambda by how many of the workload's requests were in
    flight on ECS when the router decided, one panel per workload (objective path frames)."""
    f = frame.dropna(subset=["workload_in_flight_ecs"]).copy()
    wif = f["workload_in_flight_ecs"].to_numpy()
    f["ECS in flight (workload)"] = None
    for lo, hi, label in LOAD_BINS:
        f.loc[(wif >= lo) & (wif <= hi), "ECS in flight (workload)"] = label
    f["to Lambda"] = (f["platform"] == "lambda").astype(float)
    workloads = sorted(f["workload_type"].astype(str).unique())
    fig, axes = plt.subplots(1, len(workloads), figsize=(3.2 * len(workloads), 3.4), sharey=True, squeeze=False)
    order = [b[2] for b in LOAD_BINS]
    for ax, w in zip(axes[0], workloads):
        sub = f[f["workload_type"] == w]
        sns.pointplot(data=sub, x="ECS in flight (workload)", y="to Lambda", hue="arm", order=order,
                      hue_order=["control", "treatment"], errorbar=None, ax=ax, dodge=0.2)
        ax.set(title=w, ylim=(-0.05, 1.05), ylabel="share sent to Lambda")
        if ax is not axes[0][0] and ax.get_legend():
            ax.get_legend().remove()
    fig.suptitle(title)
    return done(fig)


# ------------------------------------------------------------------ the online run's accounting
#: The proxy's outcomes (`hybridopt.ab.proxy`: counts `<arm>:<platform>:<outcome>`), one sentence each.
_ACCOUNT_ROWS = [
    ("routed to Lambda, answered", ("lambda", "answered"),
     "the router chose Lambda and the platform answered (any HTTP status, passed through to the client)"),
    ("routed to ECS, answered", ("ecs", "answered"),
     "the router chose ECS and the platform answered (any HTTP status, passed through to the client)"),
    ("routed to Lambda, no answer (502)", ("lambda", "502"),
     "the router chose Lambda but the proxy got no answer from it (connection refused or reset, or none within "
     "the proxy's timeout): the proxy's own 502, the router itself never answers 5xx"),
    ("routed to ECS, no answer (502)", ("ecs", "502"),
     "the router chose ECS but the proxy got no answer from it (connection refused or reset, or none within "
     "the proxy's timeout): the proxy's own 502, the router itself never answers 5xx"),
]


def online_accounting_table(counts: dict[str, int], requests: pd.DataFrame) -> pd.DataFrame:
    """Every request of the online run, per arm: what the proxy did with it (`counts`, the
    `RouterProxy.counts`), reconciled with the contract lines Artillery wrote (`requests`, the
    analysis frame: `arm`, `ok`). Rows: the proxy's outcomes (each routed request in exactly one),
    their sum, the contract lines, the clients gone before their answer (a subset), and the
    requests failed in the arm's error rate; `meaning` says what each row counts."""
    arms = ["control", "treatment"]
    rows: list[dict[str, object]] = []

    def per_arm(label: str, values: dict[str, int], meaning: str) -> None:
        rows.append({"row": label, **{a: int(values.get(a, 0)) for a in arms},
                     "total": int(sum(values.get(a, 0) for a in arms)), "meaning": meaning})

    for label, (platform, outcome), meaning in _ACCOUNT_ROWS:
        per_arm(label, {a: counts.get(f"{a}:{platform}:{outcome}", 0) for a in arms}, meaning)
    routed = {a: sum(counts.get(f"{a}:{p}:{o}", 0) for p in ("lambda", "ecs") for o in ("answered", "502"))
              for a in arms}
    per_arm("routed requests (sum of the rows above)", routed, "every request the router decided, once each")
    arm_col = requests["arm"].astype(str)
    per_arm("contract lines (Artillery)", {a: int((arm_col == a).sum()) for a in arms},
            "one line per request the load generator sent, whatever happened to it; equals the routed requests "
            "when nothing was lost")
    per_arm("of which: client gone before the answer",
            {a: sum(counts.get(f"{a}:{p}:client_gone", 0) for p in ("lambda", "ecs")) for a in arms},
            "the client's own timeout fired first, so it never saw the answer (or the 502): its line is a "
            "timeout error; already counted in one of the rows above")
    failed = ~requests["ok"].astype(bool)
    per_arm("failed (in the arm's error rate)", {a: int((failed & (arm_col == a)).sum()) for a in arms},
            "lines with an error or a non-2xx status: the 502s and the clients gone are among them")
    if counts.get("400"):
        rows.append({"row": "rejected by the router (400)", "control": None, "treatment": None,
                     "total": int(counts["400"]), "meaning": "a field the handler refused; nothing forwarded"})
    if counts.get("still_forwarding_at_end"):
        rows.append({"row": "still being forwarded when the counts were read", "control": None, "treatment": None,
                     "total": int(counts["still_forwarding_at_end"]),
                     "meaning": "requests whose platform had not answered yet when the run ended: not in the rows above"})
    if counts.get("client_gone"):
        rows.append({"row": "connections lost outside a request", "control": None, "treatment": None,
                     "total": int(counts["client_gone"]), "meaning": "a client connection that failed between requests"})
    return pd.DataFrame(rows).set_index("row")


def completions_sentence(completions: dict[str, int] | None, decisions: int) -> str:
    """The router's in-flight bookkeeping in words: each decision leaves the in-flight count once,
    when the proxy reports its answer (`reported`) or at the client timeout (`expired`); a report
    that comes after its request expired is `unknown`, so reported + expired = decisions and
    reported + unknown = the proxy's reports."""
    if not completions:
        return f"{decisions:,} decisions recorded (no objective path: no in-flight bookkeeping)"
    rep, unk, exp = (int(completions.get(k, 0)) for k in ("reported", "unknown", "expired"))
    left = rep + exp
    text = (f"{decisions:,} decisions recorded; each left the router's in-flight count once: {rep:,} when the proxy "
            f"reported the platform's answer, {exp:,} expired at the client timeout before that report")
    if unk:
        text += f" (their late reports, {unk:,}, are counted as `unknown` and change nothing)"
    if left < decisions:
        text += f"; {left:,} left for {decisions:,} decisions: {decisions - left:,} still in flight at the end"
    elif left > decisions:
        text += (f"; {left:,} left the count but only {decisions:,} decision records were kept: "
                 f"{left - decisions:,} record(s) missing")
    return text + "."


def upstream_failures_sentence(requests: pd.DataFrame) -> str:
    """Where the proxy's 502s fell (arm and platform, from the joined decision records: routed, no
    upstream status), why (the recorded error), and whether their contract lines are failures."""
    if "upstream_status" not in requests.columns or "routed_platform" not in requests.columns:
        return "No decision records joined: the 502s cannot be placed in an arm."
    m = requests["routed_platform"].notna() & requests["upstream_status"].isna()
    n = int(m.sum())
    if n == 0:
        return "No 502: every routed request got an answer from its platform."
    bad = requests[m]
    where = ", ".join(f"{k[0]} arm on {k[1]}: {v}" for k, v in
                      bad.groupby([bad["arm"].astype(str), bad["routed_platform"].astype(str)]).size().items())
    why = ""
    if "upstream_error" in bad.columns and bad["upstream_error"].notna().any():
        kinds = bad["upstream_error"].dropna().astype(str).str.split(":").str[0].value_counts()
        why = " (" + ", ".join(f"{v} × {k}" for k, v in kinds.items()) + ")"
    failed = int((~bad["ok"].astype(bool)).sum())
    return (f"The {n} 502s (the proxy's answer when the platform gave none{why}) fell in the {where}. "
            f"{failed} of their {n} contract lines are failures, so they count in that arm's error and SLO-miss "
            "rates.")


# ------------------------------------------------------------------ the outcome in words
_NAMES = {"bill_avg_usd_per_request": ("bill", "USD per 1k requests", 1000.0),
          "marginal_avg_usd_per_request": ("marginal cost", "USD per 1k requests", 1000.0),
          "latency_p50_ms": ("latency p50", "ms", 1.0), "latency_p95_ms": ("latency p95", "ms", 1.0),
          "latency_p99_ms": ("latency p99", "ms", 1.0), "error_rate": ("error rate", "", 1.0),
          "slo_miss_rate": ("SLO-miss rate", "", 1.0), "routing_accuracy": ("routing accuracy", "", 1.0)}


def _value(metric: str, v: float) -> str:
    _, unit, scale = _NAMES.get(metric, (metric, "", 1.0))
    x = float(v) * scale
    if unit == "ms":
        return f"{x:,.0f} ms"
    if unit:
        return f"{x:.4f} {unit}"
    return f"{100 * x:.1f} %"


def p_value_text(p: float) -> str:
    """One format for p-values: `p < 0.001` below that, else three decimals."""
    if p != p:
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def verdict(res: Any, where: str, timeout_ms: float, alpha: float) -> str:
    """The outcome in plain words (markdown): treatment against control on the bill and latency
    p95 first, then every metric whose test is significant at `alpha` (direction, both values, p)
    and the rest; a latency quantile at or above `timeout_ms` (the client's timeout) is flagged: it
    only says that at least that share of requests timed out."""
    c = res.comparison

    def at_cap(m: str, arm: str) -> bool:
        return m.startswith("latency_p") and float(c.loc[m, arm]) >= 0.999 * timeout_ms

    def line(m: str) -> str:
        name = _NAMES.get(m, (m,))[0]
        r = c.loc[m]
        word = "higher" if r["difference"] > 0 else "lower" if r["difference"] < 0 else "equal"
        text = (f"{name} {word} in the treatment ({_value(m, r['control'])} control → "
                f"{_value(m, r['treatment'])} treatment, {p_value_text(float(r['p_value']))})")
        caps = [a for a in ("control", "treatment") if at_cap(m, a)]
        if caps:
            share = 100 - int(m[len("latency_p"):-len("_ms")])
            text += (f"; the {' and '.join(caps)} value sits at the client timeout cap of {timeout_ms:,.0f} ms: at "
                     f"least {share} % of that arm's requests timed out, and the quantile cannot say how slow they "
                     "would have been")
        return text

    lead = [m for m in ("bill_avg_usd_per_request", "latency_p95_ms") if m in c.index]
    sig = [m for m in c.index if bool(c.loc[m, "significant"])]
    rest = [m for m in c.index if m not in sig]
    parts = [f"**Verdict, {where}:** "]
    for m in lead:
        s = "significant" if m in sig else "not significant"
        parts.append(f"{line(m)[0].upper()}{line(m)[1:]} [{s} at alpha {alpha:g}]. ")
    others = [line(m) for m in sig if m not in lead]
    if others:
        parts.append("Also significant: " + "; ".join(others) + ". ")
    if rest:
        parts.append("Not significant (the CI includes 0): "
                     + ", ".join(_NAMES.get(m, (m,))[0] for m in rest) + ".")
    return "".join(parts)


def plan_power_table(pp: pd.DataFrame) -> pd.DataFrame:
    """`ab.stats.plan_power` for reading: costs per 1,000 requests, request counts as whole numbers
    (rounded up), the target column named by its relative change."""
    out = pp.copy()
    for m in _PER_1K:
        if m in out.index:
            out.loc[m, "mde_at_plan"] = float(out.loc[m, "mde_at_plan"]) * 1000
    out = out.rename(index=_PER_1K)
    target = pp.attrs.get("target_relative", 0.05)
    req_cols = {"requests_for_observed": "requests to detect the observed difference",
                "requests_for_target": f"requests to detect a {100 * target:g} % change"}
    for col in req_cols:
        v = pd.to_numeric(out[col], errors="coerce").astype("float64")
        out[col] = np.ceil(v.where(np.isfinite(v))).astype("Int64")
    return out.rename(columns={**req_cols, "mde_at_plan": "MDE at the plan's size",
                               "mde_relative": "MDE relative to control",
                               "plan_detects_observed": "plan detects the observed difference"})
