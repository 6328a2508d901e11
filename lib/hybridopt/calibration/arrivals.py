"""The arrivals of a real session as the replay needs them: the load pattern's Artillery schedule over the
session's logged span, with the collection design's platform x workload mix and payload sizes."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from hybridopt.calibration.context import requests_per_arrival
from hybridopt.data.contract import PLATFORMS
from hybridopt.emulation.simulate import phase_offsets
from hybridopt.params import LoadPattern, Params, Workload


def session_arrivals(real: pd.DataFrame, params: Params, seed: int, t0_s: float = 0.0) -> pd.DataFrame:
    """The arrivals of one real session (`arrivals_for` with the profile's load patterns and workloads)."""
    return arrivals_for(real, params.load_patterns, params.workloads, seed, t0_s)


def arrivals_for(real: pd.DataFrame, load_patterns: Mapping[str, LoadPattern], workloads_: Mapping[str, Workload],
                 seed: int, t0_s: float = 0.0) -> pd.DataFrame:
    """The arrivals of one real session: the load pattern's Artillery schedule over the logged span,
    scenario (platform x workload; a paired collection: workload, sent to both platforms) and payload
    size uniform per arrival, run_id from the real run folders' time ranges. `real` holds the
    session's rows."""
    pattern = str(real["load_pattern"].astype(str).mode().iloc[0])
    lp = load_patterns[pattern]
    start = real["sent_at"].min()
    span_s = float((real["sent_at"].max() - start).total_seconds())
    offs, t = [], 0.0
    for ph in lp.phases:
        offs.append(t + phase_offsets(ph.duration_s, ph.arrival_rate_rps, ph.ramp_to_rps))
        t += ph.duration_s
    off = np.concatenate(offs) if offs else np.empty(0)
    off = off[off <= min(span_s, lp.duration_s)]
    rng = np.random.default_rng([seed, 11])
    workloads = list(workloads_)
    platforms = ("both",) if "pair_id" in real and requests_per_arrival(real) == 2 else PLATFORMS
    cells = [(p, w) for w in workloads for p in platforms]
    pick = rng.integers(0, len(cells), len(off))
    plat = np.array([cells[i][0] for i in pick], dtype=object)
    work = np.array([cells[i][1] for i in pick], dtype=object)
    size = np.empty(len(off))
    for w in workloads:
        sel = work == w
        sizes = np.asarray(workloads_[w].payload_sizes_kb, dtype=np.float64)
        size[sel] = sizes[rng.integers(0, len(sizes), int(sel.sum()))]
    sent = start + pd.to_timedelta(off, unit="s")
    runs = real.groupby("run_id", observed=True).agg(first=("sent_at", "min"),
                                                     tw=("time_window", lambda s: str(s.iloc[0]))).sort_values("first")
    idx = np.clip(np.searchsorted(runs["first"].to_numpy(), sent.to_numpy(), side="right") - 1, 0, len(runs) - 1)
    return pd.DataFrame({"t_s": t0_s + off, "platform": plat, "workload_type": work, "payload_size_kb": size,
                         "time_window": runs["tw"].to_numpy()[idx], "load_pattern": pattern,
                         "run_id": runs.index.astype(str).to_numpy()[idx], "sent_at": sent})


