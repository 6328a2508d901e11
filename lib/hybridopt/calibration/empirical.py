"""What the logs tell directly, with uncertainty (no platform model involved):

- `linear_fit`: the median line of a time against payload MB, bootstrap standard errors, lognormal spread;
- `fit_service`: `execution_time_ms` per (workload, platform);
- `fit_network`: `total_ms - execution_time_ms` per (workload, platform) (ECS: one line shared by the
  workloads that hardly queue);
- `fit_cold_start`: the Lambda cold-start penalty over warm requests of the same run, workload and size;
- `fit_inflation`: how the network part grew with the rate the generator offered, with one factor per
  session; `normalise_sessions` scales the lines to the typical session."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import optimize, stats

from hybridopt.calibration.context import reference_rows, warm_rows
from hybridopt.calibration.options import FitOptions
from hybridopt.data.contract import PLATFORMS


@dataclass(frozen=True)
class LinearFit:
    """Median y_ms = intercept_ms + slope_ms_per_mb * payload_mb, with bootstrap standard errors;
    `sigma_log` is the lognormal spread around the line (fitted to its 95th percentile)."""
    intercept_ms: float
    slope_ms_per_mb: float
    intercept_se_ms: float
    slope_se_ms_per_mb: float
    sigma_log: float
    median_ms: float
    p95_ms: float
    n: int
    r2: float
    payload_mb_min: float
    payload_mb_max: float
    selection: str = ""                    # which rows (when not the default selection)

    def predict_ms(self, payload_mb: npt.ArrayLike) -> np.ndarray:
        return self.intercept_ms + self.slope_ms_per_mb * np.asarray(payload_mb, dtype=np.float64)


@dataclass(frozen=True)
class ColdStartFit:
    n_cold: int
    n_warm: int
    penalty_median_ms: float
    penalty_ci95_ms: tuple[float, float]
    penalty_p90_ms: float
    lognormal_median_ms: float | None      # scipy lognorm fit (floc=0) of the positive penalties
    lognormal_sigma: float | None
    exec_extra_median_ms: float            # how much of it happened inside the handler
    by_workload: dict[str, dict[str, float]]
    cold_rate: float                       # cold rows / Lambda rows (all runs)


@dataclass(frozen=True)
class InflationFit:
    """network_ms(rate) = network_ms(reference) * (1 + k_per_rps * max(0, rate - reference_rate_rps));
    `session_factors` say how each generator run's network differed at equal rate."""
    platform: str
    reference_rate_rps: float
    k_per_rps: float
    k_se_per_rps: float
    n_bins: int
    n_rows: int
    rate_max_rps: float
    session_factors: dict[str, float]      # network of each session relative to the reference fit
    bins: list[dict[str, str | float]]       # session, rate_rps, ratio, n


