"""Pure helpers behind `collect`: the schedule, the phases Artillery runs, the Artillery script
rendered from the template artillery/variance-test.yml, the run config the processor
(artillery/variance-functions.js) reads, Artillery's command line and environment, and the
summaries of what a window produced (counters, lines, load-generator health).

Nothing here starts a process or touches the network; window.py runs Artillery."""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence, TypedDict
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import yaml

from hybridopt import paths
from hybridopt.data import contract
from hybridopt.params import LoadPattern, Params, ParamsError, Probe

ARTILLERY_VERSION = "2.0.21"
RUN_CONFIG_NAME = "run-config.json"
REPORT_NAME = "artillery-report.json"
LOG_NAME = "artillery.log"
MANIFEST_NAME = "manifest.json"
HEALTH_GLOB = "loadgen-health.*.ndjson"
SCRIPT_TEMPLATE = "variance-test.yml"     # in the Artillery folder; one for every load pattern
SCRIPT_NAME = "artillery-script.yml"      # the rendered script, in each window's run directory


# ------------------------------------------------------------------------------------------ schedule
def schedule(params: Params) -> list[str]:
    """The time windows in the order the schedule runs them (by code: early morning first)."""
    return sorted(params.time_windows, key=lambda w: params.time_windows[w].code)


def run_id_for(params: Params, window: str) -> str:
    """One run per time window of a profile's schedule (the contract's run_id)."""
    return f"{params.profile}-{window}"


def window_bounds(params: Params, window: str, day: date) -> tuple[datetime, datetime]:
    """Local start and end of a window on a given local date (end_hour 24 = next midnight)."""
    tw = params.time_windows[window]
    tz = ZoneInfo(params.timezone)
    start = datetime(day.year, day.month, day.day, tw.start_hour, tzinfo=tz)
    end_day = datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(hours=tw.end_hour)
    end = datetime(end_day.year, end_day.month, end_day.day, end_day.hour, tzinfo=tz)
    if end <= start:  # a window that wraps past midnight
        end += timedelta(days=1)
    return start, end


def open_window(params: Params, now: datetime) -> str | None:
    """The window that is open at `now` (aware), in the profile's timezone, or None."""
    local = now.astimezone(ZoneInfo(params.timezone))
    for name in schedule(params):
        for day in (local.date(), local.date() - timedelta(days=1)):
            start, end = window_bounds(params, name, day)
            if start <= local < end:
                return name
    return None


def next_window(params: Params, now: datetime, among: Iterable[str]) -> tuple[str, datetime] | None:
    """The first of `among` to open strictly after `now`, with its local start."""
    local = now.astimezone(ZoneInfo(params.timezone))
    best: tuple[str, datetime] | None = None
    for name in among:
        for offset in range(0, 3):
            start, _ = window_bounds(params, name, local.date() + timedelta(days=offset))
            if start > local:
                if best is None or start < best[1]:
                    best = (name, start)
                break
    return best


# -------------------------------------------------------------------------------------------- phases
@dataclass(frozen=True)
class RunPhase:
    """One Artillery phase: whole seconds (Artillery's ramps step once per second), optionally
    followed by a pause of `pause_after_s` seconds without arrivals that still counts as this phase.

    Artillery fires the last arrival of every second at the second's end, i.e. the last arrival of a
    phase lands on the boundary with the next one, where the processor's clock cannot tell the two
    phases apart; a pause after a phase moves that boundary a whole second away from any arrival."""
    name: str
    duration_s: int
    arrival_rate_rps: float
    ramp_to_rps: float | None = None
    pause_after_s: int = 0

    @property
    def wall_s(self) -> int:
        """Seconds the phase takes, its pause included."""
        return self.duration_s + self.pause_after_s

    def artillery_phases(self) -> list[dict[str, str | float]]:
        """The Artillery phases: `artillery()`, then the pause when there is one."""
        pause: list[dict[str, str | float]] = ([{"name": f"{self.name}-pause", "pause": self.pause_after_s}]
                                               if self.pause_after_s else [])
        return [self.artillery(), *pause]

    def artillery(self) -> dict[str, str | float]:
        """The Artillery phase. A constant rate is written as a ramp to the same rate: Artillery
        2.0.21 runs constant phases on `arrivals`/nanotimer, which busy-waits the last 25 ms before
        every arrival (about 75 % of a core at 30 arrivals/s, all of it above 40/s: node_modules/
        nanotimer/lib/nanotimer.js setInterval), while ramps tick with driftless timers
        (int-core/lib/phases.js createRamp). Same arrivals per second, without the spin."""
        return {"name": self.name, "duration": self.duration_s, "arrivalRate": self.arrival_rate_rps,
                "rampTo": self.arrival_rate_rps if self.ramp_to_rps is None else self.ramp_to_rps}

    def config(self) -> dict[str, str | float | None]:
        """The phase as the run config lists it (the processor's schedule lookup)."""
        return {"name": self.name, "duration_s": self.duration_s, "arrival_rate_rps": self.arrival_rate_rps,
                "ramp_to_rps": self.ramp_to_rps, "pause_after_s": self.pause_after_s}


