"""The simulator: the platform model (hybridopt.platforms) driven by a virtual clock.

`simulate(params, seed)` generates the profile's schedule (params.time_windows in order, each running
its load pattern's phases), sends every generated payload to Lambda and to ECS at the same moment with
one pair_id, and returns contract rows (source "simulator"). `replay(params, arrivals, seed)` runs a
given arrival table instead (the calibration replays the real AWS runs with it). Both drive the very
same `PlatformModel` class as the testbed; only the clock differs. By default the whole table goes
through `hybridopt.platforms.batch` at once (the same model objects, random stream and rows as sending
the requests one by one through PlatformModel.submit / dispatch / apply_client_timeout, which
`fast=False` does).

Arrivals follow Artillery's phase semantics (@artilleryio/int-core lib/phases.js): a constant
`arrivalRate` spaces arrivals evenly at 1/rate; a `rampTo` phase runs one-second periods whose arrival
count grows linearly from arrivalRate to rampTo (rounded half up), spaced evenly inside the second.
Workload and payload size are drawn uniformly per arrival (params.workloads[w].payload_sizes_kb).

Model time: each window starts at its local start hour (day d of the schedule: d*86400 + hour*3600), so
the hours between windows pass on the model clock (idle environments are reclaimed, services scale in).
`sent_at` is that time on `start_date` in params.timezone.

`simulate_profile(params, seed)` writes a profile's simulated logs (contract JSONL, one file per run, and
a manifest with the params hash and seed) into its raw_dir; `ensure_simulated(params)` does so only when
raw_dir does not already hold a simulation of the same params.
"""

from __future__ import annotations

import json
import math
import operator
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from hybridopt.data import contract
from hybridopt.params import Params
from hybridopt.platforms import PlatformModel, batch
from hybridopt.platforms.outcome import Outcome, Pending

SOURCE = "simulator"
#: Bytes of the request JSON around the payload string (request_id, pair_id, workload_type, timestamp,
#: metadata): the body the load generator sends is payload + envelope.
ENVELOPE_BYTES = 256
DEFAULT_START_DATE = date(2025, 11, 24)   # a Monday; the real collection ran on 22-23 Nov 2025
DEFAULT_SEED = 42
MANIFEST = "manifest.json"                # beside the JSONL files: what made them
#: The contract fields the simulator writes (A/B fields are not its business).
ROW_COLUMNS = tuple(f.name for f in contract.FIELDS if f.group != "ab")
ARRIVAL_COLUMNS = ("t_s", "platform", "workload_type", "payload_size_kb", "time_window", "load_pattern",
                   "run_id", "sent_at")


# ------------------------------------------------------------------------------------------ arrivals
def phase_offsets(duration_s: float, rate_rps: float, ramp_to_rps: float | None) -> np.ndarray:
    """Arrival offsets (s) inside one phase, as Artillery schedules them."""
    if ramp_to_rps is None or ramp_to_rps == rate_rps:
        n = int(math.floor(duration_s * rate_rps + 1e-9))
        return np.arange(n, dtype=np.float64) / rate_rps if n else np.empty(0)
    periods = max(1, int(round(duration_s)))
    if periods == 1:
        counts = np.array([math.floor((rate_rps + ramp_to_rps) / 2 + 0.5)])
    else:
        raw = (ramp_to_rps - rate_rps) / (periods - 1) * np.arange(periods) + rate_rps
        counts = np.floor(raw + 0.5).astype(np.int64)
    out = []
    for i, n in enumerate(counts.tolist()):
        if n <= 0:
            continue
        tick_s = min(math.floor(1000 / n), 1000) / 1000.0
        out.append(i + tick_s * np.arange(n))
    return np.concatenate(out) if out else np.empty(0)


@dataclass(frozen=True)
class Window:
    name: str
    load_pattern: str
    start_s: float          # model time the window starts
    run_id: str


def schedule(params: Params, seed: int, start_date: date = DEFAULT_START_DATE) -> list[Window]:
    """The profile's windows in order on the model clock (a window starting at or before the previous
    one's hour moves to the next day)."""
    windows, day, prev_hour = [], 0, -1
    for name, tw in params.time_windows.items():
        if tw.start_hour <= prev_hour:
            day += 1
        prev_hour = tw.start_hour
        d = start_date + timedelta(days=day)
        windows.append(Window(name, tw.load_pattern, float(day * 86400 + tw.start_hour * 3600),
                              f"sim-s{seed}-{d.isoformat()}-{name}"))
    return windows