def linear_fit(payload_mb: np.ndarray, y_ms: np.ndarray, *, n_boot: int = 200, seed: int = 42,
               selection: str = "") -> LinearFit:
    """The median line of y against payload MB: weighted least squares through the per-size
    medians (weights: rows per size), standard errors from a row bootstrap within sizes. The slope
    is kept only when the payload range spans at least two sizes and the slope differs from 0 by
    two standard errors; otherwise the line is flat at the overall median. `sigma_log` matches the
    spread's upper tail: (q95 - q50) of log(y / line) / 1.645."""
    x = np.asarray(payload_mb, dtype=np.float64)
    y = np.asarray(y_ms, dtype=np.float64)
    sizes, inv = np.unique(x, return_inverse=True)
    groups = [y[inv == i] for i in range(len(sizes))]
    counts = np.array([len(g) for g in groups], dtype=np.float64)

    def line(meds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Weighted least squares (weights = rows per size) of medians on sizes; meds: (k, sizes)."""
        if len(sizes) < 2:
            return meds[:, 0], np.zeros(len(meds))
        wt = counts / counts.sum()
        xm = float((wt * sizes).sum())
        ym = meds @ wt
        sxx = float((wt * (sizes - xm) ** 2).sum())
        b_ = ((meds - ym[:, None]) * (wt * (sizes - xm))).sum(axis=1) / sxx
        return ym - b_ * xm, b_

    a0, b0 = line(np.array([[np.median(g) for g in groups]]))
    a, b = float(a0[0]), float(b0[0])
    rng = np.random.default_rng(seed)
    boot_meds = np.column_stack([np.median(rng.choice(g, (n_boot, len(g))), axis=1) for g in groups])
    ba, bb = line(boot_meds)
    a_se, b_se = float(np.std(ba, ddof=1)), float(np.std(bb, ddof=1))
    if len(sizes) < 2 or abs(b) < 2 * b_se:
        a, b, b_se = float(np.median(y)), 0.0, 0.0
        a_se = float(np.std(np.median(rng.choice(y, (n_boot, len(y))), axis=1), ddof=1))
    fitted = a + b * x
    good = (fitted > 0) & (y > 0)
    if good.sum() > 2:
        lr = np.log(y[good] / fitted[good])
        sigma = float((np.quantile(lr, 0.95) - np.median(lr)) / 1.6448536269514722)
    else:
        sigma = float("nan")
    ss_res = float(((y - fitted) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return LinearFit(intercept_ms=a, slope_ms_per_mb=b, intercept_se_ms=a_se, slope_se_ms_per_mb=b_se,
                     sigma_log=sigma, median_ms=float(np.median(y)), p95_ms=float(np.quantile(y, 0.95)),
                     n=int(len(y)), r2=1 - ss_res / ss_tot if ss_tot > 0 else 0.0,
                     payload_mb_min=float(x.min()), payload_mb_max=float(x.max()), selection=selection)


def fit_service(rows: pd.DataFrame, opts: FitOptions, selection: str = "",
                skip_done: Mapping[str, Mapping[str, LinearFit]] | None = None
                ) -> tuple[dict[str, dict[str, LinearFit]], list[str]]:
    """execution_time_ms ~ payload MB per (workload, platform) on warm rows (cells already in
    `skip_done` are left out)."""
    out: dict[str, dict[str, LinearFit]] = {}
    skipped: list[str] = []
    for (w, p), g in warm_rows(rows).groupby(["workload_type", "platform"], observed=True):
        if skip_done and str(p) in skip_done.get(str(w), {}):
            continue
        if len(g) < opts.min_rows:
            skipped.append(f"service {w}/{p}: {len(g)} rows < {opts.min_rows}{' (' + selection + ')' if selection else ''}")
            continue
        out.setdefault(str(w), {})[str(p)] = linear_fit(g["payload_mb"].to_numpy(), g["execution_time_ms"].to_numpy(),
                                                         seed=opts.seed, selection=selection)
    return out, skipped


def queue_utilisation(rows: pd.DataFrame, opts: FitOptions) -> dict[str, float]:
    """Rough ECS utilisation per workload at the rows' offered rate: cell arrival rate x mean
    worker hold (execution + hold after) / worker slots (one task per workload service)."""
    ecs = rows[rows["platform"] == "ecs"]
    n_cells = opts.cells_total or max(1, rows.groupby(["platform", "workload_type"], observed=True).ngroups)
    out = {}
    for w, g in ecs.groupby("workload_type", observed=True):
        lam = float(g["offered_rate_rps"].mean()) / n_cells
        out[str(w)] = lam * (float(g["execution_time_ms"].mean()) + opts.ecs_hold_after_ms) / 1000.0 / opts.ecs_worker_slots
    return out


def fit_network(rows: pd.DataFrame, opts: FitOptions) -> tuple[dict[str, dict[str, LinearFit]], dict[str, str], list[str]]:
    """overhead_ms = total - execution ~ payload MB per (workload, platform), warm rows.

    Lambda serves one request per environment (no queue): each workload's rows are used as they
    are. ECS queues behind its worker slots, so its overhead holds queueing delay that the model
    adds itself; its network fit uses only the workloads whose estimated utilisation is below
    `max_queue_utilisation` and is shared by all ECS workloads (the student's ECS timer also
    covered the body upload, so that platform's network part hardly depends on payload size)."""
    out: dict[str, dict[str, LinearFit]] = {}
    source: dict[str, str] = {}
    skipped: list[str] = []
    warm = warm_rows(rows)
    for (w, p), g in warm[warm["platform"] == "lambda"].groupby(["workload_type", "platform"], observed=True):
        if len(g) < opts.min_rows:
            skipped.append(f"network {w}/{p}: {len(g)} rows < {opts.min_rows}")
            continue
        out.setdefault(str(w), {})[str(p)] = linear_fit(g["payload_mb"].to_numpy(), _net(g), seed=opts.seed)
    source["lambda"] = "per workload (no queue in front of Lambda)"
    util = queue_utilisation(warm, opts)
    light = [w for w, u in util.items() if u < opts.max_queue_utilisation]
    ecs = warm[(warm["platform"] == "ecs") & warm["workload_type"].astype(str).isin(light)]
    if len(ecs) >= opts.min_rows:
        shared = linear_fit(ecs["payload_mb"].to_numpy(), _net(ecs), seed=opts.seed,
                            selection="shared ECS network: " + ", ".join(sorted(light)))
        for w in sorted(warm["workload_type"].astype(str).unique()):
            out.setdefault(w, {})["ecs"] = shared
        source["ecs"] = ("shared by all workloads, fitted on " + ", ".join(sorted(light)) + " (utilisation "
                         + ", ".join(f"{w} {u:.2f}" for w, u in sorted(util.items())) + ")")
    else:
        skipped.append(f"network ecs: {len(ecs)} rows on low-utilisation workloads < {opts.min_rows}")
    return out, source, skipped


def _net(g: pd.DataFrame) -> np.ndarray:
    """Network time of the rows, divided by their session's network factor when one is known."""
    f = g["session_factor"].to_numpy() if "session_factor" in g else 1.0
    return g["overhead_ms"].to_numpy() / f


def fit_cold_start(rows: pd.DataFrame, opts: FitOptions) -> ColdStartFit | None:
    """Extra end-to-end time of Lambda cold starts over warm requests of the same run, workload and
    payload size (median warm total), with a bootstrap CI of the median."""
    lam = rows[rows["platform"] == "lambda"]
    cold_mask = lam["cold_start"].fillna(False).astype(bool)
    cold, warm = lam[cold_mask], lam[~cold_mask]
    if len(cold) < 3:
        return None
    keys = ["run_id", "workload_type", "target_payload_size_kb"]
    ref = warm.groupby(keys, observed=True).agg(total_ref=("total_ms", "median"), exec_ref=("execution_time_ms", "median"))
    c = cold.join(ref, on=keys).dropna(subset=["total_ref"])
    if len(c) < 3:
        return None
    penalty = (c["total_ms"] - c["total_ref"]).to_numpy()
    extra_exec = (c["execution_time_ms"] - c["exec_ref"]).to_numpy()
    ci = stats.bootstrap((penalty,), np.median, n_resamples=opts.bootstrap_resamples, method="percentile",
                         random_state=np.random.default_rng(opts.seed)).confidence_interval
    pos = penalty[penalty > 0]
    ln_med = ln_sigma = None
    if len(pos) >= 5:
        shape, _, scale = stats.lognorm.fit(pos, floc=0)
        ln_med, ln_sigma = float(scale), float(shape)
    by_w = {str(w): {"n": int(len(g)), "penalty_median_ms": float(np.median(g["total_ms"] - g["total_ref"]))}
            for w, g in c.groupby("workload_type", observed=True)}
    return ColdStartFit(n_cold=int(len(c)), n_warm=int(len(warm)), penalty_median_ms=float(np.median(penalty)),
                        penalty_ci95_ms=(float(ci.low), float(ci.high)), penalty_p90_ms=float(np.quantile(penalty, 0.9)),
                        lognormal_median_ms=ln_med, lognormal_sigma=ln_sigma,
                        exec_extra_median_ms=float(np.median(extra_exec)), by_workload=by_w,
                        cold_rate=float(cold_mask.mean()))


def fit_inflation(rows: pd.DataFrame, network: Mapping[str, Mapping[str, LinearFit]], reference_rate_rps: float,
                  opts: FitOptions) -> tuple[dict[str, InflationFit], list[str]]:
    """Per platform: the ratio of observed network time to the reference-rate network fit, median
    per (session, rate bin), modelled as `session_factor * (1 + k * max(0, rate - reference))`
    (scipy least squares on log ratios, bins weighted by sqrt(rows)). The session factors absorb
    what differed between generator runs at the same rate (the client's network that day); k comes
    from how latency grew with the offered rate. k >= 0 is not imposed."""
    out: dict[str, InflationFit] = {}
    skipped: list[str] = []
    warm = warm_rows(rows)
    for platform in PLATFORMS:
        g = warm[warm["platform"] == platform]
        if platform == "ecs":  # ECS overheads carry queueing: only the workloads its network fit used
            g = g[g["workload_type"].astype(str).isin(_ecs_light(network, rows, opts))]
        pred = np.full(len(g), np.nan)
        for w, idx in g.groupby("workload_type", observed=True).groups.items():
            fit = network.get(str(w), {}).get(platform)
            if fit is not None:
                pos = g.index.get_indexer(idx)
                pred[pos] = fit.predict_ms(g["payload_mb"].to_numpy()[pos])
        g = g.assign(ratio=g["overhead_ms"].to_numpy() / pred)
        g = g[np.isfinite(g["ratio"]) & (g["ratio"] > 0)]
        g = g.assign(rate_bin=np.floor(g["offered_rate_rps"] / opts.rate_bin_rps))
        bins = (g.groupby(["session", "rate_bin"], observed=True)
                .agg(rate=("offered_rate_rps", "mean"), ratio=("ratio", "median"), n=("ratio", "size"))
                .reset_index())
        bins = bins[bins["n"] >= opts.min_rows].reset_index(drop=True)
        if bins.empty:
            skipped.append(f"inflation {platform}: no (session, rate bin) with {opts.min_rows} rows")
            continue
        res = _fit_session_factor_line(bins, reference_rate_rps)
        if res is None:
            skipped.append(f"inflation {platform}: no session spans more than one rate bin "
                           f"above the reference rate {reference_rate_rps:g} rps; k not identified")
            continue
        k, k_se, factors = res
        out[platform] = InflationFit(platform=platform, reference_rate_rps=reference_rate_rps, k_per_rps=k,
                                     k_se_per_rps=k_se, n_bins=int(len(bins)), n_rows=int(bins["n"].sum()),
                                     rate_max_rps=float(bins["rate"].max()), session_factors=factors,
                                     bins=[{"session": str(r.session), "rate_rps": float(r.rate),
                                            "ratio": float(r.ratio), "n": int(r.n)} for r in bins.itertuples()])
    return out, skipped


def _fit_session_factor_line(bins: pd.DataFrame, r0: float) -> tuple[float, float, dict[str, float]] | None:
    x = np.maximum(0.0, bins["rate"].to_numpy() - r0)
    if not any(np.ptp(x[(bins["session"] == s).to_numpy()]) > 0 for s in bins["session"].unique()):
        return None
    sess = sorted(bins["session"].astype(str).unique())
    si = bins["session"].astype(str).map({s: i for i, s in enumerate(sess)}).to_numpy()
    y = np.log(bins["ratio"].to_numpy())
    w = np.sqrt(bins["n"].to_numpy().astype(np.float64))

    def resid(theta: np.ndarray) -> np.ndarray:
        k = theta[-1]
        return w * (theta[si] + np.log(np.maximum(1e-6, 1 + k * x)) - y)

    theta0 = np.zeros(len(sess) + 1)
    sol = optimize.least_squares(resid, theta0, bounds=(np.r_[np.full(len(sess), -5.0), -1.0 / max(1e-9, x.max()) + 1e-9],
                                                        np.r_[np.full(len(sess), 5.0), 10.0]))
    dof = max(1, len(bins) - len(theta0))
    s2 = float((sol.fun ** 2).sum() / dof)
    try:
        cov = np.linalg.inv(sol.jac.T @ sol.jac) * s2
        k_se = float(math.sqrt(max(0.0, cov[-1, -1])))
    except np.linalg.LinAlgError:
        k_se = float("nan")
    return float(sol.x[-1]), k_se, {s: float(math.exp(sol.x[i])) for i, s in enumerate(sess)}


def _ecs_light(network: Mapping[str, Mapping[str, LinearFit]], rows: pd.DataFrame, opts: FitOptions) -> list[str]:
    util = queue_utilisation(warm_rows(reference_rows(rows, opts)), opts)
    return [w for w, u in util.items() if u < opts.max_queue_utilisation]


def normalise_sessions(network: dict[str, dict[str, LinearFit]], inflation: dict[str, InflationFit]
                        ) -> tuple[dict[str, dict[str, LinearFit]], dict[str, InflationFit]]:
    """Scale each platform's network lines to the typical session (geometric mean of the session
    factors, each session weighted equally) and the factors by the inverse: the preset describes a
    session like the average one it was fitted on, the factors say how each differed."""
    out_net = {w: dict(by_p) for w, by_p in network.items()}
    out_inf = dict(inflation)
    for platform, fit in inflation.items():
        if not fit.session_factors:
            continue
        g = math.exp(float(np.mean(np.log(list(fit.session_factors.values())))))
        for w, by_p in out_net.items():
            if platform in by_p:
                f = by_p[platform]
                by_p[platform] = replace(f, intercept_ms=f.intercept_ms * g, slope_ms_per_mb=f.slope_ms_per_mb * g,
                                         intercept_se_ms=f.intercept_se_ms * g, slope_se_ms_per_mb=f.slope_se_ms_per_mb * g,
                                         median_ms=f.median_ms * g, p95_ms=f.p95_ms * g)
        out_inf[platform] = replace(fit, session_factors={s: v / g for s, v in fit.session_factors.items()},
                                    bins=[{**b, "ratio": b["ratio"] / g} for b in fit.bins])
    return out_net, out_inf
