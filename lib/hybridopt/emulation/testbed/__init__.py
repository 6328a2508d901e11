"""The testbed: an HTTP adapter that drives the platform model (hybridopt.platforms) with the wall clock.

It serves the student's real routes on one port (default 127.0.0.1, ephemeral):

- `POST <workloads[w].lambda_route>` (`/lightweight`, `/thumbnail`, `/medium`, `/heavy`): Lambda behind
  API Gateway (modelled as HTTPS: a new connection pays a TLS handshake);
- `POST <workloads[w].ecs_route>` (`/lightweight/process`, ...): ECS Fargate behind the ALB (plain HTTP).

Request body (JSON, as the load generator sends it):
`{"request_id", "pair_id"?, "workload_type", "timestamp", "metadata": {...}, "payload": "..."}`. The
payload size the platform sees is the number of body bytes received.

Success response (200, application/json), as the student's handlers answered:
`{"request_id", "platform": "lambda"|"ecs", "workload_type", "timestamp", "metrics": {...}, "result": {...}}`
with Lambda metrics `execution_time_ms, memory_used_mb, memory_limit_mb, cold_start, init_duration_ms,
billed_duration_ms, instance_id, payload_size_kb` and ECS metrics `execution_time_ms, memory_used_mb,
memory_limit_mb, cpu_percent, instance_id, payload_size_kb`. Errors carry the real bodies: API Gateway
JSON messages (413 `{"message":"Request Too Long"}` above the 6 MB invoke limit, a plain-text 413 above
10 MB, 504 `{"message": "Endpoint request timed out"}`, 500 `{"message": "Internal server error"}` for a
throttled Lambda) and the ALB's HTML pages (504 Gateway Time-out, 503). Every response holds a
`Server-Timing` header with the model's own client timings (`connect`, `upload`, `first_byte`, `total`
in ms): on 127.0.0.1 the real upload is instant, so the response is held back until the model's total
time from the moment the request's headers arrived.

Keep-alive connections are served (one request at a time per connection, as Artillery does); the model
counts a connection as new only for its first request to each front door.

The client's timeout: the real client (Artillery) gives up by itself `collection.http_timeout_s` after it
started a request (got's timeout.request), so the model runs with that same request timeout (replacing
the client preset's `request_timeout_s` when they differ; `/_testbed/stats` says which). When the model
says the client gave up (no complete response within the timeout), the testbed sends nothing and closes
the connection a grace second after the deadline, by which time the client has logged its own timeout.
Stopping the testbed while it holds requests ends their handlers quietly.

Admin API (JSON; for the collection orchestrator and tests)
-----------------------------------------------------------
- `GET  /_testbed/health` -> `{"status": "ok"}`
- `GET  /_testbed/clock`  -> `{"model_time_s", "wall_elapsed_s", "offset_s"}`
- `POST /_testbed/advance` body `{"seconds": 14400}` -> moves the MODEL clock forward (offset grows) and
  runs the model's time-driven events (idle Lambda environments reclaimed, Fargate autoscaling
  evaluated), e.g. between two compressed one-hour windows. Call it when no request is in flight.
  Answers `{"model_time_s", "offset_s", "advanced_s"}`; 400 for a negative or non-numeric value.
- `POST /_testbed/reset` body `{"seed": 7}` (optional) -> a fresh model (no environments, min tasks),
  counters zeroed, model clock back to 0.
- `GET  /_testbed/stats`  -> `{"model_time_s", "wall_elapsed_s", "offset_s", "requests": {path: n},
  "responses": {status: n}, "client_timeouts": n, "client_timeout_s", "in_flight": n, "connections":
  {"open", "total"}, "lateness_ms": {"n", "p50", "p99", "max"}, "model": {...}}`; client_timeouts counts
  requests the model's client gave up on (answered by silence); lateness_ms says how late responses left relative to the
  model's schedule (the testbed's own overhead), and `model` holds per workload `lambda.<w>: cold_starts, warm_starts, throttled, envs_busy, envs_idle,
  reclaimed` and `ecs.<w>: tasks_ready, tasks_pending, queue_length, workers_busy, served,
  scale_outs, scale_ins`.

Python API: `with hybridopt.emulation.testbed.start(params) as tb: ... tb.base_url ...` (a background thread by
default, `mode="process"` for a child process). CLI: `python -m hybridopt testbed --profile NAME`
prints `TESTBED_URL=http://127.0.0.1:PORT` once listening and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from hybridopt.params import Params, TestbedParams
from hybridopt.platforms import PlatformModel
from hybridopt.platforms.outcome import (
    APIGW_INTERNAL_ERROR,
    APIGW_MISSING_TOKEN,
    Outcome,
)

ADMIN_PREFIX = "/_testbed/"
_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            413: "Request Entity Too Large", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
_MAX_HEADER_BYTES = 65536
#: After the model's client deadline the testbed waits this long before closing a connection it will not
#: answer, so that the real client's own timer (started a little earlier, when it opened the request)
#: fires first and it logs a timeout rather than a closed connection.
TIMEOUT_GRACE_S = 1.0
_WERKZEUG_400 = ('<!doctype html>\n<html lang=en>\n<title>400 Bad Request</title>\n<h1>Bad Request</h1>\n'
                 '<p>The browser (or proxy) sent a request that this server could not understand.</p>\n')


@dataclass(frozen=True)
class _Route:
    platform: str
    workload: str


class _BadRequest(Exception):
    pass


def _split_envelope(body: bytes) -> dict[str, Any]:
    """Parse the request JSON without copying a multi-MB `payload` string through the JSON decoder when
    it is the last member and a plain string (how the load generator sends it); otherwise parse all."""
    key = body.rfind(b'"payload"')
    if key > 0:
        colon = body.find(b":", key + 9)
        start = colon + 1
        while start < len(body) and body[start] in b" \t\r\n":
            start += 1
        end = body.rstrip().rfind(b"}")
        if colon > 0 and start < len(body) and body[start:start + 1] == b'"' and end > start:
            close = body.rfind(b'"', start + 1, end)
            if close > start and body.find(b'"', start + 1, close) == -1 and body.find(b"\\", start + 1, close) == -1:
                head = body[:start] + b"null" + body[close + 1:end + 1]
                try:
                    return json.loads(head)
                except ValueError:
                    pass
    return json.loads(body)


class TestbedServer:
    """The asyncio HTTP server around one PlatformModel (runs inside one event loop)."""

    __test__ = False   # not a pytest test class

    def __init__(self, params: Params, seed: int | None = None) -> None:
        self.params = params
        self.seed = params.testbed.seed if seed is None else seed
        self.routes: dict[str, _Route] = {}
        for name, w in params.workloads.items():
            self.routes[w.lambda_route] = _Route("lambda", name)
            self.routes[w.ecs_route] = _Route("ecs", name)
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.client_timeout_s = float(params.collection.http_timeout_s)
        self.host = ""
        self.port = 0
        self._reset_state(self.seed)

    # ------------------------------------------------------------------------------------- state
    def _reset_state(self, seed: int) -> None:
        self.model = PlatformModel(self._model_params(), self.params.workloads, np.random.default_rng(seed))
        self.client_timeouts = 0
        self._t0 = time.monotonic()
        self.offset_s = 0.0
        self.requests: Counter[str] = Counter()
        self.responses: Counter[int] = Counter()
        self.in_flight = 0
        self.connections_total = 0
        self._late_ms: deque[float] = deque(maxlen=100_000)   # response release minus its due time

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

    # ------------------------------------------------------------------------------------ server
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await asyncio.start_server(self._connection, host, port, limit=_MAX_HEADER_BYTES,
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
        fronts: set[str] = set()       # front doors this connection has already handshaken with
        t_accept: float | None = time.monotonic()
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                except asyncio.LimitOverrunError:
                    await self._write(writer, 431, b"", "text/plain", close=True)
                    return
                t_wall = time.monotonic()
                # the client started its request when it connected (a first request written right away)
                if t_accept is not None and t_wall - t_accept < 0.05:
                    t_wall = t_accept
                t_accept = None
                try:
                    method, path, headers, body = await self._read_request(head, reader, writer)
                except _BadRequest as exc:
                    await self._write(writer, 400, str(exc).encode(), "text/plain", close=True)
                    return
                keep = headers.get("connection", "").lower() != "close"
                answer = await self._respond(method, path, headers, body, t_wall, fronts)
                if answer is None:          # the model's client gave up: no response, close
                    return
                status, hdrs, payload, ctype = answer
                if not path.startswith(ADMIN_PREFIX):
                    self.responses[status] += 1
                await self._write(writer, status, payload, ctype, extra=hdrs, close=not keep)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _read_request(self, head: bytes, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> tuple[str, str, dict[str, str], bytes]:
        lines = head[:-4].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise _BadRequest(f"malformed request line {lines[0]!r}")
        method, target = parts[0], parts[1]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise _BadRequest(f"malformed header line {line!r}")
            headers[name.strip().lower()] = value.strip()
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":
                        pass
                    break
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            body = b"".join(chunks)
        else:
            try:
                n = int(headers.get("content-length", "0"))
            except ValueError as exc:
                raise _BadRequest("bad Content-Length") from exc
            body = await reader.readexactly(n) if n > 0 else b""
        return method, target.split("?", 1)[0], headers, body

    async def _write(self, writer: asyncio.StreamWriter, status: int, body: bytes, ctype: str, *,
                     extra: dict[str, str] | None = None, close: bool = False) -> None:
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
                 f"Content-Type: {ctype}", f"Content-Length: {len(body)}",
                 "Connection: close" if close else "Connection: keep-alive"]
        if extra:
            lines += [f"{k}: {v}" for k, v in extra.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()

    # ---------------------------------------------------------------------------------- requests
    async def _respond(self, method: str, path: str, headers: dict[str, str], body: bytes, t_wall: float,
                       fronts: set[str]) -> tuple[int, dict[str, str], bytes, str] | None:
        if path.startswith(ADMIN_PREFIX):
            status, obj = self._admin(method, path[len(ADMIN_PREFIX):], body)
            return status, {}, json.dumps(obj).encode(), "application/json"
        self.requests[path] += 1
        route = self.routes.get(path)
        if path == "/health" and method == "GET":
            return 200, {}, b'{"service":"hybrid-thesis-app","status":"healthy"}', "application/json"
        if route is None or method != "POST":
            return 403, {"x-amzn-ErrorType": "MissingAuthenticationTokenException"}, \
                APIGW_MISSING_TOKEN.encode(), "application/json"
        self.in_flight += 1
        try:
            return await self._platform_request(route, body, t_wall, fronts)
        finally:
            self.in_flight -= 1

    async def _platform_request(self, route: _Route, body: bytes, t_wall: float,
                                fronts: set[str]) -> tuple[int, dict[str, str], bytes, str] | None:
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
        try:
            envelope = _split_envelope(body) if body else {}
            if not isinstance(envelope, dict):
                raise ValueError("not an object")
        except ValueError:
            envelope = None
        status, hdrs, payload, ctype = self._render(route, outcome, envelope)
        hdrs["Server-Timing"] = (f"connect;dur={outcome.connect_ms:.3f}, upload;dur={outcome.upload_ms:.3f}, "
                                 f"first_byte;dur={(outcome.first_byte_ms or 0.0):.3f}, "
                                 f"total;dur={outcome.total_ms:.3f}")
        due = t_wall + outcome.total_ms / 1000.0
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        self._late_ms.append((time.monotonic() - due) * 1000.0)
        return status, hdrs, payload, ctype

    def _render(self, route: _Route, o: Outcome, envelope: dict[str, Any] | None
                ) -> tuple[int, dict[str, str], bytes, str]:
        status = o.http_status or 502
        if status == 200 and envelope is None:   # the handler could not parse the body
            if route.platform == "lambda":
                return 502, {"x-amzn-ErrorType": "InternalServerErrorException"}, \
                    APIGW_INTERNAL_ERROR.encode(), "application/json"
            return 400, {"Server": "gunicorn"}, _WERKZEUG_400.encode(), "text/html; charset=utf-8"
        if status != 200:
            hdrs = {"Server": "awselb/2.0"} if route.platform == "ecs" else {}
            return status, hdrs, (o.body or "").encode(), o.content_type
        env = envelope or {}
        workload = env.get("workload_type", route.workload)
        size_kb = o.actual_payload_size_kb
        if route.platform == "lambda":
            metrics: dict[str, Any] = {
                "execution_time_ms": o.execution_time_ms, "memory_used_mb": o.memory_used_mb,
                "memory_limit_mb": o.memory_limit_mb, "cold_start": o.cold_start,
                "init_duration_ms": o.init_duration_ms, "billed_duration_ms": o.billed_duration_ms,
                "instance_id": o.instance_id, "payload_size_kb": size_kb}
            hdrs = {"X-Platform": "lambda", "X-Execution-Time": f"{o.execution_time_ms}"}
        else:
            metrics = {"execution_time_ms": o.execution_time_ms, "memory_used_mb": o.memory_used_mb,
                       "memory_limit_mb": o.memory_limit_mb, "cpu_percent": 0.0, "instance_id": o.instance_id,
                       "payload_size_kb": size_kb}
            hdrs = {"Server": "gunicorn"}
        result: dict[str, Any]
        if route.workload == "lightweight_api":
            result = {"validated": True, "size": o.actual_payload_size_kb and int(o.actual_payload_size_kb * 1024)}
        elif route.workload == "thumbnail_processing":
            result = {"processed": True, "output_size": int((o.actual_payload_size_kb or 0) * 1024 * 3 / 8)}
        else:
            result = {"processed": True, "operations": 10000 if route.workload == "heavy_processing" else 1000}
        doc = {"request_id": env.get("request_id"), "platform": route.platform, "workload_type": workload,
               "timestamp": datetime.now(timezone.utc).replace(tzinfo=None).isoformat(), "metrics": metrics,
               "result": result}
        return 200, hdrs, json.dumps(doc).encode(), "application/json"

    def _lateness(self) -> dict[str, float | int]:
        """How late the server released responses relative to the model's schedule (last 100,000)."""
        if not self._late_ms:
            return {"n": 0}
        arr = np.fromiter(self._late_ms, dtype=np.float64)
        return {"n": int(arr.size), "p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99)),
                "max": float(arr.max())}

    # ------------------------------------------------------------------------------------- admin
    def _admin(self, method: str, what: str, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            doc = json.loads(body) if body else {}
            if not isinstance(doc, dict):
                raise ValueError("expected a JSON object")
        except ValueError as exc:
            return 400, {"error": f"body is not a JSON object: {exc}"}
        if what == "health" and method == "GET":
            return 200, {"status": "ok"}
        if what == "clock" and method == "GET":
            return 200, {"model_time_s": self.now(), "wall_elapsed_s": time.monotonic() - self._t0,
                         "offset_s": self.offset_s}
        if what == "stats" and method == "GET":
            now = self.now()
            return 200, {"model_time_s": now, "wall_elapsed_s": time.monotonic() - self._t0,
                         "offset_s": self.offset_s, "requests": dict(self.requests),
                         "responses": {str(k): v for k, v in self.responses.items()},
                         "client_timeouts": self.client_timeouts, "client_timeout_s": self.client_timeout_s,
                         "in_flight": self.in_flight,
                         "connections": {"open": len(self._writers), "total": self.connections_total},
                         "lateness_ms": self._lateness(), "model": self.model.stats(now)}
        if what == "advance" and method == "POST":
            seconds = doc.get("seconds")
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
                return 400, {"error": f"'seconds' must be a number >= 0, got {seconds!r}"}
            self.offset_s += float(seconds)
            now = self.now()
            self.model.advance(now)
            return 200, {"model_time_s": now, "offset_s": self.offset_s, "advanced_s": float(seconds)}
        if what == "reset" and method == "POST":
            seed = doc.get("seed", self.seed)
            if isinstance(seed, bool) or not isinstance(seed, int):
                return 400, {"error": f"'seed' must be an integer, got {seed!r}"}
            self.seed = seed
            self._reset_state(seed)
            return 200, {"model_time_s": self.now(), "seed": seed}
        return 404, {"error": f"unknown admin call {method} {ADMIN_PREFIX}{what}",
                     "known": ["GET health", "GET clock", "GET stats", "POST advance", "POST reset"]}


# ------------------------------------------------------------------------------------------ runners
async def serve(params: Params, host: str = "127.0.0.1", port: int = 0, *, seed: int | None = None,
                ready: "callable[[TestbedServer], None] | None" = None,
                stop: asyncio.Event | None = None) -> None:
    """Serve until `stop` is set (or forever)."""
    server = TestbedServer(params, seed)
    await server.start(host, port)
    stop = stop or asyncio.Event()
    if ready is not None:
        ready(server)
    try:
        await stop.wait()
    finally:
        await server.close()


class Testbed:
    """A running testbed: `.base_url`, `.stop()`, usable as a context manager."""

    __test__ = False

    def __init__(self) -> None:
        self.base_url = ""
        self.server: TestbedServer | None = None     # thread mode: the live server (same process)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._tmp: Path | None = None

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            if self._thread.is_alive():
                self._loop.call_soon_threadsafe(self._stop.set)
                self._thread.join(timeout_s)
            self._thread = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
                try:
                    self._proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            if self._proc.stdout:
                self._proc.stdout.close()
            self._proc = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def __enter__(self) -> "Testbed":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(params: Params, host: str = "127.0.0.1", port: int = 0, *, seed: int | None = None,
          mode: str = "thread", timeout_s: float = 30.0) -> Testbed:
    """Start a testbed for `params` and return once it listens. mode="thread": an event loop in a
    background thread of this process (tb.server is the live TestbedServer); mode="process": a child
    `python -m hybridopt testbed` process (no GIL shared with the caller)."""
    tb = Testbed()
    if mode == "thread":
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            tb._loop = loop
            tb._stop = asyncio.Event()

            def on_ready(server: TestbedServer) -> None:
                tb.server = server
                tb.base_url = server.base_url
                ready.set()

            try:
                loop.run_until_complete(serve(params, host, port, seed=seed, ready=on_ready, stop=tb._stop))
            except BaseException as exc:  # noqa: BLE001 - reported to the caller of start()
                errors.append(exc)
                ready.set()
            finally:
                loop.close()

        tb._thread = threading.Thread(target=run, name="hybridopt-testbed", daemon=True)
        tb._thread.start()
        if not ready.wait(timeout_s) or errors:
            tb.stop()
            raise RuntimeError(f"testbed did not start on {host}:{port}: {errors[0] if errors else 'timeout'}")
        return tb
    if mode != "process":
        raise ValueError(f"mode must be 'thread' or 'process', got {mode!r}")
    fd, name = tempfile.mkstemp(prefix="hybridopt-testbed-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(params.model_dump(mode="json", by_alias=True), f)
    tb._tmp = Path(name)
    cmd = [sys.executable, "-m", "hybridopt", "testbed", "--params-json", name, "--host", host, "--port", str(port)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    tb._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout_s
    assert tb._proc.stdout is not None
    while time.monotonic() < deadline:
        line = tb._proc.stdout.readline()
        if not line:
            break
        if line.startswith("TESTBED_URL="):
            tb.base_url = line.strip().split("=", 1)[1]
            return tb
    code = tb._proc.poll()
    tb.stop()
    raise RuntimeError(f"testbed process did not report TESTBED_URL (exit code {code}): {' '.join(cmd)}")


def run_forever(params: Params, host: str, port: int, seed: int | None = None) -> int:
    """The CLI's loop: print TESTBED_URL once listening, serve until SIGTERM/SIGINT, shut down cleanly."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def ready(server: TestbedServer) -> None:
            print(f"TESTBED_URL={server.base_url}", flush=True)
            print(f"testbed: profile {params.profile}, client preset {params.testbed.client_preset}, "
                  f"service preset {params.testbed.service_preset}, seed {server.seed}, client timeout "
                  f"{server.client_timeout_s:g} s; "
                  f"{len(server.routes)} routes; admin at {server.base_url}{ADMIN_PREFIX}stats", file=sys.stderr,
                  flush=True)

        await serve(params, host, port, seed=seed, ready=ready, stop=stop)

    asyncio.run(main())
    print("testbed: stopped", file=sys.stderr, flush=True)
    return 0
