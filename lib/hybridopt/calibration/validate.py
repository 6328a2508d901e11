"""Validation of the platform model against real runs it was not fitted on.

Two designs share one machinery:

- leave-one-session-out (`validate`): every real session (one generator run; the legacy clock bug
  split one ramp run into two run folders, `context.sessions` joins them) is judged on a model
  calibrated on the OTHER sessions only;
- fit on one set, judge on another (`validate_split`): the model is calibrated on every session of
  one collection and judges every session of another (the same collection on both sides is the
  in-sample self-check).

A judged session is replayed on the model (`simulate.replay`, `ValidationOptions.seeds` seeds) with
its own schedule (the load pattern's Artillery arrivals from the session's first logged request to its
last) and payload mix (each arrival picks one of the platform x workload scenarios and a payload size
uniformly, as the student's generator did), twice:

- blind: with the client network of the fit (the typical session's round trip);
- network-conditioned: with the round trip and jitter of THAT session's client, read from its
  lightweight requests alone (`client.probe_network`, the estimator of `fit_client` with the TLS round
  trips and the generator's inflation held at the fit): its probe phase when it has one (phase
  `probe`), else its lightweight_api cells. The client's network belongs to the machine that ran the
  load generator, not to AWS; the platforms are still the model fitted elsewhere.

Both are compared with the logged successes (`compare.compare`; the legacy logger kept only JSON
responses, and the client gave up 10 s after it started a request; the simulated client applies the
same timeout, and the simulated platforms react to the departure as the real ones did) on the cells
the probe did not touch; the network-conditioned comparison is the result of record. `blind_all_cells`
judges the blind replay on every cell, the lightweight ones included.

`compare_inflation_forms` runs the whole validation once per form of the measurement setup's inflation
(params.ClientInflation.form): the held-out errors are the evidence for the form in params/testbed.yaml.
`validation_result(params)` is the leave-one-session-out validation (with the in-sample self-check) of
a profile's real logs with the full calibration beside it, kept as JSON under
reports/<profile>/validate-testbed/ and reused while the input hash, the params hash and the options
are unchanged. Tables and figures of it are in `hybridopt.report.calibration`. Nothing here looks at
any ML result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridopt.calibration.arrivals import session_arrivals
from hybridopt.calibration.client import INFLATION_FORMS, LIGHT_WORKLOAD, SessionNetwork, probe_network
from hybridopt.calibration.compare import ValidationOptions, compare, log_errors, thresholds
from hybridopt.calibration.context import add_context, clean, successful
from hybridopt.calibration.fit import Calibration, calibrate
from hybridopt.calibration.options import FitOptions
from hybridopt.calibration.presets import testbed_overrides, with_presets
from hybridopt.data.contract import PLATFORMS, PROBE_PHASE
from hybridopt.data.ingest import ingest
from hybridopt.emulation.simulate import replay
from hybridopt.params import Params

__all__ = ["CALIBRATION_FILE", "PROBE_PHASE", "VALIDATION_DIR", "VALIDATION_FILE", "ProfileValidation",
           "ValidationOptions", "compare", "compare_inflation_forms", "log_errors", "session_arrivals",
           "thresholds", "validate", "validate_split", "validation_result"]

#: Where a profile's cached validation lives (under its reports_dir) and its two files.
VALIDATION_DIR = "validate-testbed"
VALIDATION_FILE = "validation.json"
CALIBRATION_FILE = "calibration.json"


# ------------------------------------------------------------------------------------------ folds
def _fit_params(params: Params, df: pd.DataFrame, runs: list[str] | None, fit_opts: FitOptions, provenance: str
                ) -> tuple[Params, Calibration]:
    c = calibrate(df, params.load_patterns, fit_opts, runs=runs, testbed=params.testbed, workloads=params.workloads)
    if c.model is None:
        raise ValueError("calibration produced no model fit")
    return with_presets(params, testbed_overrides(c.model, params.testbed, provenance)), c


def _fold_summary(c: Calibration) -> dict[str, Any]:
    m = c.model
    assert m is not None
    cl = m.client
    return {"rtt_ms": cl.rtt_ms, "rtt_ms_by_session": cl.rtt_ms_by_session, "tls_handshake_rtts": cl.tls_handshake_rtts,
            "setup_ms": cl.setup_ms, "setup_ms_by_session": cl.setup_ms_by_session,
            "inflation_form": cl.inflation_form,
            "queued_receive_bytes": m.queued_body.receive_bytes if m.queued_body else None,
            "upload_mbps": cl.upload_mbps, "rtt_jitter_sigma": cl.rtt_jitter_sigma,
            "uplink_capacity_mbps": m.uplink.capacity_mbps if m.uplink else None,
            "uplink_note": m.uplink.note if m.uplink else None,
            "inflation_ms_per_rps": cl.inflation_ms_per_rps, "inflation_threshold_rps": cl.inflation_threshold_rps,
            "service_sleep_ms": {w: {p: [e.sleep_low_ms, e.sleep_high_ms] for p, e in by_p.items()}
                                 for w, by_p in m.service.items()},
            "notes": m.notes}


def split_probe(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, str, list[str]]:
    """One session's rows as (probe rows, rows to replay and judge, what the probe is, workloads the
    probe touched): its probe phase when it has one (then nothing else is touched), else its
    lightweight_api cells (which are then not judged)."""
    phase = rows["phase"].astype("string") if "phase" in rows else pd.Series(pd.NA, index=rows.index, dtype="string")
    is_probe = (phase == PROBE_PHASE).fillna(False).to_numpy()
    if is_probe.any():
        return rows[is_probe], rows[~is_probe], f"phase {PROBE_PHASE!r}", []
    light = (rows["workload_type"].astype(str) == LIGHT_WORKLOAD).to_numpy()
    return rows[light], rows, f"{LIGHT_WORKLOAD} cells", [LIGHT_WORKLOAD]


def conditioned_params(params: Params, net: SessionNetwork) -> Params:
    """`params` with its client's round trip, set-up time and jitter replaced by one session's probe."""
    src = (f"probe of session {net.session} ({net.source}: {net.n_rows} rows in {net.n_bins} bins; "
           f"se {net.rtt_se_ms:.0f} ms)")
    setup_src = src if net.setup_from_probe else f"{src}; one platform only: the fit's typical set-up time"
    over = {"rtt_ms": {"value": round(net.rtt_ms, 1), "basis": "fitted", "source": src},
            "dns_ms": {"value": round(net.setup_ms, 1), "basis": "fitted", "source": setup_src},
            "rtt_jitter_sigma": {"value": round(net.rtt_jitter_sigma, 3), "basis": "fitted", "source": src}}
    return with_presets(params, {"testbed": {"clients": {params.testbed.client_preset: over}}})


@dataclass
class _Judged:
    """Replays of judged sessions, gathered for one comparison."""
    real: list[pd.DataFrame]
    blind: list[list[pd.DataFrame]]        # per seed: the replays of every session
    conditioned: list[list[pd.DataFrame]]
    skip: dict[str, list[str]]             # run_id -> workloads the probe was read from
    folds: list[dict[str, Any]]


def _judge(ctx: pd.DataFrame, sessions: Mapping[str, list[str]], fit_for: Callable[[str], tuple[Params, Calibration]],
           params: Params, opts: ValidationOptions, fit_opts: FitOptions) -> _Judged:
    """Replay every judged session on the model `fit_for(session)` returns, blind and conditioned on
    the session's own probe, `opts.seeds` seeds each (the same arrivals and seeds for both)."""
    out = _Judged([], [[] for _ in range(opts.seeds)], [[] for _ in range(opts.seeds)], {}, [])
    known = ctx[ctx["platform"].isin(PLATFORMS)]
    fitted_rows = clean(successful(ctx[ctx["offered_rate_rps"].notna()]), fit_opts)
    for i, (sess, runs) in enumerate(sorted(sessions.items())):
        p_fit, c = fit_for(sess)
        assert c.model is not None
        probe, judged, what, touched = split_probe(known[known["run_id"].astype(str).isin(runs)])
        # a probe phase is a few pairs per window: its bins need fewer rows than a whole cell's
        probe_opts = replace(fit_opts, min_rows=fit_opts.min_probe_rows) if not touched else fit_opts
        net = probe_network(fitted_rows.loc[fitted_rows.index.intersection(probe.index)], c.model.client,
                            params.testbed, probe_opts, sess, what)
        p_cond = conditioned_params(p_fit, net) if net is not None else p_fit
        arr = session_arrivals(judged, params, opts.seed + i)
        for k in range(opts.seeds):
            seed = opts.seed + i + 1000 * k
            out.blind[k].append(replay(p_fit, arr, seed=seed))
            out.conditioned[k].append(replay(p_cond, arr, seed=seed))
        out.real.append(judged)
        for r in runs:
            out.skip[r] = touched
        out.folds.append({"judged_session": sess, "judged_runs": runs, "arrivals": int(len(arr)),
                          "fit": _fold_summary(c), "probe": asdict(net) if net is not None else None,
                          "probe_rows": what, "blind_rtt_ms": c.model.client.rtt_ms})
    return out


