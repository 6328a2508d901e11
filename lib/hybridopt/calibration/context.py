"""The context every fit needs, added to each logged row, and the row selections.

`add_context` gives each row its session (one generator run: runs that follow each other with the same
load pattern are joined), the request rate the generator offered when it was sent, its payload in MB,
its overhead (total - execution) and the share of its cell's scheduled requests that were logged.
The selections: `successful` (rows a latency fit can use), `clean` (their cell logged at least
`min_logged_share`), `reference_rows` (the rate band nearest the lowest offered rate: an unloaded
client) and `warm_rows` (no cold start)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from hybridopt.calibration.options import KB_PER_MB, FitOptions
from hybridopt.data.audit import is_probe
from hybridopt.data.contract import PLATFORMS
from hybridopt.params import LoadPattern


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
    # the load pattern's clock starts at the session's first load request: a probe phase before it
    # (phase `probe`, a few lightweight pairs) does not shift the schedule
    load_sent = out["sent_at"].where(~is_probe(out))
    start = load_sent.groupby(out["session"]).transform("min").fillna(out.groupby("session")["sent_at"].transform("min"))
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
    probe = is_probe(df)
    if probe.any():  # the probe's requests: its successes per platform of the pairs it sent in that run
        pr = df[probe & df["platform"].isin(PLATFORMS)]
        sent = pr.groupby("run_id", observed=True)["pair_id"].transform("nunique")
        ok = pr["ok"].astype(bool).groupby([pr["run_id"], pr["platform"]], observed=True).transform("sum")
        share.loc[pr.index] = (ok / sent.where(sent > 0)).to_numpy()
        df = df[~probe]
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


def successful(df: pd.DataFrame) -> pd.DataFrame:
    """Rows a latency fit can use: a logged success on a known platform with both timings and
    total >= execution time."""
    m = (df["ok"] & df["platform"].isin(PLATFORMS) & df["total_ms"].notna() & df["execution_time_ms"].notna()
         & (df["total_ms"] >= df["execution_time_ms"]))
    return df[m]


def warm_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows that were not a cold start (unknown counts as warm)."""
    return df[df["cold_start"].fillna(False).astype(bool).eq(False)]


def reference_rows(rows: pd.DataFrame, opts: FitOptions) -> pd.DataFrame:
    """Rows within `reference_band_rps` of the lowest offered rate."""
    r0 = float(rows["offered_rate_rps"].min())
    return rows[rows["offered_rate_rps"] <= r0 + opts.reference_band_rps]


def clean(rows: pd.DataFrame, opts: FitOptions) -> pd.DataFrame:
    """Rows whose (run, platform, workload, time bin) logged at least `min_logged_share`."""
    return rows[rows["logged_share"].fillna(0.0) >= opts.min_logged_share]
