"""Calibration: what real request logs can tell about the platform model, fitted with uncertainty.

Input: a DataFrame in the request-log contract (`hybridopt.data.ingest`), e.g. the student's November 2025
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

Through the platform model's own equations (`fit_model`) it also fits the client preset (RTT per session,
TLS round trips, upload bandwidth, jitter, and the inflation in the form the base preset names:
additive, round_trip or multiplicative), the handler times per (workload, platform), and how much of a
request reaches an ECS task while it waits for a worker (`fit_queued_body`: queued_receive_bytes); ECS
requests that waited and whose whole body was already there measure the ECS handler's own time.

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

from hybridopt.errors import InputError
from hybridopt.params import LoadPattern

KB_PER_MB: Final = 1024.0
UPLOAD_GRID_MBPS: Final = (0.5, 5000.0)    # search range of the client's upload bandwidth
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
    queued_wait_min_ms: float = 3000.0     # queued-body fit: ECS requests that waited at least this long
    queued_min_logged_share: float = 0.5   # ... in cells that logged at least this share (less survivor bias)


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
    model: "ModelFit | None" = None         # the platform model's parameters (when testbed params given)

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
        counts = frame[frame["ok"]].groupby(["key", "bin"]).size().rename("n").reset_index()
        n = frame[["key", "bin"]].merge(counts, on=["key", "bin"], how="left")["n"].fillna(0).to_numpy()
        exp = expected[frame["bin"].to_numpy()]
        share.loc[run.index] = np.where(exp >= 1.0, n / np.maximum(exp, 1e-12), np.nan)
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
              runs: Iterable[str] | None = None, testbed: Any = None,
              workloads: Mapping[str, Any] | None = None) -> Calibration:
    """Fit everything the logs can tell (optionally only on `runs`); with `testbed` (params.testbed)
    and `workloads` also the platform model's own parameters (`Calibration.model`)."""
    ctx = add_context(df, load_patterns, opts)
    if runs is not None:
        keep = set(runs)
        ctx = ctx[ctx["run_id"].astype(str).isin(keep)]
    ok = successful(ctx)
    ok = ok[ok["offered_rate_rps"].notna()]
    if ok.empty:
        raise InputError("no successful rows with execution_time_ms, total_ms and a known load pattern to fit")
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
    model = (fit_model(good, ref, ok, testbed, workloads, r0, cold, opts)
             if testbed is not None and workloads else None)
    return Calibration(model=model, service=service, network=network, network_source=source, cold_start=cold, inflation=inflation,
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


# ==================================================================================================
# The platform model's own parameters (hybridopt.platforms), fitted through its equations
# ==================================================================================================
@dataclass(frozen=True)
class ClientFit:
    """The client preset of the measurement setup, in the units of params.ClientPreset.

    Model (hybridopt.platforms, new connection per request): Lambda overhead = RTT x (TCP + TLS + 1)
    + upload + API Gateway + runtime; ECS overhead = RTT x (TCP + 1) + ALB + cpu sample (the upload
    is inside ECS's timed region); with x = max(0, rate - threshold), the inflation adds
    inflation_ms_per_rps x x once (additive), to every round trip (round_trip), or per second of the
    client-side time (multiplicative)."""
    rtt_ms: float                          # the typical session: geometric mean of the sessions' RTTs
    rtt_ms_by_session: dict[str, float]
    rtt_se_ms: float
    tls_handshake_rtts: int
    tls_rtts_estimate: float
    upload_mbps: float
    upload_mbps_interval: tuple[float, float]   # bandwidths whose error is within 10 % of the best
    rtt_jitter_sigma: float
    inflation_form: str                    # params.ClientInflation.form the fit used
    inflation_ms_per_rps: float            # additive: per request; round_trip: per round trip;
                                           # multiplicative: per second of client-side time
    inflation_se_ms_per_rps: float
    inflation_threshold_rps: float
    n_bins: int
    bins: list[dict[str, Any]]


@dataclass(frozen=True)
class ServiceEntryFit:
    """One params.ServiceEntry: handler time = U(sleep_low, sleep_high) + cpu_ms_per_mb x MiB / share.
    The logs cannot split a constant CPU part from the wall-clock part, so cpu_ms is 0 and the sleep
    range carries both (valid at the fitted CPU share)."""
    sleep_low_ms: float
    sleep_high_ms: float
    cpu_ms_per_mb: float                   # at one full vCPU
    cpu_share: float
    slope_ms_per_mb: float                 # as measured at cpu_share
    n: int
    selection: str


@dataclass(frozen=True)
class QueuedBodyFit:
    """params.FargateModel.queued_receive_bytes from the logs: how much of a request reaches an ECS task
    while it waits for a worker. An ECS request that waited (total - execution - the session's median
    lightweight ECS overhead >= queued_wait_min_ms) had its whole body when the worker took it if its
    execution_time_ms is within the handler's own time (the same workload's warm Lambda p95 at that
    size: the handler without a body to read); the bytes where that share falls through 0.5 (log
    interpolation between the sizes around it) are the fit."""
    receive_bytes: int | None              # None: the share never crosses 0.5 (see note)
    bracket_bytes: tuple[int, int] | None  # the request sizes around the crossing
    shares: list[dict[str, float]]         # per payload size: request bytes, rows, share complete
    n: int
    note: str


@dataclass(frozen=True)
class ModelFit:
    client: ClientFit
    service: dict[str, dict[str, ServiceEntryFit]]
    cold_start_model_ms: float             # what the model adds for a cold start (published values)
    cold_start_consistent: bool | None     # the logs' penalty CI covers the model's
    init_extra_ms: float                   # added to the model's INIT (at one vCPU) when the logs say more
    notes: list[str]
    queued_body: QueuedBodyFit | None = None


def _constants(testbed: Any) -> dict[str, float]:
    c = testbed.clients[testbed.client_preset]
    return {"tcp": float(c.tcp_handshake_rtts.value), "gw_ms": float(testbed.lambda_.api_gateway_overhead_ms.value),
            "runtime_ms": float(testbed.lambda_.runtime_overhead_ms.value),
            "alb_ms": float(testbed.fargate.alb_overhead_ms.value), "sample_ms": float(testbed.fargate.cpu_sample_ms.value)}


def _upload_ms(preset: Any, body_bytes: np.ndarray, rtt_ms: np.ndarray, upload_mbps: float) -> np.ndarray:
    """The platform model's own upload time (ClientNetwork.upload_s: slow start, then bandwidth)."""
    from hybridopt.platforms.draws import Draws
    from hybridopt.platforms.network import ClientNetwork
    p = preset.model_copy(update={"upload_mbps": preset.upload_mbps.model_copy(update={"value": float(upload_mbps)})})
    net = ClientNetwork(p, Draws(np.random.default_rng(0)))
    return np.array([net.upload_s(int(b), r / 1000.0) * 1000.0 for b, r in zip(body_bytes, rtt_ms)])


def body_bytes(payload_kb: Any) -> np.ndarray:
    """Bytes the load generator sends for a payload size (the simulator's convention)."""
    from hybridopt.emulation.simulate import ENVELOPE_BYTES
    return np.rint(np.asarray(payload_kb, dtype=np.float64) * 1024.0).astype(np.int64) + ENVELOPE_BYTES


INFLATION_FORMS: Final = ("additive", "round_trip", "multiplicative")
MULTIPLICATIVE_GRID: Final = np.linspace(0.0, 200.0, 401)   # ms per second of client-side time per req/s


def round_trip_ms(form: str, m: float, x: Any, rtt_ms: Any) -> Any:
    """Duration of one of a request's round trips under the inflation form (params.ClientInflation):
    round_trip adds m * x ms to each; multiplicative stretches the client-side time by m * x ms per second;
    additive leaves it alone (its m * x ms come once, see extra_ms)."""
    x = np.asarray(x, dtype=np.float64)
    if form == "round_trip":
        return rtt_ms + m * x
    if form == "multiplicative":
        return rtt_ms * (1.0 + m * x / 1000.0)
    return rtt_ms + 0.0 * x


def extra_ms(form: str, m: float, x: Any) -> Any:
    """The once-per-request part of the inflation (additive form only)."""
    return m * np.asarray(x, dtype=np.float64) if form == "additive" else 0.0 * np.asarray(x, dtype=np.float64)


def fit_client(rows: pd.DataFrame, testbed: Any, reference_rate_rps: float, opts: FitOptions) -> ClientFit:
    """RTT per session, TLS round trips and inflation from the lightweight requests (no upload
    beyond the initial congestion window), then the upload bandwidth from Lambda's growth with
    payload size, all through the platform model's equations (see ClientFit), with the inflation
    form of the base client preset (params.ClientInflation.form)."""
    k = _constants(testbed)
    preset = testbed.clients[testbed.client_preset]
    form = preset.inflation.form.value
    warm = _warm(rows)
    light = warm[warm["workload_type"].astype(str) == "lightweight_api"]
    light = light.assign(rate_bin=np.floor(light["offered_rate_rps"] / opts.rate_bin_rps))
    bins = (light.groupby(["session", "platform", "rate_bin"], observed=True)
            .agg(rate=("offered_rate_rps", "mean"), overhead=("overhead_ms", "median"), n=("overhead_ms", "size"))
            .reset_index())
    bins = bins[bins["n"] >= opts.min_rows].reset_index(drop=True)
    if bins.empty or set(bins["platform"].astype(str)) != set(PLATFORMS):
        raise InputError("client fit needs lightweight_api rows on both platforms "
                         f"(at least {opts.min_rows} per session and rate bin)")
    sess = sorted(bins["session"].astype(str).unique())
    sess_of = bins["session"].astype(str).to_numpy()
    x = np.maximum(0.0, bins["rate"].to_numpy() - reference_rate_rps)
    is_l = (bins["platform"].astype(str) == "lambda").to_numpy()
    y = bins["overhead"].to_numpy() - np.where(is_l, k["gw_ms"] + k["runtime_ms"], k["alb_ms"] + k["sample_ms"])
    w = np.sqrt(bins["n"].to_numpy().astype(np.float64))
    identified = any(np.ptp(x[sess_of == s]) > 0 for s in sess)

    def design(tls: float, f: float) -> np.ndarray:
        """Columns: one RTT per session (times the round trips, stretched for multiplicative), then the
        inflation's own column (additive: x; round_trip: round trips x x) when identified."""
        c = np.where(is_l, k["tcp"] + tls + 1.0, k["tcp"] + 1.0)
        stretch = 1.0 + f * x / 1000.0 if form == "multiplicative" else 1.0
        cols = [c * stretch * (sess_of == s) for s in sess]
        if identified and form != "multiplicative":
            cols.append(x if form == "additive" else c * x)
        return np.column_stack(cols)

    def solve(tls: float, mask: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
        """Least squares (bins weighted by sqrt(rows)); multiplicative: its factor by a grid search."""
        m_ = np.ones(len(bins), dtype=bool) if mask is None else mask
        best: tuple[np.ndarray, float, float] | None = None
        grid = MULTIPLICATIVE_GRID if (form == "multiplicative" and identified) else (0.0,)
        for f in grid:
            a = design(tls, float(f))[m_] * w[m_, None]
            theta, *_ = np.linalg.lstsq(a, y[m_] * w[m_], rcond=None)
            resid = a @ theta - y[m_] * w[m_]
            sse = float(resid @ resid)
            if best is None or sse < best[1]:
                best = (theta, sse, float(f))
        assert best is not None
        return best

    def inflation_of(theta: np.ndarray, f: float) -> float:
        if not identified:
            return 0.0
        return f if form == "multiplicative" else float(theta[-1])

    # TLS round trips: the ECS rows alone fix RTT and inflation (no TLS on the student's ALB);
    # Lambda's extra time over them says how many round trips its handshake took
    th_e, _, f_e = solve(2.0, ~is_l)
    m_e = inflation_of(th_e, f_e)
    rtt_e = np.array([th_e[sess.index(s_)] for s_ in sess_of])
    tau_e = round_trip_ms(form, m_e, x, rtt_e)
    est = ((y - extra_ms(form, m_e, x)) / tau_e - k["tcp"] - 1.0)[is_l]
    tls_est = float(np.median(est))
    tls = int(min((1, 2), key=lambda t: solve(float(t))[1]))
    theta, sse, f_best = solve(float(tls))
    a = design(float(tls), f_best)
    dof = max(1, len(bins) - a.shape[1] - (1 if form == "multiplicative" and identified else 0))
    cov = np.linalg.pinv((a * w[:, None]).T @ (a * w[:, None])) * sse / dof
    rtt_by = {s: float(theta[i]) for i, s in enumerate(sess)}
    m = inflation_of(theta, f_best)
    if not identified:
        m_se = float("nan")
    elif form == "multiplicative":
        # profile: the factors whose error is within one residual variance of the best
        s2 = sse / dof
        near = [float(f) for f in MULTIPLICATIVE_GRID
                if _sse_at(design(float(tls), float(f)), y, w) <= sse + s2]
        m_se = (max(near) - min(near)) / 2.0 if near else float("nan")
    else:
        m_se = float(math.sqrt(max(0.0, cov[-1, -1])))
    rtt_typ = math.exp(float(np.mean(np.log(list(rtt_by.values())))))
    rtt_se = float(math.sqrt(max(0.0, float(np.mean(np.diag(cov)[:len(sess)])))))
    # RTT jitter: the spread of lightweight overheads inside each (session, platform, rate bin), after
    # removing the inflation (the model jitters the RTT before the inflation is applied)
    spreads = []
    for (s_, pl, rb), g in light.groupby(["session", "platform", "rate_bin"], observed=True):
        if len(g) < opts.min_rows:
            continue
        const = k["gw_ms"] + k["runtime_ms"] if pl == "lambda" else k["alb_ms"] + k["sample_ms"]
        c_rt = k["tcp"] + tls + 1.0 if pl == "lambda" else k["tcp"] + 1.0
        xg = np.maximum(0.0, g["offered_rate_rps"].to_numpy() - reference_rate_rps)
        v = g["overhead_ms"].to_numpy() - const - extra_ms(form, m, xg)
        if form == "round_trip":
            v = v - c_rt * m * xg
        elif form == "multiplicative":
            v = v / (1.0 + m * xg / 1000.0)
        v = v[v > 0]
        if len(v) >= opts.min_rows:
            lv = np.log(v)
            spreads.append((np.quantile(lv, 0.95) - np.median(lv)) / 1.6448536269514722)
    jitter = float(np.median(spreads)) if spreads else float(preset.rtt_jitter_sigma.value)
    # upload bandwidth: Lambda's overhead beyond the handshakes, against the model's slow-start upload
    # (with each group's round trip as the inflation form makes it)
    lam = warm[warm["platform"] == "lambda"]
    lam = lam.assign(rtt=lam["session"].astype(str).map(rtt_by))
    lam = lam[lam["rtt"].notna()]
    xl = np.maximum(0.0, lam["offered_rate_rps"].to_numpy() - reference_rate_rps)
    c_l = k["tcp"] + tls + 1.0
    net = lam["overhead_ms"].to_numpy() - k["gw_ms"] - k["runtime_ms"] - extra_ms(form, m, xl)
    if form == "multiplicative":
        net = net / (1.0 + m * xl / 1000.0)
        tau = lam["rtt"].to_numpy()
    else:
        tau = round_trip_ms(form, m, xl, lam["rtt"].to_numpy())
    lam = lam.assign(y=net - c_l * tau, tau=tau, rate_bin=np.floor(lam["offered_rate_rps"] / opts.rate_bin_rps))
    ub = (lam.groupby(["session", "target_payload_size_kb", "rate_bin"], observed=True)
          .agg(y=("y", "median"), rtt=("tau", "mean"), n=("y", "size")).reset_index())
    ub = ub[ub["n"] >= opts.min_rows]
    grid = np.exp(np.linspace(math.log(UPLOAD_GRID_MBPS[0]), math.log(UPLOAD_GRID_MBPS[1]), 241))
    nbytes = body_bytes(ub["target_payload_size_kb"].to_numpy())
    errs = np.array([float((ub["n"].to_numpy() * (_upload_ms(preset, nbytes, ub["rtt"].to_numpy(), bw)
                                                  - ub["y"].to_numpy()) ** 2).sum()) for bw in grid])
    best = int(np.argmin(errs))
    within = grid[errs <= errs[best] * 1.1]
    return ClientFit(rtt_ms=rtt_typ, rtt_ms_by_session=rtt_by, rtt_se_ms=rtt_se, tls_handshake_rtts=tls,
                     tls_rtts_estimate=tls_est, upload_mbps=float(grid[best]),
                     upload_mbps_interval=(float(within.min()), float(within.max())), rtt_jitter_sigma=jitter,
                     inflation_form=form, inflation_ms_per_rps=m, inflation_se_ms_per_rps=m_se,
                     inflation_threshold_rps=reference_rate_rps, n_bins=int(len(bins)),
                     bins=[{"session": str(r.session), "platform": str(r.platform), "rate_rps": float(r.rate),
                            "overhead_ms": float(r.overhead), "n": int(r.n)} for r in bins.itertuples()])


def _sse_at(a: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    aw = a * w[:, None]
    theta, *_ = np.linalg.lstsq(aw, y * w, rcond=None)
    r = aw @ theta - y * w
    return float(r @ r)


def _uniform_from_quantiles(v: np.ndarray) -> tuple[float, float]:
    """[low, high] of a uniform with the sample's 10th and 90th percentiles (robust to outliers)."""
    q10, q90 = np.quantile(v, [0.1, 0.9])
    span = max(0.0, (q90 - q10) / 0.8)
    low = max(0.0, q10 - 0.1 * span)
    return float(low), float(low + span)


def fit_service_entries(rows: pd.DataFrame, client: ClientFit, testbed: Any, workloads: Mapping[str, Any],
                        opts: FitOptions) -> tuple[dict[str, dict[str, ServiceEntryFit]], list[str]]:
    """Handler times per (workload, platform) in the model's form. Lambda: execution_time_ms as
    logged. ECS: the model puts the part of the upload that arrives after a worker picked the
    request up inside execution_time_ms (the ALB streams the body); the fit uses the requests that
    did not wait for a worker (overhead within the session's no-queue range: the 90th percentile
    of lightweight ECS overheads, ~7 % utilised) and subtracts the model's upload time."""
    preset = testbed.clients[testbed.client_preset]
    full = float(testbed.lambda_.full_vcpu_memory_mb.value)
    out: dict[str, dict[str, ServiceEntryFit]] = {}
    notes: list[str] = []
    warm = _warm(rows)
    ecs_light = warm[(warm["platform"] == "ecs") & (warm["workload_type"].astype(str) == "lightweight_api")]
    ecs_light = ecs_light.assign(rate_bin=np.floor(ecs_light["offered_rate_rps"] / opts.rate_bin_rps))
    no_queue = ecs_light.groupby(["session", "rate_bin"], observed=True)["overhead_ms"].quantile(0.9)
    for (w, p), g in warm.groupby(["workload_type", "platform"], observed=True):
        w, p = str(w), str(p)
        if w not in workloads:
            continue
        if p == "lambda":
            share = min(1.0, workloads[w].lambda_memory_mb / full)
            svc = g["execution_time_ms"].to_numpy()
            sel = "warm logged successes"
        else:
            share = min(1.0, float(workloads[w].fargate.vcpu))
            g = g.assign(rate_bin=np.floor(g["offered_rate_rps"] / opts.rate_bin_rps))
            limit = (g[["session", "rate_bin"]].astype({"session": str})
                     .merge(no_queue.rename("limit").reset_index().astype({"session": str}),
                            on=["session", "rate_bin"], how="left")["limit"].to_numpy())
            g = g[g["overhead_ms"].to_numpy() <= limit]
            rtt = g["session"].astype(str).map(client.rtt_ms_by_session).to_numpy(dtype=np.float64)
            ok = np.isfinite(rtt)
            g, rtt = g[ok], rtt[ok]
            up = _upload_ms(preset, body_bytes(g["target_payload_size_kb"].to_numpy()), rtt, client.upload_mbps)
            svc = np.maximum(0.0, g["execution_time_ms"].to_numpy() - up)
            sel = "warm successes that did not wait for a worker, minus the model's upload time"
        if len(svc) < opts.min_rows:
            notes.append(f"service entry {w}/{p}: {len(svc)} rows < {opts.min_rows}: not fitted")
            continue
        mb = g["payload_mb"].to_numpy()
        line = linear_fit(mb, svc, n_boot=100, seed=opts.seed)
        slope = max(0.0, line.slope_ms_per_mb)
        if line.slope_ms_per_mb < 0:
            notes.append(f"service entry {w}/{p}: negative slope {line.slope_ms_per_mb:.1f} ms/MB set to 0")
        low, high = _uniform_from_quantiles(svc - slope * mb)
        out.setdefault(w, {})[p] = ServiceEntryFit(sleep_low_ms=low, sleep_high_ms=high, cpu_ms_per_mb=slope * share,
                                                   cpu_share=share, slope_ms_per_mb=slope, n=int(len(svc)), selection=sel)
    return out, notes


def _queued_ecs(rows: pd.DataFrame, opts: FitOptions) -> pd.DataFrame:
    """ECS successes that waited for a worker at least queued_wait_min_ms (total - execution - the
    session's median lightweight ECS overhead), in cells that logged at least queued_min_logged_share."""
    light = rows[(rows["platform"] == "ecs") & (rows["workload_type"].astype(str) == "lightweight_api")]
    noq = light.groupby("session", observed=True)["overhead_ms"].median().rename("no_queue_ms")
    e = rows[rows["platform"] == "ecs"].join(noq, on="session")
    wait = e["total_ms"] - e["execution_time_ms"] - e["no_queue_ms"]
    return e[(wait >= opts.queued_wait_min_ms) & (e["logged_share"].fillna(0.0) >= opts.queued_min_logged_share)]


def fit_queued_service_entries(rows: pd.DataFrame, testbed: Any, workloads: Mapping[str, Any],
                               queued: QueuedBodyFit, opts: FitOptions) -> dict[str, ServiceEntryFit]:
    """ECS handler times measured directly: a request that waited for a worker and is at most half the
    fitted queued_receive_bytes had its whole body when the worker took it, so its execution_time_ms is
    the handler's own time (no body to read, no upload to subtract). Per workload with enough rows,
    among the workloads that do queue (utilisation >= max_queue_utilisation at the rows' rates): in one
    that hardly ever waits, a long gap before the handler is more likely a retransmitted packet than a
    queue."""
    out: dict[str, ServiceEntryFit] = {}
    if queued.receive_bytes is None:
        return out
    header = int(testbed.clients[testbed.client_preset].request_header_bytes.value)
    util = queue_utilisation(_warm(rows), opts)
    e = _queued_ecs(_warm(rows), opts)
    e = e[body_bytes(e["target_payload_size_kb"].to_numpy()) + header <= queued.receive_bytes / 2]
    for w, g in e.groupby("workload_type", observed=True):
        w = str(w)
        if w not in workloads or len(g) < opts.min_rows or util.get(w, 0.0) < opts.max_queue_utilisation:
            continue
        share = min(1.0, float(workloads[w].fargate.vcpu))
        svc, mb = g["execution_time_ms"].to_numpy(), g["payload_mb"].to_numpy()
        line = linear_fit(mb, svc, n_boot=100, seed=opts.seed)
        slope = max(0.0, line.slope_ms_per_mb)
        low, high = _uniform_from_quantiles(svc - slope * mb)
        out[w] = ServiceEntryFit(sleep_low_ms=low, sleep_high_ms=high, cpu_ms_per_mb=slope * share, cpu_share=share,
                                 slope_ms_per_mb=slope, n=int(len(svc)),
                                 selection=(f"successes that waited >= {opts.queued_wait_min_ms / 1000:g} s for a worker "
                                            f"with a request of at most half queued_receive_bytes (whole body there "
                                            "when the worker took it): execution_time_ms is the handler's own time"))
    return out


def fit_queued_body(rows: pd.DataFrame, testbed: Any, opts: FitOptions) -> QueuedBodyFit:
    """See QueuedBodyFit. `rows`: logged successes with context (add_context)."""
    header = int(testbed.clients[testbed.client_preset].request_header_bytes.value)
    warm = _warm(rows)
    lam = warm[warm["platform"] == "lambda"]
    ref = (lam.groupby(["workload_type", "target_payload_size_kb"], observed=True)["execution_time_ms"]
           .quantile(0.95).rename("handler_p95_ms"))
    e = _queued_ecs(rows, opts)
    e = e[e["workload_type"].astype(str) != "lightweight_api"]
    e = e.join(ref, on=["workload_type", "target_payload_size_kb"])
    e = e[e["handler_p95_ms"].notna()]
    e = e.assign(complete=(e["execution_time_ms"] <= e["handler_p95_ms"]).astype(float))
    t = e.groupby("target_payload_size_kb", observed=True)["complete"].agg(["mean", "size"]).reset_index()
    t = t[t["size"] >= opts.min_rows].sort_values("target_payload_size_kb")
    nbytes = body_bytes(t["target_payload_size_kb"].to_numpy()) + header
    shares = [{"payload_kb": float(kb), "request_bytes": int(b), "n": int(n), "share_complete": float(m)}
              for kb, b, n, m in zip(t["target_payload_size_kb"], nbytes, t["size"], t["mean"])]
    sel = (f"ECS successes that waited >= {opts.queued_wait_min_ms / 1000:g} s for a worker, in cells that logged "
           f">= {opts.queued_min_logged_share:.0%}")
    if len(t) < 2:
        return QueuedBodyFit(None, None, shares, int(len(e)), f"{sel}: fewer than two payload sizes with "
                             f"{opts.min_rows} rows; not fitted")
    m_ = t["mean"].to_numpy()
    for i in range(len(m_) - 1):
        if m_[i] >= 0.5 > m_[i + 1]:
            lo, hi = float(nbytes[i]), float(nbytes[i + 1])
            f = (m_[i] - 0.5) / (m_[i] - m_[i + 1])
            b = int(round(math.exp(math.log(lo) + f * (math.log(hi) - math.log(lo)))))
            return QueuedBodyFit(b, (int(lo), int(hi)), shares, int(len(e)),
                                 f"{sel}: whole body at the worker in {m_[i]:.0%} of {int(t['size'].iloc[i])} "
                                 f"requests of {lo / 1024:.0f} KiB, {m_[i + 1]:.0%} of {int(t['size'].iloc[i + 1])} "
                                 f"of {hi / 1024:.0f} KiB; 0.5 crossed at {b / 1024:.0f} KiB (log interpolation)")
    where = "above the largest" if m_.min() >= 0.5 else ("below the smallest" if m_.max() < 0.5 else "not monotone")
    return QueuedBodyFit(None, None, shares, int(len(e)), f"{sel}: the share complete does not fall through 0.5 "
                         f"between two sizes ({where}); not fitted")


def fit_model(rows: pd.DataFrame, reference: pd.DataFrame, survivors: pd.DataFrame, testbed: Any,
              workloads: Mapping[str, Any], reference_rate_rps: float, cold: ColdStartFit | None,
              opts: FitOptions) -> ModelFit:
    """Everything the platform model needs from the logs (client preset, service preset, cold
    start). The client comes from the clean rows at every rate; handler times from the reference
    band (an unloaded client), or, for a cell without clean reference rows, from its logged
    successes (survivors, flagged); a cell with too few rows keeps the preset it started from."""
    client = fit_client(rows, testbed, reference_rate_rps, opts)
    service, notes = fit_service_entries(reference, client, testbed, workloads, opts)
    fallback, notes2 = fit_service_entries(survivors, client, testbed, workloads, opts)
    for w, by_p in fallback.items():
        for p, e in by_p.items():
            if p not in service.get(w, {}):
                service.setdefault(w, {})[p] = replace(e, selection="survivors of a censored cell: " + e.selection)
                notes = [n for n in notes if not n.startswith(f"service entry {w}/{p}:")]
    notes += [n for n in notes2 if not any(n.startswith(f"service entry {w}/{p}:")
                                           for w, by_p in service.items() for p in by_p)]
    lm = testbed.lambda_
    model_cold = float(lm.cold_start_overhead_ms.value + lm.init_p50_ms.value)
    consistent, extra = None, 0.0
    if cold is not None:
        lo, hi = cold.penalty_ci95_ms
        consistent = bool(lo <= model_cold <= hi)
        if cold.penalty_median_ms > model_cold and not consistent:
            extra = cold.penalty_median_ms - model_cold
        notes.append(f"cold start: logs {cold.penalty_median_ms:.0f} ms (95 % CI {lo:.0f}-{hi:.0f}, "
                     f"{cold.n_cold} cold rows) vs the published model's {model_cold:.0f} ms"
                     + (": consistent, kept" if consistent else (f": {extra:.0f} ms added as init_extra" if extra
                        else ": the logs say less; the published values are kept")))
    lo_bw, hi_bw = client.upload_mbps_interval
    if hi_bw >= UPLOAD_GRID_MBPS[1] * 0.99 or lo_bw <= UPLOAD_GRID_MBPS[0] * 1.01:
        notes.append(f"upload bandwidth {client.upload_mbps:.0f} Mbit/s is at the edge of the search range "
                     f"{UPLOAD_GRID_MBPS[0]:g}-{UPLOAD_GRID_MBPS[1]:g}: not identified by these rows (the model's "
                     "slow-start upload grows faster with payload size than these logs' latency does)")
    if client.tls_handshake_rtts != round(client.tls_rtts_estimate):
        notes.append(f"TLS round trips: estimate {client.tls_rtts_estimate:.2f}, chosen {client.tls_handshake_rtts}")
    queued = fit_queued_body(survivors, testbed, opts)
    notes.append(f"queued ECS body: {queued.note}")
    for w, e in fit_queued_service_entries(survivors, testbed, workloads, queued, opts).items():
        service.setdefault(w, {})["ecs"] = e
    return ModelFit(client=client, service=service, cold_start_model_ms=model_cold,
                    cold_start_consistent=consistent, init_extra_ms=extra, notes=notes, queued_body=queued)


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


def model_logs(params: Any, sessions: Mapping[str, tuple[str, LoadPattern]], seed: int,
               start: str = "2025-11-22T19:00:00Z", gap_s: float = 3 * 3600.0) -> pd.DataFrame:
    """Legacy-design logs made by the platform model itself (`simulate.replay`): one platform per
    arrival, platform x workload scenarios and payload sizes uniform, each session its load
    pattern's Artillery schedule, sessions `gap_s` apart; returned as ingest would (tz-aware
    sent_at, `ok`, categories). For checking that the calibration recovers the model's parameters
    and that the validation passes where it must."""
    from hybridopt.emulation.simulate import phase_offsets, replay

    rng = np.random.default_rng(seed)
    base = pd.Timestamp(start)
    frames, t_start = [], 0.0
    names = list(params.workloads)
    for run_id, (pattern, lp) in sessions.items():
        off = np.concatenate([phase_offsets(p.duration_s, p.arrival_rate_rps, p.ramp_to_rps) for p in lp.phases])
        cell = rng.integers(0, 2 * len(names), len(off))
        work = np.array(names, dtype=object)[cell // 2]
        size = np.array([rng.choice(np.asarray(params.workloads[w].payload_sizes_kb, dtype=float)) for w in work])
        frames.append(pd.DataFrame({"t_s": t_start + off, "platform": np.where(cell % 2 == 0, "lambda", "ecs"),
                                    "workload_type": work, "payload_size_kb": size, "time_window": "early_morning",
                                    "load_pattern": pattern, "run_id": run_id,
                                    "sent_at": base + pd.to_timedelta(t_start + off, unit="s")}))
        t_start += lp.duration_s + gap_s
    out = replay(params, pd.concat(frames, ignore_index=True), seed=seed)
    out["sent_at"] = pd.to_datetime(out["sent_at"], utc=True, format="ISO8601")
    out["ok"] = out["error"].isna()
    out["cold_start"] = out["cold_start"].astype("boolean")
    for c in ("run_id", "platform", "workload_type", "load_pattern", "time_window"):
        out[c] = out[c].astype("category")
    return out


# ------------------------------------------------------------------------ presets for params/testbed.yaml
PRESET_NAME: Final = "fitted"


def _sourced(value: Any, source: str, basis: str = "fitted") -> dict[str, Any]:
    return {"value": value, "basis": basis, "source": source}


def client_preset(fit: ClientFit, base: Any, provenance: str, rtt_ms: float | None = None) -> dict[str, Any]:
    """A params.ClientPreset (as plain data) from `base` with the fitted values replaced."""
    out = base.model_dump(mode="json")
    rtts = ", ".join(f"{s} {v:.0f}" for s, v in sorted(fit.rtt_ms_by_session.items()))
    out["description"] = ("the real logs' client, fitted: one machine in India calling eu-west-1 through an "
                          "Artillery generator that saturated at higher rates")
    out["rtt_ms"] = _sourced(round(rtt_ms if rtt_ms is not None else fit.rtt_ms, 1),
                             f"{provenance}; lightweight overheads through the model's handshake equations; geometric "
                             f"mean of the sessions' RTTs ({rtts} ms; se {fit.rtt_se_ms:.0f} ms)")
    out["rtt_jitter_sigma"] = _sourced(round(fit.rtt_jitter_sigma, 3),
                                       f"{provenance}; (q95 - q50) / 1.645 of log lightweight overheads per session and rate bin")
    out["tls_handshake_rtts"] = _sourced(fit.tls_handshake_rtts,
                                         f"{provenance}; Lambda's overhead beyond the ECS one is {fit.tls_rtts_estimate:.2f} "
                                         "RTT (TLS 1.3 takes 1, TLS 1.2 takes 2)")
    lo, hi = fit.upload_mbps_interval
    out["upload_mbps"] = _sourced(round(fit.upload_mbps, 1),
                                  f"{provenance}; Lambda overhead growth with payload size against the model's slow-start "
                                  f"upload (error within 10 % of the best for {lo:.0f}-{hi:.0f} Mbit/s)")
    inf = out["inflation"]
    inf["enabled"] = _sourced(True, f"{provenance}; latency grew with the generator's own request rate within a run")
    inf["threshold_rps"] = _sourced(round(fit.inflation_threshold_rps, 3),
                                    f"{provenance}; the lowest offered rate (the reference of the fit)")
    unit = {"additive": "ms per request", "round_trip": "ms per round trip",
            "multiplicative": "ms per second of client-side time"}[fit.inflation_form]
    inf["ms_per_rps"] = _sourced(round(fit.inflation_ms_per_rps, 2),
                                 f"{provenance}; {fit.inflation_form} form: {unit} per request/s above the threshold, "
                                 "from lightweight overheads per (session, platform, rate bin) with a per-session RTT "
                                 f"(se {fit.inflation_se_ms_per_rps:.1f})")
    inf["exponent"] = _sourced(1.0, "linear in the excess rate: the logs do not identify a curvature", basis="assumption")
    return out


def queued_body_value(fit: ModelFit, provenance: str) -> dict[str, Any] | None:
    """params.FargateModel.queued_receive_bytes as a Sourced value (None when the logs did not fit it)."""
    q = fit.queued_body
    if q is None or q.receive_bytes is None:
        return None
    return _sourced(q.receive_bytes, f"{provenance}; {q.note}. More than a Linux socket holds unread (tcp_rmem's "
                                     "default buffer 'results in initial window of 65535', kernel ip-sysctl.rst): the "
                                     "rest is buffered by the ALB, whose proxy buffers AWS does not publish")


def service_preset(fits: Mapping[str, Mapping[str, ServiceEntryFit]], base: Any, provenance: str) -> dict[str, Any]:
    """A params.ServicePreset (plain data): fitted entries, and the base preset's entry (with its own
    basis) where a cell could not be fitted."""
    out: dict[str, Any] = {"description": "handler times fitted to the real logs (the deployed handlers slept; "
                                          "this recovers their sleep ranges and the payload-dependent CPU work)",
                           "workloads": {}}
    for w, by_p in base.workloads.items():
        for p, entry in by_p.items():
            f = fits.get(w, {}).get(p)
            if f is None:
                out["workloads"].setdefault(w, {})[p] = entry.model_dump(mode="json", exclude_none=True)
                continue
            src = f"{provenance}; {f.selection}; {f.n} rows"
            out["workloads"].setdefault(w, {})[p] = {
                "sleep_ms": _sourced([round(f.sleep_low_ms, 1), round(f.sleep_high_ms, 1)],
                                     f"{src}; uniform with the 10th/90th percentiles after the size term"),
                "cpu_ms": _sourced(0.0, f"{src}; not separable from the wall-clock part at one CPU share"),
                "cpu_ms_per_mb": _sourced(round(f.cpu_ms_per_mb, 3),
                                          f"{src}; median-line slope {f.slope_ms_per_mb:.1f} ms/MiB at CPU share "
                                          f"{f.cpu_share:.3f}, scaled to one vCPU"),
            }
    return out


def with_presets(params: Any, overrides: Mapping[str, Any]) -> Any:
    """`params` (a Params, possibly built in memory) with `testbed_overrides(...)` merged into its
    testbed section and validated again."""
    from hybridopt.params import TestbedParams

    def merge(a: dict[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
        return out

    tb = merge(params.testbed.model_dump(mode="json", by_alias=True), overrides["testbed"])
    return params.model_copy(update={"testbed": TestbedParams.model_validate(tb)})


def testbed_overrides(fit: ModelFit, testbed: Any, provenance: str, *, base_client: str | None = None,
                      base_service: str = "deployed", rtt_ms: float | None = None, select: bool = True
                      ) -> dict[str, Any]:
    """`load_params(..., overrides=...)` content adding (and, with `select`, choosing) the fitted
    client and service presets."""
    client = client_preset(fit.client, testbed.clients[base_client or testbed.client_preset], provenance, rtt_ms)
    service = service_preset(fit.service, testbed.service_presets[base_service], provenance)
    tb: dict[str, Any] = {"clients": {PRESET_NAME: client}, "service_presets": {PRESET_NAME: service}}
    queued = queued_body_value(fit, provenance)
    if queued is not None:
        tb["fargate"] = {"queued_receive_bytes": queued}
    if select:
        tb.update({"client_preset": PRESET_NAME, "service_preset": PRESET_NAME})
    return {"testbed": tb}


# ------------------------------------------------------------------ writing presets into testbed.yaml
class _FlowMap(dict):
    """A mapping dumped in flow style ({value: ..., basis: ..., source: ...})."""


class _FlowList(list):
    pass


def _flowify(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) <= {"value", "basis", "source"} and "value" in obj:
            return _FlowMap({k: (_FlowList(v) if isinstance(v, list) else v) for k, v in obj.items()})
        return {k: _flowify(v) for k, v in obj.items()}
    return obj


def preset_yaml(name: str, data: Mapping[str, Any], indent: int = 4) -> str:
    """`name:` and its mapping as YAML text indented by `indent` spaces (Sourced values in flow style)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(_FlowMap, lambda d, m: d.represent_mapping("tag:yaml.org,2002:map", m.items(), flow_style=True))
    Dumper.add_representer(_FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))
    text = yaml.dump({name: _flowify(dict(data))}, Dumper=Dumper, sort_keys=False, width=10_000, allow_unicode=True)
    pad = " " * indent
    return "".join(pad + line + "\n" for line in text.splitlines())


def _markers(section: str, name: str, indent: int) -> tuple[str, str]:
    pad = " " * indent
    return (f"{pad}# >>> {section}.{name}: written by hybridopt (do not edit by hand; rerun the command)\n",
            f"{pad}# <<< {section}.{name}\n")


def replace_block(text: str, section: str, name: str, block: str, indent: int = 4) -> str:
    """testbed.yaml text with `testbed.<section>.<name>` replaced by `block` between marker comments;
    the first time, the block goes at the end of the `  <section>:` mapping."""
    begin, end = _markers(section, name, indent)
    if begin in text and end in text:
        i, j = text.index(begin), text.index(end) + len(end)
        return text[:i] + begin + block + end + text[j:]
    lines = text.splitlines(keepends=True)
    head = f"{' ' * (indent - 2)}{section}:"
    try:
        start = next(i for i, ln in enumerate(lines) if ln.rstrip() == head or ln.startswith(head + " "))
    except StopIteration:
        raise ValueError(f"testbed.yaml has no '{head.strip()}' mapping to add {section}.{name} to") from None
    stop = len(lines)
    for i in range(start + 1, len(lines)):
        ln = lines[i]
        if ln.strip() and not ln.lstrip().startswith("#") and len(ln) - len(ln.lstrip()) <= indent - 2:
            stop = i
            break
    while stop > start + 1 and (not lines[stop - 1].strip() or
                                (lines[stop - 1].lstrip().startswith("#")
                                 and len(lines[stop - 1]) - len(lines[stop - 1].lstrip()) <= indent - 2)):
        stop -= 1
    return "".join(lines[:stop]) + begin + block + end + "".join(lines[stop:])
