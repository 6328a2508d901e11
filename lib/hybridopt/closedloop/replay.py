"""The closed-loop replay of a profile: every policy routes the profile's logged pairs (one arrival per
pair, at its send time, with its workload and payload) through `hybridopt.closedloop.loop`, once per
seed of params `closed_loop.replay.seeds`; the platform model runs only the chosen attempt.

Policies (`policy_names`):
- `always_lambda`, `always_ecs`;
- `workload_rule`, `lookup_table`, `classifier@0.5`, `classifier@best`: the decide stage's serving set
  (models/<profile>/decision/, fitted on every session), decided per arrival from its 14 features;
- `objective` and `objective:<setting>`: the router's objective policy
  (`hybridopt.router.policy.DecisionPolicy`, a fresh one per run: its own load tracker);
- `threshold:<limit>` per params `closed_loop.replay.threshold_limits`: ECS until the workload's
  service has <limit> requests in flight, then Lambda.
The policies needing decision/ are left out (and named) when the profile has none.

Open loop beside it (`compare`): the decide stage's decisions.json, the same policies on the same pairs
with both platforms' logged outcomes under the logged load (its learned policies judged leave one
session out, here fitted on every session).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Final, Mapping, Sequence

import numpy as np
import pandas as pd

from hybridopt import model_dir as layout
from hybridopt import paths, provenance
from hybridopt.closedloop.loop import CLOSED_LOOP, SendTimePolicy, run_closed_loop
from hybridopt.closedloop.metrics import METRICS, over_seeds, run_metrics
from hybridopt.closedloop.policies import Fixed, Objective, Threshold
from hybridopt.decision.load_frame import seconds
from hybridopt.errors import InputError
from hybridopt.params import Params

FILE: Final = "closed_loop.json"
STATIC: Final = ("always_lambda", "always_ecs")
LEARNED: Final = ("workload_rule", "lookup_table", "classifier@0.5", "classifier@best")
#: open-loop columns (decisions.json) -> closed-loop metric
OPEN_COLUMNS: Final = {"bill_avg_usd_per_1k_requests": "bill_usd_per_1k", "latency_p50_ms": "p50_ms",
                       "latency_p95_ms": "p95_ms", "latency_p99_ms": "p99_ms", "failure_rate": "failure_rate",
                       "slo_miss_share": "slo_miss_share", "lambda_share": "lambda_share"}
COMPARED: Final = ("bill_usd_per_1k", "p95_ms", "failure_rate", "slo_miss_share")
#: Intervals closer than this share of the value count as touching (the open loop reads its latency
#: quantile CIs from histogram bins of this relative width: hybridopt.decision.evaluate.QUANTILE_BIN_REL).
TOUCH_REL: Final = 0.005
Log = Callable[[str], None]


class ReplayInputError(InputError):
    """The profile cannot be replayed as asked (no pairs, an unknown policy, ...)."""


@dataclass
class Inputs:
    """The arrivals (one per logged pair, time order) and what the policies read."""
    arrivals: pd.DataFrame
    start: date
    features14: pd.DataFrame
    decision_dir: Path | None


def out_dir(params: Params) -> Path:
    return params.path("reports_dir") / "closed_loop"


def arrivals_from_pairs(params: Params, pairs: pd.DataFrame) -> tuple[pd.DataFrame, date]:
    """One arrival per pair at its send time, on a model clock from midnight (params.timezone) of
    the first pair's day."""
    need = ["workload_type", "payload_size_kb", "sent_at", "time_window", "load_pattern", "run_id"]
    missing = [c for c in need if c not in pairs.columns]
    if missing:
        raise ReplayInputError(f"the pairs lack columns {missing}: run `python -m hybridopt preprocess --profile "
                               f"{params.profile}` again")
    if not len(pairs):
        raise ReplayInputError(f"profile {params.profile}: there are no pairs to replay")
    unknown = sorted(set(pairs["workload_type"].astype(str)) - set(params.workloads))
    if unknown:
        raise ReplayInputError(f"the pairs hold workloads {unknown} that params.workloads lacks")
    cols = need + [c for c in ("phase", "scheduled_rate_rps") if c in pairs.columns]
    a = pairs[cols].copy()
    for c in ("workload_type", "time_window", "load_pattern", "run_id", "phase"):
        if c in a:
            a[c] = a[c].astype(str)
    a["sent_at"] = pd.to_datetime(a["sent_at"], utc=True, format="ISO8601").dt.tz_convert(params.tz)
    t_unix = seconds(a["sent_at"])
    first = datetime.fromtimestamp(float(t_unix.min()), params.tz).date()
    origin = datetime(first.year, first.month, first.day, tzinfo=params.tz).timestamp()
    a["t_s"] = t_unix - origin
    a = a.sort_values("t_s", kind="stable").reset_index(drop=True)
    return a, first


