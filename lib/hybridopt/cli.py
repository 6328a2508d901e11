"""`python -m hybridopt <command> ...`: the pipeline's steps without notebooks.

Each command lives in its own module and is imported only when used (fast start-up). A module
registers a command by exposing `add_arguments(parser)` and `run(args) -> int`.

A wrong input (a missing, empty, unreadable or unusable file or folder: `InputError`; a wrong
parameter: `ParamsError`; a file the system refuses to open or write: `OSError` naming it) ends the
command with one line on stderr, `error: <what and where>: <what to do>`, and exit code 2. Anything
else is a bug and keeps its traceback."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

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
    "decide": ("hybridopt.commands.decide", "policies judged by an explicit objective against its oracle, leave-session-out (--data: score unseen logs); decisions.json"),
    "replay-policy": ("hybridopt.commands.replay_policy", "policies judged CLOSED LOOP in the simulator (their routing makes the load): bill, latency, failures with CIs over seeds, beside the open loop"),
    "evaluate": ("hybridopt.commands.evaluate", "score the saved best model on another folder of logs (accuracy, ceiling, decision quality)"),
    "calibrate": ("hybridopt.commands.calibrate", "fit the platform model to real logs (--write: the fitted presets into params/testbed.yaml)"),
    "validate-testbed": ("hybridopt.commands.validate_testbed", "replay real runs on the calibrated model, leave one session out: pass/fail table and figure"),
    "infra": ("hybridopt.commands.infra", "the experiment's AWS platforms as code: synth, lint, package, image, deploy, outputs, teardown, cost"),
    "platform-logs": ("hybridopt.commands.platform_logs", "after an AWS collection: Lambda REPORT lines and ECS task times from CloudWatch, joined to the request log"),
    "crossover": ("hybridopt.commands.crossover", "the crossover map: closed-loop runs over rate x payload x Fargate capacity x policy x seed on Dask (--scheduler ADDRESS, --workers N), cached"),
}

#: The exit code of a command stopped by a wrong input or parameter (argparse's, for usage errors).
EXIT_INPUT = 2


#: What to do about a file-system error on a path the command was given or writes to.
_OS_ADVICE: dict[type[OSError], str] = {
    FileNotFoundError: "no such file or folder: check the path",
    FileExistsError: "a file is in the way where a folder is needed: choose another path",
    NotADirectoryError: "a file is in the way where a folder is needed: choose another path",
    IsADirectoryError: "a folder is in the way where a file is needed: choose another path",
    PermissionError: "permission denied: fix the permissions or choose another path",
}


def error_line(exc: BaseException) -> str:
    """The one line a wrong input prints: `error: <message>` (line breaks folded)."""
    if isinstance(exc, OSError) and exc.filename is not None:
        target = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else str(exc.filename)
        advice = _OS_ADVICE.get(type(exc), f"{exc.strerror or type(exc).__name__}: check the path and its permissions")
        text = f"{target}: {advice}"
    else:
        text = str(exc) or type(exc).__name__
    return "error: " + " ".join(text.split())


class Parser(argparse.ArgumentParser):
    """argparse with a usage error in one line, like every other wrong input (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m hybridopt", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        # arguments are declared by the module; import lazily only for the chosen command
        if (argv if argv is not None else sys.argv[1:])[:1] == [name]:
            importlib.import_module(module).add_arguments(p)
    args = parser.parse_args(argv)
    from hybridopt.errors import InputError
    from hybridopt.params import ParamsError

    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except (InputError, ParamsError) as exc:
        print(error_line(exc), file=sys.stderr)
        return EXIT_INPUT
    except OSError as exc:
        if exc.filename is None:  # not about a named file: a bug or the network, keep the traceback
            raise
        print(error_line(exc), file=sys.stderr)
        return EXIT_INPUT