def _comparisons(j: _Judged, opts: ValidationOptions) -> dict[str, Any]:
    real = pd.concat(j.real, ignore_index=True)
    seeds_b = [pd.concat(s, ignore_index=True) for s in j.blind]
    seeds_c = [pd.concat(s, ignore_index=True) for s in j.conditioned]
    blind_all = compare(real, seeds_b, opts)
    return {"conditioned": compare(real, seeds_c, opts, skip_workloads=j.skip),
            "blind": compare(real, seeds_b, opts, skip_workloads=j.skip),
            "blind_all_cells": {"thresholds": blind_all["thresholds"], "cells": blind_all["cells"]}}


def _sessions(ctx: pd.DataFrame) -> dict[str, list[str]]:
    return {str(k): v for k, v in
            ctx.groupby("session", observed=True)["run_id"].agg(lambda s: sorted(set(map(str, s)))).to_dict().items()}


def validate(df: pd.DataFrame, params: Params, opts: ValidationOptions = ValidationOptions(),
             fit_opts: FitOptions = FitOptions(), in_sample: bool = True) -> dict[str, Any]:
    """Leave-one-session-out validation of the calibrated model (blind and network-conditioned), with the
    in-sample self-check (`validate_split` of the logs on themselves) beside it."""
    ctx = add_context(df, params.load_patterns, fit_opts)
    sessions = _sessions(ctx)
    result: dict[str, Any] = {"design": "leave-one-session-out", "options": asdict(opts), "sessions": sessions}
    if len(sessions) >= 2:
        def fit_for(sess: str) -> tuple[Params, Calibration]:
            train = [r for s_, rs in sessions.items() if s_ != sess for r in rs]
            return _fit_params(params, df, train, fit_opts, f"validation fold: fitted on {', '.join(train)}")

        j = _judge(ctx, sessions, fit_for, params, opts, fit_opts)
        for f in j.folds:
            f["fitted_on"] = [r for s_, rs in sessions.items() if s_ != f["judged_session"] for r in rs]
        result.update(_comparisons(j, opts))
        result["folds"] = j.folds
        result["method"] = ("leave-one-session-out: each session replayed on a model fitted on the other sessions, "
                            "blind and conditioned on its own client network")
    else:
        result.update({"folds": [], "conditioned": None, "blind": None, "blind_all_cells": None,
                       "method": "only one session: no out-of-sample validation possible"})
    if in_sample:
        ins = validate_split(df, df, params, opts, fit_opts)
        result["in_sample"] = ins["conditioned"]
        result["in_sample_blind"] = ins["blind"]
        result["in_sample_fit"] = ins["fit"]
    rec = result.get("conditioned")
    result["record"] = "conditioned"
    result["thresholds"] = rec["thresholds"] if rec else None
    result["pass"] = bool(rec is not None and rec["thresholds"]["pass"])
    return result


