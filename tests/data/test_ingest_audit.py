"""Legacy ingestion, layout detection, audit and gates."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hybridopt.data import gates
from hybridopt.data.audit import audit
from hybridopt.data.features import FeatureSpec
from hybridopt.data.ingest import ingest
from hybridopt.data.preprocess import build_table
from hybridopt.report.eda import audit_tables as tables

from tests.conftest import SHARED_THESIS, contract_line, write_jsonl


def _legacy_row(i, platform, workload, size, second, **over):
    metrics = ({"execution_time_ms": 61.7, "memory_used_mb": "128", "memory_limit_mb": "128", "cold_start": i == 0,
                "payload_size_kb": size * 1.01} if platform == "lambda" else
               {"cpu_percent": 0, "execution_time_ms": 140.0, "memory_used_mb": 35.1, "payload_size_kb": size * 1.01})
    row = {"request_id": f"req_{platform}_{workload}_{i}", "platform": platform, "workload_type": workload,
           "timestamp": f"2025-11-22T20:3{second // 60}:{second % 60:02d}.123456", "http_status": 200,
           "response_time_ms": 1300 + i, "target_payload_size_kb": size, "actual_payload_size_kb": size * 1.01,
           "time_window": "early_morning", "load_pattern": "low_load", "metrics": metrics}
    row.update(over)
    return row


@pytest.fixture()
def legacy_dir(tmp_path):
    """A small folder in the thesis layout, quirks included."""
    run = tmp_path / "legacy" / "early_morning_low_load"
    write_jsonl(run / "lambda_lightweight_api_2025-11-22.jsonl",
                [_legacy_row(i, "lambda", "lightweight_api", [0.5, 1, 5, 10][i % 4], 2 * i) for i in range(8)])
    ecs_rows = [_legacy_row(i, "ecs", "lightweight_api", [0.5, 1, 5, 10][i % 4], 2 * i + 1) for i in range(8)]
    ecs_rows.append("{\"request_id\": \"req_cut\", \"platform\": \"ecs\"")              # truncated mid-line
    write_jsonl(run / "ecs_lightweight_api_2025-11-22.jsonl", ecs_rows)
    write_jsonl(run / "unknown_heavy_processing_2025-11-22.jsonl", [
        {"request_id": "req_u1", "platform": "unknown", "workload_type": "heavy_processing",
         "timestamp": "2025-11-22T20:31:00.000Z", "http_status": 500, "response_time_ms": 4827,
         "target_payload_size_kb": 3072, "actual_payload_size_kb": None, "time_window": "early_morning",
         "load_pattern": "low_load", "metrics": {}}])
    # a line whose platform contradicts its file name, and one with an unknown workload
    write_jsonl(run / "lambda_thumbnail_processing_2025-11-22.jsonl", [
        _legacy_row(0, "ecs", "thumbnail_processing", 50, 3),
        _legacy_row(1, "lambda", "thumbnail_processing", 50, 5, workload_type="video")])
    return tmp_path / "legacy"


def test_legacy_layout_every_line_accounted(legacy_dir, params):
    r = ingest(params, legacy_dir)
    led = r.ledger
    assert led.lines_total == 8 + 9 + 1 + 2 and led.accounted
    assert (led.kept, led.repaired, led.quarantined) == (0, 17, 3)  # the 500 row gets its error kind
    assert led.repairs["naive_timestamp_assumed_utc:sent_at"] == 16
    assert led.repairs["number_as_string:memory_limit_mb"] == 8
    assert led.repairs["error_inferred_from_status"] == 1
    assert led.quarantine_reasons == {"invalid_json": 1, "platform_differs_from_file_name:ecs": 1,
                                      "workload_differs_from_file_name:video": 1}
    df = r.requests
    assert set(df["source"]) == {"legacy"} and set(df["run_id"]) == {"early_morning_low_load"}
    assert set(df["platform"]) == {"lambda", "ecs", "unknown"}
    unknown = df[df["platform"] == "unknown"].iloc[0]
    assert unknown["error"] == "http_error" and unknown["http_status"] == 500 and not unknown["ok"]
    assert df.loc[df["platform"] == "lambda", "memory_limit_mb"].eq(128.0).all()
    assert str(df["sent_at"].dt.tz) == "UTC"
    assert {f["layout"] for f in r.files} == {"legacy"}


def test_mixed_layouts_in_one_folder(legacy_dir, params):
    write_jsonl(legacy_dir / "new" / "worker-1.jsonl", [contract_line(request_id="c1", pair_id=None)])
    r = ingest(params, legacy_dir)
    layouts = {f["file"]: f["layout"] for f in r.files}
    assert layouts["new/worker-1.jsonl"] == "contract"
    assert "c1" in set(r.requests["request_id"])


def test_audit_on_legacy_folder(legacy_dir, params):
    r = ingest(params, legacy_dir)
    a = audit(r, params)
    json.dumps(a)  # JSON-ready
    assert a["lines"]["quarantined"] == 3
    assert a["present"]["time_windows"] == ["early_morning"]
    clock = a["clock"][0]
    assert clock["observed_local_hours"] == {2: 17} and clock["pass"]  # 20:3x UTC = 02:0x IST
    cov = pd.DataFrame(a["coverage"]["runs"])
    assert set(cov["design"]) == {"one platform per request: 8 equal-weight scenarios (platform x workload)"}
    sizes = {p["workload_type"]: p for p in a["payload_sizes"]}
    assert sizes["lightweight_api"]["sizes_kb"] == [0.5, 1.0, 5.0, 10.0] and not sizes["lightweight_api"]["missing_kb"]
    assert any("never collected" in f for f in a["findings"])
    assert set(tables(a)) >= {"buckets", "coverage_runs", "clock", "missing", "status"}


def test_audit_flags_wrong_clock_and_unlogged_pairs(tmp_path, params):
    recs = [contract_line(request_id="l1", pair_id="p1"),
            contract_line(request_id="e1", pair_id="p1", platform="ecs", cold_start=None),
            contract_line(request_id="l2", pair_id="p2")]  # midday claimed, 12:30 IST
    recs += [contract_line(request_id="l3", pair_id="p3", time_window="late_night")]  # 12:30 IST is not late night
    write_jsonl(tmp_path / "raw" / "run-a" / "w.jsonl", recs)
    (tmp_path / "raw" / "run-a" / "manifest.json").write_text(json.dumps(
        {"run_id": "run-a", "status": "complete", "attempts_made": 8, "lines_written": 4,
         "generator": {"saturated": True, "reason": "cpu p95 97 %"}}))
    a = audit(ingest(params, tmp_path / "raw"), params)
    clock = {c["time_window"]: c for c in a["clock"]}
    assert clock["midday"]["pass"] and not clock["late_night"]["pass"]
    assert a["duplicates"]["pair_ids_with_one_attempt"] == 2
    runs = pd.DataFrame(a["coverage"]["runs"]).set_index("platform")
    assert runs.loc["lambda", "expected_attempts"] == 4.0 and runs.loc["lambda", "arrived"] == 3
    assert runs.loc["ecs", "unlogged_share_est"] == pytest.approx(0.75)
    assert a["generator"][0]["lines_match_attempts"] is False
    assert any("saturated" in f for f in a["findings"]) and any("4 lines for 8 attempts" in f for f in a["findings"])


def test_gates_pass_and_fail(params):
    spec = FeatureSpec.from_params(params)
    rows = []
    for w, cfg in params.workloads.items():
        for i, size in enumerate(cfg.payload_sizes_kb * 2):
            for tw, lp in (("early_morning", "low_load"), ("morning_peak", "ramp_load"), ("midday", "medium_load"),
                           ("evening", "burst_load"), ("late_night", "low_load")):
                rows.append({"workload_type": w, "payload_size_kb": size, "time_window": tw, "load_pattern": lp,
                             "sent_at": pd.Timestamp("2025-11-23T07:00Z"), "balanced_optimal": i % 2})
    t = pd.DataFrame(rows)
    t = pd.concat([t, spec.frame(t).drop(columns=["payload_size_kb"])], axis=1)
    g = gates.evaluate(t, params, spec)
    assert all(r["pass"] for r in g), [r for r in g if not r["pass"]]
    one_sided = t.assign(balanced_optimal=(t["workload_type"] != "heavy_processing").astype(int))
    failing = {(r["gate"], r["scope"]) for r in gates.evaluate(one_sided, params, spec) if not r["pass"]}
    assert ("balanced_optimal mean", "heavy_processing") in failing
    assert ("balanced_optimal std", "lightweight_api") in failing
    holes = t[t["time_window"] != "evening"].copy()
    holes.loc[holes.index[0], "hour_of_day"] = None
    failing = {r["gate"] for r in gates.evaluate(holes, params, spec) if not r["pass"]}
    assert {"all time_windows present", "all load_patterns present", "no missing values (features + label)"} <= failing


@pytest.mark.needs_shared_data
def test_real_thesis_logs_fully_accounted(params):
    tr, a, card = build_table(params, SHARED_THESIS)
    assert a["lines"]["lines_total"] == 65023 and a["lines"]["accounted_for_pct"] == 100.0
    assert card["rows"]["training_rows"] == len(tr.table) > 10000
    assert a["present"]["time_windows"] == ["early_morning", "late_night", "midday", "morning_peak"]
    assert not any(r["pass"] for r in a["clock"] if r["run_id"] == "late_night_ramp_load")
    assert set(tr.table["pairing"]) == {"matched"}
    assert (tr.table["gap_s"] <= params.pairing.window_s).all()


def test_audit_counts_unlogged_lines_per_pair_not_per_uniform_workload_mix(tmp_path, params):
    """A paired run's workloads are drawn at random: a workload drawn more often than a quarter of the pairs
    is not a cell with lines lost. Only a pair missing a platform's line is."""
    recs = []
    for i in range(12):   # every pair is lightweight_api: three other workloads get no pair at all
        recs.append(contract_line(request_id=f"l{i}", pair_id=f"p{i}"))
        if i != 0:        # pair p0 lost its ECS line
            recs.append(contract_line(request_id=f"e{i}", pair_id=f"p{i}", platform="ecs", cold_start=None))
    write_jsonl(tmp_path / "raw" / "run-a" / "w.jsonl", recs)
    a = audit(ingest(params, tmp_path / "raw"), params)
    cells = {(c["platform"], c["workload_type"]): c for c in a["coverage"]["cells"]}
    light = "lightweight_api"
    assert cells[("lambda", light)]["expected_attempts"] == 12 and cells[("lambda", light)]["unlogged_share_est"] == 0
    assert cells[("ecs", light)]["arrived"] == 11 and cells[("ecs", light)]["beyond_noise"]
    assert cells[("ecs", light)]["unlogged_share_est"] == pytest.approx(1 / 12)
    others = [c for (pl, w), c in cells.items() if w != light]
    assert all(c["expected_attempts"] == 0 and not c["beyond_noise"] for c in others)
    assert not any("% unlogged" in f and light not in f for f in a["findings"])


