#!/usr/bin/env python
"""Load-generator benchmark: real Artillery 2.0.21 with the collection processor at 30 paired
requests/s (60 requests/s) with 1 MB bodies, against a sink server on 127.0.0.1 that reads each body
and answers a small JSON at once (a separate process, so only the generator is measured).

Reports the generator's CPU (percent of one core, psutil over the Artillery process tree while the
phases run), its worker event-loop lag (p50/p99/max over every 10 ms timer sample), lines written vs
attempts, and client latency percentiles (to show the sink was not the bottleneck). With
--telemetry it also times a 2 s run with and without artillery/preload.js (the PostHog exit stall).

    python benchmarks/bench_generator.py [--seconds 30] [--rate 30] [--size-kb 1024] [--telemetry]
                                         [--json OUT.json]

Numbers depend on the machine and on what else runs on it: on a shared 2-core machine, rerun on a
quiet one before quoting them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from hybridopt import collection as collect
from hybridopt import paths
from hybridopt.collection import loadgen
from hybridopt.params import load_params

SINK = r"""
import asyncio, sys
BODY = b'{"platform":"sink","metrics":{"execution_time_ms":0.1}}'
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            n = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    n = int(line.split(b":")[1])
            remaining = n
            while remaining:
                chunk = await reader.read(min(remaining, 1 << 20))
                if not chunk:
                    return
                remaining -= len(chunk)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, limit=1 << 16)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))], 2)


def generator_run(seconds: int, rate: float, size_kb: float) -> dict:
    sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        url = f"http://127.0.0.1:{sink.stdout.readline().strip()}"
        with tempfile.TemporaryDirectory(prefix="bench-generator-") as tmp:
            base = load_params("quick")
            params = load_params("quick", overrides={
                "data": {"raw_dir": str(Path(tmp) / "raw")},
                "workloads": {w: {"payload_sizes_kb": [size_kb]} for w in base.workloads},
                "load_patterns": {"low_load": {"phases": [{"name": "steady", "duration_s": seconds,
                                                           "arrival_rate_rps": rate}]}},
                "collection": {"window_wall_s": None, "http_timeout_s": 10, "drain_grace_s": 5}})
            t0 = time.perf_counter()
            m = collect.run_window(params, "early_morning", collect.Target("testbed", url, url),
                                   virtual_start=None, progress=lambda e: None)
            wall = time.perf_counter() - t0
            recs = [json.loads(x) for f in sorted(collect.run_dir_for(params, "early_morning").glob("*.jsonl"))
                    for x in f.read_text().splitlines()]
    finally:
        sink.terminate()
        sink.wait(timeout=10)
    totals = [r["total_ms"] for r in recs if r["total_ms"] is not None]
    sent = sorted(r["sent_at"] for r in recs)
    from datetime import datetime
    pair_t: dict[str, float] = {}
    for r in recs:
        t = datetime.fromisoformat(r["sent_at"]).timestamp()
        pair_t[r["pair_id"]] = min(t, pair_t.get(r["pair_id"], t))
    ts = sorted(pair_t.values())
    gaps_ms = [(b - a) * 1000 for a, b in zip(ts, ts[1:])]
    per_s: dict[int, int] = {}
    for t in ts[:-1]:
        per_s[int(t - ts[0])] = per_s.get(int(t - ts[0]), 0) + 1
    inner = list(per_s.values())[1:-1] or list(per_s.values())
    g = m["generator"]
    return {"pairs_per_s": rate, "requests_per_s": 2 * rate, "body_kb": size_kb, "seconds": seconds,
            "status": m["status"], "attempts": m["attempts_made"], "lines": m["lines_written"],
            "scheduled_pairs": m["scheduled_pairs"], "errors": sum(1 for r in recs if r["error"]),
            "cpu_pct_p50": g["cpu_pct_p50"], "cpu_pct_p95": g["cpu_pct_p95"], "cpu_pct_max": g["cpu_pct_max"],
            "event_loop_lag_ms_p50": g["event_loop_lag_ms_p50"], "event_loop_lag_ms_p99": g["event_loop_lag_ms_p99"],
            "event_loop_lag_ms_max": g["event_loop_lag_ms_max"], "event_loop_stalls_over_100ms": g["event_loop_stalls"],
            "saturated": g["saturated"], "total_ms_p50": _pct(totals, 0.5), "total_ms_p99": _pct(totals, 0.99),
            "total_ms_mean": round(statistics.fmean(totals), 2) if totals else None,
            "first_sent": sent[0] if sent else None, "last_sent": sent[-1] if sent else None,
            "pair_gap_ms_p50": _pct(gaps_ms, 0.5), "pair_gap_ms_p99": _pct(gaps_ms, 0.99),
            "pairs_per_second_min": min(inner) if inner else None, "pairs_per_second_max": max(inner) if inner else None,
            "window_wall_s": round(wall, 1), "load_average_1m": round(os.getloadavg()[0], 2)}


