"""The testbed over real HTTP (http.client on 127.0.0.1, no mocks)."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
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
        import socket
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
