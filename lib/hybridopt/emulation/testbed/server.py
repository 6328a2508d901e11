"""The testbed server: one PlatformModel driven by the wall clock, served over HTTP/1.1 in one asyncio
event loop. The model decides each request's outcome and timing; this module holds the response back
until the model's schedule, answers a request the model's client gave up on with silence, and keeps the
counters the admin API reports."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, deque

import numpy as np

from hybridopt.emulation.testbed import admin, responses
from hybridopt.emulation.testbed.protocol import READ_BYTES, HttpConnection, HttpRequest, MalformedRequest
from hybridopt.emulation.testbed.responses import Reply, Route
from hybridopt.params import Params, TestbedParams
from hybridopt.platforms import PlatformModel

#: After the model's client deadline the testbed waits this long before closing a connection it will not
#: answer, so that the real client's own timer (started a little earlier, when it opened the request)
#: fires first and it logs a timeout rather than a closed connection.
TIMEOUT_GRACE_S = 1.0
#: A first request whose head arrives within this long of the connection's accept is taken as sent at the
#: accept (the client started its request when it connected).
_FIRST_REQUEST_S = 0.05
#: How many response release delays the lateness statistics keep.
_LATENESS_KEPT = 100_000


class TestbedServer:
    """The asyncio HTTP server around one PlatformModel (runs inside one event loop)."""

    __test__ = False   # not a pytest test class

    def __init__(self, params: Params, seed: int | None = None) -> None:
        self.params = params
        self.seed = params.testbed.seed if seed is None else seed
        self.routes: dict[str, Route] = {}
        for name, w in params.workloads.items():
            self.routes[w.lambda_route] = Route("lambda", name)
            self.routes[w.ecs_route] = Route("ecs", name)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.client_timeout_s = float(params.collection.http_timeout_s)
        self.host = ""
        self.port = 0
        self.reset(self.seed)

    # ------------------------------------------------------------------------------------- state
    def reset(self, seed: int) -> None:
        """A fresh model for `seed` (no environments, min tasks), counters zeroed, model clock at 0."""
        self.seed = seed
        self.model = PlatformModel(self._model_params(), self.params.workloads, np.random.default_rng(seed))
        self.client_timeouts = 0
        self._t0 = time.monotonic()
        self.offset_s = 0.0
        self.requests: Counter[str] = Counter()
        self.responses: Counter[int] = Counter()
        self.in_flight = 0
        self.connections_total = 0
        self._late_ms: deque[float] = deque(maxlen=_LATENESS_KEPT)   # response release minus its due time

    def _model_params(self) -> TestbedParams:
        """params.testbed with the client preset's request timeout set to the real client's
        (collection.http_timeout_s, what the load generator is configured with)."""
        tb = self.params.testbed
        preset = tb.client
        if preset.request_timeout_s.value == self.client_timeout_s:
            return tb
        timeout = preset.request_timeout_s.model_copy(update={
            "value": self.client_timeout_s,
            "source": "collection.http_timeout_s: the testbed's real client (Artillery) times out by itself"})
        clients = {**tb.clients, tb.client_preset: preset.model_copy(update={"request_timeout_s": timeout})}
        return tb.model_copy(update={"clients": clients})

    def now(self) -> float:
        """Model time: wall seconds since start (or reset) plus the admin offset."""
        return time.monotonic() - self._t0 + self.offset_s

    def wall_elapsed_s(self) -> float:
        return time.monotonic() - self._t0

    def advance(self, seconds: float) -> float:
        """Move the model clock forward and run the model's time-driven events; the new model time."""
        self.offset_s += seconds
        now = self.now()
        self.model.advance(now)
        return now

    @property
    def open_connections(self) -> int:
        return len(self._writers)

    def lateness(self) -> dict[str, float | int]:
        """How late the server released responses relative to the model's schedule (the last 100,000)."""
        if not self._late_ms:
            return {"n": 0}
        arr = np.fromiter(self._late_ms, dtype=np.float64)
        return {"n": int(arr.size), "p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99)),
                "max": float(arr.max())}

    # ------------------------------------------------------------------------------------ server
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await asyncio.start_server(self._connection, host, port, limit=READ_BYTES,
                                                  reuse_address=True)
        sock = self._server.sockets[0]
        self.host, self.port = sock.getsockname()[:2]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def close(self) -> None:
        """Stop listening, end the connection handlers still holding requests (quietly) and close."""
        if self._server is not None:
            self._server.close()
            handlers = [t for t in self._handlers if not t.done()]
            for t in handlers:
                t.cancel()
            if handlers:
                await asyncio.gather(*handlers, return_exceptions=True)
            for w in list(self._writers):
                w.close()
            await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await self._serve_connection(reader, writer)
        except asyncio.CancelledError:
            # the server is stopping (close() or the event loop's shutdown): end without a traceback; a
            # cancelled handler would make asyncio's stream callback log the CancelledError
            pass
        finally:
            if task is not None:
                self._handlers.discard(task)

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.connections_total += 1
        http = HttpConnection(reader, writer)
        fronts: set[str] = set()       # front doors this connection has already handshaken with
        t_accept: float | None = time.monotonic()
        try:
            while True:
                try:
                    request = await http.read_request()
                except MalformedRequest as exc:
                    await http.reject(exc)
                    return
                if request is None:
                    return
                t_wall = request.headers_at_s
                if t_accept is not None and t_wall - t_accept < _FIRST_REQUEST_S:
                    t_wall = t_accept
                t_accept = None
                reply = await self._respond(request, t_wall, fronts)
                if reply is None:          # the model's client gave up: no response, close
                    return
                if not request.path.startswith(admin.ADMIN_PREFIX):
                    self.responses[reply.status] += 1
                if not await http.respond(reply.status, reply.body, reply.content_type, reply.headers,
                                          close=not request.keep_alive):
                    return
        except ConnectionError:
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    # ---------------------------------------------------------------------------------- requests
    async def _respond(self, request: HttpRequest, t_wall: float, fronts: set[str]) -> Reply | None:
        path = request.path
        if path.startswith(admin.ADMIN_PREFIX):
            status, doc = admin.handle(self, request.method, path[len(admin.ADMIN_PREFIX):], request.body)
            return Reply(status, json.dumps(doc).encode())
        self.requests[path] += 1
        route = self.routes.get(path)
        if path == "/health" and request.method == "GET":
            return responses.health()
        if route is None or request.method != "POST":
            return responses.missing_token()
        self.in_flight += 1
        try:
            return await self._platform_request(route, request.body, t_wall, fronts)
        finally:
            self.in_flight -= 1

    async def _platform_request(self, route: Route, body: bytes, t_wall: float, fronts: set[str]) -> Reply | None:
        """Submit the request to the model at its wall time, wait for its dispatch, and hold the response
        until the model's total time (None: the model's client gave up; wait a grace second past it)."""
        model = self.model
        new_conn = route.platform not in fronts
        fronts.add(route.platform)
        t_send = t_wall - self._t0 + self.offset_s
        pending = model.submit(t_send, route.platform, route.workload, len(body), new_connection=new_conn)
        if pending.outcome is None:
            await asyncio.sleep(max(0.0, t_wall + (pending.dispatch_at_s - t_send) - time.monotonic()))
            while model.client.uplink is not None:   # a shared uplink can push the request back meanwhile
                now = time.monotonic()
                wait = t_wall + (model.due_s(pending, t_send + now - t_wall) - t_send) - now
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            outcome = model.dispatch(pending)
        else:
            outcome = pending.outcome
        outcome = model.apply_client_timeout(outcome)
        if outcome.error == "timeout":
            # the client has given up by now (its own timer); answer with silence, then close
            self.client_timeouts += 1
            await asyncio.sleep(max(0.0, t_wall + outcome.total_ms / 1000.0 + TIMEOUT_GRACE_S - time.monotonic()))
            return None
        reply = responses.render(route, outcome, responses.parse_envelope(body))
        due = t_wall + outcome.total_ms / 1000.0
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        self._late_ms.append((time.monotonic() - due) * 1000.0)
        return reply
