"""The crossover map: per workload and Fargate capacity, over arrival rate x payload size, which policy
(always-Lambda, always-ECS, the hybrid) minimises the objective (params `decision.objective`, in
USD per 1,000 requests) in closed-loop simulator runs, by how much, with the Lambda = ECS break-even
curve; the real logs' points overlaid, marked by whether the simulator reproduced them. Also the
one-line answer per workload. Computed in `hybridopt.closedloop` (grid, sweep); arranged and drawn here.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from hybridopt.closedloop.grid import CrossoverRun, crossover_results, load_crossover, out_dir
from hybridopt.data.contract import PLATFORMS
from hybridopt.params import Params, load_params
from hybridopt.params.crossover import parse_capacity
from hybridopt.report.common import PLATFORM_COLOURS
from hybridopt.report.export import Exporter

if TYPE_CHECKING:
    from hybridopt.report.findings import Finding

POLICY_COLOURS = {"always_lambda": PLATFORM_COLOURS["lambda"], "always_ecs": PLATFORM_COLOURS["ecs"],
                  "hybrid": "#2e9e4f"}
POLICY_LABELS = {"always_lambda": "always-Lambda", "always_ecs": "always-ECS", "hybrid": "hybrid",
                 "none": "no policy meets the SLO"}
NONE_COLOUR = "#444444"
CELL_KEYS = ["workload_type", "capacity", "rate_rps", "payload_size_kb"]
#: A winner is clear when its margin over the runner-up exceeds this many standard errors of the
#: per-seed differences (same seed = same arrivals for every policy).
CLEAR_SE = 2.0


# ------------------------------------------------------------------------------------------ tables
def winners(frame: pd.DataFrame, slo_p95_ms: Mapping[str, float] | None = None,
            max_failure: float | None = None) -> pd.DataFrame:
    """One row per (workload, capacity, rate, payload): each policy's mean score over its ok seeds
    (`objective_<policy>`), the winner (lowest), the runner-up, the margin in USD per 1k requests and
    relative to the runner-up, the margin's standard error over seeds and whether it is clear, the
    Lambda minus ECS score (the break-even sign), and the tasks that did not finish ok.

    Without `slo_p95_ms` the score is the weighted objective (`objective_usd_per_1k`). With it (the
    `slo_cheapest` objective) the score is the bill, and only a policy whose mean p95 meets the
    workload's SLO and whose mean failure rate is at most `max_failure` may win; a cell where none does
    has winner `none` and names the least bad policy (fewest failures, then lowest p95)."""
    ok = frame[frame["status"] == "ok"]
    policies = list(dict.fromkeys(frame["policy"]))
    slo = slo_p95_ms is not None
    per_seed = ok.pivot_table(index=CELL_KEYS + ["seed"], columns="policy",
                              values="bill_usd_per_1k" if slo else "objective_usd_per_1k",
                              aggfunc="mean", observed=True)
    quality = ok.groupby(CELL_KEYS + ["policy"], observed=True)[["p95_ms", "failure_rate"]].mean()
    bad = frame.assign(bad=frame["status"] != "ok").groupby(CELL_KEYS, observed=True)["bad"].sum()
    rows = []
    for key, n_bad in bad.items():
        row: dict[str, object] = dict(zip(CELL_KEYS, key))
        row["not_ok_tasks"] = int(n_bad)
        seeds = per_seed.xs(key, level=CELL_KEYS, drop_level=True) if key in per_seed.index.droplevel("seed") else None
        means = {p: float(seeds[p].mean()) if seeds is not None and p in seeds and seeds[p].notna().any() else math.nan
                 for p in policies}
        for p in policies:
            row[f"objective_{p}"] = means[p]
        complete = all(not math.isnan(m) for m in means.values())
        eligible = dict(means)
        if slo and complete:
            limit = float(slo_p95_ms[str(key[0])]) if str(key[0]) in slo_p95_ms else math.inf
            q = {p: quality.loc[tuple(key) + (p,)] for p in policies}
            eligible = {p: m for p, m in means.items()
                        if q[p]["p95_ms"] <= limit and q[p]["failure_rate"] <= (max_failure or 0.0)}
            row["feasible"] = ", ".join(sorted(eligible)) or "none"
            row["least_bad"] = min(policies, key=lambda p: (q[p]["failure_rate"], q[p]["p95_ms"]))
        ranked = sorted((m, p) for p, m in eligible.items() if not math.isnan(m))
        row["winner"] = (ranked[0][1] if ranked else "none") if complete else ""
        row["runner_up"] = ranked[1][1] if complete and len(ranked) > 1 else ""
        margin = ranked[1][0] - ranked[0][0] if complete and len(ranked) > 1 else math.nan
        row["margin_usd_per_1k"] = margin
        row["margin_rel"] = margin / ranked[1][0] if complete and len(ranked) > 1 and ranked[1][0] > 0 else math.nan
        se = math.nan
        if complete and len(ranked) > 1 and seeds is not None:
            diff = (seeds[ranked[1][1]] - seeds[ranked[0][1]]).dropna()
            if len(diff) >= 2:
                se = float(diff.std(ddof=1) / math.sqrt(len(diff)))
        row["margin_se"] = se
        row["clear"] = bool(margin > CLEAR_SE * se) if not math.isnan(se) else None
        if "always_lambda" in means and "always_ecs" in means:
            row["lambda_minus_ecs_usd_per_1k"] = means["always_lambda"] - means["always_ecs"]
        rows.append(row)
    out = pd.DataFrame(rows)
    return out.sort_values(CELL_KEYS, key=lambda c: c.map(_capacity_order) if c.name == "capacity" else c,
                           ignore_index=True) if len(out) else out


def _capacity_order(label: object) -> float:
    t, w = parse_capacity(str(label))
    return t * w + t / 1000


def winners_for(params: Params, frame: pd.DataFrame) -> pd.DataFrame:
    """`winners` by the profile's default objective (params decision.objective)."""
    obj = params.decision.objective
    if obj.kind == "slo_cheapest":
        return winners(frame, obj.slo_p95_ms, obj.max_failure)
    return winners(frame)