def generate_arrivals(params: Params, seed: int, start_date: date = DEFAULT_START_DATE) -> pd.DataFrame:
    """One row per generated payload (platform "both") for the profile's whole schedule, with the
    phase and its scheduled rate."""
    rng = np.random.default_rng([seed, 1])
    names = list(params.workloads)
    midnight = datetime(start_date.year, start_date.month, start_date.day, tzinfo=params.tz)
    frames = []
    for win in schedule(params, seed, start_date):
        lp = params.load_patterns[win.load_pattern]
        t0 = 0.0
        for ph in lp.phases:
            off = phase_offsets(ph.duration_s, ph.arrival_rate_rps, ph.ramp_to_rps)
            end_rate = ph.ramp_to_rps if ph.ramp_to_rps is not None else ph.arrival_rate_rps
            rate = ph.arrival_rate_rps + (end_rate - ph.arrival_rate_rps) * off / ph.duration_s
            w_idx = rng.integers(0, len(names), len(off))
            size = np.empty(len(off))
            for k, w in enumerate(names):
                sel = w_idx == k
                sizes = np.asarray(params.workloads[w].payload_sizes_kb, dtype=np.float64)
                size[sel] = sizes[rng.integers(0, len(sizes), int(sel.sum()))]
            frames.append(pd.DataFrame({
                "t_s": win.start_s + t0 + off, "platform": "both",
                "workload_type": np.asarray(names, dtype=object)[w_idx], "payload_size_kb": size,
                "time_window": win.name, "load_pattern": win.load_pattern, "run_id": win.run_id,
                "phase": ph.name, "scheduled_rate_rps": rate}))
            t0 += ph.duration_s
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*ARRIVAL_COLUMNS, "phase",
                                                                                     "scheduled_rate_rps"])
    base = pd.Timestamp(midnight)
    df["sent_at"] = base + pd.to_timedelta(df["t_s"].to_numpy(), unit="s")
    return df


