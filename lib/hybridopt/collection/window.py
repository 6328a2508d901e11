"""One time window: render the Artillery script and the processor's run config, run Artillery,
report progress while it runs, stop it cleanly on Ctrl-C or SIGTERM, and write the manifest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from datetime import datetime
from types import FrameType
from zoneinfo import ZoneInfo

from hybridopt.collection import loadgen
from hybridopt.collection.health import CpuSampler, RunDirWatcher
from hybridopt.collection.manifest import (
    MANIFEST_VERSION,
    Manifest,
    finished_run,
    iso,
    now_utc,
    run_dir_for,
    supersede,
    write_manifest,
)
from hybridopt.collection.progress import (
    Notice,
    Progress,
    WindowFinished,
    WindowProgress,
    WindowSlot,
    WindowStarted,
    print_progress,
    progress_every_s,
)
from hybridopt.collection.targets import Target
from hybridopt.data import contract
from hybridopt.params import Params


def run_window(params: Params, window: str, target: Target, *, virtual_start: datetime | None,
               outside_window: bool = False, progress: Progress | None = None, node: str | None = None,
               position: tuple[int, int] = (1, 1), report_every_s: float | None = None) -> Manifest:
    """Run one window with Artillery and return its manifest (also written to disk).

    `virtual_start` None means the real clock (aws). `position` is (k, N) for "window k of N" in
    the progress lines; `report_every_s` how often a running window reports (default
    `progress.progress_every_s` of its phases). Re-raises KeyboardInterrupt after the interrupted
    window's manifest is written."""
    progress = progress or print_progress
    node = node or loadgen.default_node()
    c = params.collection
    tw = params.time_windows[window]
    pattern = params.load_patterns[tw.load_pattern]
    adir = loadgen.artillery_dir(params)
    loadgen.check_installed(adir)
    node_version = _node_version(node)
    if not node_version or not node_version.startswith("v"):
        raise FileNotFoundError(f"{node!r} is not a working Node.js (Artillery needs Node >= 18.16.1; set "
                                f"HYBRIDOPT_NODE to its path)")
    run_id = loadgen.run_id_for(params, window)
    slot = WindowSlot(position[0], position[1], window, tw.load_pattern, run_id)
    run_dir = run_dir_for(params, window)
    moved = supersede(params, run_dir)
    if moved is not None:
        progress(Notice(f"earlier attempt of {run_id} moved to {moved}"))
    run_dir.mkdir(parents=True, exist_ok=True)

    phases = loadgen.window_phases(params, window)  # the probe (when on), then the load pattern's phases
    phases_s = sum(p.wall_s for p in phases)
    probe_s = sum(p.wall_s for p in phases if p.name == contract.PROBE_PHASE)
    started = now_utc()
    clock = "virtual" if virtual_start is not None else "real"
    vstart = virtual_start if virtual_start is not None else started.astimezone(ZoneInfo(params.timezone))
    cfg = loadgen.run_config(params, window, run_id=run_id, out_dir=run_dir, source=target.kind,
                             lambda_base_url=target.lambda_base_url, ecs_base_url=target.ecs_base_url,
                             phases=phases, virtual_start=vstart)
    cfg["virtual_clock"]["real"] = clock == "real"
    cfg_path = run_dir / loadgen.RUN_CONFIG_NAME
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    script = loadgen.write_script(adir, run_dir, phases, target.lambda_base_url, c.http_timeout_s)
    report_path = run_dir / loadgen.REPORT_NAME
    cmd = loadgen.artillery_command(node, adir, script, report_path)
    env = loadgen.artillery_env(os.environ, adir, cfg_path, c.drain_grace_s)

    manifest: Manifest = {
        "manifest_version": MANIFEST_VERSION, "run_id": run_id, "experiment": params.experiment,
        "profile": params.profile, "params_hash": params.hash, "time_window": window,
        "load_pattern": tw.load_pattern, "target": target.kind, "status": "running",
        "started_at": iso(started), "ended_at": None, "wall_s": None,
        "virtual_start": vstart.isoformat(), "clock": clock, "outside_window": outside_window,
        "phases": [p.config() for p in phases],
        "compression": {"window_wall_s": c.window_wall_s, "pattern_s": pattern.duration_s,
                        "factor": ((phases_s - probe_s) / pattern.duration_s), "rate_scale": c.rate_scale},
        "probe": ({"pairs": c.probe.pairs, "rate_rps": c.probe.rate_rps, "workload": c.probe.workload,
                   "wall_s": probe_s} if probe_s else None),
        "scheduled_pairs": round(loadgen.scheduled_pairs(phases), 3),
        "pairs_sent": None, "attempts_made": None, "lines_written": None,
        "targets": {"lambda": loadgen.redact_url(target.lambda_base_url),
                    "ecs": loadgen.redact_url(target.ecs_base_url)},
        "http_timeout_s": c.http_timeout_s, "artillery_version": loadgen.ARTILLERY_VERSION,
        "node_version": node_version, "artillery_config": script.name,
    }
    write_manifest(run_dir, manifest)
    target.begin_window(window, vstart)
    before = target.snapshot()
    progress(WindowStarted(slot, target.kind, phases_s, manifest["scheduled_pairs"], manifest["virtual_start"]))

    interrupted = False
    # SIGTERM to the orchestrator ends the window like Ctrl-C (drain, manifest, testbed stopped)
    # instead of leaving Artillery running in its own session
    prev_term = (signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
                 if threading.current_thread() is threading.main_thread() else None)
    every_s = report_every_s if report_every_s is not None else progress_every_s(phases_s)
    watcher = RunDirWatcher(run_dir)
    with open(run_dir / loadgen.LOG_NAME, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=adir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        sampler = CpuSampler(proc.pid, c.generator.cpu_sample_interval_s)
        sampler.start()
        t0 = time.monotonic()
        next_report = t0 + every_s
        try:
            while proc.poll() is None:
                time.sleep(0.2)
                if time.monotonic() >= next_report:
                    next_report += every_s
                    now = watcher.counts()
                    progress(WindowProgress(slot, time.monotonic() - t0, phases_s, now.pairs_sent,
                                            manifest["scheduled_pairs"], now.attempts, now.lines_written))
        except KeyboardInterrupt:
            interrupted = True
            _interrupt(proc, c.drain_grace_s + 15)
        finally:
            if proc.poll() is None:  # any other exception: do not leave Artillery running
                _interrupt(proc, c.drain_grace_s + 15)
            sampler.stop()
            sampler.join(timeout=5)
            if prev_term is not None:
                signal.signal(signal.SIGTERM, prev_term)
    rc = proc.returncode
    ended = now_utc()
    manifest.update(finished_run(params, run_dir, report_path, rc, interrupted, sampler.samples))
    manifest["ended_at"] = iso(ended)
    manifest["wall_s"] = round((ended - started).total_seconds(), 3)
    after = target.snapshot()
    if before or after:
        manifest["testbed"] = {"model_time_s_before": before.get("model_time_s"),
                               "model_time_s_after": after.get("model_time_s"),
                               "stats_after": after}
    write_manifest(run_dir, manifest)
    progress(WindowFinished(slot, manifest))
    if interrupted:
        raise KeyboardInterrupt(f"collection interrupted in {run_id}; its manifest is {run_dir / 'manifest.json'}")
    return manifest


def _node_version(node: str) -> str | None:
    try:
        return subprocess.run([node, "--version"], capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _interrupt(proc: subprocess.Popen[bytes], wait_s: float) -> None:
    """SIGINT to Artillery's process group (its graceful shutdown; the processor drains in-flight
    requests), SIGKILL if it has not exited after wait_s."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
