"""Reference workloads: real work on every planned payload size, Lambda handler, container app."""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import math
import zlib

import pytest
import yaml
from hybridopt import paths
from hybridopt import workloads as w
from hybridopt.params import load_params
from PIL import Image

PARAMS = load_params("thesis-2025-11")
PLANNED = yaml.safe_load((paths.PARAMS_DIR / "base.yaml").read_text())["workloads"]
ONE_SIZE_KB = {"lightweight_api": 5, "thumbnail_processing": 200, "medium_processing": 1024,
               "heavy_processing": 2048}


def _sizes(workload: str) -> list[float]:
    """Planned sizes (base.yaml) and the sizes the thesis collection sent, without duplicates."""
    return sorted(set(PLANNED[workload]["payload_sizes_kb"]) | set(PARAMS.workloads[workload].payload_sizes_kb))


def _cases(workload: str) -> list:
    return [pytest.param(s, marks=pytest.mark.slow) if s > 5120 else s for s in _sizes(workload)]


@pytest.mark.parametrize("size_kb", _cases("lightweight_api"))
def test_lightweight_validates_real_json(size_kb: float) -> None:
    body = w.make_body("lightweight_api", size_kb, seed=3)
    assert abs(len(body) - size_kb * 1024) <= max(200, size_kb * 10.24)
    res = w.run("lightweight_api", body)
    obj = json.loads(body)
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert res["valid"] is True
    assert res["sha256"] == hashlib.sha256(canonical).hexdigest()
    assert res["data_chars"] == len(obj["payload"]["data"])


def test_lightweight_rejects_invalid_requests() -> None:
    with pytest.raises(w.WorkloadError) as exc:
        w.run("lightweight_api", b"not json at all")
    assert exc.value.status == 400
    with pytest.raises(w.WorkloadError) as exc:
        w.run("lightweight_api", json.dumps({"request_id": "x", "payload": {"user": "u"}}).encode())
    assert exc.value.status == 422 and "data" in str(exc.value)
    with pytest.raises(w.WorkloadError) as exc:
        w.run("lightweight_api", json.dumps({"workload_type": "nope", "payload": "x"}).encode())
    assert exc.value.status == 422 and "workload_type" in str(exc.value)


@pytest.mark.parametrize("size_kb", _cases("thumbnail_processing"))
def test_thumbnail_renders_real_jpegs(size_kb: float) -> None:
    body = w.make_body("thumbnail_processing", size_kb, seed=5)
    data = w.payload_bytes(body)
    side = math.isqrt(len(data) // 3)
    res = w.run("thumbnail_processing", body)
    assert (res["source_width"], res["source_height"]) == (side, side)
    for t, size in zip(res["thumbnails"], w.THUMBNAIL_SIZES_PX):
        assert t["width"] == min(size, side) and t["height"] == min(size, side)
        assert t["jpeg_bytes"] > 100


def test_thumbnail_decodes_an_encoded_image_payload() -> None:
    img = Image.linear_gradient("L").resize((640, 480)).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    body = json.dumps({"payload": base64.b64encode(buf.getvalue()).decode()}).encode()
    res = w.run("thumbnail_processing", body)
    assert (res["source_width"], res["source_height"]) == (640, 480)
    assert [(t["width"], t["height"]) for t in res["thumbnails"]] == [(256, 192), (128, 96), (64, 48)]
    # the raw JPEG bytes as the whole body work too
    assert w.run("thumbnail_processing", buf.getvalue())["source_width"] == 640


@pytest.mark.parametrize("size_kb", _cases("medium_processing"))
def test_medium_compresses_for_real(size_kb: float) -> None:
    body = w.make_body("medium_processing", size_kb, seed=7)
    data = w.payload_bytes(body)
    assert len(data) == pytest.approx(size_kb * 1024 * 3 / 4, rel=0.01)
    res = w.run("medium_processing", body)
    assert res["input_bytes"] == len(data)
    assert res["compressed_bytes"] == len(zlib.compress(data, 6))
    assert res["crc32"] == zlib.crc32(data)
    # random alphanumerics carry log2(62) ~ 5.95 bits per byte: DEFLATE gets close to 6/8
    assert 0.70 < res["ratio"] < 0.80


@pytest.mark.parametrize("size_kb", _cases("heavy_processing"))
def test_heavy_filters_the_image(size_kb: float) -> None:
    body = w.make_body("heavy_processing", size_kb, seed=11)
    data = w.payload_bytes(body)
    side = math.isqrt(len(data) // 3)
    res = w.run("heavy_processing", body)
    assert (res["width"], res["height"]) == (side, side)
    assert res["png_bytes"] > side * side // 10          # a real, non-trivial image was encoded
    assert 1.0 < res["edge_entropy_bits"] <= 8.0


def test_workloads_are_pure_functions_of_the_payload() -> None:
    for workload in w.WORKLOADS:
        size = ONE_SIZE_KB[workload]
        a, b = w.make_body(workload, size, seed=1), w.make_body(workload, size, seed=2)
        assert a != b
        assert w.run(workload, a) == w.run(workload, a)
        assert w.run(workload, a) != w.run(workload, b)


def test_unknown_workload_is_404() -> None:
    with pytest.raises(w.WorkloadError) as exc:
        w.run("video_transcode", b"{}")
    assert exc.value.status == 404


def test_lambda_handler_on_an_api_gateway_proxy_event() -> None:
    class Context:
        memory_limit_in_mb = "256"
        aws_request_id = "abc"

    body = w.make_body("thumbnail_processing", 50, seed=1)
    event = {"resource": "/thumbnail", "path": "/thumbnail", "httpMethod": "POST",
             "headers": {"Content-Type": "application/json"}, "isBase64Encoded": False,
             "body": body.decode()}
    w._LAMBDA_STATE["cold"] = True
    first = w.lambda_handler(event, Context())
    second = w.lambda_handler({**event, "isBase64Encoded": True, "body": base64.b64encode(body).decode()},
                              Context())
    assert first["statusCode"] == 200 and second["statusCode"] == 200
    r1, r2 = json.loads(first["body"]), json.loads(second["body"])
    assert r1["platform"] == "lambda" and r1["workload_type"] == "thumbnail_processing"
    assert r1["metrics"]["cold_start"] is True and r2["metrics"]["cold_start"] is False
    assert r1["metrics"]["memory_limit_mb"] == 256.0
    assert r1["metrics"]["execution_time_ms"] > 0
    assert r1["result"] == r2["result"]
    assert r1["request_id"] == "req_1_thumbnail_processing"
    bad = w.lambda_handler({**event, "resource": "/nope", "path": "/nope"}, Context())
    assert bad["statusCode"] == 404


@pytest.mark.slow
def test_container_app_over_real_http() -> None:
    server, thread = w.serve("127.0.0.1", 0, memory_limit_mb=2048.0)
    try:
        port = server.server_port
        body = w.make_body("medium_processing", 1024, seed=2)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/medium/process", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        out = json.loads(resp.read())
        assert resp.status == 200
        assert out["platform"] == "ecs" and out["workload_type"] == "medium_processing"
        assert out["result"] == w.run("medium_processing", body)
        assert out["metrics"]["payload_size_kb"] == pytest.approx(len(body) / 1024)
        conn.request("GET", "/health")
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["status"] == "healthy"
        conn.request("POST", "/lightweight/process", body=b"{broken", headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 400 and "not JSON" in json.loads(resp.read())["error"]
        conn.request("POST", "/nope", body=b"{}")
        resp = conn.getresponse()
        assert resp.status == 404
        resp.read()
        conn.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
