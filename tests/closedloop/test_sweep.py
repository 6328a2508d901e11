"""The Dask sweep engine (hybridopt.closedloop.sweep): rows and their schema, the cache (hits, keys,
force, failures not cached), failures and over-budget tasks recorded, progress, an interrupted sweep
keeping what finished. Fast tests run on an in-process LocalCluster (two single-threaded workers);
the slow ones on worker processes."""

from __future__ import annotations

import json
import os
import time

import dask
import pytest
from distributed import Client, LocalCluster
from hybridopt.closedloop import sweep
from hybridopt.closedloop.sweep import ENGINE_COLUMNS, SweepError, run_sweep, task_id


# ------------------------------------------------------------------- task functions (run on workers)
def square(context: dict, x: int, seed: int) -> dict:
    """A row from the task's inputs and the context; counts its calls in the context's folder."""
    with open(os.path.join(context["calls"], f"{x}-{seed}-{time.perf_counter_ns()}"), "w"):
        pass
    return {"y": x * x + context["offset"], "seed_echo": seed}


def fails_on_three(context: dict, x: int, seed: int) -> dict:
    if x == 3:
        raise ValueError(f"no good: x={x}")
    return {"y": x}


def spins_on_two(context: dict, x: int, seed: int) -> dict:
    """x == 2 loops in Python for 30 s and swallows every Exception it sees: only the budget stops it."""
    if x == 2:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 30:
            try:
                sum(range(1000))
            except Exception:  # noqa: BLE001 - the point: a task's own handler does not stop the budget
                pass
    return {"y": x}


def not_a_mapping(context: dict, x: int, seed: int) -> list:
    return [x]


def dies_on_one(context: dict, x: int, seed: int) -> dict:
    if x == 1:
        os._exit(3)
    return {"y": x}


TASKS = [{"x": x, "seed": 7} for x in range(5)]


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as c:
        yield c


@pytest.fixture
def ctx(tmp_path):
    calls = tmp_path / "calls"
    calls.mkdir()
    return {"calls": str(calls), "offset": 100}


def _calls(ctx: dict) -> int:
    return len(os.listdir(ctx["calls"]))


# ----------------------------------------------------------------------------------------- tests
def test_rows_schema_and_order(client, ctx, tmp_path) -> None:
    res = run_sweep(square, TASKS, ctx, "k1", tmp_path / "cache", budget_s=30, client=client, progress=False)
    df = res.frame
    assert list(df.columns) == ["x", "seed", "y", "seed_echo", *ENGINE_COLUMNS]
    assert df["x"].tolist() == [0, 1, 2, 3, 4]                     # the task order, whatever finished first
    assert df["y"].tolist() == [100, 101, 104, 109, 116]
    assert (df["status"] == "ok").all() and (df["error"] == "").all() and (df["wall_s"] >= 0).all()
    assert (df["cpu_s"] >= 0).all()
    assert df["task_id"].tolist() == [task_id("k1", sweep.function_name(square), t) for t in TASKS]
    assert res.counts == {"ok": 5, "failed": 0, "over_budget": 0}
    assert (res.tasks, res.cached, res.computed, res.missing, res.interrupted) == (5, 0, 5, 0, False)
    assert res.workers == 2


def test_cache_hit_key_and_force(client, ctx, tmp_path) -> None:
    cache = tmp_path / "cache"
    first = run_sweep(square, TASKS, ctx, "k1", cache, budget_s=30, client=client, progress=False)
    assert _calls(ctx) == 5 and len(list(cache.glob("*.json"))) == 5
    again = run_sweep(square, TASKS, ctx, "k1", cache, budget_s=30, client=client, progress=False)
    assert (again.cached, again.computed) == (5, 0) and _calls(ctx) == 5       # nothing ran
    assert again.frame.equals(first.frame)                                     # the cached rows, timings included
    more = run_sweep(square, TASKS + [{"x": 9, "seed": 7}, {"x": 0, "seed": 8}], ctx, "k1", cache, budget_s=30,
                     client=client, progress=False)
    assert (more.cached, more.computed) == (5, 2) and _calls(ctx) == 7        # a new x and a new seed ran
    other = run_sweep(square, TASKS, ctx, "k2", cache, budget_s=30, client=client, progress=False)
    assert (other.cached, other.computed) == (0, 5)                            # another params hash: no hit
    forced = run_sweep(square, TASKS, ctx, "k1", cache, budget_s=30, client=client, progress=False, force=True)
    assert (forced.cached, forced.computed) == (0, 5) and _calls(ctx) == 17


