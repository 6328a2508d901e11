"""The router's event layer: what kind of Lambda event arrived (API Gateway REST proxy v1, HTTP API
proxy v2, or a direct invocation), its input fields, the answer's envelope, and the validation of
each input field (a `BadRequest` names the field). Standard library only: the Lambda zip ships it.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any, Mapping

#: How many decision ids one `completed` notification may carry.
MAX_COMPLETED = 1000


class BadRequest(ValueError):
    """A client error: answered with HTTP 400 naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# ------------------------------------------------------------------------------------------ events
def event_kind(event: object) -> str:
    """'v2' (HTTP API), 'v1' (REST API), or 'direct'."""
    if isinstance(event, Mapping):
        ctx = event.get("requestContext")
        if event.get("version") == "2.0" and isinstance(ctx, Mapping) and isinstance(ctx.get("http"), Mapping):
            return "v2"
        if "httpMethod" in event and isinstance(ctx, Mapping):
            return "v1"
    return "direct"


def request_fields(event: object, kind: str) -> dict[str, Any]:
    """The input fields of an event (BadRequest for a wrong method, a bad body, ...)."""
    if not isinstance(event, Mapping):  # only a direct invocation can be anything else
        raise BadRequest("event", f"expected a JSON object, got {type(event).__name__}")
    if kind == "direct":
        return dict(event)
    method = (event["requestContext"]["http"].get("method") if kind == "v2" else event.get("httpMethod"))
    method = str(method or "").upper()
    if method == "POST":
        fields = _json_body(event)
    elif method == "GET":
        if event.get("body"):
            raise BadRequest("body", "a GET request takes query-string parameters, not a body")
        fields = dict(event.get("queryStringParameters") or {})
    else:
        raise BadRequest("method", f"{method or '(none)'} is not allowed (use POST with a JSON body "
                         "or GET with query-string parameters)")
    path_workload = (event.get("pathParameters") or {}).get("workload")
    if path_workload is not None:
        if "workload_type" in fields and fields["workload_type"] != path_workload:
            raise BadRequest("workload_type", f"body says {fields['workload_type']!r} but the path "
                             f"says {path_workload!r}")
        fields["workload_type"] = path_workload
    return fields


def _json_body(event: Mapping[str, Any]) -> dict[str, Any]:
    raw = event.get("body")
    if raw is None or raw == "":
        raise BadRequest("body", "missing: POST a JSON object such as "
                         '{"workload_type": "lightweight_api", "payload_size_kb": 5}')
    if not isinstance(raw, str):
        raise BadRequest("body", f"expected a string, got {type(raw).__name__}")
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise BadRequest("body", "isBase64Encoded is true but the body is not base64 of UTF-8 text") from None
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise BadRequest("body", f"malformed JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BadRequest("body", f"expected a JSON object, got {type(doc).__name__}")
    return doc


def respond(kind: str, status: int, body: dict[str, Any]) -> dict[str, Any]:
    if kind == "direct":
        return {"statusCode": status, **body}
    return {"statusCode": status, "headers": {"Content-Type": "application/json"},
            "isBase64Encoded": False, "body": json.dumps(body)}


# ------------------------------------------------------------------------------------------ fields
def category(fields: Mapping[str, Any], name: str, codes: Mapping[str, int] | tuple[str, ...],
             required: bool) -> str | None:
    value = fields.get(name)
    if value is None:
        if required:
            raise BadRequest(name, f"missing (expected one of {sorted(codes)})")
        return None
    if not isinstance(value, str) or value not in codes:
        raise BadRequest(name, f"{value!r} is not one of {sorted(codes)}")
    return value


def size_kb(value: object, max_kb: float) -> float:
    name = "payload_size_kb"
    if value is None:
        raise BadRequest(name, "missing (a number of kilobytes, e.g. 5 or 1024)")
    if isinstance(value, bool):
        raise BadRequest(name, f"{value!r} is not a number")
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise BadRequest(name, f"{value!r} is not a number") from None
    elif isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            raise BadRequest(name, "too large") from None
    else:
        raise BadRequest(name, f"{value!r} is not a number")
    if not math.isfinite(number):
        raise BadRequest(name, f"{value!r} is not a finite number")
    if number < 0:
        raise BadRequest(name, f"{number} is negative")
    if number > max_kb:
        raise BadRequest(name, f"{number} KB exceeds {max_kb} KB (the front doors' payload limit)")
    return number


def decision_ids(value: object) -> tuple[str, ...]:
    """The `completed` field: one decision id or a list of them (a query string gives one string,
    comma-separated ids)."""
    name = "completed"
    if value is None:
        return ()
    if isinstance(value, str):
        ids = [v.strip() for v in value.split(",")] if value.strip() else []
    elif isinstance(value, list):
        ids = value
    else:
        raise BadRequest(name, f"{value!r} is not a decision id or a list of decision ids (the "
                         "`decision_id` of earlier answers whose requests have completed)")
    if len(ids) > MAX_COMPLETED:
        raise BadRequest(name, f"{len(ids)} decision ids; at most {MAX_COMPLETED} per request")
    bad = [v for v in ids if not isinstance(v, str) or not v or len(v) > 64]
    if bad:
        raise BadRequest(name, f"{bad[0]!r} is not a decision id (a non-empty string of at most 64 "
                         "characters from an earlier answer's `decision_id`)")
    return tuple(ids)