def scored_by(params: Params) -> str:
    """What a cell's winner minimises, in words."""
    obj = params.decision.objective
    if obj.kind == "slo_cheapest":
        return (f"the default objective (slo_cheapest): the lowest bill among the policies whose p95 meets the "
                f"workload's SLO and whose failure rate is at most {obj.max_failure:.0%}")
    return "the default objective (weighted): bill + value of time x latency + failure penalty"


def winner_counts(win: pd.DataFrame) -> pd.DataFrame:
    """Cells won per (workload, capacity) and policy, and the cells without a winner (a task not ok)."""
    d = win.assign(winner=win["winner"].replace("", "no result"))
    out = d.groupby(["workload_type", "capacity"], observed=True)["winner"].value_counts().unstack(fill_value=0)
    return out.reset_index()


def break_even_rate(win: pd.DataFrame, workload: str, capacity: str) -> float | None:
    """Median over payload sizes of the arrival rate at which always-Lambda and always-ECS cost the
    same objective (log-interpolated between grid rates at the first sign change); None when they
    never cross on the grid."""
    d = win[(win["workload_type"] == workload) & (win["capacity"] == capacity)]
    if "lambda_minus_ecs_usd_per_1k" not in d:
        return None
    rates = []
    for _, g in d.groupby("payload_size_kb"):
        g = g.sort_values("rate_rps").dropna(subset=["lambda_minus_ecs_usd_per_1k"])
        r, v = g["rate_rps"].to_numpy(float), g["lambda_minus_ecs_usd_per_1k"].to_numpy(float)
        for i in range(len(v) - 1):
            if v[i] == 0:
                rates.append(r[i])
                break
            if v[i] * v[i + 1] < 0:
                f = v[i] / (v[i] - v[i + 1])
                rates.append(float(10 ** (math.log10(r[i]) + f * (math.log10(r[i + 1]) - math.log10(r[i])))))
                break
    return float(np.median(rates)) if rates else None


