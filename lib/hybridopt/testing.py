"""Synthetic data with KNOWN truth, one generator per stage, for the tests, the benchmarks and the
reports' own method checks. Nothing here resembles the real platforms; each only has the right shape.

- `synthetic_table`: training tables with the training table's schema (table.PAIR_COLUMNS + the
  feature columns) and a known label probability per context. The label is drawn first:
  P(lambda better | context) = logistic(signal * score(context)); the two outcomes are then drawn to
  agree with it (label 1: Lambda >= 15 % faster and cheaper; label 0: Lambda slower or dearer), so
  decision-quality numbers are consistent with the labels. `bayes_accuracy` is the expected
  accuracy of the best possible classifier on the drawn contexts: mean of max(p, 1 - p).
- `write_synthetic_model_dir`: a small model directory trained on synthetic contexts, in exactly
  the training step's layout (hybridopt.model_dir), marked `synthetic: true` in its metadata, for
  the router's tests and benchmarks before a real model exists.
- `write_synthetic_decision_dir`: the decide stage's serving set (`decision/`) fitted by the decide
  stage's own code (`fit_outcomes`, `workload_rule`, `lookup_table`, `save_decision`) on synthetic
  pairs whose ECS latency and failures grow with the ECS requests in flight, for the router's tests
  and benchmarks without running collection and decide.
- `synthetic_arms`: two A/B arms with known population differences (the coverage check of 08).
- `synthetic_logs`: contract-shaped request logs drawn from known service, network, cold-start and
  inflation lines (`SyntheticTruth`), for checking that the calibration recovers them exactly.
- `model_logs`: legacy-design request logs made by the platform model itself (`simulate.replay`), for
  checking that the calibration recovers the model's parameters and that the validation passes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from hybridopt import model_dir as layout
from hybridopt.calibration.context import rate_at
from hybridopt.calibration.options import KB_PER_MB
from hybridopt.data.features import FeatureSpec
from hybridopt.data.table import PAIR_COLUMNS
from hybridopt.emulation.simulate import phase_offsets, replay
from hybridopt.params import LoadPattern, Params


# ------------------------------------------------------------------------------ training tables
@dataclass(frozen=True)
class SyntheticTable:
    table: pd.DataFrame
    p_lambda: np.ndarray          # the true P(label = 1) of every row
    bayes_accuracy: float         # mean of max(p, 1 - p)


def synthetic_table(params: Params, n_pairs: int, seed: int, *, signal: float = 1.0,
                    time_windows: list[str] | None = None, days: int = 14,
                    fail_share: float = 0.01) -> SyntheticTable:
    """A training table of n_pairs synthetic pairs, one run per time window (as in the plan)."""
    rng = np.random.default_rng(seed)
    spec = FeatureSpec.from_params(params)
    windows = time_windows or list(params.time_windows)
    workloads = list(params.workloads)
    w = rng.integers(0, len(workloads), n_pairs)
    workload = np.array(workloads, dtype=object)[w]
    payload = np.array([rng.choice(params.workloads[x].payload_sizes_kb) for x in workload], dtype=float)
    tw_idx = rng.integers(0, len(windows), n_pairs)
    tw = np.array(windows, dtype=object)[tw_idx]
    lp = np.array([params.time_windows[x].load_pattern for x in tw], dtype=object)
    day = rng.integers(0, days, n_pairs)
    start = datetime(2025, 11, 3, tzinfo=params.tz)  # a Monday
    sent = []
    for d, t in zip(day, tw):
        win = params.time_windows[t]
        local = start + timedelta(days=int(d), hours=win.start_hour,
                                  seconds=float(rng.uniform(0, 3600 * max(1, win.end_hour - win.start_hour))))
        sent.append(local.astimezone(timezone.utc))
    sent_at = pd.to_datetime(pd.Series(sent), utc=True)
    weekend = (sent_at.dt.tz_convert(params.timezone).dt.day_of_week >= 5).to_numpy()

    # the true label probability
    size_rank = np.array([params.workloads[x].payload_sizes_kb.index(p) / max(1, len(params.workloads[x].payload_sizes_kb) - 1)
                          for x, p in zip(workload, payload)])
    tw_code = np.array([params.time_windows[t].code for t in tw], dtype=float)
    lp_code = np.array([params.load_patterns[x].code for x in lp], dtype=float)
    w_effect = np.array([0.8, 0.3, -0.2, -0.6, 0.0, 0.0, 0.0, 0.0])[w]
    score = (w_effect + (1.2 - 0.6 * w) * (size_rank - 0.5) + 0.25 * np.cos(tw_code) - 0.2 * (lp_code == 2)
             + 0.3 * weekend * (w == 1))
    p = 1.0 / (1.0 + np.exp(-signal * 2.0 * score))
    y = (rng.random(n_pairs) < p).astype(np.int64)

    # outcomes that agree with the label
    ecs_lat = np.exp(rng.normal(np.log(50 + 400 * w + 0.05 * payload), 0.3))
    ecs_cost = 2e-6 * (1 + w) * rng.uniform(0.8, 1.2, n_pairs)
    better = rng.uniform(0.3, 0.85, (2, n_pairs))
    which = rng.random(n_pairs) < 0.5
    worse_lat = np.where(which, rng.uniform(1.0, 2.5, n_pairs), rng.uniform(0.4, 1.5, n_pairs))
    worse_cost = np.where(which, rng.uniform(0.4, 1.5, n_pairs), rng.uniform(1.0, 2.0, n_pairs))
    lam_lat = ecs_lat * np.where(y == 1, better[0], worse_lat)
    lam_cost = ecs_cost * np.where(y == 1, better[1], worse_cost)
    lam_ok = rng.random(n_pairs) >= fail_share
    ecs_ok = rng.random(n_pairs) >= fail_share

    ids = [f"syn-{seed}-{i:07d}" for i in range(n_pairs)]
    table = pd.DataFrame({
        "pair_id": ids, "pairing": "paired", "gap_s": 0.0,
        "run_id": [f"run-{t}" for t in tw],
        "source": "simulator", "experiment": params.experiment,
        "workload_type": workload, "payload_size_kb": payload, "time_window": tw, "load_pattern": lp,
        "phase": "steady", "scheduled_rate_rps": 5.0, "sent_at": sent_at,
        "lambda_request_id": [i + "-l" for i in ids], "ecs_request_id": [i + "-e" for i in ids],
        "lambda_ok": lam_ok, "ecs_ok": ecs_ok,
        "lambda_error": np.where(lam_ok, None, "http_error"), "ecs_error": np.where(ecs_ok, None, "http_error"),
        "lambda_latency_ms": lam_lat, "ecs_latency_ms": ecs_lat,
        "lambda_cost_usd": lam_cost, "ecs_cost_usd": ecs_cost,
        "lambda_cold_start": rng.random(n_pairs) < 0.02,
        "latency_optimal": (lam_lat < ecs_lat).astype(np.int64),
        "cost_optimal": (lam_cost < ecs_cost).astype(np.int64),
        "balanced_optimal": y,
    })
    for c in ("workload_type", "time_window", "load_pattern", "pairing", "source", "experiment", "phase"):
        table[c] = table[c].astype("category")
    feats = spec.frame(table[["workload_type", "payload_size_kb", "sent_at", "time_window", "load_pattern"]])
    # payload_size_kb is both a pair column and a feature (the same value): keep one
    feats = feats.drop(columns=[c for c in feats.columns if c in PAIR_COLUMNS])
    table = pd.concat([table[list(PAIR_COLUMNS)], feats], axis=1)
    return SyntheticTable(table, p, float(np.maximum(p, 1 - p).mean()))


# --------------------------------------------------------------------------- router model dir
def synthetic_contexts(spec: FeatureSpec, n: int, seed: int) -> pd.DataFrame:
    """Random request contexts over the spec's categories, with a known P(lambda is optimal)."""
    rng = np.random.default_rng(seed)
    workloads = sorted(spec.workload_codes)
    windows = sorted(spec.time_window_codes)
    patterns = sorted(spec.load_pattern_codes)
    w = rng.choice(workloads, n)
    tw = rng.choice(windows, n)
    hours = np.array([rng.integers(*spec.time_window_hours[x]) for x in tw])
    day = pd.Timestamp("2025-11-17", tz=spec.timezone) + pd.to_timedelta(rng.integers(0, 7, n), unit="D")
    sent_at = (day + pd.to_timedelta(hours, unit="h") + pd.to_timedelta(rng.integers(0, 3600, n), unit="s"))
    payload = np.exp(rng.uniform(np.log(0.5), np.log(10240), n))
    lp = rng.choice(patterns, n)
    logit = (2.5 - 0.55 * np.log1p(payload) - 0.4 * np.array([spec.load_pattern_codes[x] for x in lp])
             + 0.5 * (np.array([spec.time_window_codes[x] for x in tw]) % 2))
    p = 1.0 / (1.0 + np.exp(-logit))
    label = (rng.random(n) < p).astype(int)
    return pd.DataFrame({"workload_type": w, "payload_size_kb": payload, "sent_at": sent_at.tz_convert("UTC"),
                         "time_window": tw, "load_pattern": lp, "label": label, "p_true": p})


