"""The load state of `hybridopt.decision.load_state`, computed causally on logged requests (numpy).

`load_features_at(requests, t_s, workloads)` gives, for decisions taken at times `t_s`, exactly what
a `LoadTracker` fed the same log would have answered: arrivals strictly before t (a pair, one
generated payload sent to both platforms, is ONE arrival at the router; an unpaired request is one
arrival), and requests in flight per platform (sent strictly before t, not completed by t). A
request's completion is `sent_at + total_ms`; an attempt without a measured `total_ms` (no response)
counts as in flight until `missing_completion_s` after it was sent (the client's timeout).

`check_causal` is the guard: on probe decisions it recomputes the features after replacing the
decision's own outcome and every later request with random values, and requires identical numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hybridopt.decision.load_state import DEFAULT_WINDOWS_S, PLATFORMS, feature_names

_EPS_S = 1e-6   # a completion is never at the send instant itself


def seconds(ts: pd.Series) -> np.ndarray:
    """tz-aware timestamps (or ISO strings) as float seconds since the epoch, whatever the stored
    resolution (a parquet round trip gives microseconds)."""
    s = pd.to_datetime(ts, utc=True, format="ISO8601") if not pd.api.types.is_datetime64_any_dtype(ts) else ts
    if getattr(s.dt, "tz", None) is None:
        s = s.dt.tz_localize("UTC")
    ns = s.dt.tz_convert("UTC").astype("datetime64[ns, UTC]").dt.tz_localize(None)
    return ns.to_numpy(dtype="datetime64[ns]").astype(np.int64) / 1e9


@dataclass(frozen=True)
class Streams:
    """A request log reduced to what the load state needs (times in float seconds)."""
    arrival_t_s: np.ndarray          # one per arrival unit (pair or unpaired request)
    arrival_workload: np.ndarray
    sent_t_s: np.ndarray             # one per attempt
    done_t_s: np.ndarray
    platform: np.ndarray
    workload: np.ndarray


def streams(requests: pd.DataFrame, missing_completion_s: float) -> Streams:
    """Arrivals and attempts of a contract-shaped request frame (columns request_id, pair_id,
    platform, workload_type, sent_at, total_ms). Rows of an unknown platform count as arrivals only."""
    missing = [c for c in ("request_id", "platform", "workload_type", "sent_at", "total_ms") if c not in requests]
    if missing:
        raise ValueError(f"load state: the request frame lacks columns {missing}")
    t = seconds(requests["sent_at"])
    work = requests["workload_type"].astype(str).to_numpy(dtype=object)
    unit = requests["request_id"].astype(str).to_numpy(dtype=object)
    if "pair_id" in requests:
        pair = requests["pair_id"].astype(object).to_numpy()
        has = pd.notna(pair)
        pair_txt = np.array([str(x) for x in pair], dtype=object)
        unit = np.where(has, "pair:" + pair_txt, "req:" + unit)
    units = pd.DataFrame({"unit": unit, "t": t, "w": work}).groupby("unit", sort=False).agg(t=("t", "min"),
                                                                                          w=("w", "first"))
    plat = requests["platform"].astype(str).to_numpy(dtype=object)
    total_s = requests["total_ms"].astype("float64").to_numpy() / 1000.0
    done = np.where(np.isfinite(total_s), t + total_s, t + missing_completion_s)
    done = np.maximum(done, t + _EPS_S)
    known = np.isin(plat, PLATFORMS)
    return Streams(units["t"].to_numpy(dtype=np.float64), units["w"].to_numpy(dtype=object),
                   t[known], done[known], plat[known], work[known])


def _count_before(sorted_times: np.ndarray, t: np.ndarray, side: str = "left") -> np.ndarray:
    return np.searchsorted(sorted_times, t, side=side).astype(np.float64)


def _in_flight(sent: np.ndarray, done: np.ndarray, t: np.ndarray) -> np.ndarray:
    """#{sent < t and done > t} = #{sent < t} - #{done <= t} (done > sent always)."""
    return _count_before(np.sort(sent), t, "left") - _count_before(np.sort(done), t, "right")


