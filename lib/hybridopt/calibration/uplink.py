"""The load generator's shared uplink (params.ClientUplink.capacity_mbps) fitted from the real logs.

A body sent while many others are in flight shares the client's uplink with them (`platforms.network
.SharedUplink`): when the uploads in flight want more than the uplink carries, every one of them is
stretched, and the large ones outlast the client's timeout. Lambda shows it cleanly (API Gateway takes
the whole body before it invokes, and nothing queues in front of a function), so the fit compares, per
(session, workload, payload size) of the Lambda requests with a real upload (every workload but
lightweight_api), the latency distribution censored at the client's timeout (a request the legacy
logger did not log counts as timed out: the number expected is the schedule's arrivals times the
cell's share of the design's uniform mix) with the model's replay of the same session at each candidate capacity (`FitOptions.uplink_grid_mbps`,
then the two geometric midpoints around the best), the client preset otherwise as fitted (each session
with its own RTT and set-up time). The loss is the mean squared log ratio of the censored quartiles and 90th percentile;
no sharing at all is a candidate too. The capacity is identified when the best candidate beats no
sharing by more than `uplink_min_gain` AND by more than two standard errors of the paired difference
over the compared quantiles (sampling noise alone makes some capacity look a little better), and the
candidates not worse than the best by two such standard errors stay inside the grid."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hybridopt.calibration.arrivals import arrivals_for
from hybridopt.calibration.client import LIGHT_WORKLOAD, ClientFit
from hybridopt.calibration.options import FitOptions
from hybridopt.emulation.simulate import run_model
from hybridopt.params import LoadPattern, TestbedParams, Workload
from hybridopt.platforms.model import PlatformModel

QUANTILES = (0.25, 0.5, 0.75, 0.9)


@dataclass(frozen=True)
class UplinkFit:
    """The shared uplink's capacity, or None when the logs do not identify it (see `note`)."""
    capacity_mbps: float | None
    interval_mbps: tuple[float, float] | None   # candidates not worse than the best by two standard errors
    loss_unshared: float                         # the loss with no sharing (each upload has upload_mbps)
    loss_best: float
    grid: list[dict[str, float | None]]          # capacity_mbps (None: no sharing), loss
    n_cells: int
    note: str


def _with_client(testbed: TestbedParams, rtt_ms: float, capacity_mbps: float | None, source: str,
                 setup_ms: float = 0.0) -> TestbedParams:
    d = testbed.model_dump(mode="json", by_alias=True)
    c = d["clients"][testbed.client_preset]
    c["rtt_ms"] = {"value": rtt_ms, "basis": "fitted", "source": source}
    c["dns_ms"] = {"value": setup_ms, "basis": "fitted", "source": source}
    c["uplink"] = None if capacity_mbps is None else {
        "enabled": {"value": True, "basis": "fitted", "source": source},
        "capacity_mbps": {"value": capacity_mbps, "basis": "fitted", "source": source}}
    return TestbedParams.model_validate(d)


def _censored_q(v: np.ndarray, n_expected: int, cap_ms: float) -> np.ndarray:
    """Quantiles of the latencies with the requests that did not succeed counted at the cap."""
    full = np.concatenate([np.minimum(v, cap_ms), np.full(max(0, n_expected - len(v)), cap_ms)])
    return np.quantile(full, QUANTILES)


