#!/usr/bin/env python
"""Benchmark: ingest + audit + pairing + cost + labels + features + gates of 180,000 lines.

Target (issue 2): at most 8 s on the 2-core machine. Two inputs, generated into a temp folder:
  contract  180,000 contract lines (90,000 pairs from the paired collector, 2 % failures,
            some numbers-as-strings and naive timestamps), 8 files as from 8 Artillery workers
  legacy    180,000 lines in the thesis layout: the real November 2025 logs replicated with fresh
            request ids and shifted times (needs ../shared/data/thesis-aws-2025-11), time-matched
Usage: python benchmarks/bench_pipeline.py [--lines 180000] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from hybridopt import paths
from hybridopt.data.preprocess import build_table
from hybridopt.params import load_params

WORKLOADS = {"lightweight_api": [0.5, 1, 5, 10], "thumbnail_processing": [50, 100, 200, 500, 1024],
             "medium_processing": [1024, 2048, 3072, 5120], "heavy_processing": [3072, 5120, 8192, 10240]}
WINDOWS = [("early_morning", "low_load", 20), ("morning_peak", "ramp_load", 2), ("midday", "medium_load", 6),
           ("evening", "burst_load", 12), ("late_night", "low_load", 16)]


def make_contract(folder: Path, n_lines: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    files = [open(folder / f"worker-{i}.jsonl", "w") for i in range(8)]
    n_pairs = n_lines // 2
    for k in range(n_pairs):
        tw, lp, utc_hour = WINDOWS[k * len(WINDOWS) // n_pairs]
        w = rng.choice(list(WORKLOADS))
        size = rng.choice(WORKLOADS[w])
        sec = (k % 18000) / 5
        sent = f"2025-11-24T{utc_hour:02d}:{int(sec // 60) % 60:02d}:{sec % 60:06.3f}+00:00"
        for platform in ("lambda", "ecs"):
            fail = rng.random() < 0.02
            total = rng.lognormvariate(6.5, 0.6)
            rec = {"schema_version": "1.0", "request_id": f"r{k}-{platform}", "pair_id": f"p{k}",
                   "experiment": "hybrid-placement", "run_id": f"run-{tw}", "source": "testbed",
                   "platform": platform, "workload_type": w, "target_payload_size_kb": size, "time_window": tw,
                   "load_pattern": lp, "phase": "steady", "scheduled_rate_rps": 5.0, "sent_at": sent,
                   "http_status": 504 if fail else 200, "error": "gateway_timeout" if fail else None,
                   "upload_ms": round(rng.uniform(1, 50), 3), "first_byte_ms": round(total * 0.9, 3),
                   "total_ms": round(total, 3), "execution_time_ms": None if fail else round(total * 0.7, 3),
                   "cold_start": (rng.random() < 0.01) if platform == "lambda" else None,
                   "init_duration_ms": None, "billed_duration_ms": None,
                   "memory_limit_mb": 512.0 if platform == "lambda" else 2048.0,
                   "instance_id": f"{platform}-{rng.randrange(8)}", "actual_payload_size_kb": size * 1.01}
            if rng.random() < 0.05:
                rec["total_ms"] = str(rec["total_ms"])         # a quirk the reader repairs
            if rng.random() < 0.05:
                rec["sent_at"] = sent[:-6]                      # a naive timestamp
            files[k % 8].write(json.dumps(rec) + "\n")
    for f in files:
        f.close()


def make_legacy(folder: Path, n_lines: int) -> int:
    src = paths.shared_dir() / "data" / "thesis-aws-2025-11" / "variance-experiment"
    if not src.is_dir():
        return 0
    files = sorted(src.glob("*/*.jsonl"))
    written, copy = 0, 0
    while written < n_lines:
        for f in files:
            out = folder / f"{f.parent.name}" / f"{f.name.rsplit('_', 1)[0]}_2025-11-{22 + copy}.jsonl"
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(f) as fin, open(out, "a") as fout:
                for line in fin:
                    if written >= n_lines:
                        break
                    rec = json.loads(line)
                    rec["request_id"] = f"{rec['request_id']}-c{copy}"
                    fout.write(json.dumps(rec) + "\n")
                    written += 1
        copy += 1
    return written


def timed(params, folder: Path, repeat: int) -> dict:
    secs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        tr, a, card = build_table(params, folder)
        secs.append(time.perf_counter() - t0)
    return {"lines": a["lines"]["lines_total"], "quarantined": a["lines"]["quarantined"],
            "pairs": card["rows"]["pairs"], "training_rows": card["rows"]["training_rows"],
            "seconds_median": round(statistics.median(secs), 2), "seconds_all": [round(s, 2) for s in secs],
            "target_s": 8.0, "pass": statistics.median(secs) <= 8.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=180_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        c = Path(tmp) / "contract"
        c.mkdir()
        make_contract(c, args.lines)
        out["contract"] = timed(load_params("quick" if (paths.PARAMS_DIR / "quick.yaml").is_file()
                                            else "thesis-2025-11"), c, args.repeat)
        print("contract", out["contract"], flush=True)
        g = Path(tmp) / "legacy"
        if make_legacy(g, args.lines):
            out["legacy"] = timed(load_params("thesis-2025-11"), g, args.repeat)
            print("legacy  ", out["legacy"], flush=True)
        else:
            print("legacy: skipped (../shared/data/thesis-aws-2025-11 not present)")
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