def write_synthetic_model_dir(spec: FeatureSpec, out_dir: str | Path,
                              fmt: Literal["lightgbm", "xgboost"] = "lightgbm", n_rows: int = 4000,
                              n_trees: int = 100, seed: int = 0) -> Path:
    """Train a small booster on synthetic contexts and write the serving layout into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = synthetic_contexts(spec, n_rows, seed)
    X = spec.frame(ctx)
    y = ctx["label"].to_numpy()
    if fmt == "lightgbm":
        import lightgbm as lgb

        booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 15, "seed": seed,
                             "learning_rate": 0.1, "num_threads": 1}, lgb.Dataset(X, y), n_trees)
        booster.save_model(str(out / layout.SERVING_FILES["lightgbm_text"]))
        serving = {"format": "lightgbm_text", "file": layout.SERVING_FILES["lightgbm_text"]}
    else:
        import xgboost as xgb

        booster = xgb.train({"objective": "binary:logistic", "max_depth": 4, "eta": 0.1, "seed": seed,
                             "nthread": 1}, xgb.DMatrix(X, y, feature_names=list(X.columns)), n_trees)
        booster.save_model(str(out / layout.SERVING_FILES["xgboost_json"]))
        serving = {"format": "xgboost_json", "file": layout.SERVING_FILES["xgboost_json"]}
    share = ctx.groupby("workload_type")["label"].mean()
    static_rule = {w: ("lambda" if share.get(w, 0.0) >= 0.5 else "ecs") for w in spec.workload_codes}
    (out / layout.FEATURE_COLUMNS).write_text(json.dumps(spec.columns))
    (out / layout.FEATURE_SPEC).write_text(spec.to_json())
    (out / layout.STATIC_RULE).write_text(json.dumps(static_rule, indent=2, sort_keys=True))
    meta = {"model_version": f"synthetic-{fmt}-seed{seed}", "synthetic": True, "family": fmt,
            "serving": {**serving, "label": "synthetic_optimal", "threshold": 0.5, "positive_class": "lambda"}}
    (out / layout.METADATA).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return out


# ------------------------------------------------------------------------- decision dir
#: Synthetic Lambda / ECS median service time (ms) per workload at 0 KB; both grow with the payload.
_SYNTH_BASE_MS = {"lightweight_api": (60.0, 25.0), "thumbnail_processing": (300.0, 250.0),
                  "medium_processing": (1200.0, 1500.0), "heavy_processing": (4000.0, 5000.0)}


def write_synthetic_decision_dir(params: Params, model_dir: str | Path, n_pairs: int = 4000, seed: int = 0) -> Path:
    """Fit the decide stage's serving set on synthetic pairs and write it to model_dir/decision/
    (decision_spec.json marked `training.synthetic: true`). Known truth: Lambda latency grows with
    the payload; ECS latency with the payload and, past the service's worker capacity, with the
    workload's ECS requests in flight, and so does its failure probability."""
    from hybridopt.decision.artifacts import save_decision
    from hybridopt.decision.load_state import feature_names
    from hybridopt.decision.objective import MarginalCost
    from hybridopt.decision.outcomes import fit_outcomes
    from hybridopt.decision.policies import (ClassifierFamily, ConstantClassifier, Fitted, lookup_table,
                                             measured_outcomes, objectives, workload_rule)

    rng = np.random.default_rng(seed)
    spec = FeatureSpec.from_params(params)
    ctx = synthetic_contexts(spec, n_pairs, seed)
    windows = tuple(float(w) for w in params.decision.load_windows_s)
    pr, fg = params.prices, params.testbed.fargate
    slots = int(fg.worker_slots_per_task.value)
    cap = {w: wl.fargate.min_tasks * slots for w, wl in params.workloads.items()}
    work = ctx["workload_type"].to_numpy(dtype=object)
    kb = ctx["payload_size_kb"].to_numpy(dtype=np.float64)
    capn = np.array([cap[w] for w in work], dtype=np.float64)
    load = {}
    for w in windows:
        load[f"arrivals_{w:g}s_rps"] = rng.uniform(0, 40, n_pairs)
    for w in windows:
        load[f"workload_arrivals_{w:g}s_rps"] = load[f"arrivals_{w:g}s_rps"] * rng.uniform(0.1, 0.4, n_pairs)
    busy = rng.random(n_pairs) < 0.15                 # mostly below capacity, sometimes far above it
    wif_ecs = np.where(busy, rng.integers(0, 1 + 5 * capn.astype(np.int64)), rng.poisson(0.8 * capn)).astype(np.float64)
    load.update({"in_flight_lambda": rng.integers(0, 30, n_pairs).astype(np.float64),
                 "in_flight_ecs": wif_ecs + rng.integers(0, 10, n_pairs),
                 "workload_in_flight_lambda": rng.integers(0, 10, n_pairs).astype(np.float64),
                 "workload_in_flight_ecs": wif_ecs})
    X = pd.concat([spec.frame(ctx), pd.DataFrame(load, columns=list(feature_names(windows)))], axis=1)
    base = np.array([_SYNTH_BASE_MS.get(w, (500.0, 500.0)) for w in work])
    over = np.maximum(0.0, wif_ecs - capn + 1) / np.maximum(capn, 1)
    lam_ms = base[:, 0] * (1 + kb / 4000) * rng.lognormal(0, 0.25, n_pairs)
    ecs_ms = base[:, 1] * (1 + kb / 3000) * (1 + 1.5 * over) * rng.lognormal(0, 0.2, n_pairs)
    ecs_fail = 0.001 + 0.08 / (1 + np.exp(-2 * (wif_ecs - 3 * capn)))
    lam_ok = rng.random(n_pairs) >= 0.002
    ecs_ok = rng.random(n_pairs) >= ecs_fail
    grid = [0.5, 10.0, 100.0, 1000.0, 10240.0]
    gw = pr.api_gateway_rest_request_usd if params.cost.api_gateway == "rest" else pr.api_gateway_http_request_usd
    mc = MarginalCost(
        lambda_gb_s_usd=pr.lambda_gb_s_usd.value, lambda_request_usd=pr.lambda_request_usd.value,
        gateway_request_usd=gw.value, gateway=params.cost.api_gateway,
        lambda_memory_mb={w: float(wl.lambda_memory_mb) for w, wl in params.workloads.items()},
        lambda_billed_ms={w: [(s, _SYNTH_BASE_MS.get(w, (500.0, 0))[0] * (1 + s / 4000)) for s in grid]
                          for w in params.workloads},
        alb_usd_per_gb=pr.alb_lcu_hour_usd.value / pr.alb_gb_per_lcu_hour.value,
        ecs_task_usd_per_s={w: (wl.fargate.vcpu * pr.fargate_vcpu_hour_usd.value
                                + wl.fargate.memory_gb * pr.fargate_gb_hour_usd.value) / 3600.0
                            for w, wl in params.workloads.items()},
        ecs_capacity=cap,
        ecs_service_ms={w: [(s, _SYNTH_BASE_MS.get(w, (0, 500.0))[1] * (1 + s / 3000)) for s in grid]
                        for w in params.workloads},
        ecs_autoscaling={w: wl.fargate.max_tasks > wl.fargate.min_tasks for w, wl in params.workloads.items()},
        ecs_slots_per_task=slots, sources={"all": "synthetic (hybridopt.testing.write_synthetic_decision_dir)"})
    lam_cost = np.array([mc.lambda_usd(w, k) for w, k in zip(work, kb)])
    pairs = ctx.assign(lambda_latency_ms=lam_ms, ecs_latency_ms=ecs_ms, lambda_ok=lam_ok, ecs_ok=ecs_ok,
                       lambda_cost_usd=lam_cost)
    objs = objectives(params)
    models = fit_outcomes(X, pairs, seed, n_jobs=1)
    out = measured_outcomes(pairs, wif_ecs, mc)
    fitted = Fitted(models, mc, workload_rule(objs["default"], out), lookup_table(objs["default"], out),
                    ClassifierFamily("lightgbm", {}, "synthetic"), ConstantClassifier(0.5), list(spec.columns), 0.5,
                    [], "synthetic")
    training = {"synthetic": True, "profile": params.profile, "pairs": n_pairs, "seed": seed,
                "sessions": ["synthetic"], "label": "synthetic"}
    save_decision(Path(model_dir), fitted, spec, objs, windows, float(params.audit.client_timeout_s), training)
    return layout.decision_dir(Path(model_dir))


