"""fit_marginal on a simulated smoke log: the tables are the medians of the log, the prices and
capacities come from params with their sources, and the result round-trips for the router."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hybridopt.data.ingest import ingest
from hybridopt.decision.marginal_fit import fit_marginal
from hybridopt.decision.objective import MarginalCost
from hybridopt.emulation import simulate
from hybridopt.params import load_params


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    params = load_params("smoke")
    out = tmp_path_factory.mktemp("smoke")
    simulate.write_jsonl(simulate.simulate(params, 7).rows, out)
    return params, ingest(params, out).requests


def test_tables_are_the_medians_of_successful_attempts(smoke) -> None:
    params, reqs = smoke
    m = fit_marginal(reqs, params)
    ok = reqs["error"].isna()
    for w, wl in params.workloads.items():
        lam = reqs[(reqs["platform"] == "lambda") & (reqs["workload_type"] == w) & ok]
        want = np.ceil(lam["billed_duration_ms"]).groupby(lam["target_payload_size_kb"]).median()
        assert [k for k, _ in m.lambda_billed_ms[w]] == want.index.tolist()
        assert np.allclose([x for _, x in m.lambda_billed_ms[w]], want.to_numpy())
        ecs = reqs[(reqs["platform"] == "ecs") & (reqs["workload_type"] == w) & ok]
        want_e = (ecs["execution_time_ms"] + 100.0).groupby(ecs["target_payload_size_kb"]).median()
        assert np.allclose([x for _, x in m.ecs_service_ms[w]], want_e.to_numpy())
        assert m.lambda_memory_mb[w] == wl.lambda_memory_mb
        assert m.ecs_capacity[w] == wl.fargate.min_tasks * 2
        price_s = (wl.fargate.vcpu * 0.04048 + wl.fargate.memory_gb * 0.004445) / 3600
        assert math.isclose(m.ecs_task_usd_per_s[w], price_s)
    # the heavy workload's 8 and 10 MB never succeed on Lambda (413): no table point there
    assert [k for k, _ in m.lambda_billed_ms["heavy_processing"]] == [3072.0, 5120.0]
    assert not any(m.ecs_autoscaling.values()) and m.ecs_slots_per_task == 2 and m.gateway == "rest" and m.alb_usd_per_gb == 0.008
    assert MarginalCost.from_dict(m.to_dict()) == m


def test_sources_name_every_price_and_table(smoke) -> None:
    params, reqs = smoke
    m = fit_marginal(reqs, params)
    need = {"lambda_gb_s_usd", "lambda_request_usd", "gateway_request_usd", "alb_usd_per_gb", "ecs_task_usd_per_s",
            "ecs_capacity", "ecs_autoscaling", "lambda_billed_ms", "lambda_memory_mb", "ecs_service_ms"}
    assert need <= set(m.sources)
    assert m.sources["lambda_gb_s_usd"] == params.prices.lambda_gb_s_usd.source
    assert params.prices.fargate_vcpu_hour_usd.source in m.sources["ecs_task_usd_per_s"]


def test_autoscaling_and_http_api_follow_params(smoke) -> None:
    _, reqs = smoke
    p = load_params("smoke", overrides={"cost": {"api_gateway": "http"},
                                        "testbed": {"fargate": {"autoscaling": {"enabled": {"value": True}}}},
                                        "workloads": {"medium_processing": {"fargate": {"max_tasks": 3}}}})
    m = fit_marginal(reqs, p)
    assert m.ecs_autoscaling == {"lightweight_api": False, "thumbnail_processing": False, "medium_processing": True,
                                 "heavy_processing": False} and m.gateway == "http"
    assert m.gateway_request_usd == p.prices.api_gateway_http_request_usd.value


def test_a_workload_without_a_success_is_named(smoke) -> None:
    params, reqs = smoke
    drop = (reqs["platform"] == "ecs") & (reqs["workload_type"] == "thumbnail_processing")
    with pytest.raises(ValueError, match="no successful ECS attempt of workload 'thumbnail_processing'"):
        fit_marginal(reqs[~drop.to_numpy()], params)
