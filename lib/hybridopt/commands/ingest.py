"""python -m hybridopt ingest: read logs, account for every line, write requests.parquet and
quarantine.jsonl (exit 2 after writing them when a log cannot be read or no line is usable)."""

from __future__ import annotations

import argparse
import time

from hybridopt import paths
from hybridopt.commands._common import add_profile_data_out, table
from hybridopt.data.ingest import ingest, require_usable, write_quarantine
from hybridopt.params import load_params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_profile_data_out(parser)


def run(args: argparse.Namespace) -> int:
    params = load_params(args.profile)
    t0 = time.perf_counter()
    result = ingest(params, args.data)
    out = args.out or params.path("processed_dir")
    out.mkdir(parents=True, exist_ok=True)
    result.requests.to_parquet(paths.Processed(out).requests, index=False)
    write_quarantine(result, paths.Processed(out).quarantine)
    require_usable(result, paths.Processed(out).quarantine)
    led = result.ledger
    print(f"ingest {params.profile}: {result.data_dir}")
    print(table([("files", len(result.files)), ("lines", f"{led.lines_total:,}"), ("kept", f"{led.kept:,}"),
                 ("repaired", f"{led.repaired:,}"), ("quarantined", f"{led.quarantined:,}"),
                 ("accounted for", f"{led.as_dict()['accounted_for_pct']:.1f} %"),
                 ("seconds", f"{time.perf_counter() - t0:.2f}"), ("wrote", paths.Processed(out).requests)]))
    for reason, n in list(led.repairs.most_common(5)):
        print(f"  repaired     {n:>8,}  {reason}")
    for reason, n in list(led.quarantine_reasons.most_common(5)):
        print(f"  quarantined  {n:>8,}  {reason}")
    return 0