def validate_split(fit_df: pd.DataFrame, judge_df: pd.DataFrame, params: Params,
                   opts: ValidationOptions = ValidationOptions(), fit_opts: FitOptions = FitOptions(),
                   fit_label: str = "the fit data") -> dict[str, Any]:
    """Calibrate on every session of `fit_df`, then judge every session of `judge_df` (blind and
    network-conditioned). The same logs on both sides are the in-sample self-check."""
    p_fit, c = _fit_params(params, fit_df, None, fit_opts, f"validation: fitted on {fit_label}")
    ctx = add_context(judge_df, params.load_patterns, fit_opts)
    sessions = _sessions(ctx)
    fit_runs = sorted(set(fit_df["run_id"].astype(str)))
    same = fit_df is judge_df or (len(fit_df) == len(judge_df) and set(fit_runs) == set(judge_df["run_id"].astype(str))
                                  and np.array_equal(fit_df["total_ms"].to_numpy(), judge_df["total_ms"].to_numpy(),
                                                     equal_nan=True))
    j = _judge(ctx, sessions, lambda _s: (p_fit, c), params, opts, fit_opts)
    for f in j.folds:
        f["fitted_on"] = fit_runs
    comps = _comparisons(j, opts)
    return {"design": "in-sample self-check" if same else "fit on one set, judge on another",
            "method": ("fitted on every session and each session judged on it (in sample), blind and conditioned "
                       "on its own client network" if same else
                       f"fitted on every session of {fit_label}, every session of the judged data replayed on it, "
                       "blind and conditioned on its own client network"),
            "self_check": same, "options": asdict(opts), "sessions": sessions, "fit_runs": fit_runs,
            "fit": _fold_summary(c), "folds": j.folds, **comps, "record": "conditioned",
            "thresholds": comps["conditioned"]["thresholds"], "pass": bool(comps["conditioned"]["thresholds"]["pass"])}


