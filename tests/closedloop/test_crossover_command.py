"""`python -m hybridopt crossover` as a user runs it: the smoke profile's tiny grid with the real
closed-loop cell on a real LocalCluster (worker processes), the rerun from the cache, a running
scheduler given by --scheduler, and wrong arguments answered in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from hybridopt import paths
from hybridopt.closedloop.grid import FRAME_COLUMNS

ENV = {**os.environ, "PYTHONPATH": str(paths.PROJECT_ROOT / "lib")}


def _run(*args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hybridopt", "crossover", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV, cwd=paths.PROJECT_ROOT)


@pytest.mark.slow
def test_smoke_grid_on_a_local_cluster_then_from_the_cache(tmp_path) -> None:
    first = _run("--profile", "smoke", "--workers", "2", "--out", str(tmp_path))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "24 tasks on 2 workers" in first.stdout and "0 from the cache, 24 computed" in first.stdout
    assert "crossover smoke: 100%" in first.stderr and "24/24" in first.stderr       # the progress bar
    df = pd.read_parquet(tmp_path / "results.parquet")
    assert list(df.columns)[:len(FRAME_COLUMNS)] == list(FRAME_COLUMNS) and len(df) == 24
    assert (df["status"] == "ok").all(), df[df["status"] != "ok"][["policy", "error"]]
    assert set(df["policy"]) == {"always_lambda", "always_ecs", "hybrid"} and set(df["capacity"]) == {"1x2"}
    assert (df["requests"] > 0).all() and df["objective_usd_per_1k"].notna().all()
    assert len(list((tmp_path / "cache").glob("*.json"))) == 24
    for f in ("crossover_map.svg", "crossover_map.pdf", "sweep.json"):
        assert (tmp_path / f).stat().st_size > 0
    assert "lightweight_api: at 1x2" in first.stdout                               # the one-line answer
    again = _run("--profile", "smoke", "--out", str(tmp_path), "--no-progress")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "24 from the cache, 0 computed" in again.stdout and "24/24" not in again.stderr
    summary = json.loads((tmp_path / "sweep.json").read_text())
    assert (summary["cached"], summary["computed"], summary["status_counts"]["ok"]) == (24, 0, 24)
    rerun = pd.read_parquet(tmp_path / "results.parquet")
    pd.testing.assert_frame_equal(rerun, df)


@pytest.mark.slow
def test_a_running_scheduler(tmp_path) -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        r = _run("--profile", "smoke", "--scheduler", cluster.scheduler_address, "--out", str(tmp_path), "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"24 tasks on 1 workers ({cluster.scheduler_address})" in r.stdout


@pytest.mark.slow
def test_wrong_arguments_in_one_line(tmp_path) -> None:
    both = _run("--profile", "smoke", "--scheduler", "tcp://127.0.0.1:9", "--workers", "2", "--out", str(tmp_path))
    assert both.returncode == 2 and both.stderr.startswith("error: --workers sizes a LocalCluster")
    zero = _run("--profile", "smoke", "--workers", "0")
    assert zero.returncode == 2 and "at least 1" in zero.stderr and "Traceback" not in zero.stderr
    gone = _run("--profile", "smoke", "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path))
    assert gone.returncode == 2 and "Traceback" not in gone.stderr
    assert gone.stderr.strip().splitlines()[-1].startswith("error: cannot reach the Dask scheduler at tcp://127.0.0.1:9")
    bad = _run("--profile", "smoke", "--scheduler", "garbage:://x", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("error: not a Dask scheduler address: garbage:://x")
