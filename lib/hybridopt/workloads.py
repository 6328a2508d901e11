"""Reference workloads that do real work, the same code for a Lambda handler and a container app.

The student's deployed functions only slept (../shared/data/thesis-aws-2025-11/README.md). These four
do the work their names promise, each a pure function of the request payload:

- `lightweight_api`: parse the JSON body and validate it against a JSON Schema (jsonschema), then
  hash its canonical form.
- `thumbnail_processing`: decode the image in the payload (JPEG/PNG/...; bytes that are not an
  encoded image are read as raw RGB pixels) and render 256/128/64 px thumbnails with Lanczos
  resampling, each encoded as JPEG (Pillow).
- `medium_processing`: DEFLATE-compress the payload (zlib level 6), verify the round trip and hash it.
- `heavy_processing`: image filtering of the payload read as an RGB image: Gaussian blur, edge
  detection, histogram equalisation and a lossless PNG encode of the result (Pillow).

Request bodies: a JSON object whose `payload` field holds the data (a base64 string for the
processing workloads, as the student's generator sent it, or a JSON object), or any other bytes,
used as they are. `handle(workload, body)` runs one request; `lambda_handler` is an API Gateway
(REST, proxy integration) handler; `make_wsgi_app` / `serve` run the same workloads behind the ALB
routes (`/lightweight/process`, ...) in a stdlib WSGI server. `make_body` builds deterministic
request bodies of a given size for tests and benchmarks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import math
import os
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from socketserver import ThreadingMixIn
from typing import Any, Final
from wsgiref.simple_server import WSGIServer, make_server

import numpy as np
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

WORKLOADS: Final = ("lightweight_api", "thumbnail_processing", "medium_processing", "heavy_processing")

#: API Gateway routes (Lambda) and ALB routes (container), as the student deployed them
#: (params/base.yaml workloads.*.lambda_route / ecs_route hold the same values).
LAMBDA_ROUTES: Final = {"/lightweight": "lightweight_api", "/thumbnail": "thumbnail_processing",
                        "/medium": "medium_processing", "/heavy": "heavy_processing"}
ECS_ROUTES: Final = {"/lightweight/process": "lightweight_api", "/thumbnail/process": "thumbnail_processing",
                     "/medium/process": "medium_processing", "/heavy/process": "heavy_processing"}

THUMBNAIL_SIZES_PX: Final = (256, 128, 64)
#: Largest image side the processing workloads build from raw bytes (a guard, not a limit hit by
#: the planned payloads: 10 MB of raw RGB is a 1,870 px square).
MAX_SIDE_PX: Final = 8192
#: Decompression-bomb guard for encoded images in the payload.
MAX_IMAGE_PIXELS: Final = 64_000_000
#: Encoded formats recognised in a payload (anything else is raw pixels).
IMAGE_FORMATS: Final = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")

# The request schema of the lightweight API: what the load generator sends (extra keys allowed).
REQUEST_SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["payload"],
    "properties": {
        "request_id": {"type": "string", "minLength": 1, "maxLength": 128},
        "pair_id": {"type": ["string", "null"], "maxLength": 128},
        "workload_type": {"enum": list(WORKLOADS)},
        "timestamp": {"type": "string", "minLength": 10, "maxLength": 40},
        "metadata": {
            "type": "object",
            "properties": {
                "target_size_kb": {"type": "number", "exclusiveMinimum": 0},
                "time_window": {"type": "string"},
                "load_pattern": {"type": "string"},
            },
        },
        "payload": {
            "oneOf": [
                {"type": "string"},
                {"type": "object",
                 "properties": {"user": {"type": "string", "minLength": 1, "maxLength": 256},
                                "action": {"type": "string", "pattern": "^[a-z_]{1,32}$"},
                                "data": {"type": "string"}},
                 "required": ["data"]},
            ]
        },
    },
}
_VALIDATOR: Final = Draft202012Validator(REQUEST_SCHEMA)


class WorkloadError(ValueError):
    """The request cannot be processed (unknown workload, invalid input); carries an HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# ------------------------------------------------------------------------------------ payload data
