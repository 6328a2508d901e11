"""The whole calibration in order. `calibrate(df, load_patterns, ...)` adds the row context, fits what
the logs tell directly (`Calibration`: service and network lines, cold start, inflation) and, given the
testbed params and workloads, the platform model's own parameters (`fit_model` -> `ModelFit`: client
preset, handler times, queued ECS body, the cold start against the published model)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from hybridopt.calibration.client import UPLOAD_GRID_MBPS, ClientFit, fit_client
from hybridopt.calibration.context import add_context, clean, reference_rows, sessions, successful
from hybridopt.calibration.empirical import (
    ColdStartFit,
    InflationFit,
    LinearFit,
    fit_cold_start,
    fit_inflation,
    fit_network,
    fit_service,
    normalise_sessions,
)
from hybridopt.calibration.handlers import (
    QueuedBodyFit,
    ServiceEntryFit,
    fit_queued_body,
    fit_queued_service_entries,
    fit_service_entries,
)
from hybridopt.calibration.options import FitOptions
from hybridopt.calibration.presets import PRESET_NAME, client_preset, queued_body_value, service_preset
from hybridopt.calibration.uplink import UplinkFit, fit_uplink
from hybridopt.errors import InputError
from hybridopt.params import LoadPattern, TestbedParams, Workload


@dataclass(frozen=True)
class ModelFit:
    """The platform model's parameters fitted through its own equations (`fit_model`)."""
    client: ClientFit
    service: dict[str, dict[str, ServiceEntryFit]]
    cold_start_model_ms: float             # what the model adds for a cold start (published values)
    cold_start_consistent: bool | None     # the logs' penalty CI covers the model's
    init_extra_ms: float                   # added to the model's INIT (at one vCPU) when the logs say more
    notes: list[str]
    queued_body: QueuedBodyFit | None = None
    uplink: UplinkFit | None = None         # the shared uplink (FitOptions.fit_uplink)


@dataclass
class Calibration:
    """Everything `calibrate` fitted, with the rows it used and what it skipped (and why)."""
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
    model: ModelFit | None = None           # the platform model's parameters (when testbed params given)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON data (non-finite floats as None)."""
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


def calibrate(df: pd.DataFrame, load_patterns: Mapping[str, LoadPattern], opts: FitOptions = FitOptions(),
              runs: Iterable[str] | None = None, testbed: TestbedParams | None = None,
              workloads: Mapping[str, Workload] | None = None) -> Calibration:
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
    network, inflation = normalise_sessions(network, inflation)
    cold = fit_cold_start(ok, opts)
    model = (fit_model(good, ref, ok, testbed, workloads, r0, cold, opts, everything=ctx, load_patterns=load_patterns)
             if testbed is not None and workloads else None)
    return Calibration(model=model, service=service, network=network, network_source=source, cold_start=cold, inflation=inflation,
                       reference_rate_rps=r0, sessions={str(k): v for k, v in sessions(ctx, opts.session_gap_s).items()},
                       rows_used={"successful": int(len(ok)), "clean": int(len(good)), "reference_band": int(len(ref))},
                       skipped=sk1 + sk2 + sk3 + ([] if cold else ["cold start: fewer than 3 cold rows"]),
                       options=opts)


def fit_model(rows: pd.DataFrame, reference: pd.DataFrame, survivors: pd.DataFrame, testbed: TestbedParams,
              workloads: Mapping[str, Workload], reference_rate_rps: float, cold: ColdStartFit | None,
              opts: FitOptions, everything: pd.DataFrame | None = None,
              load_patterns: Mapping[str, LoadPattern] | None = None) -> ModelFit:
    """Everything the platform model needs from the logs (client preset, service preset, cold
    start, and with `everything` (every logged row with context) and `load_patterns` the shared
    uplink). The client comes from the clean rows at every rate (its upload bandwidth from the
    logged successes of the reference band); handler times from the reference
    band (an unloaded client), or, for a cell without clean reference rows, from its logged
    successes (survivors, flagged); a cell with too few rows keeps the preset it started from."""
    client = fit_client(rows, testbed, reference_rate_rps, opts, upload_rows=survivors)
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
    fit = ModelFit(client=client, service=service, cold_start_model_ms=model_cold,
                   cold_start_consistent=consistent, init_extra_ms=extra, notes=notes, queued_body=queued)
    if opts.fit_uplink and everything is not None and load_patterns:
        up = fit_uplink(everything, fitted_testbed(fit, testbed, "uplink fit"), workloads, load_patterns, client, opts)
        notes.append(f"shared uplink: {up.note}")
        fit = replace(fit, uplink=up)
    return fit


def fitted_testbed(fit: ModelFit, testbed: TestbedParams, provenance: str) -> TestbedParams:
    """`testbed` with the fitted client and service presets (and queued body) added and selected."""
    d = testbed.model_dump(mode="json", by_alias=True)
    d["clients"][PRESET_NAME] = client_preset(fit.client, testbed.client, provenance, uplink=fit.uplink)
    d["service_presets"][PRESET_NAME] = service_preset(fit.service, testbed.service_presets["deployed"], provenance)
    q = queued_body_value(fit, provenance)
    if q is not None:
        d["fargate"]["queued_receive_bytes"] = q
    d["client_preset"], d["service_preset"] = PRESET_NAME, PRESET_NAME
    return TestbedParams.model_validate(d)