# --------------------------------------------------------------------------------- A/B arms
def synthetic_arms(n_per_arm: int, seed: int, latency_ratio: float = 1.0, cost_ratio: float = 1.0,
                   error_control: float = 0.02, error_treatment: float = 0.02,
                   accuracy_control: float = 0.6, accuracy_treatment: float = 0.6,
                   slo_ms: float = 300.0) -> tuple[pd.DataFrame, dict]:
    """Two arms with KNOWN population differences (for tests and the notebook's sanity check):
    latency lognormal (median 120 ms), the per-request bill share gamma (mean 2e-6 USD) and the
    marginal cost gamma (mean 1e-6 USD); treatment scaled by the ratios; an SLO miss is a failure
    or a latency above `slo_ms`. Returns the frame and the true differences of every metric."""
    rng = np.random.default_rng(seed)
    mu, sigma = math.log(120.0), 0.6
    shape, mean_c, mean_m = 2.0, 2e-6, 1e-6
    frames = []
    for arm, lr, cr, er, acc in (("control", 1.0, 1.0, error_control, accuracy_control),
                                 ("treatment", latency_ratio, cost_ratio, error_treatment, accuracy_treatment)):
        correct = rng.random(n_per_arm) < acc
        lat = rng.lognormal(mu, sigma, n_per_arm) * lr
        ok = rng.random(n_per_arm) >= er
        frames.append(pd.DataFrame({
            "arm": arm, "platform": np.where(correct, "lambda", "ecs"), "oracle_platform": "lambda",
            "latency_ms": lat, "bill_usd": rng.gamma(shape, mean_c / shape, n_per_arm) * cr,
            "marginal_usd": rng.gamma(shape, mean_m / shape, n_per_arm) * cr, "ok": ok,
            "slo_miss": ~ok | (lat > slo_ms)}))
    q = {p: math.exp(mu + sigma * stats.norm.ppf(p)) for p in (0.5, 0.95, 0.99)}

    def miss(lr: float, er: float) -> float:
        return 1.0 - (1.0 - er) * float(stats.norm.cdf((math.log(slo_ms / lr) - mu) / sigma))

    truth = {"bill_avg_usd_per_request": mean_c * (cost_ratio - 1),
             "marginal_avg_usd_per_request": mean_m * (cost_ratio - 1),
             "latency_p50_ms": q[0.5] * (latency_ratio - 1), "latency_p95_ms": q[0.95] * (latency_ratio - 1),
             "latency_p99_ms": q[0.99] * (latency_ratio - 1), "error_rate": error_treatment - error_control,
             "slo_miss_rate": miss(latency_ratio, error_treatment) - miss(1.0, error_control),
             "routing_accuracy": accuracy_treatment - accuracy_control}
    return pd.concat(frames, ignore_index=True), truth