def payload_bytes(body: bytes) -> bytes:
    """The data a processing workload works on: the base64-decoded `payload` string of a JSON
    body, the JSON text of an object `payload`, or the body itself when it is not such JSON."""
    if body[:1] not in (b"{", b" ", b"\n", b"\t", b"\r"):
        return body
    try:
        obj = json.loads(body)
    except ValueError:
        return body
    if not isinstance(obj, dict) or "payload" not in obj:
        return body
    inner = obj["payload"]
    if isinstance(inner, str):
        try:
            return base64.b64decode(inner, validate=True)
        except (binascii.Error, ValueError):
            return inner.encode()
    return json.dumps(inner, separators=(",", ":")).encode()


def _as_image(data: bytes) -> Image.Image:
    """An encoded image (any format Pillow reads) or else the bytes as raw RGB pixels of the
    largest square they fill (grey levels for fewer than 3 pixels' worth)."""
    if not data:
        raise WorkloadError("empty payload: no image data")
    try:
        img = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
        if img.width * img.height > MAX_IMAGE_PIXELS:
            raise WorkloadError(f"image of {img.width}x{img.height} px is over {MAX_IMAGE_PIXELS} pixels", 413)
        img.load()
        return img.convert("RGB")
    except WorkloadError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        pass  # not an encoded image: raw pixels
    side = min(MAX_SIDE_PX, math.isqrt(len(data) // 3))
    if side < 1:
        return Image.frombytes("L", (len(data), 1), data).convert("RGB")
    return Image.frombytes("RGB", (side, side), data[: side * side * 3])


# ------------------------------------------------------------------------------------- workloads
def validate_json(body: bytes) -> dict[str, Any]:
    """lightweight_api: parse, validate against REQUEST_SCHEMA, hash the canonical form."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WorkloadError(f"request body is not JSON: {exc}", 400) from None
    errors = sorted(_VALIDATOR.iter_errors(obj), key=lambda e: list(e.absolute_path))
    if errors:
        deepest = [best_match([e]) or e for e in errors[:5]]  # into oneOf branches: the useful message
        msgs = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:200]}" for e in deepest]
        raise WorkloadError("request does not match the schema: " + "; ".join(msgs), 422)
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    inner = obj["payload"]
    return {"valid": True, "fields": _count_fields(obj), "canonical_bytes": len(canonical),
            "sha256": hashlib.sha256(canonical).hexdigest(),
            "data_chars": len(inner["data"]) if isinstance(inner, dict) else len(inner)}


def _count_fields(obj: Any) -> int:
    if isinstance(obj, dict):
        return len(obj) + sum(_count_fields(v) for v in obj.values())
    if isinstance(obj, list):
        return sum(_count_fields(v) for v in obj)
    return 0


def make_thumbnails(data: bytes, sizes_px: Iterable[int] = THUMBNAIL_SIZES_PX) -> dict[str, Any]:
    """thumbnail_processing: Lanczos thumbnails (aspect kept, no draft shortcut), JPEG q=85."""
    img = _as_image(data)
    out = []
    for size in sizes_px:
        thumb = img.copy()
        thumb.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=None)
        buf = io.BytesIO()
        thumb.save(buf, "JPEG", quality=85)
        blob = buf.getvalue()
        out.append({"size_px": size, "width": thumb.width, "height": thumb.height, "jpeg_bytes": len(blob),
                    "sha256": hashlib.sha256(blob).hexdigest()})
    return {"source_width": img.width, "source_height": img.height, "thumbnails": out}


def compress(data: bytes, level: int = 6) -> dict[str, Any]:
    """medium_processing: zlib (DEFLATE) compression, round trip verified, CRC-32 and SHA-256."""
    if not data:
        raise WorkloadError("empty payload: nothing to compress")
    packed = zlib.compress(data, level)
    if zlib.decompress(packed) != data:  # pragma: no cover - zlib round trip cannot fail
        raise WorkloadError("compression round trip failed", 500)
    return {"input_bytes": len(data), "compressed_bytes": len(packed),
            "ratio": round(len(packed) / len(data), 6), "crc32": zlib.crc32(data),
            "sha256": hashlib.sha256(packed).hexdigest()}


def filter_image(data: bytes) -> dict[str, Any]:
    """heavy_processing: Gaussian blur (r=3) -> edge detection -> histogram equalisation -> PNG."""
    img = _as_image(data)
    blurred = img.filter(ImageFilter.GaussianBlur(radius=3))
    edges = blurred.filter(ImageFilter.FIND_EDGES)
    equalised = ImageOps.equalize(edges)
    buf = io.BytesIO()
    equalised.save(buf, "PNG", compress_level=6)
    blob = buf.getvalue()
    hist = np.asarray(equalised.convert("L").histogram(), dtype=np.float64)
    p = hist[hist > 0] / hist.sum()
    return {"width": img.width, "height": img.height, "png_bytes": len(blob),
            "edge_entropy_bits": round(float(-(p * np.log2(p)).sum()), 6),
            "sha256": hashlib.sha256(blob).hexdigest()}


_RUNNERS: Final[dict[str, Callable[[bytes], dict[str, Any]]]] = {
    "lightweight_api": validate_json,
    "thumbnail_processing": lambda body: make_thumbnails(payload_bytes(body)),
    "medium_processing": lambda body: compress(payload_bytes(body)),
    "heavy_processing": lambda body: filter_image(payload_bytes(body)),
}


def run(workload: str, body: bytes) -> dict[str, Any]:
    """The result of one request of `workload` on the raw request body (a pure function)."""
    try:
        runner = _RUNNERS[workload]
    except KeyError:
        raise WorkloadError(f"unknown workload {workload!r} (expected one of {', '.join(WORKLOADS)})",
                            404) from None
    return runner(body)


def handle(workload: str, body: bytes, platform: str, *, cold_start: bool | None = None,
           memory_limit_mb: float | None = None, instance_id: str | None = None) -> tuple[int, dict[str, Any]]:
    """(HTTP status, response JSON) for one request, in the shape of the student's endpoints:
    `platform`, `workload_type`, `metrics` (execution_time_ms measured around the work, body
    parsing included, as the student's handlers did), `result`."""
    request_id = _request_id(body)
    started = time.perf_counter()
    try:
        result: dict[str, Any] | None = run(workload, body)
        status, error = 200, None
    except WorkloadError as exc:
        result, status, error = None, exc.status, str(exc)
    execution_ms = (time.perf_counter() - started) * 1000.0
    metrics: dict[str, Any] = {"execution_time_ms": execution_ms, "payload_size_kb": len(body) / 1024.0}
    if cold_start is not None:
        metrics["cold_start"] = cold_start
    if memory_limit_mb is not None:
        metrics["memory_limit_mb"] = memory_limit_mb
    if instance_id is not None:
        metrics["instance_id"] = instance_id
    response: dict[str, Any] = {"request_id": request_id, "platform": platform, "workload_type": workload,
                                "timestamp": datetime.now(timezone.utc).isoformat(), "metrics": metrics,
                                "result": result}
    if error is not None:
        response["error"] = error
    return status, response


def _request_id(body: bytes) -> str | None:
    """The generator's request_id when the body is a small-enough JSON prefix to find it cheaply."""
    head = body[:512]
    key = b'"request_id"'
    i = head.find(key)
    if i < 0:
        return None
    rest = head[i + len(key):].lstrip(b" :")
    if rest[:1] != b'"':
        return None
    end = rest.find(b'"', 1)
    return rest[1:end].decode(errors="replace") if end > 0 else None


# ------------------------------------------------------------------------------------------ Lambda
_LAMBDA_STATE = {"cold": True, "instance_id": uuid.uuid4().hex[:12]}


def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """AWS Lambda entry point behind API Gateway (REST API, Lambda proxy integration)."""
    cold = bool(_LAMBDA_STATE["cold"])
    _LAMBDA_STATE["cold"] = False
    route = str(event.get("resource") or event.get("path") or "")
    workload = LAMBDA_ROUTES.get(route.rstrip("/")) or _workload_from_path(route)
    raw = event.get("body") or ""
    body = base64.b64decode(raw) if event.get("isBase64Encoded") else (
        raw.encode() if isinstance(raw, str) else bytes(raw))
    memory = getattr(context, "memory_limit_in_mb", None)
    status, response = handle(workload or "", body, "lambda", cold_start=cold,
                              memory_limit_mb=float(memory) if memory is not None else None,
                              instance_id=str(_LAMBDA_STATE["instance_id"]))
    return {"statusCode": status, "headers": {"Content-Type": "application/json", "X-Platform": "lambda"},
            "isBase64Encoded": False, "body": json.dumps(response)}


def _workload_from_path(path: str) -> str | None:
    for prefix, workload in LAMBDA_ROUTES.items():
        if path.rstrip("/").endswith(prefix):
            return workload
    return None


# ------------------------------------------------------------------------------- container (WSGI)
def make_wsgi_app(routes: Mapping[str, str] | None = None, *, platform: str = "ecs",
                  memory_limit_mb: float | None = None, max_body_bytes: int = 64 * 1024 * 1024):
    """A WSGI app serving POST <route> for each workload and GET /health (ALB health check)."""
    table = dict(routes or ECS_ROUTES)
    instance_id = f"task-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "GET" and (path == "/health" or path.endswith("/health")):
            return _reply(start_response, 200, {"status": "healthy", "instance_id": instance_id})
        workload = table.get(path.rstrip("/"))
        if workload is None:
            return _reply(start_response, 404, {"error": f"no route {path!r}"})
        if method != "POST":
            return _reply(start_response, 405, {"error": f"{method} not allowed on {path}"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _reply(start_response, 400, {"error": "bad Content-Length"})
        if length > max_body_bytes:
            return _reply(start_response, 413, {"error": f"body of {length} bytes over {max_body_bytes}"})
        body = environ["wsgi.input"].read(length) if length else b""
        status, response = handle(workload, body, platform, memory_limit_mb=memory_limit_mb,
                                  instance_id=instance_id)
        return _reply(start_response, status, response)

    return app


_REASONS: Final = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                   413: "Payload Too Large", 422: "Unprocessable Entity", 500: "Internal Server Error"}


def _reply(start_response: Callable[..., Any], status: int, obj: dict[str, Any]) -> list[bytes]:
    blob = json.dumps(obj).encode()
    start_response(f"{status} {_REASONS.get(status, 'Error')}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(blob)))])
    return [blob]


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve(host: str = "127.0.0.1", port: int = 0, **app_kwargs: Any) -> tuple[WSGIServer, threading.Thread]:
    """Start the container app on host:port (0 = ephemeral) in a background thread; returns the
    server (`server.server_port`, `server.shutdown()`) and its thread."""
    server = make_server(host, port, make_wsgi_app(**app_kwargs), server_class=_ThreadingWSGIServer)
    thread = threading.Thread(target=server.serve_forever, name="workloads-wsgi", daemon=True)
    thread.start()
    return server, thread


# -------------------------------------------------------------------------------- request bodies
_ALNUM: Final = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)


def make_body(workload: str, size_kb: float, seed: int = 0) -> bytes:
    """A request body of about `size_kb` KB (within 1 %, or 200 bytes for tiny ones) in the
    student's generator format: JSON with metadata and `payload` = {user, action, data} for the
    lightweight API, else a base64 string of random alphanumeric bytes. Deterministic for a seed."""
    if workload not in WORKLOADS:
        raise WorkloadError(f"unknown workload {workload!r}", 404)
    if size_kb <= 0:
        raise ValueError(f"size_kb must be > 0, got {size_kb}")
    rng = np.random.default_rng(seed)
    target = int(size_kb * 1024)
    head = {"request_id": f"req_{seed}_{workload}", "workload_type": workload,
            "timestamp": "2025-11-22T19:35:44.999Z", "metadata": {"target_size_kb": size_kb}}
    overhead = len(json.dumps({**head, "payload": ""}).encode())
    if workload == "lightweight_api":
        overhead += len(json.dumps({"user": "test", "action": "validate", "data": ""})) - 2
        n = max(1, target - overhead)
        data = rng.choice(_ALNUM, size=n).tobytes().decode()
        obj = {**head, "payload": {"user": "test", "action": "validate", "data": data}}
    else:
        raw_n = max(3, (target - overhead) * 3 // 4)
        raw = rng.choice(_ALNUM, size=raw_n).tobytes()
        obj = {**head, "payload": base64.b64encode(raw).decode()}
    return json.dumps(obj, separators=(", ", ": ")).encode()
