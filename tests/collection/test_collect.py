"""The collection orchestrator: schedule and window logic, refusals (AWS opt-in, outside a window,
wrong source), the Artillery configs against params, and slow runs of real Artillery against the
real testbed (hybridopt.emulation.testbed): model clock moved between windows, resume after an interrupted
window, a testbed stopped mid-run, payloads over the limit, ALB timeouts, SIGINT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from hybridopt import collection as collect
from hybridopt import paths
from hybridopt.collection import loadgen
from hybridopt.collection.progress import progress_every_s
from hybridopt.emulation import testbed
from hybridopt.params import load_params
from hybridopt.report import collect as collect_report

from tests.collection.test_artillery_harness import (
    assert_contract,
    lines_of,
    needs_artillery,
    stop_after_lines,
)

UTC = timezone.utc
PROFILE_ROOT = paths.PROJECT_ROOT


def qparams(tmp_path: Path, collection: dict[str, Any] | None = None, **over: Any):
    o: dict[str, Any] = {"data": {"raw_dir": str(tmp_path / "raw")},
                         "collection": {"window_wall_s": 3, "virtual_date": "2025-11-24", "drain_grace_s": 10,
                                        **(collection or {})}}
    o.update(over)
    return load_params("quick", overrides=o)


# ------------------------------------------------------------------------------------- fast: pure
def test_uncompressed_phases_schedule_the_planned_pairs() -> None:
    p = load_params("quick")
    planned = {"low_load": 18_000, "medium_load": 54_000, "ramp_load": 54_000, "burst_load": 36_000}
    for name, pattern in p.load_patterns.items():
        phases = loadgen.run_phases(pattern)
        assert sum(x.duration_s for x in phases) == 3600
        assert loadgen.scheduled_pairs(phases) == pytest.approx(planned[name])
        assert loadgen.scheduled_pairs(phases) == pytest.approx(pattern.expected_arrivals)


def test_compression_keeps_rates_and_phase_shares() -> None:
    p = load_params("quick")
    burst = loadgen.run_phases(p.load_patterns["burst_load"], 50)
    assert [(x.name, x.duration_s, x.arrival_rate_rps) for x in burst] == [
        ("baseline", 20, 5.0), ("burst", 10, 30.0), ("recovery", 20, 5.0)]
    ramp = loadgen.run_phases(p.load_patterns["ramp_load"], 50, rate_scale=0.5)
    assert ramp[0].artillery() == {"name": "ramp", "duration": 50, "arrivalRate": 2.5, "rampTo": 12.5}
    tiny = loadgen.run_phases(p.load_patterns["burst_load"], 1)
    assert all(x.duration_s >= 1 for x in tiny)


def test_quick_profile_fits_six_minutes_on_paper() -> None:
    p = load_params("quick")
    c = p.collection
    assert p.source == "testbed" and c.window_wall_s is not None
    # the probe, the window, start-up ~4 s, Artillery's done check, exit
    probe = loadgen.probe_phase(c.probe)
    per_window = (probe.wall_s if probe else 0) + c.window_wall_s + c.http_timeout_s + 6
    assert len(p.time_windows) * per_window <= 360


def test_every_window_starts_with_the_probe_phase_unless_switched_off(tmp_path: Path) -> None:
    p = load_params("quick")
    for window in p.time_windows:
        phases = loadgen.window_phases(p, window)
        pattern = p.load_patterns[p.time_windows[window].load_pattern]
        # 10 pairs at 2 pairs/s (rate_scale not applied), then a second without arrivals
        assert phases[0] == loadgen.RunPhase("probe", 5, 2.0, pause_after_s=1) and phases[0].wall_s == 6
        assert phases[1:] == loadgen.run_phases(pattern, p.collection.window_wall_s, p.collection.rate_scale)
    assert loadgen.scheduled_pairs(loadgen.window_phases(p, "early_morning")[:1]) == 10
    cfg = loadgen.run_config(p, "midday", run_id="r", out_dir=tmp_path, source="testbed",
                             lambda_base_url="http://127.0.0.1:1", ecs_base_url="http://127.0.0.1:1",
                             phases=loadgen.window_phases(p, "midday"),
                             virtual_start=datetime(2025, 11, 24, 12, tzinfo=p.tz))
    assert cfg["probe"] == {"phase": "probe", "workload": "lightweight_api"}
    assert cfg["phases"][0] == {"name": "probe", "duration_s": 5, "arrival_rate_rps": 2.0, "ramp_to_rps": None,
                                "pause_after_s": 1}
    assert phases[0].artillery_phases() == [{"name": "probe", "duration": 5, "arrivalRate": 2.0, "rampTo": 2.0},
                                            {"name": "probe-pause", "pause": 1}]
    script = yaml.safe_load(loadgen.write_script(paths.ARTILLERY_DIR, tmp_path, loadgen.window_phases(p, "midday"),
                                                 "http://127.0.0.1:1", 10).read_text())
    assert [ph["name"] for ph in script["config"]["phases"]] == ["probe", "probe-pause", "steady"]
    scaled = load_params("quick", overrides={"collection": {"rate_scale": 0.5, "probe": {"pairs": 7, "rate_rps": 3}}})
    assert loadgen.window_phases(scaled, "midday")[0] == loadgen.RunPhase("probe", 3, round(7 / 3, 6), pause_after_s=1)
    off = load_params("quick", overrides={"collection": {"probe": {"pairs": 0}}})
    assert [x.name for x in loadgen.window_phases(off, "evening")] == ["baseline", "burst", "recovery"]
    cfg_off = loadgen.run_config(off, "midday", run_id="r", out_dir=tmp_path, source="testbed",
                                 lambda_base_url="http://127.0.0.1:1", ecs_base_url="http://127.0.0.1:1",
                                 phases=loadgen.window_phases(off, "midday"),
                                 virtual_start=datetime(2025, 11, 24, 12, tzinfo=p.tz))
    assert cfg_off["probe"] is None


def test_windows_open_and_next_in_the_profile_timezone() -> None:
    p = load_params("aws")
    ist = p.tz
    assert loadgen.open_window(p, datetime(2025, 11, 24, 2, 30, tzinfo=ist)) == "early_morning"
    assert loadgen.open_window(p, datetime(2025, 11, 24, 3, 0, tzinfo=ist)) is None
    assert loadgen.open_window(p, datetime(2025, 11, 23, 21, 0, tzinfo=UTC)) == "early_morning"  # 02:30 IST
    assert loadgen.open_window(p, datetime(2025, 11, 24, 22, 59, tzinfo=ist)) == "late_night"
    nxt = loadgen.next_window(p, datetime(2025, 11, 24, 3, 0, tzinfo=ist), loadgen.schedule(p))
    assert nxt == ("morning_peak", datetime(2025, 11, 24, 8, tzinfo=ist))
    nxt = loadgen.next_window(p, datetime(2025, 11, 24, 23, 0, tzinfo=ist), ["midday"])
    assert nxt == ("midday", datetime(2025, 11, 25, 12, tzinfo=ist))
    assert loadgen.schedule(p) == ["early_morning", "morning_peak", "midday", "evening", "late_night"]


def test_aws_needs_opt_in_and_an_open_window(tmp_path: Path) -> None:
    p = load_params("aws", overrides={"data": {"raw_dir": str(tmp_path / "raw")}})

    def never(params: Any) -> collect.Target:
        raise AssertionError("no target may be created when collection is refused")

    with pytest.raises(collect.CollectionRefused, match="--aws-opt-in"):
        collect.collect(p, target_factory=never, progress=lambda e: None)
    at = datetime(2025, 11, 24, 4, 0, tzinfo=p.tz)
    with pytest.raises(collect.CollectionRefused, match=r"next pending window is morning_peak at 2025-11-24T08:00"):
        collect.collect(p, aws_opt_in=True, now=at, target_factory=never, progress=lambda e: None)
    assert not (tmp_path / "raw").exists()


def test_collect_refuses_sources_it_does_not_drive() -> None:
    with pytest.raises(collect.CollectionRefused, match="legacy"):
        collect.collect(load_params("thesis-2025-11"), progress=lambda e: None)


def test_cli_refusals_exit_non_zero_without_traffic() -> None:
    env = {**os.environ, "PYTHONPATH": str(PROFILE_ROOT / "lib")}
    out = subprocess.run([sys.executable, "-m", "hybridopt", "collect", "--profile", "aws"], capture_output=True,
                         text=True, timeout=120, env=env, cwd=PROFILE_ROOT)
    assert out.returncode == 3 and "--aws-opt-in" in out.stdout, out.stdout + out.stderr
    out = subprocess.run([sys.executable, "-m", "hybridopt", "collect", "--profile", "quick", "--window", "noon"],
                         capture_output=True, text=True, timeout=120, env=env, cwd=PROFILE_ROOT)
    assert out.returncode == 2 and "unknown time window" in out.stderr, out.stdout + out.stderr


def test_one_artillery_template_renders_every_load_pattern_from_params(tmp_path: Path) -> None:
    p = load_params("quick")
    adir = paths.ARTILLERY_DIR
    assert sorted(x.name for x in adir.glob("variance-test*.yml")) == [loadgen.SCRIPT_TEMPLATE]
    for pattern_name, pattern in p.load_patterns.items():
        phases = loadgen.run_phases(pattern, p.collection.window_wall_s, p.collection.rate_scale)
        run_dir = tmp_path / pattern_name
        run_dir.mkdir()
        script = loadgen.write_script(adir, run_dir, phases, "http://127.0.0.1:1234", p.collection.http_timeout_s)
        assert script == run_dir / loadgen.SCRIPT_NAME
        doc = yaml.safe_load(script.read_text())
        cfg = doc["config"]
        assert cfg["phases"] == [x.artillery() for x in phases], pattern_name
        assert sum(ph["duration"] for ph in cfg["phases"]) == p.collection.window_wall_s
        assert cfg["target"] == "http://127.0.0.1:1234" and cfg["http"]["timeout"] == p.collection.http_timeout_s
        assert Path(cfg["processor"]) == (adir / "variance-functions.js").resolve()
        (scenario,) = doc["scenarios"]
        assert scenario["onError"] == ["hyLogError"] and scenario["afterResponse"] == ["hyLogResponse"]
        assert scenario["flow"][0] == {"function": "hyStartPair"}
        names = [step["post"]["name"] for step in scenario["flow"][1]["parallel"]]
        assert names == ["lambda", "ecs"]
    with pytest.raises(ValueError, match=r"t.yml: the Artillery template has no `config.phases`"):
        loadgen.render_script({"config": {"target": None, "processor": "x.js", "http": {}}}, phases, "http://x", 1,
                              Path("/x.js"), where="t.yml")


def test_run_config_and_manifest_hold_no_secrets(tmp_path: Path) -> None:
    p = load_params("aws", overrides={"collection": {"secret_headers": {"x-api-key": "HYBRIDOPT_TEST_KEY"},
                                                     "lambda_base_url": "https://user:pw@example.invalid/prod?k=1"}})
    cfg = loadgen.run_config(p, "midday", run_id="r", out_dir=tmp_path, source="aws",
                             lambda_base_url="https://example.invalid/prod", ecs_base_url="http://alb.invalid",
                             phases=loadgen.run_phases(p.load_patterns["medium_load"], 10),
                             virtual_start=datetime(2025, 11, 24, 12, tzinfo=p.tz))
    assert cfg["secret_headers"] == {"x-api-key": "HYBRIDOPT_TEST_KEY"}
    assert cfg["virtual_clock"] == {"start": "2025-11-24T12:00:00+05:30", "utc_offset_minutes": 330, "rate": 1.0}
    assert loadgen.redact_url(p.collection.lambda_base_url) == "https://example.invalid/prod"
    env = loadgen.artillery_env({"NODE_OPTIONS": "--max-old-space-size=4096"}, paths.ARTILLERY_DIR,
                                tmp_path / "c.json", 30)
    assert env["NODE_OPTIONS"].startswith("--max-old-space-size=4096 --require ")
    assert "preload.js" in env["NODE_OPTIONS"] and env["HYBRIDOPT_EXIT_WAIT_S"] == "35"


def test_generator_health_flags_saturation() -> None:
    rec = {"thread_id": 1, "elapsed_s": 10, "run_loop_lag_samples": 900, "run_loop_lag_p50_ms": 0.2,
           "run_loop_lag_p99_ms": 4.0, "run_loop_lag_max_ms": 250.0, "loop_lag_max_ms": 250.0}
    ok = loadgen.generator_health([10.0, 20.0, 30.0], [rec], 85, 50)
    assert not ok["saturated"] and ok["event_loop_lag_ms_p99"] == 4.0 and ok["event_loop_stalls"] == 1
    hot = loadgen.generator_health([95.0] * 20, [rec], 85, 50)
    assert hot["saturated"] and "CPU p95 95" in hot["reason"]
    lag = loadgen.generator_health([10.0], [{**rec, "run_loop_lag_p99_ms": 80.0}], 85, 50)
    assert lag["saturated"] and "event-loop lag p99 80.0" in lag["reason"]
    none = loadgen.generator_health([], [], 85, 50)
    assert not none["saturated"] and none["reason"] == "no health samples"


def test_summary_rows_flatten_manifests() -> None:
    m = {"run_id": "quick-midday", "time_window": "midday", "status": "complete", "attempts_made": 4,
         "lines_written": 4, "checks": {"lines_equal_attempts": True},
         "outcomes": {"by_platform": {"lambda": {"ok": 1, "payload_too_large": 1}, "ecs": {"ok": 1, "timeout": 1}}},
         "generator": {"cpu_pct_p95": 12.0, "event_loop_lag_ms_p99": 3.0, "saturated": False}}
    (row, pending) = collect.summary_rows([m, {"run_id": "x", "status": "pending"}])
    assert row["ok"] == 2 and row["error_payload_too_large"] == 1 and row["error_timeout"] == 1
    assert pending["status"] == "pending" and pending["attempts_made"] is None


def test_progress_lines_name_the_window_pairs_sent_and_elapsed_time() -> None:
    slot = collect.WindowSlot(2, 5, "morning_peak", "ramp_load", "quick-morning_peak")
    line = collect.describe(collect.WindowProgress(slot, elapsed_s=31.4, phases_s=50, pairs_sent=412,
                                                   pairs_planned=750.0, attempts=824, lines_written=806))
    assert line == ("[collect] window 2 of 5 (morning_peak, ramp_load): 412 of 750 pairs sent, 806 lines written, "
                    "31 s elapsed (phases 50 s)")
    m = {"status": "complete", "pairs_sent": 750, "scheduled_pairs": 750.0, "attempts_made": 1500,
         "lines_written": 1500, "wall_s": 61.2, "generator": {"cpu_pct_p95": 41.25, "event_loop_lag_ms_p99": 3.14,
                                                               "saturated": False}}
    assert collect.describe(collect.WindowFinished(slot, m)) == (
        "[collect] window 2 of 5 (morning_peak, ramp_load) complete: 750 of 750 pairs sent, 1500 attempts, "
        "1500 lines, 61 s; generator CPU p95 41.2 %, event-loop lag p99 3.1 ms")
    lost = {**m, "status": "interrupted", "lines_written": 1498, "generator": {"saturated": True, "reason": "CPU"}}
    text = collect.describe(collect.WindowFinished(slot, lost))
    assert "interrupted" in text and "(LINES MISSING)" in text and "SATURATED (CPU)" in text and "CPU p95 - %" in text
    assert progress_every_s(50) == 5 and progress_every_s(3600) == 60


def test_plan_and_legacy_frames(tmp_path: Path) -> None:
    p = qparams(tmp_path, {})
    plan = collect_report.plan_frame(p)
    assert plan["time_window"].tolist() == ["early_morning", "morning_peak", "midday", "evening", "late_night"]
    assert plan.loc[2, "local_hours"] == "12-13" and plan.loc[2, "load_pattern"] == "medium_load"
    assert not plan["done_already"].any()  # nothing collected under tmp_path yet
    assert collect_report.legacy_frame(p).empty  # not a legacy profile


# ------------------------------------------------------------------------- slow: the real testbed
@pytest.mark.slow
@needs_artillery
def test_schedule_on_the_testbed_moves_the_model_clock_and_resumes(tmp_path: Path) -> None:
    p = qparams(tmp_path, {"http_timeout_s": 4})
    windows = ["early_morning", "morning_peak"]
    events: list[dict[str, Any]] = []
    ms = collect.collect(p, windows=windows, progress=events.append)
    done = {m["time_window"]: m for m in ms if m["status"] != "pending"}
    assert set(done) == set(windows)
    for w, m in done.items():
        assert m["status"] == "complete" and m["target"] == "testbed" and m["clock"] == "virtual"
        assert m["lines_written"] == m["attempts_made"] > 0
        assert all(m["checks"].values()), m["checks"]
        recs = lines_of(collect.run_dir_for(p, w))
        assert_contract(p, recs)
        start_hour = p.time_windows[w].start_hour
        assert {datetime.fromisoformat(r["sent_at"]).hour for r in recs} == {start_hour}
        assert {datetime.fromisoformat(r["sent_at"]).date() for r in recs} == {date(2025, 11, 24)}
        assert {r["source"] for r in recs} == {"testbed"} and {r["run_id"] for r in recs} == {m["run_id"]}
    # model clock: morning_peak starts 6 virtual hours after early_morning
    assert done["morning_peak"]["testbed"]["model_time_s_before"] == pytest.approx(6 * 3600, abs=5)
    assert done["early_morning"]["testbed"]["model_time_s_before"] < 5

    # resume: a window whose manifest is not complete is redone, its partial attempt kept aside
    first = collect.run_dir_for(p, "early_morning")
    m = json.loads((first / "manifest.json").read_text())
    m["status"] = "interrupted"
    (first / "manifest.json").write_text(json.dumps(m))
    peak_started = done["morning_peak"]["started_at"]
    ms2 = collect.collect(p, windows=windows, progress=events.append)
    again = {m["time_window"]: m for m in ms2}
    assert again["morning_peak"]["started_at"] == peak_started          # done: skipped
    assert again["early_morning"]["started_at"] != m["started_at"]      # redone
    assert again["early_morning"]["status"] == "complete"
    kept = list(collect.superseded_dir(p).glob("quick-early_morning-*"))
    assert len(kept) == 1 and json.loads((kept[0] / "manifest.json").read_text())["status"] == "interrupted"
    assert any(isinstance(e, collect.WindowSkipped) for e in events)


@pytest.mark.slow
@needs_artillery
def test_a_window_on_the_testbed_starts_with_probe_lines_of_both_platforms(tmp_path: Path) -> None:
    p = qparams(tmp_path, {"http_timeout_s": 4})
    (m,) = [x for x in collect.collect(p, windows=["midday"], progress=lambda e: None) if x["status"] != "pending"]
    assert m["status"] == "complete" and all(m["checks"].values()), m["checks"]
    assert m["probe"] == {"pairs": 10, "rate_rps": 2.0, "workload": "lightweight_api", "wall_s": 6}
    assert [ph["name"] for ph in m["phases"]] == ["probe", "steady"]
    recs = sorted(lines_of(collect.run_dir_for(p, "midday")), key=lambda r: r["sent_at"])
    assert_contract(p, recs)
    probe = [r for r in recs if r["phase"] == "probe"]
    assert len({r["pair_id"] for r in probe}) == 10 and len(probe) == 20
    assert recs[:20] == probe                                    # the log starts with the probe
    assert {r["workload_type"] for r in probe} == {"lightweight_api"}
    assert Counter(r["platform"] for r in probe) == {"lambda": 10, "ecs": 10}
    assert {r["scheduled_rate_rps"] for r in probe} == {2.0} and all(r["error"] is None for r in probe)
    load = recs[20:]
    assert load and {r["phase"] for r in load} == {"steady"} and {r["scheduled_rate_rps"] for r in load} == {15.0}
    assert len({r["workload_type"] for r in load}) > 1
    # the probe's five seconds come first on the virtual clock, a second before the load starts
    first, last_probe = datetime.fromisoformat(probe[0]["sent_at"]), datetime.fromisoformat(probe[-1]["sent_at"])
    assert 4.0 <= (last_probe - first).total_seconds() < 5.0
    assert 0.8 < (datetime.fromisoformat(load[0]["sent_at"]) - last_probe).total_seconds() < 1.5
    assert {datetime.fromisoformat(r["sent_at"]).hour for r in recs} == {12}


@pytest.mark.slow
@needs_artillery
def test_progress_reports_pairs_sent_and_lines_while_testbed_windows_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = qparams(tmp_path, {"window_wall_s": 12})
    windows = ["early_morning", "midday"]
    events: list[collect.ProgressEvent] = []

    def record(event: collect.ProgressEvent) -> None:
        events.append(event)
        collect.print_progress(event)

    ms = {m["time_window"]: m for m in collect.collect(p, windows=windows, progress=record)}
    printed = capsys.readouterr().out.splitlines()
    for k, w in enumerate(windows, start=1):
        m = ms[w]
        mine = [e for e in events if getattr(e, "slot", None) is not None and e.slot.window == w]
        assert isinstance(mine[0], collect.WindowStarted) and isinstance(mine[-1], collect.WindowFinished)
        assert all((e.slot.number, e.slot.count) == (k, 2) for e in mine)
        ticks = [e for e in mine if isinstance(e, collect.WindowProgress)]
        assert len(ticks) >= 2, ticks
        # counts come from the run directory while Artillery runs: rising, and some taken mid-window
        assert [t.pairs_sent for t in ticks] == sorted(t.pairs_sent for t in ticks)
        assert [t.lines_written for t in ticks] == sorted(t.lines_written for t in ticks)
        assert [t.elapsed_s for t in ticks] == sorted(t.elapsed_s for t in ticks)
        assert any(0 < t.pairs_sent < m["pairs_sent"] and 0 < t.lines_written < m["lines_written"] for t in ticks)
        assert all(t.pairs_planned == m["scheduled_pairs"] for t in ticks)
        assert ticks[-1].pairs_sent <= m["pairs_sent"] and ticks[-1].attempts <= m["attempts_made"]
        # the window's closing numbers are Artillery's counters and the lines on disk
        assert m["pairs_sent"] == m["artillery"]["counters"]["hybridopt.pairs"] == m["lines_written"] // 2
        assert mine[-1].manifest == m
        label = f"[collect] window {k} of 2 ({w}, {p.time_windows[w].load_pattern})"
        assert sum(1 for ln in printed if ln.startswith(label + ":") and "pairs sent" in ln) == len(ticks)
        assert any(ln.startswith(label + " complete: ") for ln in printed)


@pytest.mark.slow
@needs_artillery
def test_testbed_stopped_mid_run_appears_as_connection_failures(tmp_path: Path) -> None:
    p = qparams(tmp_path, {"window_wall_s": 8})
    tb = testbed.start(p, "127.0.0.1", 0)
    try:
        target = collect.Target("testbed", tb.base_url, tb.base_url)
        stop_after_lines(collect.run_dir_for(p, "midday"), 40, tb.stop)   # a few seconds into the phases
        m = collect.run_window(p, "midday", target, virtual_start=datetime(2025, 11, 24, 12, tzinfo=p.tz),
                               progress=lambda e: None)
    finally:
        tb.stop()
    recs = lines_of(collect.run_dir_for(p, "midday"))
    assert m["status"] == "complete" and m["lines_written"] == m["attempts_made"] == len(recs)
    kinds = Counter(r["error"] for r in recs)
    assert kinds["connection"] > 10 and (len(recs) - kinds["connection"]) > 10, kinds
    assert_contract(p, recs)


@pytest.mark.slow
@needs_artillery
def test_payload_over_the_limit_and_alb_timeout_are_logged_failures(tmp_path: Path) -> None:
    # the ALB gives up after 1 s: heavy and medium ECS requests (>= 0.8 s of handler sleep plus
    # queueing behind two worker slots) come back as 504; heavy 8 and 10 MB exceed Lambda's 6 MB
    p = qparams(tmp_path, {"window_wall_s": 6},
                testbed={"fargate": {"alb_idle_timeout_s": {"value": 1.0}}})
    m = collect.collect(p, windows=["evening"], progress=lambda e: None)[3]
    recs = lines_of(collect.run_dir_for(p, "evening"))
    assert m["status"] == "complete" and m["lines_written"] == m["attempts_made"] == len(recs)
    too_large = [r for r in recs if r["error"] == "payload_too_large"]
    alb = [r for r in recs if r["error"] == "gateway_timeout"]
    assert too_large and all(r["platform"] == "lambda" and r["target_payload_size_kb"] > 6144 and
                             r["http_status"] == 413 for r in too_large)
    assert alb and all(r["platform"] == "ecs" and r["http_status"] == 504 for r in alb)
    assert all(r["error"] is None for r in recs if r["platform"] == "lambda" and r["target_payload_size_kb"] <= 5120
               and r["workload_type"] in ("lightweight_api", "thumbnail_processing"))
    assert_contract(p, recs)
    by = m["outcomes"]["by_platform"]
    assert by["lambda"]["payload_too_large"] == len(too_large) and by["ecs"]["gateway_timeout"] == len(alb)


@pytest.mark.slow
@needs_artillery
def test_sigint_mid_window_on_the_testbed_keeps_every_line(tmp_path: Path, ctrl_c_raises: None) -> None:
    p = qparams(tmp_path, {"window_wall_s": 30})
    run_dir = collect.run_dir_for(p, "midday")

    def interrupt() -> None:
        deadline = time.time() + 45
        while time.time() < deadline and sum(loadgen.count_lines(run_dir).values() or [0]) < 100:
            time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        collect.collect(p, windows=["midday"], progress=lambda e: None)
    m = collect.read_manifest(run_dir) or {}
    recs = lines_of(run_dir)
    assert m["status"] == "interrupted" and len(recs) >= 100
    assert m["lines_written"] + m["attempts_abandoned"] == m["attempts_made"]
    assert m["attempts_abandoned"] == 0 and m["lines_written"] == m["attempts_made"] == len(recs)
    assert m["pairs_sent"] < m["scheduled_pairs"] / 2  # stopped well before the phases' end
    assert_contract(p, recs)
    assert not collect.is_done(p, "midday")  # the next call redoes it


@pytest.mark.slow
@needs_artillery
def test_a_failing_window_is_recorded_and_reported(tmp_path: Path) -> None:
    p = qparams(tmp_path)
    bad = collect.Target("testbed", "ftp://127.0.0.1:9", "http://127.0.0.1:9")
    with pytest.raises(collect.CollectionFailed, match="targets.lambda_base_url") as info:
        collect.collect(p, windows=["midday"], target_factory=lambda params: bad, progress=lambda e: None)
    m = next(x for x in info.value.manifests if x["time_window"] == "midday")
    assert m["status"] == "failed" and m["artillery"]["exit_code"] != 0
    assert m["lines_written"] == m["attempts_made"] == 0
    assert not m["generator"]["saturated"]           # start-up CPU is not the run's
    assert any("must start with http" in e for e in m["errors_excerpt"])
    assert not collect.is_done(p, "midday")
    with pytest.raises(FileNotFoundError, match="not a working Node.js"):
        collect.run_window(p, "midday", bad, virtual_start=None, node="/nonexistent/node")
