"""Data collection that loses nothing: the five-window schedule with real Artillery against the local
testbed (source `testbed`) or the student's AWS endpoints (source `aws`).

`collect(params)` runs every window of `params.time_windows` (in code order: early_morning low,
morning_peak ramp, midday medium, evening burst, late_night low) that is not done yet:

- testbed: starts `hybridopt.emulation.testbed` on 127.0.0.1 (ephemeral port), runs the windows back to back,
  compressed to `collection.window_wall_s` wall seconds each when set (profile quick), and stamps
  `sent_at` with a virtual clock: the window's local start on `collection.virtual_date` plus the
  elapsed wall time, so hour_of_day and time_window are those of the window.
- aws: needs `collection.aws_opt_in: true` or `aws_opt_in=True` (CLI `--aws-opt-in`). Runs only the
  window open now in `params.timezone` (sent_at is the real clock); outside every pending window it
  refuses and names the next one (`allow_outside_window=True` runs the pending windows now).

Each window is one Artillery run (artillery/variance-test-<pattern>-load.yml, phases/target/timeout
from params through --overrides) whose processor writes one contract line per attempt. A window is
done when its manifest says `complete`; anything else is redone on the next call (the partial
attempt is moved, never deleted, to `<raw_dir>-superseded/`), and `force=True` redoes done windows.

Output, per window, under `params.path("raw_dir") / <run_id>/` (run_id = `<profile>-<window>`):

- `<run_id>.w<pid>-<thread>.jsonl`: the contract lines (one file per Artillery worker thread)
- `run-config.json` (what the processor read), `artillery-report.json` (Artillery's --output),
  `artillery.log` (its console), `loadgen-health.w<pid>-<thread>.ndjson` (the processor's
  periodic health records: attempts, lines, in-flight, event-loop lag)
- `manifest.json`:

  | key | meaning |
  |---|---|
  | `manifest_version` | "1" |
  | `run_id`, `experiment`, `profile`, `params_hash` | identity |
  | `time_window`, `load_pattern`, `target` | "testbed" or "aws" |
  | `status` | "complete", "interrupted" (SIGINT/SIGTERM), "failed" (Artillery failed); "running" only if the orchestrator itself died |
  | `started_at`, `ended_at`, `wall_s` | wall clock (ISO-8601, UTC) |
  | `virtual_start` | local start the sent_at clock counts from (testbed), or the real start (aws) |
  | `clock` | "virtual" or "real" |
  | `outside_window` | aws run started outside its window (explicit override) |
  | `phases`, `compression` | the phases Artillery ran; {window_wall_s, pattern_s, factor, rate_scale} |
  | `scheduled_pairs` | pairs Artillery's phaser schedules for those phases |
  | `attempts_made` | requests the processor started (Artillery counter `hybridopt.attempts`; from the health records when an interrupted run wrote no report) |
  | `lines_written` | newline-terminated lines in the run's *.jsonl files |
  | `lines_per_file` | the same per file |
  | `attempts_abandoned` | in flight when the drain grace ran out on an interrupt (listed in the health file) |
  | `checks` | lines_equal_attempts, http_requests_equal_attempts, attempts_equal_two_per_pair, health_final |
  | `artillery` | exit code, counters summary (http.requests, codes, errors, per-endpoint, outcomes), report path |
  | `outcomes` | lines by platform and error kind ("ok" = success) |
  | `generator` | load-generator health: cpu_pct_p50/p95/max (Artillery process tree, % of one core, while the phases ran), event_loop_lag_ms_p50/p99/max (worker, every 10 ms timer sample of the run), event_loop_stalls (1 s periods with a delay > 100 ms), saturated, reason, the limits from params |
  | `testbed` | testbed only: model_time_s_before/after and the admin stats after the window (cold starts, queues, ...) |
  | `targets` | redacted base URLs (no user info or query) |
  | `http_timeout_s`, `artillery_version`, `node_version` | set-up |

Nothing secret is written: secret headers live only in environment variables named in params.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence
from zoneinfo import ZoneInfo

from hybridopt.collection import loadgen
from hybridopt.params import Params, ParamsError

MANIFEST_VERSION = "1"
UTC = timezone.utc
Progress = Callable[[dict[str, Any]], None]


class CollectionRefused(RuntimeError):
    """Collection will not run now (outside the windows, no opt-in, wrong source): the message says why."""


class CollectionFailed(RuntimeError):
    """A window failed (Artillery did not finish) or lost lines; every manifest is written before this
    is raised. `manifests` holds them all."""

    def __init__(self, message: str, manifests: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.manifests = manifests


# --------------------------------------------------------------------------------------------- targets
@dataclass
class Target:
    """Where a window's requests go. `begin_window` is called before each window (testbed: move the
    model clock to the window's virtual start); `stop` once at the end."""
    kind: str                      # testbed | aws
    lambda_base_url: str
    ecs_base_url: str
    begin_window: Callable[[str, datetime], None] = lambda window, virtual_start: None
    stop: Callable[[], None] = lambda: None
    snapshot: Callable[[], dict[str, Any]] = lambda: {}
    info: dict[str, Any] = field(default_factory=dict)


