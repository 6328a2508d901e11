"""Stage 07 (deploy): the router package at a glance, the policy it serves, where each of its inputs
comes from in production, and the handler's answers to sample events (an API Gateway REST (v1)
event, an HTTP API (v2) event, direct invocations, and bad inputs)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from hybridopt.router.handler import Router

GOOD = {"workload_type": "thumbnail_processing", "payload_size_kb": 500, "timestamp": "2025-11-24T12:15:00+05:30"}


def sample_events(objective: bool = False) -> dict[str, Any]:
    """Sample events; `objective` adds the objective path's own (a setting, a completion report, bad
    values of its fields)."""
    v1 = {"resource": "/route/{workload}", "path": "/route/thumbnail_processing", "httpMethod": "POST",
          "headers": {"Content-Type": "application/json"}, "queryStringParameters": None,
          "pathParameters": {"workload": "thumbnail_processing"},
          "requestContext": {"httpMethod": "POST", "stage": "prod", "requestId": "sample-v1"},
          "body": json.dumps({k: v for k, v in GOOD.items() if k != "workload_type"}), "isBase64Encoded": False}
    v2 = {"version": "2.0", "routeKey": "POST /route", "rawPath": "/route", "headers": {},
          "requestContext": {"http": {"method": "POST", "path": "/route"}, "requestId": "sample-v2"},
          "body": json.dumps({**GOOD, "timestamp": "2025-11-24T16:40:00+05:30"}), "isBase64Encoded": False}
    events: dict[str, Any] = {
        "REST API (v1), POST with path parameter": v1,
        "HTTP API (v2), POST, hour outside every window": v2,
        "direct invocation, arm=control": {**GOOD, "arm": "control"},
        "direct invocation, no timestamp (now)": {"workload_type": "heavy_processing", "payload_size_kb": 8192},
    }
    if objective:
        events.update({
            "direct, objective setting 'SLO x0.5'": {**GOOD, "objective": "SLO x0.5"},
            "direct, 6 MB heavy request, reports 2 completions": {
                "workload_type": "heavy_processing", "payload_size_kb": 6144, "timestamp": GOOD["timestamp"],
                "completed": ["(filled in)"]},
            "bad: unknown objective": {**GOOD, "objective": "fastest"},
            "bad: completed is not decision ids": {**GOOD, "completed": {"id": 3}},
        })
    events.update({
        "bad: unknown workload": {"workload_type": "video", "payload_size_kb": 5},
        "bad: negative size": {"workload_type": "lightweight_api", "payload_size_kb": -1},
        "bad: malformed JSON (v2)": {**v2, "body": "{not json"},
        "bad: wrong method (v1)": {**v1, "httpMethod": "DELETE"},
    })
    return events


def sample_answers(router: Router) -> pd.DataFrame:
    """The handler's answer to each sample event (the objective path's columns when it serves one)."""
    rows, ids = [], []
    for name, event in sample_events(router.decision is not None).items():
        if isinstance(event, dict) and event.get("completed") == ["(filled in)"]:
            event = {**event, "completed": ids[:2]}
        resp = router.handle(event)
        body = json.loads(resp["body"]) if "body" in resp else {k: v for k, v in resp.items() if k != "statusCode"}
        if body.get("decision_id"):
            ids.append(body["decision_id"])
        err = body.get("error") or {}
        inp = body.get("inputs") or {}
        row = {"event": name, "status": resp["statusCode"],
               "error": f"{err.get('field')}: {err.get('message')}" if err else None,
               "platform": body.get("recommended_platform"),
               "decided_by": body.get("decided_by"), "arm": body.get("arm"), "P(lambda)": body.get("probability_lambda"),
               "time_window": f"{inp.get('time_window')} ({inp.get('time_window_source')})" if inp else None}
        if router.decision is not None:
            per = body.get("platforms") or {}
            load = body.get("load") or {}
            row.update({"objective": (body.get("objective") or {}).get("name"),
                        "objective platform": body.get("objective_platform"),
                        "rule platform": body.get("workload_rule_platform"),
                        **{f"{p} p95 ms": (per.get(p) or {}).get("p95_ms") for p in ("lambda", "ecs")},
                        **{f"{p} marginal µUSD": _micro((per.get(p) or {}).get("marginal_usd")) for p in ("lambda", "ecs")},
                        "in flight (λ/ECS)": (f"{load['in_flight_lambda']:g}/{load['in_flight_ecs']:g}" if load else None)})
        rows.append(row)
    return pd.DataFrame(rows).set_index("event")


def _yes_no(flag: object) -> str:
    return "unknown" if flag is None else "yes" if flag else "no"


def _micro(usd: float | None) -> float | None:
    return None if usd is None else usd * 1e6


def package_table(package: Any, router: Router, limits: Any) -> pd.DataFrame:
    """The router package at a glance (router.package.PackageReport, the loaded Router and
    params.router for the size limit and aim)."""
    version = str(package.model_version)
    classifier = version if version.startswith(str(package.model_format)) else f"{package.model_format} {version}"
    return pd.Series({"zip": str(package.zip_path), "zip MB": f"{package.zip_bytes / 1e6:.2f}",
                      "unzipped MB": f"{package.unzipped_bytes / 1e6:.2f}", "files": f"{package.n_files:,}",
                      "policy served": package.policy,
                      "classifier": classifier, "trees": f"{len(router.model.trees):,}",
                      "classifier KB": f"{package.model_bytes / 1e3:,.1f}",
                      "decision": package.decision_version or "none (no decision/ in the model folder)",
                      "decision KB": f"{package.decision_bytes / 1e3:,.1f}", "handler": package.handler,
                      "sha256": package.sha256, "warnings": "; ".join(package.warnings) or "none",
                      "limit / aim MB": f"{limits.max_package_mb} / {limits.target_package_mb}"},
                     name="package").to_frame()


def policy_table(router: Router) -> pd.DataFrame:
    """What the router decides with: per workload the decide stage's rule (control), the default
    objective's SLO, the ECS worker capacity and whether its service may scale; the objective's other
    settings are in the answer's `objective` when a request names one."""
    d = router.decision
    if d is None:
        return pd.DataFrame({"static rule (control)": router.static_rule}).rename_axis("workload")
    o = d.objectives["default"]
    mc = d.marginal
    return pd.DataFrame({
        "workload rule (control)": d.rule,
        "SLO p95 ms": {w: o.slo_p95_ms.get(w) for w in d.rule},
        "ECS worker slots": {w: mc.ecs_capacity.get(w) for w in d.rule},
        "ECS may scale": {w: _yes_no(mc.ecs_autoscaling.get(w)) for w in d.rule},
        "Lambda memory MB": {w: mc.lambda_memory_mb.get(w) for w in d.rule},
    }).rename_axis("workload")


