"""The workloads' entry points on AWS, around `hybridopt.workloads` unchanged.

- `lambda_handler`: API Gateway (REST, proxy integration) -> `workloads.lambda_handler`. Before the
  work it prints one line tying the load generator's request id (header `x-request-id`, the request
  log's `request_id`) to Lambda's own request id, so that `platform-logs` can join the function's
  REPORT line (billed duration, memory used, INIT) to the request log line. Printed first, the line
  is there even when the invocation later times out or crashes.
- `make_container_app`: the WSGI app gunicorn serves in the container (`gunicorn_conf`), with the
  task's memory from the environment. Nothing is added per request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from hybridopt import workloads

#: First word of the request-id line in the function's log (a CloudWatch filter pattern term).
REQUEST_LINE_TAG = "HYBRIDOPT_REQUEST"
#: Request headers the load generator sets (artillery/variance-functions.js).
REQUEST_ID_HEADER = "x-request-id"
PAIR_ID_HEADER = "x-pair-id"
#: The container's environment: the task's memory (reported in each response's metrics).
MEMORY_ENV = "HYBRIDOPT_MEMORY_LIMIT_MB"


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return None if value is None else str(value)
    return None


def request_line(event: Mapping[str, Any], aws_request_id: str | None) -> str:
    """The request-id line for one invocation (one line of JSON after the tag)."""
    headers = event.get("headers")
    rec = {"aws_request_id": aws_request_id, "request_id": _header(headers, REQUEST_ID_HEADER),
           "pair_id": _header(headers, PAIR_ID_HEADER), "resource": event.get("resource") or event.get("path")}
    return f"{REQUEST_LINE_TAG} {json.dumps(rec, separators=(',', ':'))}"


def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """The function's handler: the request-id line, then the workload."""
    print(request_line(event, getattr(context, "aws_request_id", None)), flush=True)
    return workloads.lambda_handler(event, context)


def make_container_app() -> Any:
    """The container's WSGI app (gunicorn: `hybridopt.infra.entry:make_container_app()`)."""
    raw = os.environ.get(MEMORY_ENV)
    try:
        memory_mb = float(raw) if raw else None
    except ValueError:
        raise SystemExit(f"{MEMORY_ENV}={raw!r} is not a number of MB") from None
    return workloads.make_wsgi_app(memory_limit_mb=memory_mb)
