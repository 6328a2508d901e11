"""The simulator: deterministic, paired, contract-shaped, the very same model classes as the testbed, and
in agreement with the testbed over real HTTP on a short schedule."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from hybridopt import platforms
from hybridopt.data import contract
from hybridopt.data.ingest import ingest
from hybridopt.emulation import simulate, testbed
from hybridopt.params import load_params
from hybridopt.platforms import FargatePlatform, LambdaPlatform, PlatformModel


@pytest.fixture(scope="module")
def smoke():
    return load_params("smoke")


@pytest.fixture(scope="module")
def result(smoke):
    return simulate.simulate(smoke, seed=11)


def test_deterministic_for_a_seed(smoke, result) -> None:
    again = simulate.simulate(smoke, seed=11)
    pd.testing.assert_frame_equal(result.rows, again.rows)
    other = simulate.simulate(smoke, seed=12)
    assert not result.rows["total_ms"].equals(other.rows["total_ms"])


def test_uses_the_very_same_model_classes_as_the_testbed(smoke, result) -> None:
    assert simulate.PlatformModel is platforms.PlatformModel is testbed.PlatformModel
    assert type(result.model) is PlatformModel
    assert type(result.model.lambda_) is LambdaPlatform and type(result.model.ecs) is FargatePlatform
    with testbed.start(smoke) as tb:
        assert tb.server is not None
        live = tb.server.model
        assert type(live) is type(result.model)
        assert type(live.lambda_) is type(result.model.lambda_)
        assert type(live.ecs) is type(result.model.ecs)
        assert type(live.client) is type(result.model.client)
        assert type(live.lambda_.functions["thumbnail_processing"]) is type(
            result.model.lambda_.functions["thumbnail_processing"])


def test_schedule_follows_the_load_patterns(smoke) -> None:
    arr = simulate.generate_arrivals(smoke, seed=1)
    per_window = arr.groupby("time_window", sort=False).size().to_dict()
    assert per_window == {"early_morning": 200, "morning_peak": 600, "midday": 600, "evening": 400, "late_night": 200}
    ramp = arr[arr.time_window == "morning_peak"]
    start = ramp.t_s.min()
    per_second = np.bincount((ramp.t_s - start).astype(int).to_numpy())
    assert per_second[0] == 5 and per_second[-1] == 25 and len(per_second) == 40   # Artillery's rampTo
    burst = arr[arr.time_window == "evening"].groupby("phase", sort=False).size().to_dict()
    assert burst == {"baseline": 80, "burst": 240, "recovery": 80}
    for w, sizes in ((w, set(smoke.workloads[w].payload_sizes_kb)) for w in smoke.workloads):
        assert set(arr.loc[arr.workload_type == w, "payload_size_kb"]) <= sizes
    assert set(arr.workload_type) == set(smoke.workloads)


def test_phase_offsets_match_artillery() -> None:
    const = simulate.phase_offsets(10, 5, None)
    assert len(const) == 50 and np.allclose(np.diff(const), 0.2)
    ramp = simulate.phase_offsets(3600, 5, 25)
    assert len(ramp) == pytest.approx(54_000, abs=5)
    assert np.allclose(simulate.phase_offsets(1, 4, 6), [0.0, 0.2, 0.4, 0.6, 0.8])


def test_rows_are_paired_contract_lines_in_local_window_hours(smoke, result) -> None:
    rows = result.rows
    assert len(rows) == 2 * result.arrivals == 4000
    assert set(rows.columns) <= set(contract.COLUMNS) and set(contract.REQUIRED) <= set(rows.columns)
    assert (rows.source == "simulator").all()
    pairs = rows.groupby("pair_id")
    assert (pairs.size() == 2).all()
    assert (pairs.platform.agg(lambda s: tuple(sorted(s))) == ("ecs", "lambda")).all()
    for col in ("sent_at", "workload_type", "target_payload_size_kb", "run_id"):
        assert (pairs[col].nunique() == 1).all(), col
    assert rows.run_id.nunique() == 5 and rows.request_id.is_unique
    for name, tw in smoke.time_windows.items():
        sent = pd.to_datetime(rows.loc[rows.time_window == name, "sent_at"].map(datetime.fromisoformat))
        hours = {ts.astimezone(smoke.tz).hour for ts in sent}
        assert hours == {tw.start_hour}, name
    ok = rows[rows.error.isna()]
    assert (ok.http_status == 200).all() and ok.total_ms.notna().all()
    lam = ok[ok.platform == "lambda"]
    assert lam.cold_start.notna().all() and lam.billed_duration_ms.notna().all()
    # sizes over the limits fail as data, not as crashes
    big = rows[(rows.platform == "lambda") & (rows.target_payload_size_kb >= 8192)]
    assert len(big) and (big.http_status == 413).all() and (big.error == "payload_too_large").all()


def test_written_lines_are_read_back_by_the_pipeline(tmp_path, smoke, result) -> None:
    counts = simulate.write_jsonl(result.rows, tmp_path)
    assert sum(counts.values()) == len(result.rows) and len(counts) == 5
    ing = ingest(smoke, tmp_path)
    assert ing.ledger.lines_total == len(result.rows)
    assert ing.ledger.kept == len(result.rows), ing.ledger.as_dict()


def test_cli_writes_the_profile(tmp_path) -> None:
    r = subprocess.run([sys.executable, "-m", "hybridopt", "simulate", "--profile", "smoke", "--seed", "4",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["lines"] == 4000 and manifest["seed"] == 4 and len(manifest["files"]) == 5
    lines = sum(len(p.read_text().splitlines()) for p in tmp_path.glob("*.jsonl"))
    assert lines == 4000
    assert "4,000 lines" in r.stdout


def test_simulate_profile_writes_the_logs_and_their_manifest(tmp_path, smoke, result) -> None:
    res, manifest = simulate.simulate_profile(smoke, seed=11, out_dir=tmp_path)
    pd.testing.assert_frame_equal(res.rows, result.rows)                # the same simulation as simulate()
    assert json.loads((tmp_path / simulate.MANIFEST).read_text()) == manifest
    assert manifest["params_hash"] == smoke.hash and manifest["seed"] == 11 and manifest["source"] == "simulator"
    assert manifest["lines"] == len(res.rows) == 4000
    assert manifest["files"] == {p.name: len(p.read_text().splitlines()) for p in tmp_path.glob("*.jsonl")}


def test_ensure_simulated_reuses_the_logs_of_the_same_params(tmp_path) -> None:
    params = load_params("smoke", overrides={"data": {"raw_dir": str(tmp_path / "raw")}})
    first = simulate.ensure_simulated(params)
    assert first["ran"] and first["manifest"]["lines"] == 4000 and first["manifest"]["seed"] == simulate.DEFAULT_SEED
    assert first["status"] == f"simulated 4,000 lines into {tmp_path / 'raw'}"
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "raw").iterdir()}
    again = simulate.ensure_simulated(params)
    assert not again["ran"] and "already in" in again["status"] and again["manifest"] == first["manifest"]
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "raw").iterdir()} == stamps
    forced = simulate.ensure_simulated(params, force=True, seed=5)
    assert forced["ran"] and forced["manifest"]["seed"] == 5
    assert (tmp_path / "raw" / simulate.MANIFEST).stat().st_mtime_ns != stamps[simulate.MANIFEST]
    changed = load_params("smoke", overrides={"data": {"raw_dir": str(tmp_path / "raw")},
                                              "testbed": {"client_preset": "same_region"}})
    assert changed.hash != params.hash and simulate.ensure_simulated(changed)["ran"]
    other = simulate.ensure_simulated(load_params("quick"))
    assert other == {"status": "source testbed: nothing to simulate", "ran": False}


def test_replay_of_an_arrival_table(smoke) -> None:
    arrivals = pd.DataFrame({
        "t_s": [10.0, 0.0, 5.0], "platform": ["ecs", "lambda", "both"],
        "workload_type": ["lightweight_api", "thumbnail_processing", "medium_processing"],
        "payload_size_kb": [1.0, 200.0, 2048.0], "time_window": "midday", "load_pattern": "medium_load",
        "run_id": "real-run-1", "sent_at": ["2025-11-23T12:00:10+05:30", "2025-11-23T12:00:00+05:30",
                                            "2025-11-23T12:00:05+05:30"]})
    out = simulate.replay(smoke, arrivals, seed=1)
    assert list(out.platform) == ["lambda", "lambda", "ecs", "ecs"]
    assert list(out.sent_at) == ["2025-11-23T12:00:00+05:30", "2025-11-23T12:00:05+05:30",
                                 "2025-11-23T12:00:05+05:30", "2025-11-23T12:00:10+05:30"]
    assert pd.isna(out.pair_id.iloc[0]) and out.pair_id.iloc[1] == out.pair_id.iloc[2] and pd.notna(out.pair_id.iloc[1])
    pd.testing.assert_frame_equal(out, simulate.replay(smoke, arrivals, seed=1))
    with pytest.raises(ValueError, match="missing columns"):
        simulate.replay(smoke, arrivals.drop(columns=["run_id"]), seed=1)
    with pytest.raises(ValueError, match="platform"):
        simulate.replay(smoke, arrivals.assign(platform="fargate"), seed=1)


# ------------------------------------------------------------------------- simulator vs testbed (HTTP)
async def _send(host: str, port: int, route: str, body: bytes, out: list, key: int) -> None:
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write((f"POST {route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    n = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    payload = await reader.readexactly(n)
    wall_ms = (time.perf_counter() - t0) * 1000
    writer.close()
    status = int(head.split(b" ", 2)[1])
    cold = json.loads(payload)["metrics"].get("cold_start") if status == 200 else None
    out.append((key, status, wall_ms, cold))


async def _drive(base_url: str, plan: list[tuple[float, str, bytes]]) -> list:
    host, port = base_url.removeprefix("http://").split(":")
    out: list = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    for key, (t, route, body) in enumerate(plan):
        delay = start + t - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_send(host, int(port), route, body, out, key)))
    await asyncio.gather(*tasks)
    return out


@pytest.mark.slow
def test_simulator_and_testbed_agree_on_a_short_schedule() -> None:
    """One 30 s window at 5 pairs/s sent over real HTTP to the testbed and replayed on the simulator:
    Lambda cold starts within max(3, 30 %) and median latency per platform within 10 % + 20 ms."""
    params = load_params("smoke", overrides={
        "testbed": {"client_preset": "same_region"},
        "workloads": {"lightweight_api": {"payload_sizes_kb": [1]}, "thumbnail_processing": {"payload_sizes_kb": [100]},
                      "medium_processing": {"payload_sizes_kb": [1024], "fargate": {"min_tasks": 4, "max_tasks": 4}},
                      "heavy_processing": {"payload_sizes_kb": [2048], "fargate": {"min_tasks": 4, "max_tasks": 4}}},
        "load_patterns": {"low_load": {"phases": [{"name": "steady", "duration_s": 30, "arrival_rate_rps": 5}]}},
        "time_windows": {"early_morning": {"load_pattern": "low_load"}}})
    arr = simulate.generate_arrivals(params, seed=8)
    arr = arr[arr.time_window == "early_morning"].reset_index(drop=True)
    arr["t_s"] -= arr.t_s.min()
    sim = simulate.replay(params, arr, seed=8)

    plan = []
    for row in arr.itertuples():
        w = params.workloads[row.workload_type]
        payload = "A" * int(row.payload_size_kb * 1024)
        body = json.dumps({"request_id": f"r{row.Index}", "workload_type": row.workload_type, "timestamp": "x",
                           "metadata": {}, "payload": payload}).encode()
        plan.append((row.t_s, w.lambda_route, body))
        plan.append((row.t_s, w.ecs_route, body))
    with testbed.start(params, seed=8, mode="process") as tb:
        results = asyncio.run(_drive(tb.base_url, plan))
    real = pd.DataFrame(results, columns=["key", "status", "wall_ms", "cold"]).sort_values("key")
    real["platform"] = ["lambda" if k % 2 == 0 else "ecs" for k in real.key]
    assert (real.status == 200).all() and (sim.http_status == 200).all()

    sim_cold = int(sim.cold_start.fillna(False).sum())
    real_cold = int(real.cold.fillna(False).astype(bool).sum())
    medians = {pl: (float(sim.loc[sim.platform == pl, "total_ms"].median()),
                    float(real.loc[real.platform == pl, "wall_ms"].median())) for pl in ("lambda", "ecs")}
    print(f"cold starts simulator {sim_cold} testbed {real_cold}; median ms (simulator, testbed) {medians}")
    assert abs(sim_cold - real_cold) <= max(3, 0.3 * max(sim_cold, real_cold)), (sim_cold, real_cold)
    for platform, (s, r) in medians.items():
        assert abs(s - r) <= 0.10 * s + 20, (platform, s, r)
