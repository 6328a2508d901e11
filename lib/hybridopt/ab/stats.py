"""Online A/B analysis: control (the per-workload rule) versus treatment (the router's policy).

Input: one row per routed request with `arm`, `platform` (where it went), `latency_ms`,
`bill_usd` (the request's share of its arm's bill: its mean is the arm's average bill per request,
`hybridopt.ab.billing`), `ok` (2xx and no error) and optionally `marginal_usd` (the router's
marginal cost of the platform it chose), `slo_miss` (failed, or slower than its workload's SLO) and
`oracle_platform` (the better platform of that request judged post hoc, where pairs exist).

Per arm: requests, average bill and average marginal cost per request, latency p50/p95/p99, error
rate, SLO-miss rate, routing accuracy against the oracle (metrics whose column is absent are NaN).
Differences (treatment - control) get two-sample bootstrap percentile CIs and one significance
test each (scipy.stats): Welch's t-test for the mean costs, Mood's median test for p50, a bootstrap
test (CI inversion) for p95 and p99 (no classical test fits a tail quantile), Fisher's exact test
for the error, SLO-miss and accuracy rates.

The bootstrap resamples requests of each arm independently. Up to 20,000 requests per arm it
draws rows; above, it resamples each variable as Multinomial(n, counts/n) over its distinct values
after snapping continuous values to a log grid of relative step `resolution` (default 1e-3): the
exact bootstrap of the snapped data at O(distinct values) per resample, so 500,000-request tests
bootstrap in seconds. The replicates are shifted by the snapping offset of the observed statistic,
so the CIs are centred on the raw statistic; the shape is that of the snapped data.

Planning: the minimum detectable effect of the plan's test (n requests split by the treatment
share, two-sided alpha, power) uses the standard errors measured here scaled by sqrt(n_pilot /
n_plan); the requests needed to detect a given difference follow from the same scaling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import pandas as pd
from scipy import stats

from hybridopt.data.contract import ARMS

METRICS = ("bill_avg_usd_per_request", "marginal_avg_usd_per_request", "latency_p50_ms", "latency_p95_ms",
           "latency_p99_ms", "error_rate", "slo_miss_rate", "routing_accuracy")
#: metric -> the frame column it averages (costs and rates)
_MEANS = {"bill_avg_usd_per_request": "bill_usd", "marginal_avg_usd_per_request": "marginal_usd"}
_RATES = ("error_rate", "slo_miss_rate", "routing_accuracy")


class ABError(ValueError):
    """The A/B data cannot be analysed as given."""


# ---------------------------------------------------------------------------------- the statistics
_Q = {"latency_p50_ms": 0.50, "latency_p95_ms": 0.95, "latency_p99_ms": 0.99}
#: Up to this many requests per arm, resample rows directly (joint, exact); above, multinomial
#: resampling of grid-snapped values per variable (exact for the snapped data, O(distinct values)).
INDEX_BOOTSTRAP_MAX = 20_000


def point(metric: str, values: np.ndarray) -> float:
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return float("nan")
    if metric in _Q:
        return float(np.quantile(values, _Q[metric]))
    return float(values.mean())


def snap(values: np.ndarray, resolution: float) -> np.ndarray:
    """Values on a log grid of relative step `resolution` (zeros and negatives kept)."""
    v = np.asarray(values, dtype=float)
    if resolution <= 0:
        return v
    out = v.copy()
    pos = v > 0
    step = math.log1p(resolution)
    out[pos] = np.exp(np.round(np.log(v[pos]) / step) * step)
    return out


def _quantiles_from_counts(v: np.ndarray, c: np.ndarray, qs: list[float]) -> list[np.ndarray]:
    """numpy's default (linear) quantiles of the expanded samples, from sorted values and counts."""
    n = c.sum(axis=1)
    cum = np.cumsum(c, axis=1)
    out = []
    for q in qs:
        h = (n - 1) * q
        lo = np.floor(h)
        i_lo = (cum <= lo[:, None]).sum(axis=1)
        i_hi = (cum <= np.minimum(lo + 1, n - 1)[:, None]).sum(axis=1)
        out.append(v[i_lo] + (h - lo) * (v[i_hi] - v[i_lo]))
    return out


