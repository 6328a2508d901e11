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


def _rows(run: str, workload: str, platform: str, totals, size_kb: float = 1.0, cold: int = 0) -> pd.DataFrame:
    n = len(totals)
    c = np.zeros(n, dtype=bool)
    c[:cold] = True
    return pd.DataFrame({"run_id": run, "workload_type": workload, "platform": platform,
                         "target_payload_size_kb": size_kb, "total_ms": np.asarray(totals, dtype=float),
                         "error": None, "http_status": 200,
                         "cold_start": pd.array(c if platform == "lambda" else [pd.NA] * n, dtype="boolean")})


@pytest.fixture(scope="module")
def compared() -> dict:
    """A validation-shaped result around one compare() of crafted rows: lambda +20 % (passes), ecs +30 %."""
    base = np.linspace(900, 1100, 100)
    real = pd.concat([_rows("r1", "w", "lambda", base), _rows("r1", "w", "ecs", base)], ignore_index=True)
    sim = pd.concat([_rows("r1", "w", "lambda", base * 1.2), _rows("r1", "w", "ecs", base * 1.3)], ignore_index=True)
    part = v.compare(real, sim, v.ValidationOptions())
    return {"options": {"tolerance": 0.25}, "out_of_sample": part, "in_sample": part}


def test_thresholds_and_cells_frames(compared: dict) -> None:
    t = report.thresholds_frame(compared)
    assert len(t) == 8 and set(t["comparison"]) == {"out of sample (leave one session out)", "in sample (diagnostic)"}
    med = t[(t["threshold"] == "latency_median") & t["comparison"].str.startswith("out")].iloc[0]
    assert (med["cells"], med["passed"], med["pass"]) == (2, 1, False)
    cells = report.cells_frame(compared["out_of_sample"]).set_index("platform")
    assert cells.loc["lambda", "median_rel_err"] == pytest.approx(0.2) and bool(cells.loc["lambda", "pass_median"])
    assert not bool(cells.loc["ecs", "pass_median"])
    assert report.thresholds_frame({"out_of_sample": None}).empty


def test_validation_figure_is_a_closed_figure_with_one_panel_per_comparison_and_statistic(compared, tmp_path) -> None:
    fig = report.validation_figure(compared)
    assert isinstance(fig, plt.Figure) and not plt.fignum_exists(fig.number)
    axes = fig.get_axes()
    assert [a.get_title() for a in axes] == ["out of sample: median (1/2 cells within 25%)",
                                             "out of sample: p95 (1/2 cells within 25%)",
                                             "in sample: median (1/2 cells within 25%)",
                                             "in sample: p95 (1/2 cells within 25%)"]
    one = report.validation_figure({**compared, "in_sample": None})
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
