"""Each window's `manifest.json`: where it lives, reading and writing it, what it says about a
finished Artillery run, and the resume rules built on it (a window is done when its manifest says
`complete`; an earlier unfinished attempt is moved aside, never deleted).

Per window, under `params.path("raw_dir") / <run_id>/` (run_id = `<profile>-<window>`):

- `<run_id>.w<pid>-<thread>.jsonl`: the contract lines (one file per Artillery worker thread)
- `run-config.json` (what the processor read), `artillery-script.yml` (the script Artillery ran,
  rendered from artillery/variance-test.yml), `artillery-report.json` (Artillery's --output),
  `artillery.log` (its console), `loadgen-health.w<pid>-<thread>.ndjson` (the processor's
  periodic health records: pairs, attempts, lines, in-flight, event-loop lag)
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
  | `phases`, `compression`, `probe` | the phases Artillery ran (the probe first, when on); {window_wall_s, pattern_s, factor, rate_scale} of the load phases; the probe {pairs, rate_rps, workload, wall_s (its arrivals and the one-second pause after them)} or null |
  | `scheduled_pairs` | pairs Artillery's phaser schedules for those phases |
  | `pairs_sent` | pairs the processor started (Artillery counter `hybridopt.pairs`; from the health records when an interrupted run wrote no report) |
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
  | `http_timeout_s`, `artillery_version`, `node_version`, `artillery_config` | set-up (`artillery_config`: the rendered script's file name) |

Nothing secret is written: secret headers live only in environment variables named in params.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from hybridopt.collection import loadgen
from hybridopt.params import Params

MANIFEST_VERSION = "1"
UTC = timezone.utc

#: A manifest.json document (a JSON object; its keys are listed in this module's docstring).
Manifest = dict[str, Any]


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(t: datetime) -> str:
    """ISO-8601 in UTC with milliseconds."""
    return t.astimezone(UTC).isoformat(timespec="milliseconds")


def run_dir_for(params: Params, window: str) -> Path:
    """The run directory of a window: raw_dir / <profile>-<window>."""
    return params.path("raw_dir") / loadgen.run_id_for(params, window)


def superseded_dir(params: Params) -> Path:
    """Where earlier unfinished attempts of windows are kept: <raw_dir>-superseded/ beside raw_dir."""
    raw = params.path("raw_dir")
    return raw.parent / f"{raw.name}-superseded"


def read_manifest(run_dir: Path) -> Manifest | None:
    """The window's manifest, None when it has none, {"status": "unreadable"} when it is not JSON."""
    p = run_dir / loadgen.MANIFEST_NAME
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except ValueError:
        return {"status": "unreadable", "file": str(p)}


def write_manifest(run_dir: Path, manifest: Manifest) -> None:
    """Write the manifest atomically (a temporary file renamed over it)."""
    p = run_dir / loadgen.MANIFEST_NAME
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, p)


def is_done(params: Params, window: str) -> bool:
    m = read_manifest(run_dir_for(params, window))
    return m is not None and m.get("status") == "complete"


def manifests(params: Params) -> list[Manifest]:
    """Every window's manifest in schedule order (status 'pending' when it has none)."""
    out = []
    for w in loadgen.schedule(params):
        m = read_manifest(run_dir_for(params, w))
        out.append(m if m is not None else {"run_id": loadgen.run_id_for(params, w), "time_window": w,
                                            "status": "pending"})
    return out


def supersede(params: Params, run_dir: Path) -> Path | None:
    """Move an earlier attempt of a window out of raw_dir (kept, never deleted); its new path."""
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return None
    dest_root = superseded_dir(params)
    dest_root.mkdir(parents=True, exist_ok=True)
    stamp = now_utc().strftime("%Y%m%dT%H%M%SZ")
    dest = dest_root / f"{run_dir.name}-{stamp}"
    n = 1
    while dest.exists():
        n += 1
        dest = dest_root / f"{run_dir.name}-{stamp}-{n}"
    shutil.move(str(run_dir), str(dest))
    return dest


def finished_run(params: Params, run_dir: Path, report_path: Path, rc: int | None, interrupted: bool,
                 cpu_samples: Sequence[tuple[float, float]]) -> Manifest:
    """The manifest keys learnt after Artillery exited: status, counts, checks, outcomes and the
    load generator's health (from the report, the health records, the contract files and the CPU
    samples taken while the phases ran)."""
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
    pairs = int(counters.get("hybridopt.pairs", 0)) if report else totals["pairs"]
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
        "attempts_equal_two_per_pair": (attempts == 2 * pairs) if attempts is not None else None,
        "health_final": totals["all_final"],
    }
    return {"status": status, "pairs_sent": pairs, "attempts_made": attempts, "lines_written": lines,
            "lines_per_file": per_file, "attempts_abandoned": len(totals["abandoned_in_flight"]), "checks": checks,
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


def _epoch(value: object) -> float | None:
    """Epoch seconds of an ISO-8601 string (a trailing Z allowed), else None."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
