"""Running the A/B test: on the local testbed through the router proxy with Artillery (wall clock),
and in the simulator at the plan's scale (virtual clock). Both end in the same analysis frame
(router/ab.py): arm, platform, latency_ms, cost_usd (cost.py, the same prices and rules as the
training labels), ok, and the request's context for the post-hoc oracle.

Testbed run: build/unzip the package, start the testbed (hybridopt.emulation.testbed.start) and the router
proxy in front of it, run artillery/ab-test.yml (ab-functions.js) for ab.testbed_requests arrivals at
ab.testbed_rate_rps in ab.testbed_window's load pattern, read the contract lines it wrote.
Simulated run: the profile's daily schedule (simulate.generate_arrivals) repeated day after day until
ab.simulate_requests arrivals, a seeded random arm per arrival, the router's choice per arm (the
model through the library on the feature frame: equal to the packaged evaluator, tests prove it),
then simulate.replay runs only the chosen platform of each arrival on one platform model.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridopt import model_dir as layout
from hybridopt import paths
from hybridopt.ab.proxy import proxy_for
from hybridopt.data.features import FeatureSpec
from hybridopt.data.ingest import IngestResult, ingest, write_quarantine
from hybridopt.data.reader import Ledger
from hybridopt.errors import InputError
from hybridopt.params import Params
from hybridopt.router.handler import Router
from hybridopt.router.package import build_package, package_path, router_config

AB_CONFIG_ENV = "HYBRIDOPT_AB_CONFIG"
AB_YML = "ab-test.yml"


def ab_dir(params: Params) -> Path:
    return params.path("raw_dir").parent / "ab"


# --------------------------------------------------------------------------------- analysis frames
def requests_frame(lines: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Routed requests -> the A/B analysis frame (cost from cost.py). `lines`: the requests frame of
    `read_ab_lines` (typed by the reader) or the simulator's contract rows; text columns come out
    as plain objects either way."""
    from hybridopt.data.cost import add_costs

    if lines.empty:
        raise ValueError("no A/B request lines")
    df = lines.copy()
    df["sent_at"] = pd.to_datetime(df["sent_at"], utc=True, format="ISO8601")
    for col in ("memory_limit_mb", "billed_duration_ms", "execution_time_ms", "init_duration_ms", "total_ms",
                "actual_payload_size_kb", "target_payload_size_kb"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    df = add_costs(df, params)
    status = pd.to_numeric(df["http_status"], errors="coerce").astype("float64")
    text = {c: df[c].astype(object) for c in ("arm", "platform", "workload_type", "time_window", "load_pattern",
                                              "source")}
    return pd.DataFrame({
        "arm": text["arm"], "platform": text["platform"], "latency_ms": df["total_ms"],
        "cost_usd": df["cost_usd"], "ok": (df["error"].isna() & status.between(200, 299)).to_numpy(bool),
        "router_probability": pd.to_numeric(df.get("router_probability"), errors="coerce").astype("float64"),
        "workload_type": text["workload_type"], "payload_size_kb": df["target_payload_size_kb"],
        "time_window": text["time_window"], "load_pattern": text["load_pattern"], "sent_at": df["sent_at"],
        "source": text["source"]})


def read_ab_lines(params: Params, folder: Path) -> IngestResult:
    """The contract lines an A/B run wrote, through the validating reader (`data.ingest`): every line
    kept, repaired or quarantined with its reason, and counted in the result's ledger."""
    return ingest(params, Path(folder))


# ------------------------------------------------------------------------------------- testbed run
@dataclass
class TestbedAB:
    __test__ = False
    out_dir: Path
    lines: int                   # lines written (kept + repaired + quarantined)
    requests: pd.DataFrame       # the analysis frame of the kept and repaired lines
    proxy_counts: dict[str, int]
    artillery_rc: int
    seconds: float
    ledger: Ledger               # where every line went; quarantined lines in out_dir/quarantine.jsonl


def _packaged_from(zip_path: Path, model_dir: Path) -> bool:
    """True if the zip holds exactly this model folder's files and this checkout's router code (the
    sha256 of each in the zip's MANIFEST)."""
    import hashlib

    import hybridopt

    try:
        with zipfile.ZipFile(zip_path) as zf:
            manifest = json.loads(zf.read("model/MANIFEST.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False
    roots = {"model": model_dir, "hybridopt": Path(hybridopt.__file__).parent}
    sources = {roots[k.split("/", 1)[0]] / k.split("/", 1)[1]: v for k, v in manifest.items()
               if k.split("/", 1)[0] in roots and k != f"model/{layout.ROUTER_CONFIG}"}
    try:
        return bool(sources) and all(hashlib.sha256(f.read_bytes()).hexdigest() == h for f, h in sources.items())
    except OSError:
        return False


def ensure_package(params: Params, model_dir: Path | None = None) -> Path:
    """The profile's package zip, built now unless it already holds this model folder's files."""
    zp = package_path(params)
    md = Path(model_dir) if model_dir else params.path("models_dir")
    if not _packaged_from(zp, md):
        build_package(md, zp, router_config(params), params.router.max_package_mb, params.router.target_package_mb)
    return zp


def _window(params: Params) -> str:
    w = params.ab.testbed_window
    if w is None:
        return sorted(params.time_windows, key=lambda k: params.time_windows[k].code)[0]
    if w not in params.time_windows:
        raise ValueError(f"ab.testbed_window {w!r} is not one of {sorted(params.time_windows)}")
    return w


def ab_run_config(params: Params, out_dir: Path, run_id: str, day: str = "2025-11-24") -> dict[str, Any]:
    window = _window(params)
    tw = params.time_windows[window]
    start = datetime.fromisoformat(f"{day}T{tw.start_hour:02d}:00:00").replace(tzinfo=params.tz)
    return {
        "schema_version": "1.0", "experiment": params.experiment, "run_id": run_id, "source": "testbed",
        "time_window": window, "load_pattern": tw.load_pattern, "out_dir": str(out_dir), "seed": params.ab.seed,
        "treatment_share": params.ab.treatment_share, "rate_rps": params.ab.testbed_rate_rps,
        "workloads": {w: {"sizes_kb": list(wl.payload_sizes_kb),
                          "encoding": "base64" if w != "lightweight_api" else "json"}
                      for w, wl in params.workloads.items()},
        "virtual_clock": {"start": start.isoformat(), "utc_offset_minutes": int(start.utcoffset().total_seconds() // 60),
                          "rate": 1.0},
    }


def run_testbed_ab(params: Params, zip_path: Path, out_dir: Path | None = None, n_requests: int | None = None,
                   rate_rps: float | None = None, node: str = "node", timeout_s: float = 600.0,
                   upstreams: tuple[str, str] | None = None) -> TestbedAB:
    """The online A/B through the router, driven by Artillery: against a local testbed started here
    (upstreams None), or against the given (lambda, ecs) base URLs (the aws profile, real clock)."""
    import contextlib

    from hybridopt.emulation import testbed

    n = n_requests or params.ab.testbed_requests
    rate = rate_rps or params.ab.testbed_rate_rps
    out = Path(out_dir) if out_dir else ab_dir(params) / "testbed"
    if out.exists():
        shutil.rmtree(out)
    (out / "lines").mkdir(parents=True)
    adir = paths.ARTILLERY_DIR
    art = adir / "node_modules" / "artillery" / "bin" / "run"
    if not art.is_file():
        raise InputError(f"{art} is missing: install Artillery (make install-artillery)")
    # the collection's client timeout (same client as the training data), else Artillery's 60 s
    collection = getattr(params, "collection", None)
    client_timeout_s = float(getattr(collection, "http_timeout_s", None) or 60.0)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hybridopt-ab-") as tmp:
        try:
            zipfile.ZipFile(zip_path).extractall(tmp)
        except zipfile.BadZipFile as exc:
            raise InputError(f"{zip_path}: not a zip archive ({exc}): rebuild it with `python -m hybridopt package "
                             f"--profile {params.profile}`") from None
        router = Router.from_dir(Path(tmp) / "model")
        cfg = ab_run_config(params, out / "lines", f"{params.profile}-ab-{'testbed' if upstreams is None else 'aws'}")
        if upstreams is not None:
            cfg.update(source="aws", virtual_clock={**cfg["virtual_clock"], "real": True})
        cfg_path = out / "ab-run-config.json"
        cfg_path.write_text(json.dumps(cfg, indent=2))
        with contextlib.ExitStack() as stack:
            if upstreams is None:
                tb = stack.enter_context(testbed.start(params))
                upstreams = (tb.base_url, tb.base_url)
            px = stack.enter_context(proxy_for(router, params, upstreams[0], upstreams[1], timeout_s=client_timeout_s))
            env = {k: v for k, v in os.environ.items() if k != "HYBRIDOPT_RUN_CONFIG"}
            preload = (adir / "preload.js").resolve()
            env.update({AB_CONFIG_ENV: str(cfg_path), "HYBRIDOPT_ROUTER_URL": px.base_url,
                        "NODE_OPTIONS": f'{env.get("NODE_OPTIONS", "")} --require "{preload}"'.strip(),
                        "ARTILLERY_DISABLE_TELEMETRY": "true", "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"})
            duration = max(1, int(round(n / rate)))
            overrides = {"config": {"target": px.base_url, "http": {"timeout": client_timeout_s}, "phases": [
                {"name": "ab", "duration": duration, "arrivalRate": rate}]}}
            cmd = [node, str(art), "run", "--output", str(out / "artillery-report.json"),
                   "--overrides", json.dumps(overrides), AB_YML]
            with (out / "artillery.log").open("w") as log:
                proc = subprocess.run(cmd, cwd=adir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      timeout=timeout_s)
            counts = dict(px.counts)
    read = read_ab_lines(params, out / "lines")
    write_quarantine(read, out / "quarantine.jsonl")
    reqs = requests_frame(read.requests, params) if len(read.requests) else pd.DataFrame()
    if len(reqs):
        reqs.to_parquet(out / "requests.parquet", index=False)
    return TestbedAB(out, read.ledger.lines_total, reqs, counts, proc.returncode, time.perf_counter() - t0,
                     read.ledger)


# ----------------------------------------------------------------------------------- simulated run
def model_proba(model_dir: Path, X: pd.DataFrame) -> np.ndarray:
    """P(positive) of the serving model on a feature frame, through its library (fast for 10^5 rows)."""
    meta = json.loads((layout.metadata_path(Path(model_dir))).read_text())["serving"]
    f = str(Path(model_dir) / meta["file"])
    if meta["format"] == "lightgbm_text":
        import lightgbm as lgb

        return lgb.Booster(model_file=f).predict(X.to_numpy(np.float64))
    import xgboost as xgb

    b = xgb.Booster()
    b.load_model(f)
    return np.asarray(b.inplace_predict(X.to_numpy(np.float64)), dtype=np.float64)


def simulated_arrivals(params: Params, n_requests: int, seed: int) -> pd.DataFrame:
    """The profile's daily schedule, day after day, until n_requests arrivals (then cut)."""
    from hybridopt.emulation.simulate import DEFAULT_START_DATE, generate_arrivals

    frames, total, day = [], 0, 0
    while total < n_requests:
        a = generate_arrivals(params, seed + day, DEFAULT_START_DATE + timedelta(days=day))
        if len(a) == 0:
            raise ValueError("the profile's schedule generates no arrivals")
        a["t_s"] = a["t_s"] + day * 86400.0
        a["run_id"] = a["run_id"].astype(str) + f"-ab-d{day}"
        frames.append(a)
        total += len(a)
        day += 1
    arr = pd.concat(frames, ignore_index=True).sort_values("t_s", kind="stable").head(n_requests)
    return arr.reset_index(drop=True)


def simulated_ab(params: Params, model_dir: Path, n_requests: int | None = None, seed: int | None = None,
                 ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The A/B at the plan's scale in virtual time: (analysis frame, run facts)."""
    from hybridopt.emulation.simulate import replay

    n = n_requests or params.ab.simulate_requests
    s = params.ab.seed if seed is None else seed
    t0 = time.perf_counter()
    arr = simulated_arrivals(params, n, s)
    router = Router.from_dir(model_dir, router_config(params))
    spec: FeatureSpec = router.spec
    ctx = arr.rename(columns={})[["workload_type", "payload_size_kb", "sent_at", "time_window", "load_pattern"]]
    p_pos = model_proba(model_dir, spec.frame(ctx))
    p_lambda = p_pos if router.positive_class == "lambda" else 1 - p_pos
    model_lambda = (p_pos >= router.threshold) == (router.positive_class == "lambda")
    static_lambda = arr["workload_type"].map(router.static_rule).to_numpy() == "lambda"
    rng = np.random.default_rng([s, 3])
    treat = rng.random(len(arr)) < params.ab.treatment_share
    to_lambda = np.where(treat, model_lambda, static_lambda)
    arr = arr.assign(platform=np.where(to_lambda, "lambda", "ecs"))
    rows = replay(params, arr, s)
    rows = rows.assign(arm=np.where(treat, "treatment", "control"), router_probability=p_lambda)
    frame = requests_frame(rows, params)
    days = (arr["t_s"].max() - arr["t_s"].min()) / 86400.0 if len(arr) else 0.0
    facts = {"requests": len(frame), "virtual_days": float(days), "seconds": time.perf_counter() - t0,
             "treatment_share": float(treat.mean()), "model_version": router.model_version,
             "windows_per_day": len(params.time_windows)}
    return frame, facts