# -------------------------------------------------------------------------------------------- engine
def iso_local(sent_at: pd.Series) -> np.ndarray:
    """ISO-8601 strings with the UTC offset (e.g. 2025-11-24T02:00:00.200000+05:30), vectorised."""
    if pd.api.types.is_string_dtype(sent_at) or sent_at.dtype == object:
        return sent_at.astype(str).to_numpy(dtype=object)
    if getattr(sent_at.dt, "tz", None) is None:
        raise ValueError("arrivals.sent_at must be ISO strings or tz-aware timestamps")
    utc = sent_at.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    local = sent_at.dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    offset_min = ((local - utc).astype("timedelta64[s]").astype(np.int64) // 60)
    text = np.datetime_as_string(local, unit="us")
    labels = {int(m): f"{'+' if m >= 0 else '-'}{abs(int(m)) // 60:02d}:{abs(int(m)) % 60:02d}"
              for m in np.unique(offset_min)}
    return np.array([t + labels[m] for t, m in zip(text.tolist(), offset_min.tolist())], dtype=object)


def run_model(model: PlatformModel, arrivals: pd.DataFrame, experiment: str, *, fast: bool = True) -> pd.DataFrame:
    """Send every arrival (platform lambda, ecs or both) through `model` in time order and return the
    contract rows (columns ROW_COLUMNS) in arrival order, lambda before ecs within a pair.

    `fast` runs the whole table at once (hybridopt.platforms.batch: the same model, random stream and
    rows); `fast=False` goes request by request through PlatformModel.submit / dispatch /
    apply_client_timeout. With a shared uplink (the fitted client presets) request by request, twice: the second pass holds the ECS bodies that waited for a worker in the first off the link
    meanwhile (`PlatformModel.ecs_holds`), which the batch path does not model."""
    if len(arrivals) == 0:
        return pd.DataFrame(columns=list(ROW_COLUMNS))
    missing = [c for c in ARRIVAL_COLUMNS if c not in arrivals.columns]
    if missing:
        raise ValueError(f"arrivals is missing columns {missing} (needs {list(ARRIVAL_COLUMNS)})")
    bad = sorted(set(arrivals["platform"].unique()) - {"lambda", "ecs", "both"})
    if bad:
        raise ValueError(f"arrivals.platform must be lambda, ecs or both; got {bad}")
    unknown = sorted(set(arrivals["workload_type"].unique()) - set(model.workloads))
    if unknown:
        raise ValueError(f"arrivals.workload_type holds {unknown}, not in params.workloads {sorted(model.workloads)}")
    a = arrivals.sort_values("t_s", kind="stable").reset_index(drop=True)
    t = a["t_s"].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(t)):
        raise ValueError("arrivals.t_s holds non-finite values")
    kb = a["payload_size_kb"].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(kb)) or (kb < 0).any():
        raise ValueError("arrivals.payload_size_kb must be finite and >= 0")
    plat = a["platform"].to_numpy(dtype=object)
    work = a["workload_type"].to_numpy(dtype=object)
    nbytes = np.rint(kb * 1024.0).astype(np.int64) + ENVELOPE_BYTES
    # the batch path models the shared uplink without holds: an uplink run goes request by request,
    # unless it was told explicitly to hold nothing (model.with_ecs_holds({}): one pass, as the batch)
    if fast and (model.client.uplink is None or (model.holds_ecs_bodies and not model.held_ecs_bodies)):
        # one request per platform of each arrival, lambda before ecs within a pair
        both = plat == "both"
        reps = np.where(both, 2, 1)
        idx = np.repeat(np.arange(len(a)), reps)
        first = np.ones(len(idx), dtype=bool)
        first[1:] = idx[1:] != idx[:-1]
        platform_of = np.where(both[idx], np.where(first, "lambda", "ecs"), plat[idx].astype(str)).astype(object)
        cols = batch.run_batch(model, t[idx], platform_of, work[idx], nbytes[idx])
        return rows_from_columns(a, idx, platform_of, cols, experiment)

    # client side in send order, platform side in dispatch order
    submit = model.submit
    pend: list[tuple[float, int, Pending]] = []
    arrival_of: list[int] = []
    platform_of_l: list[str] = []
    for i, (ti, pl, w, nb) in enumerate(zip(t.tolist(), plat.tolist(), work.tolist(), nbytes.tolist())):
        for p in (("lambda", "ecs") if pl == "both" else (pl,)):
            pend.append((0.0, len(arrival_of), submit(ti, p, w, nb)))
            arrival_of.append(i)
            platform_of_l.append(p)
    model.settle()                      # a shared uplink: every upload gets its final length
    pend = [(x[2].dispatch_at_s, x[1], x[2]) for x in pend]
    pend.sort(key=lambda x: (x[0], x[1]))
    outs: list[Outcome] = [None] * len(arrival_of)  # type: ignore[list-item]
    dispatch, timeout = model.dispatch, model.apply_client_timeout
    ecs_done: list[tuple[int, Pending, Outcome]] = []
    for _, k, p in pend:
        o = dispatch(p)
        if p.platform == "ecs":
            ecs_done.append((k, p, o))
        outs[k] = timeout(o)
    if model.client.uplink is not None and not model.holds_ecs_bodies:
        # a second run in which the ECS bodies that waited for a worker leave the shared uplink meanwhile
        model.with_ecs_holds(model.ecs_holds(ecs_done))
        return run_model(model, arrivals, experiment, fast=False)
    return outcome_rows(a, arrival_of, platform_of_l, outs, experiment)


#: The Outcome fields a contract row takes (the columns the batch path returns).
OUTCOME_FIELDS = batch.COLUMNS


def outcome_rows(a: pd.DataFrame, arrival_of: list[int], platform_of: list[str], outs: list[Outcome],
                 experiment: str) -> pd.DataFrame:
    """Contract rows (columns ROW_COLUMNS) of outcomes: `outs[k]` is the attempt of arrival
    `arrival_of[k]` (a row of `a`, sorted by t_s) on `platform_of[k]`."""
    get = operator.attrgetter(*OUTCOME_FIELDS)
    cols = dict(zip(OUTCOME_FIELDS, (list(c) for c in zip(*[get(o) for o in outs]))))
    return rows_from_columns(a, arrival_of, platform_of, cols, experiment)