def telemetry_run() -> dict:
    """Wall time of a 2 s Artillery run (5 pairs/s, small bodies) with and without the preload."""
    sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    out = {}
    try:
        assert sink.stdout is not None
        url = f"http://127.0.0.1:{sink.stdout.readline().strip()}"
        adir = paths.ARTILLERY_DIR
        for label, with_preload in (("with_preload", True), ("without_preload", False)):
            with tempfile.TemporaryDirectory(prefix="bench-telemetry-") as tmp:
                params = load_params("quick", overrides={"data": {"raw_dir": str(Path(tmp) / "raw")},
                                                         "collection": {"window_wall_s": 2}})
                phases = loadgen.run_phases(params.load_patterns["low_load"], 2)
                run_dir = Path(tmp) / "run"
                cfg = loadgen.run_config(params, "early_morning", run_id="telemetry", out_dir=run_dir,
                                         source="testbed", lambda_base_url=url, ecs_base_url=url, phases=phases,
                                         virtual_start=loadgen.window_bounds(params, "early_morning",
                                                                             date(2025, 11, 24))[0])
                run_dir.mkdir(parents=True)
                cfg_path = run_dir / "run-config.json"
                cfg_path.write_text(json.dumps(cfg))
                env = loadgen.artillery_env(os.environ, adir, cfg_path, 5)
                if not with_preload:
                    env["NODE_OPTIONS"] = ""
                script = loadgen.write_script(adir, run_dir, phases, url, 10)
                cmd = loadgen.artillery_command(loadgen.default_node(), adir, script, run_dir / "report.json")
                t0 = time.perf_counter()
                subprocess.run(cmd, cwd=adir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=120, check=True)
                out[f"{label}_wall_s"] = round(time.perf_counter() - t0, 2)
    finally:
        sink.terminate()
        sink.wait(timeout=10)
    out["stall_s"] = round(out["without_preload_wall_s"] - out["with_preload_wall_s"], 2)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--rate", type=float, default=30.0, help="pairs per second (each pair = 2 requests)")
    ap.add_argument("--size-kb", type=float, default=1024.0)
    ap.add_argument("--telemetry", action="store_true", help="also time the PostHog exit stall")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args()
    loadgen.check_installed(paths.ARTILLERY_DIR)
    res = {"generator": generator_run(args.seconds, args.rate, args.size_kb)}
    if args.telemetry:
        res["telemetry"] = telemetry_run()
    print(json.dumps(res, indent=2))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    g = res["generator"]
    ok = g["lines"] == g["attempts"] and not g["saturated"]
    print(f"\ngenerator at {g['pairs_per_s']:.0f} pairs/s x {g['body_kb']:.0f} KB: CPU p50 {g['cpu_pct_p50']} % / "
          f"p95 {g['cpu_pct_p95']} % of one core, event-loop lag p99 {g['event_loop_lag_ms_p99']} ms "
          f"(max {g['event_loop_lag_ms_max']} ms), {g['lines']} lines / {g['attempts']} attempts, "
          f"{'OK' if ok else 'NOT OK'} (load average {g['load_average_1m']})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
