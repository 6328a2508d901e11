"""The platform model against real runs (01_collect, and the calibrate / validate-testbed commands):
the calibration's fitted lines, the validation's thresholds and cells as tables, the simulated-vs-real
figure, and the notebook's whole section for a profile. Computed in `hybridopt.calibration`; arranged
and drawn here."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from hybridopt.calibration import Calibration, LinearFit
from hybridopt.calibration.validate import validation_result
from hybridopt.data.contract import PLATFORMS
from hybridopt.data.ingest import ingest
from hybridopt.params import Params
from hybridopt.report.common import done


# ------------------------------------------------------------------------------------- calibration
def summary_table(cal: Calibration) -> pd.DataFrame:
    """One row per (workload, platform): the fitted service and network lines."""
    rows = []
    for w in sorted(set(cal.service) | set(cal.network)):
        for p in PLATFORMS:
            s = cal.service.get(w, {}).get(p)
            n = cal.network.get(w, {}).get(p)
            if s is None and n is None:
                continue
            rows.append({"workload": w, "platform": p,
                         "service_ms": _fmt_line(s), "service_sigma_log": s.sigma_log if s else None,
                         "service_n": s.n if s else 0,
                         "network_ms": _fmt_line(n), "network_sigma_log": n.sigma_log if n else None,
                         "network_n": n.n if n else 0})
    return pd.DataFrame(rows)


def _fmt_line(f: LinearFit | None) -> str:
    if f is None:
        return "-"
    return (f"{f.intercept_ms:.0f}±{f.intercept_se_ms:.0f} + {f.slope_ms_per_mb:.0f}±{f.slope_se_ms_per_mb:.0f}/MB")


def _fit_table(fit_d: Mapping[str, Any], part: str) -> pd.DataFrame:
    """The service or network lines of a Calibration.as_dict() as a table."""
    rows = []
    for w, by_p in fit_d.get(part, {}).items():
        for p, f in by_p.items():
            rows.append({"workload": w, "platform": p, "intercept_ms": f["intercept_ms"], "se_ms": f["intercept_se_ms"],
                         "slope_ms_per_mb": f["slope_ms_per_mb"], "slope_se": f["slope_se_ms_per_mb"],
                         "sigma_log": f["sigma_log"], "n": f["n"], "selection": f.get("selection", "")})
    return pd.DataFrame(rows)


# -------------------------------------------------------------------------------------- validation
def cells_frame(part: Mapping[str, Any]) -> pd.DataFrame:
    """The (run, workload, platform) cells of one comparison as a table."""
    cols = ["run_id", "workload_type", "platform", "n_real", "n_sim", "median_real_ms", "median_sim_ms",
            "median_rel_err", "pass_median", "p95_real_ms", "p95_sim_ms", "p95_rel_err", "pass_p95"]
    return pd.DataFrame(part["cells"])[cols]


def thresholds_frame(result: Mapping[str, Any]) -> pd.DataFrame:
    """One row per threshold: out-of-sample (of record) and in-sample (diagnostic)."""
    rows = []
    for label, key in (("out of sample (leave one session out)", "out_of_sample"), ("in sample (diagnostic)", "in_sample")):
        part = result.get(key)
        if not part:
            continue
        for name, t in part["thresholds"].items():
            if isinstance(t, dict):
                rows.append({"comparison": label, "threshold": name, "cells": t["cells"],
                             "passed": t.get("passed", t.get("agree")), "share": t["share"], "pass": t["pass"],
                             "rule": t["rule"]})
    return pd.DataFrame(rows)


def validation_figure(result: Mapping[str, Any]) -> plt.Figure:
    """Simulated vs real median and p95 per cell (log-log, the tolerance band shaded), one panel per
    comparison and statistic. The figure is closed: display it, or save it (`fig.savefig(path)`)."""
    parts = [(k, result[k]) for k in ("out_of_sample", "in_sample") if result.get(k)]
    fig, axes = plt.subplots(len(parts), 2, figsize=(11, 5 * len(parts)), squeeze=False)
    tol = result["options"]["tolerance"]
    for row, (key, part) in enumerate(parts):
        cells = pd.DataFrame(part["cells"])
        cells = cells[cells["judged"]]
        for col, stat in enumerate(("median", "p95")):
            ax = axes[row][col]
            d = cells.dropna(subset=[f"{stat}_real_ms", f"{stat}_sim_ms"])
            sns.scatterplot(data=d, x=f"{stat}_real_ms", y=f"{stat}_sim_ms", hue="platform", style="workload_type",
                            s=70, ax=ax)
            lo = max(50.0, float(np.nanmin(d[[f"{stat}_real_ms", f"{stat}_sim_ms"]].to_numpy())) * 0.7) if len(d) else 100
            hi = float(np.nanmax(d[[f"{stat}_real_ms", f"{stat}_sim_ms"]].to_numpy())) * 1.4 if len(d) else 20000
            xs = np.array([lo, hi])
            ax.plot(xs, xs, color="black", lw=1)
            ax.fill_between(xs, xs * (1 - tol), xs * (1 + tol), color="grey", alpha=0.2, label=f"±{tol:.0%}")
            ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel=f"real {stat} total_ms",
                   ylabel=f"model {stat} total_ms")
            t = part["thresholds"][f"latency_{stat}"]
            ax.set_title(f"{'out of sample' if key == 'out_of_sample' else 'in sample'}: {stat} "
                         f"({t['passed']}/{t['cells']} cells within {tol:.0%})")
            ax.legend(fontsize=7, loc="upper left")
    return done(fig)


# ---------------------------------------------------------------------------------- simulator logs
def simulator_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per (time window, platform): lines, errors, cold starts, median and p95 total_ms of successes."""
    d = df.assign(ok_ms=df["total_ms"].where(df["error"].isna()))
    g = d.groupby(["time_window", "platform"], observed=True, sort=False)
    out = g.agg(lines=("total_ms", "size"), errors=("error", lambda s: int(s.notna().sum())),
                cold_starts=("cold_start", lambda s: int(s.fillna(False).astype(bool).sum())),
                median_ms=("ok_ms", "median"), p95_ms=("ok_ms", lambda s: s.quantile(0.95)))
    return out.reset_index()