def answers(win: pd.DataFrame) -> dict[str, str]:
    """One line per workload: per capacity, the policy that wins most cells, the counts, and where
    Lambda and ECS break even."""
    out = {}
    for w, d in win.groupby("workload_type", sort=False):
        parts = []
        for cap in sorted(d["capacity"].unique(), key=_capacity_order):
            c = d[d["capacity"] == cap]
            counts = c["winner"][c["winner"] != ""].value_counts()
            n = len(c)
            if counts.empty:
                parts.append(f"at {cap} no cell has every policy's result")
                continue
            lead = counts.index[0]
            share = ", ".join(f"{POLICY_LABELS.get(p, p)} {k}" for p, k in counts.items())
            be = break_even_rate(win, str(w), str(cap))
            where = f", Lambda = ECS near {be:.3g} rps" if be is not None else ""
            head = (f"no policy meets the SLO in {counts.iloc[0]} of {n} cells" if lead == "none" else
                    f"{POLICY_LABELS.get(lead, lead)} wins {counts.iloc[0]} of {n} cells")
            parts.append(f"at {cap} {head} ({share}{where})")
        out[str(w)] = f"{w}: " + "; ".join(parts)
    return out


def answers_markdown(lines: Mapping[str, str]) -> str:
    """The one-line answers per workload as a markdown list."""
    return "\n".join(f"- {line}" for line in lines.values())


def crossover_answers(params: Params) -> tuple[dict[str, str], str]:
    """The one-line answer per workload from the crossover results on disk (nothing is run), and the
    file they were read from; no answers (and what to run) when the profile's grid has no complete
    results yet."""
    run = load_crossover(params)
    where = str(out_dir(params) / "results.parquet")
    if run is None:
        return {}, f"{where}: no complete crossover results for these params (python -m hybridopt crossover --profile {params.profile})"
    return answers(winners_for(params, run.frame)), where


CROSSOVER_TITLE = "When Lambda, ECS or the hybrid wins (closed loop, crossover map)"


def crossover_finding(params: Params) -> "Finding":
    """The findings panel's line per workload from the crossover results on disk; when there are none,
    what writes them."""
    from hybridopt.report.findings import Finding

    lines, where = crossover_answers(params)
    if not lines:
        text = (f"Not computed yet: 09_closed_loop or `python -m hybridopt crossover --profile {params.profile}` "
                f"writes {out_dir(params) / 'results.parquet'}.")
        return Finding(CROSSOVER_TITLE, text, f"<p>{html.escape(text)}</p>", str(out_dir(params) / "results.parquet"))
    head = ("Per workload, the policy that wins by " + scored_by(params) + ", in closed-loop simulator runs over "
            "arrival rate x payload size, at each Fargate capacity (tasks x workers):")
    text = head + " " + " ".join(f"{line}." for line in lines.values())
    body = f"<p>{html.escape(head)}</p><ul>" + "".join(f"<li>{html.escape(v)}</li>" for v in lines.values()) + "</ul>"
    return Finding(CROSSOVER_TITLE, text, body, where)


# ------------------------------------------------------------------------------ real-log points
POINT_COLUMNS = ["workload_type", "run_id", "rate_rps", "payload_size_kb", "capacity", "reproduced"]


def real_points(params: Params) -> tuple[pd.DataFrame, str]:
    """The real logs' points of the validation profile (`closed_loop.crossover.validation_profile`)
    from its validate-testbed result (`points_from_validation`), and a note saying where they came
    from or why there are none."""
    name = params.closed_loop.crossover.validation_profile
    empty = pd.DataFrame(columns=POINT_COLUMNS)
    if name is None:
        return empty, "no validation profile set (closed_loop.crossover.validation_profile): no real-log points"
    from hybridopt.calibration.validate import VALIDATION_DIR, VALIDATION_FILE

    vparams = load_params(name)
    path = vparams.path("reports_dir") / VALIDATION_DIR / VALIDATION_FILE
    try:
        res = json.loads(path.read_text())
    except FileNotFoundError:
        return empty, (f"no real-log points: {path} does not exist (python -m hybridopt validate-testbed "
                       f"--profile {name})")
    except (OSError, ValueError) as exc:
        return empty, f"no real-log points: {path} cannot be read ({exc})"
    pts = points_from_validation(res, vparams)
    if pts.empty:
        return pts, f"no real-log points: {path} holds no judged validation cells of known runs"
    by_cell = pts.groupby(["run_id", "workload_type"])["reproduced"].first()
    return pts, (f"real-log points: {name}'s validation ({res.get('method', '')}; {path}): {int(by_cell.sum())} of "
                 f"{len(by_cell)} (run, workload) cells reproduced (median and p95 within tolerance on both platforms)")