def test_broken_cache_entry_is_recomputed(client, ctx, tmp_path) -> None:
    cache = tmp_path / "cache"
    run_sweep(square, TASKS, ctx, "k1", cache, budget_s=30, client=client, progress=False)
    tid = task_id("k1", sweep.function_name(square), TASKS[2])
    (cache / f"{tid}.json").write_text('{"task_id": "')                        # half-written
    res = run_sweep(square, TASKS, ctx, "k1", cache, budget_s=30, client=client, progress=False)
    assert (res.cached, res.computed) == (4, 1)
    assert json.loads((cache / f"{tid}.json").read_text())["y"] == 104


def test_failure_recorded_not_cached_and_retried(client, ctx, tmp_path) -> None:
    cache = tmp_path / "cache"
    res = run_sweep(fails_on_three, TASKS, ctx, "k", cache, budget_s=30, client=client, progress=False)
    bad = res.frame[res.frame["x"] == 3].iloc[0]
    assert bad["status"] == "failed" and "ValueError: no good: x=3" in bad["error"]
    assert "fails_on_three" in bad["error"]                                   # the traceback's last lines
    assert bad["task_id"] and bad["seed"] == 7 and bad["wall_s"] >= 0 and bad.isna()["y"]
    assert len(res.frame) == 5 and res.counts == {"ok": 4, "failed": 1, "over_budget": 0}
    assert len(list(cache.glob("*.json"))) == 4
    again = run_sweep(fails_on_three, TASKS, ctx, "k", cache, budget_s=30, client=client, progress=False)
    assert (again.cached, again.computed) == (4, 1) and again.counts["failed"] == 1


def test_not_a_mapping_is_a_failure(client, ctx, tmp_path) -> None:
    res = run_sweep(not_a_mapping, TASKS[:2], ctx, "k", None, budget_s=30, client=client, progress=False)
    assert (res.frame["status"] == "failed").all()
    assert res.frame["error"].str.contains("expected a mapping").all()


def test_over_budget_stopped_and_recorded(client, ctx, tmp_path) -> None:
    t0 = time.perf_counter()
    res = run_sweep(spins_on_two, TASKS, ctx, "k", tmp_path / "cache", budget_s=1.0, client=client, progress=False)
    assert time.perf_counter() - t0 < 20                                        # stopped, not 30 s
    slow = res.frame[res.frame["x"] == 2].iloc[0]
    assert slow["status"] == "over_budget" and "budget_s 1" in slow["error"]
    assert 1.0 <= slow["wall_s"] < 10
    assert res.counts == {"ok": 4, "failed": 0, "over_budget": 1}
    # the worker thread is healthy afterwards: the same workers run another sweep
    after = run_sweep(square, TASKS, ctx, "k", None, budget_s=30, client=client, progress=False)
    assert after.counts["ok"] == 5


def test_run_task_directly_over_budget() -> None:
    row = sweep.run_task(spins_on_two, {}, {"x": 2, "seed": 1}, "tid", budget_s=0.3)
    assert row["status"] == "over_budget" and row["task_id"] == "tid" and row["x"] == 2