def test_probe_rows_are_counted_and_left_out_of_pairs_table_and_gates(tmp_path, params):
    """A window's network probe (phase `probe`): kept in the requests table and counted by the audit,
    absent from the pairs, the training table and so the gates; the data card says how many."""
    recs = []
    for i in range(3):  # the probe: lightweight pairs at a low rate
        recs += [contract_line(request_id=f"pl{i}", pair_id=f"pp{i}", phase="probe", scheduled_rate_rps=2.0),
                 contract_line(request_id=f"pe{i}", pair_id=f"pp{i}", phase="probe", scheduled_rate_rps=2.0,
                               platform="ecs", cold_start=None)]
    for i in range(4):  # the window's load
        recs += [contract_line(request_id=f"l{i}", pair_id=f"p{i}", workload_type="thumbnail_processing",
                               target_payload_size_kb=100.0),
                 contract_line(request_id=f"e{i}", pair_id=f"p{i}", workload_type="thumbnail_processing",
                               target_payload_size_kb=100.0, platform="ecs", cold_start=None)]
    write_jsonl(tmp_path / "raw" / "run-a" / "w.jsonl", recs)
    tr, a, card = build_table(params, tmp_path / "raw")
    assert a["probe"] == {"phase": "probe", "requests": 6, "by_run": {"run-a": 6}, "by_platform": {"ecs": 3, "lambda": 3}}
    assert any("6 requests of the network probe" in f for f in a["findings"])
    assert a["lines"]["kept"] == 14  # nothing lost: the probe's lines are requests like any other
    assert sorted(tr.pairs["pair_id"]) == [f"p{i}" for i in range(4)]
    assert "probe" not in set(tr.table["phase"].astype(str)) and len(tr.table) == 4
    assert card["rows"]["probe_requests_excluded"] == 6 and card["rows"]["pairs"] == 4
    # a collection without a probe: nothing left out
    write_jsonl(tmp_path / "raw2" / "run-a" / "w.jsonl", recs[6:])
    tr2, a2, card2 = build_table(params, tmp_path / "raw2")
    assert a2["probe"]["requests"] == 0 and card2["rows"]["probe_requests_excluded"] == 0
    assert tr2.table["pair_id"].tolist() == tr.table["pair_id"].tolist()