def rows_from_columns(a: pd.DataFrame, arrival_of: Sequence[int] | np.ndarray, platform_of: Sequence[str] | np.ndarray,
                      cols: Mapping[str, Sequence[Any] | np.ndarray], experiment: str) -> pd.DataFrame:
    """Contract rows (columns ROW_COLUMNS) of outcomes given as columns (OUTCOME_FIELDS; None, NaN or a
    pandas nullable array's NA where a value is unknown): entry k is the attempt of arrival
    `arrival_of[k]` (a row of `a`, sorted by t_s) on `platform_of[k]`."""
    kb = a["payload_size_kb"].to_numpy(dtype=np.float64)
    idx = np.asarray(arrival_of, dtype=np.int64)
    il = idx.tolist()
    platform_of = list(platform_of)
    is_lambda = [p == "lambda" for p in platform_of]
    base = [r + f"-{i:06d}" for i, r in enumerate(a["run_id"].to_numpy(dtype=object).tolist())]  # run-seq
    if "pair_id" in a:
        pair = _take(a["pair_id"], idx)
    else:
        both = (a["platform"].to_numpy(dtype=object) == "both").tolist()
        pair = _str([base[i] if both[i] else None for i in il])
    rid = _str([base[i] + ("-L" if lam else "-E") for i, lam in zip(il, is_lambda)])
    nan = float("nan")

    def col(name: str) -> list:
        return list(cols[name])

    def fcol(name: str) -> np.ndarray:
        v = cols[name]
        if isinstance(v, np.ndarray) and v.dtype == np.float64:
            return v
        return np.array([nan if x is None else x for x in v], dtype=np.float64)

    status = cols["http_status"]
    if isinstance(status, pd.api.extensions.ExtensionArray):
        http = status.astype("Int64")
        got = ~np.asarray(status.isna(), dtype=bool)
    else:
        status = list(status)
        http = pd.array(status, dtype="Int64")
        got = np.array([s is not None for s in status], dtype=bool)
    cold = cols["cold_start"]
    cold = cold.astype("boolean") if isinstance(cold, pd.api.extensions.ExtensionArray) else pd.array(
        list(cold), dtype="boolean")
    df = pd.DataFrame({
        "schema_version": contract.SCHEMA_VERSION, "request_id": rid, "pair_id": pair,
        "experiment": experiment, "run_id": _take(a["run_id"], idx), "source": SOURCE,
        "platform": _str(platform_of), "workload_type": _take(a["workload_type"], idx),
        "target_payload_size_kb": kb[idx],
        "time_window": _take(a["time_window"], idx), "load_pattern": _take(a["load_pattern"], idx),
        "phase": (_take(a["phase"], idx) if "phase" in a else None),
        "scheduled_rate_rps": (a["scheduled_rate_rps"].to_numpy(dtype=np.float64)[idx]
                               if "scheduled_rate_rps" in a else nan),
        "sent_at": _str(iso_local(a["sent_at"]).tolist(), idx),
        "http_status": http, "error": _str(col("error")),
        "upload_ms": fcol("upload_ms"), "first_byte_ms": fcol("first_byte_ms"), "total_ms": fcol("total_ms"),
        "execution_time_ms": fcol("execution_time_ms"),
        "cold_start": cold,
        "init_duration_ms": fcol("init_duration_ms"), "billed_duration_ms": fcol("billed_duration_ms"),
        "memory_limit_mb": fcol("memory_limit_mb"), "instance_id": _str(col("instance_id")),
        "actual_payload_size_kb": np.where(got, fcol("actual_payload_size_kb"), nan),
    }, columns=list(ROW_COLUMNS))
    return df


_STR_DTYPE = pd.Series(["x"]).dtype     # what pandas infers for a column of strings


