"""Calibration: what real request logs can tell about the platform model, fitted with uncertainty.

Input: a DataFrame in the request-log contract (`hybridopt.ingest`), e.g. the student's November 2025
AWS logs. Per workload and platform it fits

- **service time**: `execution_time_ms` (measured inside the handler) of warm, successful requests
  against payload size: `intercept_ms + slope_ms_per_mb * MB`, with a lognormal spread (`sigma_log`);
- **network and upload**: `total_ms - execution_time_ms` (what the client saw beyond the handler:
  connection set-up, TLS, upload, front door, download) against payload size, the same form;
- **the Lambda cold-start penalty**: for every `cold_start` row, its extra end-to-end time over the
  warm requests of the same run, workload and payload size (median, bootstrap CI, lognormal fit);
- **the measurement setup's load-dependent inflation**: how the network part grows with the
  request rate the load generator offered (`1 + k * max(0, rate - reference_rate)`, per platform).
  The legacy generator was itself saturated at higher rates (payloads built character by character
  during the run, one machine far from the region), so this is a property of the client preset,
  not of the platforms.

Only the rate band nearest the lowest offered rate feeds the service and network fits (they
describe an unloaded client), and only cells whose requests were (nearly) all logged feed any fit:
the legacy logger dropped every non-JSON response and Artillery gave up after 10 s, so in a cell
that lost many requests the survivors are the fast ones (see `logged_share`).

Everything here is a pure function of (frame, options); `hybridopt.commands.calibrate` does the I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .params import LoadPattern

KB_PER_MB: Final = 1024.0
PLATFORMS: Final = ("lambda", "ecs")


# ------------------------------------------------------------------------------------------ options
@dataclass(frozen=True)
class FitOptions:
    """How the fits select rows (all values explained in the module docstring)."""
    reference_band_rps: float = 2.5        # service/network fits use rates <= lowest offered + this
    min_logged_share: float = 0.9          # a cell (run, platform, workload, time bin) must have logged this share
    logged_share_bin_s: float = 300.0      # time bins for the logged share
    session_gap_s: float = 300.0           # runs closer than this with the same load pattern are one session
    cells_total: int | None = None         # equal-weight scenarios per arrival (legacy: platforms x workloads)
    max_queue_utilisation: float = 0.5     # queueing platforms: network fit only on workloads below this
    ecs_worker_slots: int = 2              # gunicorn --workers 2 in the student's ECS image (ecs-app/Dockerfile)
    ecs_hold_after_ms: float = 100.0       # psutil cpu_percent(interval=0.1) after the timer stopped (ecs-app/app.py)
    rate_bin_rps: float = 2.5              # inflation fit: median ratio per (session, platform, rate bin)
    min_rows: int = 20                     # fewer rows: no fit (reported, not guessed)
    network_passes: int = 4                # alternating network-line / session-factor passes
    bootstrap_resamples: int = 2000
    seed: int = 42


# ------------------------------------------------------------------------------------------ results
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

    def predict_ms(self, payload_mb: Any) -> Any:
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
    bins: list[dict[str, float]]


@dataclass
class Calibration:
    service: dict[str, dict[str, LinearFit]]
    network: dict[str, dict[str, LinearFit]]
    network_source: dict[str, str]          # platform -> how its network fit was obtained
    cold_start: ColdStartFit | None
    inflation: dict[str, InflationFit]
    reference_rate_rps: float
    sessions: dict[str, str]                # run_id -> session
    rows_used: dict[str, int]
    skipped: list[str] = field(default_factory=list)
    options: FitOptions = field(default_factory=FitOptions)

    def as_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


# ------------------------------------------------------------------------------------ row context
def rate_at(pattern: LoadPattern, t_s: np.ndarray | float, clip: bool = False) -> np.ndarray:
    """Scheduled arrivals per second of a load pattern at `t_s` seconds from its start (linear
    ramps; 0 after the last phase unless `clip`, which holds the last rate)."""
    t = np.asarray(t_s, dtype=np.float64)
    out = np.zeros_like(t)
    if clip:  # logged stamps may trail the schedule's end by the response time
        t = np.clip(t, 0.0, pattern.duration_s * (1 - 1e-9))
    start = 0.0
    for p in pattern.phases:
        end_rate = p.ramp_to_rps if p.ramp_to_rps is not None else p.arrival_rate_rps
        inside = (t >= start) & (t < start + p.duration_s)
        frac = (t - start) / p.duration_s
        out = np.where(inside, p.arrival_rate_rps + (end_rate - p.arrival_rate_rps) * frac, out)
        start += p.duration_s
    return out


def sessions(df: pd.DataFrame, gap_s: float = 300.0) -> dict[str, str]:
    """run_id -> session: runs that follow each other within `gap_s` seconds with the same load
    pattern were one generator run. (The legacy clock bug split one 60-minute ramp run into
    `morning_peak_ramp_load` and `late_night_ramp_load`.) The session is named by its first run."""
    spans = (df.groupby("run_id", observed=True)
             .agg(start=("sent_at", "min"), end=("sent_at", "max"),
                  pattern=("load_pattern", lambda s: str(s.mode().iloc[0]) if len(s) else ""))
             .sort_values("start"))
    out: dict[str, str] = {}
    current, cur_end, cur_pattern = None, None, None
    for run_id, row in spans.iterrows():
        if (current is not None and row["pattern"] == cur_pattern
                and (row["start"] - cur_end).total_seconds() <= gap_s):
            out[str(run_id)] = current
            cur_end = max(cur_end, row["end"])
            continue
        current, cur_end, cur_pattern = str(run_id), row["end"], row["pattern"]
        out[str(run_id)] = current
    return out


def requests_per_arrival(df: pd.DataFrame) -> int:
    """2 for a paired collection (each generated payload went to both platforms), else 1."""
    return 2 if df["pair_id"].notna().mean() > 0.5 else 1


def add_context(df: pd.DataFrame, load_patterns: Mapping[str, LoadPattern],
                opts: FitOptions = FitOptions()) -> pd.DataFrame:
    """The frame with `session`, `t_session_s`, `offered_rate_rps` (requests per second the
    generator offered at send time), `payload_mb`, `overhead_ms` and `logged_share` (logged
    successes / scheduled attempts in the row's (run, platform, workload, time bin))."""
    out = df.copy()
    sess = sessions(out, opts.session_gap_s)
    out["session"] = out["run_id"].astype(str).map(sess)
    start = out.groupby("session")["sent_at"].transform("min")
    out["t_session_s"] = (out["sent_at"] - start).dt.total_seconds()
    per_arrival = requests_per_arrival(out)
    sched = out["scheduled_rate_rps"].astype("float64") if "scheduled_rate_rps" in out else pd.Series(np.nan, index=out.index)
    rate = np.full(len(out), np.nan)
    for pattern_name, idx in out.groupby("load_pattern", observed=True).groups.items():
        lp = load_patterns.get(str(pattern_name))
        if lp is not None:
            pos = out.index.get_indexer(idx)
            rate[pos] = rate_at(lp, out["t_session_s"].to_numpy()[pos], clip=True)
    out["offered_rate_rps"] = np.where(sched.notna(), sched.to_numpy(), rate) * per_arrival
    out["payload_mb"] = out["target_payload_size_kb"].astype("float64") / KB_PER_MB
    out["overhead_ms"] = out["total_ms"] - out["execution_time_ms"]
    out["logged_share"] = _logged_share(out, load_patterns, opts, per_arrival)
    return out


def _logged_share(df: pd.DataFrame, load_patterns: Mapping[str, LoadPattern], opts: FitOptions,
                  per_arrival: int) -> pd.Series:
    known = df[df["platform"].isin(PLATFORMS)]
    n_cells = opts.cells_total or max(1, known.groupby(["platform", "workload_type"], observed=True).ngroups)
    share = pd.Series(np.nan, index=df.index)
    b = opts.logged_share_bin_s
    for (session, run_id), run in df.groupby(["session", "run_id"], observed=True):
        lp = load_patterns.get(str(run["load_pattern"].iloc[0]))
        if lp is None:
            continue
        t = run["t_session_s"].to_numpy()
        t0, t1 = float(t.min()), float(t.max())
        edges = np.arange(math.floor(t0 / b) * b, t1 + b, b)
        lo, hi = np.maximum(edges[:-1], t0), np.minimum(edges[1:], t1)
        # scheduled requests per cell in each bin (integral of the rate over the covered part)
        expected = np.array([(lp.arrivals_until(h) - lp.arrivals_until(lo_)) * per_arrival / n_cells
                             if h > lo_ else 0.0 for lo_, h in zip(lo, hi)])
        if per_arrival == 2:
            expected = expected * n_cells / max(1, n_cells // 2) / 2  # a pair feeds one cell per platform
        bin_idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, len(expected) - 1)
        ok = (run["ok"] & run["platform"].isin(PLATFORMS)).to_numpy()
        keys = run["platform"].astype(str) + "|" + run["workload_type"].astype(str)
        frame = pd.DataFrame({"key": keys.to_numpy(), "bin": bin_idx, "ok": ok}, index=run.index)
        counts = frame[frame["ok"]].groupby(["key", "bin"]).size()
        vals = [counts.get((k, bi), 0) / expected[bi] if expected[bi] >= 1.0 else np.nan
                for k, bi in zip(frame["key"], frame["bin"])]
        share.loc[run.index] = vals
    return share


# ------------------------------------------------------------------------------------------- fits
def successful(df: pd.DataFrame) -> pd.DataFrame:
    """Rows a latency fit can use: a logged success on a known platform with both timings and
    total >= execution time."""
    m = (df["ok"] & df["platform"].isin(PLATFORMS) & df["total_ms"].notna() & df["execution_time_ms"].notna()
         & (df["total_ms"] >= df["execution_time_ms"]))
    return df[m]


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

    def line(meds: np.ndarray) -> tuple[float, float]:
        if len(sizes) < 2:
            return float(meds[0]), 0.0
        b_, a_ = np.polyfit(sizes, meds, 1, w=np.sqrt(counts))
        return float(a_), float(b_)

    a, b = line(np.array([np.median(g) for g in groups]))
    rng = np.random.default_rng(seed)
    boot = np.array([line(np.array([np.median(rng.choice(g, len(g))) for g in groups])) for _ in range(n_boot)])
    a_se, b_se = (float(v) for v in boot.std(axis=0, ddof=1))
    if len(sizes) < 2 or abs(b) < 2 * b_se:
        a, b, b_se = float(np.median(y)), 0.0, 0.0
        a_se = float(np.std([np.median(rng.choice(y, len(y))) for _ in range(n_boot)], ddof=1))
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


def _warm(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["cold_start"].fillna(False).astype(bool).eq(False)]


def fit_service(rows: pd.DataFrame, opts: FitOptions, selection: str = "",
                skip_done: Mapping[str, Mapping[str, LinearFit]] | None = None
                ) -> tuple[dict[str, dict[str, LinearFit]], list[str]]:
    """execution_time_ms ~ payload MB per (workload, platform) on warm rows (cells already in
    `skip_done` are left out)."""
    out: dict[str, dict[str, LinearFit]] = {}
    skipped: list[str] = []
    for (w, p), g in _warm(rows).groupby(["workload_type", "platform"], observed=True):
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
    warm = _warm(rows)
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
    warm = _warm(rows)
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
    util = queue_utilisation(_warm(reference_rows(rows, opts)), opts)
    return [w for w, u in util.items() if u < opts.max_queue_utilisation]


def reference_rows(rows: pd.DataFrame, opts: FitOptions) -> pd.DataFrame:
    """Rows within `reference_band_rps` of the lowest offered rate."""
    r0 = float(rows["offered_rate_rps"].min())
    return rows[rows["offered_rate_rps"] <= r0 + opts.reference_band_rps]


def clean(rows: pd.DataFrame, opts: FitOptions) -> pd.DataFrame:
    """Rows whose (run, platform, workload, time bin) logged at least `min_logged_share`."""
    return rows[rows["logged_share"].fillna(0.0) >= opts.min_logged_share]


def calibrate(df: pd.DataFrame, load_patterns: Mapping[str, LoadPattern], opts: FitOptions = FitOptions(),
              runs: Iterable[str] | None = None) -> Calibration:
    """Fit everything the logs can tell (optionally only on `runs`)."""
    ctx = add_context(df, load_patterns, opts)
    if runs is not None:
        keep = set(runs)
        ctx = ctx[ctx["run_id"].astype(str).isin(keep)]
    ok = successful(ctx)
    ok = ok[ok["offered_rate_rps"].notna()]
    if ok.empty:
        raise ValueError("no successful rows with execution_time_ms, total_ms and a known load pattern to fit")
    good = clean(ok, opts)
    ref = reference_rows(good, opts)
    r0 = float(ok["offered_rate_rps"].min())
    service, sk1 = fit_service(ref, opts)
    # a cell with no clean reference rows (e.g. ECS heavy at 5 rps: ~13 % logged) is fitted on its
    # logged successes, and says so: those are the survivors of a censored cell
    fallback, sk0 = fit_service(ok, opts, selection="all logged successes: no cell logged "
                                f"{opts.min_logged_share:.0%} of its requests (survivors)", skip_done=service)
    for w, by_p in fallback.items():
        service.setdefault(w, {}).update(by_p)
        sk1 = [m for m in sk1 if not any(m.startswith(f"service {w}/{p}:") for p in by_p)]
    sk1 += sk0
    # network lines and session factors, alternately: the reference band mixes sessions whose
    # client network differed at equal rate; each pass refits the lines on rows divided by their
    # session's factor, then the factors against the new lines
    ref = ref.assign(session_factor=1.0)
    for _ in range(opts.network_passes):
        network, source, sk2 = fit_network(ref, opts)
        inflation, sk3 = fit_inflation(good, network, r0, opts)
        factor = {(pl, s_): f for pl, fit in inflation.items() for s_, f in fit.session_factors.items()}
        ref = ref.assign(session_factor=[factor.get((str(pl), str(s_)), 1.0)
                                         for pl, s_ in zip(ref["platform"], ref["session"])])
    network, inflation = _normalise_sessions(network, inflation)
    cold = fit_cold_start(ok, opts)
    return Calibration(service=service, network=network, network_source=source, cold_start=cold, inflation=inflation,
                       reference_rate_rps=r0, sessions={str(k): v for k, v in sessions(ctx, opts.session_gap_s).items()},
                       rows_used={"successful": int(len(ok)), "clean": int(len(good)), "reference_band": int(len(ref))},
                       skipped=sk1 + sk2 + sk3 + ([] if cold else ["cold start: fewer than 3 cold rows"]),
                       options=opts)


def _normalise_sessions(network: dict[str, dict[str, LinearFit]], inflation: dict[str, InflationFit]
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


def summary_table(cal: Calibration) -> pd.DataFrame:
    """One row per (workload, platform): the fitted service and network lines."""
    rows = []
    for w in sorted(set(cal.service) | set(cal.network)):
        for p in PLATFORMS:
            s = cal.service.get(w, {}).get(p)
            n = cal.network.get(w, {}).get(p)
            if s is None and n is None:
                continue
            rows.append({"workload": w, "platform": p,
                         "service_ms": _fmt_line(s), "service_sigma_log": s.sigma_log if s else None,
                         "service_n": s.n if s else 0,
                         "network_ms": _fmt_line(n), "network_sigma_log": n.sigma_log if n else None,
                         "network_n": n.n if n else 0})
    return pd.DataFrame(rows)


def _fmt_line(f: LinearFit | None) -> str:
    if f is None:
        return "-"
    return (f"{f.intercept_ms:.0f}±{f.intercept_se_ms:.0f} + {f.slope_ms_per_mb:.0f}±{f.slope_se_ms_per_mb:.0f}/MB")


# ---------------------------------------------------------------------------- synthetic (for tests)
@dataclass(frozen=True)
class SyntheticTruth:
    """Known parameters for `synthetic_logs`: per (workload, platform) service and network lines."""
    service: Mapping[tuple[str, str], tuple[float, float]]
    network: Mapping[tuple[str, str], tuple[float, float]]
    sizes_kb: Mapping[str, Sequence[float]]
    sigma_log: float = 0.1
    cold_penalty_ms: float = 400.0
    cold_sigma: float = 0.3
    cold_prob: float = 0.01
    inflation_k_per_rps: Mapping[str, float] = field(default_factory=lambda: {"lambda": 0.04, "ecs": 0.03})


def synthetic_logs(truth: SyntheticTruth, runs: Mapping[str, tuple[str, LoadPattern]], seed: int = 0,
                   start: str = "2025-11-22T19:00:00Z", gap_s: float = 7200.0) -> pd.DataFrame:
    """Contract-shaped logs drawn from `truth` (one platform per request, uniform scenarios and
    sizes, arrivals of each run's load pattern). ECS gets no queueing: the network truth is what
    its overhead is, so the estimators can be checked exactly."""
    rng = np.random.default_rng(seed)
    cells = sorted(truth.service)
    frames = []
    t_start = pd.Timestamp(start)
    ref_rate = min(float(rate_at(lp, 0.0)) for _, lp in runs.values())
    for i, (run_id, (pattern_name, lp)) in enumerate(runs.items()):
        peak = max(max(p_.arrival_rate_rps, p_.ramp_to_rps or 0.0) for p_ in lp.phases)
        n = int(rng.poisson(peak * lp.duration_s))
        t = np.sort(rng.uniform(0, lp.duration_s, n))
        # thinning a Poisson process at the peak rate gives the pattern's rate over time
        rate = rate_at(lp, t)
        keep = rng.uniform(0, peak, n) < rate
        t, rate = t[keep], rate[keep]
        n = len(t)
        cell_idx = rng.integers(0, len(cells), n)
        w = np.array([cells[c][0] for c in cell_idx])
        p = np.array([cells[c][1] for c in cell_idx])
        size = np.array([rng.choice(np.asarray(truth.sizes_kb[x], dtype=float)) for x in w])
        mb = size / KB_PER_MB
        sa = np.array([truth.service[(a, b)][0] for a, b in zip(w, p)])
        sb = np.array([truth.service[(a, b)][1] for a, b in zip(w, p)])
        na = np.array([truth.network[(a, b)][0] for a, b in zip(w, p)])
        nb = np.array([truth.network[(a, b)][1] for a, b in zip(w, p)])
        k = np.array([truth.inflation_k_per_rps[x] for x in p])
        noise = lambda: np.exp(rng.normal(0, truth.sigma_log, n) - truth.sigma_log ** 2 / 2)  # mean 1
        exe = (sa + sb * mb) * noise()
        net = (na + nb * mb) * (1 + k * np.maximum(0, rate - ref_rate)) * noise()
        cold = (p == "lambda") & (rng.uniform(0, 1, n) < truth.cold_prob)
        pen = truth.cold_penalty_ms * np.exp(rng.normal(0, truth.cold_sigma, n))
        total = exe + net + np.where(cold, pen, 0.0)
        frames.append(pd.DataFrame({
            "run_id": run_id, "platform": p, "workload_type": w, "target_payload_size_kb": size,
            "load_pattern": pattern_name, "time_window": "early_morning", "pair_id": None,
            "sent_at": t_start + pd.to_timedelta(i * gap_s + t, unit="s"),
            "total_ms": np.round(total), "execution_time_ms": exe,
            "cold_start": pd.array(np.where(p == "lambda", cold, pd.NA), dtype="boolean"),
            "ok": True, "error": None, "http_status": 200, "scheduled_rate_rps": np.nan}))
    df = pd.concat(frames, ignore_index=True)
    for c in ("run_id", "platform", "workload_type", "load_pattern", "time_window"):
        df[c] = df[c].astype("category")
    return df
