"""The platform-model section's tables and figure (hybridopt.report.calibration) on crafted results and
on a simulated profile's logs."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from hybridopt import calibration as cal
from hybridopt import testing
from hybridopt.calibration import validate as v
from hybridopt.emulation import simulate
from hybridopt.params import LoadPattern, load_params
from hybridopt.report import calibration as report
from hybridopt.testing import validation_rows as _rows


@pytest.fixture(scope="module")
def compared() -> dict:
    """A validation-shaped result around compare() of crafted rows over two seeds: lambda +20 % (passes),
    ecs +30 % (fails)."""
    base = np.linspace(900, 1100, 100)
    real = pd.concat([_rows("r1", "w", "lambda", base), _rows("r1", "w", "ecs", base)], ignore_index=True)
    sims = [pd.concat([_rows("r1", "w", "lambda", base * f), _rows("r1", "w", "ecs", base * (f + 0.1))],
                      ignore_index=True) for f in (1.19, 1.21)]
    part = v.compare(real, sims, v.ValidationOptions(bootstrap_resamples=200))
    return {"options": {"tolerance": 0.25}, "design": "leave-one-session-out", "conditioned": part,
            "blind": part, "in_sample": part, "folds": []}


def test_thresholds_and_cells_frames(compared: dict) -> None:
    t = report.thresholds_frame(compared)
    assert len(t) == 12
    assert list(t["comparison"].unique()) == ["network-conditioned (of record), held out", "blind (typical network), held out",
                                              "in sample (conditioned)"]
    med = t[(t["check"] == "latency_median") & t["comparison"].str.startswith("network")].iloc[0]
    assert (med["cells"], med["reproduced"], med["goal"], med["pass"]) == (2, 1, 0.8, False)
    cells = report.cells_frame(compared["conditioned"]).set_index("platform")
    assert cells.loc["lambda", "median_rel_err"] == pytest.approx(0.2, abs=0.01) and bool(cells.loc["lambda", "pass_median"])
    assert not bool(cells.loc["ecs", "pass_median"])
    lo, hi = (float(x) for x in cells.loc["lambda", "median_real_ci"].split("-"))
    assert lo < 1000 < hi                                          # the bootstrap CI of the real median
    assert cells.loc["lambda", "median_sim_seeds"] != "-" and not bool(cells.loc["lambda", "median_ci_overlap"])
    assert report.thresholds_frame({"conditioned": None}).empty


def test_failures_frame_names_a_cause_for_each_failing_cell(compared: dict) -> None:
    f = report.failures_frame(compared["conditioned"])
    assert list(f["platform"]) == ["ecs"] and f["failed"].iloc[0] == "median, p95"
    # crafted rows carry no execution_time_ms: no part of the request can be compared
    assert f["cause"].iloc[0] == "no execution_time_ms to split the request into its parts"


def test_validation_figure_is_a_closed_figure_with_one_row_of_panels_per_comparison(compared, tmp_path) -> None:
    fig = report.validation_figure(compared)
    assert isinstance(fig, plt.Figure) and not plt.fignum_exists(fig.number)
    titles = [a.get_title() for a in fig.get_axes()]
    assert titles == ["network-conditioned (of record), held out: median (1/2 cells within 25%)",
                      "network-conditioned (of record), held out: p95 (1/2 cells within 25%)",
                      "blind (typical network), held out: median (1/2 cells within 25%)",
                      "blind (typical network), held out: p95 (1/2 cells within 25%)",
                      "in sample (conditioned): median (1/2 cells within 25%)",
                      "in sample (conditioned): p95 (1/2 cells within 25%)"]
    # error bars: the real CI and the model's range over seeds are drawn for every judged cell
    ax = fig.get_axes()[0]
    assert len(ax.containers) == 2
    one = report.validation_figure({**compared, "blind": None, "in_sample": None})
    assert len(one.get_axes()) == 2
    fig.savefig(tmp_path / "validation.png", dpi=110)                  # whoever needs a file saves it
    assert (tmp_path / "validation.png").stat().st_size > 10_000


def test_summary_table_formats_the_fitted_lines() -> None:
    low = LoadPattern(code=0, phases=[{"name": "steady", "duration_s": 900, "arrival_rate_rps": 5}])
    ramp = LoadPattern(code=1, phases=[{"name": "ramp", "duration_s": 900, "arrival_rate_rps": 5, "ramp_to_rps": 25}])
    truth = testing.SyntheticTruth(
        service={("lightweight_api", "lambda"): (100.0, 0.0), ("lightweight_api", "ecs"): (110.0, 0.0)},
        network={("lightweight_api", "lambda"): (570.0, 0.0), ("lightweight_api", "ecs"): (460.0, 0.0)},
        sizes_kb={"lightweight_api": [0.5, 1, 5, 10]})
    df = testing.synthetic_logs(truth, {"low": ("low_load", low), "ramp": ("ramp_load", ramp)}, seed=2)
    fit = cal.calibrate(df, {"low_load": low, "ramp_load": ramp}, cal.FitOptions(max_queue_utilisation=10.0,
                                                                                 bootstrap_resamples=200))
    t = report.summary_table(fit).set_index("platform")
    assert list(t["workload"]) == ["lightweight_api", "lightweight_api"]
    s = fit.service["lightweight_api"]["lambda"]
    assert t.loc["lambda", "service_ms"] == (f"{s.intercept_ms:.0f}±{s.intercept_se_ms:.0f} + "
                                             f"{s.slope_ms_per_mb:.0f}±{s.slope_se_ms_per_mb:.0f}/MB")
    assert t.loc["lambda", "service_n"] == s.n and t.loc["ecs", "network_n"] == fit.network["lightweight_api"]["ecs"].n


def test_simulator_summary_counts_per_window_and_platform() -> None:
    df = pd.concat([_rows("r1", "w", "lambda", np.full(10, 100.0), cold=3), _rows("r1", "w", "ecs", np.full(5, 200.0))],
                   ignore_index=True)
    df["time_window"] = "midday"
    df.loc[0, "error"] = "timeout"
    s = report.simulator_summary(df).set_index("platform")
    assert s.loc["lambda", "lines"] == 10 and s.loc["lambda", "errors"] == 1 and s.loc["lambda", "cold_starts"] == 3
    assert s.loc["ecs", "median_ms"] == 200.0 and s.loc["ecs", "cold_starts"] == 0


def test_report_section_for_simulated_and_other_profiles(tmp_path) -> None:
    params = load_params("smoke", overrides={"data": {"raw_dir": str(tmp_path / "raw")}})
    empty = report.report_section(params)
    assert empty.kind == "simulator" and "no simulated logs" in empty.text and not empty.tables
    simulate.simulate_profile(params, seed=3)
    s = report.report_section(params)
    summary = s.tables["simulator_summary"]
    assert s.kind == "simulator" and s.text.startswith("4,000 simulated lines") and s.figure is None
    assert summary["lines"].sum() == 4000
    assert list(summary["time_window"].astype(str).unique()) == list(params.time_windows)   # in schedule order
    none = report.report_section(load_params("quick"))
    assert none.kind == "none" and "source testbed" in none.text
