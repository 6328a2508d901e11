"""What the testbed answers, as the student's handlers and the AWS front doors did: the success
documents with each platform's metrics, the platforms' error bodies, the Server-Timing header that
carries the model's client timings, and API Gateway's answer to a path it has no resource for."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from hybridopt.platforms.outcome import APIGW_INTERNAL_ERROR, APIGW_MISSING_TOKEN, JSON, Outcome

#: Flask/Werkzeug's answer (behind gunicorn) to a body it cannot parse as JSON.
WERKZEUG_400 = ('<!doctype html>\n<html lang=en>\n<title>400 Bad Request</title>\n<h1>Bad Request</h1>\n'
                '<p>The browser (or proxy) sent a request that this server could not understand.</p>\n')
HEALTH_BODY = b'{"service":"hybrid-thesis-app","status":"healthy"}'

MetricValue = float | int | bool | str | None


@dataclass(frozen=True, slots=True)
class Route:
    """A served path: which platform's front door and which workload."""
    platform: str
    workload: str


@dataclass(frozen=True, slots=True)
class Reply:
    """One response: status, body, content type and the headers beyond the framing ones."""
    status: int
    body: bytes
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


def missing_token() -> Reply:
    """API Gateway's 403 for a path (or method) it has no resource for."""
    return Reply(403, APIGW_MISSING_TOKEN.encode(), JSON, {"x-amzn-ErrorType": "MissingAuthenticationTokenException"})


def health() -> Reply:
    return Reply(200, HEALTH_BODY, JSON)


def parse_envelope(body: bytes) -> dict[str, object] | None:
    """The request's JSON object ({} for an empty body), or None when the body is not a JSON object.
    A multi-MB `payload` string is not copied through the JSON decoder when it is the last member and a
    plain string (how the load generator sends it): it is read as null."""
    if not body:
        return {}
    try:
        doc = _loads_without_payload(body)
    except (ValueError, RecursionError):     # not JSON, not UTF-8, or nested too deep to decode
        return None
    return doc if isinstance(doc, dict) else None


def _loads_without_payload(body: bytes) -> object:
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


def server_timing(o: Outcome) -> str:
    """The model's client timings (ms) as a Server-Timing header value."""
    return (f"connect;dur={o.connect_ms:.3f}, upload;dur={o.upload_ms:.3f}, "
            f"first_byte;dur={(o.first_byte_ms or 0.0):.3f}, total;dur={o.total_ms:.3f}")


def render(route: Route, o: Outcome, envelope: dict[str, object] | None) -> Reply:
    """The response to a request the platform answered with outcome `o` (envelope None: the body was not
    a JSON object, which the handler fails on), with its Server-Timing header."""
    reply = _render(route, o, envelope)
    reply.headers["Server-Timing"] = server_timing(o)
    return reply


def _render(route: Route, o: Outcome, envelope: dict[str, object] | None) -> Reply:
    status = o.http_status or 502
    if status == 200 and envelope is None:   # the handler could not parse the body
        if route.platform == "lambda":
            return Reply(502, APIGW_INTERNAL_ERROR.encode(), JSON, {"x-amzn-ErrorType": "InternalServerErrorException"})
        return Reply(400, WERKZEUG_400.encode(), "text/html; charset=utf-8", {"Server": "gunicorn"})
    if status != 200:
        return Reply(status, (o.body or "").encode(), o.content_type,
                     {"Server": "awselb/2.0"} if route.platform == "ecs" else {})
    env = envelope or {}
    size_kb = o.actual_payload_size_kb
    metrics: dict[str, MetricValue]
    if route.platform == "lambda":
        metrics = {"execution_time_ms": o.execution_time_ms, "memory_used_mb": o.memory_used_mb,
                   "memory_limit_mb": o.memory_limit_mb, "cold_start": o.cold_start,
                   "init_duration_ms": o.init_duration_ms, "billed_duration_ms": o.billed_duration_ms,
                   "instance_id": o.instance_id, "payload_size_kb": size_kb}
        headers = {"X-Platform": "lambda", "X-Execution-Time": f"{o.execution_time_ms}"}
    else:
        metrics = {"execution_time_ms": o.execution_time_ms, "memory_used_mb": o.memory_used_mb,
                   "memory_limit_mb": o.memory_limit_mb, "cpu_percent": 0.0, "instance_id": o.instance_id,
                   "payload_size_kb": size_kb}
        headers = {"Server": "gunicorn"}
    result: dict[str, MetricValue]
    if route.workload == "lightweight_api":
        result = {"validated": True, "size": size_kb and int(size_kb * 1024)}
    elif route.workload == "thumbnail_processing":
        result = {"processed": True, "output_size": int((size_kb or 0) * 1024 * 3 / 8)}
    else:
        result = {"processed": True, "operations": 10000 if route.workload == "heavy_processing" else 1000}
    doc = {"request_id": env.get("request_id"), "platform": route.platform,
           "workload_type": env.get("workload_type", route.workload),
           "timestamp": datetime.now(timezone.utc).replace(tzinfo=None).isoformat(), "metrics": metrics,
           "result": result}
    return Reply(200, json.dumps(doc).encode(), JSON, headers)
