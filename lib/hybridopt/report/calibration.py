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

from hybridopt.calibration import Calibration, FitOptions, LinearFit
from hybridopt.calibration.validate import ValidationOptions, validation_result
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
#: The comparisons of a validation result, in the order they are shown, with their labels.
COMPARISONS = (("conditioned", "network-conditioned (of record)"), ("blind", "blind (typical network)"),
               ("blind_all_cells", "blind, every cell"), ("in_sample", "in sample (conditioned)"))


def _label(result: Mapping[str, Any], key: str) -> str:
    label = dict(COMPARISONS)[key]
    if key in ("conditioned", "blind", "blind_all_cells") and result.get("design") == "in-sample self-check":
        label += ", in sample"
    elif key in ("conditioned", "blind", "blind_all_cells") and result.get("design") == "leave-one-session-out":
        label += ", held out"
    return label


def cells_frame(part: Mapping[str, Any]) -> pd.DataFrame:
    """The (run, workload, platform) cells of one comparison as a table: counts, real and model
    statistic, the real bootstrap CI, the model's range over seeds, whether they overlap, pass."""
    rows = []
    for c in part["cells"]:
        row = {k: c.get(k) for k in ("run_id", "workload_type", "platform", "judged", "n_real", "n_sim")}
        for st in ("median", "p95"):
            ci, sr = c.get(f"{st}_real_ci_ms") or [None, None], c.get(f"{st}_sim_seed_range_ms") or [None, None]
            row.update({f"{st}_real_ms": c[f"{st}_real_ms"], f"{st}_real_ci": _fmt_range(ci),
                        f"{st}_sim_ms": c[f"{st}_sim_ms"], f"{st}_sim_seeds": _fmt_range(sr),
                        f"{st}_rel_err": c[f"{st}_rel_err"], f"{st}_ci_overlap": c.get(f"{st}_ci_overlap"),
                        f"pass_{st}": c[f"pass_{st}"]})
        row["note"] = c.get("note", "")
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt_range(v: Any) -> str:
    try:
        lo, hi = float(v[0]), float(v[1])
    except (TypeError, ValueError, IndexError):
        return "-"
    return "-" if not (np.isfinite(lo) and np.isfinite(hi)) else f"{lo:.0f}-{hi:.0f}"


def thresholds_frame(result: Mapping[str, Any]) -> pd.DataFrame:
    """One row per (comparison, check): cells, reproduced, share, goal, pass (share meets the goal),
    every cell, and how many cells' real CI overlaps the model's spread over seeds."""
    rows = []
    for key, _ in COMPARISONS:
        part = result.get(key)
        if not part:
            continue
        for name, t in part["thresholds"].items():
            if isinstance(t, dict):
                rows.append({"comparison": _label(result, key), "check": name, "cells": t["cells"],
                             "reproduced": t.get("passed", t.get("agree")), "share": t["share"],
                             "goal": t.get("goal"), "pass": t["pass"], "every_cell": t.get("every_cell"),
                             "ci_overlap": t.get("ci_overlap"), "rule": t["rule"]})
    return pd.DataFrame(rows)


def failures_frame(part: Mapping[str, Any]) -> pd.DataFrame:
    """The judged cells that fail their median or p95, each with its most likely cause (the part of the
    request with the largest residual, model minus real) and every part's residual in ms."""
    rows = []
    for f in part.get("failures", []):
        res = f.get("residual_ms", {})
        rows.append({"run_id": f["run_id"], "workload_type": f["workload_type"], "platform": f["platform"],
                     "failed": ", ".join(f["failed"]), "cause": f["cause"], "direction": f.get("direction"),
                     **{f"{k}_residual_ms": v for k, v in res.items()}})
    return pd.DataFrame(rows)


def folds_frame(result: Mapping[str, Any]) -> pd.DataFrame:
    """One row per judged session: what it was fitted on and the client network of each replay."""
    rows = []
    for f in result.get("folds", []):
        pr = f.get("probe") or {}
        rows.append({"judged": f["judged_session"], "fitted_on": ", ".join(f.get("fitted_on", [])),
                     "blind_rtt_ms": f["blind_rtt_ms"], "probe_rtt_ms": pr.get("rtt_ms"),
                     "probe_rtt_se_ms": pr.get("rtt_se_ms"), "probe_jitter_sigma": pr.get("rtt_jitter_sigma"),
                     "probe_rows": pr.get("n_rows"), "probe_from": f.get("probe_rows"),
                     "upload_mbps": f["fit"]["upload_mbps"], "uplink_capacity_mbps": f["fit"].get("uplink_capacity_mbps"),
                     "inflation_ms_per_rps": f["fit"]["inflation_ms_per_rps"], "arrivals": f["arrivals"]})
    return pd.DataFrame(rows)


def _cell_colours(cells: pd.DataFrame) -> dict[tuple[str, str], Any]:
    """One colour per (workload, platform): a workload's two platforms share a hue (dark Lambda, light ECS)."""
    pal = plt.get_cmap("tab20").colors
    works = sorted(cells["workload_type"].astype(str).unique())
    return {(w, p): pal[(2 * i + j) % 20] for i, w in enumerate(works) for j, p in enumerate(PLATFORMS)}


