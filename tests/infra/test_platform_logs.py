"""platform-logs: REPORT lines and ECS task events read from CloudWatch Logs (moto), joined to
contract lines made by the simulator, checked against what the fabricated logs say."""

from __future__ import annotations

import json
import math
import os
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridopt.emulation import simulate
from hybridopt.infra import platform_logs as pl
from hybridopt.infra.settings import settings
from hybridopt.params import load_params

# Formats as AWS documents them (Lambda developer guide, "Using CloudWatch Logs with Lambda";
# fields tab-separated, a trailing tab), plus the space-separated form and a timeout.
DOC_REPORT = ("REPORT RequestId: 1c8df7d3-xmpl-46da-9778-518e6eca8125\tDuration: 2.75 ms\tBilled Duration: 3 ms\t"
              "Memory Size: 128 MB\tMax Memory Used: 56 MB\tInit Duration: 113.51 ms\t\n"
              "XRAY TraceId: 1-5e34a614-10bdxmplf1fb44f07bc535a1\tSegmentId: 07f5xmpl2d1f6f85\tSampled: true")
SPACED_REPORT = ("REPORT RequestId: 3604209a-e9a3-11e6-939a-754dd98c7be3 Duration: 12.34 ms Billed Duration: 13 ms "
                 "Memory Size: 512 MB Max Memory Used: 18 MB Init Duration: 250.00 ms")
TIMEOUT_REPORT = ("REPORT RequestId: b1e2c3d4-0000-4000-8000-000000000001\tDuration: 29000.00 ms\tBilled Duration: "
                  "29000 ms\tMemory Size: 256 MB\tMax Memory Used: 101 MB\tStatus: timeout")


def test_parse_report_documented_formats():
    a = pl.parse_report(DOC_REPORT)
    assert a == {"aws_request_id": "1c8df7d3-xmpl-46da-9778-518e6eca8125", "duration_ms": 2.75,
                 "billed_duration_ms": 3.0, "memory_size_mb": 128.0, "max_memory_used_mb": 56.0,
                 "init_duration_ms": 113.51, "status": None}
    b = pl.parse_report(SPACED_REPORT)
    assert (b["aws_request_id"], b["duration_ms"], b["billed_duration_ms"], b["memory_size_mb"],
            b["max_memory_used_mb"], b["init_duration_ms"]) == ("3604209a-e9a3-11e6-939a-754dd98c7be3", 12.34, 13.0,
                                                                512.0, 18.0, 250.0)
    c = pl.parse_report(TIMEOUT_REPORT)
    assert c["status"] == "timeout" and c["billed_duration_ms"] == 29000.0 and math.isnan(c["init_duration_ms"])


@pytest.mark.parametrize("msg", ["START RequestId: x Version: $LATEST", "END RequestId: x",
                                 "REPORT RequestId: x\tDuration: 1 ms",             # fields missing
                                 "REPORT RequestId: x\tDuration: abc ms\tBilled Duration: 1 ms\tMemory Size: 128 MB"
                                 "\tMax Memory Used: 1 MB", ""])
def test_parse_report_rejects_other_lines(msg):
    assert pl.parse_report(msg) is None


def test_parse_request_line():
    assert pl.parse_request_line('HYBRIDOPT_REQUEST {"aws_request_id":"a","request_id":"r","pair_id":null}') == \
        {"aws_request_id": "a", "request_id": "r"}
    assert pl.parse_request_line("HYBRIDOPT_REQUEST {broken") is None
    assert pl.parse_request_line('[INFO] HYBRIDOPT_REQUEST {"aws_request_id":"a"}') is None


# ------------------------------------------------------------------------------------ moto end to end
N_WITHOUT_ID_LINE = 40       # invocations whose request-id line is missing: joined by time
N_ORPHAN_REPORTS = 5         # invocations without any contract line (never logged by the client)


def _task_event(arn: str, service: str, cpu: str, memory: str, version: int, **times: datetime) -> str:
    detail = {"taskArn": arn, "group": f"service:{service}", "cpu": cpu, "memory": memory, "launchType": "FARGATE",
              "version": version, "lastStatus": "STOPPED" if "stoppedAt" in times else "RUNNING",
              **{k: v.isoformat().replace("+00:00", "Z") for k, v in times.items()}}
    return json.dumps({"version": "0", "id": str(uuid.uuid4()), "detail-type": "ECS Task State Change",
                       "source": "aws.ecs", "time": detail.get("stoppedAt", detail.get("startedAt")),
                       "region": "eu-west-1", "detail": detail})


