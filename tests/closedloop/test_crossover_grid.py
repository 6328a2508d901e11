"""The crossover grid (hybridopt.closedloop.grid): payload points, the tasks of a profile, the
results frame in the interface's columns, results reused or recomputed, wrong grid parameters."""

from __future__ import annotations

import pytest
from distributed import Client, LocalCluster
from hybridopt.closedloop import grid
from hybridopt.params import ParamsError, load_params


def fake_cell(params, workload_type, rate_rps, payload_size_kb, ecs_tasks, ecs_workers, policy, seed, duration_s):
    """A stand-in cell with the interface's row: Lambda's objective grows with the payload, ECS's with
    the rate over its capacity (enough to draw a map, nothing about the platforms)."""
    lam = 0.2 * payload_size_kb / 5.0
    ecs = 0.05 * rate_rps / (ecs_tasks * ecs_workers)
    obj = {"always_lambda": lam, "always_ecs": ecs, "hybrid": min(lam, ecs) * 1.05}[policy] + 0.001 * seed
    if rate_rps > 10 and payload_size_kb > 5 and policy == "hybrid":
        raise RuntimeError("hybrid broke here")
    return {"policy_detail": "threshold 2" if policy == "hybrid" else "", "requests": int(rate_rps * duration_s),
            "bill_usd_per_1k": obj, "p50_ms": 100.0, "p95_ms": 200.0, "p99_ms": 300.0, "failure_rate": 0.0,
            "objective_usd_per_1k": obj}


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as c:
        yield c


def test_payload_points() -> None:
    assert grid.payload_points([1, 5, 10], 0) == [1, 5, 10]
    assert grid.payload_points([10, 1, 5], 1) == [1, 2.24, 5, 7.07, 10]
    assert grid.payload_points([1024, 2048], 2) == [1024, 1290, 1630, 2048]


def test_smoke_tasks() -> None:
    params = load_params("smoke")
    tasks = grid.crossover_tasks(params)
    g = params.closed_loop.crossover
    assert len(tasks) == 4 * 2 * 1 * 3 * 1                          # sizes x rates x capacities x policies x seeds
    assert {t["workload_type"] for t in tasks} == {"lightweight_api"}
    assert {t["payload_size_kb"] for t in tasks} == {0.5, 1.0, 5.0, 10.0}
    assert {(t["ecs_tasks"], t["ecs_workers"]) for t in tasks} == {(1, 2)}
    assert {t["duration_s"] for t in tasks} == {g.duration_s}
    assert set(tasks[0]) == {"workload_type", "rate_rps", "payload_size_kb", "ecs_tasks", "ecs_workers", "policy",
                             "seed", "duration_s"}


def test_default_grid_size() -> None:
    params = load_params("full")
    # 4 workloads: 4+3, 5+4, 4+3, 4+3 payload points; 7 rates; 3 capacities; 3 policies; 3 seeds
    assert len(grid.crossover_tasks(params)) == (7 + 9 + 7 + 7) * 7 * 3 * 3 * 3


def test_unknown_workload_and_bad_capacity() -> None:
    with pytest.raises(ParamsError, match="closed_loop.crossover.workloads.*nope"):
        grid.crossover_tasks(load_params("smoke", overrides={"closed_loop": {"crossover": {"workloads": ["nope"]}}}))
    with pytest.raises(ParamsError, match="capacities.*'2by2'"):
        load_params("smoke", overrides={"closed_loop": {"crossover": {"capacities": ["2by2"]}}})
    with pytest.raises(ParamsError, match="rates"):
        load_params("smoke", overrides={"closed_loop": {"crossover": {"rates_rps": [0, 5]}}})


def test_run_reuse_and_frame(client, tmp_path) -> None:
    params = load_params("smoke")
    run = grid.run_crossover(params, client=client, cell=fake_cell, out=tmp_path, progress=False)
    df = run.frame
    assert list(df.columns) == [*grid.FRAME_COLUMNS, "duration_s", "cpu_s"]   # the interface, then the rest
    assert len(df) == 24 and set(df["capacity"]) == {"1x2"}
    broke = df[df["status"] == "failed"]
    assert len(broke) == 1 and set(broke["policy"]) == {"hybrid"} and broke["error"].str.contains("hybrid broke").all()
    assert (tmp_path / grid.RESULTS_FILE).is_file() and run.summary["status_counts"]["failed"] == 1
    again = grid.crossover_results(params, out=tmp_path, client=client, cell=fake_cell, progress=False)
    assert again.reused and len(again.frame) == 24
    other = load_params("smoke", overrides={"closed_loop": {"crossover": {"seeds": [1, 2]}}})
    assert grid.load_crossover(other, tmp_path) is None                  # another grid: not reused
    more = grid.crossover_results(other, out=tmp_path, client=client, cell=fake_cell, progress=False)
    assert not more.reused and len(more.frame) == 48
    assert (more.summary["cached"], more.summary["computed"]) == (23, 25)   # seed 1's ok tasks reused: the grid is not in the key
    assert grid.cache_key(other) == grid.cache_key(params) and other.hash != params.hash
    replay = load_params("smoke", overrides={"closed_loop": {"replay": {"seeds": [5]}}})
    assert grid.cache_key(replay) == grid.cache_key(params)               # another command's block
    priced = load_params("smoke", overrides={"decision": {"objective": {"max_failure": 0.05}}})
    assert grid.cache_key(priced) != grid.cache_key(params)               # anything else in params: another key
