"""`python -m hybridopt testbed --profile NAME [--host 127.0.0.1] [--port 0]`: serve the Lambda/Fargate
testbed (see hybridopt.emulation.testbed for routes and the admin API). Prints `TESTBED_URL=http://HOST:PORT` on
stdout once listening; serves until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import errno
import json
import socket
from pathlib import Path

from hybridopt.errors import InputError
from hybridopt.params import Params, ParamsError, load_params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="quick", help="parameter profile (default: quick)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: an ephemeral port)")
    parser.add_argument("--seed", type=int, default=None, help="model seed (default: testbed.seed)")
    parser.add_argument("--params-json", default=None, help=argparse.SUPPRESS)  # used by testbed.start(mode="process")


def run(args: argparse.Namespace) -> int:
    from hybridopt.emulation.testbed import run_forever

    if args.params_json:
        path = Path(args.params_json)
        try:
            params = Params.model_validate(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise ParamsError(f"{path}: not a valid parameter dump: {exc}") from exc
    else:
        params = load_params(args.profile)
    try:
        return run_forever(params, args.host, args.port, args.seed)
    except OSError as exc:  # the address cannot be bound: in use, not local, privileged, unknown host
        if not (isinstance(exc, socket.gaierror) or exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL,
                                                                   errno.EACCES)):
            raise
        raise InputError(f"--host {args.host} --port {args.port}: cannot listen ({exc.strerror or exc}): choose "
                         "another --port (0 picks a free one) or --host") from None