def load_inputs(params: Params) -> Inputs:
    from hybridopt.data.features import FeatureSpec

    p = paths.processed(params).pairs
    if not p.is_file():
        raise ReplayInputError(f"{p} is missing: run stages 02-03 first (`python -m hybridopt preprocess --profile "
                               f"{params.profile}`)")
    arr, start = arrivals_from_pairs(params, pd.read_parquet(p))
    d = layout.decision_dir(params.path("models_dir"))
    ctx = arr[["workload_type", "payload_size_kb", "sent_at", "time_window", "load_pattern"]]
    return Inputs(arr, start, FeatureSpec.from_params(params).frame(ctx),
                  d if layout.decision_spec_path(params.path("models_dir")).is_file() else None)


def policy_names(params: Params, has_decision: bool) -> tuple[list[str], list[str]]:
    """(the policies to replay, those left out for want of decision/)."""
    from hybridopt.decision.policies import objectives

    learned = [*LEARNED, *("objective" if k == "default" else f"objective:{k}" for k in objectives(params))]
    every = [*STATIC, *learned, *(f"threshold:{k}" for k in params.closed_loop.replay.threshold_limits)]
    asked = params.closed_loop.replay.policies
    if asked is not None:
        bad = [p for p in asked if p not in every and not p.startswith("threshold:")]
        if bad:
            raise ReplayInputError(f"params closed_loop.replay.policies: {bad} are not policies ({every})")
        every = list(asked)
    skipped = [p for p in every if not has_decision and (p in LEARNED or p.startswith("objective"))]
    return [p for p in every if p not in skipped], skipped


def make_policy(params: Params, inp: Inputs, name: str) -> SendTimePolicy:
    """A fresh send-time policy for one run."""
    windows = tuple(float(w) for w in params.decision.load_windows_s)
    n = len(inp.arrivals)
    if name == "always_lambda":
        return Fixed(name, "every request to Lambda", np.ones(n, dtype=bool), windows)
    if name == "always_ecs":
        return Fixed(name, "every request to ECS", np.zeros(n, dtype=bool), windows)
    if name.startswith("threshold:"):
        try:
            limit = int(name.split(":", 1)[1])
        except ValueError:
            raise ReplayInputError(f"policy {name!r}: the limit after 'threshold:' must be an integer") from None
        return Threshold(name, {w: limit for w in params.workloads}, windows)
    if inp.decision_dir is None:
        raise ReplayInputError(f"policy {name!r} needs the decide stage's serving set "
                               f"{layout.decision_dir(params.path('models_dir'))}: run `python -m hybridopt decide "
                               f"--profile {params.profile}` first")
    if name == "objective" or name.startswith("objective:"):
        from hybridopt.router.policy import DecisionPolicy

        pol = DecisionPolicy.from_dir(inp.decision_dir)
        setting = "default" if name == "objective" else name.split(":", 1)[1]
        return Objective(name, pol, inp.features14.to_numpy(dtype=np.float64).tolist(), setting)
    from hybridopt.decision.artifacts import load_decision
    from hybridopt.decision.policies import apply_lookup, apply_rule, proba

    f = load_decision(inp.decision_dir.parent).fitted
    work = inp.arrivals["workload_type"].to_numpy(dtype=object)
    if name == "workload_rule":
        return Fixed(name, f"the decide stage's workload rule {f.rule}", apply_rule(f.rule, work), windows)
    if name == "lookup_table":
        kb = inp.arrivals["payload_size_kb"].to_numpy(dtype=np.float64)
        return Fixed(name, "the decide stage's lookup table (workload x payload)", apply_lookup(f.table, f.rule, work, kb),
                     windows)
    if name in ("classifier@0.5", "classifier@best"):
        t = 0.5 if name == "classifier@0.5" else f.threshold_best
        p_lambda = proba(f.classifier, inp.features14[f.feature_columns])
        return Fixed(name, f"the plan's classifier ({f.family.name}) at P(lambda) >= {t:g}", p_lambda >= t, windows)
    raise ReplayInputError(f"unknown policy {name!r}")


