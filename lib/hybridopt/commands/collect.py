"""`python -m hybridopt collect --profile NAME [--force] [--allow-outside-window] [--aws-opt-in]
[--window NAME ...]`: run the profile's five-window schedule with real Artillery against the local
testbed (source testbed) or AWS (source aws), resuming where it stopped; see hybridopt.collection."""

from __future__ import annotations

import argparse

from hybridopt.errors import InputError
from hybridopt.params import load_params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", required=True, help="params profile (params/<profile>.yaml)")
    parser.add_argument("--force", action="store_true", help="redo windows whose manifest says complete")
    parser.add_argument("--allow-outside-window", action="store_true",
                        help="aws: run pending windows now although their local time window is not open")
    parser.add_argument("--aws-opt-in", action="store_true",
                        help="aws: yes, send real traffic to the profile's AWS endpoints")
    parser.add_argument("--window", action="append", default=None, metavar="NAME",
                        help="only this time window (repeatable; default: the whole schedule)")


def run(args: argparse.Namespace) -> int:
    from hybridopt import collection as collect
    from hybridopt.collection import loadgen

    params = load_params(args.profile)
    if args.window:
        unknown = sorted(set(args.window) - set(params.time_windows))
        if unknown:
            raise InputError(f"--window: unknown time window(s) {unknown}: choose from {loadgen.schedule(params)}")
    try:
        manifests = collect.collect(params, force=args.force, allow_outside_window=args.allow_outside_window,
                                    aws_opt_in=args.aws_opt_in, windows=args.window)
    except FileNotFoundError as exc:  # Node.js or the pinned Artillery is not installed: the message says how
        if exc.filename is not None:
            raise
        raise InputError(str(exc)) from None
    except collect.CollectionRefused as exc:
        print(f"collect refused: {exc}")
        return 3
    except collect.CollectionFailed as exc:
        print(f"collect failed: {exc}")
        manifests = exc.manifests
    except KeyboardInterrupt as exc:
        print(f"collect interrupted: {exc}")
        return 130
    failed = any(m.get("status") not in ("complete", "pending") for m in manifests)
    rows = collect.summary_rows(manifests)
    print(f"\ncollect: profile {params.profile} ({params.source}), raw logs under {params.path('raw_dir')}")
    print(f"  {'window':<14}{'status':<12}{'attempts':>9}{'lines':>8}{'ok':>7}  errors{'':<28}"
          f"{'cpu p95':>8}{'lag p99':>9}  saturated")
    bad = 0
    for r in rows:
        errs = ", ".join(f"{k[6:]} {v}" for k, v in r.items() if k.startswith("error_") and v)
        print(f"  {str(r['time_window']):<14}{str(r['status']):<12}{_n(r['attempts_made']):>9}"
              f"{_n(r['lines_written']):>8}{_n(r['ok']):>7}  {errs or '-':<34}{_n(r['cpu_pct_p95']):>8}"
              f"{_n(r['event_loop_lag_ms_p99']):>9}  {'YES: ' + str(r['saturation_reason']) if r['saturated'] else 'no'}")
        if r["status"] == "complete" and r["lines_equal_attempts"] is False:
            bad += 1
            print(f"    ! {r['run_id']}: {r['lines_written']} lines for {r['attempts_made']} attempts")
    return 1 if bad or failed else 0


def _n(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)