def features_from_streams(s: Streams, t_s: np.ndarray, workloads: np.ndarray,
                          windows_s: tuple[float, ...] = DEFAULT_WINDOWS_S) -> pd.DataFrame:
    t_s = np.asarray(t_s, dtype=np.float64)
    workloads = np.asarray(workloads, dtype=object)
    out: dict[str, np.ndarray] = {}
    at = np.sort(s.arrival_t_s)
    for w in windows_s:
        out[f"arrivals_{w:g}s_rps"] = (_count_before(at, t_s) - _count_before(at, t_s - w)) / w
    per_w = {k: np.sort(s.arrival_t_s[s.arrival_workload == k]) for k in np.unique(workloads)}
    for w in windows_s:
        col = np.zeros(len(t_s))
        for k, times in per_w.items():
            sel = workloads == k
            col[sel] = (_count_before(times, t_s[sel]) - _count_before(times, t_s[sel] - w)) / w
        out[f"workload_arrivals_{w:g}s_rps"] = col
    for p in PLATFORMS:
        m = s.platform == p
        out[f"in_flight_{p}"] = _in_flight(s.sent_t_s[m], s.done_t_s[m], t_s)
    for p in PLATFORMS:
        col = np.zeros(len(t_s))
        for k in np.unique(workloads):
            m = (s.platform == p) & (s.workload == k)
            sel = workloads == k
            col[sel] = _in_flight(s.sent_t_s[m], s.done_t_s[m], t_s[sel])
        out[f"workload_in_flight_{p}"] = col
    return pd.DataFrame(out, columns=list(feature_names(windows_s)))


def load_features_at(requests: pd.DataFrame, t_s: np.ndarray, workloads: np.ndarray,
                     windows_s: tuple[float, ...] = DEFAULT_WINDOWS_S,
                     missing_completion_s: float = 10.0) -> pd.DataFrame:
    """The load features of decisions at times t_s (float seconds) for the given workloads."""
    return features_from_streams(streams(requests, missing_completion_s), t_s, workloads, windows_s)


def pair_load_features(pairs: pd.DataFrame, requests: pd.DataFrame,
                       windows_s: tuple[float, ...] = DEFAULT_WINDOWS_S,
                       missing_completion_s: float = 10.0) -> pd.DataFrame:
    """The load features of each pair at its decision time (the pair table's sent_at: the earlier
    attempt's send time), row-aligned with `pairs`. Load is counted per run: runs are separate
    sessions, and a decision never sees another run's requests."""
    out = pd.DataFrame(index=pairs.index, columns=list(feature_names(windows_s)), dtype=np.float64)
    for run, idx in pairs.groupby(pairs["run_id"].astype(str), sort=False).groups.items():
        reqs = requests[requests["run_id"].astype(str) == run]
        part = pairs.loc[idx]
        f = load_features_at(reqs, seconds(part["sent_at"]), part["workload_type"].astype(str).to_numpy(dtype=object),
                             windows_s, missing_completion_s)
        out.loc[idx] = f.to_numpy()
    return out


class CausalityError(AssertionError):
    """A load feature changed when the decision's own outcome or a later request changed."""


def check_causal(requests: pd.DataFrame, n_probes: int = 100, seed: int = 0,
                 windows_s: tuple[float, ...] = DEFAULT_WINDOWS_S,
                 missing_completion_s: float = 10.0) -> dict[str, float]:
    """The leak guard: for `n_probes` random requests, scramble their own outcome and everything
    sent at or after them within their run (outcomes and platforms replaced at random, send times
    moved later), recompute their load features and require the same numbers. Raises
    CausalityError naming the probe and the feature; returns the probes checked."""
    if len(requests) == 0:
        return {"probes": 0, "max_abs_diff": 0.0}
    rng = np.random.default_rng(seed)
    req = requests.reset_index(drop=True).copy()
    sent = req["sent_at"]
    sent = sent if pd.api.types.is_datetime64_any_dtype(sent) else pd.to_datetime(sent, utc=True, format="ISO8601")
    req["sent_at"] = sent.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    t_all = seconds(req["sent_at"])
    runs = req["run_id"].astype(str).to_numpy(dtype=object) if "run_id" in req else np.zeros(len(req), dtype=object)
    work = req["workload_type"].astype(str).to_numpy(dtype=object)
    probes = rng.choice(len(req), size=min(n_probes, len(req)), replace=False)
    worst = 0.0
    for i in probes:
        run = req[runs == runs[i]]
        t = t_all[i]
        base = load_features_at(run, np.array([t]), work[[i]], windows_s, missing_completion_s).to_numpy()[0]
        fake = run.copy()
        later = (seconds(fake["sent_at"]) >= t)
        n_late = int(later.sum())
        fake.loc[later, "total_ms"] = rng.uniform(1.0, 60_000.0, n_late)
        fake.loc[later, "platform"] = rng.choice(list(PLATFORMS), n_late)
        fake.loc[later, "sent_at"] = fake.loc[later, "sent_at"] + pd.to_timedelta(rng.uniform(0.0, 30.0, n_late), unit="s")
        again = load_features_at(fake, np.array([t]), work[[i]], windows_s, missing_completion_s).to_numpy()[0]
        diff = np.abs(again - base)
        worst = max(worst, float(diff.max()))
        if diff.max() > 1e-9:
            name = feature_names(windows_s)[int(diff.argmax())]
            raise CausalityError(f"load feature {name} of request {req['request_id'].iloc[i]} changed by "
                                 f"{diff.max():g} when its own outcome and later requests changed")
    return {"probes": int(len(probes)), "max_abs_diff": worst}
