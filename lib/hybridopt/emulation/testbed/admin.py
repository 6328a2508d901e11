"""The testbed's admin API under /_testbed/ (JSON in and out): health, the model clock, moving the
model clock forward, a reset with a new seed, and the counters. See hybridopt.emulation.testbed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hybridopt.emulation.testbed.server import TestbedServer

ADMIN_PREFIX = "/_testbed/"
KNOWN_CALLS = ["GET health", "GET clock", "GET stats", "POST advance", "POST reset"]


def handle(server: TestbedServer, method: str, what: str, body: bytes) -> tuple[int, dict[str, object]]:
    """Answer the admin call `method ADMIN_PREFIX+what` with (status, JSON document)."""
    try:
        doc = json.loads(body) if body else {}
        if not isinstance(doc, dict):
            raise ValueError("expected a JSON object")
    except (ValueError, RecursionError) as exc:
        return 400, {"error": f"body is not a JSON object: {exc}"}
    if what == "health" and method == "GET":
        return 200, {"status": "ok"}
    if what == "clock" and method == "GET":
        return 200, {"model_time_s": server.now(), "wall_elapsed_s": server.wall_elapsed_s(),
                     "offset_s": server.offset_s}
    if what == "stats" and method == "GET":
        return 200, stats(server)
    if what == "advance" and method == "POST":
        seconds = doc.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
            return 400, {"error": f"'seconds' must be a number >= 0, got {seconds!r}"}
        now = server.advance(float(seconds))
        return 200, {"model_time_s": now, "offset_s": server.offset_s, "advanced_s": float(seconds)}
    if what == "reset" and method == "POST":
        seed = doc.get("seed", server.seed)
        if isinstance(seed, bool) or not isinstance(seed, int):
            return 400, {"error": f"'seed' must be an integer, got {seed!r}"}
        server.reset(seed)
        return 200, {"model_time_s": server.now(), "seed": seed}
    return 404, {"error": f"unknown admin call {method} {ADMIN_PREFIX}{what}", "known": KNOWN_CALLS}


def stats(server: TestbedServer) -> dict[str, object]:
    """The counters, the clocks, how late responses left, and the model's own state."""
    now = server.now()
    return {"model_time_s": now, "wall_elapsed_s": server.wall_elapsed_s(), "offset_s": server.offset_s,
            "requests": dict(server.requests), "responses": {str(k): v for k, v in server.responses.items()},
            "client_timeouts": server.client_timeouts, "client_timeout_s": server.client_timeout_s,
            "in_flight": server.in_flight,
            "connections": {"open": server.open_connections, "total": server.connections_total},
            "lateness_ms": server.lateness(), "model": server.model.stats(now)}
