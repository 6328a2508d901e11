"""The workloads' AWS entry points: the Lambda handler's request-id line, the container app, and the
container's server (gunicorn with gunicorn_conf, run for real on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import types
import urllib.request

import psutil
import pytest

from hybridopt import paths, workloads
from hybridopt.infra import bundle, entry
from hybridopt.infra.platform_logs import parse_request_line


def test_lambda_handler_prints_the_request_id_line_first(capsys):
    body = workloads.make_body("lightweight_api", 1, seed=1).decode()
    ev = {"resource": "/lightweight", "httpMethod": "POST", "headers": {"X-Request-ID": "r-9", "X-Pair-Id": "p-9"},
          "body": body, "isBase64Encoded": False}
    out = entry.lambda_handler(ev, types.SimpleNamespace(aws_request_id="a-1", memory_limit_in_mb=128))
    assert out["statusCode"] == 200 and json.loads(out["body"])["platform"] == "lambda"
    line = capsys.readouterr().out.strip()
    assert line.startswith(entry.REQUEST_LINE_TAG + " ")
    assert parse_request_line(line) == {"aws_request_id": "a-1", "request_id": "r-9"}


def test_request_line_without_headers_keeps_the_lambda_id():
    line = entry.request_line({"resource": "/heavy", "headers": None}, "a-2")
    assert parse_request_line(line) == {"aws_request_id": "a-2", "request_id": None}


def test_container_app_reads_the_task_memory(monkeypatch):
    monkeypatch.setenv(entry.MEMORY_ENV, "2048")
    app = entry.make_container_app()
    body = workloads.make_body("medium_processing", 64, seed=2)
    env = {"REQUEST_METHOD": "POST", "PATH_INFO": "/medium/process", "CONTENT_LENGTH": str(len(body)),
           "wsgi.input": __import__("io").BytesIO(body)}
    status = {}
    out = b"".join(app(env, lambda s, h: status.setdefault("s", s)))
    assert status["s"].startswith("200") and json.loads(out)["metrics"]["memory_limit_mb"] == 2048.0
    monkeypatch.setenv(entry.MEMORY_ENV, "two GB")
    with pytest.raises(SystemExit, match=entry.MEMORY_ENV):
        entry.make_container_app()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def _post(url: str, body: bytes, timeout: float = 60.0) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, json.loads(r.read())


@pytest.mark.slow
def test_container_server_workers_and_health_while_busy():
    """gunicorn as the image runs it: WEB_CONCURRENCY sync workers, the health port answered by
    the master while every worker is busy."""
    port, health = _free_port(), _free_port()
    env = {**os.environ, "BIND_HOST": "127.0.0.1", "PORT": str(port), "HEALTH_PORT": str(health),
           "WEB_CONCURRENCY": "2", entry.MEMORY_ENV: "1024", "PYTHONPATH": str(paths.PROJECT_ROOT / "lib")}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", str(bundle.GUNICORN_CONF),
                             "hybridopt.infra.entry:make_container_app()"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert _get(f"http://127.0.0.1:{health}/health")[0] == 200
                _get(f"http://127.0.0.1:{port}/health")
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(f"gunicorn did not start: {proc.stderr.read().decode()[-2000:]}") from None
                time.sleep(0.2)
        workers = [c for c in psutil.Process(proc.pid).children() if c.is_running()]
        assert len(workers) == 2
        status, out = _post(f"http://127.0.0.1:{port}/medium/process", workloads.make_body("medium_processing", 1024))
        assert status == 200 and out["platform"] == "ecs" and out["metrics"]["memory_limit_mb"] == 1024.0
        heavy = workloads.make_body("heavy_processing", 10240, seed=4)
        done: list[tuple[float, int]] = []

        def send() -> None:
            status = _post(f"http://127.0.0.1:{port}/heavy/process", heavy, timeout=120)[0]
            done.append((time.perf_counter(), status))

        threads = [threading.Thread(target=send) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.5)                          # both workers are now reading / filtering a 10 MB image
        t0 = time.perf_counter()
        assert _get(f"http://127.0.0.1:{health}/health", timeout=2)[0] == 200
        t1 = time.perf_counter()
        for t in threads:
            t.join(120)
        assert [s for _, s in done] == [200, 200]
        assert t1 < min(t for t, _ in done), ("the health check waited for a worker", t0, t1, done)
        assert t1 - t0 < 0.5
    finally:
        proc.terminate()
        proc.wait(30)
