"""The closed-loop event loop and its send-time policies on the smoke profile's platform model."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hybridopt.closedloop import crossover as xo
from hybridopt.closedloop.loop import run_closed_loop, run_static
from hybridopt.closedloop.metrics import over_seeds, run_metrics, t_interval
from hybridopt.closedloop.policies import Fixed, Threshold
from hybridopt.decision.bill import bill
from hybridopt.decision.load_frame import load_features_at, seconds
from hybridopt.emulation.simulate import DEFAULT_START_DATE
from hybridopt.params import load_params

WINDOWS = (10.0, 60.0)


@pytest.fixture(scope="module")
def smoke():
    return load_params("smoke")


def _arrivals(params, times, workloads, kb):
    base = pd.Timestamp(pd.Timestamp(DEFAULT_START_DATE).tz_localize(params.tz))
    t = np.asarray(times, dtype=np.float64)
    return pd.DataFrame({"t_s": t, "workload_type": workloads, "payload_size_kb": kb, "time_window": "midday",
                         "load_pattern": "medium_load", "run_id": "cl-test",
                         "sent_at": base + pd.to_timedelta(t, unit="s")})


def test_a_request_routed_to_ecs_queues_behind_the_others(smoke) -> None:
    """One task with one worker: of four medium requests sent 10 ms apart, each waits for those that
    reached the service before it, so their latencies (in that order) grow by at least half a
    service time each; with four workers none waits."""
    t = 12 * 3600.0 + np.arange(4) * 0.01
    lat = {}
    for workers in (1, 4):
        p = xo.with_capacity(smoke, 1, workers)
        run = run_closed_loop(p, _arrivals(p, t, "medium_processing", 100.0), Fixed("always_ecs", "", np.zeros(4, bool)),
                              3, DEFAULT_START_DATE)
        assert (run.rows["platform"] == "ecs").all() and run.rows["error"].isna().all()
        lat[workers] = np.sort(run.rows["total_ms"].to_numpy())
        service_ms = run.rows["execution_time_ms"].to_numpy()
    assert np.all(np.diff(lat[1]) > 0.5 * service_ms.min())       # each waits for the one before
    assert lat[1][-1] > 2.5 * np.median(lat[4])
    assert lat[4].max() < 1.5 * lat[4].min()


def _mixed(params, seed, n=1500, rate=20.0):
    rng = np.random.default_rng(seed)
    t = 12 * 3600.0 + np.cumsum(rng.exponential(1 / rate, n))
    w = rng.choice(["lightweight_api", "thumbnail_processing", "heavy_processing"], n)
    kb = np.where(w == "heavy_processing", 3072.0, np.where(w == "thumbnail_processing", 200.0, 1.0))
    return _arrivals(params, t, w, kb)


def test_load_seen_by_the_router_is_the_load_the_loop_made(smoke) -> None:
    """The threshold router's in-flight counts at every arrival equal those the decide stage's log
    code computes from the run's own rows (sends and completions), and the tracker ends empty."""
    p = xo.with_capacity(smoke, 1, 2)
    arr = _mixed(p, 1)
    pol = Threshold("threshold:3", {w: 3 for w in p.workloads}, WINDOWS)
    run = run_closed_loop(p, arr, pol, 4, DEFAULT_START_DATE)
    rows = run.rows.assign(pair_id=None)
    ref = load_features_at(rows, seconds(rows["sent_at"]), rows["workload_type"].to_numpy(dtype=object), WINDOWS,
                           float(p.audit.client_timeout_s))
    for col in ("in_flight_lambda", "in_flight_ecs", "workload_in_flight_ecs", "workload_in_flight_lambda"):
        assert np.array_equal(ref[col].to_numpy(), run.load[col].to_numpy()), col
    assert run.load["in_flight_ecs"].max() >= 3
    assert pol.in_flight() == {"lambda": 0, "ecs": 0} and pol.completions["unknown"] == 0
    assert pol.completions["reported"] == len(arr)
    assert run.model.out_of_order == 0


