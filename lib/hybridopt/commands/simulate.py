"""`python -m hybridopt simulate --profile NAME [--out DIR] [--seed N]`: run the profile's schedule on
the platform model with a virtual clock and write contract JSONL (source "simulator", paired), one file
per time window, and its manifest to params' raw_dir (or --out) (`emulation.simulate.simulate_profile`)."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from hybridopt.params import load_params


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="full", help="parameter profile (default: full)")
    parser.add_argument("--out", default=None, help="output folder (default: the profile's data.raw_dir)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 42)")
    parser.add_argument("--start-date", default=None, type=_date,
                        help="local date of the first window, YYYY-MM-DD (default 2025-11-24, a Monday)")


def run(args: argparse.Namespace) -> int:
    import time

    from hybridopt.emulation import simulate

    params = load_params(args.profile)
    out = Path(args.out) if args.out else params.path("raw_dir")
    start = args.start_date or simulate.DEFAULT_START_DATE
    seed = simulate.DEFAULT_SEED if args.seed is None else args.seed
    t0 = time.perf_counter()
    res, manifest = simulate.simulate_profile(params, seed, start, out)
    elapsed = time.perf_counter() - t0
    print(f"simulate: profile {params.profile}, seed {seed}, client {params.testbed.client_preset}, "
          f"service times {params.testbed.service_preset}")
    print(f"  {res.arrivals:,} pairs -> {len(res.rows):,} lines in {len(manifest['files'])} files under {out}")
    print(f"  simulated in {res.elapsed_s:.1f} s, written in {elapsed - res.elapsed_s:.1f} s "
          f"({len(res.rows) / elapsed:,.0f} lines/s)")
    print(simulate.summarize(res.rows).to_string())
    return 0
