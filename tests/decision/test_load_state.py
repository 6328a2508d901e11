"""The load state the router observes: the online tracker and the causal computation on logs agree,
and the guard catches a feature that reads the future."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hybridopt.decision import load_frame
from hybridopt.decision.load_frame import (
    CausalityError,
    check_causal,
    load_features_at,
    seconds,
)
from hybridopt.decision.load_state import PLATFORMS, LoadTracker, feature_names

WORKLOADS = ("lightweight_api", "heavy_processing")


def paired_log(n_pairs: int, seed: int, rate_rps: float = 8.0) -> pd.DataFrame:
    """Paired contract-shaped rows: each pair sent to both platforms at one instant (some instants
    shared by several pairs), latencies long enough that requests overlap, some without a latency."""
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1.0 / rate_rps, n_pairs))
    t[5::17] = t[4::17][: len(t[5::17])]             # ties: several pairs at the same instant
    t = np.round(t, 3)
    base = pd.Timestamp("2025-11-24T02:00:00Z")
    rows = []
    for i, ti in enumerate(t):
        w = WORKLOADS[int(rng.integers(0, 2))]
        for p in PLATFORMS:
            total = float(rng.lognormal(np.log(1500 if w == "heavy_processing" else 200), 0.8))
            rows.append({"request_id": f"r{i}-{p}", "pair_id": f"p{i}", "run_id": "run-a", "platform": p,
                         "workload_type": w, "sent_at": base + pd.Timedelta(seconds=float(ti)),
                         "total_ms": np.nan if rng.random() < 0.03 else round(total, 3)})
    return pd.DataFrame(rows)


def tracker_features(log: pd.DataFrame, timeout_s: float) -> pd.DataFrame:
    """Replay the log through a LoadTracker as a router would see it: per instant, completions due by
    then first, then every arrival's features, then the arrivals and their sends."""
    t = seconds(log["sent_at"])
    total = log["total_ms"].to_numpy(dtype=float) / 1000.0
    done = np.maximum(np.where(np.isfinite(total), t + total, t + timeout_s), t + 1e-6)
    events = []   # (time, kind order, payload): completions (0) before arrivals (1) at the same time
    pairs = log.assign(_t=t).groupby("pair_id", sort=False).agg(t=("_t", "min"), w=("workload_type", "first"))
    for pid, r in pairs.iterrows():
        events.append((r["t"], 1, ("arrive", pid, r["w"])))
    for i in range(len(log)):
        events.append((done[i], 0, ("done", log["platform"].iloc[i], log["workload_type"].iloc[i])))
    events.sort(key=lambda e: (e[0], e[1]))
    tr = LoadTracker()
    out: dict[str, dict[str, float]] = {}
    k = 0
    while k < len(events):
        tk = events[k][0]
        same = []
        while k < len(events) and events[k][0] == tk:
            same.append(events[k])
            k += 1
        for _, kind, ev in same:
            if kind == 0:
                tr.completed(ev[1], ev[2])
        arrivals = [ev for _, kind, ev in same if kind == 1]
        for ev in arrivals:
            out[ev[1]] = tr.features(tk, ev[2])
        for ev in arrivals:
            tr.arrived(tk, ev[2])
            for p in PLATFORMS:
                tr.sent(p, ev[2])
    return pd.DataFrame.from_dict(out, orient="index")[list(feature_names())]


def test_tracker_and_log_computation_agree_exactly() -> None:
    log = paired_log(600, seed=3)
    online = tracker_features(log, timeout_s=10.0)
    t = seconds(log["sent_at"])
    pairs = log.assign(_t=t).groupby("pair_id", sort=False).agg(t=("_t", "min"), w=("workload_type", "first"))
    offline = load_features_at(log, pairs["t"].to_numpy(), pairs["w"].to_numpy(dtype=object), missing_completion_s=10.0)
    offline.index = pairs.index
    pd.testing.assert_frame_equal(offline.loc[online.index], online, check_dtype=False, check_names=False,
                                  atol=1e-9, rtol=0)
    assert online["in_flight_ecs"].max() >= 5 and online["arrivals_10s_rps"].max() > 5   # the log really overlaps


def test_a_request_never_sees_itself_or_its_instant() -> None:
    log = paired_log(50, seed=1)
    t0 = seconds(log["sent_at"]).min()
    first = load_features_at(log, np.array([t0]), np.array(["lightweight_api"], dtype=object))
    assert (first.to_numpy() == 0).all()


def test_guard_passes_the_causal_computation_on_a_real_shaped_log() -> None:
    rep = check_causal(paired_log(400, seed=5), n_probes=40, seed=2)
    assert rep["probes"] == 40 and rep["max_abs_diff"] == 0.0


def test_guard_catches_a_feature_that_reads_the_future(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken in-flight count that includes requests sent at or after the decision time."""
    def leaky(sent: np.ndarray, done: np.ndarray, t: np.ndarray) -> np.ndarray:
        return (np.searchsorted(np.sort(sent), t + 5.0, side="right")
                - np.searchsorted(np.sort(done), t, side="right")).astype(np.float64)

    monkeypatch.setattr(load_frame, "_in_flight", leaky)
    with pytest.raises(CausalityError, match="in_flight"):
        check_causal(paired_log(300, seed=7), n_probes=30, seed=1)


def test_tracker_refuses_time_going_backwards_and_unknown_platforms() -> None:
    tr = LoadTracker()
    tr.features(5.0, "a")
    tr.arrived(5.0, "a")
    with pytest.raises(ValueError, match="before"):
        tr.features(4.0, "a")
    with pytest.raises(ValueError, match="platform"):
        tr.sent("ec2", "a")
    with pytest.raises(ValueError, match="never sent"):
        tr.completed("ecs", "a")


def test_microsecond_timestamps_and_unpaired_rows_are_read_as_they_come() -> None:
    """A parquet round trip stores microseconds; legacy rows have no pair_id at all."""
    log = paired_log(200, seed=9)
    us = log.assign(sent_at=log["sent_at"].astype("datetime64[us, UTC]"))
    assert check_causal(us, n_probes=20, seed=3)["max_abs_diff"] == 0.0
    t = seconds(us["sent_at"])
    assert np.allclose(t, seconds(log["sent_at"]))
    unpaired = log.assign(pair_id=pd.Series([None] * len(log), dtype="string"))
    f = load_features_at(unpaired, t[:5] + 1.0, np.array(["lightweight_api"] * 5, dtype=object))
    assert (f["arrivals_60s_rps"] > 0).all()         # every attempt is an arrival of its own