def _admin(base_url: str, method: str, what: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Call the testbed's admin API (/_testbed/<what>) on 127.0.0.1."""
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{base_url}/_testbed/{what}", data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback only
        return json.loads(resp.read())


def start_testbed(params: Params) -> Target:
    """Start the local testbed (hybridopt.emulation.testbed, a child process on an ephemeral port of
    collection.testbed_host). Before each window the model clock is moved forward so that model
    time since the first window equals the virtual time since its start (Lambda environments idle
    between windows are reclaimed, autoscaling evaluated), as between real windows hours apart."""
    from hybridopt.emulation import (
        testbed,  # the PLATFORM layer; imported only when a testbed run needs it
    )

    tb = testbed.start(params, params.collection.testbed_host, port=0, mode="process")
    anchor: dict[str, datetime] = {}

    def begin(window: str, virtual_start: datetime) -> None:
        first = anchor.setdefault("virtual_start", virtual_start)
        want_s = (virtual_start - first).total_seconds()
        now_s = float(_admin(tb.base_url, "GET", "clock")["model_time_s"])
        if want_s > now_s:
            _admin(tb.base_url, "POST", "advance", {"seconds": want_s - now_s})

    def snapshot() -> dict[str, Any]:
        try:
            return _admin(tb.base_url, "GET", "stats")
        except OSError as exc:  # the testbed went away: say so, lose nothing else
            return {"error": str(exc)}

    return Target("testbed", tb.base_url, tb.base_url, begin_window=begin, stop=tb.stop, snapshot=snapshot,
                  info={"base_url": tb.base_url, "testbed": tb})


def aws_target(params: Params) -> Target:
    c = params.collection
    if not c.lambda_base_url or not c.ecs_base_url:
        raise ParamsError(f"profile {params.profile!r}: source aws needs collection.lambda_base_url and "
                          f"collection.ecs_base_url")
    return Target("aws", c.lambda_base_url, c.ecs_base_url)


# --------------------------------------------------------------------------------------------- helpers
def _now_utc() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds")


def run_dir_for(params: Params, window: str) -> Path:
    return params.path("raw_dir") / loadgen.run_id_for(params, window)


def superseded_dir(params: Params) -> Path:
    raw = params.path("raw_dir")
    return raw.parent / f"{raw.name}-superseded"


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    p = run_dir / loadgen.MANIFEST_NAME
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except ValueError:
        return {"status": "unreadable", "file": str(p)}


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    p = run_dir / loadgen.MANIFEST_NAME
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, p)


def is_done(params: Params, window: str) -> bool:
    m = read_manifest(run_dir_for(params, window))
    return bool(m) and m.get("status") == "complete"


def _supersede(params: Params, run_dir: Path) -> Path | None:
    """Move an earlier attempt of a window out of raw_dir (kept, never deleted)."""
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return None
    dest_root = superseded_dir(params)
    dest_root.mkdir(parents=True, exist_ok=True)
    stamp = _now_utc().strftime("%Y%m%dT%H%M%SZ")
    dest = dest_root / f"{run_dir.name}-{stamp}"
    n = 1
    while dest.exists():
        n += 1
        dest = dest_root / f"{run_dir.name}-{stamp}-{n}"
    shutil.move(str(run_dir), str(dest))
    return dest


