"""The testbed over real HTTP (http.client on 127.0.0.1, no mocks)."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlparse

import pytest
from hybridopt.emulation import testbed
from hybridopt.params import load_params
from hybridopt.platforms import PlatformModel
from hybridopt.platforms.outcome import (
    ALB_504,
    APIGW_MISSING_TOKEN,
    APIGW_REQUEST_TOO_LONG,
)

#: every test here but the two pure ones serves HTTP on 127.0.0.1 (real sockets, real waiting)
pytestmark = pytest.mark.slow

MB = 1_048_576
LAMBDA_METRICS = {"execution_time_ms", "memory_used_mb", "memory_limit_mb", "cold_start", "init_duration_ms",
                  "billed_duration_ms", "instance_id", "payload_size_kb"}
ECS_METRICS = {"execution_time_ms", "memory_used_mb", "memory_limit_mb", "cpu_percent", "instance_id",
               "payload_size_kb"}


def params_for(**testbed_overrides: Any):
    tb = {"client_preset": "same_region",
          "lambda": {"keep_alive": {"policy": {"value": "fixed"}, "idle_timeout_s": {"value": 600}}}}
    tb.update(testbed_overrides)
    return load_params("smoke", overrides={"testbed": tb})


def body(workload: str, n_bytes: int = 100, request_id: str = "req-1") -> bytes:
    return json.dumps({"request_id": request_id, "pair_id": "pair-1", "workload_type": workload,
                       "timestamp": "2025-11-24T02:00:00Z", "metadata": {"target_size_kb": n_bytes / 1024},
                       "payload": "A" * n_bytes}).encode()


class Client:
    def __init__(self, base_url: str) -> None:
        u = urlparse(base_url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)

    def request(self, method: str, path: str, data: bytes | None = None) -> tuple[int, dict[str, str], bytes, float]:
        t0 = time.perf_counter()
        self.conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        r = self.conn.getresponse()
        payload = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, payload, (time.perf_counter() - t0) * 1000

    def json(self, method: str, path: str, obj: dict | None = None) -> tuple[int, Any]:
        status, _, payload, _ = self.request(method, path, json.dumps(obj).encode() if obj is not None else None)
        return status, json.loads(payload)


def timing(headers: dict[str, str], name: str) -> float:
    m = re.search(rf"{name};dur=([0-9.]+)", headers["server-timing"])
    assert m, headers
    return float(m.group(1))


FAST = {"service_presets": {"deployed": {"workloads": {   # shorter sleeps: the shape tests need no waiting
    w: {pl: {"sleep_ms": {"value": [10, 20]}} for pl in ("lambda", "ecs")}
    for w in ("lightweight_api", "medium_processing", "heavy_processing")}}}}


@pytest.fixture(scope="module")
def tb():
    with testbed.start(params_for(**FAST), seed=3) as running:
        yield running


def test_routes_and_response_shape(tb) -> None:
    params = params_for(**FAST)
    c = Client(tb.base_url)
    for name, w in params.workloads.items():
        for platform, route, keys in (("lambda", w.lambda_route, LAMBDA_METRICS), ("ecs", w.ecs_route, ECS_METRICS)):
            status, headers, payload, _ = c.request("POST", route, body(name, 2000, f"id-{name}-{platform}"))
            assert status == 200, (route, payload)
            assert headers["content-type"] == "application/json"
            doc = json.loads(payload)
            assert set(doc) == {"request_id", "platform", "workload_type", "timestamp", "metrics", "result"}
            assert doc["request_id"] == f"id-{name}-{platform}"
            assert doc["platform"] == platform and doc["workload_type"] == name
            assert set(doc["metrics"]) == keys
            size_kb = len(body(name, 2000, f"id-{name}-{platform}")) / 1024
            assert doc["metrics"]["payload_size_kb"] == pytest.approx(size_kb)
            if platform == "lambda":
                assert doc["metrics"]["memory_limit_mb"] == w.lambda_memory_mb
                assert isinstance(doc["metrics"]["cold_start"], bool)
                assert doc["metrics"]["billed_duration_ms"] == int(doc["metrics"]["billed_duration_ms"])
            else:
                assert doc["metrics"]["memory_limit_mb"] == w.fargate.memory_gb * 1024
            assert doc["metrics"]["execution_time_ms"] > 0


def test_response_is_held_until_the_model_total(tb) -> None:
    c = Client(tb.base_url)
    status, headers, _, wall_ms = c.request("POST", "/thumbnail", body("thumbnail_processing", 50_000))
    assert status == 200
    total = timing(headers, "total")
    assert total > 200                                  # the handler sleeps 200-400 ms
    assert total - 1.0 <= wall_ms <= total + 250         # never early; late only by the machine's noise


def test_keep_alive_connection_pays_the_handshake_once(tb) -> None:
    c = Client(tb.base_url)
    _, h1, _, _ = c.request("POST", "/lightweight", body("lightweight_api"))
    _, h2, _, _ = c.request("POST", "/lightweight", body("lightweight_api"))
    _, h3, _, _ = c.request("POST", "/lightweight/process", body("lightweight_api"))
    assert timing(h1, "connect") > 0                      # TCP + TLS handshakes of a new connection
    assert timing(h2, "connect") == 0                     # same connection, same front door
    assert timing(h3, "connect") > 0                      # first request to the ALB (another host)
    assert timing(h3, "connect") < timing(h1, "connect")  # plain HTTP: no TLS


def test_413_with_the_real_bodies(tb) -> None:
    c = Client(tb.base_url)
    status, headers, payload, _ = c.request("POST", "/heavy", body("heavy_processing", 7 * MB))
    assert status == 413 and payload.decode() == APIGW_REQUEST_TOO_LONG
    assert headers["content-type"] == "application/json"
    status, headers, payload, _ = c.request("POST", "/heavy", body("heavy_processing", 11 * MB))
    assert status == 413 and payload.decode() == "HTTP content length exceeded 10485760 bytes."
    assert headers["content-type"].startswith("text/plain")
    status, _, payload, _ = c.request("POST", "/heavy/process", body("heavy_processing", 7 * MB))
    assert status == 200 and json.loads(payload)["platform"] == "ecs"   # no such limit behind the ALB
    # the connection is still usable after a rejected body
    assert c.request("POST", "/lightweight", body("lightweight_api"))[0] == 200


def test_unknown_path_and_broken_body(tb) -> None:
    c = Client(tb.base_url)
    status, headers, payload, _ = c.request("POST", "/nope", b"{}")
    assert status == 403 and payload.decode() == APIGW_MISSING_TOKEN
    status, _, payload, _ = c.request("POST", "/lightweight", b"not json")
    assert status == 502 and json.loads(payload) == {"message": "Internal server error"}
    status, headers, payload, _ = c.request("POST", "/lightweight/process", b"not json")
    assert status == 400 and headers["content-type"].startswith("text/html")


def test_admin_clock_reclaims_idle_environments() -> None:
    with testbed.start(params_for(), seed=5) as running:
        c = Client(running.base_url)
        assert c.json("GET", "/_testbed/health") == (200, {"status": "ok"})
        first = json.loads(c.request("POST", "/medium", body("medium_processing"))[2])
        assert first["metrics"]["cold_start"] is True
        second = json.loads(c.request("POST", "/medium", body("medium_processing"))[2])
        assert second["metrics"]["cold_start"] is False
        status, clock0 = c.json("GET", "/_testbed/clock")
        status, adv = c.json("POST", "/_testbed/advance", {"seconds": 14400})
        assert status == 200 and adv["advanced_s"] == 14400
        assert adv["model_time_s"] >= clock0["model_time_s"] + 14400
        third = json.loads(c.request("POST", "/medium", body("medium_processing"))[2])
        assert third["metrics"]["cold_start"] is True and third["metrics"]["instance_id"] != first["metrics"]["instance_id"]
        status, stats = c.json("GET", "/_testbed/stats")
        assert status == 200
        lam = stats["model"]["lambda"]["medium_processing"]
        assert lam["cold_starts"] == 2 and lam["warm_starts"] == 1 and lam["reclaimed"] >= 1
        assert stats["requests"]["/medium"] == 3 and stats["responses"]["200"] == 3
        assert stats["in_flight"] == 0 and stats["offset_s"] == 14400
        assert stats["lateness_ms"]["n"] == 3
        assert set(stats["model"]["ecs"]["medium_processing"]) >= {"tasks_ready", "queue_length", "workers_busy"}
        # bad admin calls are refused with a reason
        assert c.json("POST", "/_testbed/advance", {"seconds": -1})[0] == 400
        assert c.json("POST", "/_testbed/advance", {"seconds": "soon"})[0] == 400
        assert c.json("GET", "/_testbed/nope")[0] == 404
        status, reset = c.json("POST", "/_testbed/reset", {"seed": 9})
        assert status == 200 and reset["model_time_s"] < 5
        status, stats = c.json("GET", "/_testbed/stats")
        assert stats["model"]["lambda"]["medium_processing"]["cold_starts"] == 0 and stats["requests"] == {}


def test_alb_idle_timeout_gives_the_html_504() -> None:
    p = params_for(fargate={"alb_idle_timeout_s": {"value": 0.5}},
                   service_presets={"deployed": {"workloads": {"medium_processing": {
                       "ecs": {"sleep_ms": {"value": [1500, 1500]}}}}}})
    with testbed.start(p) as running:
        c = Client(running.base_url)
        status, headers, payload, wall_ms = c.request("POST", "/medium/process", body("medium_processing"))
        assert status == 504 and payload.decode() == ALB_504
        assert headers["content-type"] == "text/html" and headers["server"] == "awselb/2.0"
        with pytest.raises(ValueError):
            json.loads(payload)                           # non-JSON, as the real ALB page
        assert 450 < wall_ms < 1400


def test_testbed_drives_the_platform_model_classes() -> None:
    with testbed.start(params_for()) as running:
        assert running.server is not None
        assert type(running.server.model) is PlatformModel


def test_cli_prints_the_url_serves_and_stops_on_sigterm(tmp_path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "hybridopt", "testbed", "--profile", "smoke", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert re.fullmatch(r"TESTBED_URL=http://127\.0\.0\.1:\d+\n", line), line
        c = Client(line.strip().split("=", 1)[1])
        assert c.json("GET", "/_testbed/health")[0] == 200
        assert c.request("POST", "/lightweight", body("lightweight_api"))[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert "stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_start_in_a_child_process() -> None:
    with testbed.start(params_for(), mode="process") as running:
        c = Client(running.base_url)
        assert c.request("POST", "/thumbnail/process", body("thumbnail_processing"))[0] == 200
        proc = running._proc
        assert proc is not None and proc.poll() is None
    assert proc.poll() == 0


def test_unknown_profile_is_a_clear_error() -> None:
    r = subprocess.run([sys.executable, "-m", "hybridopt", "testbed", "--profile", "nosuch"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "nosuch" in r.stderr and "known profiles" in r.stderr


def test_the_model_uses_the_real_clients_timeout_and_answers_a_given_up_request_with_silence() -> None:
    """The testbed's model runs with collection.http_timeout_s (the timeout Artillery is given), counted
    from the start of the request. A response the model would send after it is never sent: the
    connection closes a grace second after the deadline, when the real client has long logged its
    timeout."""
    p = load_params("smoke", overrides={"collection": {"http_timeout_s": 1.0}, "testbed": {
        "client_preset": "same_region", "service_presets": {"deployed": {"workloads": {
            "heavy_processing": {"ecs": {"sleep_ms": {"value": [3000, 3000]}}}}}}}})
    assert p.testbed.client.request_timeout_s.value == 10
    with testbed.start(p) as running:
        assert running.server is not None and running.server.model.client.request_timeout_s == 1.0
        c = Client(running.base_url)
        t0 = time.perf_counter()
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            c.request("POST", "/heavy/process", body("heavy_processing"))
        wall_s = time.perf_counter() - t0
        assert 1.0 + testbed.TIMEOUT_GRACE_S - 0.05 <= wall_s < 1.0 + testbed.TIMEOUT_GRACE_S + 1.0
        admin = Client(running.base_url)
        status, stats = admin.json("GET", "/_testbed/stats")
        assert stats["client_timeout_s"] == 1.0 and stats["client_timeouts"] == 1
        assert stats["responses"] == {} and stats["in_flight"] == 0
        assert admin.request("POST", "/lightweight/process", body("lightweight_api"))[0] == 200


def _hold(base_url: str, n: int) -> list:
    """n raw connections, each with a heavy ECS request the testbed holds for seconds."""
    host, port = urlparse(base_url).hostname, urlparse(base_url).port
    socks = []
    for i in range(n):
        s = socket.create_connection((host, port))
        data = body("heavy_processing", 100, f"held-{i}")
        s.sendall(f"POST /heavy/process HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        socks.append(s)
    return socks


def test_stopping_while_requests_are_held_is_quiet(caplog) -> None:
    """SIGTERM (process) or stop() (thread) while the testbed holds responses: no CancelledError traceback,
    no 'Task was destroyed' message, exit code 0."""
    proc = subprocess.Popen([sys.executable, "-m", "hybridopt", "testbed", "--profile", "smoke", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().split("=", 1)[1]
        socks = _hold(url, 3)
        time.sleep(0.5)
        socks[0].close()                                   # one client already gone
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        err = proc.stderr.read()
        assert "stopped" in err
        for bad in ("Traceback", "CancelledError", "Task was destroyed", "Exception in callback"):
            assert bad not in err, err
        for s in socks:
            s.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    caplog.set_level("DEBUG", logger="asyncio")
    running = testbed.start(params_for())
    socks = _hold(running.base_url, 3)
    time.sleep(0.3)
    running.stop()
    for s in socks:
        s.close()
    import gc
    gc.collect()
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")], caplog.text


# ------------------------------------------------------------------------------ malformed requests
def exchange(base_url: str, data: bytes, *, half_close: bool = False, timeout_s: float = 10.0) -> bytes:
    """Raw bytes on a new connection (optionally half-closed after them); everything the testbed sends
    back until it closes the connection."""
    u = urlparse(base_url)
    with socket.create_connection((u.hostname, u.port), timeout=timeout_s) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_line(answer: bytes) -> str:
    return answer.split(b"\r\n", 1)[0].decode("latin-1")


def answer_body(answer: bytes) -> bytes:
    return answer.split(b"\r\n\r\n", 1)[1]


def post(head: str, payload: bytes = b"") -> bytes:
    return f"POST /lightweight HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n".encode() + payload


def test_negative_content_length_is_a_400(tb) -> None:
    answer = exchange(tb.base_url, post("Content-Type: application/json\r\nContent-Length: -5\r\n", b"{}{}{"))
    assert status_line(answer) == "HTTP/1.1 400 Bad Request"
    assert b"Content-Length" in answer_body(answer)


def test_non_numeric_content_length_is_a_400(tb) -> None:
    answer = exchange(tb.base_url, post("Content-Length: twelve\r\n", b"{}"))
    assert status_line(answer) == "HTTP/1.1 400 Bad Request"
    assert b"Content-Length" in answer_body(answer)


def test_conflicting_content_lengths_are_a_400(tb) -> None:
    answer = exchange(tb.base_url, post("Content-Length: 2\r\nContent-Length: 40\r\n", b"{}" + b" " * 38))
    assert status_line(answer) == "HTTP/1.1 400 Bad Request"
    assert b"conflicting Content-Length" in answer_body(answer)


def test_a_request_head_over_the_limit_is_a_431(tb) -> None:
    big = "X-Padding: " + "a" * testbed.MAX_HEADER_BYTES + "\r\n"
    answer = exchange(tb.base_url, post(big + "Content-Length: 0\r\n"))
    assert status_line(answer) == "HTTP/1.1 431 Request Header Fields Too Large"
    # a head that never ends is cut off once it passes the limit
    answer = exchange(tb.base_url, post(big)[:-2])
    assert status_line(answer) == "HTTP/1.1 431 Request Header Fields Too Large"
    # just under the limit is served
    fits = "X-Padding: " + "a" * (testbed.MAX_HEADER_BYTES - 1000) + "\r\n"
    data = body("lightweight_api")
    answer = exchange(tb.base_url, post(fits + f"Content-Length: {len(data)}\r\nConnection: close\r\n", data))
    assert status_line(answer) == "HTTP/1.1 200 OK"


def test_a_malformed_request_line_is_a_400(tb) -> None:
    for line in (b"POST /lightweight\r\n", b"POST  /lightweight HTTP/1.1\r\n", b"\x16\x03\x01\x02\x00\x01\x00\r\n",
                 b"P@ST /lightweight HTTP/1.1\r\n"):
        answer = exchange(tb.base_url, line + b"Host: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
        assert status_line(answer) == "HTTP/1.1 400 Bad Request", line
    answer = exchange(tb.base_url, b"POST /lightweight HTTP/1.1\r\nHost 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
    assert status_line(answer) == "HTTP/1.1 400 Bad Request"     # a header line without a colon
    answer = exchange(tb.base_url, b"POST /lightweight HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert status_line(answer) == "HTTP/1.1 400 Bad Request"     # HTTP/1.1 without Host


def test_unsupported_versions_and_methods(tb) -> None:
    for version in ("HTTP/2.0", "HTTP/3.0", "HTTP/0.9"):
        answer = exchange(tb.base_url, f"POST /lightweight {version}\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
        assert status_line(answer) == "HTTP/1.1 505 HTTP Version Not Supported", version
    answer = exchange(tb.base_url, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")        # an HTTP/2 connection preface
    assert status_line(answer) == "HTTP/1.1 505 HTTP Version Not Supported"
    # a method API Gateway has no resource for: its 403, as for any unknown route
    answer = exchange(tb.base_url, b"BREW /lightweight HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_line(answer) == "HTTP/1.1 403 Forbidden"
    assert answer_body(answer).decode() == APIGW_MISSING_TOKEN
    answer = exchange(tb.base_url, b"HEAD /lightweight HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_line(answer) == "HTTP/1.1 403 Forbidden" and answer_body(answer) == b""   # no body to HEAD
    # HTTP/1.0 is served, and its connection closed after the response
    data = body("lightweight_api")
    answer = exchange(tb.base_url, f"POST /lightweight HTTP/1.0\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
    assert status_line(answer) == "HTTP/1.1 200 OK" and b"\r\nConnection: close\r\n" in answer


def test_a_body_shorter_than_announced_then_close_is_a_400(tb) -> None:
    data = body("lightweight_api")
    answer = exchange(tb.base_url, post(f"Content-Length: {len(data) + 100}\r\n", data), half_close=True)
    assert status_line(answer) == "HTTP/1.1 400 Bad Request"
    assert f"received {len(data)} bytes, expected {len(data) + 100}".encode() in answer_body(answer)


def test_chunked_bodies_are_served_and_bad_codings_refused(tb) -> None:
    data = body("lightweight_api", 5000, "chunked-1")
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + 1000]), data[i:i + 1000]) for i in range(0, len(data), 1000))
    answer = exchange(tb.base_url, post("Transfer-Encoding: chunked\r\nConnection: close\r\n", chunks + b"0\r\n\r\n"))
    assert status_line(answer) == "HTTP/1.1 200 OK"
    doc = json.loads(answer_body(answer))
    assert doc["request_id"] == "chunked-1" and doc["metrics"]["payload_size_kb"] == pytest.approx(len(data) / 1024)
    answer = exchange(tb.base_url, post("Transfer-Encoding: chunked\r\n", b"zz\r\n{}\r\n0\r\n\r\n"))
    assert status_line(answer) == "HTTP/1.1 400 Bad Request"     # a chunk size that is not hex
    answer = exchange(tb.base_url, post("Transfer-Encoding: gzip\r\n", b"{}"))
    assert status_line(answer) == "HTTP/1.1 501 Not Implemented"


def test_expect_100_continue_gets_the_interim_response(tb) -> None:
    data = body("lightweight_api")
    u = urlparse(tb.base_url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(post(f"Expect: 100-continue\r\nContent-Length: {len(data)}\r\nConnection: close\r\n"))
        assert s.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(data)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert status_line(answer) == "HTTP/1.1 200 OK"


def test_malformed_requests_never_reach_the_model_nor_stop_the_server(tb) -> None:
    admin = Client(tb.base_url)
    before = admin.json("GET", "/_testbed/stats")[1]
    for bad in (post("Content-Length: -1\r\n"), post("Content-Length: 1\r\nContent-Length: 2\r\n", b"{}"),
                b"GARBAGE\r\n\r\n", post("Transfer-Encoding: chunked\r\n", b"-1\r\n\r\n"), b"\r\n\r\n\r\n"):
        assert not status_line(exchange(tb.base_url, bad)).startswith("HTTP/1.1 2"), bad
    exchange(tb.base_url, post("Content-Length: 500\r\n", b"{"), half_close=True)
    after = admin.json("GET", "/_testbed/stats")[1]
    assert after["requests"] == before["requests"] and after["responses"] == before["responses"]
    assert after["model"]["submitted"] == before["model"]["submitted"]
    assert after["connections"]["open"] == 1                  # the admin client's own; the others are closed
    assert Client(tb.base_url).request("POST", "/lightweight", body("lightweight_api"))[0] == 200
