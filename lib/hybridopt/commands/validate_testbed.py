"""python -m hybridopt validate-testbed --data DIR [--out DIR]: how close the calibrated platform model
comes to real runs it was not fitted on (leave-one-session-out; see hybridopt.calibration.validate).

Writes validation.json (a `pass` boolean per threshold and per cell) and validation.png (the figure of
hybridopt.report.calibration)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hybridopt.calibration import validate as val
from hybridopt.commands._common import table
from hybridopt.commands.calibrate import DEFAULT_PROFILE, provenance
from hybridopt.data.ingest import ingest, require_usable
from hybridopt.errors import InputError
from hybridopt.params import load_params
from hybridopt.report import calibration as report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of real logs in the legacy layout (default: the profile's)")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help=f"params profile (default {DEFAULT_PROFILE})")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: reports/<profile>/validate-testbed)")
    parser.add_argument("--seed", type=int, default=val.ValidationOptions.seed, help="replay seed")
    parser.add_argument("--no-in-sample", action="store_true", help="skip the in-sample diagnostic replay")


def run(args: argparse.Namespace) -> int:
    params = load_params(args.profile)
    t0 = time.perf_counter()
    result = ingest(params, args.data)
    require_usable(result)
    opts = val.ValidationOptions(seed=args.seed)
    try:
        res = val.validate(result.requests, params, opts, in_sample=not args.no_in_sample)
    except InputError as exc:
        raise InputError(f"data folder {result.data_dir} cannot be validated on: {exc}: point --data at real "
                         "request logs with platform metrics") from None
    res["data"] = {"provenance": provenance(result), **result.summary()}
    res["data"]["data_dir"] = str(res["data"]["data_dir"])
    out = args.out or params.path("reports_dir") / val.VALIDATION_DIR
    out.mkdir(parents=True, exist_ok=True)
    (out / val.VALIDATION_FILE).write_text(json.dumps(res, indent=1, default=str))
    report.validation_figure(res).savefig(out / "validation.png", dpi=110)
    print(f"validate-testbed {params.profile}: {result.data_dir}")
    print(res["method"])
    for f in res["folds"]:
        fit = f["fit"]
        print(f"  held out {f['held_out_session']}: fitted RTT {fit['rtt_ms']:.0f} ms, upload "
              f"{fit['upload_mbps']:.0f} Mbit/s, inflation {fit['inflation_ms_per_rps']:.1f} ms per req/s; "
              f"{f['arrivals']:,} arrivals replayed")
    print(report.thresholds_frame(res).drop(columns=["rule"]).to_string(index=False))
    print(table([("overall (out of sample)", "PASS" if res["pass"] else "FAIL"),
                 ("wrote", f"{out / val.VALIDATION_FILE}, {out / 'validation.png'}"),
                 ("seconds", f"{time.perf_counter() - t0:.1f}")]))
    return 0
