"""Service time of the reference workloads (hybridopt.workloads) by payload size, on this machine.

Each (workload, payload size) runs the whole handler path (`workloads.handle`: JSON parse, base64
decode, the work, the response) on a deterministic body of that size, `--repeats` times after one
warm-up, measuring wall time and the process's CPU time. The per-workload line through the median CPU
times (ms = cpu_ms + cpu_ms_per_mb * MiB) is the testbed's `measured` service preset: CPU work at one
vCPU (one core of this machine), which the platform model stretches by each platform's CPU share.

    python benchmarks/bench_workloads.py [--repeats 7] [--out reports/benchmarks/bench_workloads.json]
                                          [--write-preset]   # service_presets.measured in params/testbed.yaml

The machine is shared (2 cores, other engineers' jobs): wall times are noisy, CPU times less so; the
JSON records the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import PIL
from hybridopt import calibration as cal
from hybridopt import paths, workloads
from hybridopt.params import load_params

MIB = 1024.0


def sizes_kb() -> dict[str, list[float]]:
    """Planned sizes (base.yaml, via the `full` profile) and the thesis collection's, merged."""
    out: dict[str, set[float]] = {}
    for profile in ("full", "thesis-2025-11"):
        try:
            p = load_params(profile)
        except Exception:  # a profile may not exist in an older checkout
            continue
        for w, cfg in p.workloads.items():
            out.setdefault(w, set()).update(float(s) for s in cfg.payload_sizes_kb)
    return {w: sorted(v) for w, v in out.items()}


def measure(workload: str, size_kb: float, repeats: int, seed: int = 0) -> dict[str, Any]:
    body = workloads.make_body(workload, size_kb, seed=seed)
    status, _ = workloads.handle(workload, body, "ecs")      # warm-up (imports, plugin init, caches)
    if status != 200:
        raise RuntimeError(f"{workload} at {size_kb} KB answered {status}")
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        workloads.handle(workload, body, "ecs")
        cpu.append((time.process_time() - c0) * 1000.0)
        wall.append((time.perf_counter() - t0) * 1000.0)
    return {"payload_size_kb": size_kb, "body_bytes": len(body), "repeats": repeats,
            "wall_median_ms": statistics.median(wall), "wall_p10_ms": float(np.quantile(wall, 0.1)),
            "wall_p90_ms": float(np.quantile(wall, 0.9)), "cpu_median_ms": statistics.median(cpu),
            "cpu_p10_ms": float(np.quantile(cpu, 0.1)), "cpu_p90_ms": float(np.quantile(cpu, 0.9))}


def line(rows: list[dict[str, Any]]) -> dict[str, float]:
    """cpu_ms + cpu_ms_per_mb * MiB through the median CPU times (least squares), and the lognormal
    spread of the repeats around it ((p90 / p10) over 2 x 1.2816)."""
    x = np.array([r["payload_size_kb"] / MIB for r in rows])
    y = np.array([r["cpu_median_ms"] for r in rows])
    if len(rows) >= 2 and np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
    else:
        slope, intercept = 0.0, float(y.mean())
    spread = [np.log(r["cpu_p90_ms"] / r["cpu_p10_ms"]) / (2 * 1.2815515655446004)
              for r in rows if r["cpu_p10_ms"] > 0]
    return {"cpu_ms": float(max(0.0, intercept)), "cpu_ms_per_mb": float(max(0.0, slope)),
            "noise_sigma": float(np.median(spread)) if spread else 0.0}


def preset(result: dict[str, Any]) -> dict[str, Any]:
    """params.ServicePreset data (basis `measured`) from a benchmark result."""
    m = result["machine"]
    src = (f"benchmarks/bench_workloads.py {result['date']} on {m['cpu']} ({m['cores']} cores, load "
           f"{m['loadavg_before'][0]:.1f}), Python {m['python']}, Pillow {m['pillow']}; median CPU time of "
           f"{result['repeats']} runs per size")
    out: dict[str, Any] = {"description": "the reference workloads (hybridopt.workloads: real JSON validation, "
                                          "thumbnails, compression, image filtering) measured on this machine",
                           "workloads": {}}
    for w, r in result["workloads"].items():
        f = r["fit"]
        sizes = ", ".join(f"{s['payload_size_kb']:g} KB {s['cpu_median_ms']:.1f} ms" for s in r["sizes"])
        entry = {"sleep_ms": {"value": [0.0, 0.0], "basis": "measured", "source": f"{src}; no wall-clock wait: all CPU"},
                 "cpu_ms": {"value": round(f["cpu_ms"], 3), "basis": "measured", "source": f"{src}; intercept ({sizes})"},
                 "cpu_ms_per_mb": {"value": round(f["cpu_ms_per_mb"], 3), "basis": "measured",
                                   "source": f"{src}; slope per MiB of request body"},
                 "noise_sigma": {"value": round(f["noise_sigma"], 4), "basis": "measured",
                                 "source": f"{src}; lognormal spread from the p10-p90 range of the repeats"}}
        out["workloads"][w] = {"lambda": entry, "ecs": entry}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=paths.PROJECT_ROOT / "reports" / "benchmarks" / "bench_workloads.json")
    ap.add_argument("--write-preset", action="store_true",
                    help="write service_presets.measured into params/testbed.yaml")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    res: dict[str, Any] = {
        "date": date.today().isoformat(), "repeats": args.repeats,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "pillow": PIL.__version__, "loadavg_before": load_before},
        "workloads": {}}
    try:
        cpu_name = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                        if ln.startswith("model name"))
        res["machine"]["cpu"] = cpu_name
    except (OSError, StopIteration):
        pass
    print(f"{'workload':22} {'KB':>8} {'cpu p50':>9} {'cpu p10-p90':>15} {'wall p50':>9}")
    for w, sizes in sizes_kb().items():
        rows = []
        for s in sizes:
            r = measure(w, s, args.repeats)
            rows.append(r)
            print(f"{w:22} {s:8g} {r['cpu_median_ms']:9.1f} {r['cpu_p10_ms']:7.1f}-{r['cpu_p90_ms']:<7.1f} "
                  f"{r['wall_median_ms']:9.1f}")
        res["workloads"][w] = {"sizes": rows, "fit": line(rows)}
    res["machine"]["loadavg_after"] = os.getloadavg()
    res["seconds"] = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1))
    print("\nmeasured preset (CPU at one core: cpu_ms + cpu_ms_per_mb x MiB):")
    for w, r in res["workloads"].items():
        f = r["fit"]
        print(f"  {w:22} {f['cpu_ms']:8.2f} ms + {f['cpu_ms_per_mb']:8.2f} ms/MiB  (noise sigma {f['noise_sigma']:.3f})")
    print(f"load average before {load_before[0]:.2f}, after {res['machine']['loadavg_after'][0]:.2f} "
          f"(2 shared cores: rerun on a quiet machine for reference numbers)")
    print(f"wrote {args.out} in {res['seconds']:.1f} s")
    if args.write_preset:
        path = paths.PARAMS_DIR / "testbed.yaml"
        old = path.read_text()
        path.write_text(cal.replace_block(old, "service_presets", "measured", cal.preset_yaml("measured", preset(res))))
        try:
            load_params("full", overrides={"testbed": {"service_preset": "measured"}})
        except Exception:
            path.write_text(old)   # the file must keep loading: nothing written
            raise
        print(f"wrote service_presets.measured into {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