# ---------------------------------------------------------------------------- the notebook section
@dataclass
class ReportSection:
    """What 01_collect shows about the platform model for a profile: for profiles with real logs the
    calibration and validation tables and the figure; for simulated profiles the simulator's
    summary per window and platform."""
    kind: str                              # "real-logs" | "simulator" | "none"
    text: str
    tables: dict[str, pd.DataFrame]
    figure: plt.Figure | None = None
    result: dict[str, Any] | None = None   # the validation (real logs)


def report_section(params: Params, force: bool = False, out_dir: str | os.PathLike[str] | None = None,
                   in_sample: bool = True) -> ReportSection:
    """The platform-model section of the collection report. Real logs: the validation result
    (`calibration.validate.validation_result`: computed, or reused unless `force`, under
    reports/<profile>/validate-testbed/) as tables and a figure; simulated logs: their summary."""
    if params.source == "legacy":
        run = validation_result(params, force=force, out_dir=out_dir, in_sample=in_sample)
        res, fit_d = run.validation, run.calibration
        tables = {"thresholds": thresholds_frame(res),
                  "cells_out_of_sample": cells_frame(res["out_of_sample"]) if res.get("out_of_sample") else pd.DataFrame(),
                  "calibration_service": _fit_table(fit_d, "service"),
                  "calibration_network": _fit_table(fit_d, "network"),
                  "model_client": pd.DataFrame([{k: v for k, v in fit_d["model"]["client"].items() if k != "bins"}]),
                  "folds": pd.DataFrame([{"held_out": f["held_out_session"], "fitted_on": ", ".join(f["fitted_on"]),
                                          "rtt_ms": f["fit"]["rtt_ms"], "upload_mbps": f["fit"]["upload_mbps"],
                                          "inflation_ms_per_rps": f["fit"]["inflation_ms_per_rps"]}
                                         for f in res["folds"]])}
        text = (f"{res['method']}. Out of sample: "
                + ", ".join(f"{k} {'PASS' if v['pass'] else 'FAIL'}" for k, v in res["out_of_sample"]["thresholds"].items()
                            if isinstance(v, dict))
                if res.get("out_of_sample") else res["method"])
        return ReportSection("real-logs", text, tables, validation_figure(res), res)
    if params.source == "simulator":
        raw = params.path("raw_dir")
        if not raw.is_dir() or not any(raw.glob("*.jsonl")):
            return ReportSection("simulator", f"no simulated logs under {raw} yet (python -m hybridopt simulate "
                                              f"--profile {params.profile})", {})
        df = ingest(params, raw).requests
        tb = params.testbed
        summary = simulator_summary(df)
        order = {w: tw.code for w, tw in params.time_windows.items()}
        summary = summary.sort_values(["time_window", "platform"],
                                      key=lambda c: c.astype(str).map(order) if c.name == "time_window" else c.astype(str))
        return ReportSection("simulator", f"{len(df):,} simulated lines; client preset {tb.client_preset}, "
                                          f"service preset {tb.service_preset}",
                             {"simulator_summary": summary.reset_index(drop=True)})
    return ReportSection("none", f"profile {params.profile} has source {params.source}: no platform-model section", {})