def validation_figure(result: Mapping[str, Any]) -> plt.Figure:
    """Model against real median and p95 per judged cell (log-log, the tolerance band shaded): the real
    bootstrap CI as the horizontal bar, the model's range over seeds as the vertical one, one colour per
    (workload, platform), marker by platform, failing cells outlined in black, cells where the model logged
    no success as crosses on the bottom edge; one row of panels per
    comparison (network-conditioned, blind, in sample). The figure is closed: display it, or save it."""
    parts = [(k, result[k]) for k, _ in COMPARISONS if k != "blind_all_cells" and result.get(k)]
    fig, axes = plt.subplots(max(1, len(parts)), 2, figsize=(12, 5 * max(1, len(parts))), squeeze=False)
    tol = result["options"]["tolerance"]
    for row, (key, part) in enumerate(parts):
        cells = pd.DataFrame(part["cells"])
        cells = cells[cells["judged"]] if len(cells) else cells
        colours = _cell_colours(cells) if len(cells) else {}
        for col, stat in enumerate(("median", "p95")):
            ax = axes[row][col]
            d = cells.dropna(subset=[f"{stat}_real_ms", f"{stat}_sim_ms"]) if len(cells) else cells
            for c in d.itertuples():
                rv, sv = getattr(c, f"{stat}_real_ms"), getattr(c, f"{stat}_sim_ms")
                ci = getattr(c, f"{stat}_real_ci_ms", None) or [rv, rv]
                sr = getattr(c, f"{stat}_sim_seed_range_ms", None) or [sv, sv]
                ok = bool(getattr(c, f"pass_{stat}"))
                colour = colours[(str(c.workload_type), str(c.platform))]
                ax.errorbar(rv, sv, xerr=[[max(0.0, rv - ci[0])], [max(0.0, ci[1] - rv)]],
                            yerr=[[max(0.0, sv - sr[0])], [max(0.0, sr[1] - sv)]], fmt="o" if c.platform == "lambda" else "s",
                            color=colour, ms=7, mec="black" if not ok else colour, mew=1.5 if not ok else 0.5,
                            elinewidth=1, capsize=2)
            vals = d[[f"{stat}_real_ms", f"{stat}_sim_ms"]].to_numpy(dtype=float) if len(d) else np.array([[100.0, 20000.0]])
            lo, hi = max(50.0, float(np.nanmin(vals)) * 0.7), float(np.nanmax(vals)) * 1.4
            lost = cells[cells[f"{stat}_sim_ms"].isna() & cells[f"{stat}_real_ms"].notna()] if len(cells) else cells
            for c in lost.itertuples():               # the model logged no success: drawn on the bottom edge
                ax.plot(getattr(c, f"{stat}_real_ms"), lo * 1.05, marker="x", ls="", ms=9, mew=2,
                        color=colours[(str(c.workload_type), str(c.platform))])
            xs = np.array([lo, hi])
            ax.plot(xs, xs, color="black", lw=1)
            ax.fill_between(xs, xs * (1 - tol), xs * (1 + tol), color="grey", alpha=0.2)
            ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel=f"real {stat} total_ms (95 % CI)",
                   ylabel=f"model {stat} total_ms (range over seeds)")
            t = part["thresholds"][f"latency_{stat}"]
            ax.set_title(f"{_label(result, key)}: {stat} ({t['passed']}/{t['cells']} cells within {tol:.0%})",
                         fontsize=10)
        handles = [plt.Line2D([], [], color=colours[k], marker="o" if k[1] == "lambda" else "s", ls="",
                              label=f"{k[0]} / {k[1]}") for k in sorted(colours)]
        handles.append(plt.Line2D([], [], color="white", marker="o", mec="black", mew=1.5, ls="", label="fails"))
        handles.append(plt.Line2D([], [], color="grey", marker="x", mew=2, ls="", label="model logged no success"))
        axes[row][0].legend(handles=handles, fontsize=7, loc="upper left")
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
                   in_sample: bool = True, opts: ValidationOptions = ValidationOptions(),
                   fit_opts: FitOptions = FitOptions()) -> ReportSection:
    """The platform-model section of the collection report. Real logs: the validation result
    (`calibration.validate.validation_result`: computed, or reused unless `force`, under
    reports/<profile>/validate-testbed/) as tables and a figure; simulated logs: their summary."""
    if params.source == "legacy":
        run = validation_result(params, force=force, out_dir=out_dir, in_sample=in_sample, opts=opts, fit_opts=fit_opts)
        res, fit_d = run.validation, run.calibration
        rec = res.get(res.get("record", "conditioned"))
        tables = {"thresholds": thresholds_frame(res),
                  "cells_conditioned": cells_frame(rec) if rec else pd.DataFrame(),
                  "failing_cells": failures_frame(rec) if rec else pd.DataFrame(),
                  "folds": folds_frame(res),
                  "calibration_service": _fit_table(fit_d, "service"),
                  "calibration_network": _fit_table(fit_d, "network"),
                  "model_client": pd.DataFrame([{k: v for k, v in fit_d["model"]["client"].items() if k != "bins"}])}
        text = res["method"] + "."
        if rec:
            text += " Network-conditioned (of record): " + ", ".join(
                f"{k} {v['passed']}/{v['cells']} {'PASS' if v['pass'] else 'FAIL'}"
                for k, v in rec["thresholds"].items() if isinstance(v, dict))
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
