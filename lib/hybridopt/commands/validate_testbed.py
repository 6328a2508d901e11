"""python -m hybridopt validate-testbed [--fit-data DIR] --data DIR [--out DIR]: how close the calibrated
platform model comes to real runs (see hybridopt.calibration.validate).

Without --fit-data: leave-one-session-out on --data (each session judged on a model fitted on the
others), with the in-sample self-check beside it. With --fit-data: the model is calibrated on every
session under --fit-data and every session under --data is judged on it (the same folder twice is the
in-sample self-check). Each judged session is replayed blind (the fit's typical client network) and
conditioned on its own client network (read from its lightweight requests or its probe phase); the
conditioned comparison on the cells the probe did not touch is the result of record.

Writes validation.json (checks with their goals, every cell with its CIs and pass booleans, the
failing cells with their most likely cause) and validation.png (the figure of
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
                        help="folder of real logs to judge (legacy or contract layout; default: the profile's)")
    parser.add_argument("--fit-data", type=Path, default=None,
                        help="calibrate on every session under this folder and judge every session under --data "
                             "(default: leave one session of --data out at a time)")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help=f"params profile (default {DEFAULT_PROFILE})")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: reports/<profile>/validate-testbed)")
    parser.add_argument("--seed", type=int, default=val.ValidationOptions.seed, help="first replay seed")
    parser.add_argument("--seeds", type=int, default=val.ValidationOptions.seeds,
                        help=f"replays per judged session (default {val.ValidationOptions.seeds})")
    parser.add_argument("--no-in-sample", action="store_true",
                        help="leave-one-session-out only: skip the in-sample self-check")


def run(args: argparse.Namespace) -> int:
    if args.seeds < 1:
        raise InputError(f"--seeds must be >= 1, got {args.seeds}")
    params = load_params(args.profile)
    t0 = time.perf_counter()
    judged = ingest(params, args.data)
    require_usable(judged)
    opts = val.ValidationOptions(seed=args.seed, seeds=args.seeds)
    try:
        if args.fit_data is not None:
            fitted = judged if args.data is not None and args.fit_data.resolve() == args.data.resolve() \
                else ingest(params, args.fit_data)
            require_usable(fitted)
            res = val.validate_split(fitted.requests, judged.requests, params, opts, fit_label=str(fitted.data_dir))
            res["fit_data"] = {"provenance": provenance(fitted), **fitted.summary(), "data_dir": str(fitted.data_dir)}
        else:
            res = val.validate(judged.requests, params, opts, in_sample=not args.no_in_sample)
    except InputError as exc:
        raise InputError(f"data folder {judged.data_dir} cannot be validated on: {exc}: point --data (and --fit-data) "
                         "at real request logs with platform metrics") from None
    res["data"] = {"provenance": provenance(judged), **judged.summary(), "data_dir": str(judged.data_dir)}
    res["params_hash"] = params.hash
    out = args.out or params.path("reports_dir") / val.VALIDATION_DIR
    out.mkdir(parents=True, exist_ok=True)
    (out / val.VALIDATION_FILE).write_text(json.dumps(res, indent=1, default=str))
    report.validation_figure(res).savefig(out / "validation.png", dpi=110)
    print(f"validate-testbed {params.profile}: judged {judged.data_dir}"
          + (f", fitted on {res['fit_data']['data_dir']}" if args.fit_data is not None else ""))
    print(res["method"])
    print(report.folds_frame(res).drop(columns=["fitted_on"]).to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    print(report.thresholds_frame(res).drop(columns=["rule"]).to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    rec = res.get(res["record"])
    if rec:
        fails = report.failures_frame(rec)
        if len(fails):
            print("failing cells (network-conditioned), most likely cause from the residuals:")
            print(fails.to_string(index=False, float_format=lambda x: f"{x:.0f}"))
    print(table([("overall (network-conditioned)", "PASS" if res["pass"] else "FAIL"),
                 ("wrote", f"{out / val.VALIDATION_FILE}, {out / 'validation.png'}"),
                 ("seconds", f"{time.perf_counter() - t0:.1f}")]))
    return 0
