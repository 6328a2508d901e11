"""The A/B of the objective policy (treatment) against the decide stage's workload rule (control):
the arms' bills, the router proxy feeding the load tracker over real HTTP on the testbed, the
online run with real Artillery, and the closed-loop simulated run on the smoke profile."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hybridopt import paths
from hybridopt.ab import online as abtest
from hybridopt.ab import stats as ab
from hybridopt.ab.billing import FLEET_ITEMS, REQUEST_ITEMS, arm_bills
from hybridopt.ab.proxy import proxy_for
from hybridopt.data.features import FeatureSpec
from hybridopt.decision import bill as billing
from hybridopt.decision.load_frame import load_features_at, seconds
from hybridopt.params import load_params
from hybridopt.router.handler import Router
from hybridopt.router.package import build_package, router_config
from hybridopt.testing import write_synthetic_decision_dir, write_synthetic_model_dir

from tests.conftest import contract_line


def _objective_model(params, root: Path) -> Path:
    d = write_synthetic_model_dir(FeatureSpec.from_params(params), root / "model", "lightgbm", n_rows=1500,
                                  n_trees=30, seed=4)
    write_synthetic_decision_dir(params, d, n_pairs=3000, seed=4)
    return d


# ------------------------------------------------------------------------------------ the bills
def test_arm_bills_split_request_lines_and_share_the_fleet(params) -> None:
    """Hand-checked: each arm's Lambda lines are its own, its ECS attempts share its LCU dollars, the
    fleet lines (task-hours, ALB hours) are spread over all requests; the mean of bill_usd per arm
    is its average; the request-driven dollars of the arms add up to the whole test's."""
    lines = []
    for i in range(6):
        arm = "control" if i < 3 else "treatment"
        plat = "lambda" if i in (0, 3, 4) else "ecs"
        lines.append(contract_line(request_id=f"r{i}", pair_id=None, arm=arm, platform=plat,
                                   sent_at=f"2025-11-23T07:00:{10 * i:02d}.000+00:00", target_payload_size_kb=512.0,
                                   actual_payload_size_kb=512.0, billed_duration_ms=100.0 + i,
                                   cold_start=False, memory_limit_mb=128.0))
    df = pd.DataFrame(lines)
    df["sent_at"] = pd.to_datetime(df["sent_at"], utc=True)
    got = arm_bills(df, params)
    pr = params.prices
    per_lambda = {i: (np.ceil(100.0 + i) / 1000 * 128 / 1024 * pr.lambda_gb_s_usd.value + pr.lambda_request_usd.value
                      + pr.api_gateway_rest_request_usd.value) for i in (0, 3, 4)}
    t = got.table
    assert t.loc["control", "requests"] == 3 and t.loc["treatment", "lambda_requests"] == 2
    for arm, lam, ecs in (("control", [0], [1, 2]), ("treatment", [3, 4], [5])):
        b = got.bills[arm]
        usd = b.usd_by("item")
        assert sum(usd.get(k, 0.0) for k in ("lambda_duration", "lambda_requests", "api_gateway_requests")) == \
            pytest.approx(sum(per_lambda[i] for i in lam), rel=1e-12)
        fleet = sum(usd.get(k, 0.0) for k in FLEET_ITEMS)
        assert fleet > 0 and t.loc[arm, "fleet_usd"] == pytest.approx(fleet)
        for i in lam:
            assert got.bill_usd[i] == pytest.approx(per_lambda[i] + fleet / 6, rel=1e-12)
        for i in ecs:
            assert got.bill_usd[i] == pytest.approx(usd.get("alb_lcu", 0.0) / len(ecs) + fleet / 6, rel=1e-12)
        idx = lam + ecs
        avg = t.loc[arm, "request_driven_usd"] / 3 + fleet / 6
        assert t.loc[arm, "avg_usd_per_request"] == pytest.approx(avg, rel=1e-12)
        assert np.mean(got.bill_usd[idx]) == pytest.approx(avg, rel=1e-12)
    whole = billing.bill(df, params)
    assert t.loc["both", "bill_usd"] == pytest.approx(whole.total_usd)
    assert t.loc[["control", "treatment"], "request_driven_usd"].sum() == pytest.approx(
        sum(whole.usd_by("item").get(k, 0.0) for k in REQUEST_ITEMS), rel=1e-9)


