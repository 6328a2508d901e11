"""The fitted platform model as params. `testbed_overrides` gives `load_params(..., overrides=...)`
content that adds (and, with `select`, chooses) the `fitted` client and service presets and the queued
ECS body, every value with basis `fitted` and where it came from; `with_presets` applies such
overrides to a Params in memory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from hybridopt.calibration.client import ClientFit
from hybridopt.calibration.handlers import ServiceEntryFit
from hybridopt.params import ClientPreset, Params, ServicePreset, TestbedParams

if TYPE_CHECKING:
    from hybridopt.calibration.fit import ModelFit
    from hybridopt.calibration.uplink import UplinkFit

PRESET_NAME: Final = "fitted"          # the key of the fitted presets in params/testbed.yaml


def _sourced(value: Any, source: str, basis: str = "fitted") -> dict[str, Any]:
    """A params Sourced value as plain data."""
    return {"value": value, "basis": basis, "source": source}


def client_preset(fit: ClientFit, base: ClientPreset, provenance: str, rtt_ms: float | None = None,
                  uplink: UplinkFit | None = None) -> dict[str, Any]:
    """A params.ClientPreset (as plain data) from `base` with the fitted values replaced (the shared
    uplink only when `uplink` identified its capacity)."""
    out = base.model_dump(mode="json")
    rtts = ", ".join(f"{s} {v:.0f}" for s, v in sorted(fit.rtt_ms_by_session.items()))
    out["description"] = ("the real logs' client, fitted: one machine in India calling eu-west-1 through an "
                          "Artillery generator that saturated at higher rates")
    out["rtt_ms"] = _sourced(round(rtt_ms if rtt_ms is not None else fit.rtt_ms, 1),
                             f"{provenance}; lightweight overheads through the model's handshake equations; geometric "
                             f"mean of the sessions' RTTs ({rtts} ms; se {fit.rtt_se_ms:.0f} ms)")
    setups = ", ".join(f"{s} {v:.0f}" for s, v in sorted(fit.setup_ms_by_session.items()))
    out["dns_ms"] = _sourced(round(fit.setup_ms, 1),
                             f"{provenance}; the client's set-up time per connection (name resolution, the generator's "
                             "scheduling), paid once per request by both platforms alike, read with the RTT from their "
                             f"lightweight overheads (Lambda's handshakes take one round trip more); mean of the sessions' "
                             f"({setups} ms)")
    out["rtt_jitter_sigma"] = _sourced(round(fit.rtt_jitter_sigma, 3),
                                       f"{provenance}; (q95 - q50) / 1.645 of log lightweight overheads per session and rate bin")
    out["tls_handshake_rtts"] = _sourced(fit.tls_handshake_rtts,
                                         f"{provenance}; Lambda's overhead beyond the ECS one is {fit.tls_rtts_estimate:.2f} "
                                         "RTT (TLS 1.3 takes 1, TLS 1.2 takes 2)")
    lo, hi = fit.upload_mbps_interval
    out["upload_mbps"] = _sourced(round(fit.upload_mbps, 1),
                                  f"{provenance}; Lambda overhead growth with payload size against the model's slow-start "
                                  f"upload (error within 10 % of the best for {lo:.0f}-{hi:.0f} Mbit/s)")
    inf = out["inflation"]
    inf["enabled"] = _sourced(True, f"{provenance}; latency grew with the generator's own request rate within a run")
    inf["threshold_rps"] = _sourced(round(fit.inflation_threshold_rps, 3),
                                    f"{provenance}; the lowest offered rate (the reference of the fit)")
    unit = {"additive": "ms per request", "round_trip": "ms per round trip",
            "multiplicative": "ms per second of client-side time"}[fit.inflation_form]
    inf["ms_per_rps"] = _sourced(round(fit.inflation_ms_per_rps, 2),
                                 f"{provenance}; {fit.inflation_form} form: {unit} per request/s above the threshold, "
                                 "from lightweight overheads per (session, platform, rate bin) with a per-session RTT "
                                 f"(se {fit.inflation_se_ms_per_rps:.1f})")
    inf["exponent"] = _sourced(1.0, "linear in the excess rate: the logs do not identify a curvature", basis="assumption")
    out["uplink"] = None            # explicit: merged over a preset written before, a stale uplink must not survive
    if uplink is not None and uplink.capacity_mbps is not None:
        src = (f"{provenance}; Lambda latencies per (session, workload, payload size) censored at the client's "
               f"timeout against the model's replays: {uplink.note}")
        out["uplink"] = {"enabled": _sourced(True, src), "capacity_mbps": _sourced(round(uplink.capacity_mbps, 1), src)}
    return out


def queued_body_value(fit: ModelFit, provenance: str) -> dict[str, Any] | None:
    """params.FargateModel.queued_receive_bytes as a Sourced value (None when the logs did not fit it)."""
    q = fit.queued_body
    if q is None or q.receive_bytes is None:
        return None
    return _sourced(q.receive_bytes, f"{provenance}; {q.note}. More than a Linux socket holds unread (tcp_rmem's "
                                     "default buffer 'results in initial window of 65535', kernel ip-sysctl.rst): the "
                                     "rest is buffered by the ALB, whose proxy buffers AWS does not publish")


def service_preset(fits: Mapping[str, Mapping[str, ServiceEntryFit]], base: ServicePreset, provenance: str) -> dict[str, Any]:
    """A params.ServicePreset (plain data): fitted entries, and the base preset's entry (with its own
    basis) where a cell could not be fitted."""
    out: dict[str, Any] = {"description": "handler times fitted to the real logs (the deployed handlers slept; "
                                          "this recovers their sleep ranges and the payload-dependent CPU work)",
                           "workloads": {}}
    for w, by_p in base.workloads.items():
        for p, entry in by_p.items():
            f = fits.get(w, {}).get(p)
            if f is None:
                out["workloads"].setdefault(w, {})[p] = entry.model_dump(mode="json", exclude_none=True)
                continue
            src = f"{provenance}; {f.selection}; {f.n} rows"
            out["workloads"].setdefault(w, {})[p] = {
                "sleep_ms": _sourced([round(f.sleep_low_ms, 1), round(f.sleep_high_ms, 1)],
                                     f"{src}; uniform with the 10th/90th percentiles after the size term"),
                "cpu_ms": _sourced(0.0, f"{src}; not separable from the wall-clock part at one CPU share"),
                "cpu_ms_per_mb": _sourced(round(f.cpu_ms_per_mb, 3),
                                          f"{src}; median-line slope {f.slope_ms_per_mb:.1f} ms/MiB at CPU share "
                                          f"{f.cpu_share:.3f}, scaled to one vCPU"),
            }
    return out


def with_presets(params: Params, overrides: Mapping[str, Any]) -> Params:
    """`params` (possibly built in memory) with `testbed_overrides(...)` merged into its testbed
    section and validated again."""
    def merge(a: dict[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
        return out

    tb = merge(params.testbed.model_dump(mode="json", by_alias=True), overrides["testbed"])
    return params.model_copy(update={"testbed": TestbedParams.model_validate(tb)})


def testbed_overrides(fit: ModelFit, testbed: TestbedParams, provenance: str, *, base_client: str | None = None,
                      base_service: str = "deployed", rtt_ms: float | None = None, select: bool = True
                      ) -> dict[str, Any]:
    """`load_params(..., overrides=...)` content adding (and, with `select`, choosing) the fitted
    client and service presets."""
    client = client_preset(fit.client, testbed.clients[base_client or testbed.client_preset], provenance, rtt_ms,
                           uplink=fit.uplink)
    service = service_preset(fit.service, testbed.service_presets[base_service], provenance)
    tb: dict[str, Any] = {"clients": {PRESET_NAME: client}, "service_presets": {PRESET_NAME: service}}
    queued = queued_body_value(fit, provenance)
    if queued is not None:
        tb["fargate"] = {"queued_receive_bytes": queued}
    if select:
        tb.update({"client_preset": PRESET_NAME, "service_preset": PRESET_NAME})
    return {"testbed": tb}
