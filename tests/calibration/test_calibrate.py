"""Calibration: recovers known parameters from synthetic logs; row selection; session detection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hybridopt import calibration as cal
from hybridopt import testing
from hybridopt.params import LoadPattern

LOW = LoadPattern(code=0, phases=[{"name": "steady", "duration_s": 900, "arrival_rate_rps": 5}])
RAMP = LoadPattern(code=1, phases=[{"name": "ramp", "duration_s": 900, "arrival_rate_rps": 5, "ramp_to_rps": 25}])
PATTERNS = {"low_load": LOW, "ramp_load": RAMP}

TRUTH = testing.SyntheticTruth(
    service={("lightweight_api", "lambda"): (100.0, 0.0), ("lightweight_api", "ecs"): (110.0, 0.0),
             ("thumbnail_processing", "lambda"): (300.0, 40.0), ("thumbnail_processing", "ecs"): (650.0, 800.0),
             ("medium_processing", "lambda"): (1150.0, 20.0), ("medium_processing", "ecs"): (900.0, 300.0)},
    network={("lightweight_api", "lambda"): (570.0, 0.0), ("lightweight_api", "ecs"): (460.0, 0.0),
             ("thumbnail_processing", "lambda"): (950.0, 800.0), ("thumbnail_processing", "ecs"): (460.0, 0.0),
             ("medium_processing", "lambda"): (1500.0, 180.0), ("medium_processing", "ecs"): (460.0, 0.0)},
    sizes_kb={"lightweight_api": [0.5, 1, 5, 10], "thumbnail_processing": [50, 100, 200, 500, 1024],
              "medium_processing": [1024, 2048, 3072, 4096]},
    sigma_log=0.1, cold_penalty_ms=400.0, cold_sigma=0.3, cold_prob=0.02,
    inflation_k_per_rps={"lambda": 0.04, "ecs": 0.02},
)
# utilisation of the synthetic ECS services stays low, so every workload feeds the shared ECS network fit
OPTS = cal.FitOptions(max_queue_utilisation=10.0, bootstrap_resamples=500)


@pytest.fixture(scope="module")
def synthetic() -> pd.DataFrame:
    return testing.synthetic_logs(TRUTH, {"low": ("low_load", LOW), "ramp": ("ramp_load", RAMP)}, seed=7)


@pytest.fixture(scope="module")
def fitted(synthetic: pd.DataFrame) -> cal.Calibration:
    return cal.calibrate(synthetic, PATTERNS, OPTS)


def _close(est: float, se: float, truth: float, rel: float, abs_ms: float = 0.0) -> bool:
    """Within 3 standard errors, or within rel (relative) / abs_ms (absolute) of the truth."""
    return abs(est - truth) <= max(3 * se, rel * abs(truth), abs_ms)


def test_recovers_service_lines(fitted: cal.Calibration) -> None:
    for (w, p), (a, b) in TRUTH.service.items():
        f = fitted.service[w][p]
        # the noise has mean 1, so the median line sits exp(-sigma^2/2) below the truth
        shrink = np.exp(-TRUTH.sigma_log ** 2 / 2)
        assert _close(f.intercept_ms, f.intercept_se_ms, a * shrink, 0.03), (w, p, f)
        assert _close(f.slope_ms_per_mb, f.slope_se_ms_per_mb, b * shrink, 0.10, abs_ms=15.0), (w, p, f)
        assert 0.06 < f.sigma_log < 0.14, (w, p, f.sigma_log)


def test_recovers_network_lines(fitted: cal.Calibration) -> None:
    shrink = np.exp(-TRUTH.sigma_log ** 2 / 2)
    for (w, p), (a, b) in TRUTH.network.items():
        f = fitted.network[w][p]
        assert _close(f.intercept_ms, f.intercept_se_ms, a * shrink, 0.04), (w, p, f)
        assert _close(f.slope_ms_per_mb, f.slope_se_ms_per_mb, b * shrink, 0.10, abs_ms=20.0), (w, p, f)


def test_recovers_load_inflation(fitted: cal.Calibration) -> None:
    assert fitted.reference_rate_rps == pytest.approx(5.0)
    for platform, k in TRUTH.inflation_k_per_rps.items():
        f = fitted.inflation[platform]
        assert _close(f.k_per_rps, f.k_se_per_rps, k, 0.15), (platform, f.k_per_rps, f.k_se_per_rps)
        # both synthetic sessions share one client network: factors ~1
        for s, v in f.session_factors.items():
            assert v == pytest.approx(1.0, abs=0.05), (platform, s, v)


def test_recovers_cold_start_penalty(fitted: cal.Calibration, synthetic: pd.DataFrame) -> None:
    c = fitted.cold_start
    assert c is not None
    lam = synthetic[synthetic["platform"] == "lambda"]
    assert c.n_cold == int(lam["cold_start"].sum())
    lo, hi = c.penalty_ci95_ms
    assert lo < c.penalty_median_ms < hi
    assert abs(c.penalty_median_ms - TRUTH.cold_penalty_ms) < max(0.2 * TRUTH.cold_penalty_ms, hi - lo)
    assert c.cold_rate == pytest.approx(TRUTH.cold_prob, abs=0.01)


def test_a_different_truth_gives_a_different_fit() -> None:
    """The estimators follow the data (no constant can pass the recovery tests)."""
    other = testing.SyntheticTruth(**{**TRUTH.__dict__,
                                      "service": {k: (2 * a, b) for k, (a, b) in TRUTH.service.items()},
                                      "inflation_k_per_rps": {"lambda": 0.0, "ecs": 0.08}})
    df = testing.synthetic_logs(other, {"low": ("low_load", LOW), "ramp": ("ramp_load", RAMP)}, seed=3)
    f = cal.calibrate(df, PATTERNS, OPTS)
    assert f.service["lightweight_api"]["lambda"].intercept_ms == pytest.approx(200 * np.exp(-0.005), rel=0.03)
    assert abs(f.inflation["lambda"].k_per_rps) < 0.01
    assert f.inflation["ecs"].k_per_rps == pytest.approx(0.08, rel=0.2)


def test_censored_cells_are_left_out_of_the_fits(synthetic: pd.DataFrame) -> None:
    """A cell that lost most of its requests (client timeout, unlogged failures) is not clean; its
    service line then comes from its survivors and says so."""
    df = synthetic.copy()
    cell = (df["platform"] == "ecs") & (df["workload_type"] == "medium_processing")
    rng = np.random.default_rng(0)
    drop = cell & (rng.uniform(0, 1, len(df)) < 0.7)
    df = df[~drop]
    ctx = cal.add_context(df, PATTERNS, OPTS)
    share = ctx.loc[(ctx["platform"] == "ecs") & (ctx["workload_type"] == "medium_processing"), "logged_share"]
    assert share.median() == pytest.approx(0.3, abs=0.08)
    other = ctx.loc[(ctx["platform"] == "lambda") & (ctx["workload_type"] == "medium_processing"), "logged_share"]
    assert other.median() == pytest.approx(1.0, abs=0.1)
    f = cal.calibrate(df, PATTERNS, OPTS)
    assert f.service["medium_processing"]["ecs"].selection.startswith("all logged successes")
    assert f.service["medium_processing"]["lambda"].selection == ""


def test_sessions_join_runs_split_by_a_clock_bug() -> None:
    t = pd.Timestamp("2025-11-23T04:15:00Z")
    df = pd.DataFrame({
        "run_id": ["morning_peak_ramp_load"] * 2 + ["late_night_ramp_load"] * 2 + ["midday_medium_load"] * 2,
        "load_pattern": ["ramp_load"] * 4 + ["medium_load"] * 2,
        "sent_at": [t, t + pd.Timedelta(minutes=15), t + pd.Timedelta(minutes=15, seconds=2),
                    t + pd.Timedelta(minutes=60), t + pd.Timedelta(hours=3), t + pd.Timedelta(hours=4)]})
    s = cal.sessions(df, gap_s=300)
    assert s["late_night_ramp_load"] == s["morning_peak_ramp_load"] == "morning_peak_ramp_load"
    assert s["midday_medium_load"] == "midday_medium_load"


def test_rate_at_follows_the_load_pattern() -> None:
    burst = LoadPattern(code=2, phases=[{"name": "a", "duration_s": 100, "arrival_rate_rps": 5},
                                        {"name": "b", "duration_s": 50, "arrival_rate_rps": 30},
                                        {"name": "c", "duration_s": 100, "arrival_rate_rps": 5}])
    assert list(cal.rate_at(burst, np.array([0, 99, 100, 149, 150, 260]))) == [5, 5, 30, 30, 5, 0]
    assert cal.rate_at(burst, np.array([260.0]), clip=True)[0] == 5
    assert cal.rate_at(RAMP, np.array([450.0]))[0] == pytest.approx(15.0)


def test_linear_fit_drops_an_insignificant_slope() -> None:
    rng = np.random.default_rng(1)
    x = np.repeat([0.0005, 0.001, 0.005, 0.01], 200)
    y = 100 * np.exp(rng.normal(0, 0.2, len(x)))
    f = cal.linear_fit(x, y)
    assert f.slope_ms_per_mb == 0.0 and f.intercept_ms == pytest.approx(np.median(y))
    y2 = 300 + 500 * x * 100 + rng.normal(0, 5, len(x))  # 50,000 ms/MB over 10 KB: significant
    f2 = cal.linear_fit(x, y2)
    assert f2.slope_ms_per_mb == pytest.approx(50000, rel=0.05)


def test_the_package_re_exports_its_modules_public_names() -> None:
    from hybridopt.calibration import (
        arrivals,
        client,
        context,
        empirical,
        fit,
        handlers,
        options,
        presets,
        testbed_yaml,
        uplink,
    )

    modules = (arrivals, client, context, empirical, fit, handlers, options, presets, testbed_yaml, uplink)
    for name in cal.__all__:
        home = [m for m in modules if name in vars(m)]
        assert home and getattr(cal, name) is getattr(home[0], name), name
    # every public function and class a module defines is re-exported
    defined = {n for m in modules for n, v in vars(m).items()
               if not n.startswith("_") and callable(v) and getattr(v, "__module__", None) == m.__name__}
    assert defined - set(cal.__all__) == set()


def test_calibrate_refuses_a_frame_without_timings() -> None:
    df = testing.synthetic_logs(TRUTH, {"low": ("low_load", LOW)}, seed=1)
    df["execution_time_ms"] = np.nan
    with pytest.raises(ValueError, match="no successful rows"):
        cal.calibrate(df, PATTERNS, OPTS)


# ------------------------------------------------------------------- round trip through the platform model
def _sourced(v, basis="assumption"):
    return {"value": v, "basis": basis, "source": "test truth for the round trip"}


#: the inflation's truth per form: ms per request, per round trip, per second of client-side time (per req/s)
INFLATION_TRUTH = {"additive": 12.0, "round_trip": 4.0, "multiplicative": 20.0}


@pytest.fixture(scope="module", params=list(INFLATION_TRUTH))
def model_round_trip(request):
    from hybridopt.params import load_params

    form = request.param
    truth = {"rtt_ms": 150.0, "tls": 2, "upload_mbps": 20.0, "jitter": 0.1, "ms_per_rps": INFLATION_TRUTH[form],
             "form": form}
    overrides = {
        "testbed": {"client_preset": "distant", "service_preset": "deployed",
                    "clients": {"distant": {
                        "rtt_ms": _sourced(truth["rtt_ms"]), "rtt_jitter_sigma": _sourced(truth["jitter"]),
                        "tls_handshake_rtts": _sourced(truth["tls"]), "upload_mbps": _sourced(truth["upload_mbps"]),
                        "inflation": {"enabled": _sourced(True), "form": _sourced(form), "window_s": _sourced(10.0),
                                      "threshold_rps": _sourced(5.0), "ms_per_rps": _sourced(truth["ms_per_rps"]),
                                      "exponent": _sourced(1.0)}}}},
        # enough tasks that no ECS service is overloaded at 25 requests/s
        "workloads": {w: {"fargate": {"min_tasks": n, "max_tasks": n}}
                      for w, n in (("medium_processing", 3), ("heavy_processing", 6))},
    }
    params = load_params("thesis-2025-11", overrides=overrides)
    low = LoadPattern(code=0, phases=[{"name": "steady", "duration_s": 900, "arrival_rate_rps": 5}])
    ramp = LoadPattern(code=1, phases=[{"name": "ramp", "duration_s": 900, "arrival_rate_rps": 5, "ramp_to_rps": 25}])
    df = testing.model_logs(params, {"low": ("low_load", low), "ramp": ("ramp_load", ramp)}, seed=5)
    fit = cal.calibrate(df, {"low_load": low, "ramp_load": ramp}, cal.FitOptions(bootstrap_resamples=300),
                        testbed=params.testbed, workloads=params.workloads)
    return truth, params, fit


def test_model_fit_recovers_the_client_from_model_generated_logs(model_round_trip) -> None:
    truth, _, fit = model_round_trip
    cl = fit.model.client
    for s, rtt in cl.rtt_ms_by_session.items():
        assert rtt == pytest.approx(truth["rtt_ms"], rel=0.06), (s, rtt)
    assert cl.tls_handshake_rtts == truth["tls"]
    assert cl.tls_rtts_estimate == pytest.approx(truth["tls"], abs=0.3)
    lo, hi = cl.upload_mbps_interval
    assert lo <= truth["upload_mbps"] * 1.15 and hi >= truth["upload_mbps"] * 0.85, (cl.upload_mbps, lo, hi)
    assert lo <= cl.upload_mbps <= hi
    assert cl.inflation_form == truth["form"]
    assert cl.inflation_ms_per_rps == pytest.approx(truth["ms_per_rps"], rel=0.3), cl.inflation_ms_per_rps
    assert cl.rtt_jitter_sigma == pytest.approx(truth["jitter"], abs=0.02)


def test_model_fit_recovers_the_deployed_handler_times(model_round_trip) -> None:
    """The handler time's range (sleep range + size term) at every payload size the logs hold. The
    logs identify that, not how it splits into a constant and a per-MB slope: a slope within a few
    standard errors of the 2-SE cut can be kept or dropped, and the sleep range moves to make up
    for it (ECS heavy: 84.6 ms/MB kept, range 2,796-4,677 ms; at 2-5 MB 2,965-5,100 ms against
    3,000-5,000 ms deployed)."""
    _, params, fit = model_round_trip
    for w, by_p in params.testbed.service_presets["deployed"].workloads.items():
        for p, entry in by_p.items():
            e = fit.model.service[w][p]
            lo, hi = entry.sleep_ms.value
            span = hi - lo
            for kb in params.workloads[w].payload_sizes_kb:
                mb = kb / 1024.0
                true_size_ms = float(entry.cpu_ms_per_mb.value) * mb / e.cpu_share
                fit_size_ms = e.slope_ms_per_mb * mb
                assert e.sleep_low_ms + fit_size_ms == pytest.approx(lo + true_size_ms, abs=0.12 * span + 15), (w, p, kb, e)
                assert e.sleep_high_ms + fit_size_ms == pytest.approx(hi + true_size_ms, abs=0.12 * span + 15), (w, p, kb, e)


def test_fitted_presets_load_as_params(model_round_trip) -> None:
    from hybridopt.params import load_params

    _, params, fit = model_round_trip
    ov = cal.testbed_overrides(fit.model, params.testbed, "test provenance")
    p2 = load_params("thesis-2025-11", overrides=ov)
    assert p2.testbed.client_preset == cal.PRESET_NAME and p2.testbed.service_preset == cal.PRESET_NAME
    assert p2.testbed.client.rtt_ms.basis == "fitted"
    assert "test provenance" in p2.testbed.client.rtt_ms.source
    assert p2.testbed.client.inflation.enabled.value is True
    assert p2.testbed.client.inflation.form.value == fit.model.client.inflation_form


def test_replace_block_is_idempotent_and_keeps_the_rest() -> None:
    text = ("testbed:\n  clients:\n    distant:\n      rtt_ms: 1\n\n  # --- next\n  lambda:\n    x: 1\n"
            "  service_presets:\n    deployed:\n      a: 1\n")
    blk = cal.preset_yaml("fitted", {"rtt_ms": {"value": 2.0, "basis": "fitted", "source": "s: t"}})
    once = cal.replace_block(text, "clients", "fitted", blk)
    twice = cal.replace_block(once, "clients", "fitted", blk)
    assert once == twice
    import yaml
    data = yaml.safe_load(once)["testbed"]
    assert data["clients"]["fitted"]["rtt_ms"] == {"value": 2.0, "basis": "fitted", "source": "s: t"}
    assert data["clients"]["distant"] == {"rtt_ms": 1} and data["lambda"] == {"x": 1}
    end = cal.replace_block(once, "service_presets", "fitted", cal.preset_yaml("fitted", {"d": "x"}))
    assert yaml.safe_load(end)["testbed"]["service_presets"]["fitted"] == {"d": "x"}
    with pytest.raises(ValueError, match="no 'nope:'"):
        cal.replace_block(text, "nope", "fitted", blk)


@pytest.mark.parametrize("client, service", [("fitted", "fitted"), ("fitted", "measured"), ("distant", "fitted")])
def test_full_profile_can_select_the_written_presets(client: str, service: str) -> None:
    """params/testbed.yaml holds the presets written by `calibrate --write` and the workload
    benchmark; the full profile selects them and the platform model runs with them."""
    from hybridopt.params import load_params
    from hybridopt.platforms import PlatformModel

    p = load_params("full", overrides={"testbed": {"client_preset": client, "service_preset": service}})
    assert p.testbed.client.rtt_ms.basis == ("fitted" if client == "fitted" else "assumption")
    entry = p.testbed.service.workloads["heavy_processing"]["lambda"]
    assert entry.cpu_ms_per_mb.basis == ("fitted" if service == "fitted" else "measured")
    model = PlatformModel.from_params(p, seed=1)
    for i, w in enumerate(p.workloads):
        for platform in ("lambda", "ecs"):
            o = model.handle(10.0 * i, platform, w, int(p.workloads[w].payload_sizes_kb[0] * 1024))
            assert o.ok and o.total_ms > 0 and o.execution_time_ms > 0, (w, platform, o)


def test_queued_body_and_the_ecs_handler_time_from_requests_that_waited() -> None:
    """Model-made logs where thumbnails queue at ECS behind a 500-700 ms handler and 300,000 bytes of a
    request can arrive while it waits: the requests that waited >= 3 s had their whole body up to 200 KiB
    and never at 500 KiB, so queued_receive_bytes is bracketed by those sizes; their execution times give
    the handler's own time (no upload to subtract)."""
    from hybridopt.params import load_params

    def src(v):
        return {"value": v, "basis": "assumption", "source": "test truth"}

    truth_bytes = 300_000
    params = load_params("thesis-2025-11", overrides={
        "testbed": {"client_preset": "distant", "service_preset": "deployed",
                    "fargate": {"queued_receive_bytes": src(truth_bytes)},
                    # both platforms' thumbnail entries (before the loader unshared YAML anchors, an
                    # override of the ECS entry silently changed the Lambda one too: this keeps that scenario)
                    "service_presets": {"deployed": {"workloads": {"thumbnail_processing": {
                        p: {"sleep_ms": src([500, 700]), "cpu_ms": src(0.0), "cpu_ms_per_mb": src(0.0)}
                        for p in ("lambda", "ecs")}}}}},
        "workloads": {"thumbnail_processing": {"payload_sizes_kb": [50, 100, 200, 500, 1024]},
                      "medium_processing": {"fargate": {"min_tasks": 4, "max_tasks": 4}},
                      "heavy_processing": {"fargate": {"min_tasks": 8, "max_tasks": 8}}}})
    low = LoadPattern(code=0, phases=[{"name": "steady", "duration_s": 600, "arrival_rate_rps": 5}])
    busy = LoadPattern(code=2, phases=[{"name": "steady", "duration_s": 900, "arrival_rate_rps": 17}])
    pats = {"low_load": low, "medium_load": busy}
    df = testing.model_logs(params, {"a": ("low_load", low), "b": ("medium_load", busy)}, seed=3)
    fit = cal.calibrate(df, pats, cal.FitOptions(bootstrap_resamples=200), testbed=params.testbed,
                        workloads=params.workloads)
    q = fit.model.queued_body
    assert q is not None and q.receive_bytes is not None, q
    lo, hi = q.bracket_bytes
    assert lo < truth_bytes < hi and lo < q.receive_bytes < hi
    assert lo == 200 * 1024 + 256 + 400 and hi == 500 * 1024 + 256 + 400     # payload + envelope + headers
    e = fit.model.service["thumbnail_processing"]["ecs"]
    assert "handler's own time" in e.selection
    assert e.sleep_low_ms == pytest.approx(500, abs=25) and e.sleep_high_ms == pytest.approx(700, abs=25)
    ov = cal.testbed_overrides(fit.model, params.testbed, "test provenance")
    assert ov["testbed"]["fargate"]["queued_receive_bytes"]["value"] == q.receive_bytes
    assert load_params("thesis-2025-11", overrides=ov).testbed.fargate.queued_receive_bytes.basis == "fitted"
    # too little queueing: nothing to fit, said so
    calm = cal.fit_queued_body(cal.successful(cal.add_context(df[df.run_id == "a"], pats)), params.testbed,
                               cal.FitOptions())
    assert calm.receive_bytes is None and "not fitted" in calm.note
