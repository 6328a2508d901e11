"""python -m hybridopt deploy: create/update the router function, publish control and treatment
versions, and point a weighted alias at them (boto3). Prints the plan; changes AWS only with
--execute (an explicit opt-in); --dry-run never calls AWS unless --read-state is given."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hybridopt.params import load_params
from hybridopt.router.deploy import apply, make_plan
from hybridopt.router.package import package_path

if TYPE_CHECKING:
    from botocore.client import BaseClient


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", required=True, help="params profile (params/<profile>.yaml)")
    parser.add_argument("--zip", type=Path, default=None, help="package to deploy (default: the profile's)")
    parser.add_argument("--weight", type=float, default=None,
                        help="treatment share of the alias in [0, 1] (default: params deploy.treatment_weight)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    mode.add_argument("--execute", action="store_true",
                      help="really deploy to the AWS account of the standard credential chain")
    parser.add_argument("--read-state", action="store_true",
                        help="with --dry-run: read the function's and alias's current state (read-only calls)")


def _client(region: str) -> BaseClient:
    import boto3

    return boto3.client("lambda", region_name=region)


def run(args: argparse.Namespace) -> int:
    params = load_params(args.profile)
    cfg = params.deploy
    zip_path = args.zip or package_path(params)
    try:
        client = _client(cfg.region) if (args.execute or args.read_state) else None
        plan = make_plan(cfg, zip_path, client, args.weight)
        print(plan.render())
        if not args.execute:
            print("dry run: nothing changed" if args.dry_run else
                  "not deployed: pass --execute to deploy to AWS (explicit opt-in)")
            return 0 if args.dry_run else 2
        result = apply(plan, cfg, client)
    except Exception as exc:  # botocore: no credentials, access denied, throttling, ...
        from botocore.exceptions import BotoCoreError, ClientError

        if not isinstance(exc, (BotoCoreError, ClientError)):
            raise  # DeployError (a wrong setting or package) is shown by the CLI: one line, exit 2
        print(" ".join(f"error: AWS call failed: {type(exc).__name__}: {exc}".split()), file=sys.stderr)
        return 1
    print(f"deployed {result.function_arn}")
    print(f"  control version {result.control_version}, treatment version {result.treatment_version}")
    print(f"  alias {result.alias_arn} routing {result.routing}  CodeSha256 {result.code_sha256}")
    return 0