def _put(logs, group: str, stream: str, events: list[tuple[int, str]]) -> None:
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    events = sorted(events)
    for i in range(0, len(events), 5000):
        logs.put_log_events(logGroupName=group, logStreamName=stream,
                            logEvents=[{"timestamp": t, "message": m} for t, m in events[i:i + 5000]])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_SESSION_TOKEN="testing",
                      AWS_DEFAULT_REGION="eu-west-1")
    from moto import mock_aws
    import boto3

    root = tmp_path_factory.mktemp("pl")
    params = load_params("smoke", overrides={"data": {"raw_dir": str(root / "raw")}})
    cfg = settings(params)
    start = (datetime.now(timezone.utc) - timedelta(days=2)).date()
    sim = simulate.simulate(params, 11, start)
    simulate.write_jsonl(sim.rows, root / "raw")
    rows = sim.rows.copy()
    rows["sent"] = pd.to_datetime(rows["sent_at"], utc=True, format="ISO8601")
    lam = rows[(rows["platform"] == "lambda") & rows["http_status"].notna()
               & (rows["error"].astype(object) != "payload_too_large")]
    rng = np.random.default_rng(5)
    no_line = set(rng.choice(lam["request_id"].to_numpy(), size=N_WITHOUT_ID_LINE, replace=False))
    truth: dict[str, str] = {}                      # aws request id -> contract request_id
    per_fn: dict[str, list[tuple[int, str]]] = {w.function_name: [] for w in cfg.workloads}
    fn_of = {w.workload: w.function_name for w in cfg.workloads}
    for r in lam.itertuples():
        aws_id = str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | len(truth)))
        truth[aws_id] = r.request_id
        begin_ms = int(r.sent.value // 1_000_000 + (r.upload_ms or 0))
        init = r.init_duration_ms if r.cold_start else None
        end_ms = begin_ms + int((init or 0) + r.execution_time_ms)
        if r.request_id not in no_line:
            per_fn[fn_of[r.workload_type]].append(
                (begin_ms + int(init or 0), f'HYBRIDOPT_REQUEST {{"aws_request_id":"{aws_id}","request_id":"{r.request_id}"}}'))
        report = (f"REPORT RequestId: {aws_id}\tDuration: {r.execution_time_ms:.2f} ms\tBilled Duration: "
                  f"{int(r.billed_duration_ms)} ms\tMemory Size: {int(r.memory_limit_mb)} MB\tMax Memory Used: 61 MB\t"
                  + (f"Init Duration: {init:.2f} ms\t" if init is not None else ""))
        per_fn[fn_of[r.workload_type]].append((end_ms, f"START RequestId: {aws_id} Version: $LATEST"))
        per_fn[fn_of[r.workload_type]].append((end_ms, report))
    first_run = rows[rows["run_id"] == rows["run_id"].iloc[0]]
    t_gap = int(first_run["sent"].max().value // 1_000_000) + 180_000
    for k in range(N_ORPHAN_REPORTS):       # minutes after the first window's last request: nothing to match
        aws_id = str(uuid.uuid4())
        per_fn[cfg.workloads[0].function_name].append(
            (t_gap + k, f"REPORT RequestId: {aws_id}\tDuration: 5.00 ms\tBilled Duration: 5 ms\t"
                                         "Memory Size: 128 MB\tMax Memory Used: 40 MB\t"))
    # ECS: per service one task from before the first request to after the last, and for the heavy
    # service one extra task that ran 200 s inside the collection (an autoscaling step)
    t0, t1 = rows["sent"].min(), rows["sent"].max()
    tasks_truth = {}
    ecs_events: list[tuple[int, str]] = []
    for w in cfg.workloads:
        arn = f"arn:aws:ecs:eu-west-1:123456789012:task/{cfg.cluster_name}/{w.slug}0"
        pull, started = t0 - timedelta(minutes=5), t0 - timedelta(minutes=4, seconds=10)
        stopping, stopped = t1 + timedelta(minutes=3), t1 + timedelta(minutes=3, seconds=20)
        c, m = str(w.task_cpu_units), str(w.task_memory_mib)
        ecs_events.append((int(pull.timestamp() * 1000), _task_event(arn, w.service_name, c, m, 1, createdAt=pull,
                                                                      pullStartedAt=pull)))
        ecs_events.append((int(started.timestamp() * 1000), _task_event(arn, w.service_name, c, m, 2, createdAt=pull,
                                                                         pullStartedAt=pull, startedAt=started)))
        ecs_events.append((int(stopped.timestamp() * 1000), _task_event(
            arn, w.service_name, c, m, 4, createdAt=pull, pullStartedAt=pull, startedAt=started, stoppingAt=stopping,
            stoppedAt=stopped)))
        tasks_truth[arn] = math.ceil((stopped - pull).total_seconds())
    heavy = cfg.workloads[-1]
    extra = f"arn:aws:ecs:eu-west-1:123456789012:task/{cfg.cluster_name}/{heavy.slug}1"
    e_pull = t0 + (t1 - t0) / 2
    e_start, e_stop = e_pull + timedelta(seconds=40), e_pull + timedelta(seconds=200.4)
    ecs_events.append((int(e_start.timestamp() * 1000), _task_event(
        extra, heavy.service_name, "1024", "2048", 2, createdAt=e_pull, pullStartedAt=e_pull, startedAt=e_start)))
    ecs_events.append((int(e_stop.timestamp() * 1000), _task_event(
        extra, heavy.service_name, "1024", "2048", 3, createdAt=e_pull, pullStartedAt=e_pull, startedAt=e_start,
        stoppingAt=e_stop, stoppedAt=e_stop)))
    tasks_truth[extra] = 201
    ecs_events.append((int(e_stop.timestamp() * 1000) + 1, json.dumps({"detail-type": "ECS Service Action"})))
    with mock_aws():
        logs = boto3.client("logs", region_name="eu-west-1")
        for g in cfg.log_groups:
            logs.create_log_group(logGroupName=g)
        for fn, evs in per_fn.items():
            _put(logs, f"/aws/lambda/{fn}", "2026/01/01/[$LATEST]env1", evs)
        _put(logs, cfg.ecs_events_log_group, "ecs", ecs_events)
        result = pl.collect_platform_logs(params, logs, out_dir=root / "platform")
        yield {"result": result, "truth": truth, "no_line": no_line, "rows": rows, "lam": lam, "root": root,
               "tasks_truth": tasks_truth, "extra": extra, "e_pull": e_pull, "e_stop": e_stop, "cfg": cfg}


def test_lambda_join_by_id_carries_the_billed_figures(world):
    rep = world["result"].lambda_reports
    by_id = rep[rep["lambda_join"] == "id"]
    assert len(by_id) == len(world["lam"]) - N_WITHOUT_ID_LINE
    assert (by_id["request_id"] == by_id["aws_request_id"].map(world["truth"])).all()
    contract = world["lam"].set_index("request_id")
    got = by_id.set_index("request_id")
    np.testing.assert_array_equal(got["billed_duration_ms"].to_numpy(),
                                  contract.loc[got.index, "billed_duration_ms"].to_numpy())
    cold = contract.loc[got.index, "cold_start"].astype(bool).to_numpy()
    assert got["init_duration_ms"].notna().to_numpy().tolist() == cold.tolist()


def test_lambda_join_by_time_for_lines_without_request_id(world):
    rep = world["result"].lambda_reports
    by_time = rep[rep["lambda_join"] == "time"]
    assert len(by_time) == N_WITHOUT_ID_LINE          # every one found a partner within the window ...
    right = (by_time["request_id"] == by_time["aws_request_id"].map(world["truth"])).mean()
    print(f"\ntime join: {right:.1%} of {len(by_time)} matched to the true request")
    assert right >= 0.8                               # ... mostly the true one (reported, not tuned)
    assert (by_time["join_gap_s"] <= load_params("smoke").infra.platform_logs.time_match_window_s).all()
    assert rep["request_id"].dropna().is_unique


def test_orphan_reports_stay_unmatched_and_rates_add_up(world):
    s = world["result"].summary["lambda_join"]
    assert s["report_lines"] == len(world["lam"]) + N_ORPHAN_REPORTS
    assert s["report_lines_by_join"] == {"id": len(world["lam"]) - N_WITHOUT_ID_LINE, "none": N_ORPHAN_REPORTS,
                                         "time": N_WITHOUT_ID_LINE}
    n_lambda = int((world["rows"]["platform"] == "lambda").sum())
    assert s["contract_lambda_lines"] == n_lambda
    # lines API Gateway refused (413) never reached a function: no REPORT line can match them
    assert s["contract_lambda_lines_matched"] == len(world["lam"])
    assert s["contract_match_rate"] == pytest.approx(len(world["lam"]) / n_lambda, abs=1e-6)
    assert s["contract_lambda_lines_invoked"] == len(world["lam"]) and s["contract_invoked_match_rate"] == 1.0
    assert s["report_match_rate"] == pytest.approx(len(world["lam"]) / (len(world["lam"]) + N_ORPHAN_REPORTS), abs=1e-6)


def test_ecs_tasks_billed_from_pull_to_stop(world):
    tasks = world["result"].ecs_tasks.set_index("task_arn")
    assert set(tasks.index) == set(world["tasks_truth"])
    for arn, billed in world["tasks_truth"].items():
        assert tasks.loc[arn, "billed_s"] == billed
    assert not tasks["still_running"].any()
    assert set(tasks["workload_type"]) == set(load_params("smoke").workloads)


def test_ecs_task_count_and_request_join(world):
    res, cfg = world["result"], world["cfg"]
    heavy = cfg.workloads[-1]
    count = res.ecs_task_count[res.ecs_task_count["service_name"] == heavy.service_name].set_index("minute")
    inside = count.loc[world["e_pull"].floor("min") + timedelta(minutes=1), "tasks_billed_max"]
    t0, t1 = world["rows"]["sent"].min(), world["rows"]["sent"].max()
    during_collection = count.loc[t0.floor("min"):t1.floor("min"), "tasks_billed_max"]
    assert inside == 2 and during_collection.min() == 1
    assert count["tasks_billed_max"].iloc[-1] == 0          # the fetch range ends after the task stopped
    billed = res.requests_billed
    ecs = billed[billed["platform"] == "ecs"]
    assert ecs["ecs_tasks_billed"].notna().all() and (ecs["ecs_tasks_billed"] >= 1).all()
    during = ecs[(ecs["workload_type"] == heavy.workload) & (ecs["sent_at"] > world["e_pull"])
                 & (ecs["sent_at"] < world["e_stop"])]
    assert len(during) > 0 and (during["ecs_tasks_billed"] == 2).all()
    assert billed["ecs_tasks_billed"][billed["platform"] == "lambda"].isna().all()


def test_written_tables_load_back(world):
    back = pl.load_platform_logs(world["root"] / "platform")
    pd.testing.assert_frame_equal(back.lambda_reports.reset_index(drop=True),
                                  world["result"].lambda_reports.reset_index(drop=True), check_dtype=False)
    assert back.summary["lambda_join"] == world["result"].summary["lambda_join"]
    assert len(back.requests_billed) == len(world["rows"])
    assert not any(p.suffix == ".jsonl" for p in (world["root"] / "platform").iterdir())


def test_missing_files_are_named(tmp_path: Path):
    with pytest.raises(pl.PlatformLogsError, match="lambda_reports.parquet"):
        pl.load_platform_logs(tmp_path)


def test_command_prints_the_match_rates(world, capsys):
    """`python -m hybridopt platform-logs` (in-process: the moto mock of the fixture is still open)."""
    import argparse

    from hybridopt.commands import platform_logs as cmd

    rc = cmd.run(argparse.Namespace(profile="smoke", data=world["root"] / "raw", out=world["root"] / "cli"))
    out = capsys.readouterr().out
    with capsys.disabled():
        print("\n" + out)
    assert rc == 0
    s = world["result"].summary["lambda_join"]
    assert f"report match rate {s['report_match_rate']}" in out
    assert f"({s['contract_match_rate']})" in out
    assert (world["root"] / "cli" / "platform_logs.json").is_file()
