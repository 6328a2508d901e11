"""python -m hybridopt preprocess: ingest + audit + pairing + cost + labels + features + gates."""

from __future__ import annotations

import argparse
import time

from hybridopt import paths
from hybridopt.commands._common import add_profile_data_out, table
from hybridopt.data.preprocess import ingest_and_audit, preprocess
from hybridopt.params import load_params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_profile_data_out(parser)


def run(args: argparse.Namespace) -> int:
    params = load_params(args.profile)
    t0 = time.perf_counter()
    result, a = ingest_and_audit(params, args.data, args.out)
    tr, card = preprocess(params, args.out)
    out = args.out or params.path("processed_dir")
    rows, gs = card["rows"], card["gates_summary"]
    m = card["pairing"]["matched"]
    print(f"preprocess {params.profile}: {result.data_dir}")
    print(table([
        ("lines (kept/repaired/quarantined)",
         f"{rows['input_lines']:,} ({rows['kept']:,}/{rows['repaired']:,}/{rows['quarantined']:,})"),
        ("pairs (direct/matched)", f"{rows['pairs']:,} ({rows['pairs_direct']:,}/{rows['pairs_matched']:,})"),
        ("time-matching rate", f"{m['match_rate']:.1%}" if m.get("match_rate") is not None else "n/a"),
        ("training rows", f"{rows['training_rows']:,}"),
        (f"{card['label_target']} share", f"{card['label_shares']['overall'][card['label_target']]:.3f}"
         if rows["training_rows"] else "n/a"),
        ("gates", f"{gs['passed']}/{gs['total']} pass"),
        ("seconds", f"{time.perf_counter() - t0:.2f}"),
        ("wrote", paths.Processed(out).training_table),
    ]))
    for f in gs["failing"]:
        print(f"  FAIL  {f}")
    return 0 if rows["training_rows"] else 1