def points_from_validation(res: dict[str, object], vparams: Params) -> pd.DataFrame:
    """One point per (run, workload, payload size) of a validation result's cells of record: the arrival
    rate each platform's service of that workload received under the collection design (the mean
    scheduled rate of the run's load pattern shared by its scenarios: workload x platform when the
    logs are unpaired, as the legacy layout's; workload when paired), each payload size of the
    workload in `vparams`, the capacity the real service ran at (min_tasks x worker slots), and
    reproduced = every judged cell of that run and workload (both platforms) passed its median and
    p95 checks."""
    scenarios = len(vparams.workloads) * (len(PLATFORMS) if vparams.source == "legacy" else 1)
    part = res.get(str(res.get("record") or "conditioned")) or res.get("out_of_sample")
    cells = pd.DataFrame(part.get("cells", []) if isinstance(part, dict) else [])
    if cells.empty:
        return pd.DataFrame(columns=POINT_COLUMNS)
    cells = cells[cells["judged"].astype(bool)]
    slots = vparams.testbed.fargate.worker_slots_per_task.value
    rows = []
    for (run_id, w), g in cells.groupby(["run_id", "workload_type"]):
        pattern = next((p for p in vparams.load_patterns if str(run_id).endswith(p)), None)
        if pattern is None or w not in vparams.workloads:
            continue
        phases = vparams.load_patterns[pattern].phases
        rate = sum(ph.duration_s * (ph.arrival_rate_rps + (ph.arrival_rate_rps if ph.ramp_to_rps is None
                                                           else ph.ramp_to_rps)) / 2 for ph in phases) \
            / sum(ph.duration_s for ph in phases) / scenarios
        ok = bool((g["pass_median"].astype(bool) & g["pass_p95"].astype(bool)).all())
        cap = f"{vparams.workloads[w].fargate.min_tasks}x{slots}"
        rows += [{"workload_type": w, "run_id": run_id, "rate_rps": rate, "payload_size_kb": float(size),
                  "capacity": cap, "reproduced": ok} for size in vparams.workloads[w].payload_sizes_kb]
    return pd.DataFrame(rows, columns=POINT_COLUMNS)


# ------------------------------------------------------------------------------------------ figure
def _index(values: np.ndarray, grid: list[float]) -> np.ndarray:
    """Positions on a categorical axis of log-spaced grid values (log-interpolated between them)."""
    return np.interp(np.log10(values), np.log10(grid), np.arange(len(grid)))


def _edge(values: np.ndarray, grid: list[float]) -> np.ndarray:
    """`_index`, with values beyond the grid drawn on the panel's edge (half a cell out)."""
    lo, hi = np.log10(grid[0]), np.log10(grid[-1])
    inside = _index(np.clip(values, grid[0], grid[-1]), grid)
    return np.where(np.log10(values) < lo, -0.45, np.where(np.log10(values) > hi, len(grid) - 0.55, inside))


