"""Validation of the platform model against real runs it was not fitted on.

For every real session (one generator run; the legacy clock bug split one ramp run into two run
folders, `context.sessions` joins them) the model is calibrated on the OTHER sessions only
(leave-one-session-out), then that session is replayed on the model (`simulate.replay`) with its own
schedule (the load pattern's Artillery arrivals from the session's first logged request to its last)
and payload mix (each arrival picks one of the platform x workload scenarios and a payload size
uniformly, as the student's generator did). The replay's successes are compared with the logged
successes (the legacy logger kept only JSON responses, and the client gave up 10 s after it started a
request; the simulated client applies the same timeout, and the simulated platforms react to the
departure as the real ones did) per (run, workload, platform):

- median and p95 `total_ms` within `tolerance` (25 %) of the real ones;
- which platform is faster (median) per (run, workload, payload size): agreement in at least 80 % of
  the cells (a platform with too few successes while the other has enough counts as slower);
- Lambda cold-start rates per (run, workload) within one order of magnitude (half a count added to
  both sides so that zero rates compare).

An in-sample replay (fitted on every session, each replayed with its own fitted RTT) is reported
beside it as a diagnostic of the model's structure; the pass/fail of record is the out-of-sample one.
`compare_inflation_forms` runs the whole validation once per form of the measurement setup's inflation
(params.ClientInflation.form): the held-out errors are the evidence for the form in params/testbed.yaml.
`validation_result(params)` is that validation for a profile's real logs with the full calibration beside
it, kept as JSON under reports/<profile>/validate-testbed/ and reused while the input hash and the params
hash are unchanged. Tables and figures of it are in `hybridopt.report.calibration`.
Nothing here looks at any ML result.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridopt.calibration.client import INFLATION_FORMS
from hybridopt.calibration.context import add_context
from hybridopt.calibration.fit import Calibration, calibrate
from hybridopt.calibration.options import FitOptions
from hybridopt.calibration.presets import testbed_overrides, with_presets
from hybridopt.data.contract import PLATFORMS
from hybridopt.data.ingest import ingest
from hybridopt.emulation.simulate import phase_offsets, replay
from hybridopt.params import Params

#: Where a profile's cached validation lives (under its reports_dir) and its two files.
VALIDATION_DIR = "validate-testbed"
VALIDATION_FILE = "validation.json"
CALIBRATION_FILE = "calibration.json"


@dataclass(frozen=True)
class ValidationOptions:
    """The thresholds of the validation (see the module docstring) and the replay seed."""
    tolerance: float = 0.25                # |sim / real - 1| allowed for median and p95
    faster_agreement_min: float = 0.8
    cold_orders: float = 1.0               # |log10(sim / real)| allowed for cold-start rates
    min_cell_rows: int = 20                # a (run, workload, platform) cell is judged with this many successes
    min_faster_rows: int = 10              # per platform in a (run, workload, payload) cell
    seed: int = 7


# ------------------------------------------------------------------------------------- arrivals
def session_arrivals(real: pd.DataFrame, params: Params, seed: int, t0_s: float = 0.0) -> pd.DataFrame:
    """The arrivals of one real session: the load pattern's Artillery schedule over the logged span,
    scenario (platform x workload) and payload size uniform per arrival, run_id from the real run
    folders' time ranges. `real` holds the session's rows."""
    pattern = str(real["load_pattern"].astype(str).mode().iloc[0])
    lp = params.load_patterns[pattern]
    start = real["sent_at"].min()
    span_s = float((real["sent_at"].max() - start).total_seconds())
    offs, t = [], 0.0
    for ph in lp.phases:
        offs.append(t + phase_offsets(ph.duration_s, ph.arrival_rate_rps, ph.ramp_to_rps))
        t += ph.duration_s
    off = np.concatenate(offs) if offs else np.empty(0)
    off = off[off <= min(span_s, lp.duration_s)]
    rng = np.random.default_rng([seed, 11])
    workloads = list(params.workloads)
    cells = [(p, w) for w in workloads for p in PLATFORMS]
    pick = rng.integers(0, len(cells), len(off))
    plat = np.array([cells[i][0] for i in pick], dtype=object)
    work = np.array([cells[i][1] for i in pick], dtype=object)
    size = np.empty(len(off))
    for w in workloads:
        sel = work == w
        sizes = np.asarray(params.workloads[w].payload_sizes_kb, dtype=np.float64)
        size[sel] = sizes[rng.integers(0, len(sizes), int(sel.sum()))]
    sent = start + pd.to_timedelta(off, unit="s")
    runs = real.groupby("run_id", observed=True).agg(first=("sent_at", "min"),
                                                     tw=("time_window", lambda s: str(s.iloc[0]))).sort_values("first")
    idx = np.clip(np.searchsorted(runs["first"].to_numpy(), sent.to_numpy(), side="right") - 1, 0, len(runs) - 1)
    return pd.DataFrame({"t_s": t0_s + off, "platform": plat, "workload_type": work, "payload_size_kb": size,
                         "time_window": runs["tw"].to_numpy()[idx], "load_pattern": pattern,
                         "run_id": runs.index.astype(str).to_numpy()[idx], "sent_at": sent})


# ------------------------------------------------------------------------------------- comparison
def _successes(df: pd.DataFrame) -> pd.DataFrame:
    ok = df["error"].isna() & df["platform"].isin(PLATFORMS) & df["total_ms"].notna()
    if "http_status" in df:
        st = pd.to_numeric(df["http_status"], errors="coerce")
        ok &= st.between(200, 299)
    return df[ok]


def _q(s: pd.Series, q: float) -> float:
    return float(s.quantile(q)) if len(s) else float("nan")


def compare(real: pd.DataFrame, sim: pd.DataFrame, opts: ValidationOptions = ValidationOptions()) -> dict[str, Any]:
    """Cells and thresholds for one set of real and simulated rows (contract columns)."""
    r, s = _successes(real), _successes(sim)
    keys = ["run_id", "workload_type", "platform"]
    real_max = float(r["total_ms"].max()) if len(r) else float("inf")   # the client's timeout shows here
    rg = {tuple(map(str, k)): g for k, g in r.groupby(keys, observed=True)}
    sg = {tuple(map(str, k)): g for k, g in s.groupby(keys, observed=True)}
    cells = []
    for k in sorted(set(rg) | set(sg)):
        a, b = rg.get(k, r.iloc[:0]), sg.get(k, s.iloc[:0])
        row: dict[str, Any] = {"run_id": k[0], "workload_type": k[1], "platform": k[2],
                               "n_real": int(len(a)), "n_sim": int(len(b)),
                               "n_sim_above_real_max": int((b["total_ms"] > real_max).sum())}
        for name, q in (("median", 0.5), ("p95", 0.95)):
            rv, sv = _q(a["total_ms"], q), _q(b["total_ms"], q)
            row[f"{name}_real_ms"], row[f"{name}_sim_ms"] = rv, sv
            row[f"{name}_rel_err"] = sv / rv - 1 if len(a) and len(b) and rv > 0 else None
        if len(a) < opts.min_cell_rows:
            row["judged"], row["pass_median"], row["pass_p95"] = False, None, None
            row["note"] = f"fewer than {opts.min_cell_rows} real successes"
        elif len(b) < opts.min_cell_rows:
            row["judged"], row["pass_median"], row["pass_p95"] = True, False, False
            row["note"] = f"the model logged fewer than {opts.min_cell_rows} successes (timeouts or errors)"
        else:
            row["judged"] = True
            row["pass_median"] = bool(abs(row["median_rel_err"]) <= opts.tolerance)
            row["pass_p95"] = bool(abs(row["p95_rel_err"]) <= opts.tolerance)
        cells.append(row)

    faster = []
    fkeys = ["run_id", "workload_type", "target_payload_size_kb"]
    med_r = r.groupby(fkeys + ["platform"], observed=True)["total_ms"].agg(["median", "size"])
    med_s = s.groupby(fkeys + ["platform"], observed=True)["total_ms"].agg(["median", "size"])
    for k in sorted({tuple(x[:3]) for x in med_r.index}):
        fr, fs = _faster(med_r, k, opts), _faster(med_s, k, opts)
        row = {"run_id": str(k[0]), "workload_type": str(k[1]), "payload_size_kb": float(k[2]),
               "real": fr[0], "sim": fs[0], "real_lambda_ms": fr[1], "real_ecs_ms": fr[2],
               "sim_lambda_ms": fs[1], "sim_ecs_ms": fs[2]}
        row["judged"] = fr[0] is not None
        row["agree"] = (fr[0] == fs[0]) if row["judged"] else None
        faster.append(row)

    cold = []
    rl, sl = r[r["platform"] == "lambda"], s[s["platform"] == "lambda"]
    for k, a in rl.groupby(["run_id", "workload_type"], observed=True):
        b = sl[(sl["run_id"].astype(str) == str(k[0])) & (sl["workload_type"].astype(str) == str(k[1]))]
        nr, ns = len(a), len(b)
        cr = int(a["cold_start"].fillna(False).astype(bool).sum())
        cs = int(b["cold_start"].fillna(False).astype(bool).sum()) if ns else 0
        row = {"run_id": str(k[0]), "workload_type": str(k[1]), "n_real": nr, "n_sim": ns,
               "cold_real": cr, "cold_sim": cs, "rate_real": cr / nr if nr else None,
               "rate_sim": cs / ns if ns else None}
        if nr < opts.min_cell_rows or ns < opts.min_cell_rows:
            row["judged"], row["pass"], row["log10_ratio"] = False, None, None
        else:
            ratio = math.log10(((cs + 0.5) / ns) / ((cr + 0.5) / nr))
            row["judged"], row["log10_ratio"] = True, ratio
            row["pass"] = bool(abs(ratio) <= opts.cold_orders)
        cold.append(row)
    return {"cells": cells, "faster": faster, "cold_start": cold, "real_max_total_ms": real_max,
            "sim_successes_above_real_max": int((s["total_ms"] > real_max).sum()),
            "thresholds": thresholds(cells, faster, cold, opts)}


def _faster(med: pd.DataFrame, k: tuple, opts: ValidationOptions) -> tuple[str | None, float | None, float | None]:
    """Which platform is faster in one (run, workload, payload) cell, and the two medians."""
    vals = {}
    for p in PLATFORMS:
        try:
            m, n = med.loc[(*k, p)]
        except KeyError:
            m, n = float("nan"), 0
        vals[p] = (float(m), int(n))
    enough = {p: vals[p][1] >= opts.min_faster_rows for p in PLATFORMS}
    lam, ecs = vals["lambda"][0], vals["ecs"][0]
    if enough["lambda"] and enough["ecs"]:
        return ("lambda" if lam < ecs else "ecs"), lam, ecs
    if enough["lambda"] != enough["ecs"]:   # the other platform mostly failed or timed out
        return ("lambda" if enough["lambda"] else "ecs"), lam if enough["lambda"] else None, ecs if enough["ecs"] else None
    return None, None, None


def thresholds(cells: list[dict[str, Any]], faster: list[dict[str, Any]], cold: list[dict[str, Any]],
               opts: ValidationOptions) -> dict[str, Any]:
    judged = [c for c in cells if c["judged"]]
    out: dict[str, Any] = {}
    for name in ("median", "p95"):
        passed = sum(1 for c in judged if c[f"pass_{name}"])
        out[f"latency_{name}"] = {"rule": f"|sim/real - 1| <= {opts.tolerance} in every judged (run, workload, platform) cell",
                                  "cells": len(judged), "passed": passed,
                                  "share": passed / len(judged) if judged else None,
                                  "pass": bool(judged) and passed == len(judged)}
    fj = [f for f in faster if f["judged"]]
    agree = sum(1 for f in fj if f["agree"])
    share = agree / len(fj) if fj else None
    out["faster_platform"] = {"rule": f"agreement >= {opts.faster_agreement_min} over (run, workload, payload) cells",
                              "cells": len(fj), "agree": agree, "share": share,
                              "pass": share is not None and share >= opts.faster_agreement_min}
    cj = [c for c in cold if c["judged"]]
    cp = sum(1 for c in cj if c["pass"])
    out["cold_start_rate"] = {"rule": f"|log10(sim/real)| <= {opts.cold_orders} in every judged (run, workload) cell",
                              "cells": len(cj), "passed": cp, "share": cp / len(cj) if cj else None,
                              "pass": bool(cj) and cp == len(cj)}
    out["pass"] = all(v["pass"] for v in out.values() if isinstance(v, dict))
    return out


# ------------------------------------------------------------------------------------------ folds
def _fit_params(params: Params, df: pd.DataFrame, runs: list[str], fit_opts: FitOptions, provenance: str,
                rtt_ms: float | None = None) -> tuple[Params, Calibration]:
    c = calibrate(df, params.load_patterns, fit_opts, runs=runs, testbed=params.testbed, workloads=params.workloads)
    if c.model is None:
        raise ValueError("calibration produced no model fit")
    ov = testbed_overrides(c.model, params.testbed, provenance, rtt_ms=rtt_ms)
    return with_presets(params, ov), c


def _fold_summary(c: Calibration) -> dict[str, Any]:
    m = c.model
    assert m is not None
    cl = m.client
    return {"rtt_ms": cl.rtt_ms, "rtt_ms_by_session": cl.rtt_ms_by_session, "tls_handshake_rtts": cl.tls_handshake_rtts,
            "inflation_form": cl.inflation_form,
            "queued_receive_bytes": m.queued_body.receive_bytes if m.queued_body else None,
            "upload_mbps": cl.upload_mbps, "rtt_jitter_sigma": cl.rtt_jitter_sigma,
            "inflation_ms_per_rps": cl.inflation_ms_per_rps, "inflation_threshold_rps": cl.inflation_threshold_rps,
            "service_sleep_ms": {w: {p: [e.sleep_low_ms, e.sleep_high_ms] for p, e in by_p.items()}
                                 for w, by_p in m.service.items()},
            "notes": m.notes}


def validate(df: pd.DataFrame, params: Params, opts: ValidationOptions = ValidationOptions(),
             fit_opts: FitOptions = FitOptions(), in_sample: bool = True) -> dict[str, Any]:
    """Leave-one-session-out validation (and the in-sample diagnostic) of the calibrated model."""
    ctx = add_context(df, params.load_patterns, fit_opts)
    sessions = ctx.groupby("session", observed=True)["run_id"].agg(lambda s: sorted(set(map(str, s)))).to_dict()
    known = ctx[ctx["platform"].isin(PLATFORMS)]
    folds, sims = [], []
    if len(sessions) >= 2:
        for i, (sess, runs) in enumerate(sorted(sessions.items())):
            train = [r for s_, rs in sessions.items() if s_ != sess for r in rs]
            p_fold, c = _fit_params(params, df, train, fit_opts, f"validation fold: fitted on {', '.join(train)}")
            real = known[known["run_id"].astype(str).isin(runs)]
            arr = session_arrivals(real, params, opts.seed + i)
            sim = replay(p_fold, arr, seed=opts.seed + i)
            sims.append(sim)
            folds.append({"held_out_session": sess, "held_out_runs": runs, "fitted_on": train,
                          "arrivals": int(len(arr)), "fit": _fold_summary(c)})
        loso = compare(known, pd.concat(sims, ignore_index=True), opts)
    else:
        loso = None
    result: dict[str, Any] = {
        "method": ("leave-one-session-out: each session replayed on a model fitted on the other sessions"
                   if loso else "only one session: no out-of-sample validation possible"),
        "options": asdict(opts), "sessions": sessions, "folds": folds, "out_of_sample": loso}
    if in_sample:
        all_runs = [r for rs in sessions.values() for r in rs]
        p_all, c_all = _fit_params(params, df, all_runs, fit_opts, "in-sample diagnostic: fitted on every session")
        assert c_all.model is not None
        sims_in = []
        for i, (sess, runs) in enumerate(sorted(sessions.items())):
            rtt = c_all.model.client.rtt_ms_by_session.get(sess)
            p_s = p_all
            if rtt is not None:
                p_s = with_presets(params, testbed_overrides(
                    c_all.model, params.testbed, "in-sample diagnostic", rtt_ms=rtt))
            real = known[known["run_id"].astype(str).isin(runs)]
            sims_in.append(replay(p_s, session_arrivals(real, params, opts.seed + i), seed=opts.seed + i))
        result["in_sample"] = compare(known, pd.concat(sims_in, ignore_index=True), opts)
        result["in_sample_fit"] = _fold_summary(c_all)
    record = loso if loso is not None else result.get("in_sample")
    result["pass"] = bool(loso is not None and loso["thresholds"]["pass"])
    result["thresholds"] = record["thresholds"] if record else None
    return result


def log_errors(part: Mapping[str, Any]) -> dict[str, Any]:
    """How far one comparison's judged cells are off: median and mean |ln(sim / real)| of the cell
    medians and p95s (cells the model could not judge for lack of successes count as misses)."""
    out: dict[str, Any] = {}
    judged = [c for c in part["cells"] if c["judged"]]
    for stat in ("median", "p95"):
        errs = [abs(math.log(c[f"{stat}_sim_ms"] / c[f"{stat}_real_ms"])) for c in judged
                if c[f"{stat}_rel_err"] is not None and c[f"{stat}_sim_ms"] > 0 and c[f"{stat}_real_ms"] > 0]
        out[f"{stat}_abs_log_err_median"] = float(np.median(errs)) if errs else None
        out[f"{stat}_abs_log_err_mean"] = float(np.mean(errs)) if errs else None
        out[f"{stat}_cells_without_sim"] = len(judged) - len(errs)
    return out


def compare_inflation_forms(df: pd.DataFrame, params: Params, forms: tuple[str, ...] = INFLATION_FORMS,
                            opts: ValidationOptions = ValidationOptions(),
                            fit_opts: FitOptions = FitOptions()) -> dict[str, Any]:
    """The validation once per form of the measurement setup's inflation (the base client preset's
    params.ClientInflation.form replaced; every fold refits it): per form the thresholds, the log errors
    out of sample (held-out sessions: the evidence for choosing a form) and in sample, and the fitted
    inflation. Only a fold whose training sessions span several rates identifies the inflation at all."""
    out: dict[str, Any] = {}
    for form in forms:
        tb = params.testbed
        over = {"testbed": {"clients": {tb.client_preset: {"inflation": {"form": {"value": form}}}}}}
        p = with_presets(params, over)
        res = validate(df, p, opts, fit_opts)
        out[form] = {
            "out_of_sample": {"thresholds": res["out_of_sample"]["thresholds"] if res["out_of_sample"] else None,
                              **(log_errors(res["out_of_sample"]) if res["out_of_sample"] else {})},
            "in_sample": {"thresholds": res["in_sample"]["thresholds"], **log_errors(res["in_sample"])},
            "folds": {f["held_out_session"]: {"inflation_ms_per_rps": f["fit"]["inflation_ms_per_rps"],
                                              "rtt_ms": f["fit"]["rtt_ms"]} for f in res["folds"]},
            "in_sample_inflation_ms_per_rps": res["in_sample_fit"]["inflation_ms_per_rps"],
            "result": res}
    return out


# ------------------------------------------------------------------------------- a profile's result
@dataclass(frozen=True)
class ProfileValidation:
    """`validate` on a profile's real logs with the calibration on every session beside it, both as
    the JSON data stored in `out_dir`."""
    validation: dict[str, Any]             # validate(...) + "data" (the ingest summary) + "params_hash"
    calibration: dict[str, Any]            # Calibration.as_dict() of the fit on every session
    out_dir: Path
    reused: bool                           # read back: the input hash and the params hash matched


def validation_result(params: Params, force: bool = False, out_dir: str | os.PathLike[str] | None = None,
                      in_sample: bool = True) -> ProfileValidation:
    """Calibrate and validate the profile's real logs (its source must be `legacy`), writing
    calibration.json and validation.json into `out_dir` (default reports/<profile>/validate-testbed/);
    what is there already is reused, unless `force`, while its input hash and params hash match."""
    if params.source != "legacy":
        raise ValueError(f"profile {params.profile!r} has source {params.source!r}: validating the platform model "
                         "needs real logs (source 'legacy')")
    out = Path(out_dir) if out_dir else params.path("reports_dir") / VALIDATION_DIR
    out.mkdir(parents=True, exist_ok=True)
    logs = ingest(params)
    vpath, cpath = out / VALIDATION_FILE, out / CALIBRATION_FILE
    if not force and vpath.exists() and cpath.exists():
        cached = json.loads(vpath.read_text())
        if cached.get("data", {}).get("input_hash") == logs.input_hash and cached.get("params_hash") == params.hash:
            return ProfileValidation(cached, json.loads(cpath.read_text()), out, reused=True)
    fit = calibrate(logs.requests, params.load_patterns, testbed=params.testbed, workloads=params.workloads)
    cpath.write_text(json.dumps(fit.as_dict(), indent=1))
    res = validate(logs.requests, params, in_sample=in_sample)
    res["data"] = {**logs.summary(), "data_dir": str(logs.data_dir)}
    res["params_hash"] = params.hash
    vpath.write_text(json.dumps(res, indent=1, default=str))
    return ProfileValidation(json.loads(vpath.read_text()), json.loads(cpath.read_text()), out, reused=False)
