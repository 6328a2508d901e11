"""Stage 07 (deploy): the router package at a glance and the handler's answers to sample events (an
API Gateway REST (v1) event, an HTTP API (v2) event, a direct invocation, and a few bad inputs)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from hybridopt.router.handler import Router

GOOD = {"workload_type": "thumbnail_processing", "payload_size_kb": 500, "timestamp": "2025-11-24T12:15:00+05:30"}


def sample_events() -> dict[str, Any]:
    v1 = {"resource": "/route/{workload}", "path": "/route/thumbnail_processing", "httpMethod": "POST",
          "headers": {"Content-Type": "application/json"}, "queryStringParameters": None,
          "pathParameters": {"workload": "thumbnail_processing"},
          "requestContext": {"httpMethod": "POST", "stage": "prod", "requestId": "sample-v1"},
          "body": json.dumps({k: v for k, v in GOOD.items() if k != "workload_type"}), "isBase64Encoded": False}
    v2 = {"version": "2.0", "routeKey": "POST /route", "rawPath": "/route", "headers": {},
          "requestContext": {"http": {"method": "POST", "path": "/route"}, "requestId": "sample-v2"},
          "body": json.dumps({**GOOD, "timestamp": "2025-11-24T16:40:00+05:30"}), "isBase64Encoded": False}
    return {
        "REST API (v1), POST with path parameter": v1,
        "HTTP API (v2), POST, hour outside every window": v2,
        "direct invocation, arm=control": {**GOOD, "arm": "control"},
        "direct invocation, no timestamp (now)": {"workload_type": "heavy_processing", "payload_size_kb": 8192},
        "bad: unknown workload": {"workload_type": "video", "payload_size_kb": 5},
        "bad: negative size": {"workload_type": "lightweight_api", "payload_size_kb": -1},
        "bad: malformed JSON (v2)": {**v2, "body": "{not json"},
        "bad: wrong method (v1)": {**v1, "httpMethod": "DELETE"},
    }


def sample_answers(router: Router) -> pd.DataFrame:
    rows = []
    for name, event in sample_events().items():
        resp = router.handle(event)
        body = json.loads(resp["body"]) if "body" in resp else {k: v for k, v in resp.items() if k != "statusCode"}
        err = body.get("error") or {}
        inp = body.get("inputs") or {}
        rows.append({"event": name, "status": resp["statusCode"], "platform": body.get("recommended_platform"),
                     "P(lambda)": body.get("probability_lambda"), "arm": body.get("arm"),
                     "time_window": f"{inp.get('time_window')} ({inp.get('time_window_source')})" if inp else None,
                     "error": f"{err.get('field')}: {err.get('message')}" if err else None})
    return pd.DataFrame(rows).set_index("event")


def package_table(package: Any, router: Router, limits: Any) -> pd.DataFrame:
    """The router package at a glance (router.package.PackageReport, the loaded Router and
    params.router for the size limit and aim)."""
    return pd.Series({"zip": package.zip_path, "zip MB": round(package.zip_bytes / 1e6, 3),
                      "unzipped MB": round(package.unzipped_bytes / 1e6, 3), "files": package.n_files,
                      "model": f"{package.model_format} {package.model_version}", "trees": len(router.model.trees),
                      "model KB": round(package.model_bytes / 1e3, 1), "handler": package.handler,
                      "sha256": package.sha256, "warnings": "; ".join(package.warnings) or "none",
                      "limit / aim MB": f"{limits.max_package_mb} / {limits.target_package_mb}"},
                     name="package").to_frame()


def timings_table(timings: dict[str, Any]) -> pd.DataFrame:
    """One row per measured path from router.bench (warm_latency or cold_init); the scalar entries
    (call counts, runs) stay out."""
    return pd.DataFrame({k: v for k, v in timings.items() if isinstance(v, dict)}).T.rename_axis("path")
