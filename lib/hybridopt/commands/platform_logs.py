"""`python -m hybridopt platform-logs --profile NAME [--data DIR] [--out DIR]`: after an AWS
collection, read what AWS logged (Lambda REPORT lines, ECS task state changes) from CloudWatch Logs,
join it to the request log by request id and time, and write the tables beside the raw logs
(hybridopt.infra.platform_logs documents the files; `load_platform_logs` reads them back)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hybridopt.params import load_params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", required=True, help="params profile (params/<profile>.yaml)")
    parser.add_argument("--data", type=Path, default=None, help="contract logs to join (default: data.raw_dir)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the tables here (default: <data.raw_dir>/platform)")


def run(args: argparse.Namespace) -> int:
    from hybridopt.infra import platform_logs as pl
    from hybridopt.infra.deploy import Clients

    params = load_params(args.profile)
    try:
        res = pl.collect_platform_logs(params, Clients.create(params.infra.region).logs, args.data, args.out)
    except Exception as exc:  # botocore: no credentials, access denied, throttling, ...
        from botocore.exceptions import BotoCoreError, ClientError

        if not isinstance(exc, (BotoCoreError, ClientError)):
            raise
        print(f"error: AWS call failed: {type(exc).__name__}: {exc}")
        return 1
    s = res.summary
    j = s["lambda_join"]
    print(f"platform-logs: {s['contract_lines']:,} contract lines, {s['log_events_read']:,} log events read "
          f"({s['fetched_from']} .. {s['fetched_to']})")
    print(f"  Lambda: {j['report_lines']:,} REPORT lines, joined {j['report_lines_by_join']}; "
          f"report match rate {j['report_match_rate']}")
    print(f"          {j['contract_lambda_lines_matched']:,} of {j['contract_lambda_lines']:,} Lambda contract lines "
          f"matched ({j['contract_match_rate']}); of those API Gateway passed on: {j['contract_invoked_match_rate']}")
    print(f"  ECS:    {s['ecs_tasks']} tasks from {s['ecs_task_events']} task events; billed task-seconds "
          f"{s['ecs_billed_task_s']}")
    from hybridopt import paths

    print(f"  written to {args.out or paths.platform_logs_dir(params)}")
    return 0
