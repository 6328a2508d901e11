"""The bill of a run as AWS would send it: a tiny log computed by hand line by line, the LCU rule (the
largest dimension, not their sum), Fargate's per-second billing with its one-minute minimum, and the
policy bill of routed pairs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hybridopt.data.cost import add_costs, lambda_cost_usd
from hybridopt.data.ingest import ingest
from hybridopt.data.pairing import pair
from hybridopt.decision import bill as billing
from hybridopt.decision import capacity as cap
from hybridopt.emulation import simulate
from hybridopt.params import load_params

from tests.conftest import contract_line, write_jsonl

GB_S, REQ, REST = 0.0000166667, 0.0000002, 0.0000035          # params/base.yaml prices, by hand
VCPU_H, GB_H, ALB_H, LCU_H = 0.04048, 0.004445, 0.0252, 0.008
LIGHT, THUMB, HEAVY = "lightweight_api", "thumbnail_processing", "heavy_processing"


def tiny_log(tmp_path: Path, params) -> pd.DataFrame:
    """One run across a clock-hour boundary (10:59:30 to 11:00:20 UTC): four Lambda attempts (warm,
    cold, rejected 413, refused connection) and two ECS attempts."""
    recs = [
        contract_line(request_id="L1", platform="lambda", workload_type=LIGHT, target_payload_size_kb=5.0,
                      sent_at="2025-11-23T10:59:30.000+00:00", total_ms=125.0, billed_duration_ms=81.0,
                      memory_limit_mb=128.0),
        contract_line(request_id="L2", platform="lambda", workload_type=THUMB, target_payload_size_kb=100.0,
                      sent_at="2025-11-23T10:59:40.000+00:00", total_ms=700.0, billed_duration_ms=300.2,
                      cold_start=True, init_duration_ms=150.3, memory_limit_mb=256.0, actual_payload_size_kb=100.0),
        contract_line(request_id="L3", platform="lambda", workload_type=HEAVY, target_payload_size_kb=5120.0,
                      sent_at="2025-11-23T11:00:00.000+00:00", total_ms=150.0, http_status=413,
                      error="payload_too_large", billed_duration_ms=None, execution_time_ms=None,
                      memory_limit_mb=None, instance_id=None, actual_payload_size_kb=None),
        contract_line(request_id="L4", platform="lambda", workload_type=LIGHT, target_payload_size_kb=1.0,
                      sent_at="2025-11-23T11:00:05.000+00:00", total_ms=3.0, http_status=None, error="connection",
                      billed_duration_ms=None, execution_time_ms=None, memory_limit_mb=None, instance_id=None,
                      actual_payload_size_kb=None, first_byte_ms=None, upload_ms=None),
        contract_line(request_id="E1", platform="ecs", workload_type=LIGHT, target_payload_size_kb=5.0,
                      sent_at="2025-11-23T10:59:30.000+00:00", total_ms=200.0, billed_duration_ms=None,
                      memory_limit_mb=512.0, instance_id="task-1", actual_payload_size_kb=5.0),
        contract_line(request_id="E2", platform="ecs", workload_type=THUMB, target_payload_size_kb=1024.0,
                      sent_at="2025-11-23T11:00:10.000+00:00", total_ms=10000.0, billed_duration_ms=None,
                      memory_limit_mb=1024.0, instance_id="task-2", actual_payload_size_kb=1024.0),
    ]
    write_jsonl(tmp_path / "run-a.jsonl", recs)
    res = ingest(params, tmp_path)
    assert len(res.requests) == 6, res.ledger
    return res.requests


def test_hand_computed_bill_of_a_tiny_log(tmp_path, params) -> None:
    b = billing.bill(tiny_log(tmp_path, params), params)
    span_s = 50.0                      # first send 10:59:30, last completion 11:00:20 (E2: 10 s)
    expected = {
        ("lambda_duration", LIGHT): (0.081 * 128 / 1024, GB_S),       # 81 ms x 0.125 GB
        ("lambda_requests", LIGHT): (1, REQ),                         # L4 never connected
        ("api_gateway_requests", LIGHT): (1, REST),
        ("lambda_duration", THUMB): (0.301 * 256 / 1024, GB_S),       # 300.2 ms (INIT included) -> 301
        ("lambda_requests", THUMB): (1, REQ),
        ("api_gateway_requests", THUMB): (1, REST),
        ("api_gateway_requests", HEAVY): (1, REST),                   # 413 at API Gateway: no invocation
        ("fargate_vcpu", LIGHT): (span_s * 0.25 / 3600, VCPU_H),
        ("fargate_memory", LIGHT): (span_s * 0.5 / 3600, GB_H),
        ("fargate_vcpu", THUMB): (span_s * 0.5 / 3600, VCPU_H),
        ("fargate_memory", THUMB): (span_s * 1.0 / 3600, GB_H),
        ("alb_hours", None): (2, ALB_H),                               # clock hours 10:00 and 11:00
        # hour 10: new connections bind (1/3600/25 > 1 active per minute / 60 / 3000 > 5 KB);
        # hour 11: processed bytes bind (1 MB = 1/1024 GB)
        ("alb_lcu", None): (1 / 3600 / 25 + 1024 / 1024 / 1024, LCU_H),
    }
    got = {(x.item, x.workload): x for x in b.lines}
    assert set(got) == set(expected)
    for key, (qty, price) in expected.items():
        line = got[key]
        assert line.session == "run-a"
        assert math.isclose(line.quantity, qty, rel_tol=1e-12), key
        assert line.unit_price_usd == price and math.isclose(line.usd, qty * price, rel_tol=1e-12), key
    total = sum(q * p for q, p in expected.values())
    assert math.isclose(b.total_usd, total, rel_tol=1e-12)
    assert b.requests == 6 and b.requests_by_platform == {"lambda": 4, "ecs": 2}
    assert math.isclose(b.avg_usd_per_1k_requests, total / 6 * 1000, rel_tol=1e-12)
    assert b.capacity_basis == "deployed_count" and any("deployed_count" in n for n in b.notes)
    d = json.loads(json.dumps(b.to_dict()))                    # what decisions.json would hold
    assert math.isclose(d["usd_by_item"]["alb_hours"], 2 * ALB_H) and len(d["lines"]) == len(expected)
    hours = {h["hour_start"][:16]: h for h in b.alb_hourly}
    assert hours["2025-11-23 10:00"]["binding"] == "new_connections"
    assert hours["2025-11-23 11:00"]["binding"] == "processed_bytes"


def test_every_line_names_its_price_source(tmp_path, params) -> None:
    b = billing.bill(tiny_log(tmp_path, params), params)
    pr = params.prices
    by_item = {"lambda_duration": pr.lambda_gb_s_usd, "lambda_requests": pr.lambda_request_usd,
               "api_gateway_requests": pr.api_gateway_rest_request_usd, "fargate_vcpu": pr.fargate_vcpu_hour_usd,
               "fargate_memory": pr.fargate_gb_hour_usd, "alb_hours": pr.alb_hour_usd, "alb_lcu": pr.alb_lcu_hour_usd}
    for line in b.lines:
        assert line.source.startswith(by_item[line.item].source), line
    assert all("1-minute minimum" in x.source for x in b.lines if x.item.startswith("fargate"))
    assert all(billing.LCU_SOURCE in x.source for x in b.lines if x.item == "alb_lcu")


def test_lambda_lines_match_the_per_attempt_cost(tmp_path, params) -> None:
    """The bill and data.cost price a Lambda attempt by the same rules (REST and HTTP API)."""
    reqs = tiny_log(tmp_path, params)
    for gateway in ("rest", "http"):
        p = load_params("thesis-2025-11", overrides={"cost": {"api_gateway": gateway}})
        b = billing.bill(reqs, p)
        lam = sum(x.usd for x in b.lines if x.platform == "lambda")
        assert math.isclose(lam, float(lambda_cost_usd(reqs, p).sum()), rel_tol=1e-12)
    http = billing.bill(reqs, load_params("thesis-2025-11", overrides={"cost": {"api_gateway": "http"}}))
    units = {x.workload: x.quantity for x in http.lines if x.item == "api_gateway_requests"}
    assert units == {LIGHT: 1, THUMB: 1, HEAVY: 10}              # 5 MB = ten started 512 KB units


# -------------------------------------------------------------------------------------------- LCU
def test_lcu_is_the_largest_dimension_not_their_sum() -> None:
    h = 490_000                                     # a clock hour (hours since the epoch)
    t = h * 3600.0
    # 4,000 connections open the whole hour, tiny bodies: active connections bind
    n = 4000
    act = billing.alb_hourly(np.full(n, t), np.full(n, t + 3599.0), np.full(n, 1e-6), [h], 1.0).iloc[0]
    assert math.isclose(act["lcu_active_connections"], 4000 / 3000)
    assert math.isclose(act["lcu_new_connections"], 4000 / 3600 / 25)
    assert act["binding"] == "active_connections" and math.isclose(act["lcu"], 4000 / 3000)
    # 200,000 short connections: new connections bind
    n = 200_000
    t0 = t + np.arange(n) * (3600.0 / n)
    new = billing.alb_hourly(t0, t0 + 0.1, np.full(n, 1e-9), [h], 1.0).iloc[0]
    assert new["binding"] == "new_connections" and math.isclose(new["lcu"], n / 3600 / 25)
    assert new["lcu"] < new[["lcu_new_connections", "lcu_active_connections", "lcu_processed_bytes"]].sum()
    # 2 GB through the ALB in an hour with two requests: bytes bind
    byt = billing.alb_hourly(np.array([t, t + 10]), np.array([t + 1, t + 11]), np.array([1.5, 0.5]), [h], 1.0).iloc[0]
    assert byt["binding"] == "processed_bytes" and math.isclose(byt["lcu"], 2.0)
    # rules beyond the ten free ones: 60 rules per request x 1,000 requests
    n = 1000
    t0 = t + np.arange(n) * 3.6
    rules = billing.alb_hourly(t0, t0 + 0.01, np.full(n, 1e-9), [h], 1.0, rules_per_request=60).iloc[0]
    assert rules["binding"] == "rule_evaluations" and math.isclose(rules["lcu"], n * 50 / 3600 / 1000)
    free = billing.alb_hourly(t0, t0 + 0.01, np.full(n, 1e-9), [h], 1.0).iloc[0]
    assert free["lcu_rule_evaluations"] == 0.0                 # the deployed four rules are within the free ten
    # an hour without traffic still has its row (the ALB ran), with zero LCUs
    idle = billing.alb_hourly(np.array([t]), np.array([t + 1]), np.array([0.1]), [h, h + 1], 1.0)
    assert idle["lcu"].tolist()[1] == 0.0
    with pytest.raises(ValueError, match="outside the billed hours"):
        billing.alb_hourly(np.array([t]), np.array([t + 1]), np.array([0.1]), [h + 1], 1.0)


# ---------------------------------------------------------------------------------------- Fargate
def timeline(tasks: list[cap.Task], record_end_s: float | None = None) -> cap.CapacityTimeline:
    svc = cap.Service(LIGHT, 0.25, 0.5, 1, 4, True, tuple(tasks))
    return cap.CapacityTimeline("simulator", {LIGHT: svc}, record_end_s, 60.0)


def test_fargate_per_second_with_a_one_minute_minimum_per_task() -> None:
    spans = [cap.Span("run-a", 1000.0, 1500.4)]
    tl = timeline([cap.Task("deployed", None, None),             # the run's span, rounded up: 501 s
                   cap.Task("short", 1100.0, 1120.0),             # 20 s -> the 1-minute minimum
                   cap.Task("longer", 1200.0, 1261.2),            # 61.2 s -> 62 s
                   cap.Task("tail", 1400.0, 2000.0),              # outlives the run: billed whole, 600 s
                   cap.Task("open", 1450.0, None),                # still running at the record's end
                   cap.Task("elsewhere", 5000.0, 5100.0)],        # started outside the session
                  record_end_s=1700.0)
    ts = cap.session_task_seconds(tl, spans)[("run-a", LIGHT)]
    assert ts.deployed_s == 501.0
    assert ts.added_tasks == 4 and ts.minimum_applied == 1 and ts.open_end == 1
    assert ts.added_s == 60.0 + 62.0 + 600.0 + 250.0


def test_overlapping_sessions_count_the_shared_time_once() -> None:
    spans = [cap.Span("a", 0.0, 100.0), cap.Span("b", 80.0, 150.0)]
    tl = timeline([cap.Task(None, None, None), cap.Task(None, None, None)])
    secs = cap.session_task_seconds(tl, spans)
    assert secs[("a", LIGHT)].deployed_s == 200.0 and secs[("b", LIGHT)].deployed_s == 100.0
    only_b = cap.session_task_seconds(tl, spans, billed={("b", LIGHT)})   # a is not billed: b owns its span
    assert only_b[("b", LIGHT)].deployed_s == 140.0


def test_capacity_file_round_trip_and_errors(tmp_path) -> None:
    tl = timeline([cap.Task("t1", None, None), cap.Task("t2", 10.5, 80.25, 20.5, 70.0)], record_end_s=99.0)
    cap.write_capacity(tl, tmp_path)
    assert cap.read_capacity(tmp_path) == tl
    assert cap.read_capacity(tmp_path / "nowhere") is None
    (tmp_path / cap.CAPACITY_FILE).write_text('{"version": 1, "clock": "unix_s", "basis": "simulator", '
                                              '"services": {"x": {"vcpu": 1}}}')
    with pytest.raises(ValueError, match=r"capacity.json: services.x lacks fields \['memory_gb',"):
        cap.read_capacity(tmp_path)


# ------------------------------------------------------------------------------------ policy bill
@pytest.fixture(scope="module")
def smoke_log(tmp_path_factory):
    params = load_params("smoke")
    out = tmp_path_factory.mktemp("smoke")
    res = simulate.simulate(params, 42)
    simulate.write_jsonl(res.rows, out)
    simulate.write_capacity(res.model, params, out)
    reqs = ingest(params, out).requests
    pairs, _ = pair(add_costs(reqs, params), params)
    return params, reqs, pairs, cap.capacity_for(params, out)


def test_policy_bill_of_always_lambda_has_no_ecs_or_alb_line(smoke_log) -> None:
    params, reqs, pairs, tl = smoke_log
    log_bill = billing.bill(reqs, params, tl)
    lam = billing.policy_bill(pairs, np.ones(len(pairs), bool), reqs, params, tl)
    assert lam.lines and {x.platform for x in lam.lines} == {"lambda"}
    assert not {x.item for x in lam.lines} & {"fargate_vcpu", "fargate_memory", "alb_hours", "alb_lcu"}
    assert lam.requests == len(pairs) and lam.kind == "policy" and billing.OPEN_LOOP in lam.notes
    log_lambda = sum(x.usd for x in log_bill.lines if x.platform == "lambda")
    assert math.isclose(lam.total_usd, log_lambda, rel_tol=1e-12)      # every Lambda attempt is in a pair
    ecs = billing.policy_bill(pairs, np.zeros(len(pairs), bool), reqs, params, tl)
    assert {x.platform for x in ecs.lines} == {"ecs"}
    assert math.isclose(ecs.total_usd, sum(x.usd for x in log_bill.lines if x.platform == "ecs"), rel_tol=1e-12)


def test_policy_bill_bills_only_services_that_received_a_request(smoke_log) -> None:
    params, reqs, pairs, tl = smoke_log
    light_to_ecs = (pairs["workload_type"].astype(str) != LIGHT).to_numpy()
    b = billing.policy_bill(pairs, light_to_ecs, reqs, params, tl)
    assert {x.workload for x in b.lines if x.item.startswith("fargate")} == {LIGHT}
    sessions = set(pairs["run_id"].astype(str))
    assert {x.session for x in b.lines if x.item == "alb_hours"} == sessions
    one = pairs["run_id"].astype(str) == sorted(sessions)[0]
    part = billing.policy_bill(pairs[one.to_numpy()], light_to_ecs[one.to_numpy()], reqs, params, tl)
    assert {x.session for x in part.lines} == {sorted(sessions)[0]}
    with pytest.raises(ValueError, match="one per pair"):
        billing.policy_bill(pairs, light_to_ecs[:-1], reqs, params, tl)