def run_phases(pattern: LoadPattern, window_wall_s: float | None = None,
               rate_scale: float = 1.0) -> list[RunPhase]:
    """The phases of a load pattern, optionally compressed to `window_wall_s` seconds in total
    (each phase keeps its share of the window, at least 1 s) and with rates scaled."""
    total = pattern.duration_s
    factor = 1.0 if window_wall_s is None else window_wall_s / total
    out = []
    for p in pattern.phases:
        d = max(1, int(round(p.duration_s * factor)))
        ramp = None if p.ramp_to_rps is None else round(p.ramp_to_rps * rate_scale, 6)
        out.append(RunPhase(p.name, d, round(p.arrival_rate_rps * rate_scale, 6), ramp))
    return out


def probe_phase(probe: Probe) -> RunPhase | None:
    """The probe phase that runs before a window's load phases (None when `probe.pairs` is 0): a
    constant rate for the whole seconds that send `probe.pairs` pairs (rate_scale does not apply),
    then a one-second pause, so the probe's last pair is a second away from the first load pair."""
    if probe.pairs == 0:
        return None
    return RunPhase(contract.PROBE_PHASE, probe.duration_s, round(probe.pairs / probe.duration_s, 6),
                    pause_after_s=1)


def window_phases(params: Params, window: str) -> list[RunPhase]:
    """Every phase Artillery runs for one window: the probe (when on), then the load pattern's phases
    compressed and scaled as `collection` says."""
    c = params.collection
    pattern = params.load_patterns[params.time_windows[window].load_pattern]
    probe = probe_phase(c.probe)
    return ([probe] if probe is not None else []) + run_phases(pattern, c.window_wall_s, c.rate_scale)


def scheduled_pairs(phases: Sequence[RunPhase]) -> float:
    """Pairs Artillery's phaser schedules (int-core phases.js: a ramp of d seconds runs
    rate_i = a + (b - a) / (d - 1) * i arrivals in second i; a constant rate runs d * rate)."""
    n = 0.0
    for p in phases:
        if p.ramp_to_rps is None:
            n += p.duration_s * p.arrival_rate_rps
        elif p.duration_s == 1:
            n += (p.arrival_rate_rps + p.ramp_to_rps) / 2
        else:
            step = (p.ramp_to_rps - p.arrival_rate_rps) / (p.duration_s - 1)
            n += sum(p.arrival_rate_rps + step * i for i in range(p.duration_s))
    return n


# ---------------------------------------------------------------------------------------- run config
class WorkloadConfig(TypedDict):
    """One workload as the processor sees it (run config `workloads.<name>`)."""
    sizes_kb: list[float]
    lambda_route: str
    ecs_route: str
    encoding: Literal["json", "base64"]


def workload_config(params: Params) -> dict[str, WorkloadConfig]:
    """Payload sizes, routes and payload encoding per workload (checks payload_encoding's names)."""
    enc = params.collection.payload_encoding
    unknown = sorted(set(enc) - set(params.workloads))
    if unknown:
        raise ParamsError(f"profile {params.profile!r}: collection.payload_encoding names unknown workloads "
                          f"{unknown}; known: {sorted(params.workloads)}")
    return {name: WorkloadConfig(sizes_kb=list(w.payload_sizes_kb), lambda_route=w.lambda_route,
                                 ecs_route=w.ecs_route, encoding=enc.get(name, "base64"))
            for name, w in params.workloads.items()}


