#!/usr/bin/env python
"""Run the pipeline's numbered notebooks for a profile with papermill; write reports/<profile>/.

    python run_all.py --profile thesis-2025-11 [--only 02,03] [--from 03] [--force]

Each executed notebook and its HTML (code hidden, provenance and gates on top) land in
reports/<profile>/ with an index.html. A failing notebook still gets its partial HTML; the index
marks it failed with the failing cell; the exit code is non-zero.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_PROFILE = "quick"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--profile", default=DEFAULT_PROFILE, help=f"params profile (default {DEFAULT_PROFILE})")
    ap.add_argument("--only", default=None, help="comma-separated notebook numbers to run, e.g. 02,03")
    ap.add_argument("--from", dest="start", default=None, help="run from this notebook number on, e.g. 03")
    ap.add_argument("--force", action="store_true", help="redo work the notebooks would skip as already done")
    ap.add_argument("--cell-timeout", type=int, default=None, help="seconds a single cell may run")
    ap.add_argument("--notebooks", type=Path, default=None, help=argparse.SUPPRESS)  # tests: another folder
    ap.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)        # tests: another reports dir
    args = ap.parse_args(argv)

    from hybridopt.params import ParamsError
    from hybridopt.runner import RunnerError, run

    only = [k.strip() for k in args.only.split(",")] if args.only else None
    try:
        _, code = run(args.profile, only=only, start=args.start, force=args.force, cell_timeout_s=args.cell_timeout,
                      notebooks_dir=args.notebooks, out_dir=args.out)
    except (ParamsError, RunnerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