def crossover_figure(win: pd.DataFrame, points: pd.DataFrame | None = None) -> plt.Figure:
    """Rows: workloads; columns: capacities. Each panel: arrival rate (x) by payload size (y), the
    winning policy's colour per cell, its relative margin over the runner-up printed in it, hatched
    where the margin is within CLEAR_SE standard errors over seeds, grey with a cross where a task
    did not finish ok; the Lambda = ECS break-even curve in black; real-log points as circles
    (reproduced) or crosses (not reproduced) on the panel of the capacity they ran at (on the panel's
    edge when they lie beyond the grid)."""
    works = list(dict.fromkeys(win["workload_type"]))
    caps = sorted(win["capacity"].unique(), key=_capacity_order)
    pols = [p for p in POLICY_COLOURS if f"objective_{p}" in win.columns]
    colours = [POLICY_COLOURS[p] for p in pols]
    if (win["winner"] == "none").any():
        pols, colours = pols + ["none"], colours + [NONE_COLOUR]
    cmap = ListedColormap(colours + ["#cccccc"])
    fig, axes = plt.subplots(len(works), len(caps), figsize=(3.6 * len(caps) + 0.6, 3.2 * len(works) + 0.9),
                             squeeze=False)
    for i, w in enumerate(works):
        for j, cap in enumerate(caps):
            ax = axes[i][j]
            d = win[(win["workload_type"] == w) & (win["capacity"] == cap)]
            rates, sizes = sorted(d["rate_rps"].unique()), sorted(d["payload_size_kb"].unique())
            code = np.full((len(sizes), len(rates)), len(pols), dtype=float)
            diff = np.full((len(sizes), len(rates)), np.nan)
            for r in d.itertuples():
                y, x = sizes.index(r.payload_size_kb), rates.index(r.rate_rps)
                if r.winner:
                    code[y, x] = pols.index(r.winner)
                    ax.text(x, y, f"{r.margin_rel:.0%}" if np.isfinite(r.margin_rel) else "", ha="center",
                            va="center", fontsize=6, color="white")
                    if r.clear is False:
                        ax.add_patch(plt.Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, hatch="///",
                                                   edgecolor="white", lw=0))
                else:
                    ax.plot(x, y, marker="x", color="#555555", ms=6)
                diff[y, x] = getattr(r, "lambda_minus_ecs_usd_per_1k", np.nan)
            ax.imshow(code, origin="lower", cmap=cmap, vmin=-0.5, vmax=len(pols) + 0.5, aspect="auto",
                      interpolation="nearest")
            finite = diff[np.isfinite(diff)]
            if len(rates) > 1 and len(sizes) > 1 and len(finite) and finite.min() <= 0 <= finite.max() \
                    and finite.min() < finite.max():
                ax.contour(np.arange(len(rates)), np.arange(len(sizes)), np.ma.masked_invalid(diff), levels=[0.0],
                           colors="black", linewidths=1.6)
            if points is not None and len(points):
                p = points[(points["workload_type"] == w) & (points["capacity"] == cap)]
                for rep, g in p.groupby("reproduced"):      # beyond the grid: on its edge
                    ax.scatter(_edge(g["rate_rps"].to_numpy(float), rates), _edge(g["payload_size_kb"].to_numpy(float), sizes),
                               marker="o" if rep else "X", s=40, facecolor="white" if rep else "black",
                               edgecolor="black", linewidths=1.0, zorder=5)
            ax.set_xticks(range(len(rates)), [f"{r:g}" for r in rates], fontsize=7)
            ax.set_yticks(range(len(sizes)), [f"{s:g}" for s in sizes], fontsize=7)
            t, k = parse_capacity(str(cap))
            ax.set_title(f"{w}\n{cap}: {t} task{'s' if t > 1 else ''} x {k} workers", fontsize=8)
            if i == len(works) - 1:
                ax.set_xlabel("arrival rate (requests/s)", fontsize=8)
            if j == 0:
                ax.set_ylabel("payload (KB)", fontsize=8)
    handles = [Patch(facecolor=c, label=POLICY_LABELS[p] if p == "none" else f"{POLICY_LABELS[p]} minimises the objective")
               for p, c in zip(pols, colours)]
    handles += [Patch(facecolor="#cccccc", label="a task did not finish ok"),
                Patch(facecolor="#999999", hatch="///", edgecolor="white", label=f"margin within {CLEAR_SE:g} SE over seeds"),
                plt.Line2D([], [], color="black", lw=1.6, label="always-Lambda = always-ECS"),
                plt.Line2D([], [], marker="o", ls="", mfc="white", mec="black", label="real logs, reproduced"),
                plt.Line2D([], [], marker="X", ls="", mfc="black", mec="black", label="real logs, not reproduced")]
    ncol = 2 if len(caps) == 1 else 3
    legend_in = 0.22 * math.ceil(len(handles) / ncol) + 0.2
    fig.set_figheight(fig.get_figheight() - 0.9 + legend_in)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, legend_in / fig.get_figheight(), 1, 1))
    plt.close(fig)
    return fig