# ------------------------------------------------------------------------ the proxy and the tracker
@pytest.mark.slow
def test_the_proxy_counts_sends_and_completions_in_the_tracker(params, tmp_path) -> None:
    """Real HTTP through the proxy to the testbed: while slow requests are on their way the router
    counts them in flight on the platform it chose; each leaves when the testbed's answer is back."""
    from hybridopt.emulation import testbed

    router = Router.from_dir(_objective_model(params, tmp_path), router_config(params))
    pol = router.decision
    body = json.dumps({"request_id": "r", "workload_type": "medium_processing", "payload": "x" * 4096}).encode()
    answers: list[dict[str, str]] = []

    def send(arm: str) -> None:
        req = urllib.request.Request(f"{px.base_url}/route/medium_processing", data=body, headers={
            "content-type": "application/json", "x-ab-arm": arm, "x-request-id": f"req-{arm}-{time.perf_counter()}",
            "x-sent-at": "2025-11-24T12:05:00+05:30", "x-payload-size-kb": "1024"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            resp.read()
            answers.append(dict(resp.headers))

    with testbed.start(params) as tb, proxy_for(router, params, tb.base_url, tb.base_url) as px:
        threads = [threading.Thread(target=send, args=(arm,)) for arm in ("control", "treatment", "control")]
        for th in threads:
            th.start()
        peak = {"lambda": 0, "ecs": 0}
        while any(th.is_alive() for th in threads):
            now = pol.in_flight()
            peak = {p: max(peak[p], now[p]) for p in now}
            time.sleep(0.005)
        for th in threads:
            th.join()
        records = list(px.decisions)
    assert len(answers) == 3 and all(a["x-router-decision-id"] for a in answers)
    assert sum(peak.values()) >= 2                     # medium_processing takes a second or more on the testbed
    assert pol.in_flight() == {"lambda": 0, "ecs": 0}
    assert pol.completions["reported"] == 3 and pol.completions["expired"] == 0
    assert len(records) == 3 and {r["upstream_status"] for r in records} == {200}
    assert {r["decision_id"] for r in records} == {a["x-router-decision-id"] for a in answers}
    for r in records:
        assert r["completed_s"] >= r["decided_s"] and r["platforms"]["ecs"]["p95_ms"] >= r["platforms"]["ecs"]["p50_ms"]
        assert r["platform"] == (r["objective_platform"] if r["arm"] == "treatment" else r["workload_rule_platform"])
    later = sorted(records, key=lambda r: r["decided_s"])[-1]
    assert later["load"]["arrivals_10s_rps"] > 0                               # it saw the earlier arrivals


@pytest.mark.slow
def test_artillery_ab_on_the_testbed_objective_against_the_rule(params, tmp_path) -> None:
    if not (paths.ARTILLERY_DIR / "node_modules" / "artillery" / "bin" / "run").is_file():
        pytest.skip("Artillery is not installed (make install-artillery)")
    d = _objective_model(params, tmp_path)
    z = build_package(d, tmp_path / "router.zip", router_config(params))
    run = abtest.run_testbed_ab(params, Path(z.zip_path), tmp_path / "run", n_requests=40, rate_rps=10)
    assert run.artillery_rc == 0 and run.lines == 40, (run.out_dir / "artillery.log").read_text()[-2000:]
    assert run.decisions == 40 and run.completions["reported"] == 40 and run.completions["unknown"] == 0
    req = run.requests
    assert set(req["arm"]) == {"control", "treatment"} and req["decision_id"].notna().all()
    t, c = req[req.arm == "treatment"], req[req.arm == "control"]
    assert (t["platform"] == t["objective_platform"]).all() and (c["platform"] == c["workload_rule_platform"]).all()
    assert req["marginal_usd"].notna().all() and (req["bill_usd"] > 0).all()
    assert (run.out_dir / "decisions.jsonl").read_text().count("\n") == 40
    assert run.bills.table.loc["both", "capacity_basis"] == "deployed_count"
    res = ab.compare_arms(req, n_resamples=200)
    assert res.n["control"] + res.n["treatment"] == 40
    assert np.isfinite(res.comparison.loc["marginal_avg_usd_per_request", "difference"])


# -------------------------------------------------------------------------- the closed-loop simulator
@pytest.mark.slow
def test_simulated_ab_closed_loop_on_the_smoke_profile(tmp_path) -> None:
    """Every arrival routed by the router's code: control by the rule, treatment by the objective;
    the tracker saw every completion (none expired); and the load features the router used equal
    those the decide stage's log code (`load_frame`) computes on the simulated log itself."""
    params = load_params("smoke")
    d = _objective_model(params, tmp_path)
    frame, facts = abtest.simulated_ab(params, d, n_requests=6000, seed=5)
    assert len(frame) == 6000 and facts["policy"] == "objective" and facts["loop"] == "closed"
    assert facts["model_out_of_order"] == 0 and facts["completions"]["expired"] == 0
    assert facts["completions"]["reported"] >= 6000 - 50                  # the last ones finish after the run
    c, t = frame[frame.arm == "control"], frame[frame.arm == "treatment"]
    assert (c["platform"] == c["workload_rule_platform"]).all()
    assert (t["platform"] == t["objective_platform"]).all() and t["p95_ms"].notna().all()
    assert c["p95_ms"].isna().all() and frame["marginal_usd"].notna().all()
    assert 0 < (t["platform"] == "ecs").mean() < 1
    assert facts["capacity_basis"] == "simulator"
    bills = pd.DataFrame(facts["bills"]).set_index("arm")
    for arm in ("control", "treatment"):
        assert frame.loc[frame.arm == arm, "bill_usd"].mean() == pytest.approx(
            bills.loc[arm, "avg_usd_per_request"], rel=1e-9)
    # the load the router saw == the load the log shows (same definitions, computed from the rows)
    rows = frame.assign(total_ms=frame["latency_ms"], pair_id=None)
    t_s = seconds(frame["sent_at"])
    ref = load_features_at(rows, t_s, frame["workload_type"].to_numpy(dtype=object),
                           (10.0, 60.0), float(params.audit.client_timeout_s))
    for col in ("in_flight_lambda", "in_flight_ecs", "workload_in_flight_ecs"):
        assert np.array_equal(ref[col].to_numpy(), frame[col].to_numpy()), col
    res = ab.compare_arms(frame, n_resamples=200)
    assert np.isfinite(res.comparison.loc["bill_avg_usd_per_request", "ci_low"])


# ---------------------------------------------------------------- the simulated A/B in processes
def _arrivals(spans: list[tuple[str, float, float, int]]) -> pd.DataFrame:
    rows = [(run, t) for run, a, b, n in spans for t in np.linspace(a, b, n)]
    return pd.DataFrame(rows, columns=["run_id", "t_s"]).sort_values("t_s", kind="stable").reset_index(drop=True)


def test_session_groups_keep_sessions_whole_and_balance_arrivals() -> None:
    from hybridopt.ab.simulated import session_groups

    h = 3600.0
    arr = _arrivals([("a", 2 * h, 3 * h, 100), ("b", 8 * h, 9 * h, 300), ("c", 12 * h, 13 * h, 250),
                     ("d", 26 * h, 27 * h, 90)])
    groups = session_groups(arr, 2, 2 * h)
    assert len(groups) == 2
    assert sorted(np.concatenate(groups).tolist()) == list(range(len(arr)))      # every arrival once
    for g in groups:
        assert np.all(np.diff(g) > 0)                                            # in time order
    runs = [set(arr["run_id"].iloc[g]) for g in groups]
    assert not runs[0] & runs[1] and sorted(len(g) for g in groups) == [350, 390]   # c+a | b+d
    assert [len(g) for g in session_groups(arr, 1, 2 * h)] == [len(arr)]
    assert [len(g) for g in session_groups(arr, 2, 5 * h)] == [len(arr)]       # a gap of 4 h < 5 h: one
    assert [len(g) for g in session_groups(arr[arr.run_id == "a"], 2, 2 * h)] == [100]
    overlap = _arrivals([("a", 0.0, 100.0, 10), ("b", 50.0, 200.0, 10)])
    assert len(session_groups(overlap, 2, 1.0)) == 1


def test_merge_timelines_counts_deployed_tasks_once() -> None:
    from hybridopt.decision import capacity as cap
    from hybridopt.decision.capacity import merge_disjoint as merge_timelines

    def tl(started: list[tuple[float, float]], scale_outs: int, end: float) -> cap.CapacityTimeline:
        tasks = (cap.Task("t0", None, None),) + tuple(cap.Task(f"t{i + 1}", a, b) for i, (a, b) in enumerate(started))
        return cap.CapacityTimeline("simulator", {"w": cap.Service("w", 0.5, 1.0, 1, 4, True, tasks, scale_outs, 0)},
                                    end)

    m = merge_timelines([tl([(10.0, 200.0)], 1, 300.0), tl([(5000.0, 5100.0), (5050.0, None)], 2, 5200.0)])
    tasks = m.services["w"].tasks
    assert sum(t.start_s is None for t in tasks) == 1 and len(tasks) == 4
    assert len({t.task_id for t in tasks}) == 4 and m.services["w"].scale_outs == 3 and m.record_end_s == 5200.0
    bad = cap.CapacityTimeline("simulator", {"w": cap.Service("w", 0.5, 1.0, 1, 4, True,
                                                              (cap.Task("t0", None, 50.0),), 0, 0)}, 60.0)
    with pytest.raises(ValueError, match="cannot be merged"):
        merge_timelines([tl([], 0, 1.0), bad])


@pytest.mark.slow
def test_simulated_ab_in_two_processes_agrees_with_one(tmp_path) -> None:
    """Whole sessions in two processes give the same experiment as one process in order (another
    sample of the same model): per arm the same requests, and bills, error rates and latency within
    sampling noise; the fleet (the services' deployed tasks) is billed once, not per process."""
    base = load_params("smoke")
    d = _objective_model(base, tmp_path)
    out = {}
    for k in (1, 2):
        params = base.model_copy(update={"ab": base.ab.model_copy(update={"simulate_processes": k})})
        frame, facts = abtest.simulated_ab(params, d, n_requests=20000, seed=5)
        assert facts["processes"] == k and len(frame) == 20000
        out[k] = (frame, pd.DataFrame(facts["bills"]).set_index("arm"))
    (f1, b1), (f2, b2) = out[1], out[2]
    assert (f1["arm"].to_numpy() == f2["arm"].to_numpy()).all()
    assert (f1["request_id"].str.rsplit("-", n=2).str[0] == f2["request_id"].str.rsplit("-", n=2).str[0]).all()  # session
    for arm in ("control", "treatment", "both"):
        assert b2.loc[arm, "fleet_usd"] == pytest.approx(b1.loc[arm, "fleet_usd"], rel=0.01)
        assert b2.loc[arm, "bill_usd"] == pytest.approx(b1.loc[arm, "bill_usd"], rel=0.05)
    for arm in ("control", "treatment"):
        a1, a2 = f1[f1.arm == arm], f2[f2.arm == arm]
        assert abs(a1["ok"].mean() - a2["ok"].mean()) < 0.02
        assert a2["latency_ms"].median() == pytest.approx(a1["latency_ms"].median(), rel=0.1)
