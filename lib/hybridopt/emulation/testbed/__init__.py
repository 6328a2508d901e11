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
counts a connection as new only for its first request to each front door. HTTP/1.1 is parsed and framed
by h11 (`protocol`): Content-Length and chunked bodies, `Expect: 100-continue`, HTTP/1.0 clients (closed
after their response). A request that cannot be served is answered with its status and closed, never
passed to the model: 400 (bad or conflicting Content-Length, a malformed request line or header, no Host
in HTTP/1.1, a body cut short by the client's close, a malformed chunk), 431 (a request head over 64 KiB),
501 (a transfer coding other than chunked), 505 (an HTTP version other than 1.0 and 1.1).

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

Modules: `protocol` (HTTP/1.1 over an asyncio stream with h11), `responses` (bodies and headers the
platforms answer with), `admin` (the admin API), `server` (TestbedServer: the model on the wall clock),
`runners` (serve, start, Testbed, run_forever).
"""

from hybridopt.emulation.testbed.admin import ADMIN_PREFIX
from hybridopt.emulation.testbed.protocol import MAX_HEADER_BYTES, HttpConnection, HttpRequest, MalformedRequest
from hybridopt.emulation.testbed.responses import Reply, Route
from hybridopt.emulation.testbed.runners import Testbed, run_forever, serve, start
from hybridopt.emulation.testbed.server import TIMEOUT_GRACE_S, TestbedServer
from hybridopt.platforms import PlatformModel

__all__ = ["ADMIN_PREFIX", "MAX_HEADER_BYTES", "TIMEOUT_GRACE_S", "HttpConnection", "HttpRequest", "MalformedRequest",
           "PlatformModel", "Reply", "Route", "Testbed", "TestbedServer", "run_forever", "serve", "start"]