#: Where each input of the objective policy comes from, in production and on the testbed.
INPUTS = [
    ("request context (workload, payload size, time)", "the request (API Gateway event)", "the request"),
    ("arrivals_<W>s_rps, workload_arrivals_<W>s_rps",
     "in-process counters of the execution environment (what AWS routed to it)", "the proxy's tracker (all requests)"),
    ("in_flight_<platform>, workload_in_flight_<platform>",
     "sends: the environment's own recommendations; completions: the caller's `completed` reports, else the "
     "client timeout; ECS alternatively from the ALB's CloudWatch metrics (1-minute, cached)",
     "the proxy reports every completion"),
    ("outcome models, objective, marginal-cost tables, workload rule", "model/decision/ in the zip",
     "the same zip, unzipped"),
]


def inputs_table() -> pd.DataFrame:
    """INPUTS as a table; the input names are a column (cells are escaped for HTML, so names like
    `in_flight_<platform>` show as written)."""
    return pd.DataFrame(INPUTS, columns=["input", "production (Lambda, recommend only)", "testbed A/B (proxy)"])


def timings_table(timings: dict[str, Any]) -> pd.DataFrame:
    """One row per measured path from router.bench (warm_latency or cold_init); the scalar entries
    (call counts, runs, policy) stay out."""
    return pd.DataFrame({k: v for k, v in timings.items() if isinstance(v, dict)}).T.rename_axis("path")


#: The warm decision's aim: p99 of a direct invocation within this (the notebook's "Read first").
WARM_P99_AIM_MS = 1.0


def warm_latency_note(warm: dict[str, Any], machine: dict[str, Any], aim_ms: float = WARM_P99_AIM_MS) -> str:
    """The machine the warm timings ran on (CPUs, 1-minute load average, Python) and the direct
    invocation's p99 against the aim, with the load average it was measured at when not met."""
    cpus = machine.get("cpus") or 0
    load = float(machine.get("loadavg_1m", float("nan")))
    per_cpu = f" ({load / cpus:.1f} per CPU)" if cpus else ""
    text = (f"Machine: {cpus} CPUs, load average (1 min) {load:.1f}{per_cpu}, Python {machine.get('python')}.")
    direct = warm.get("direct_event")
    if isinstance(direct, dict) and "p99_us" in direct:
        p99_ms = float(direct["p99_us"]) / 1000.0
        met = p99_ms <= aim_ms
        text += (f" Warm p99 of a direct invocation: {p99_ms:.2f} ms against the {aim_ms:g} ms aim: "
                 + ("met." if met else f"not met at load average {load:.1f}{per_cpu}; the p50 is "
                    f"{float(direct['p50_us']) / 1000.0:.2f} ms; on a loaded machine a p99 far above the p50 is mostly "
                    "time spent waiting for a CPU (benchmarks/bench_router.py on an idle machine separates the two)."))
    return text
