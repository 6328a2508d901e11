"""python -m hybridopt audit: ingest + audit, write audit.json (stage 02 without the notebook)."""

from __future__ import annotations

import argparse
import time

from hybridopt import paths
from hybridopt.commands._common import add_profile_data_out, table
from hybridopt.data.preprocess import ingest_and_audit
from hybridopt.params import load_params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_profile_data_out(parser)


def run(args: argparse.Namespace) -> int:
    params = load_params(args.profile)
    t0 = time.perf_counter()
    result, a = ingest_and_audit(params, args.data, args.out)
    out = args.out or params.path("processed_dir")
    led = result.ledger
    print(f"audit {params.profile}: {result.data_dir}")
    print(table([("lines", f"{led.lines_total:,}"), ("kept / repaired / quarantined",
                                                    f"{led.kept:,} / {led.repaired:,} / {led.quarantined:,}"),
                 ("runs", ", ".join(a["present"]["runs"])), ("seconds", f"{time.perf_counter() - t0:.2f}"),
                 ("wrote", paths.Processed(out).audit)]))
    print("findings:")
    for f in a["findings"]:
        print(f"  - {f}")
    return 0