def _grouped(values: np.ndarray, n_resamples: int, rng: np.random.Generator, resolution: float,
             fn: Callable[[np.ndarray, np.ndarray], list[np.ndarray]], k: int, batch: int = 200) -> list[np.ndarray]:
    uniq, counts = np.unique(snap(values, resolution), return_counts=True)
    p = counts / counts.sum()
    outs = [np.empty(n_resamples) for _ in range(k)]
    for start in range(0, n_resamples, batch):
        b = min(batch, n_resamples - start)
        c = rng.multinomial(len(values), p, size=b).astype(float)
        for o, r in zip(outs, fn(uniq, c)):
            o[start:start + b] = r
    return outs


def bootstrap_arm(values: Mapping[str, np.ndarray], n_resamples: int, rng: np.random.Generator,
                  resolution: float = 1e-3, batch: int = 100) -> dict[str, np.ndarray]:
    """Bootstrap replicates of every metric for one arm. `values`: metric -> observations
    (latency metrics share one array)."""
    out: dict[str, np.ndarray] = {}
    lat = np.asarray(values["latency_p50_ms"], dtype=float)
    others = [m for m in METRICS if m not in _Q]
    qs = list(_Q.values())
    if len(lat):
        if len(lat) <= INDEX_BOOTSTRAP_MAX:
            reps = np.empty((n_resamples, len(qs)))
            for start in range(0, n_resamples, batch):
                b = min(batch, n_resamples - start)
                idx = rng.integers(0, len(lat), size=(b, len(lat)))
                reps[start:start + b] = np.quantile(lat[idx], qs, axis=1).T
            res = [reps[:, i] for i in range(len(qs))]
        else:
            res = _grouped(lat, n_resamples, rng, resolution, lambda v, c: _quantiles_from_counts(v, c, qs), len(qs))
            snapped = snap(lat, resolution)     # shift by the snapping offset: centred on the raw statistic
            res = [r + (point(m, lat) - point(m, snapped)) for m, r in zip(_Q, res)]
        out.update(dict(zip(_Q, res)))
    else:
        out.update({m: np.full(n_resamples, np.nan) for m in _Q})
    for m in others:
        v = np.asarray(values[m], dtype=float)
        if not len(v):
            out[m] = np.full(n_resamples, np.nan)
        elif len(v) <= INDEX_BOOTSTRAP_MAX:
            reps = np.empty(n_resamples)
            for start in range(0, n_resamples, batch * 10):
                b = min(batch * 10, n_resamples - start)
                reps[start:start + b] = v[rng.integers(0, len(v), size=(b, len(v)))].mean(axis=1)
            out[m] = reps
        else:
            out[m] = (_grouped(v, n_resamples, rng, resolution, lambda u, c: [(c @ u) / c.sum(axis=1)], 1)[0]
                      + (v.mean() - snap(v, resolution).mean()))
    return out


def _values(df: pd.DataFrame, metric: str) -> np.ndarray:
    if metric in _MEANS:
        col = _MEANS[metric]
        return df[col].dropna().to_numpy(float) if col in df.columns else np.array([])
    if metric.startswith("latency_"):
        return df["latency_ms"].dropna().to_numpy(float)
    if metric == "error_rate":
        return (~df["ok"].astype(bool)).to_numpy(float)
    if metric == "slo_miss_rate":
        return df["slo_miss"].dropna().astype(bool).to_numpy(float) if "slo_miss" in df.columns else np.array([])
    if "oracle_platform" not in df.columns:
        return np.array([])
    sub = df[df["oracle_platform"].notna()]
    return (sub["platform"].astype(str) == sub["oracle_platform"].astype(str)).to_numpy(float)


