"""`python -m hybridopt <command> ...`: the pipeline's steps without notebooks.

Each command lives in its own module and is imported only when used (fast start-up). A module
registers a command by exposing `add_arguments(parser)` and `run(args) -> int`."""

from __future__ import annotations

import argparse
import importlib
import sys

#: command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "ingest": ("hybridopt.commands.ingest", "read request logs (contract or legacy layout) and count every line"),
    "audit": ("hybridopt.commands.audit", "ingest + audit: buckets, coverage, unlogged attempts, clock consistency"),
    "preprocess": ("hybridopt.commands.preprocess", "ingest + audit + pairing + cost + labels + features + gates"),
    "package": ("hybridopt.commands.package", "build the router's Lambda zip (handler, model, feature spec)"),
    "deploy": ("hybridopt.commands.deploy", "deploy the router with a weighted A/B alias (boto3; --dry-run / --execute)"),
    "ab": ("hybridopt.commands.ab", "online A/B through the router (testbed, --simulate, or aws with --aws-opt-in)"),
    "collect": ("hybridopt.commands.collect", "run the five-window schedule with real Artillery (testbed or AWS), resumable"),
    "testbed": ("hybridopt.commands.testbed", "serve the local Lambda/Fargate testbed (HTTP, wall clock)"),
    "simulate": ("hybridopt.commands.simulate", "simulate the profile's schedule on the platform model (virtual clock)"),
    "evaluate": ("hybridopt.commands.evaluate", "score the saved best model on another folder of logs (accuracy, ceiling, decision quality)"),
    "calibrate": ("hybridopt.commands.calibrate", "fit the platform model to real logs (--write: the fitted presets into params/testbed.yaml)"),
    "validate-testbed": ("hybridopt.commands.validate_testbed", "replay real runs on the calibrated model, leave one session out: pass/fail table and figure"),
    "infra": ("hybridopt.commands.infra", "the experiment's AWS platforms as code: synth, lint, package, image, deploy, outputs, teardown, cost"),
    "platform-logs": ("hybridopt.commands.platform_logs", "after an AWS collection: Lambda REPORT lines and ECS task times from CloudWatch, joined to the request log"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hybridopt", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        # arguments are declared by the module; import lazily only for the chosen command
        if (argv if argv is not None else sys.argv[1:])[:1] == [name]:
            importlib.import_module(module).add_arguments(p)
    args = parser.parse_args(argv)
    from hybridopt.params import ParamsError

    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
