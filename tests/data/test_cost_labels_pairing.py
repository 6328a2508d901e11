"""Cost model and labels against hand-computed numbers; pairing (direct and time-matched)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hybridopt.data.cost import add_costs
from hybridopt.data.ingest import ingest
from hybridopt.data.labels import add_labels
from hybridopt.data.pairing import pair

from tests.conftest import contract_line, write_jsonl


def _requests(tmp_path, params, records):
    write_jsonl(tmp_path / "logs" / "run.jsonl", records)
    result = ingest(params, tmp_path / "logs")
    assert result.ledger.quarantined == 0, result.ledger.as_dict()["quarantine_reasons"]
    return result.requests


def _over(params, **over):
    return params.model_copy(update={"cost": params.cost.model_copy(update=over)})


# ------------------------------------------------------------------------------------------- Lambda
def test_lambda_cost_warm_by_hand(tmp_path, params):
    df = _requests(tmp_path, params, [contract_line(billed_duration_ms=None, execution_time_ms=80.2)])
    # ceil(80.2) = 81 ms x 128/1024 GB x $0.0000166667 + $0.2/M + REST $3.5/M
    expected = 0.081 * 0.125 * 0.0000166667 + 0.0000002 + 0.0000035
    assert add_costs(df, params)["cost_usd"].iloc[0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("reported", [332.0, None])
def test_lambda_cost_cold_start_init_switch(tmp_path, params, reported):
    # reported: the REPORT line's Billed Duration (81 ms handler + ceil(250.4) ms INIT);
    # None: rebuilt from the parts, ceil(80.2) + ceil(250.4)
    rec = contract_line(billed_duration_ms=reported, execution_time_ms=80.2, cold_start=True, init_duration_ms=250.4)
    df = _requests(tmp_path, params, [rec])
    with_init = 0.332 * 0.125 * 0.0000166667 + 0.0000037
    without = 0.081 * 0.125 * 0.0000166667 + 0.0000037
    assert add_costs(df, params)["cost_usd"].iloc[0] == pytest.approx(with_init, rel=1e-12)
    assert add_costs(df, _over(params, bill_lambda_init=False))["cost_usd"].iloc[0] == pytest.approx(without,
                                                                                                   rel=1e-12)


def test_lambda_rejected_and_http_api(tmp_path, params):
    recs = [contract_line(request_id="big", http_status=413, error="payload_too_large", total_ms=900.0,
                          execution_time_ms=None, billed_duration_ms=None, target_payload_size_kb=11000.0,
                          actual_payload_size_kb=None),
            contract_line(request_id="thr", http_status=429, error="throttled", execution_time_ms=None,
                          billed_duration_ms=None),
            contract_line(request_id="mb", target_payload_size_kb=1100.0, actual_payload_size_kb=1100.0,
                          execution_time_ms=10.0, billed_duration_ms=None)]
    df = _requests(tmp_path, params, recs)
    c = add_costs(df, params).set_index("request_id")["cost_usd"]
    assert c["big"] == pytest.approx(0.0000035)  # API Gateway billed, Lambda never invoked
    assert c["thr"] == 0.0                        # throttled: nothing billed
    http = add_costs(df, _over(params, api_gateway="http")).set_index("request_id")["cost_usd"]
    # HTTP API meters 512 KB units: 1100 KB = 3 requests
    assert http["mb"] == pytest.approx(0.010 * 0.125 * 0.0000166667 + 0.0000002 + 3 * 0.000001, rel=1e-12)


# ---------------------------------------------------------------------------------------------- ECS
def _ecs(i, minute=0, **over):
    rec = dict(request_id=f"e{i}", pair_id=None, platform="ecs", cold_start=None, billed_duration_ms=None,
               memory_limit_mb=None, instance_id="task-1", sent_at=f"2025-11-23T07:{minute:02d}:{10 + i:02d}+00:00")
    return contract_line(**{**rec, **over})


def test_ecs_amortised_by_hand(tmp_path, params):
    df = _requests(tmp_path, params, [_ecs(i) for i in range(4)])
    task_h = 0.25 * 0.04048 + 0.5 * 0.004445             # lightweight task: 0.25 vCPU, 0.5 GB
    compute = task_h / 60 / 4                               # one task-minute over the 4 requests in it
    alb = 0.0252 / 60 / 4 + 5.1 / 1024 / 1024 * 0.008 / 1.0  # ALB-minute share + processed-bytes LCU
    got = add_costs(df, params)["cost_usd"]
    assert got.tolist() == pytest.approx([compute + alb] * 4, rel=1e-12)
    no_alb = add_costs(df, _over(params, include_alb=False))["cost_usd"]
    assert no_alb.iloc[0] == pytest.approx(compute, rel=1e-12)


def test_ecs_amortised_counts_tasks_and_minutes(tmp_path, params):
    recs = [_ecs(0), _ecs(1, instance_id="task-2"), _ecs(2, minute=1)]
    df = _requests(tmp_path, params, recs)
    c = add_costs(df, _over(params, include_alb=False)).set_index("request_id")["cost_usd"]
    task_min = (0.25 * 0.04048 + 0.5 * 0.004445) / 60
    assert c["e0"] == pytest.approx(2 * task_min / 2)  # two tasks seen, two requests in minute 0
    assert c["e2"] == pytest.approx(task_min)         # alone in minute 1


def test_ecs_marginal_by_hand(tmp_path, params):
    df = _requests(tmp_path, params, [_ecs(0, execution_time_ms=250.0)])
    c = add_costs(df, _over(params, fargate_mode="marginal", include_alb=False))["cost_usd"].iloc[0]
    assert c == pytest.approx((0.25 * 0.04048 + 0.5 * 0.004445) / 3600 * 0.25, rel=1e-12)


# ------------------------------------------------------------------------------------------- labels
def _pairs(rows):
    base = {"lambda_ok": True, "ecs_ok": True}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_labels_by_hand(params):
    p = _pairs([
        # Lambda 20 % faster and 50 % cheaper: all three
        dict(lambda_latency_ms=80, ecs_latency_ms=100, lambda_cost_usd=1e-6, ecs_cost_usd=2e-6),
        # Lambda 5 % faster, much cheaper: faster and cheaper, but not by the 10 % latency margin
        dict(lambda_latency_ms=95, ecs_latency_ms=100, lambda_cost_usd=1e-6, ecs_cost_usd=2e-6),
        # exactly at the margins: 90 ms vs 100 ms, 0.9 vs 1.0: balanced (<=)
        dict(lambda_latency_ms=90, ecs_latency_ms=100, lambda_cost_usd=0.9e-6, ecs_cost_usd=1e-6),
        # slower but cheaper
        dict(lambda_latency_ms=120, ecs_latency_ms=100, lambda_cost_usd=1e-6, ecs_cost_usd=2e-6),
        # equal latency: Lambda is not faster
        dict(lambda_latency_ms=100, ecs_latency_ms=100, lambda_cost_usd=3e-6, ecs_cost_usd=2e-6),
        # ECS failed: the successful Lambda wins everything, whatever the numbers
        dict(lambda_latency_ms=900, ecs_latency_ms=10, lambda_cost_usd=9e-6, ecs_cost_usd=1e-6, ecs_ok=False),
        # Lambda failed
        dict(lambda_latency_ms=10, ecs_latency_ms=900, lambda_cost_usd=1e-9, ecs_cost_usd=1e-6, lambda_ok=False),
        # both failed: no label
        dict(lambda_latency_ms=None, ecs_latency_ms=None, lambda_cost_usd=0, ecs_cost_usd=0, lambda_ok=False,
             ecs_ok=False),
    ])
    out = add_labels(p, params)
    as_list = lambda c: [None if pd.isna(v) else int(v) for v in out[c]]  # noqa: E731
    assert as_list("latency_optimal") == [1, 1, 1, 0, 0, 1, 0, None]
    assert as_list("cost_optimal") == [1, 1, 1, 1, 0, 1, 0, None]
    assert as_list("balanced_optimal") == [1, 0, 1, 0, 0, 1, 0, None]


def test_label_margin_comes_from_params(params):
    p = _pairs([dict(lambda_latency_ms=95, ecs_latency_ms=100, lambda_cost_usd=1e-6, ecs_cost_usd=2e-6)])
    loose = params.model_copy(update={"labels": params.labels.model_copy(update={"latency_margin": 0.02})})
    assert int(add_labels(p, loose)["balanced_optimal"].iloc[0]) == 1


# ------------------------------------------------------------------------------------------ pairing
def _legacy_like(i, platform, second, size=5.0, run="run-a"):
    return contract_line(request_id=f"{platform}-{i}", pair_id=None, platform=platform, run_id=run,
                         source="legacy", target_payload_size_kb=size,
                         sent_at=f"2025-11-23T07:00:{second:06.3f}+00:00", instance_id=None,
                         cold_start=False if platform == "lambda" else None)


def test_time_matching_nearest_one_to_one(tmp_path, params):
    recs = [
        _legacy_like(0, "lambda", 0.0), _legacy_like(1, "lambda", 1.0), _legacy_like(0, "ecs", 0.8),
        _legacy_like(2, "lambda", 10.0), _legacy_like(1, "ecs", 10.2),
        _legacy_like(3, "lambda", 20.0), _legacy_like(2, "ecs", 30.0),               # 10 s apart: too far
        _legacy_like(4, "lambda", 40.0, size=10.0), _legacy_like(3, "ecs", 40.1),    # other payload size
        _legacy_like(5, "lambda", 50.0, run="run-b"), _legacy_like(4, "ecs", 50.0),  # other run
    ]
    df = add_costs(_requests(tmp_path, params, recs), params)
    pairs, report = pair(df, params)
    got = sorted(zip(pairs["lambda_request_id"], pairs["ecs_request_id"]))
    assert got == [("lambda-1", "ecs-0"), ("lambda-2", "ecs-1")]
    m = report["matched"]
    assert (m["pairs"], m["eligible_lambda"], m["eligible_ecs"]) == (2, 6, 5)
    assert m["match_rate"] == pytest.approx(4 / 11)
    assert pairs["gap_s"].tolist() == pytest.approx([0.2, 0.2], abs=1e-6)
    assert set(pairs["pairing"]) == {"matched"}


def test_direct_pairs_and_anomalies(tmp_path, params):
    lam = lambda rid, pid, **o: contract_line(request_id=rid, pair_id=pid, **o)  # noqa: E731
    ecs = lambda rid, pid, **o: contract_line(request_id=rid, pair_id=pid, platform="ecs",  # noqa: E731
                                              cold_start=None, **o)
    recs = [lam("l1", "p1"), ecs("e1", "p1", total_ms=300.0),   # a good pair
            lam("l2", "p2"),                                     # its ECS attempt never logged
            lam("l3", "p3"), lam("l3b", "p3"),                   # two Lambda attempts, no ECS
            lam("l4", "p4"), ecs("e4", "p4", target_payload_size_kb=10.0)]  # context differs
    df = add_costs(_requests(tmp_path, params, recs), params)
    pairs, report = pair(df, params)
    assert pairs["pair_id"].tolist() == ["p1"]
    d = report["direct"]
    assert (d["pairs"], d["pair_ids_with_one_attempt"], d["pair_ids_malformed"],
            d["pairs_with_mismatched_context"]) == (1, 1, 1, 1)
    row = pairs.iloc[0]
    assert (row["lambda_latency_ms"], row["ecs_latency_ms"], row["gap_s"]) == (125.0, 300.0, 0.0)
    assert not math.isnan(row["lambda_cost_usd"]) and not math.isnan(row["ecs_cost_usd"])