def fit_uplink(rows: pd.DataFrame, testbed: TestbedParams, workloads: Mapping[str, Workload],
               load_patterns: Mapping[str, LoadPattern], client: ClientFit, opts: FitOptions) -> UplinkFit:
    """See the module docstring. `rows`: every logged row of the training sessions with context
    (add_context); `testbed`: with the fitted client preset selected."""
    cap_ms = float(testbed.client.request_timeout_s.value) * 1000.0
    sessions = []
    for i, (sess, g) in enumerate(sorted(rows.groupby("session", observed=True), key=lambda x: str(x[0]))):
        sess = str(sess)
        if sess not in client.rtt_ms_by_session or str(g["load_pattern"].astype(str).mode().iloc[0]) not in load_patterns:
            continue
        arr = arrivals_for(g, load_patterns, workloads, opts.seed + i)
        ok = g[g["ok"] & (g["platform"].astype(str) == "lambda") & g["total_ms"].notna()]
        sessions.append((sess, arr, ok, opts.seed + i))
    if not sessions:
        return UplinkFit(None, None, math.nan, math.nan, [], 0, "no session with a fitted RTT and a known load pattern")

    def errors(capacity: float | None) -> np.ndarray:
        """Squared log ratios of the censored quantiles, cell by cell (the same cells for every capacity)."""
        errs: list[float] = []
        for sess, arr, ok, seed in sessions:
            tb = _with_client(testbed, client.rtt_ms_by_session[sess], capacity, "uplink fit",
                              client.setup_ms_by_session.get(sess, client.setup_ms))
            sim = run_model(PlatformModel(tb, workloads, np.random.default_rng([seed, 2])), arr, "uplink-fit")
            sim = sim[sim["platform"] == "lambda"]
            sim_ok = sim[sim["error"].isna()]
            paired = bool((arr["platform"] == "both").any())
            for (w, kb), s_all in sim.groupby(["workload_type", "target_payload_size_kb"]):
                if str(w) == LIGHT_WORKLOAD or len(s_all) < opts.min_rows:
                    continue
                r = ok[(ok["workload_type"].astype(str) == str(w)) & (ok["target_payload_size_kb"] == kb)]
                s_ok = sim_ok[(sim_ok["workload_type"] == w) & (sim_ok["target_payload_size_kb"] == kb)]
                # the real requests the schedule sent to this cell: its expected count under the design's
                # uniform mix (not the replay's own draw, whose noise would read as lost requests)
                expected = len(arr) / (len(workloads) * (1 if paired else 2) * len(workloads[str(w)].payload_sizes_kb))
                qr = _censored_q(r["total_ms"].to_numpy(dtype=float), max(len(r), round(expected)), cap_ms)
                qs = _censored_q(s_ok["total_ms"].to_numpy(dtype=float), len(s_all), cap_ms)
                errs.extend(np.square(np.log(qs / qr)).tolist())
        return np.asarray(errs)

    def worse_by(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        """Mean paired difference a - b and its standard error."""
        d = a - b
        return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.inf

    errs: dict[float | None, np.ndarray] = {None: errors(None)}
    n_cells = len(errs[None]) // len(QUANTILES)
    if n_cells == 0:
        return UplinkFit(None, None, math.nan, math.nan, [], 0, "no Lambda cell with a real upload to fit")
    for c in opts.uplink_grid_mbps:
        errs[float(c)] = errors(float(c))
    best = min((c for c in errs if c is not None), key=lambda c: float(errs[c].mean()))
    for c in (best / math.sqrt(2.0), best * math.sqrt(2.0)):
        errs[c] = errors(c)
    grid = {c: float(e.mean()) for c, e in errs.items()}
    best = min((c for c in grid if c is not None), key=grid.get)
    unshared = grid[None]
    gain_ms, gain_se = worse_by(errs[None], errs[best])
    near = [c for c in grid if c is not None and (c == best or worse_by(errs[c], errs[best])[0]
                                                  <= 2.0 * worse_by(errs[c], errs[best])[1])]
    lo_edge, hi_edge = min(opts.uplink_grid_mbps), max(opts.uplink_grid_mbps)
    gain = 1.0 - grid[best] / unshared if unshared > 0 else 0.0
    interval = (min(near), max(near))
    if gain < opts.uplink_min_gain or gain_ms <= 2.0 * gain_se:
        note = (f"not identified: the best capacity ({best:.0f} Mbit/s) reduces the loss of no sharing "
                f"({unshared:.4f}) by {gain:.0%}, {gain_ms / gain_se if gain_se > 0 else 0.0:.1f} standard errors "
                f"(needs {opts.uplink_min_gain:.0%} and 2)")
        return UplinkFit(None, interval, unshared, grid[best], _grid(grid), n_cells, note)
    if interval[1] >= hi_edge or interval[0] <= lo_edge:
        note = (f"not identified: capacities {interval[0]:.0f}-{interval[1]:.0f} Mbit/s fit as well as the best "
                f"(within two standard errors), reaching the edge of the grid {lo_edge:g}-{hi_edge:g}")
        return UplinkFit(None, interval, unshared, grid[best], _grid(grid), n_cells, note)
    note = (f"{best:.0f} Mbit/s (as good within two standard errors: {interval[0]:.0f}-{interval[1]:.0f}); loss "
            f"{grid[best]:.3f} against {unshared:.3f} without sharing ({gain_ms / gain_se:.1f} standard errors), over "
            f"{n_cells} Lambda (session, workload, payload) cells")
    return UplinkFit(float(best), interval, unshared, grid[best], _grid(grid), n_cells, note)


def _grid(grid: Mapping[float | None, float]) -> list[dict[str, Any]]:
    keys = sorted(grid, key=lambda c: math.inf if c is None else c)
    return [{"capacity_mbps": c, "loss": grid[c]} for c in keys]