def _test(metric: str, c: np.ndarray, t: np.ndarray, boot_diff: np.ndarray) -> tuple[str, float]:
    if len(c) < 2 or len(t) < 2:
        return "n/a", float("nan")
    if metric in _MEANS:
        if np.var(c) == 0 and np.var(t) == 0:
            return "Welch t-test", 1.0 if c[0] == t[0] else 0.0
        return "Welch t-test", float(stats.ttest_ind(t, c, equal_var=False).pvalue)
    if metric == "latency_p50_ms":
        try:
            return "Mood's median test", float(stats.median_test(t, c)[1])
        except ValueError:
            return "Mood's median test", float("nan")
    if metric in _RATES:
        table = [[int(t.sum()), int(len(t) - t.sum())], [int(c.sum()), int(len(c) - c.sum())]]
        return "Fisher's exact test", float(stats.fisher_exact(table).pvalue)
    d = boot_diff[np.isfinite(boot_diff)]
    if len(d) == 0:
        return "bootstrap (CI inversion)", float("nan")
    p = 2 * min((d <= 0).mean(), (d >= 0).mean())
    return "bootstrap (CI inversion)", float(min(1.0, max(p, 1 / len(d))))


@dataclass(frozen=True)
class ABResult:
    arms: pd.DataFrame          # one row per arm
    comparison: pd.DataFrame    # one row per metric
    boot_se: dict[str, float]   # bootstrap SE of each difference (for planning)
    n: dict[str, int]