def test_threshold_policy_switches_at_its_limit(smoke) -> None:
    p = xo.with_capacity(smoke, 1, 2)
    arr = _mixed(p, 2)
    for limit in (1, 4):
        run = run_closed_loop(p, arr, Threshold("t", {w: limit for w in p.workloads}, WINDOWS), 4, DEFAULT_START_DATE)
        below = (run.load["workload_in_flight_ecs"] < limit).to_numpy()
        assert np.array_equal(run.rows["platform"].to_numpy() == "ecs", below)
        assert below.any() and (~below).any()
    never = run_closed_loop(p, arr, Threshold("t", {w: 0 for w in p.workloads}, WINDOWS), 4, DEFAULT_START_DATE)
    assert (never.rows["platform"] == "lambda").all()


def test_bill_is_the_decide_stage_bill_on_the_runs_own_timeline(smoke) -> None:
    p = xo.with_capacity(smoke, 2, 2)
    arr = _mixed(p, 3, n=600)
    run = run_closed_loop(p, arr, Threshold("t", {w: 2 for w in p.workloads}, WINDOWS), 5, DEFAULT_START_DATE)
    m = run_metrics(p, run)
    ref = bill(run.rows, p, run.timeline)
    assert run.timeline.basis == "simulator" and m["capacity_basis"] == "simulator"
    assert m["bill_usd"] == pytest.approx(ref.total_usd, rel=1e-12)
    assert m["bill_usd_per_1k"] == pytest.approx(ref.total_usd / len(arr) * 1000, rel=1e-12)
    assert {s.workload: len(s.tasks) for s in run.timeline.services.values()}["heavy_processing"] == 2
    lat = run.rows["total_ms"].dropna().to_numpy()
    assert m["p95_ms"] == pytest.approx(np.percentile(lat, 95))
    assert m["failure_rate"] == pytest.approx(run.rows["error"].notna().mean())


def test_ci_over_seeds() -> None:
    mean, lo, hi = t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)                      # t(0.975, 2) x sd 1 / sqrt(3)
    assert mean == 2.0 and lo == pytest.approx(2 - half) and hi == pytest.approx(2 + half)
    assert math.isnan(t_interval([5.0])[1])
    runs = pd.DataFrame({"policy": ["a"] * 3 + ["b"] * 2, "seed": [1, 2, 3, 1, 2],
                         "bill_usd_per_1k": [1.0, 2.0, 3.0, 4.0, 4.0]})
    out = over_seeds(runs, ["policy"], ["bill_usd_per_1k"]).set_index("policy")
    assert out.loc["a", "seeds"] == 3 and out.loc["a", "bill_usd_per_1k_ci_high"] == pytest.approx(2 + half)
    assert out.loc["b", "bill_usd_per_1k_ci_low"] == pytest.approx(4.0)


def test_crossover_cell_row(smoke) -> None:
    """One row of the sweep frame, reproducible from its seed; always-Lambda's bill is the decide
    stage's bill (no ALB to prorate); the hybrid spills to Lambda once both workers are taken."""
    rows = {pol: xo.crossover_cell(smoke, "thumbnail_processing", 5.0, 200.0, 1, 2, pol, 1, 120.0)
            for pol in xo.POLICIES}
    for pol, r in rows.items():
        assert tuple(r) == xo.FRAME_COLUMNS and r["status"] == "ok" and r["policy"] == pol
        assert r["capacity"] == "1x2" and r["requests"] > 400
    again = xo.crossover_cell(smoke, "thumbnail_processing", 5.0, 200.0, 1, 2, "hybrid", 1, 120.0)
    assert {k: v for k, v in again.items() if k != "wall_s"} == {k: v for k, v in rows["hybrid"].items() if k != "wall_s"}
    assert len({r["task_id"] for r in rows.values()}) == 3
    assert rows["always_ecs"]["p95_ms"] > 2 * rows["hybrid"]["p95_ms"]          # the queue the hybrid avoids
    p = xo.with_capacity(smoke, 1, 2)
    arr = xo.poisson_arrivals(p, "thumbnail_processing", 5.0, 200.0, 1, 120.0, "x")
    run = run_static(p, arr, "lambda", 1, DEFAULT_START_DATE)           # the path a static cell takes
    assert rows["always_lambda"]["bill_usd_per_1k"] == pytest.approx(bill(run.rows, p, run.timeline).avg_usd_per_1k_requests)
    with pytest.raises(ValueError, match="workload_type"):
        xo.crossover_cell(smoke, "nope", 5.0, 200.0, 1, 2, "hybrid", 1, 60.0)
    with pytest.raises(ValueError, match="policy"):
        xo.crossover_cell(smoke, "thumbnail_processing", 5.0, 200.0, 1, 2, "sometimes", 1, 60.0)


