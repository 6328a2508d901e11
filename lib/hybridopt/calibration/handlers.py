"""Handler times per (workload, platform) in the platform model's form (params.ServiceEntry: a uniform
sleep range plus CPU work per MiB), and how much of a request reaches an ECS task while it waits for a
worker (params.FargateModel.queued_receive_bytes: `fit_queued_body`). ECS requests that waited and
whose whole body was already there measure the ECS handler's own time (`fit_queued_service_entries`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hybridopt.calibration.client import ClientFit, body_bytes, upload_ms
from hybridopt.calibration.context import warm_rows
from hybridopt.calibration.empirical import linear_fit, queue_utilisation
from hybridopt.calibration.options import FitOptions
from hybridopt.params import TestbedParams, Workload


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
    shares: list[dict[str, float]]         # per payload size: payload_kb, request_bytes, n, share_complete
    n: int
    note: str


def _uniform_from_quantiles(v: np.ndarray) -> tuple[float, float]:
    """[low, high] of a uniform with the sample's 10th and 90th percentiles (robust to outliers)."""
    q10, q90 = np.quantile(v, [0.1, 0.9])
    span = max(0.0, (q90 - q10) / 0.8)
    low = max(0.0, q10 - 0.1 * span)
    return float(low), float(low + span)


def fit_service_entries(rows: pd.DataFrame, client: ClientFit, testbed: TestbedParams, workloads: Mapping[str, Workload],
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
    warm = warm_rows(rows)
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
            up = upload_ms(preset, body_bytes(g["target_payload_size_kb"].to_numpy()), rtt, client.upload_mbps)
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


def fit_queued_service_entries(rows: pd.DataFrame, testbed: TestbedParams, workloads: Mapping[str, Workload],
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
    util = queue_utilisation(warm_rows(rows), opts)
    e = _queued_ecs(warm_rows(rows), opts)
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


def fit_queued_body(rows: pd.DataFrame, testbed: TestbedParams, opts: FitOptions) -> QueuedBodyFit:
    """See QueuedBodyFit. `rows`: logged successes with context (add_context)."""
    header = int(testbed.clients[testbed.client_preset].request_header_bytes.value)
    warm = warm_rows(rows)
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