def compare_inflation_forms(df: pd.DataFrame, params: Params, forms: tuple[str, ...] = INFLATION_FORMS,
                            opts: ValidationOptions = ValidationOptions(),
                            fit_opts: FitOptions = FitOptions()) -> dict[str, Any]:
    """The validation once per form of the measurement setup's inflation (the base client preset's
    params.ClientInflation.form replaced; every fold refits it): per form the thresholds, the log errors
    out of sample (held-out sessions, blind: the evidence for choosing a form; and conditioned on each
    session's network) and in sample, and the fitted
    inflation. Only a fold whose training sessions span several rates identifies the inflation at all."""
    out: dict[str, Any] = {}
    for form in forms:
        tb = params.testbed
        over = {"testbed": {"clients": {tb.client_preset: {"inflation": {"form": {"value": form}}}}}}
        p = with_presets(params, over)
        res = validate(df, p, opts, fit_opts)
        out[form] = {
            "out_of_sample": {"thresholds": res["blind"]["thresholds"] if res["blind"] else None,
                              **(log_errors(res["blind"]) if res["blind"] else {})},
            "out_of_sample_conditioned": {"thresholds": res["conditioned"]["thresholds"] if res["conditioned"] else None,
                                          **(log_errors(res["conditioned"]) if res["conditioned"] else {})},
            "in_sample": {"thresholds": res["in_sample"]["thresholds"], **log_errors(res["in_sample"])},
            "folds": {f["judged_session"]: {"inflation_ms_per_rps": f["fit"]["inflation_ms_per_rps"],
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
                      in_sample: bool = True, opts: ValidationOptions = ValidationOptions(),
                      fit_opts: FitOptions = FitOptions()) -> ProfileValidation:
    """Calibrate and validate the profile's real logs (its source must be `legacy`), writing
    calibration.json and validation.json into `out_dir` (default reports/<profile>/validate-testbed/);
    what is there already is reused, unless `force`, while its input hash, params hash and options match."""
    if params.source != "legacy":
        raise ValueError(f"profile {params.profile!r} has source {params.source!r}: validating the platform model "
                         "needs real logs (source 'legacy')")
    out = Path(out_dir) if out_dir else params.path("reports_dir") / VALIDATION_DIR
    out.mkdir(parents=True, exist_ok=True)
    logs = ingest(params)
    vpath, cpath = out / VALIDATION_FILE, out / CALIBRATION_FILE
    if not force and vpath.exists() and cpath.exists():
        cached = json.loads(vpath.read_text())
        if (cached.get("data", {}).get("input_hash") == logs.input_hash and cached.get("params_hash") == params.hash
                and cached.get("options") == json.loads(json.dumps(asdict(opts)))
                and cached.get("fit_options") == json.loads(json.dumps(asdict(fit_opts)))
                and ("in_sample" in cached) == in_sample):
            return ProfileValidation(cached, json.loads(cpath.read_text()), out, reused=True)
    fit = calibrate(logs.requests, params.load_patterns, fit_opts, testbed=params.testbed, workloads=params.workloads)
    cpath.write_text(json.dumps(fit.as_dict(), indent=1))
    res = validate(logs.requests, params, opts, fit_opts, in_sample=in_sample)
    res["fit_options"] = asdict(fit_opts)
    res["data"] = {**logs.summary(), "data_dir": str(logs.data_dir)}
    res["params_hash"] = params.hash
    vpath.write_text(json.dumps(res, indent=1, default=str))
    return ProfileValidation(json.loads(vpath.read_text()), json.loads(cpath.read_text()), out, reused=False)
