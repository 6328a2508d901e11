"""The router in front of the platforms: `POST /route/<workload>` runs the router's handler code on
the request's context, forwards the request body to the chosen platform's route and returns that
platform's answer, with the decision in response headers. Upstreams are base URLs per platform: the
local testbed for both (testbed A/B), or the student's API Gateway and ALB (aws profile, opt-in).

Request headers (all optional but the body): `x-ab-arm` control|treatment (else the router's
default), `x-sent-at` ISO-8601 decision time (the load generator's virtual clock; else now),
`x-load-pattern`, `x-time-window`, `x-payload-size-kb` (else the body's size / 1024).
Response headers: `x-router-arm`, `x-router-platform`, `x-router-probability` (the plan's
classifier's P(lambda)), `x-router-model`, `x-router-decided-by`, `x-router-ms` (decision time) and,
on the objective path, `x-router-decision-id`; the upstream's status, body, Content-Type and
Server-Timing pass through. A 400 from the handler is answered 400 (JSON naming the field) and
nothing is forwarded; an upstream that gives no answer (connection refused or reset, or no answer
within `timeout_s`) is the proxy's own 502 with `x-router-platform` set (the router itself never
answers 5xx).

`counts` (what the proxy did with each request; keys `<arm>:<platform>:<outcome>`):
`answered` the upstream answered (any status, passed through); `502` the upstream gave no answer;
`client_gone` the client had closed its connection (its own timeout) before the proxy could write
the answer or the 502, a subset of the two before; `400` the handler rejected the request (nothing
forwarded); `client_gone` alone: a connection lost outside a routed request. Each routed request is
in exactly one of `answered` and `502`.

The load state (objective path): the router counts the request as sent to the chosen platform when
it decides, and the proxy reports it completed (`DecisionPolicy.complete`) as soon as the upstream's
answer, error status or failure is back, so the in-flight counts are exact for this process.
`decisions` keeps one record per forwarded request (its `x-request-id`, the arm, the platforms the
objective and the rule chose, the predictions, marginal costs and load features, the upstream's
status, decision and completion times) for the A/B analysis.

The handler code is the package's (same modules); the model directory is the unzipped package's
`model/` (or any model directory with a router config).
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Mapping
from urllib.parse import urlsplit

from hybridopt.router.handler import Router

ROUTE_PREFIX = "/route/"
_PASS_HEADERS = ("content-type", "server-timing", "server", "x-amzn-errortype")


@dataclass(frozen=True)
class Upstream:
    scheme: str
    host: str
    port: int
    prefix: str

    @classmethod
    def parse(cls, base_url: str) -> "Upstream":
        u = urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"upstream base URL {base_url!r} must be http(s)://host[:port][/prefix]")
        return cls(u.scheme, u.hostname, u.port or (443 if u.scheme == "https" else 80), u.path.rstrip("/"))


class RouterProxy:
    """A threaded HTTP server; `start()` returns once listening, `stop()` ends it."""

    def __init__(self, router: Router, upstreams: Mapping[str, str], routes: Mapping[str, Mapping[str, str]],
                 host: str = "127.0.0.1", port: int = 0, timeout_s: float = 60.0) -> None:
        self.router = router
        self.upstreams = {p: Upstream.parse(u) for p, u in upstreams.items()}
        self.routes = {w: dict(r) for w, r in routes.items()}      # workload -> {lambda: path, ecs: path}
        self.timeout_s = timeout_s
        self.counts: dict[str, int] = {}
        self.decisions: list[dict[str, object]] = []
        self._lock = threading.Lock()
        self._active = 0                     # requests being handled now
        self._local = threading.local()
        self._all_conns: list[http.client.HTTPConnection] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:   # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                with proxy._lock:
                    proxy._active += 1
                try:
                    proxy._handle(self)
                finally:
                    with proxy._lock:
                        proxy._active -= 1

            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/health":
                    proxy._send(self, 200, {"Content-Type": "application/json"}, b'{"status":"ok"}')
                else:
                    proxy._send(self, 405, {"Content-Type": "application/json"},
                                b'{"error":{"field":"method","message":"POST /route/<workload>"}}')

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                proxy._count("client_gone")   # a connection lost outside a routed request: counted, not printed

        self.server = Server((host, port), Handler)
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "RouterProxy":
        self._thread = threading.Thread(target=self.server.serve_forever, name="hybridopt-router", daemon=True)
        self._thread.start()
        return self

    @property
    def active(self) -> int:
        """Requests being handled now."""
        with self._lock:
            return self._active

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no request is being handled (a forward outlives the client that timed out):
        True when idle, False after `timeout_s`. Read `counts` and `decisions` after it."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                if self._active == 0:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        with self._lock:
            for c in self._all_conns:       # close kept-alive upstream connections before the upstream stops
                c.close()
            self._all_conns.clear()
        if self._thread:
            self._thread.join(10)

    def __enter__(self) -> "RouterProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------
    def _count(self, key: str) -> None:
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, headers: Mapping[str, str], body: bytes) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _completed(self, answer: Mapping[str, object], request_id: str | None, status: int | None,
                   decided_s: float, error: str | None = None) -> None:
        """The upstream answered (or failed): the request leaves the router's in-flight counts, and
        its decision is recorded."""
        decision_id = answer.get("decision_id")
        if not decision_id or self.router.decision is None:
            return
        done_s = self.router.clock()
        self.router.decision.complete([str(decision_id)])
        rec = {"request_id": request_id, "decision_id": decision_id, "arm": answer["arm"],
               "platform": answer["recommended_platform"], "decided_by": answer["decided_by"],
               "objective_platform": answer.get("objective_platform"),
               "workload_rule_platform": answer.get("workload_rule_platform"),
               "probability_lambda": answer["probability_lambda"], "model_platform": answer["model_platform"],
               "upstream_status": status, "upstream_error": error, "decided_s": decided_s, "completed_s": done_s,
               "platforms": answer.get("platforms"),
               "load": answer.get("load")}
        with self._lock:
            self.decisions.append(rec)

    def _conn(self, platform: str) -> http.client.HTTPConnection:
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = {}
        c = pool.get(platform)
        if c is None:
            up = self.upstreams[platform]
            cls = http.client.HTTPSConnection if up.scheme == "https" else http.client.HTTPConnection
            c = pool[platform] = cls(up.host, up.port, timeout=self.timeout_s)
            with self._lock:
                self._all_conns.append(c)
        return c

    def _forward(self, platform: str, path: str, body: bytes, headers: Mapping[str, str]
                 ) -> tuple[int, list[tuple[str, str]], bytes]:
        up = self.upstreams[platform]
        for attempt in (1, 2):              # a kept-alive connection the upstream closed: retry once
            c = self._conn(platform)
            try:
                c.request("POST", up.prefix + path, body=body, headers=dict(headers))
                r = c.getresponse()
                return r.status, r.getheaders(), r.read()
            except (OSError, http.client.HTTPException) as exc:
                c.close()                   # a timed-out or broken connection is never reused
                self._local.pool.pop(platform, None)
                stale = isinstance(exc, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError))
                if attempt == 2 or not stale:
                    raise
        raise AssertionError("unreachable")

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        path = h.path.split("?", 1)[0]
        if not path.startswith(ROUTE_PREFIX):
            self._send(h, 404, {"Content-Type": "application/json"},
                       b'{"error":{"field":"path","message":"use POST /route/<workload>"}}')
            return
        workload = path[len(ROUTE_PREFIX):].strip("/")
        fields: dict[str, object] = {"workload_type": workload}
        size = h.headers.get("x-payload-size-kb")
        fields["payload_size_kb"] = size if size is not None else len(body) / 1024.0
        for header, field in (("x-ab-arm", "arm"), ("x-sent-at", "timestamp"), ("x-load-pattern", "load_pattern"),
                              ("x-time-window", "time_window")):
            if h.headers.get(header):
                fields[field] = h.headers[header]
        t0 = time.perf_counter()
        decided_s = self.router.clock()
        answer = self.router.handle(fields)
        decide_ms = (time.perf_counter() - t0) * 1000.0
        if answer["statusCode"] != 200:
            self._count("400")
            self._send(h, 400, {"Content-Type": "application/json"},
                       json.dumps({"error": answer["error"]}).encode())
            return
        platform = answer["recommended_platform"]
        decision_id = answer.get("decision_id")
        meta = {"x-router-arm": answer["arm"], "x-router-platform": platform,
                "x-router-probability": repr(answer["probability_lambda"]),
                "x-router-model": answer["model_version"], "x-router-decided-by": answer["decided_by"],
                "x-router-ms": f"{decide_ms:.3f}"}
        if decision_id:
            meta["x-router-decision-id"] = str(decision_id)
        fwd = {k: v for k, v in h.headers.items() if k.lower() in ("content-type", "x-request-id", "x-pair-id")}
        try:
            status, hdrs, payload = self._forward(platform, self.routes[workload][platform], body, fwd)
        except (OSError, http.client.HTTPException) as exc:
            self._completed(answer, h.headers.get("x-request-id"), None, decided_s, f"{type(exc).__name__}: {exc}")
            self._count(f"{answer['arm']}:{platform}:502")
            self._answer(h, f"{answer['arm']}:{platform}", 502, {"Content-Type": "application/json", **meta},
                         json.dumps({"error": {"field": None, "message": f"upstream {platform}: {exc}"}}).encode())
            return
        self._completed(answer, h.headers.get("x-request-id"), status, decided_s)
        self._count(f"{answer['arm']}:{platform}:answered")
        out = {k: v for k, v in hdrs if k.lower() in _PASS_HEADERS}
        self._answer(h, f"{answer['arm']}:{platform}", status, {**out, **meta}, payload)

    def _answer(self, h: BaseHTTPRequestHandler, key: str, status: int, headers: Mapping[str, str],
                body: bytes) -> None:
        """Write a routed request's answer; a client that already closed its connection (its
        timeout) is counted `<key>:client_gone` and the connection dropped."""
        try:
            if _peer_closed(h.connection):
                raise ConnectionAbortedError("the client closed its connection")
            self._send(h, status, headers, body)
            h.wfile.flush()
        except OSError:
            self._count(f"{key}:client_gone")
            h.close_connection = True


def _peer_closed(sock: socket.socket) -> bool:
    """True if the client has closed its side (end of stream waiting, or reset): an HTTP client
    waiting for its answer never does."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def proxy_for(router: Router, params, lambda_base_url: str, ecs_base_url: str, port: int = 0,
              timeout_s: float = 60.0) -> RouterProxy:
    routes = {w: {"lambda": wl.lambda_route, "ecs": wl.ecs_route} for w, wl in params.workloads.items()}
    return RouterProxy(router, {"lambda": lambda_base_url, "ecs": ecs_base_url}, routes, port=port,
                       timeout_s=timeout_s)
