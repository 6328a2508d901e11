"""The load generator's shared uplink (platforms.network.SharedUplink) on hand-made flows, and in the
platform model: absent by default (the model's output unchanged), stretching uploads when saturated."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hybridopt.emulation.simulate import simulate
from hybridopt.params import ParamsError, load_params
from hybridopt.platforms import PlatformModel
from hybridopt.platforms.network import SharedUplink

MB = 1e6   # bytes; 8 Mbit/s carry 1 MB per second


def _src(v):
    return {"value": v, "basis": "assumption", "source": "test value for the uplink"}


def _uplink(capacity_mbps: float) -> dict:
    return {"testbed": {"clients": {"distant": {"uplink": {"enabled": _src(True), "capacity_mbps": _src(capacity_mbps)}}}}}


def test_an_unsaturated_flow_takes_its_idle_link_time_exactly() -> None:
    link = SharedUplink(800.0)                           # 100 MB/s
    f = link.add(3.0, 1 * MB, 0.5, 13.0)                 # alone: 2 MB/s
    g = link.add(3.1, 1 * MB, 0.5, 13.1)
    link.settle()
    assert f.upload_s() == 0.5 and g.upload_s() == 0.5 and not f.stretched and f.complete


def test_a_later_body_stretches_an_upload_in_flight() -> None:
    """1 MB/s link; A (1 MB, 2 MB/s alone) starts at 0, B the same at 0.5 s: A alone gets the whole link
    until 0.5 s (0.5 MB left), then both get 0.5 MB/s: A ends at 1.5 s; B has 0.5 MB left then and the
    whole link: it ends at 2.0 s."""
    link = SharedUplink(8.0)
    a = link.add(0.0, 1 * MB, 0.5, 100.0)
    link.advance(0.25)
    assert link.projected_end_s(a) == pytest.approx(1.0)     # what is known by 0.25 s: A alone
    b = link.add(0.5, 1 * MB, 0.5, 100.0)
    assert link.projected_end_s(a) == pytest.approx(1.5)
    link.settle()
    assert a.end_s == pytest.approx(1.5) and a.upload_s() == pytest.approx(1.5) and a.stretched
    assert b.end_s == pytest.approx(2.0) and b.upload_s() == pytest.approx(1.5)


def test_max_min_fairness_a_slow_flow_keeps_its_own_rate() -> None:
    """1 MB/s link: a slow flow (0.2 MB/s alone) and a fast one (10 MB/s alone) start together; the slow
    one keeps 0.2 MB/s, the fast one gets the other 0.8 MB/s."""
    link = SharedUplink(8.0)
    slow = link.add(0.0, 0.2 * MB, 1.0, 100.0)
    fast = link.add(0.0, 0.8 * MB, 0.08, 100.0)
    link.settle()
    assert slow.upload_s() == 1.0 and not slow.stretched
    assert fast.upload_s() == pytest.approx(1.0) and fast.stretched


def test_a_flow_past_its_deadline_is_dropped_incomplete() -> None:
    link = SharedUplink(8.0)
    flows = [link.add(0.0, 4 * MB, 1.0, 10.0) for _ in range(4)]     # 16 MB at 1 MB/s: 16 s needed
    link.settle()
    for f in flows:
        assert not f.complete and f.end_s == pytest.approx(10.0)
        assert f.upload_s() > 10.0                     # beyond the client's timeout
    assert link.peak_flows == 4


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity must be > 0"):
        SharedUplink(0.0)
    with pytest.raises(ParamsError, match="capacity_mbps"):
        load_params("smoke", overrides=_uplink(-5.0))


def test_a_preset_without_an_uplink_dumps_as_before() -> None:
    p = load_params("smoke")
    assert "uplink" not in p.testbed.client.model_dump(mode="json")
    assert load_params("smoke", overrides=_uplink(50.0)).hash != p.hash


def test_in_the_model_a_saturated_uplink_stretches_uploads_and_times_out_the_large_ones() -> None:
    """Ten 3 MiB Lambda bodies sent together at the distant client's round trip: on a 10 Mbit/s uplink
    they share 1.25 MB/s, so none finishes within the 10 s timeout; on the default (no shared uplink)
    every one has upload_mbps to itself."""
    outcomes = {}
    for name, over in (("alone", {}), ("shared", _uplink(10.0)), ("huge", _uplink(1e7))):
        params = load_params("smoke", overrides=over)
        model = PlatformModel(params.testbed, params.workloads, np.random.default_rng(3))
        pend = [model.submit(0.01 * i, "lambda", "medium_processing", 3 * 1048576) for i in range(10)]
        model.settle()
        outcomes[name] = [model.apply_client_timeout(model.dispatch(p)) for p in sorted(pend, key=lambda p: p.dispatch_at_s)]
    alone = [o for o in outcomes["alone"]]
    assert all(o.error is None for o in alone)
    assert all(o.error == "timeout" for o in outcomes["shared"])
    assert [o.total_ms for o in outcomes["huge"]] == [o.total_ms for o in alone]


def test_the_testbed_sees_a_later_body_push_a_lambda_request_back() -> None:
    params = load_params("smoke", overrides=_uplink(20.0))
    model = PlatformModel(params.testbed, params.workloads, np.random.default_rng(3))
    first = model.submit(0.0, "lambda", "thumbnail_processing", 1048576)
    due_alone = model.due_s(first, 0.0)
    for i in range(5):
        model.submit(0.05 + 0.01 * i, "lambda", "heavy_processing", 4 * 1048576)
    assert model.due_s(first, 0.1) > due_alone + 0.1
    assert math.isfinite(model.due_s(first, 0.1))


def test_a_huge_uplink_leaves_a_simulation_unchanged() -> None:
    base = simulate(load_params("smoke"), seed=5).rows
    huge = simulate(load_params("smoke", overrides=_uplink(1e7)), seed=5).rows
    cols = ["request_id", "error", "upload_ms", "total_ms", "execution_time_ms", "cold_start"]
    assert base[cols].equals(huge[cols])


def test_an_ecs_body_waiting_for_a_worker_leaves_the_uplink_to_the_others() -> None:
    """Six 5 MiB ECS bodies sent together to a service of one task with two workers: four of them wait
    for a worker, and once queued_receive_bytes of each are on the way their client stops sending (TCP
    flow control). A Lambda body sent meanwhile then shares the uplink with two ECS uploads, not six:
    it is faster than in a run whose ECS bodies stay on the link (`ecs_resume_s={}`: one pass, no holds)."""
    import pandas as pd
    from hybridopt.emulation.simulate import run_model

    params = load_params("smoke", overrides=_uplink(40.0))
    t = [0.01 * i for i in range(6)] + [0.5]
    arrivals = pd.DataFrame({"t_s": t, "platform": ["ecs"] * 6 + ["lambda"],
                             "workload_type": ["heavy_processing"] * 6 + ["medium_processing"],
                             "payload_size_kb": [5120.0] * 6 + [3072.0], "time_window": "midday",
                             "load_pattern": "medium_load", "run_id": "r", "sent_at": pd.Timestamp("2025-11-24T06:30Z")})
    held = PlatformModel(params.testbed, params.workloads, np.random.default_rng(3))
    rows = run_model(held, arrivals, "x")
    assert held.holds_ecs_bodies and len(held._ecs_resume_s) == 4      # the four that waited for a worker
    kept = run_model(PlatformModel(params.testbed, params.workloads, np.random.default_rng(3), ecs_resume_s={}),
                     arrivals, "x")
    lam = rows["platform"] == "lambda"
    assert rows.loc[lam, "upload_ms"].item() < 0.8 * kept.loc[lam, "upload_ms"].item()
    # the two ECS bodies a worker took at once upload as before; a huge link holds nobody back either way
    huge = load_params("smoke", overrides=_uplink(1e7))
    a = run_model(PlatformModel(huge.testbed, huge.workloads, np.random.default_rng(3)), arrivals, "x")
    b = run_model(PlatformModel(huge.testbed, huge.workloads, np.random.default_rng(3), ecs_resume_s={}), arrivals, "x")
    assert a[["upload_ms", "total_ms", "error"]].equals(b[["upload_ms", "total_ms", "error"]])