# ------------------------------------------------------------------------- calibration logs
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


def model_logs(params: Params, sessions: Mapping[str, tuple[str, LoadPattern]], seed: int,
               start: str = "2025-11-22T19:00:00Z", gap_s: float = 3 * 3600.0) -> pd.DataFrame:
    """Legacy-design logs made by the platform model itself (`simulate.replay`): one platform per
    arrival, platform x workload scenarios and payload sizes uniform, each session its load
    pattern's Artillery schedule, sessions `gap_s` apart; returned as ingest would (tz-aware
    sent_at, `ok`, categories). For checking that the calibration recovers the model's parameters
    and that the validation passes where it must."""
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


def validation_rows(run: str, workload: str, platform: str, totals: Sequence[float], size_kb: float = 1.0,
                    cold: int = 0) -> pd.DataFrame:
    """Successful request rows of one (run, workload, platform) cell with the given total_ms, the first
    `cold` of them Lambda cold starts: the columns the validation's comparison reads."""
    n = len(totals)
    c = np.zeros(n, dtype=bool)
    c[:cold] = True
    return pd.DataFrame({"run_id": run, "workload_type": workload, "platform": platform,
                         "target_payload_size_kb": size_kb, "total_ms": np.asarray(totals, dtype=float),
                         "error": None, "http_status": 200,
                         "cold_start": pd.array(c if platform == "lambda" else [pd.NA] * n, dtype="boolean")})
