"""Arguments and printing shared by the pipeline commands."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_profile_data_out(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", required=True, help="params profile (params/<profile>.yaml)")
    parser.add_argument("--data", type=Path, default=None,
                        help="read this folder of logs (contract or legacy layout) instead of the profile's")
    parser.add_argument("--out", type=Path, default=None,
                        help="write outputs here instead of the profile's data/<profile>/processed")


def table(rows: list[tuple[str, object]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)
