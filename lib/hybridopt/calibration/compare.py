"""Simulated against real rows, cell by cell, with the noise on both sides.

`compare(real, sims, opts)` takes the logged rows of the judged sessions and the model's replays of
them (one frame per seed) and judges, per (run, workload, platform) cell, whether the model
reproduces the median and the p95 of `total_ms` (within `tolerance`, on the successes), which platform
is faster per (run, workload, payload size), and the Lambda cold-start rate per (run, workload).
Beside each cell it gives the sampling noise: a bootstrap CI of the real median and p95, and the
spread of the model over the seeds (min-max of the per-seed statistic), and whether the two overlap.
The model's statistic of record is that of the seeds pooled.

`thresholds` turns cells into checks: a cell is reproduced when its ratio is within the tolerance; a
check passes when the share of reproduced cells meets its goal (ValidationOptions). `failure_causes`
names, for each failing cell, the part of the request whose residual is largest (network, queueing,
upload or handler time)."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hybridopt.data.contract import PLATFORMS

LIGHT = "lightweight_api"
CAUSES = ("network", "queueing", "upload", "handler time")


@dataclass(frozen=True)
class ValidationOptions:
    """Thresholds and goals of the validation, the replay seeds and the bootstrap size."""
    tolerance: float = 0.25                # |sim / real - 1| for a cell's median or p95 to count as reproduced
    median_share_min: float = 0.8          # goal: share of judged cells whose median is reproduced
    p95_share_min: float = 0.6             # goal: share of judged cells whose p95 is reproduced
    faster_agreement_min: float = 0.8      # goal: share of (run, workload, payload) cells naming the same faster platform
    cold_orders: float = 1.0               # |log10(sim / real)| allowed for cold-start rates (every cell)
    min_cell_rows: int = 20                # a (run, workload, platform) cell is judged with this many successes
    min_faster_rows: int = 10              # per platform in a (run, workload, payload) cell
    seed: int = 7
    seeds: int = 3                         # replays per session (the model's spread over seeds)
    bootstrap_resamples: int = 1000        # bootstrap CI of the real median and p95
    ci_level: float = 0.95


def successes(df: pd.DataFrame) -> pd.DataFrame:
    """Rows that are a success on a known platform with a total time."""
    ok = df["error"].isna() & df["platform"].isin(PLATFORMS) & df["total_ms"].notna()
    if "http_status" in df:
        st = pd.to_numeric(df["http_status"], errors="coerce")
        ok &= st.between(200, 299)
    return df[ok]


def _q(v: np.ndarray, q: float) -> float:
    return float(np.quantile(v, q)) if len(v) else float("nan")


def bootstrap_ci(v: np.ndarray, q: float, resamples: int, level: float, rng: np.random.Generator
                 ) -> tuple[float, float]:
    """Percentile bootstrap CI of the q-quantile of v (NaNs when v is empty)."""
    if len(v) == 0:
        return float("nan"), float("nan")
    stats = np.empty(resamples)
    step = max(1, 2_000_000 // max(1, len(v)))          # resamples per block: bounded memory
    for i in range(0, resamples, step):
        k = min(step, resamples - i)
        stats[i:i + k] = np.quantile(v[rng.integers(0, len(v), (k, len(v)))], q, axis=1)
    a = (1.0 - level) / 2.0
    return float(np.quantile(stats, a)), float(np.quantile(stats, 1.0 - a))


def _overlap(a: Sequence[float], b: Sequence[float]) -> bool | None:
    if any(not math.isfinite(x) for x in (*a, *b)):
        return None
    return bool(max(a[0], b[0]) <= min(a[1], b[1]))


def compare(real: pd.DataFrame, sims: Sequence[pd.DataFrame], opts: ValidationOptions = ValidationOptions(),
            skip_workloads: Mapping[str, Collection[str]] | None = None) -> dict[str, Any]:
    """Cells, checks and failure causes for one set of real rows and the model's replays of them (one
    frame per seed; a single frame is one seed). `skip_workloads` maps run_id -> workloads that are not
    judged in that run (the cells a network probe was read from)."""
    sims = [sims] if isinstance(sims, pd.DataFrame) else list(sims)
    k_seeds = len(sims)
    r = successes(real)
    per_seed = [successes(s).assign(_seed=i) for i, s in enumerate(sims)]
    s = pd.concat(per_seed, ignore_index=True)
    skip = {str(k): {str(w) for w in v} for k, v in (skip_workloads or {}).items()}

    def skipped(run: str, workload: str) -> bool:
        return workload in skip.get(run, set())

    keys = ["run_id", "workload_type", "platform"]
    real_max = float(r["total_ms"].max()) if len(r) else float("inf")   # the client's timeout shows here
    rg = {tuple(map(str, k)): g for k, g in r.groupby(keys, observed=True)}
    sg = {tuple(map(str, k)): g for k, g in s.groupby(keys, observed=True)}
    rng = np.random.default_rng([opts.seed, 5])
    cells = []
    for k in sorted(set(rg) | set(sg)):
        a, b = rg.get(k, r.iloc[:0]), sg.get(k, s.iloc[:0])
        av, bv = a["total_ms"].to_numpy(dtype=float), b["total_ms"].to_numpy(dtype=float)
        n_sim = len(b) / k_seeds
        row: dict[str, Any] = {"run_id": k[0], "workload_type": k[1], "platform": k[2],
                               "n_real": int(len(a)), "n_sim": round(n_sim, 1),
                               "n_sim_above_real_max": int((bv > real_max).sum())}
        seed_groups = [g["total_ms"].to_numpy(dtype=float) for _, g in b.groupby("_seed")]
        for name, q in (("median", 0.5), ("p95", 0.95)):
            rv, sv = _q(av, q), _q(bv, q)
            row[f"{name}_real_ms"], row[f"{name}_sim_ms"] = rv, sv
            row[f"{name}_rel_err"] = sv / rv - 1 if len(a) and len(b) and rv > 0 else None
            ci = bootstrap_ci(av, q, opts.bootstrap_resamples, opts.ci_level, rng) if len(a) >= 2 else (math.nan,) * 2
            per = [_q(g, q) for g in seed_groups if len(g)]
            spread = (min(per), max(per)) if per else (math.nan, math.nan)
            row[f"{name}_real_ci_ms"], row[f"{name}_sim_seed_range_ms"] = list(ci), list(spread)
            row[f"{name}_ci_overlap"] = _overlap(ci, spread)
        if skipped(k[0], k[1]):
            row["judged"], row["pass_median"], row["pass_p95"] = False, None, None
            row["note"] = "the network probe was read from this cell"
        elif len(a) < opts.min_cell_rows:
            row["judged"], row["pass_median"], row["pass_p95"] = False, None, None
            row["note"] = f"fewer than {opts.min_cell_rows} real successes"
        elif n_sim < opts.min_cell_rows:
            row["judged"], row["pass_median"], row["pass_p95"] = True, False, False
            row["note"] = f"the model logged fewer than {opts.min_cell_rows} successes per seed (timeouts or errors)"
        else:
            row["judged"] = True
            row["pass_median"] = bool(abs(row["median_rel_err"]) <= opts.tolerance)
            row["pass_p95"] = bool(abs(row["p95_rel_err"]) <= opts.tolerance)
        cells.append(row)

    faster = []
    fkeys = ["run_id", "workload_type", "target_payload_size_kb"]
    med_r = r.groupby(fkeys + ["platform"], observed=True)["total_ms"].agg(["median", "size"])
    med_s = s.groupby(fkeys + ["platform"], observed=True)["total_ms"].agg(["median", "size"])
    med_s["size"] = med_s["size"] / k_seeds
    for k in sorted({tuple(x[:3]) for x in med_r.index}):
        fr, fs = _faster(med_r, k, opts), _faster(med_s, k, opts)
        row = {"run_id": str(k[0]), "workload_type": str(k[1]), "payload_size_kb": float(k[2]),
               "real": fr[0], "sim": fs[0], "real_lambda_ms": fr[1], "real_ecs_ms": fr[2],
               "sim_lambda_ms": fs[1], "sim_ecs_ms": fs[2]}
        row["judged"] = fr[0] is not None and not skipped(str(k[0]), str(k[1]))
        row["agree"] = (fr[0] == fs[0]) if row["judged"] else None
        faster.append(row)

    cold = []
    rl, sl = r[r["platform"] == "lambda"], s[s["platform"] == "lambda"]
    for k, a in rl.groupby(["run_id", "workload_type"], observed=True):
        b = sl[(sl["run_id"].astype(str) == str(k[0])) & (sl["workload_type"].astype(str) == str(k[1]))]
        nr, ns = len(a), len(b)
        cr = int(a["cold_start"].fillna(False).astype(bool).sum())
        cs = int(b["cold_start"].fillna(False).astype(bool).sum()) if ns else 0
        row = {"run_id": str(k[0]), "workload_type": str(k[1]), "n_real": nr, "n_sim": round(ns / k_seeds, 1),
               "cold_real": cr, "cold_sim": round(cs / k_seeds, 2), "rate_real": cr / nr if nr else None,
               "rate_sim": cs / ns if ns else None}
        if skipped(str(k[0]), str(k[1])) or nr < opts.min_cell_rows or ns / k_seeds < opts.min_cell_rows:
            row["judged"], row["pass"], row["log10_ratio"] = False, None, None
        else:
            ratio = math.log10(((cs / k_seeds + 0.5) / (ns / k_seeds)) / ((cr + 0.5) / nr))
            row["judged"], row["log10_ratio"] = True, ratio
            row["pass"] = bool(abs(ratio) <= opts.cold_orders)
        cold.append(row)
    return {"cells": cells, "faster": faster, "cold_start": cold, "real_max_total_ms": real_max,
            "seeds": k_seeds, "sim_successes_above_real_max": int((s["total_ms"] > real_max).sum()),
            "thresholds": thresholds(cells, faster, cold, opts),
            "failures": failure_causes(real, s, cells)}


def _faster(med: pd.DataFrame, k: tuple, opts: ValidationOptions) -> tuple[str | None, float | None, float | None]:
    """Which platform is faster in one (run, workload, payload) cell, and the two medians."""
    vals = {}
    for p in PLATFORMS:
        try:
            m, n = med.loc[(*k, p)]
        except KeyError:
            m, n = float("nan"), 0
        vals[p] = (float(m), float(n))
    enough = {p: vals[p][1] >= opts.min_faster_rows for p in PLATFORMS}
    lam, ecs = vals["lambda"][0], vals["ecs"][0]
    if enough["lambda"] and enough["ecs"]:
        return ("lambda" if lam < ecs else "ecs"), lam, ecs
    if enough["lambda"] != enough["ecs"]:   # the other platform mostly failed or timed out
        return ("lambda" if enough["lambda"] else "ecs"), lam if enough["lambda"] else None, ecs if enough["ecs"] else None
    return None, None, None


def thresholds(cells: list[dict[str, Any]], faster: list[dict[str, Any]], cold: list[dict[str, Any]],
               opts: ValidationOptions) -> dict[str, Any]:
    """The four checks: each with its cells, how many were reproduced, the share, the goal, whether the
    share meets it (`pass`), whether every cell did (`every_cell`), and how many judged cells' real CI
    overlaps the model's spread over seeds."""
    judged = [c for c in cells if c["judged"]]
    out: dict[str, Any] = {}
    for name, goal in (("median", opts.median_share_min), ("p95", opts.p95_share_min)):
        passed = sum(1 for c in judged if c[f"pass_{name}"])
        share = passed / len(judged) if judged else None
        out[f"latency_{name}"] = {
            "rule": f"|sim/real - 1| <= {opts.tolerance} in at least {goal:.0%} of judged (run, workload, platform) cells",
            "cells": len(judged), "passed": passed, "share": share, "goal": goal,
            "pass": share is not None and share >= goal, "every_cell": bool(judged) and passed == len(judged),
            "ci_overlap": sum(1 for c in judged if c.get(f"{name}_ci_overlap"))}
    fj = [f for f in faster if f["judged"]]
    agree = sum(1 for f in fj if f["agree"])
    share = agree / len(fj) if fj else None
    out["faster_platform"] = {"rule": f"the same faster platform in at least {opts.faster_agreement_min:.0%} of "
                                      "(run, workload, payload) cells",
                              "cells": len(fj), "agree": agree, "passed": agree, "share": share,
                              "goal": opts.faster_agreement_min,
                              "pass": share is not None and share >= opts.faster_agreement_min,
                              "every_cell": bool(fj) and agree == len(fj)}
    cj = [c for c in cold if c["judged"]]
    cp = sum(1 for c in cj if c["pass"])
    out["cold_start_rate"] = {"rule": f"|log10(sim/real)| <= {opts.cold_orders} in every judged (run, workload) cell",
                              "cells": len(cj), "passed": cp, "share": cp / len(cj) if cj else None, "goal": 1.0,
                              "pass": bool(cj) and cp == len(cj), "every_cell": bool(cj) and cp == len(cj)}
    out["pass"] = all(v["pass"] for v in out.values() if isinstance(v, dict))
    return out


