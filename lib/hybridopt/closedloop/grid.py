"""The crossover sweep: the grid of params `closed_loop.crossover` as tasks, run by the sweep engine
on a Dask cluster with the closed-loop cell function, and its results on disk.

Each task is one simulator run: one workload at one constant arrival rate and payload size, one
Fargate capacity, one policy, one seed (`hybridopt.closedloop.crossover.crossover_cell`). The
results frame has one row per task (columns `FRAME_COLUMNS`); it is written with the sweep's summary
to `closed_loop.crossover.out_dir` (default data/<profile>/crossover/): results.parquet, sweep.json,
and cache/ (one JSON file per finished task, keyed by the params hash (the `closed_loop` section left
out: growing the grid reuses what ran), the task's inputs and seed).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from hybridopt import paths
from hybridopt.closedloop.sweep import SweepResult, Task, run_sweep
from hybridopt.params import Params, ParamsError
from hybridopt.params.crossover import parse_capacity

if TYPE_CHECKING:
    from distributed import Client

#: The results frame, one row per task (the shared interface with the cell function).
FRAME_COLUMNS = ("task_id", "workload_type", "rate_rps", "payload_size_kb", "capacity", "ecs_tasks", "ecs_workers",
                 "policy", "policy_detail", "seed", "requests", "bill_usd_per_1k", "p50_ms", "p95_ms", "p99_ms",
                 "failure_rate", "objective_usd_per_1k", "status", "error", "wall_s")
RESULTS_FILE = "results.parquet"
SUMMARY_FILE = "sweep.json"
CACHE_DIR = "cache"
#: Significant digits of the payload sizes placed between the planned ones.
PAYLOAD_DIGITS = 3

CellFn = Callable[..., Mapping[str, object]]


def cache_key(params: Params) -> str:
    """The hash of the params a cell's result depends on: every section but `closed_loop`, which
    configures the sweeps themselves (the crossover grid only says which tasks exist, each task's
    inputs being in its key; the replay block is another command's), so growing the grid reuses the
    tasks already run; and the cell's CELL_VERSION, which changes when the cell's computation does."""
    from hybridopt.closedloop.crossover import CELL_VERSION

    dump = params.model_dump(mode="json")
    dump["closed_loop"] = {}
    dump["_cell_version"] = CELL_VERSION
    blob = json.dumps(dump, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def out_dir(params: Params) -> Path:
    return paths.resolve(params.closed_loop.crossover.out_dir, params.profile)


def _round_sig(x: float, digits: int) -> float:
    return round(x, digits - 1 - int(math.floor(math.log10(abs(x)))))


def payload_points(sizes_kb: list[float], between: int) -> list[float]:
    """The planned sizes plus `between` geometric points between each two neighbours (3 significant
    digits), ascending."""
    s = sorted({float(x) for x in sizes_kb})
    out = set(s)
    for lo, hi in zip(s, s[1:]):
        for k in range(1, between + 1):
            out.add(_round_sig(lo * (hi / lo) ** (k / (between + 1)), PAYLOAD_DIGITS))
    return sorted(out)


def grid_workloads(params: Params) -> list[str]:
    g = params.closed_loop.crossover
    names = list(params.workloads) if g.workloads is None else list(g.workloads)
    unknown = [w for w in names if w not in params.workloads]
    if unknown:
        raise ParamsError(f"profile {params.profile!r}: closed_loop.crossover.workloads names {unknown}, not among "
                          f"the workloads {sorted(params.workloads)}")
    return names


def crossover_tasks(params: Params) -> list[Task]:
    """Every task of the profile's grid: workload x payload x rate x capacity x policy x seed."""
    g = params.closed_loop.crossover
    tasks: list[Task] = []
    for w in grid_workloads(params):
        for size in payload_points(params.workloads[w].payload_sizes_kb, g.payload_points_between):
            for rate in g.rates_rps:
                for cap in g.capacities:
                    tasks_n, workers_n = parse_capacity(cap)
                    for policy in g.policies:
                        for seed in g.seeds:
                            tasks.append({"workload_type": w, "rate_rps": float(rate), "payload_size_kb": size,
                                          "ecs_tasks": tasks_n, "ecs_workers": workers_n, "policy": policy,
                                          "seed": int(seed), "duration_s": float(g.duration_s)})
    return tasks


def default_cell() -> CellFn:
    from hybridopt.closedloop.crossover import crossover_cell

    return crossover_cell


def as_frame(result: SweepResult) -> pd.DataFrame:
    """The sweep's rows in the interface's columns (the capacity label derived from tasks x workers;
    rows of failed tasks hold their inputs, NaN metrics, the status and the error)."""
    df = result.frame.copy()
    if len(df):
        df["capacity"] = df["ecs_tasks"].astype(int).astype(str) + "x" + df["ecs_workers"].astype(int).astype(str)
    for col in FRAME_COLUMNS:
        if col not in df.columns:
            df[col] = "" if col in ("policy_detail", "error") else float("nan")
    df["policy_detail"] = df["policy_detail"].fillna("").astype(str)
    df["error"] = df["error"].fillna("").astype(str)
    extra = [c for c in df.columns if c not in FRAME_COLUMNS]
    return df[list(FRAME_COLUMNS) + extra]


@dataclass
class CrossoverRun:
    frame: pd.DataFrame
    summary: dict[str, object]
    dir: Path
    reused: bool = False


def run_crossover(params: Params, *, scheduler: str | None = None, n_workers: int | None = None,
                  force: bool = False, progress: bool = True, client: "Client | None" = None,
                  cell: CellFn | None = None, out: Path | None = None) -> CrossoverRun:
    """Run (or complete from the cache) the profile's crossover grid and write results.parquet and
    sweep.json into `out` (default: the grid's out_dir). `cell`: the function run per task (default:
    the closed-loop crossover cell)."""
    g = params.closed_loop.crossover
    tasks = crossover_tasks(params)
    d = Path(out) if out is not None else out_dir(params)
    d.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    res = run_sweep(cell or default_cell(), tasks, params, cache_key(params), d / CACHE_DIR, g.budget_s, client=client,
                    scheduler=scheduler, n_workers=n_workers or g.n_workers, force=force, progress=progress,
                    description=f"crossover {params.profile}")
    frame = as_frame(res)
    fresh = frame.iloc[0:0] if res.computed == 0 else frame[~frame["task_id"].isin(res.cached_ids)]
    summary = {**res.summary(), "profile": params.profile, "params_hash": params.hash,
               "computed_task_wall_s": round(float(fresh["wall_s"].sum()), 3),
               "computed_task_cpu_s": round(float(fresh["cpu_s"].sum()), 3),
               "cache_key": cache_key(params), "started": started,
               "grid": g.model_dump(mode="json"), "forced": force}
    frame.to_parquet(d / RESULTS_FILE, index=False)
    (d / SUMMARY_FILE).write_text(json.dumps(summary, indent=1))
    return CrossoverRun(frame, summary, d)


def load_crossover(params: Params, out: Path | None = None) -> CrossoverRun | None:
    """The results on disk (`out`, default the grid's out_dir) when they are this grid's, complete,
    under these params; else None."""
    d = Path(out) if out is not None else out_dir(params)
    try:
        summary = json.loads((d / SUMMARY_FILE).read_text())
        frame = pd.read_parquet(d / RESULTS_FILE)
    except (OSError, ValueError):
        return None
    if (summary.get("params_hash") != params.hash or summary.get("interrupted")
            or len(frame) != len(crossover_tasks(params))):
        return None
    return CrossoverRun(frame, summary, d, reused=True)


def crossover_results(params: Params, force: bool = False, out: Path | None = None,
                      **kwargs: object) -> CrossoverRun:
    """The crossover results of the profile: reused from disk when complete for these params (unless
    `force`), else computed (cached tasks are reused unless `force`)."""
    if not force:
        done = load_crossover(params, out)
        if done is not None:
            return done
    return run_crossover(params, force=force, out=out, **kwargs)  # type: ignore[arg-type]