def utc_offset_minutes(moment: datetime) -> int:
    off = moment.utcoffset()
    if off is None:
        raise ValueError(f"{moment!r} has no timezone")
    return int(off.total_seconds() // 60)


def run_config(params: Params, window: str, *, run_id: str, out_dir: Path, source: str,
               lambda_base_url: str, ecs_base_url: str, phases: Sequence[RunPhase],
               virtual_start: datetime) -> dict[str, Any]:
    """The JSON the processor reads (HYBRIDOPT_RUN_CONFIG). Holds no secret: secret headers are
    named by environment variable only."""
    c = params.collection
    tw = params.time_windows[window]
    return {
        "schema_version": contract.SCHEMA_VERSION,
        "experiment": params.experiment,
        "run_id": run_id,
        "source": source,
        "time_window": window,
        "load_pattern": tw.load_pattern,
        "out_dir": str(out_dir),
        "seed": c.seed,
        "http_timeout_s": c.http_timeout_s,
        "drain_grace_s": c.drain_grace_s,
        "health_interval_s": c.generator.health_interval_s,
        "targets": {"lambda_base_url": lambda_base_url, "ecs_base_url": ecs_base_url},
        "workloads": workload_config(params),
        "phases": [p.config() for p in phases],
        "probe": ({"phase": contract.PROBE_PHASE, "workload": c.probe.workload} if c.probe.pairs else None),
        "virtual_clock": {"start": virtual_start.isoformat(), "utc_offset_minutes": utc_offset_minutes(virtual_start),
                          "rate": 1.0},
        "secret_headers": dict(c.secret_headers),
    }


def render_script(template: Mapping[str, Any], phases: Sequence[RunPhase], lambda_base_url: str,
                  http_timeout_s: float, processor: Path, where: str = SCRIPT_TEMPLATE) -> dict[str, Any]:
    """The Artillery script of one window: the template with the phases, the target (the Lambda
    base URL), the whole-request timeout and the processor's absolute path filled in. Raises
    ValueError naming `where` and the key when the template lacks one of them."""
    script = json.loads(json.dumps(template))  # a deep copy that holds only JSON values
    config = script.get("config") if isinstance(script, dict) else None
    if not isinstance(config, dict):
        raise ValueError(f"{where}: the Artillery template has no `config` mapping")
    for key in ("target", "processor", "http", "phases"):
        if key not in config:
            raise ValueError(f"{where}: the Artillery template has no `config.{key}`")
    if not isinstance(config["http"], dict):
        raise ValueError(f"{where}: `config.http` must be a mapping")
    config["target"] = lambda_base_url
    config["processor"] = str(processor)
    config["http"]["timeout"] = http_timeout_s
    config["phases"] = [a for p in phases for a in p.artillery_phases()]
    return script


def write_script(adir: Path, run_dir: Path, phases: Sequence[RunPhase], lambda_base_url: str,
                 http_timeout_s: float) -> Path:
    """Render the template (adir/variance-test.yml) into run_dir/artillery-script.yml; the processor
    named in the template is resolved against adir. Returns the written path."""
    template_path = adir / SCRIPT_TEMPLATE
    if not template_path.is_file():
        raise FileNotFoundError(f"{template_path} is missing: the Artillery script template")
    template = yaml.safe_load(template_path.read_text())
    processor_name = ((template or {}).get("config") or {}).get("processor")
    if not isinstance(processor_name, str):
        raise ValueError(f"{template_path}: `config.processor` must name the processor file")
    script = render_script(template, phases, lambda_base_url, http_timeout_s,
                           (adir / processor_name).resolve(), where=str(template_path))
    out = run_dir / SCRIPT_NAME
    out.write_text(f"# rendered from {template_path.name} for this window; see that file\n"
                   + yaml.safe_dump(script, sort_keys=False))
    return out


def artillery_dir(params: Params) -> Path:
    return paths.resolve(params.collection.artillery_dir, params.profile)


def artillery_bin(adir: Path) -> Path:
    return adir / "node_modules" / "artillery" / "bin" / "run"


def check_installed(adir: Path) -> None:
    """Fail with the install command if the pinned Artillery is missing."""
    pkg = adir / "node_modules" / "artillery" / "package.json"
    if not pkg.is_file():
        raise FileNotFoundError(f"{pkg} is missing: install the pinned Artillery with `make install-artillery` "
                                f"(npm ci in {adir} with PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1)")
    version = json.loads(pkg.read_text()).get("version")
    if version != ARTILLERY_VERSION:
        raise RuntimeError(f"{pkg}: Artillery {version} installed, the harness is verified with "
                           f"{ARTILLERY_VERSION} (run `make install-artillery`)")


def artillery_command(node: str, adir: Path, script: Path, report: Path) -> list[str]:
    """`node artillery run --output REPORT SCRIPT` with the pinned Artillery of `adir`."""
    return [node, str(artillery_bin(adir)), "run", "--output", str(report), str(script)]


def artillery_env(base: Mapping[str, str], adir: Path, run_config_path: Path, drain_grace_s: float) -> dict[str, str]:
    """The environment Artillery runs with: the run config path and the preload that stubs the
    telemetry client (12 s exit stall offline) and waits for worker drains."""
    env = dict(base)
    preload = (adir / "preload.js").resolve()
    req = f'--require "{preload}"'
    prior = env.get("NODE_OPTIONS", "")
    env["NODE_OPTIONS"] = f"{prior} {req}".strip() if str(preload) not in prior else prior
    env["HYBRIDOPT_RUN_CONFIG"] = str(run_config_path)
    env["HYBRIDOPT_EXIT_WAIT_S"] = str(int(math.ceil(drain_grace_s + 5)))
    env["ARTILLERY_DISABLE_TELEMETRY"] = "true"
    env.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    return env


def redact_url(url: str) -> str:
    """A URL safe for logs and reports: no user info, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


# ------------------------------------------------------------------------------------------ summaries
_COUNTER_KEYS = ("http.requests", "http.responses", "vusers.created", "vusers.completed", "vusers.failed",
                 "hybridopt.attempts", "hybridopt.lines_written", "hybridopt.pairs")


def counters_summary(report: Mapping[str, Any] | None) -> dict[str, Any]:
    """The Artillery JSON report's aggregate counters that matter here (codes, errors, outcomes)."""
    if not report:
        return {}
    counters: dict[str, Any] = (report.get("aggregate") or {}).get("counters") or {}
    out: dict[str, Any] = {k: int(counters.get(k, 0)) for k in _COUNTER_KEYS}
    out["http_codes"] = {k.split(".", 2)[2]: int(v) for k, v in sorted(counters.items())
                         if k.startswith("http.codes.")}
    out["errors"] = {k.split(".", 1)[1]: int(v) for k, v in sorted(counters.items()) if k.startswith("errors.")}
    out["outcomes"] = {k.split(".", 2)[2]: int(v) for k, v in sorted(counters.items())
                       if k.startswith("hybridopt.outcome.")}
    per_endpoint: dict[str, dict[str, int]] = {}
    for k, v in counters.items():
        m = re.match(r"plugins\.metrics-by-endpoint\.(.+)\.(codes|errors)\.(.+)$", k)
        if m:
            per_endpoint.setdefault(m.group(1), {})[f"{m.group(2)}.{m.group(3)}"] = int(v)
    out["per_endpoint"] = dict(sorted(per_endpoint.items()))
    return out


def count_lines(run_dir: Path) -> dict[str, int]:
    """Newline-terminated lines per contract file of a run (a torn last line is not counted)."""
    out = {}
    for f in sorted(run_dir.glob("*.jsonl")):
        with open(f, "rb") as fh:
            out[f.name] = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    return out


class OutcomeCounts(TypedDict):
    by_platform: dict[str, dict[str, int]]   # platform -> error kind ("ok" = success) -> lines
    unreadable_lines: int


def outcome_counts(run_dir: Path) -> OutcomeCounts:
    """Lines by platform and error kind (ok = success) of a run's contract files."""
    by: dict[str, dict[str, int]] = {}
    unreadable = 0
    for f in sorted(run_dir.glob("*.jsonl")):
        with open(f, encoding="utf-8", errors="replace") as fh:
            for raw in fh:
                try:
                    rec = json.loads(raw)
                except ValueError:
                    unreadable += 1
                    continue
                kind = rec.get("error") or "ok"
                plat = str(rec.get("platform"))
                by.setdefault(plat, {})
                by[plat][kind] = by[plat].get(kind, 0) + 1
    return OutcomeCounts(by_platform=by, unreadable_lines=unreadable)


def read_health(run_dir: Path) -> list[dict[str, Any]]:
    """Every readable health record of a run (JSON objects, in file order)."""
    recs = []
    for f in sorted(run_dir.glob(HEALTH_GLOB)):
        for raw in f.read_text(errors="replace").splitlines():
            try:
                recs.append(json.loads(raw))
            except ValueError:
                continue
    return recs


class HealthTotals(TypedDict):
    workers: int
    attempts: int
    lines: int
    pairs: int
    all_final: bool                              # every worker wrote its final record
    abandoned_in_flight: list[dict[str, str]]    # request_id, pair_id, platform, sent_at


def health_totals(records: Sequence[Mapping[str, Any]]) -> HealthTotals:
    """Sums over the worker threads' last records (final if present): attempts, lines, pairs,
    abandoned in-flight attempts."""
    last: dict[object, Mapping[str, Any]] = {}
    for r in records:
        key = r.get("thread_id")
        if key not in last or r.get("final") or not last[key].get("final"):
            last[key] = r
    abandoned = [a for r in last.values() for a in (r.get("abandoned_in_flight") or [])]
    return HealthTotals(workers=len(last), attempts=sum(int(r.get("attempts", 0)) for r in last.values()),
                        lines=sum(int(r.get("lines", 0)) for r in last.values()),
                        pairs=sum(int(r.get("pairs", 0)) for r in last.values()),
                        all_final=bool(last) and all(bool(r.get("final")) for r in last.values()),
                        abandoned_in_flight=abandoned)


def _pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    xs = sorted(values)
    k = (len(xs) - 1) * q
    lo, hi = int(math.floor(k)), int(math.ceil(k))
    return round(xs[lo] + (xs[hi] - xs[lo]) * (k - lo), 2)


def generator_health(cpu_pct: Sequence[float], health: Sequence[Mapping[str, Any]],
                     cpu_pct_p95_max: float, lag_ms_p99_max: float,
                     stall_ms: float = 100.0) -> dict[str, float | str | None]:
    """Load-generator health of one window. CPU: percent of one core of the Artillery process tree
    (psutil samples while the phases ran). Event-loop lag: the worker's delay percentiles over every
    10 ms timer sample of the run (the processor's run-wide histogram; the worst worker counts);
    `event_loop_stalls` counts health periods (1 s) whose longest delay exceeded `stall_ms`."""
    last: dict[object, Mapping[str, Any]] = {}
    for r in health:
        if r.get("run_loop_lag_samples"):
            last[r.get("thread_id")] = r
    p50s = [float(r["run_loop_lag_p50_ms"]) for r in last.values() if r.get("run_loop_lag_p50_ms") is not None]
    p99s = [float(r["run_loop_lag_p99_ms"]) for r in last.values() if r.get("run_loop_lag_p99_ms") is not None]
    maxs = [float(r["run_loop_lag_max_ms"]) for r in last.values() if r.get("run_loop_lag_max_ms") is not None]
    stalls = sum(1 for r in health if not r.get("final") and r.get("elapsed_s") is not None
                 and (r.get("loop_lag_max_ms") or 0) > stall_ms)
    out: dict[str, float | str | None] = {"cpu_pct_p50": _pct(cpu_pct, 0.5), "cpu_pct_p95": _pct(cpu_pct, 0.95),
           "cpu_pct_max": round(max(cpu_pct), 2) if cpu_pct else None, "cpu_samples": len(cpu_pct),
           "event_loop_lag_ms_p50": max(p50s) if p50s else None,
           "event_loop_lag_ms_p99": max(p99s) if p99s else None,
           "event_loop_lag_ms_max": max(maxs) if maxs else None,
           "event_loop_stalls": stalls, "event_loop_stall_ms": stall_ms,
           "cpu_pct_p95_max": cpu_pct_p95_max, "event_loop_lag_ms_p99_max": lag_ms_p99_max}
    reasons = []
    cpu_p95, lag_p99 = _pct(cpu_pct, 0.95), max(p99s) if p99s else None
    if cpu_p95 is not None and cpu_p95 > cpu_pct_p95_max:
        reasons.append(f"CPU p95 {cpu_p95:.0f} % of a core > {cpu_pct_p95_max:.0f} %")
    if lag_p99 is not None and lag_p99 > lag_ms_p99_max:
        reasons.append(f"event-loop lag p99 {lag_p99:.1f} ms > {lag_ms_p99_max:.0f} ms")
    out["saturated"] = bool(reasons)
    if not cpu_pct and not p99s:
        reasons.append("no health samples")
    out["reason"] = "; ".join(reasons) if reasons else None
    return out


def default_node() -> str:
    return os.environ.get("HYBRIDOPT_NODE", "node")
