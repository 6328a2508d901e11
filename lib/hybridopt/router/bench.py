"""Router measurements: package size, warm per-call latency in-process, cold initialisation
(import + model load) in a fresh interpreter that has only the unzipped package on its path.
Used by benchmarks/bench_router.py and notebook 07_deploy. Timings depend on the machine and on
what else runs on it: the report records the CPU count and load average next to the numbers.

On the objective path (a model folder with decision/) every measured event also reports the
decision made eight calls earlier as completed (`completed`), so the load tracker holds a steady
handful of requests in flight, as a router told of completions does; `outcome_models` times the six
boosters alone and `objective_decision` the policy step (load state, boosters, costs, choice)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hybridopt.router.handler import Router

_COLD = r"""
import sys, sysconfig, time
t0 = time.perf_counter()
pkg = sys.argv[1]
stdlib = [sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]]
sys.path[:] = [pkg] + [p for p in sys.path if p.startswith(tuple(stdlib))]
import hybridopt.router.handler as h
t1 = time.perf_counter()
r = h.get_router()
t2 = time.perf_counter()
a = h.lambda_handler({"workload_type": sorted(r.spec.workload_codes)[0], "payload_size_kb": 5.0}, None)
t3 = time.perf_counter()
assert a["statusCode"] == 200, a
print(f"{(t1 - t0) * 1e3} {(t2 - t1) * 1e3} {(t3 - t2) * 1e3}")
"""


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def warm_latency(router: Router, n_calls: int = 2000, warmup: int = 50, seed: int = 0) -> dict[str, Any]:
    """Per-call latency (µs) of a direct event, an HTTP API v2 event and the model alone."""
    import random

    rng = random.Random(seed)
    workloads = sorted(router.spec.workload_codes)
    fields = [{"workload_type": rng.choice(workloads), "payload_size_kb": round(rng.uniform(0.5, 10240), 1),
               "timestamp": f"2025-11-2{rng.randint(0, 6)}T{rng.randint(0, 23):02d}:15:00+05:30"}
              for _ in range(n_calls)]
    v2 = [{"version": "2.0", "requestContext": {"http": {"method": "POST"}}, "isBase64Encoded": False,
           "body": json.dumps(f)} for f in fields]
    when = datetime(2025, 11, 20, 7, 0, tzinfo=timezone.utc)
    rows = [router.spec.row(f["workload_type"], f["payload_size_kb"], when, "midday", "medium_load")
            for f in fields]
    out: dict[str, Any] = {"n_calls": n_calls, "warmup": warmup,
                           "policy": "objective" if router.decision is not None else "classifier"}
    cases = {"direct_event": lambda i: router.handle(fields[i]),
             "http_api_v2_event": lambda i: router.handle(v2[i]),
             "model_only": lambda i: router.model.predict_proba(rows[i])}
    pol = router.decision
    if pol is not None:
        ids: list[str] = []

        def direct(i: int) -> None:
            a = router.handle({**fields[i], "completed": ids[-8:-7]})
            ids.append(a["decision_id"])

        def http_v2(i: int) -> None:
            e = {**v2[i], "body": json.dumps({**fields[i], "completed": ids[-8:-7]})}
            ids.append(json.loads(router.handle(e)["body"])["decision_id"])

        def decide(i: int) -> None:
            a = pol.decide(fields[i]["workload_type"], fields[i]["payload_size_kb"], rows[i], router.clock(),
                           "treatment", completed=ids[-8:-7])
            ids.append(a.decision_id)

        load = [0.0] * len(pol.load_names)
        full_rows = [[*r, *load] for r in rows]
        cases.update({"direct_event": direct, "http_api_v2_event": http_v2,
                      "outcome_models": lambda i: pol.predict(full_rows[i]), "objective_decision": decide})
    for name, call in cases.items():
        for i in range(warmup):
            call(i)
        times = []
        for i in range(n_calls):
            t = time.perf_counter_ns()
            call(i)
            times.append((time.perf_counter_ns() - t) / 1e3)
        out[name] = {"p50_us": _pct(times, 0.5), "p99_us": _pct(times, 0.99), "max_us": max(times),
                     "mean_us": statistics.fmean(times)}
    return out


def cold_init(zip_path: str | Path, runs: int = 5) -> dict[str, Any]:
    """Fresh `python -I -S` processes with only the unzipped package (plus stdlib) on sys.path:
    import time, model load time, first answer, and the whole process's wall time (ms)."""
    with tempfile.TemporaryDirectory(prefix="router-cold-") as tmp:
        zipfile.ZipFile(zip_path).extractall(tmp)
        rec: dict[str, list[float]] = {"import_ms": [], "load_ms": [], "first_call_ms": [], "process_wall_ms": []}
        for _ in range(runs):
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-I", "-S", "-c", _COLD, tmp], capture_output=True,
                                  text=True, timeout=120)
            wall = (time.perf_counter() - t) * 1e3
            if proc.returncode != 0:
                raise RuntimeError(f"cold start failed: {proc.stderr[-2000:]}")
            imp, load, first = (float(x) for x in proc.stdout.split())
            for k, v in zip(rec, (imp, load, first, wall)):
                rec[k].append(v)
    summary: dict[str, Any] = {"runs": runs}
    for k, v in rec.items():
        summary[k] = {"median": statistics.median(v), "max": max(v)}
    summary["init_ms_median"] = statistics.median([a + b for a, b in zip(rec["import_ms"], rec["load_ms"])])
    return summary


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "loadavg_1m": os.getloadavg()[0], "python": sys.version.split()[0]}