# ---------------------------------------------------------------------------------- failure causes
def _parts(rows: pd.DataFrame, platform: str, network_ms: float) -> pd.DataFrame:
    """Per row: network (the run's median lightweight overhead on that platform), queueing, upload and
    handler time. Lambda: handler = execution_time_ms, upload = the overhead beyond the network (API
    Gateway buffers the body before it invokes). ECS: the ALB streams the body into the handler's timed
    region and a request waits for a worker before it: queueing = the overhead beyond the network,
    handler time = the handler's own share of execution_time_ms (`handler_ms`), upload = the rest."""
    over = rows["total_ms"] - rows["execution_time_ms"]
    if platform == "lambda":
        return pd.DataFrame({"network": network_ms, "queueing": 0.0, "upload": over - network_ms,
                             "handler time": rows["execution_time_ms"]}, index=rows.index)
    own = rows["handler_ms"]
    return pd.DataFrame({"network": network_ms, "queueing": over - network_ms,
                         "upload": rows["execution_time_ms"] - own, "handler time": own}, index=rows.index)


def failure_causes(real: pd.DataFrame, sim: pd.DataFrame, cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each judged cell that fails its median or p95: the residual (model minus real, in ms) of each
    part of the request at that statistic, and the most likely cause, the part with the largest
    absolute residual. A cell the model lost (too few successes) is put down to its timeouts. ECS
    handler time: the fastest decile of the cell's execution times on each side (a request whose body
    was already there), so that what grows beyond it counts as the body's upload."""
    r, s = successes(real), successes(sim)
    r = r if "execution_time_ms" in r else r.assign(execution_time_ms=math.nan)
    s = s if "execution_time_ms" in s else s.assign(execution_time_ms=math.nan)
    out = []
    for c in cells:
        if not c["judged"] or (c["pass_median"] and c["pass_p95"]):
            continue
        failed = [st for st in ("median", "p95") if not c[f"pass_{st}"]]
        rec: dict[str, Any] = {k: c[k] for k in ("run_id", "workload_type", "platform")}
        rec["failed"] = failed
        sel = {}
        for side, d in (("real", r), ("sim", s)):
            m = ((d["run_id"].astype(str) == c["run_id"]) & (d["workload_type"].astype(str) == c["workload_type"])
                 & (d["platform"].astype(str) == c["platform"]) & d["execution_time_ms"].notna())
            light = d[(d["run_id"].astype(str) == c["run_id"]) & (d["workload_type"].astype(str) == LIGHT)
                      & (d["platform"].astype(str) == c["platform"]) & d["execution_time_ms"].notna()]
            net = float((light["total_ms"] - light["execution_time_ms"]).median()) if len(light) else float("nan")
            rows = d[m]
            rows = rows.assign(handler_ms=float(rows["execution_time_ms"].quantile(0.1)) if len(rows) else math.nan)
            sel[side] = _parts(rows, c["platform"], net) if len(rows) else None
        if sel["sim"] is None or sel["real"] is None:
            cause = ("the model lost the cell (timeouts)" if c["n_sim"] < 1 else
                     "no execution_time_ms to split the request into its parts")
            rec.update({"cause": cause, "residual_ms": {}})
            out.append(rec)
            continue
        q = 0.5 if "median" in failed else 0.95
        res = {p: float(sel["sim"][p].quantile(q) - sel["real"][p].quantile(q)) for p in CAUSES}
        res = {p: v for p, v in res.items() if math.isfinite(v)}
        cause = max(res, key=lambda p: abs(res[p])) if res else "unknown"
        rec.update({"statistic": "median" if q == 0.5 else "p95", "residual_ms": res, "cause": cause,
                    "direction": ("model slower" if res.get(cause, 0.0) > 0 else "model faster") if res else None})
        out.append(rec)
    return out


def log_errors(part: Mapping[str, Any]) -> dict[str, Any]:
    """How far one comparison's judged cells are off: median and mean |ln(sim / real)| of the cell
    medians and p95s (cells the model could not judge for lack of successes count as misses)."""
    out: dict[str, Any] = {}
    judged = [c for c in part["cells"] if c["judged"]]
    for stat in ("median", "p95"):
        errs = [abs(math.log(c[f"{stat}_sim_ms"] / c[f"{stat}_real_ms"])) for c in judged
                if c[f"{stat}_rel_err"] is not None and c[f"{stat}_sim_ms"] > 0 and c[f"{stat}_real_ms"] > 0]
        out[f"{stat}_abs_log_err_median"] = float(np.median(errs)) if errs else None
        out[f"{stat}_abs_log_err_mean"] = float(np.mean(errs)) if errs else None
        out[f"{stat}_cells_without_sim"] = len(judged) - len(errs)
    return out
