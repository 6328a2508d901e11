"""gunicorn settings of the workloads' container (the image's CMD passes this file).

- `workers` sync workers from WEB_CONCURRENCY: one request at a time each, so a task serves at most
  that many requests at once (the platform model's `testbed.fargate.worker_slots_per_task`, which the
  task definition passes in). Further requests wait in the listen backlog.
- The ALB's health check asks HEALTH_PORT, answered by a thread of the gunicorn master itself: a task
  whose workers are all busy stays healthy (a health check queued behind long requests would time
  out and get the task replaced in the middle of a load test); a master that stopped (workers that
  cannot boot make gunicorn exit) fails it.
"""

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = os.environ.get("BIND_HOST", "0.0.0.0")      # the task's interface; tests bind 127.0.0.1
bind = f"{HOST}:{os.environ.get('PORT', '8080')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_class = "sync"
timeout = int(os.environ.get("HYBRIDOPT_WORKER_TIMEOUT_S", "120"))
graceful_timeout = 30
accesslog = None
errorlog = "-"
loglevel = "info"

HEALTH_PORT = int(os.environ.get("HEALTH_PORT", "8081"))
HEALTH_PATH = os.environ.get("HEALTH_PATH", "/health")


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        ok = self.path.split("?", 1)[0] == HEALTH_PATH
        body = b'{"status": "healthy"}' if ok else b'{"error": "not found"}'
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        return


def when_ready(server: object) -> None:
    """Serve the health endpoint from the master once it listens."""
    httpd = ThreadingHTTPServer((HOST, HEALTH_PORT), _Health)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, name="health", daemon=True).start()