def arm_table(df: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for arm in ARMS:
        sub = df[df["arm"] == arm]
        acc = _values(sub, "routing_accuracy")
        rows.append({"arm": arm, "requests": len(sub),
                     "lambda_share": float((sub["platform"] == "lambda").mean()) if len(sub) else float("nan"),
                     **{m: point(m, _values(sub, m)) for m in METRICS}, "with_oracle": len(acc)})
    return pd.DataFrame(rows).set_index("arm")


def compare_arms(df: pd.DataFrame, n_resamples: int = 2000, confidence: float = 0.95, alpha: float = 0.05,
                 seed: int = 0, resolution: float = 1e-3) -> ABResult:
    """Per-arm metrics, bootstrap CIs of treatment - control, a test per metric (metrics with no
    value in either arm, e.g. routing accuracy without an oracle, are left out of the comparison)."""
    missing = {"arm", "platform", "latency_ms", "bill_usd", "ok"} - set(df.columns)
    if missing:
        raise ABError(f"A/B frame lacks columns {sorted(missing)}")
    bad = set(df["arm"].dropna().unique()) - set(ARMS)
    if bad:
        raise ABError(f"arm values {sorted(bad)} are not control/treatment")
    n = {a: int((df["arm"] == a).sum()) for a in ARMS}
    if min(n.values()) == 0:
        raise ABError(f"both arms need requests, got {n}")
    rng = np.random.default_rng(seed)
    arms = arm_table(df)
    vals = {a: {m: _values(df[df["arm"] == a], m) for m in METRICS} for a in ARMS}
    boots = {a: bootstrap_arm(vals[a], n_resamples, rng, resolution) for a in ARMS}
    rows, ses = [], {}
    lo_q, hi_q = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    for m in METRICS:
        c, t = vals["control"][m], vals["treatment"][m]
        if not len(c) and not len(t):
            continue
        diff = point(m, t) - point(m, c)
        if len(c) and len(t):
            bd = boots["treatment"][m] - boots["control"][m]
            lo, hi = np.nanquantile(bd, [lo_q, hi_q])
            se = float(np.nanstd(bd, ddof=1))
        else:
            bd, lo, hi, se = np.array([]), float("nan"), float("nan"), float("nan")
        test, p = _test(m, c, t, bd)
        ses[m] = se
        base = point(m, c)
        rows.append({"metric": m, "control": base, "treatment": point(m, t), "difference": diff,
                     "ci_low": float(lo), "ci_high": float(hi),
                     "relative_difference": diff / base if base else float("nan"),
                     "test": test, "p_value": p, "significant": bool(p < alpha) if p == p else False,
                     "n_control": len(c), "n_treatment": len(t)})
    return ABResult(arms, pd.DataFrame(rows).set_index("metric"), ses, n)


# ---------------------------------------------------------------------------------------- planning
def plan_power(result: ABResult, plan_requests: int, treatment_share: float = 0.5, alpha: float = 0.05,
               power: float = 0.8, target_relative: float = 0.05) -> pd.DataFrame:
    """MDE of the plan's test and the requests needed to detect (a) the observed difference and
    (b) a `target_relative` change, per metric, from this test's bootstrap SEs."""
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    nc, nt = result.n["control"], result.n["treatment"]
    pc, pt = plan_requests * (1 - treatment_share), plan_requests * treatment_share
    rows = []
    for m, row in result.comparison.iterrows():
        se = result.boot_se.get(m, float("nan"))
        if row["n_control"] == 0 or row["n_treatment"] == 0 or not se == se:
            rows.append({"metric": m, "mde_at_plan": float("nan"), "mde_relative": float("nan"),
                         "requests_for_observed": float("nan"), "requests_for_target": float("nan"),
                         "plan_detects_observed": False})
            continue
        # SE scales like sqrt(1/n_c + 1/n_t): rescale from this test's sizes to the plan's
        m_c, m_t = row["n_control"] / max(nc, 1), row["n_treatment"] / max(nt, 1)  # share with a value
        scale = math.sqrt((1 / (pc * m_c) + 1 / (pt * m_t)) / (1 / row["n_control"] + 1 / row["n_treatment"]))
        mde = z * se * scale
        unit = se * math.sqrt(1 / row["n_control"] + 1 / row["n_treatment"]) ** -1  # SE at 1 request per arm-share
        per_req = unit * math.sqrt(1 / ((1 - treatment_share) * m_c) + 1 / (treatment_share * m_t))

        def needed(effect: float) -> float:
            return float((z * per_req / abs(effect)) ** 2) if effect and effect == effect else float("inf")

        base = row["control"]
        rows.append({"metric": m, "mde_at_plan": mde,
                     "mde_relative": mde / abs(base) if base else float("nan"),
                     "requests_for_observed": needed(row["difference"]),
                     "requests_for_target": needed(target_relative * base) if base else float("nan"),
                     "plan_detects_observed": bool(mde > 0 and abs(row["difference"]) >= mde)})
    out = pd.DataFrame(rows).set_index("metric")
    out.attrs.update(plan_requests=plan_requests, treatment_share=treatment_share, alpha=alpha, power=power,
                     target_relative=target_relative)
    return out


# ------------------------------------------------------------------------------------- data frames
def ab_frame(requests: pd.DataFrame, oracle: pd.DataFrame | None = None,
             context: tuple[str, ...] = ("workload_type", "payload_size_kb", "time_window", "load_pattern"),
             label: str = "balanced_optimal") -> pd.DataFrame:
    """The analysis frame from routed requests (arm, platform, latency_ms, cost_usd, ok, context)
    and, optionally, held-out pairs: a request's oracle platform is the majority label of the
    pairs with the same context (where such pairs exist)."""
    out = requests.copy()
    if oracle is not None and len(oracle):
        o = oracle.copy()
        if "payload_size_kb" in context:
            o["payload_size_kb"] = o["payload_size_kb"].astype(float).round(3)
            out["payload_size_kb"] = out["payload_size_kb"].astype(float).round(3)
        maj = (o.groupby(list(context), observed=True)[label].mean().rename("_share").reset_index())
        maj["oracle_platform"] = np.where(maj["_share"] >= 0.5, "lambda", "ecs")
        out = out.merge(maj.drop(columns="_share"), on=list(context), how="left")
    return out


def coverage_check(n_per_arm: int, replications: int, seed: int, n_resamples: int = 500,
                   confidence: float = 0.95, **effects: float) -> pd.DataFrame:
    """Repeat synthetic A/B tests: per metric, how often the CI covers the true difference and
    how often it excludes 0 (the rejection rate: alpha-ish with no effect, power with one)."""
    from hybridopt.testing import synthetic_arms

    hits: dict[str, list[tuple[bool, bool]]] = {m: [] for m in METRICS}
    truth: Mapping[str, float] = {}
    for r in range(replications):
        df, truth = synthetic_arms(n_per_arm, seed + r, **effects)
        res = compare_arms(df, n_resamples, confidence, seed=seed + 10_000 + r)
        for m, row in res.comparison.iterrows():
            if m in truth:
                hits[m].append((row["ci_low"] <= truth[m] <= row["ci_high"], not row["ci_low"] <= 0 <= row["ci_high"]))
    return pd.DataFrame({m: {"true_difference": truth[m], "coverage": np.mean([h[0] for h in v]),
                             "rejects_zero": np.mean([h[1] for h in v]), "replications": len(v)}
                         for m, v in hits.items() if v}).T
