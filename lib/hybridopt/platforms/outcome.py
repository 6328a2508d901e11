"""What the model says about one request: `Pending` between the client and the platform, `Outcome` once
the platform has decided. Times ending in `_s` are model seconds; durations ending in `_ms` are
milliseconds relative to the client's send time."""

from __future__ import annotations

from dataclasses import dataclass

from hybridopt.data import contract

# --- the real error bodies the client sees (content type, body) ----------------------------------------
#: API Gateway REST, request body above 10 MB: a plain-text body, not JSON (observed, see testbed.yaml).
#: The text itself is a parameter (lambda.api_gateway_too_large_body).
APIGW_TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
HTML = "text/html"
#: REQUEST_TOO_LARGE gateway response (413): the Lambda 6 MB invoke limit through a proxy integration.
APIGW_REQUEST_TOO_LONG = '{"message":"Request Too Long"}'
#: INTEGRATION_TIMEOUT gateway response (504) after the 29 s integration timeout.
APIGW_ENDPOINT_TIMEOUT = '{"message": "Endpoint request timed out"}'
#: A Lambda error or a throttled invoke behind a REST proxy integration (500/502).
APIGW_INTERNAL_ERROR = '{"message": "Internal server error"}'
#: A 429 (only when lambda.throttle_status is set to 429: a direct invoke's view).
APIGW_TOO_MANY_REQUESTS = '{"message":"Too Many Requests"}'
#: A path API Gateway has no resource for.
APIGW_MISSING_TOKEN = '{"message":"Missing Authentication Token"}'


def alb_page(status: int, reason: str) -> str:
    """The ALB's own HTML error page (Server: awselb/2.0), e.g. alb_page(504, 'Gateway Time-out')."""
    return (f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
            f"<center><h1>{status} {reason}</h1></center>\r\n</body>\r\n</html>\r\n")


ALB_504 = alb_page(504, "Gateway Time-out")
ALB_503 = alb_page(503, "Service Temporarily Unavailable")


@dataclass(slots=True)
class Pending:
    """A request that left the client at `t_send_s` and has not yet been dispatched to its platform.

    `dispatch_at_s` is when the platform acts on it (API Gateway: the whole request received; ALB: the
    headers received, the body still streaming until `body_at_s`, later if it has to wait for a worker).
    `rtt_s` is this request's round trip (jitter and, in the round_trip inflation form, the measurement
    setup's inflation included); `inflation_s` is what the additive or multiplicative form adds to its
    response. Drivers must call `PlatformModel.dispatch` in non-decreasing `dispatch_at_s` order."""
    platform: str
    workload_type: str
    payload_bytes: int
    t_send_s: float
    rtt_s: float
    connect_s: float
    upload_s: float
    inflation_s: float
    dispatch_at_s: float
    body_at_s: float
    new_connection: bool
    outcome: "Outcome | None" = None   # set when the front door rejects the request outright


@dataclass(slots=True)
class Outcome:
    """One request's result as the client and the platform would report it."""
    platform: str
    workload_type: str
    http_status: int | None
    error: str | None                   # contract.ERROR_KINDS, from the status (or "timeout")
    reason: str | None                  # model-internal cause, e.g. "lambda_payload_limit", "alb_idle_timeout"
    t_send_s: float
    connect_ms: float
    upload_ms: float
    first_byte_ms: float | None         # upload end to first response byte
    total_ms: float                     # send to last byte (or to giving up)
    completes_at_s: float               # model time the client has the whole response (or gives up)
    body: str | None = None             # error body as the front door sends it (None on success)
    content_type: str = JSON
    execution_time_ms: float | None = None
    cold_start: bool | None = None
    init_duration_ms: float | None = None
    billed_duration_ms: float | None = None
    memory_limit_mb: float | None = None
    memory_used_mb: float | None = None
    instance_id: str | None = None
    actual_payload_size_kb: float | None = None
    queue_wait_ms: float | None = None  # Fargate: time waiting for a worker slot

    @property
    def ok(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300


def error_for(status: int | None) -> str | None:
    return contract.error_kind_for_status(status)


def client_timeout(platform: str, workload_type: str, t_send_s: float, connect_ms: float, upload_ms: float,
                   limit_ms: float, reason: str) -> Outcome:
    """What the client logs when it gives up `limit_ms` after it started the request: error=timeout, no
    status, no platform metrics; its connect and upload times are cut at the deadline."""
    connect = min(connect_ms, limit_ms)
    return Outcome(platform=platform, workload_type=workload_type, http_status=None, error="timeout",
                   reason=reason, t_send_s=t_send_s, connect_ms=connect,
                   upload_ms=max(0.0, min(upload_ms, limit_ms - connect)), first_byte_ms=None, total_ms=limit_ms,
                   completes_at_s=t_send_s + limit_ms / 1000.0, body=None)