# ---------------------------------------------------------------------------- the notebook section
@dataclass
class CrossoverSection:
    """What a notebook shows of the crossover sweep: a text (grid, wall time, cache), tables, the
    map, and the one-line answer per workload."""
    text: str
    tables: dict[str, pd.DataFrame]
    figure: plt.Figure | None
    answers: dict[str, str] = field(default_factory=dict)
    summary: dict[str, object] = field(default_factory=dict)


def crossover_section(params: Params, force: bool = False, run: CrossoverRun | None = None,
                      exporter: Exporter | None = None, **sweep: object) -> CrossoverSection:
    """The crossover section for a profile: the sweep's results (reused from disk when complete for
    these params, else computed on a LocalCluster, cached tasks reused; `force` recomputes every task),
    the winners table, the counts, the map and the answers. `run`: results already at hand; `exporter`:
    also export the map (SVG, PDF) and the tables (LaTeX, CSV) into its stage; `sweep`: passed to
    `closedloop.grid.run_crossover` (scheduler, n_workers, progress, client)."""
    run = run or crossover_results(params, force=force, **sweep)
    frame = run.frame
    s = run.summary
    counts = s.get("status_counts", {})
    text = (f"Crossover grid of profile {params.profile}: {s['tasks']} closed-loop runs "
            f"({frame['workload_type'].nunique()} workloads, {frame['rate_rps'].nunique()} rates, "
            f"{frame['payload_size_kb'].nunique()} payload sizes, {frame['capacity'].nunique()} capacities, "
            f"{frame['policy'].nunique()} policies, {frame['seed'].nunique()} seeds, "
            f"{params.closed_loop.crossover.duration_s:g} virtual s each); "
            + ("results reused from disk" if run.reused else
               f"all from the cache ({s['wall_s']:.1f} s wall)" if not s["computed"] else
               f"{s['cached']} from the cache, {s['computed']} computed on {s['workers']} workers in "
               f"{s['wall_s']:.1f} s wall")
            + f"; ok {counts.get('ok', 0)}, failed {counts.get('failed', 0)}, over budget {counts.get('over_budget', 0)}.")
    win = winners_for(params, frame)
    pts, note = real_points(params)
    text += " Each cell's winner: " + scored_by(params) + ". " + note + "."
    fig = crossover_figure(win, pts)
    bad = frame[frame["status"] != "ok"][["workload_type", "rate_rps", "payload_size_kb", "capacity", "policy", "seed",
                                         "status", "error", "wall_s"]]
    tables = {"winners": win, "winner_counts": winner_counts(win), "not_ok_tasks": bad.reset_index(drop=True),
              "real_points": pts}
    sec = CrossoverSection(text, tables, fig, answers(win), s)
    if exporter is not None:
        exporter.figure("crossover_map", fig, "Which policy minimises the objective per arrival rate and payload size, "
                        "per workload and Fargate capacity (closed loop)")
        exporter.table("crossover_winner_counts", sec.tables["winner_counts"], "Cells won per policy")
        exporter.table("crossover_winners", win, "Winning policy and margin per crossover cell")
    return sec


def save_figure(section: CrossoverSection, directory: Path) -> list[Path]:
    """The map as crossover_map.svg and .pdf in `directory` (the command's output)."""
    files = []
    if section.figure is None:
        return files
    import matplotlib as mpl

    with mpl.rc_context({"pdf.fonttype": 42, "svg.hashsalt": "crossover_map"}):
        for ext in ("svg", "pdf"):
            p = Path(directory) / f"crossover_map.{ext}"
            section.figure.savefig(p, format=ext, bbox_inches="tight",
                                   metadata={"Date": None} if ext == "svg" else {"CreationDate": None})
            files.append(p)
    return files