def _virtual_date(params: Params, today_local: date) -> date:
    """The testbed schedule's date: params, else the one a done window of this schedule used, else today."""
    if params.collection.virtual_date:
        return date.fromisoformat(params.collection.virtual_date)
    for w in loadgen.schedule(params):
        m = read_manifest(run_dir_for(params, w))
        if m and m.get("clock") == "virtual" and m.get("virtual_start"):
            try:
                return datetime.fromisoformat(m["virtual_start"]).date()
            except ValueError:
                continue
    return today_local


def _node_version(node: str) -> str | None:
    try:
        return subprocess.run([node, "--version"], capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


class _CpuSampler(threading.Thread):
    """Samples CPU (percent of one core) of a process and its descendants."""

    def __init__(self, pid: int, interval_s: float) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []   # (epoch s, percent of one core)
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        procs: dict[int, Any] = {}
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._halt.is_set():
            try:
                current = [root] + root.children(recursive=True)
            except psutil.Error:
                break
            total = 0.0
            for p in current:
                if p.pid not in procs:
                    procs[p.pid] = p
                    try:
                        p.cpu_percent(None)  # prime
                    except psutil.Error:
                        pass
                    continue
                try:
                    total += procs[p.pid].cpu_percent(None)
                except psutil.Error:
                    continue
            self.samples.append((time.time(), total))
            self._halt.wait(self.interval_s)

    def stop(self) -> None:
        self._halt.set()


def _print_progress(event: dict[str, Any]) -> None:
    kind = event.get("event")
    if kind == "window_start":
        print(f"[collect] {event['run_id']}: {event['load_pattern']} on {event['target']}, "
              f"{event['duration_s']} s, ~{event['scheduled_pairs']:.0f} pairs "
              f"(virtual start {event['virtual_start']})", flush=True)
    elif kind == "progress":
        print(f"[collect] {event['run_id']}: {event['elapsed_s']:.0f} s, {event['lines']} lines", flush=True)
    elif kind == "window_end":
        m = event["manifest"]
        g = m.get("generator") or {}
        print(f"[collect] {m['run_id']}: {m['status']}, {m['attempts_made']} attempts, {m['lines_written']} lines, "
              f"{m['wall_s']:.0f} s wall, generator CPU p95 {g.get('cpu_pct_p95')} %, "
              f"lag p99 {g.get('event_loop_lag_ms_p99')} ms{' SATURATED' if g.get('saturated') else ''}",
              flush=True)
    elif kind == "skip":
        print(f"[collect] {event['run_id']}: done already ({event['reason']})", flush=True)
    elif kind == "warning":
        print(f"[collect] WARNING: {event['message']}", flush=True)


# ---------------------------------------------------------------------------------------- one window
def run_window(params: Params, window: str, target: Target, *, virtual_start: datetime | None,
               outside_window: bool = False, progress: Progress | None = None,
               node: str | None = None) -> dict[str, Any]:
    """Run one window with Artillery and return its manifest (also written to disk).
    `virtual_start` None means the real clock (aws). Re-raises KeyboardInterrupt after the
    interrupted window's manifest is written."""
    progress = progress or _print_progress
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
    yml = loadgen.config_file_for(tw.load_pattern)
    run_id = loadgen.run_id_for(params, window)
    run_dir = run_dir_for(params, window)
    moved = _supersede(params, run_dir)
    if moved is not None:
        progress({"event": "warning", "message": f"earlier attempt of {run_id} moved to {moved}"})
    run_dir.mkdir(parents=True, exist_ok=True)

    phases = loadgen.run_phases(pattern, c.window_wall_s, c.rate_scale)
    duration_s = sum(p.duration_s for p in phases)
    started = _now_utc()
    tz = ZoneInfo(params.timezone)
    clock = "virtual" if virtual_start is not None else "real"
    vstart = virtual_start if virtual_start is not None else started.astimezone(tz)
    cfg = loadgen.run_config(params, window, run_id=run_id, out_dir=run_dir, source=target.kind,
                             lambda_base_url=target.lambda_base_url, ecs_base_url=target.ecs_base_url,
                             phases=phases, virtual_start=vstart)
    cfg["virtual_clock"]["real"] = clock == "real"
    cfg_path = run_dir / loadgen.RUN_CONFIG_NAME
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    report_path = run_dir / loadgen.REPORT_NAME
    overrides = loadgen.artillery_overrides(phases, target.lambda_base_url, c.http_timeout_s)
    cmd = loadgen.artillery_command(node, adir, yml, report_path, overrides)
    env = loadgen.artillery_env(os.environ, adir, cfg_path, target.lambda_base_url, c.drain_grace_s)

    manifest: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION, "run_id": run_id, "experiment": params.experiment,
        "profile": params.profile, "params_hash": params.hash, "time_window": window,
        "load_pattern": tw.load_pattern, "target": target.kind, "status": "running",
        "started_at": _iso(started), "ended_at": None, "wall_s": None,
        "virtual_start": vstart.isoformat(), "clock": clock, "outside_window": outside_window,
        "phases": [p.config() for p in phases],
        "compression": {"window_wall_s": c.window_wall_s, "pattern_s": pattern.duration_s,
                        "factor": (duration_s / pattern.duration_s), "rate_scale": c.rate_scale},
        "scheduled_pairs": round(loadgen.scheduled_pairs(phases), 3),
        "attempts_made": None, "lines_written": None,
        "targets": {"lambda": loadgen.redact_url(target.lambda_base_url),
                    "ecs": loadgen.redact_url(target.ecs_base_url)},
        "http_timeout_s": c.http_timeout_s, "artillery_version": loadgen.ARTILLERY_VERSION,
        "node_version": node_version, "artillery_config": yml,
    }
    write_manifest(run_dir, manifest)
    target.begin_window(window, vstart)
    before = target.snapshot()
    progress({"event": "window_start", "run_id": run_id, "load_pattern": tw.load_pattern, "target": target.kind,
              "duration_s": duration_s, "scheduled_pairs": manifest["scheduled_pairs"],
              "virtual_start": manifest["virtual_start"]})

    interrupted = False
    # SIGTERM to the orchestrator ends the window like Ctrl-C (drain, manifest, testbed stopped)
    # instead of leaving Artillery running in its own session
    prev_term = (signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
                 if threading.current_thread() is threading.main_thread() else None)
    with open(run_dir / loadgen.LOG_NAME, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=adir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        sampler = _CpuSampler(proc.pid, c.generator.cpu_sample_interval_s)
        sampler.start()
        every_s = max(5.0, duration_s / 10)
        next_report = time.monotonic() + every_s
        t0 = time.monotonic()
        try:
            while proc.poll() is None:
                time.sleep(0.2)
                if time.monotonic() >= next_report:
                    next_report += every_s
                    lines = sum(loadgen.count_lines(run_dir).values())
                    progress({"event": "progress", "run_id": run_id, "elapsed_s": time.monotonic() - t0,
                              "lines": lines})
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
    ended = _now_utc()
    manifest.update(_finish(params, run_dir, report_path, rc, interrupted, sampler.samples))
    manifest["ended_at"] = _iso(ended)
    manifest["wall_s"] = round((ended - started).total_seconds(), 3)
    after = target.snapshot()
    if before or after:
        manifest["testbed"] = {"model_time_s_before": before.get("model_time_s"),
                               "model_time_s_after": after.get("model_time_s"),
                               "stats_after": after}
    write_manifest(run_dir, manifest)
    progress({"event": "window_end", "manifest": manifest})
    if interrupted:
        raise KeyboardInterrupt(f"collection interrupted in {run_id}; its manifest is {run_dir / 'manifest.json'}")
    return manifest


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
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


def _finish(params: Params, run_dir: Path, report_path: Path, rc: int | None, interrupted: bool,
            cpu_samples: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """Everything the manifest learns after Artillery exited."""
    report = None
    if report_path.is_file():
        try:
            report = json.loads(report_path.read_text())
        except ValueError:
            report = None
    counters = loadgen.counters_summary(report)
    health = loadgen.read_health(run_dir)
    totals = loadgen.health_totals(health)
    per_file = loadgen.count_lines(run_dir)
    lines = sum(per_file.values())
    attempts = counters.get("hybridopt.attempts") if report else totals["attempts"]
    # the run window: from the workers' run start to their last periodic record
    starts = [_epoch(r.get("t")) for r in health if r.get("event") == "run_start"]
    ends = [_epoch(r.get("t")) for r in health if r.get("final")]
    t_start = min((s for s in starts if s is not None), default=None)
    t_end = max((e for e in ends if e is not None), default=None)
    # CPU while the phases ran (not Artillery's start-up); none if the run never started
    cpu = [pct for t, pct in cpu_samples
           if t_start is not None and t >= t_start + 1.0 and (t_end is None or t <= t_end)]
    g = params.collection.generator
    generator = loadgen.generator_health(cpu, health, g.cpu_pct_p95_max, g.event_loop_lag_ms_p99_max)
    if interrupted or rc in (130, 143, -2, -15):
        status = "interrupted"
    elif rc == 0 and report is not None:
        status = "complete"
    else:
        status = "failed"
    checks = {
        "lines_equal_attempts": attempts is not None and lines == attempts,
        "http_requests_equal_attempts": (counters.get("http.requests") == attempts) if report else None,
        "attempts_equal_two_per_pair": (attempts == 2 * (counters.get("hybridopt.pairs") if report
                                                        else totals["pairs"])) if attempts is not None else None,
        "health_final": totals["all_final"],
    }
    return {"status": status, "attempts_made": attempts, "lines_written": lines, "lines_per_file": per_file,
            "attempts_abandoned": len(totals["abandoned_in_flight"]), "checks": checks,
            "artillery": {"exit_code": rc, "report": report_path.name if report is not None else None,
                          "counters": counters},
            "outcomes": loadgen.outcome_counts(run_dir), "generator": generator,
            "health_workers": totals["workers"],
            "errors_excerpt": None if status == "complete" else _log_errors(run_dir / loadgen.LOG_NAME)}


def _log_errors(log: Path, limit: int = 5) -> list[str]:
    """The first error lines of Artillery's console log (why a run failed)."""
    if not log.is_file():
        return []
    lines = log.read_text(errors="replace").splitlines()
    hits = [ln.strip() for ln in lines if "error" in ln.lower()][:limit]
    return hits or [ln.strip() for ln in lines[-limit:]]


def _epoch(iso: Any) -> float | None:
    if not isinstance(iso, str):
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# ----------------------------------------------------------------------------------------- schedule
def plan(params: Params, *, force: bool = False) -> list[tuple[str, bool]]:
    """(window, done already) in schedule order."""
    return [(w, (not force) and is_done(params, w)) for w in loadgen.schedule(params)]


def collect(params: Params, *, force: bool = False, allow_outside_window: bool = False,
            aws_opt_in: bool = False, now: datetime | None = None, progress: Progress | None = None,
            target_factory: Callable[[Params], Target] | None = None,
            windows: Sequence[str] | None = None, node: str | None = None) -> list[dict[str, Any]]:
    """Run the profile's pending windows; return the manifests of every window of the schedule
    (done before or now). Raises CollectionRefused when nothing may run now."""
    progress = progress or _print_progress
    source = params.source
    if source not in ("testbed", "aws"):
        raise CollectionRefused(f"profile {params.profile!r} has source {source!r}: `collect` drives Artillery "
                                f"against the testbed or AWS only (legacy logs are read in place; the simulator "
                                f"writes its own logs)")
    todo = [w for w, done in plan(params, force=force) if not done and (windows is None or w in windows)]
    for w, done in plan(params, force=force):
        if done:
            m = read_manifest(run_dir_for(params, w)) or {}
            progress({"event": "skip", "run_id": m.get("run_id", w), "reason": "manifest says complete"})
            if m.get("params_hash") != params.hash:
                progress({"event": "warning", "message": f"{w} was collected with other params "
                          f"(hash {m.get('params_hash')} vs {params.hash}); --force redoes it"})
    if not todo:
        return manifests(params)
    now = now or _now_utc()
    tz = ZoneInfo(params.timezone)
    if source == "aws":
        if not (params.collection.aws_opt_in or aws_opt_in):
            raise CollectionRefused(
                f"profile {params.profile!r} sends real traffic to AWS: opt in with `--aws-opt-in` "
                f"(or collection.aws_opt_in: true in params/{params.profile}.yaml)")
        if not allow_outside_window:
            open_now = loadgen.open_window(params, now)
            if open_now is None or open_now not in todo:
                nxt = loadgen.next_window(params, now, todo)
                where = (f"the next pending window is {nxt[0]} at {nxt[1].isoformat()} ({params.timezone})"
                         if nxt else "no pending window")
                why = (f"{open_now} is open but done already" if open_now
                       else f"no window is open at {now.astimezone(tz).isoformat()}")
                raise CollectionRefused(f"{why}; {where}. Run then, or pass --allow-outside-window "
                                        f"(its hour_of_day then disagrees with time_window)")
            todo = [open_now]
    factory = target_factory or (start_testbed if source == "testbed" else aws_target)
    target = factory(params)
    vdate = _virtual_date(params, now.astimezone(tz).date())
    problems = []
    try:
        for w in todo:
            vstart = None
            if source == "testbed":
                vstart = loadgen.window_bounds(params, w, vdate)[0]
            m = run_window(params, w, target, virtual_start=vstart,
                           outside_window=(source == "aws" and allow_outside_window
                                           and loadgen.open_window(params, _now_utc()) != w),
                           progress=progress, node=node)
            if m["status"] != "complete":
                problems.append(f"{m['run_id']}: {m['status']} (Artillery exit code {m['artillery']['exit_code']}): "
                                f"{'; '.join(m.get('errors_excerpt') or [])[:500]}")
            elif not m["checks"]["lines_equal_attempts"]:
                problems.append(f"{m['run_id']}: {m['lines_written']} lines for {m['attempts_made']} attempts")
    finally:
        target.stop()
    result = manifests(params)
    if problems:
        raise CollectionFailed("collection incomplete (manifests and artillery.log under "
                               f"{params.path('raw_dir')}):\n  " + "\n  ".join(problems), result)
    return result


def manifests(params: Params) -> list[dict[str, Any]]:
    """Every window's manifest in schedule order (status 'pending' when it has none)."""
    out = []
    for w in loadgen.schedule(params):
        m = read_manifest(run_dir_for(params, w))
        out.append(m if m is not None else {"run_id": loadgen.run_id_for(params, w), "time_window": w,
                                            "status": "pending"})
    return out


def run_profile(params: Params, *, force: bool = False, progress: Progress | None = None) -> list[dict[str, Any]]:
    """What notebook 01 runs: collect (testbed/aws) the pending windows, or, for sources this module
    does not drive (legacy logs read in place, the simulator), only return the manifests found."""
    if params.source in ("testbed", "aws"):
        return collect(params, force=force, progress=progress)
    (progress or _print_progress)({"event": "warning", "message": f"source {params.source!r}: nothing for "
                                   f"Artillery to collect; summarising what is on disk"})
    return manifests(params) if params.source == "simulator" else []


# ------------------------------------------------------------------------------------------ summaries
def summary_rows(manifests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per window for tables: attempts, lines, errors by kind, generator health."""
    rows = []
    for m in manifests:
        g = m.get("generator") or {}
        kinds: dict[str, int] = {}
        for per in ((m.get("outcomes") or {}).get("by_platform") or {}).values():
            for k, v in per.items():
                kinds[k] = kinds.get(k, 0) + v
        row = {"run_id": m.get("run_id"), "time_window": m.get("time_window"),
               "load_pattern": m.get("load_pattern"), "status": m.get("status"),
               "wall_s": m.get("wall_s"), "scheduled_pairs": m.get("scheduled_pairs"),
               "attempts_made": m.get("attempts_made"), "lines_written": m.get("lines_written"),
               "lines_equal_attempts": (m.get("checks") or {}).get("lines_equal_attempts"),
               "ok": kinds.pop("ok", 0) if kinds else None,
               "cpu_pct_p95": g.get("cpu_pct_p95"), "event_loop_lag_ms_p99": g.get("event_loop_lag_ms_p99"),
               "saturated": g.get("saturated"), "saturation_reason": g.get("reason")}
        for k in sorted(kinds):
            row[f"error_{k}"] = kinds[k]
        rows.append(row)
    return rows


def legacy_summary(params: Params) -> list[dict[str, Any]]:
    """Legacy logs already on disk (source legacy): files, lines and bytes per collection folder."""
    root = params.path("legacy_dir")
    if not root.is_dir():
        raise FileNotFoundError(f"profile {params.profile!r}: data.legacy_dir {root} does not exist")
    rows = []
    for folder in sorted({p.parent for p in root.rglob("*.jsonl")}):
        files = sorted(folder.glob("*.jsonl"))
        n_lines = 0
        for f in files:
            with open(f, "rb") as fh:
                n_lines += sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
        rows.append({"folder": str(folder.relative_to(root)), "files": len(files), "lines": n_lines,
                     "bytes": sum(f.stat().st_size for f in files)})
    return rows