def _str(values: list[Any], idx: np.ndarray | None = None) -> Any:
    """`values` (at `idx`, if given) as the column pandas would infer from them, built through pyarrow
    when they are strings and None (a str column), else as an object array for pandas to infer."""
    try:
        arr = pa.array(values, type=pa.large_string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        arr = None
    if arr is None or arr.null_count == len(arr) or _STR_DTYPE == object:
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out if idx is None else out[idx]
    if idx is not None:
        arr = arr.take(pa.array(idx))
    return pd.array(arr, dtype=_STR_DTYPE)


def _take(s: pd.Series, idx: np.ndarray) -> Any:
    """The values of `s` at positions `idx`, as the column pandas would infer from them."""
    if s.dtype == _STR_DTYPE and _STR_DTYPE != object and s.notna().any():
        return s.array.take(idx)
    return s.to_numpy(dtype=object)[idx]


def replay(params: Params, arrivals: pd.DataFrame, seed: int, *, fast: bool = True) -> pd.DataFrame:
    """Run an arrival table on a fresh model seeded with `seed` and return contract rows as a frame.

    arrivals columns: t_s (model seconds, one clock for the whole table: runs far apart in t_s behave
    like separate hours), platform ("lambda" | "ecs" | "both"), workload_type, payload_size_kb,
    time_window, load_pattern, run_id, sent_at (ISO string or tz-aware timestamp); optional pair_id,
    phase, scheduled_rate_rps. Rows come back in arrival order (sorted by t_s)."""
    model = PlatformModel(params.testbed, params.workloads, np.random.default_rng([seed, 2]))
    return run_model(model, arrivals, params.experiment, fast=fast)


@dataclass
class SimulationResult:
    rows: pd.DataFrame
    model: PlatformModel
    windows: list[Window]
    arrivals: int
    elapsed_s: float


def simulate(params: Params, seed: int, start_date: date = DEFAULT_START_DATE, *,
             fast: bool = True) -> SimulationResult:
    """The profile's full schedule on one model (paired: every arrival goes to both platforms); `fast` as
    in run_model."""
    t0 = time.perf_counter()
    arrivals = generate_arrivals(params, seed, start_date)
    model = PlatformModel(params.testbed, params.workloads, np.random.default_rng([seed, 2]))
    rows = run_model(model, arrivals, params.experiment, fast=fast)
    return SimulationResult(rows, model, schedule(params, seed, start_date), len(arrivals),
                            time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------- writing
def write_jsonl(rows: pd.DataFrame, out_dir: Path) -> dict[str, int]:
    """One contract JSONL file per run_id (`<out_dir>/<run_id>.jsonl`, replaced); returns lines per file.
    Unknown values are written as null."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for run, part in rows.groupby("run_id", sort=False):
        text = part.to_json(orient="records", lines=True, double_precision=3)
        path = out_dir / f"{run}.jsonl"
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        tmp.replace(path)
        counts[str(run)] = len(part)
    return counts


def write_capacity(model: PlatformModel, params: Params, out_dir: Path,
                   start_date: date = DEFAULT_START_DATE) -> Path:
    """The ECS tasks the simulation ran (per workload service: started, ready, drained, stopped) as
    `<out_dir>/capacity.json`, on the logs' clock (model time 0 is midnight of start_date in
    params.timezone, as for sent_at); `hybridopt.decision.capacity` defines and reads the format."""
    from hybridopt.decision import capacity

    origin_s = datetime(start_date.year, start_date.month, start_date.day, tzinfo=params.tz).timestamp()
    return capacity.write_capacity(capacity.from_model(model.ecs, origin_s), out_dir)


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (time_window, platform): lines, errors, cold starts, median/p95 total_ms of successes."""
    ok = rows["error"].isna()
    g = rows.assign(ok_ms=rows["total_ms"].where(ok)).groupby(["time_window", "platform"], sort=False)
    out = g.agg(lines=("total_ms", "size"), errors=("error", lambda s: int(s.notna().sum())),
                cold_starts=("cold_start", lambda s: int(s.fillna(False).sum())),
                median_ok_ms=("ok_ms", "median"), p95_ok_ms=("ok_ms", lambda s: s.quantile(0.95)))
    return out.round(1)


# --------------------------------------------------------------------------------- a profile's logs
def simulate_profile(params: Params, seed: int = DEFAULT_SEED, start_date: date = DEFAULT_START_DATE,
                     out_dir: str | Path | None = None) -> tuple[SimulationResult, dict[str, Any]]:
    """Simulate the profile's schedule and write it to `out_dir` (default: the profile's raw_dir): one
    contract JSONL file per run, `capacity.json` (the ECS tasks it ran) and `manifest.json` (params
    hash, seed, lines per file, presets).
    Returns the simulation and the manifest."""
    out = Path(out_dir) if out_dir is not None else params.path("raw_dir")
    res = simulate(params, seed, start_date)
    counts = write_jsonl(res.rows, out)
    manifest = {"source": SOURCE, "profile": params.profile, "params_hash": params.hash,
                "seed": seed, "start_date": start_date.isoformat(), "arrivals": res.arrivals,
                "lines": sum(counts.values()), "files": {f"{k}.jsonl": v for k, v in counts.items()},
                "client_preset": params.testbed.client_preset, "service_preset": params.testbed.service_preset,
                "model_out_of_order": res.model.out_of_order}
    write_capacity(res.model, params, out, start_date)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return res, manifest


def ensure_simulated(params: Params, force: bool = False, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """For a profile whose source is `simulator`: its logs in raw_dir, made by `simulate_profile` unless
    raw_dir already holds a simulation of the same params (the manifest's params_hash) or `force`.
    Other sources: nothing to do. Returns `status` (a sentence), `ran` and the `manifest`."""
    if params.source != "simulator":
        return {"status": f"source {params.source}: nothing to simulate", "ran": False}
    raw = params.path("raw_dir")
    mpath = raw / MANIFEST
    if not force and mpath.exists():
        m = json.loads(mpath.read_text())
        if m.get("params_hash") == params.hash:
            return {"status": f"simulated logs already in {raw} ({m.get('lines', 0):,} lines, seed {m.get('seed')}); "
                              "force=True regenerates them", "ran": False, "manifest": m}
    _, m = simulate_profile(params, seed, out_dir=raw)
    return {"status": f"simulated {m.get('lines', 0):,} lines into {raw}", "ran": True, "manifest": m}