def run_one(params: Params, inp: Inputs, name: str, seed: int) -> dict[str, Any]:
    """One policy at one seed: its metrics (`hybridopt.closedloop.metrics.run_metrics`)."""
    t0 = time.perf_counter()
    pol = make_policy(params, inp, name)
    run = run_closed_loop(params, inp.arrivals, pol, seed, inp.start)
    m = run_metrics(params, run)
    return {"policy": name, "seed": int(seed), "policy_detail": pol.detail, **m,
            "model_out_of_order": int(run.model.out_of_order), "loop_s": round(run.wall_s, 2),
            "wall_s": round(time.perf_counter() - t0, 2)}


_CACHE: dict[str, Inputs] = {}


def _task(dump: dict[str, Any], name: str, seed: int) -> dict[str, Any]:
    """A worker process's run: the params from their JSON dump (a Params does not pickle), the
    inputs read once per process."""
    params = Params.model_validate(dump)
    inp = _CACHE.get(params.hash)
    if inp is None:
        inp = _CACHE.setdefault(params.hash, load_inputs(params))
    return run_one(params, inp, name, seed)


def replay_runs(params: Params, names: Sequence[str], seeds: Sequence[int], workers: int = 1,
                log: Log = print) -> pd.DataFrame:
    """Every (policy, seed) run, in parallel processes when workers > 1; one row each."""
    tasks = [(n, s) for n in names for s in seeds]
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    if workers <= 1 or len(tasks) <= 1:
        inp = load_inputs(params)
        for n, s in tasks:
            rows.append(run_one(params, inp, n, s))
            log(f"  {n} seed {s}: {rows[-1]['wall_s']:.1f} s ({len(rows)}/{len(tasks)}, {time.perf_counter() - t0:.0f} s)")
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as ex:
            dump = params.model_dump(mode="json", by_alias=True)
            futs = {ex.submit(_task, dump, n, s): (n, s) for n, s in tasks}
            from concurrent.futures import as_completed

            for fut in as_completed(futs):
                n, s = futs[fut]
                rows.append(fut.result())
                log(f"  {n} seed {s}: {rows[-1]['wall_s']:.1f} s ({len(rows)}/{len(tasks)}, "
                    f"{time.perf_counter() - t0:.0f} s)")
    order = {(n, s): i for i, (n, s) in enumerate(tasks)}
    return pd.DataFrame(sorted(rows, key=lambda r: order[(r["policy"], r["seed"])]))


# ------------------------------------------------------------------------------------- open loop
def open_loop(params: Params) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The decide stage's policy table (decisions.json) and where it came from."""
    from hybridopt.decision.artifacts import DECISIONS_FILE, default_out

    path = default_out(params) / DECISIONS_FILE
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return pd.DataFrame(), {"path": str(path), "present": False}
    prov = doc.get("provenance") or {}
    return pd.DataFrame(doc.get("policies") or []), {
        "path": str(path), "present": True, "params_hash": prov.get("params_hash"),
        "same_params": prov.get("params_hash") == params.hash, "pairs": (doc.get("data") or {}).get("pairs")}


def _num(x: object) -> float:
    """A JSON number, NaN for null or missing."""
    return float("nan") if x is None else float(x)  # type: ignore[arg-type]


def compare(closed: pd.DataFrame, opened: pd.DataFrame) -> pd.DataFrame:
    """Per policy and metric: closed loop (mean over seeds, 95 % CI), open loop (point, 95 % CI), the
    difference, and `disagree` when the two intervals do not overlap (a gap above TOUCH_REL of the
    value)."""
    if opened.empty:
        return pd.DataFrame()
    op = opened.set_index("policy")
    rows = []
    back = {v: k for k, v in OPEN_COLUMNS.items()}
    for _, c in closed.iterrows():
        name = c["policy"]
        if name not in op.index:
            continue
        o = op.loc[name]
        for m in COMPARED:
            oc = back[m]
            # decisions.json writes a CI it could not estimate as null (its reason beside it)
            ov, olo, ohi = (_num(o.get(oc)), _num(o.get(f"{oc}_ci_low")), _num(o.get(f"{oc}_ci_high")))
            cv, clo, chi = float(c[m]), float(c[f"{m}_ci_low"]), float(c[f"{m}_ci_high"])
            lo_c, hi_c = (clo, chi) if np.isfinite(clo) else (cv, cv)
            lo_o, hi_o = (olo, ohi) if np.isfinite(olo) else (ov, ov)
            gap = max(lo_o - hi_c, lo_c - hi_o)
            rows.append({"policy": name, "metric": m, "closed": cv, "closed_ci_low": clo, "closed_ci_high": chi,
                         "open": ov, "open_ci_low": olo, "open_ci_high": ohi, "difference": cv - ov,
                         "disagree": bool(gap > TOUCH_REL * max(abs(cv), abs(ov)))})
    return pd.DataFrame(rows)