def test_progress_bar_fills(client, ctx, tmp_path, capsys) -> None:
    cache = tmp_path / "cache"
    run_sweep(square, TASKS[:2], ctx, "k", cache, budget_s=30, client=client, progress=True, description="grid")
    run_sweep(square, TASKS, ctx, "k", cache, budget_s=30, client=client, progress=True, description="grid")
    err = capsys.readouterr().err
    assert "grid: 100%" in err and "2/2" in err and "5/5" in err
    assert "2/5" in err                                                        # the second bar starts at the cache


def test_interrupted_sweep_keeps_finished_rows(client, ctx, tmp_path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    real_put = sweep.Cache.put
    seen: list[int] = []

    def put_then_interrupt(self, row):
        real_put(self, row)
        seen.append(1)
        if len(seen) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(sweep.Cache, "put", put_then_interrupt)
    res = run_sweep(square, TASKS, ctx, "k", cache, budget_s=30, client=client, progress=False)
    assert res.interrupted and len(res.frame) == 2 and res.missing == 3
    monkeypatch.setattr(sweep.Cache, "put", real_put)
    rest = run_sweep(square, TASKS, ctx, "k", cache, budget_s=30, client=client, progress=False)
    assert (rest.cached, rest.computed, rest.interrupted) == (2, 3, False) and len(rest.frame) == 5


def test_task_ids_are_stable_and_distinct() -> None:
    a = task_id("h", "m.f", {"x": 1, "seed": 2, "w": "api"})
    assert a == task_id("h", "m.f", {"w": "api", "seed": 2, "x": 1})
    assert len({a, task_id("h", "m.f", {"x": 1, "seed": 3, "w": "api"}), task_id("g", "m.f", {"x": 1, "seed": 2, "w": "api"}),
                task_id("h", "m.g", {"x": 1, "seed": 2, "w": "api"})}) == 4


def test_bad_tasks_and_budget_refused(ctx, tmp_path) -> None:
    with pytest.raises(SweepError, match="x=.*list"):
        run_sweep(square, [{"x": [1], "seed": 1}], ctx, "k", None, budget_s=1, progress=False)
    with pytest.raises(SweepError, match="same task twice"):
        run_sweep(square, [{"x": 1, "seed": 1}, {"seed": 1, "x": 1}], ctx, "k", None, budget_s=1, progress=False)
    with pytest.raises(SweepError, match="budget_s"):
        run_sweep(square, TASKS, ctx, "k", None, budget_s=0, progress=False)
    with pytest.raises(SweepError, match="not finite"):
        run_sweep(square, [{"x": float("nan"), "seed": 1}], ctx, "k", None, budget_s=1, progress=False)


def test_unreachable_scheduler_is_named(ctx, monkeypatch) -> None:
    monkeypatch.setattr(sweep, "CONNECT_TIMEOUT", "1s")
    with pytest.raises(SweepError, match="tcp://127.0.0.1:9"):
        run_sweep(square, TASKS, ctx, "k", None, budget_s=1, scheduler="tcp://127.0.0.1:9", progress=False)


@pytest.mark.slow
def test_worker_processes_and_a_dying_worker(ctx, tmp_path) -> None:
    """On worker processes (the default LocalCluster): a task that kills its worker is recorded failed
    once Dask gives up on it; every task has its row (a task waiting on the same worker when it died
    may be failed with it: Dask counts it as suspicious too), the rest finish ok; a rerun tries the
    failed ones again."""
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        res = run_sweep(dies_on_one, TASKS, ctx, "k", tmp_path / "cache", budget_s=60, n_workers=2, progress=False)
    assert res.workers == 2 and len(res.frame) == 5 and res.counts["over_budget"] == 0
    dead = res.frame[res.frame["x"] == 1].iloc[0]
    assert dead["status"] == "failed" and "KilledWorker" in dead["error"]
    failed = res.frame[res.frame["status"] == "failed"]
    assert failed["error"].str.contains("KilledWorker").all() and res.counts["ok"] >= 3
    again = run_sweep(dies_on_one, TASKS, ctx, "k", tmp_path / "cache", budget_s=60, n_workers=2, progress=False)
    assert again.computed == len(failed)