@pytest.mark.parametrize("capacity,limit", [((1, 2), 2), ((2, 2), 1), ((1, 1), 0)])
def test_the_crossovers_lean_policies_route_as_the_tracked_ones(capacity: tuple[int, int], limit: int) -> None:
    """Static and InFlightThreshold drop the arrival windows and the load record, not a decision: every
    row of the run is the same as with Fixed and Threshold (a queue forms at this rate, so the
    threshold rule switches platform many times)."""
    from hybridopt.closedloop.policies import InFlightThreshold, Static

    smoke = load_params("smoke")
    p = xo.with_capacity(smoke, *capacity)
    w = "medium_processing"
    arr = xo.poisson_arrivals(p, w, 8.0, 3072.0, 3, 90.0, "x")
    n = len(arr)
    pairs = [(Fixed("a", "d", np.ones(n, dtype=bool), WINDOWS), Static("a", "d", "lambda")),
             (Fixed("e", "d", np.zeros(n, dtype=bool), WINDOWS), Static("e", "d", "ecs")),
             (Threshold("h", {w: limit}, WINDOWS), InFlightThreshold("h", {w: limit}))]
    for tracked, lean in pairs:
        a = run_closed_loop(p, arr, tracked, 3, DEFAULT_START_DATE)
        b = run_closed_loop(p, arr, lean, 3, DEFAULT_START_DATE)
        pd.testing.assert_frame_equal(a.rows, b.rows)
        assert b.load.isna().all().all()
    share = (b.rows["platform"] == "lambda").mean()
    assert (0.0 < share < 1.0) if limit > 0 else share == 1.0
    with pytest.raises(ValueError, match="platform"):
        Static("x", "d", "fargate")
    with pytest.raises(ValueError, match=">= 0"):
        InFlightThreshold("x", {w: -1})


def test_static_policies_run_on_the_batch_path_as_another_sample_of_the_same_model() -> None:
    """A policy that reads no state: run_static (the batch path) and the closed loop give the same
    requests, platform and capacity, and latency distributions that agree within sampling noise
    (different random numbers, the same model); the uplink case keeps the closed loop."""
    from hybridopt.closedloop.policies import Static

    smoke = load_params("smoke")
    p = xo.with_capacity(smoke, 1, 2)
    w = "thumbnail_processing"
    arr = xo.poisson_arrivals(p, w, 6.0, 200.0, 5, 600.0, "x")
    for platform in ("lambda", "ecs"):
        a = run_closed_loop(p, arr, Static("s", "d", platform), 5, DEFAULT_START_DATE)
        b = run_static(p, arr, platform, 5, DEFAULT_START_DATE)
        assert len(b.rows) == len(a.rows) == len(arr) and set(b.rows["platform"]) == {platform}
        assert list(b.rows.columns) == list(a.rows.columns)
        assert (b.rows["sent_at"].to_numpy() == a.rows["sent_at"].to_numpy()).all()
        assert b.load.isna().all().all() and set(b.timeline.services) == set(a.timeline.services)
        for q in (0.5, 0.95):
            qa, qb = a.rows["total_ms"].quantile(q), b.rows["total_ms"].quantile(q)
            assert abs(qb / qa - 1) < 0.1, (platform, q, qa, qb)
        assert abs(b.rows["error"].notna().mean() - a.rows["error"].notna().mean()) < 0.03
    with pytest.raises(ValueError, match="platform"):
        run_static(p, arr, "both", 5, DEFAULT_START_DATE)
    assert not xo.shared_uplink(p)
    fitted = p.model_copy(update={"testbed": p.testbed.model_copy(update={"client_preset": "fitted"})})
    assert xo.shared_uplink(fitted)
    row = xo.crossover_cell(fitted, w, 2.0, 200.0, 1, 2, "always_lambda", 1, 30.0)
    assert row["status"] == "ok" and row["requests"] > 30
