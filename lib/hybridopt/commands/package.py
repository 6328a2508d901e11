"""python -m hybridopt package: build the router's Lambda zip from models/<profile>/ (a missing or
broken model folder is a PackageError: one line, exit 2)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hybridopt.params import load_params
from hybridopt.router.package import build_package, package_path, router_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", required=True, help="params profile (params/<profile>.yaml)")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="package this model directory instead of the profile's models/<profile>")
    parser.add_argument("--out", type=Path, default=None, help="zip path (default: router.package_dir)")


def run(args: argparse.Namespace) -> int:
    params = load_params(args.profile)
    model_dir = args.model_dir or params.path("models_dir")
    out = args.out or package_path(params)
    r = build_package(model_dir, out, router_config(params), params.router.max_package_mb,
                      params.router.target_package_mb)
    print(f"package {params.profile}: {r.zip_path}")
    print(f"  size        {r.zip_bytes / 1e6:.3f} MB zipped, {r.unzipped_bytes / 1e6:.3f} MB unzipped, "
          f"{r.n_files} files (limit {params.router.max_package_mb} MB, aim {params.router.target_package_mb} MB)")
    print(f"  model       {r.model_format} {r.model_version} ({r.model_bytes / 1e3:.0f} KB)")
    print(f"  handler     {r.handler}")
    print(f"  sha256      {r.sha256}")
    for w in r.warnings:
        print(f"  WARNING     {w}")
    Path(out).with_suffix(".json").write_text(json.dumps(r.as_dict(), indent=2))
    return 0
