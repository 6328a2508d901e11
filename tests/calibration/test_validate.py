"""Validation logic on crafted tables, the replay schedule of a real session, a leave-one-session-out
run on logs the platform model produced itself, and a profile's cached validation result."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hybridopt import calibration as cal
from hybridopt import testing
from hybridopt.calibration import validate as v
from hybridopt.emulation.simulate import phase_offsets
from hybridopt.params import load_params
from hybridopt.report import calibration as report
from hybridopt.testing import validation_rows as _rows

OPTS = v.ValidationOptions(min_cell_rows=20, min_faster_rows=10)


def _sourced(value):
    return {"value": value, "basis": "assumption", "source": "test truth for the round trip"}


def _cat(*frames: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True)


def test_latency_cells_pass_and_fail_on_the_25_percent_rule() -> None:
    base = np.linspace(900, 1100, 100)          # median 1000, p95 1090
    real = _cat(_rows("r1", "w", "lambda", base), _rows("r1", "w", "ecs", base), _rows("r1", "x", "lambda", base),
                _rows("r1", "y", "lambda", base[:5]))
    sim = _cat(_rows("r1", "w", "lambda", base * 1.2),              # +20 %: pass
               _rows("r1", "w", "ecs", base * 1.3),                 # +30 %: fail
               _rows("r1", "x", "lambda", base[:5]),                # the model lost the cell: judged, fail
               _rows("r1", "y", "lambda", base * 3))                # too few real rows: not judged
    out = v.compare(real, sim, OPTS)
    cells = {(c["workload_type"], c["platform"]): c for c in out["cells"]}
    assert cells[("w", "lambda")]["pass_median"] is True and cells[("w", "lambda")]["pass_p95"] is True
    assert cells[("w", "lambda")]["median_rel_err"] == pytest.approx(0.2, abs=1e-9)
    assert cells[("w", "ecs")]["pass_median"] is False and cells[("w", "ecs")]["pass_p95"] is False
    assert cells[("x", "lambda")]["judged"] is True and cells[("x", "lambda")]["pass_median"] is False
    assert cells[("y", "lambda")]["judged"] is False and cells[("y", "lambda")]["pass_median"] is None
    t = out["thresholds"]
    assert (t["latency_median"]["cells"], t["latency_median"]["passed"]) == (3, 1)
    assert t["latency_median"]["pass"] is False
    # all judged cells within tolerance: the threshold passes
    ok = v.compare(real, _cat(_rows("r1", "w", "lambda", base * 0.8), _rows("r1", "w", "ecs", base * 1.25),
                              _rows("r1", "x", "lambda", base)), OPTS)
    assert ok["thresholds"]["latency_median"]["pass"] is True and ok["thresholds"]["latency_p95"]["pass"] is True


def test_errors_and_timeouts_are_not_latencies() -> None:
    real = _rows("r1", "w", "lambda", np.full(50, 1000.0))
    sim = _rows("r1", "w", "lambda", np.full(50, 1000.0))
    bad = _rows("r1", "w", "lambda", np.full(200, 9000.0))
    bad["error"], bad["http_status"] = "timeout", None
    out = v.compare(real, _cat(sim, bad), OPTS)
    assert out["cells"][0]["n_sim"] == 50 and out["cells"][0]["median_sim_ms"] == 1000.0


def test_faster_platform_agreement_share() -> None:
    real, sim = [], []
    # 5 payload sizes: real says lambda is faster in all; the model agrees in 4
    for i, kb in enumerate([1, 2, 3, 4, 5]):
        real += [_rows("r1", "w", "lambda", np.full(20, 500.0), kb), _rows("r1", "w", "ecs", np.full(20, 800.0), kb)]
        ecs_sim = 400.0 if i == 0 else 900.0
        sim += [_rows("r1", "w", "lambda", np.full(20, 500.0), kb), _rows("r1", "w", "ecs", np.full(20, ecs_sim), kb)]
    out = v.compare(_cat(*real), _cat(*sim), OPTS)
    f = out["thresholds"]["faster_platform"]
    assert (f["cells"], f["agree"], f["share"]) == (5, 4, 0.8)
    assert f["pass"] is True                              # 0.8 is enough
    sim[2] = _rows("r1", "w", "lambda", np.full(20, 1000.0), 2)
    out = v.compare(_cat(*real), _cat(*sim), OPTS)
    assert out["thresholds"]["faster_platform"]["share"] == 0.6 and out["thresholds"]["faster_platform"]["pass"] is False


def test_a_platform_that_mostly_failed_counts_as_slower() -> None:
    real = _cat(_rows("r1", "w", "lambda", np.full(30, 5000.0), 3), _rows("r1", "w", "ecs", np.full(3, 9000.0), 3))
    sim = _cat(_rows("r1", "w", "lambda", np.full(30, 5000.0), 3))
    f = v.compare(real, sim, OPTS)["faster"][0]
    assert (f["real"], f["sim"], f["agree"]) == ("lambda", "lambda", True)


def test_cold_start_rates_within_an_order_of_magnitude() -> None:
    t = np.full(1000, 700.0)
    real = _cat(_rows("r1", "a", "lambda", t, cold=2), _rows("r1", "b", "lambda", t, cold=2),
                _rows("r1", "c", "lambda", t, cold=0))
    sim = _cat(_rows("r1", "a", "lambda", t, cold=10),    # x5: pass
               _rows("r1", "b", "lambda", t, cold=40),    # x20: fail
               _rows("r1", "c", "lambda", t, cold=0))     # both zero: pass
    out = v.compare(real, sim, OPTS)
    cold = {c["workload_type"]: c for c in out["cold_start"]}
    assert cold["a"]["pass"] is True and cold["b"]["pass"] is False and cold["c"]["pass"] is True
    assert cold["b"]["log10_ratio"] == pytest.approx(np.log10(40.5 / 2.5))
    assert out["thresholds"]["cold_start_rate"] == {**out["thresholds"]["cold_start_rate"], "cells": 3, "passed": 2,
                                                    "pass": False}


def test_session_arrivals_follow_the_schedule_and_the_mix() -> None:
    params = load_params("thesis-2025-11")
    t0 = pd.Timestamp("2025-11-23T04:15:00Z")
    real = pd.DataFrame({"run_id": ["morning_peak_ramp_load", "morning_peak_ramp_load", "late_night_ramp_load",
                                    "late_night_ramp_load"],
                         "time_window": ["morning_peak", "morning_peak", "late_night", "late_night"],
                         "load_pattern": "ramp_load",
                         "sent_at": [t0, t0 + pd.Timedelta(minutes=14), t0 + pd.Timedelta(minutes=15),
                                     t0 + pd.Timedelta(minutes=60)]})
    arr = v.session_arrivals(real, params, seed=3)
    lp = params.load_patterns["ramp_load"]
    expected = sum(len(phase_offsets(p.duration_s, p.arrival_rate_rps, p.ramp_to_rps)) for p in lp.phases)
    assert len(arr) == expected                              # the whole hour of the ramp
    assert set(arr["platform"]) == {"lambda", "ecs"}
    share = arr.groupby(["platform", "workload_type"]).size() / len(arr)
    assert len(share) == 8 and share.min() > 0.11 and share.max() < 0.14
    for w, g in arr.groupby("workload_type"):
        assert set(g["payload_size_kb"]) == set(params.workloads[w].payload_sizes_kb)
    early = arr[arr["sent_at"] < t0 + pd.Timedelta(minutes=15)]
    assert set(early["run_id"]) == {"morning_peak_ramp_load"}
    assert set(arr.loc[arr["sent_at"] >= t0 + pd.Timedelta(minutes=15), "run_id"]) == {"late_night_ramp_load"}
    rate_first_min = (arr["t_s"] < 60).sum() / 60
    rate_last_min = (arr["t_s"] >= 3540).sum() / 60
    assert rate_first_min == pytest.approx(5.2, abs=0.5) and rate_last_min == pytest.approx(24.8, abs=0.5)


@pytest.mark.slow
def test_leave_one_session_out_on_model_made_logs_passes_where_the_client_is_stable() -> None:
    """Logs from the platform model itself, one client for every session: the out-of-sample replay must
    reproduce them (a validation that could not pass here would be broken)."""
    overrides = {"testbed": {"client_preset": "distant", "service_preset": "deployed",
                             "clients": {"distant": {"rtt_ms": _sourced(180.0), "upload_mbps": _sourced(40.0),
                                                     "tls_handshake_rtts": _sourced(1)}}},
                 "workloads": {w: {"fargate": {"min_tasks": n, "max_tasks": n}}
                               for w, n in (("medium_processing", 3), ("heavy_processing", 6))}}
    params = load_params("thesis-2025-11", overrides=overrides)
    low = params.load_patterns["low_load"].model_copy(update={"phases": [
        params.load_patterns["low_load"].phases[0].model_copy(update={"duration_s": 600.0})]})
    med = params.load_patterns["medium_load"].model_copy(update={"phases": [
        params.load_patterns["medium_load"].phases[0].model_copy(update={"duration_s": 600.0, "arrival_rate_rps": 8.0})]})
    params = params.model_copy(update={"load_patterns": {**params.load_patterns, "low_load": low, "medium_load": med}})
    df = testing.model_logs(params, {"a_low": ("low_load", low), "b_medium": ("medium_load", med)}, seed=9)
    res = v.validate(df, params, v.ValidationOptions(seed=1, seeds=2), in_sample=False)
    assert len(res["folds"]) == 2
    for part in ("conditioned", "blind"):
        t = res[part]["thresholds"]
        assert t["latency_median"]["share"] >= 0.85, report.cells_frame(res[part]).to_string()
        assert t["faster_platform"]["pass"] and t["cold_start_rate"]["pass"]
    # the probe reads the one client the logs were made with, and the lightweight cells are not judged
    for f in res["folds"]:
        assert f["probe"]["rtt_ms"] == pytest.approx(180.0, rel=0.1) and f["probe_rows"] == "lightweight_api cells"
    assert not any(c["judged"] for c in res["conditioned"]["cells"] if c["workload_type"] == "lightweight_api")
    # no shared uplink in these logs: the fit finds none
    assert all(f["fit"]["uplink_capacity_mbps"] is None for f in res["folds"])


def test_log_errors_summarise_the_judged_cells() -> None:
    cells = [{"judged": True, "median_real_ms": 100.0, "median_sim_ms": 200.0, "median_rel_err": 1.0,
              "p95_real_ms": 100.0, "p95_sim_ms": 50.0, "p95_rel_err": -0.5},
             {"judged": True, "median_real_ms": 100.0, "median_sim_ms": 100.0, "median_rel_err": 0.0,
              "p95_real_ms": 100.0, "p95_sim_ms": float("nan"), "p95_rel_err": None},
             {"judged": False, "median_real_ms": 1.0, "median_sim_ms": 1000.0, "median_rel_err": 999.0,
              "p95_real_ms": 1.0, "p95_sim_ms": 1000.0, "p95_rel_err": 999.0}]
    e = v.log_errors({"cells": cells})
    assert e["median_abs_log_err_mean"] == pytest.approx(np.log(2) / 2)
    assert e["median_abs_log_err_median"] == pytest.approx(np.log(2) / 2)
    assert e["p95_abs_log_err_mean"] == pytest.approx(np.log(2)) and e["p95_cells_without_sim"] == 1


@pytest.mark.slow
@pytest.mark.timeout(1200)  # three validations (145 s measured on a quiet 2-core machine)
def test_inflation_form_comparison_prefers_the_form_that_made_the_logs() -> None:
    """Model-made logs whose client stretches every round trip with its request rate (round_trip form),
    three sessions (5, 5-25 and 15 requests/s): out of sample the round_trip fit must come closer than the
    additive one (the held-out 15 requests/s session is where the form matters), and it recovers q."""
    truth_ms = 10.0
    overrides = {"testbed": {"client_preset": "distant", "service_preset": "deployed",
                             "clients": {"distant": {
                                 "rtt_ms": _sourced(180.0), "upload_mbps": _sourced(40.0), "tls_handshake_rtts": _sourced(1),
                                 "inflation": {"enabled": _sourced(True), "form": _sourced("round_trip"),
                                               "threshold_rps": _sourced(5.0), "ms_per_rps": _sourced(truth_ms),
                                               "exponent": _sourced(1.0), "window_s": _sourced(10.0)}}}},
                 "workloads": {w: {"fargate": {"min_tasks": n, "max_tasks": n}}
                               for w, n in (("thumbnail_processing", 2), ("medium_processing", 6),
                                            ("heavy_processing", 12))}}
    params = load_params("thesis-2025-11", overrides=overrides)
    lp = params.load_patterns

    def short(name: str, **phase) -> object:
        return lp[name].model_copy(update={"phases": [lp[name].phases[0].model_copy(update={"duration_s": 600.0, **phase})]})

    low, ramp, med = short("low_load"), short("ramp_load"), short("medium_load")
    params = params.model_copy(update={"load_patterns": {**lp, "low_load": low, "ramp_load": ramp, "medium_load": med}})
    df = testing.model_logs(params, {"a_low": ("low_load", low), "b_ramp": ("ramp_load", ramp),
                                     "c_medium": ("medium_load", med)}, seed=4)
    res = v.compare_inflation_forms(df, params, forms=("additive", "round_trip"), opts=v.ValidationOptions(seed=1))
    rt, add = res["round_trip"]["out_of_sample"], res["additive"]["out_of_sample"]
    print({f: (r["out_of_sample"]["median_abs_log_err_mean"], r["out_of_sample"]["p95_abs_log_err_mean"], r["folds"])
           for f, r in res.items()})
    assert rt["median_abs_log_err_mean"] < add["median_abs_log_err_mean"]
    assert rt["p95_abs_log_err_mean"] < add["p95_abs_log_err_mean"]
    assert res["round_trip"]["folds"]["c_medium"]["inflation_ms_per_rps"] == pytest.approx(truth_ms, rel=0.3)


def test_validation_result_needs_real_logs() -> None:
    with pytest.raises(ValueError, match="source 'simulator'.*needs real logs"):
        v.validation_result(load_params("smoke"))


SHARED = __import__("hybridopt.paths", fromlist=["x"]).shared_dir() / "data" / "thesis-aws-2025-11"


@pytest.mark.slow
@pytest.mark.needs_shared_data
@pytest.mark.timeout(1500)  # the whole validation of the real logs: 286 s measured on a quiet 2-core machine
def test_validate_testbed_cli_on_the_real_logs(tmp_path) -> None:
    """The Must-show command: the table with a pass boolean per threshold and per cell, and the figure."""
    import json

    from hybridopt import cli

    assert cli.main(["validate-testbed", "--data", str(SHARED), "--out", str(tmp_path), "--no-in-sample",
                     "--seeds", "1"]) == 0
    res = json.loads((tmp_path / "validation.json").read_text())
    assert (tmp_path / "validation.png").stat().st_size > 10_000
    assert res["data"]["lines"] == 65023
    assert [f["judged_session"] for f in res["folds"]] == ["early_morning_low_load", "midday_medium_load",
                                                           "morning_peak_ramp_load"]
    assert sorted(res["folds"][2]["judged_runs"]) == ["late_night_ramp_load", "morning_peak_ramp_load"]
    for part in ("conditioned", "blind", "blind_all_cells"):
        t = res[part]["thresholds"]
        assert set(t) == {"latency_median", "latency_p95", "faster_platform", "cold_start_rate", "pass"}
        assert all(isinstance(x["pass"], bool) for x in t.values() if isinstance(x, dict))
    judged = [c for c in res["conditioned"]["cells"] if c["judged"]]
    assert len(judged) >= 15 and all(isinstance(c["pass_median"], bool) for c in judged)
    assert all(c["workload_type"] != "lightweight_api" for c in judged)
    assert len([c for c in res["blind_all_cells"]["cells"] if c["judged"]]) > len(judged)
    assert res["pass"] == res["conditioned"]["thresholds"]["pass"] and res["record"] == "conditioned"
    # each session's probe reads its own client: the first session's round trip is far below the others'
    probes = {f["judged_session"]: f["probe"]["rtt_ms"] for f in res["folds"]}
    assert probes["early_morning_low_load"] < 0.6 * probes["midday_medium_load"]


@pytest.mark.slow
@pytest.mark.needs_shared_data
def test_validation_result_on_two_real_sessions_is_cached(tmp_path) -> None:
    """A profile with real logs: calibration and validation written once, read back while the input and
    the params are unchanged, computed again when forced or when the params change; 01_collect's section
    shows it (tables and a closed figure)."""
    import shutil

    import matplotlib.pyplot as plt

    src = SHARED / "variance-experiment"
    data = tmp_path / "logs"
    for run in ("early_morning_low_load", "midday_medium_load"):
        shutil.copytree(src / run, data / run)
    params = load_params("thesis-2025-11", overrides={"data": {"legacy_dir": str(data)}})
    out = tmp_path / "out"
    opts, fit = v.ValidationOptions(seeds=1), cal.FitOptions(fit_uplink=False)   # this test is about the cache
    first = v.validation_result(params, out_dir=out, in_sample=False, opts=opts, fit_opts=fit)
    assert not first.reused and first.out_dir == out
    assert first.validation["params_hash"] == params.hash and first.validation["data"]["lines"] > 0
    assert [f["judged_session"] for f in first.validation["folds"]] == ["early_morning_low_load",
                                                                       "midday_medium_load"]
    assert first.calibration["model"]["client"]["rtt_ms"] > 0
    stamp = (out / v.VALIDATION_FILE).stat().st_mtime_ns
    again = v.validation_result(params, out_dir=out, in_sample=False, opts=opts, fit_opts=fit)
    assert again.reused and (out / v.VALIDATION_FILE).stat().st_mtime_ns == stamp
    assert again.validation == first.validation and again.calibration == first.calibration

    s = report.report_section(params, out_dir=out, in_sample=False, opts=opts, fit_opts=fit)   # reuses the files above
    assert (out / v.VALIDATION_FILE).stat().st_mtime_ns == stamp
    assert s.kind == "real-logs" and "leave-one-session-out" in s.text
    assert set(s.tables) >= {"thresholds", "cells_conditioned", "failing_cells", "calibration_service", "model_client",
                             "folds"}
    assert len(s.tables["folds"]) == 2 and s.tables["thresholds"].equals(report.thresholds_frame(first.validation))
    assert isinstance(s.figure, plt.Figure) and not plt.fignum_exists(s.figure.number)

    assert not v.validation_result(params, force=True, out_dir=out, in_sample=False, opts=opts, fit_opts=fit).reused
    assert (out / v.VALIDATION_FILE).stat().st_mtime_ns != stamp
    other = load_params("thesis-2025-11", overrides={"data": {"legacy_dir": str(data)},
                                                     "testbed": {"service_preset": "measured"}})
    assert other.hash != params.hash
    assert not v.validation_result(other, out_dir=out, in_sample=False, opts=opts, fit_opts=fit).reused