def rankings(closed: pd.DataFrame, opened: pd.DataFrame) -> pd.DataFrame:
    """Per compared metric, the policies present in both ranked closed loop and open loop (1 = lowest)."""
    if opened.empty:
        return pd.DataFrame()
    both = sorted(set(closed["policy"]) & set(opened["policy"]))
    c = closed.set_index("policy").loc[both]
    o = opened.set_index("policy").loc[both]
    back = {v: k for k, v in OPEN_COLUMNS.items()}
    out = pd.DataFrame({"policy": both})
    for m in COMPARED:
        out[f"{m}_rank_closed"] = c[m].rank(method="min").to_numpy(dtype=int)
        out[f"{m}_rank_open"] = o[back[m]].astype(float).rank(method="min").to_numpy(dtype=int)
    return out


# ------------------------------------------------------------------------------------ the profile
def replay_profile(params: Params, names: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
                   workers: int | None = None, log: Log = print, write: bool = True) -> dict[str, Any]:
    """The closed-loop table of the profile (every policy, every seed), the open loop beside it, written
    to reports/<profile>/closed_loop/closed_loop.json."""
    t0 = time.perf_counter()
    inp = load_inputs(params)
    every, skipped = policy_names(params, inp.decision_dir is not None)
    chosen = list(names) if names else every
    lacking = [n for n in chosen if n not in every and not n.startswith("threshold:")]
    if lacking:
        raise ReplayInputError(f"policies {lacking} cannot be replayed here (available: {every}"
                               + (f"; {skipped} need `python -m hybridopt decide --profile {params.profile}`" if skipped
                                  else "") + ")")
    rc = params.closed_loop.replay
    seeds = list(seeds) if seeds else list(rc.seeds)
    log(f"closed loop {params.profile}: {len(inp.arrivals):,} arrivals x {len(chosen)} policies x {len(seeds)} seeds")
    runs = replay_runs(params, chosen, seeds, workers or rc.workers, log)
    closed = over_seeds(runs, ["policy"], METRICS)
    closed.insert(1, "policy_detail", [runs.loc[runs.policy == p, "policy_detail"].iloc[0] for p in closed["policy"]])
    opened, open_meta = open_loop(params)
    doc = {"profile": params.profile, "closed_loop": CLOSED_LOOP, "arrivals": int(len(inp.arrivals)),
           "sessions": sorted(set(inp.arrivals["run_id"])), "start_date": inp.start.isoformat(),
           "seeds": seeds, "policies": chosen, "skipped": skipped,
           "decision_dir": None if inp.decision_dir is None else str(inp.decision_dir),
           "runs": runs.to_dict(orient="records"), "closed": closed.to_dict(orient="records"),
           "open": opened.to_dict(orient="records"), "open_meta": open_meta,
           "comparison": compare(closed, opened).to_dict(orient="records"),
           "rankings": rankings(closed, opened).to_dict(orient="records"),
           "wall_s": round(time.perf_counter() - t0, 1), "cpu_runs_s": round(float(runs["wall_s"].sum()), 1),
           "provenance": provenance.collect(params)}
    if write:
        d = out_dir(params)
        d.mkdir(parents=True, exist_ok=True)
        path = d / FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(_jsonable(doc), indent=1, allow_nan=True))
        tmp.replace(path)
        doc["path"] = str(path)
    return doc


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def load_or_replay(params: Params, force: bool = False, log: Log = print) -> dict[str, Any]:
    """The profile's closed_loop.json when it was made with these params and pairs for every policy,
    else a new one."""
    path = out_dir(params) / FILE
    if not force and path.is_file():
        try:
            doc = json.loads(path.read_text())
        except ValueError:
            doc = {}
        pairs = paths.processed(params).pairs
        every, _ = policy_names(params, layout.decision_spec_path(params.path("models_dir")).is_file())
        if (doc.get("provenance", {}).get("params_hash") == params.hash and pairs.is_file()
                and set(doc.get("policies") or []) == set(every)
                and doc.get("arrivals") == len(pd.read_parquet(pairs, columns=["pair_id"]))):
            log(f"reusing {path} (same params and pairs; force=True recomputes)")
            doc["path"] = str(path)
            return doc
    return replay_profile(params, log=log)
