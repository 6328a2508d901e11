"""Where a window's requests go: the local testbed (started here, its model clock moved between
windows) or the student's AWS endpoints from params."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from hybridopt.params import Params, ParamsError


def _no_window_start(window: str, virtual_start: datetime) -> None:
    return None


def _no_stop() -> None:
    return None


def _no_snapshot() -> dict[str, Any]:
    return {}


@dataclass
class Target:
    """Where a window's requests go. `begin_window` is called before each window (testbed: move the
    model clock to the window's virtual start); `snapshot` before and after it (testbed: the admin
    stats, a JSON object); `stop` once at the end."""
    kind: str                      # testbed | aws
    lambda_base_url: str
    ecs_base_url: str
    begin_window: Callable[[str, datetime], None] = _no_window_start
    stop: Callable[[], None] = _no_stop
    snapshot: Callable[[], dict[str, Any]] = _no_snapshot


def _admin(base_url: str, method: str, what: str, body: dict[str, float] | None = None) -> dict[str, Any]:
    """Call the testbed's admin API (/_testbed/<what>) on 127.0.0.1; its JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{base_url}/_testbed/{what}", data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback only
        return json.loads(resp.read())


def start_testbed(params: Params) -> Target:
    """Start the local testbed (hybridopt.emulation.testbed, a child process on an ephemeral port of
    collection.testbed_host). Before each window the model clock is moved forward so that model
    time since the first window equals the virtual time since its start (Lambda environments idle
    between windows are reclaimed, autoscaling evaluated), as between real windows hours apart."""
    from hybridopt.emulation import (
        testbed,  # the platform model's HTTP adapter; imported only when a testbed run needs it
    )

    tb = testbed.start(params, params.collection.testbed_host, port=0, mode="process")
    anchor: dict[str, datetime] = {}

    def begin(window: str, virtual_start: datetime) -> None:
        first = anchor.setdefault("virtual_start", virtual_start)
        want_s = (virtual_start - first).total_seconds()
        now_s = float(_admin(tb.base_url, "GET", "clock")["model_time_s"])
        if want_s > now_s:
            _admin(tb.base_url, "POST", "advance", {"seconds": want_s - now_s})

    def snapshot() -> dict[str, Any]:
        try:
            return _admin(tb.base_url, "GET", "stats")
        except OSError as exc:  # the testbed went away: say so, lose nothing else
            return {"error": str(exc)}

    return Target("testbed", tb.base_url, tb.base_url, begin_window=begin, stop=tb.stop, snapshot=snapshot)


def aws_target(params: Params) -> Target:
    """The profile's API Gateway and ALB base URLs (collection.lambda_base_url, ecs_base_url)."""
    c = params.collection
    if not c.lambda_base_url or not c.ecs_base_url:
        raise ParamsError(f"profile {params.profile!r}: source aws needs collection.lambda_base_url and "
                          f"collection.ecs_base_url")
    return Target("aws", c.lambda_base_url, c.ecs_base_url)
