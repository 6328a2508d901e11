"""The simulator's recorded ECS task intervals agree with its autoscaling counters and with the
tasks its log says served each request; the bill attributes every added task to a session."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pytest
from hybridopt.data.ingest import ingest
from hybridopt.decision import bill as billing
from hybridopt.decision import capacity as cap
from hybridopt.decision.load_frame import seconds
from hybridopt.emulation import simulate
from hybridopt.params import load_params

PERIOD_S, START_S, HEALTH_S = 10.0, 5.0, 5.0


def v(x):
    return {"value": x}


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    """The smoke schedule with a quick autoscaler (10 s periods) and room for 4 tasks per service."""
    asc = {"enabled": v(True), "metric": v("request_count_per_target"), "target_value": v(30.0),
           "metric_period_s": v(PERIOD_S), "scale_out_datapoints": v(1), "scale_in_datapoints": v(2),
           "scale_out_cooldown_s": v(10.0), "scale_in_cooldown_s": v(10.0), "task_start_s": v(START_S),
           "health_check_s": v(HEALTH_S)}
    params = load_params("smoke", overrides={
        "testbed": {"fargate": {"autoscaling": asc}},
        "workloads": {w: {"fargate": {"min_tasks": 1, "max_tasks": 4}}
                      for w in ("lightweight_api", "thumbnail_processing", "medium_processing", "heavy_processing")}})
    res = simulate.simulate(params, 42)
    out = tmp_path_factory.mktemp("scaled")
    simulate.write_jsonl(res.rows, out)
    simulate.write_capacity(res.model, params, out)
    return params, res, ingest(params, out).requests, cap.read_capacity(out)


def test_task_intervals_agree_with_the_autoscaling_counters(scaled) -> None:
    params, res, _, tl = scaled
    start = simulate.DEFAULT_START_DATE
    origin = datetime(start.year, start.month, start.day, tzinfo=params.tz).timestamp()
    assert tl is not None and tl.basis == "simulator" and tl.metric_period_s == PERIOD_S
    assert sum(s.scale_outs for s in tl.services.values()) > 0, "the override should make the services scale"
    for name, svc in tl.services.items():
        model = res.model.ecs.services[name]
        assert (svc.scale_outs, svc.scale_ins) == (model.scale_outs, model.scale_ins)
        deployed = [t for t in svc.tasks if t.start_s is None]
        added = [t for t in svc.tasks if t.start_s is not None]
        assert len(deployed) == svc.min_tasks and all(t.end_s is None and t.drain_s is None for t in deployed)
        # one scale-out decision per distinct start time, one scale-in per distinct drain time
        assert len({t.start_s for t in added}) == svc.scale_outs
        assert len({t.drain_s for t in svc.tasks if t.drain_s is not None}) == svc.scale_ins
        for t in added:
            k = (t.start_s - origin) / PERIOD_S
            assert abs(k - round(k)) < 1e-6, "a scale-out happens at an evaluation boundary"
            assert math.isclose(t.ready_s - t.start_s, START_S + HEALTH_S, abs_tol=1e-5)
            if t.drain_s is not None:
                assert t.end_s is not None and t.end_s >= t.drain_s - 1e-6
            else:
                assert t.end_s is None
        # never more than max_tasks, never fewer than min_tasks active
        events = sorted({t.start_s for t in added} | {t.drain_s for t in svc.tasks if t.drain_s is not None})
        for e in events:
            active = sum(1 for t in svc.tasks if (t.start_s is None or t.start_s <= e)
                         and (t.drain_s is None or t.drain_s > e))
            assert svc.min_tasks <= active <= svc.max_tasks, (name, e, active)


def test_every_ecs_request_ran_on_a_recorded_task_while_it_served(scaled) -> None:
    _, _, reqs, tl = scaled
    ecs = reqs[(reqs["platform"] == "ecs").to_numpy() & reqs["instance_id"].notna().to_numpy()]
    assert len(ecs)
    tasks = {t.task_id: (w, t) for w, s in tl.services.items() for t in s.tasks}
    sent = seconds(ecs["sent_at"])
    done = sent + ecs["total_ms"].to_numpy(dtype=float) / 1000.0
    served_by_added = 0
    for tid, w, t0, t1 in zip(ecs["instance_id"], ecs["workload_type"].astype(str), sent, done):
        work, task = tasks[tid]
        assert work == w
        if task.ready_s is not None:
            served_by_added += 1
            assert t1 >= task.ready_s - 1e-3            # answered after the task became ready
        if task.end_s is not None:
            assert t0 <= task.end_s + 1e-3              # sent before the task stopped
    assert served_by_added > 0


def test_the_bill_attributes_every_added_task_to_a_session(scaled) -> None:
    params, _, reqs, tl = scaled
    spans = cap.session_spans(reqs, params.audit.client_timeout_s)
    secs = cap.session_task_seconds(tl, spans)
    for w, svc in tl.services.items():
        added = sum(1 for t in svc.tasks if t.start_s is not None)
        assert sum(ts.added_tasks for (s, ww), ts in secs.items() if ww == w) == added, w
    b = billing.bill(reqs, params, tl)
    vcpu_h = sum(x.quantity for x in b.lines if x.item == "fargate_vcpu")
    expected = sum(ts.total_s * tl.services[w].vcpu for (s, w), ts in secs.items()) / 3600.0
    assert math.isclose(vcpu_h, expected, rel_tol=1e-12)
    assert any("added by autoscaling" in x.note for x in b.lines)
    assert np.isfinite(b.avg_usd_per_1k_requests)
