"""Running the A/B test: on the local testbed through the router proxy with Artillery (wall clock),
and in the simulator at the plan's scale (virtual clock, `hybridopt.ab.simulated`). Both end in the
same analysis frame (`requests_frame`): arm, platform, latency_ms, ok, bill_usd (the request's share
of its arm's bill, `hybridopt.ab.billing`: its mean is the arm's average bill per request),
marginal_usd (the router's marginal cost of the platform it chose, objective path), slo_miss (failed,
or slower than the default objective's SLO of its workload), the plan's classifier's P(lambda), the
request's context and, on the objective path, what the router decided and predicted.

Testbed run: build/unzip the package, start the testbed (hybridopt.emulation.testbed.start) and the
router proxy in front of it (one router, one load tracker: the proxy reports every completion), run
artillery/ab-test.yml (ab-functions.js) for ab.testbed_requests arrivals at ab.testbed_rate_rps in
ab.testbed_window's load pattern, read the contract lines it wrote and join the proxy's decision
records by request id. The testbed records no ECS task timeline: the bill takes the deployed count.
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
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from hybridopt import model_dir as layout
from hybridopt import paths
from hybridopt.ab.billing import ArmBills, arm_bills
from hybridopt.ab.proxy import proxy_for
from hybridopt.ab.simulated import model_proba, simulated_ab, simulated_arrivals
from hybridopt.data.ingest import IngestResult, ingest, write_quarantine
from hybridopt.data.reader import Ledger
from hybridopt.decision.capacity import CapacityTimeline
from hybridopt.errors import InputError
from hybridopt.params import Params
from hybridopt.router.handler import Router
from hybridopt.router.package import build_package, package_path, router_config

__all__ = ["TestbedAB", "ab_dir", "ensure_package", "model_proba", "read_ab_lines", "requests_frame", "run_testbed_ab",
           "simulated_ab", "simulated_arrivals", "with_routed_platform"]

AB_CONFIG_ENV = "HYBRIDOPT_AB_CONFIG"
AB_YML = "ab-test.yml"


def ab_dir(params: Params) -> Path:
    return params.path("raw_dir").parent / "ab"


# --------------------------------------------------------------------------------- analysis frames
def requests_frame(lines: pd.DataFrame, params: Params, timeline: CapacityTimeline | None = None,
                   per_request: pd.DataFrame | None = None) -> tuple[pd.DataFrame, ArmBills]:
    """Routed requests -> (the A/B analysis frame, the arms' bills). `lines`: the requests frame of
    `read_ab_lines` (typed by the reader) or the simulator's contract rows, with `arm`;
    `per_request`: extra columns row-aligned with `lines` (what the router decided and predicted);
    `timeline`: the ECS tasks that ran (None: the deployed count). Text columns come out as plain
    objects either way."""
    if lines.empty:
        raise ValueError("no A/B request lines")
    df = lines.reset_index(drop=True).copy()
    df["sent_at"] = pd.to_datetime(df["sent_at"], utc=True, format="ISO8601")
    for col in ("memory_limit_mb", "billed_duration_ms", "execution_time_ms", "init_duration_ms", "total_ms",
                "actual_payload_size_kb", "target_payload_size_kb"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    bills = arm_bills(df, params, timeline)
    status = pd.to_numeric(df["http_status"], errors="coerce").astype("float64")
    text = {c: df[c].astype(object) for c in ("arm", "platform", "workload_type", "time_window", "load_pattern",
                                              "source")}
    ok = (df["error"].isna() & status.between(200, 299)).to_numpy(bool)
    slo = df["workload_type"].astype(str).map(dict(params.decision.objective.slo_p95_ms)).astype("float64")
    latency = df["total_ms"]
    out = pd.DataFrame({
        "request_id": df["request_id"].astype(object), "arm": text["arm"], "platform": text["platform"],
        "latency_ms": latency, "bill_usd": bills.bill_usd, "ok": ok,
        "slo_miss": ~ok | ~(latency <= slo).to_numpy(bool),
        "router_probability": pd.to_numeric(df.get("router_probability"), errors="coerce").astype("float64"),
        "workload_type": text["workload_type"], "payload_size_kb": df["target_payload_size_kb"],
        "time_window": text["time_window"], "load_pattern": text["load_pattern"], "sent_at": df["sent_at"],
        "source": text["source"]})
    if per_request is not None:
        if len(per_request) != len(out):
            raise ValueError(f"per_request has {len(per_request)} rows for {len(out)} request lines")
        out = pd.concat([out, per_request.reset_index(drop=True).drop(columns=[c for c in per_request.columns
                                                                               if c in out.columns])], axis=1)
    return out, bills


def decisions_frame(decisions: list[dict[str, Any]], request_ids: pd.Series) -> pd.DataFrame:
    """The proxy's decision records (objective path) as columns row-aligned with the request lines
    (by request id; a line the proxy never decided has NaN / None)."""
    cols = ["marginal_usd", "other_marginal_usd", "p50_ms", "p95_ms", "p_fail", "workload_in_flight_ecs",
            "in_flight_lambda", "in_flight_ecs", "objective_platform", "workload_rule_platform", "decision_id",
            "upstream_status", "routed_platform", "upstream_error"]
    recs = []
    for d in decisions:
        plat = d.get("platform")
        per = d.get("platforms") or {}
        other = "ecs" if plat == "lambda" else "lambda"
        mine = per.get(plat) or {}
        load = d.get("load") or {}
        recs.append({"request_id": d.get("request_id"), "marginal_usd": mine.get("marginal_usd"),
                     "other_marginal_usd": (per.get(other) or {}).get("marginal_usd"),
                     "p50_ms": mine.get("p50_ms"), "p95_ms": mine.get("p95_ms"), "p_fail": mine.get("p_fail"),
                     **{k: load.get(k) for k in ("workload_in_flight_ecs", "in_flight_lambda", "in_flight_ecs")},
                     "objective_platform": d.get("objective_platform"),
                     "workload_rule_platform": d.get("workload_rule_platform"), "decision_id": d.get("decision_id"),
                     "upstream_status": d.get("upstream_status"), "routed_platform": plat,
                     "upstream_error": d.get("upstream_error")})
    dec = pd.DataFrame(recs, columns=["request_id", *cols]).drop_duplicates("request_id")
    joined = pd.DataFrame({"request_id": request_ids.astype(str).to_numpy()}).merge(
        dec.astype({"request_id": str}), on="request_id", how="left")
    for c in cols[:8]:
        joined[c] = pd.to_numeric(joined[c], errors="coerce").astype("float64")
    return joined.drop(columns="request_id")


def with_routed_platform(lines: pd.DataFrame, decided: pd.DataFrame | None) -> pd.DataFrame:
    """The request lines with `platform` taken from the proxy's decision record where the line has
    none: a client that timed out never saw the answer's `x-router-platform`, but the router sent
    the request to a platform (which ran it, and is billed for it)."""
    if decided is None or "routed_platform" not in decided.columns:
        return lines
    if len(decided) != len(lines):
        raise ValueError(f"decision columns have {len(decided)} rows for {len(lines)} request lines")
    out = lines.copy()
    plat = out["platform"].astype(object)
    routed = decided["routed_platform"].astype(object).to_numpy()
    fill = plat.isna().to_numpy() & pd.notna(routed)
    out["platform"] = plat.where(~fill, routed)
    return out


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
    bills: ArmBills | None = None
    decisions: int = 0           # proxy decision records (objective path)
    completions: dict[str, int] | None = None   # the router's completion counts (reported, unknown, expired)


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
            idle = px.wait_idle(2 * client_timeout_s + 5)      # forwards still running (their clients gone)
            counts = dict(px.counts)
            decisions = list(px.decisions)
            if not idle:
                counts["still_forwarding_at_end"] = px.active
        completions = dict(router.decision.completions) if router.decision is not None else None
    with (out / "decisions.jsonl").open("w") as fh:
        for d in decisions:
            fh.write(json.dumps(d) + "\n")
    read = read_ab_lines(params, out / "lines")
    write_quarantine(read, out / "quarantine.jsonl")
    bills = None
    reqs = pd.DataFrame()
    if len(read.requests):
        extra = decisions_frame(decisions, read.requests["request_id"]) if decisions else None
        reqs, bills = requests_frame(with_routed_platform(read.requests, extra), params, None, extra)
        reqs.to_parquet(out / "requests.parquet", index=False)
    return TestbedAB(out, read.ledger.lines_total, reqs, counts, proc.returncode, time.perf_counter() - t0,
                     read.ledger, bills, len(decisions), completions)
