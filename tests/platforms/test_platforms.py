"""Unit tests of the platform model (hybridopt.platforms): clock-free state machines driven by hand."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
from hybridopt.params import ParamsError, load_params
from hybridopt.platforms import PlatformModel
from hybridopt.platforms.outcome import (
    ALB_504,
    APIGW_ENDPOINT_TIMEOUT,
    APIGW_INTERNAL_ERROR,
    APIGW_REQUEST_TOO_LONG,
    APIGW_TOO_MANY_REQUESTS,
)

MB = 1_048_576
LIGHT, THUMB, MEDIUM, HEAVY = "lightweight_api", "thumbnail_processing", "medium_processing", "heavy_processing"


def _merge(dst: dict[str, Any], src: dict[str, Any]) -> dict[str, Any]:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = v
    return dst


def make(testbed: dict[str, Any] | None = None, workloads: dict[str, Any] | None = None, seed: int = 1,
         **top: Any) -> PlatformModel:
    """A model of the smoke profile with overrides (nested dicts merge; Sourced values by 'value')."""
    overrides: dict[str, Any] = {"testbed": copy.deepcopy(testbed or {})}
    if workloads:
        overrides["workloads"] = workloads
    overrides.update(top)
    params = load_params("smoke", overrides=overrides)
    return PlatformModel(params.testbed, params.workloads, np.random.default_rng(seed))


def v(x: Any) -> dict[str, Any]:
    return {"value": x}


def sleep(workload: str, platform: str, low: float, high: float | None = None, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"sleep_ms": v([low, low if high is None else high])}
    entry.update({k: v(x) for k, x in extra.items()})
    return {"service_presets": {"deployed": {"workloads": {workload: {platform: entry}}}}}


FIXED_KEEPALIVE = {"lambda": {"keep_alive": {"policy": v("fixed"), "idle_timeout_s": v(600)}}}
SAME_REGION = {"client_preset": "same_region"}


# ------------------------------------------------------------------------------------------- Lambda
def test_cold_start_after_idle_reclaim_and_none_while_warm() -> None:
    m = make(FIXED_KEEPALIVE)
    first = m.handle(0.0, "lambda", LIGHT, 1024)
    assert first.ok and first.cold_start is True and first.init_duration_ms > 0
    warm = [m.handle(1.0 + 2.0 * i, "lambda", LIGHT, 1024) for i in range(100)]   # sequential, 2 s apart
    assert all(o.ok for o in warm)
    assert [o.cold_start for o in warm] == [False] * 100, "a warm environment was not reused"
    assert {o.instance_id for o in warm} == {first.instance_id}
    last_end = 1.0 + 2.0 * 99
    still_warm = m.handle(last_end + 500.0, "lambda", LIGHT, 1024)        # idle 500 s < 600 s
    assert still_warm.cold_start is False
    reclaimed = m.handle(last_end + 500.0 + 700.0, "lambda", LIGHT, 1024)  # idle 700 s > 600 s
    assert reclaimed.cold_start is True and reclaimed.instance_id != first.instance_id
    assert m.lambda_.functions[LIGHT].reclaimed >= 1


def test_halving_keep_alive_survives_short_idle_and_dies_after_long_idle() -> None:
    m = make({"lambda": {"keep_alive": {"policy": v("halving"), "halving_period_s": v(380)}}})
    m.handle(0.0, "lambda", LIGHT, 1024)
    assert m.handle(300.0, "lambda", LIGHT, 1024).cold_start is False     # < one period: always warm
    assert m.handle(300.0 + 380 * 60, "lambda", LIGHT, 1024).cold_start is True   # 0.5 ** 59 to survive


def test_halving_survival_fractions_follow_the_sebs_curve() -> None:
    """Many environments idle for a fixed time: the survivors halve every period."""
    survived = {}
    for idle in (300.0, 500.0, 900.0):
        m = make({"lambda": {"keep_alive": {"policy": v("halving"), "halving_period_s": v(380)}},
                  **sleep(LIGHT, "lambda", 2000), **SAME_REGION}, seed=11)
        n = 400
        for i in range(n):                     # n overlapping requests: n environments
            m.handle(i * 1e-3, "lambda", LIGHT, 1024)
        assert m.lambda_.functions[LIGHT].cold_starts == n
        t = 3.0 + idle
        warm = sum(m.handle(t + i * 1e-3, "lambda", LIGHT, 1024).cold_start is False for i in range(n))
        survived[idle] = warm / n
    assert survived[300.0] == 1.0
    assert survived[500.0] == pytest.approx(0.5, abs=0.08)
    assert survived[900.0] == pytest.approx(0.25, abs=0.07)


def test_413_above_the_lambda_invoke_limit_and_the_api_gateway_limit() -> None:
    m = make()
    ok = m.handle(0.0, "lambda", HEAVY, 5 * MB)
    assert ok.ok
    over_lambda = m.handle(100.0, "lambda", HEAVY, 7 * MB)
    assert over_lambda.http_status == 413 and over_lambda.error == "payload_too_large"
    assert over_lambda.body == APIGW_REQUEST_TOO_LONG and over_lambda.reason == "lambda_payload_limit"
    assert over_lambda.cold_start is None and over_lambda.execution_time_ms is None
    over_gw = m.handle(200.0, "lambda", HEAVY, 11 * MB)
    assert over_gw.http_status == 413 and over_gw.reason == "apigw_payload_limit"
    assert over_gw.body == "HTTP content length exceeded 10485760 bytes." and over_gw.content_type.startswith("text/plain")
    # the limit counts the proxy event wrapper: a body just under 6 MB can still fail
    limit, overhead = 6_291_456, 2048
    assert m.handle(300.0, "lambda", HEAVY, limit - overhead).ok
    assert m.handle(400.0, "lambda", HEAVY, limit - overhead + 1).http_status == 413
    # the ALB has no body limit for container targets
    assert m.handle(500.0, "ecs", HEAVY, 11 * MB).http_status in (200, 504)


def test_throttle_beyond_account_concurrency() -> None:
    m = make({"lambda": {"account_concurrency": v(3)}, **sleep(MEDIUM, "lambda", 1000), **SAME_REGION})
    outs = [m.handle(i * 0.001, "lambda", MEDIUM, 1024) for i in range(5)]
    assert [o.http_status for o in outs] == [200, 200, 200, 500, 500]   # REST proxy: 500, not 429
    assert outs[3].body == APIGW_INTERNAL_ERROR and outs[3].reason == "lambda_throttled"
    assert outs[3].error == "http_error"
    later = m.handle(10.0, "lambda", MEDIUM, 1024)                       # the three are free again
    assert later.ok and later.cold_start is False
    assert m.lambda_.functions[MEDIUM].throttled == 2


def test_throttle_status_429_when_configured_and_scaling_rate() -> None:
    m = make({"lambda": {"throttle_status": v(429), "scaling_burst_envs": v(2),
                         "scaling_refill_envs_per_s": v(1.0)}, **sleep(MEDIUM, "lambda", 5000), **SAME_REGION})
    outs = [m.handle(i * 0.001, "lambda", MEDIUM, 1024) for i in range(3)]
    assert [o.http_status for o in outs] == [200, 200, 429]
    assert outs[2].error == "throttled" and outs[2].body == APIGW_TOO_MANY_REQUESTS
    # one token refills per second: a new environment becomes possible again
    assert m.handle(1.5, "lambda", MEDIUM, 1024).http_status == 200


def test_504_at_the_api_gateway_integration_timeout() -> None:
    m = make({**sleep(HEAVY, "lambda", 31_000), **SAME_REGION})
    o = m.handle(0.0, "lambda", HEAVY, 1024)
    assert o.http_status == 504 and o.error == "gateway_timeout" and o.body == APIGW_ENDPOINT_TIMEOUT
    assert o.reason == "apigw_integration_timeout"
    # the gateway gives up at 29 s after the invoke, whatever the function still does
    assert 29_000 < o.total_ms < 29_100
    # the environment stays busy until the function ends (31 s): a request at 30 s needs a new one
    m.handle(30.0, "lambda", HEAVY, 1024)
    assert m.lambda_.functions[HEAVY].cold_starts == 2
    m.handle(70.0, "lambda", HEAVY, 1024)                     # both idle again: reused
    assert m.lambda_.functions[HEAVY].cold_starts == 2


def test_alb_idle_timeout_504_with_html_page() -> None:
    m = make({**sleep(HEAVY, "ecs", 70_000), **SAME_REGION})
    o = m.handle(0.0, "ecs", HEAVY, 1024)
    assert o.http_status == 504 and o.body == ALB_504 and o.content_type == "text/html"
    assert o.body.startswith("<html>") and "504 Gateway Time-out" in o.body
    assert 60_000 < o.total_ms < 60_100


def test_billed_duration_is_rounded_up_and_includes_init_when_billed() -> None:
    m = make({"lambda": {"runtime_overhead_ms": v(1.0)}})
    cold = m.handle(0.0, "lambda", LIGHT, 1024)
    assert cold.billed_duration_ms == math.ceil(cold.execution_time_ms + 1.0 + cold.init_duration_ms)
    warm = m.handle(5.0, "lambda", LIGHT, 1024)
    assert warm.billed_duration_ms == math.ceil(warm.execution_time_ms + 1.0)
    assert warm.billed_duration_ms == int(warm.billed_duration_ms)
    m2 = make({"lambda": {"billed_duration_includes_init": v(False), "runtime_overhead_ms": v(1.0)}})
    cold2 = m2.handle(0.0, "lambda", LIGHT, 1024)
    assert cold2.billed_duration_ms == math.ceil(cold2.execution_time_ms + 1.0)


def test_cpu_share_proportional_to_memory_scales_service_time() -> None:
    tb = {**sleep(LIGHT, "lambda", 0, cpu_ms=100.0, cpu_ms_per_mb=0.0),
          **sleep(LIGHT, "ecs", 0, cpu_ms=100.0, cpu_ms_per_mb=0.0)}
    # merge both platform entries
    tb["service_presets"]["deployed"]["workloads"][LIGHT] = {
        "lambda": {"sleep_ms": v([0, 0]), "cpu_ms": v(100.0), "cpu_ms_per_mb": v(0.0)},
        "ecs": {"sleep_ms": v([0, 0]), "cpu_ms": v(100.0), "cpu_ms_per_mb": v(0.0)}}
    for memory in (128, 1769, 3538):
        m = make(tb, workloads={LIGHT: {"lambda_memory_mb": memory}})
        o = m.handle(0.0, "lambda", LIGHT, 0)
        assert o.execution_time_ms == pytest.approx(100.0 * 1769 / min(memory, 1769), rel=1e-9)
    m = make({**tb, **SAME_REGION})   # Fargate lightweight task: 0.25 vCPU
    o = m.handle(0.0, "ecs", LIGHT, 0)
    assert o.execution_time_ms == pytest.approx(400.0, abs=0.01)   # + the 400-byte headers' upload


# ------------------------------------------------------------------------------------------ Fargate
def test_fargate_queue_grows_under_overload() -> None:
    m = make({**sleep(LIGHT, "ecs", 100), **SAME_REGION})     # 2 workers x ~0.2 s: ~10 req/s capacity
    waits, lengths = [], []
    for i in range(300):                                      # 50 req/s for 6 s
        t = i * 0.02
        o = m.handle(t, "ecs", LIGHT, 1024, new_connection=False)
        waits.append(o.queue_wait_ms)
        if i % 50 == 49:
            lengths.append(m.stats(t)["ecs"][LIGHT]["queue_length"])
    assert waits[0] == 0.0
    assert all(b >= a - 1.0 for a, b in zip(waits[10:], waits[11:])), "FIFO wait must keep growing"
    assert waits[-1] > 20_000                                 # ~24 s of backlog after 6 s at 5x capacity
    assert lengths == sorted(lengths) and lengths[-1] > lengths[0] > 0


def test_fargate_round_robin_over_tasks_and_worker_slots() -> None:
    m = make({**sleep(THUMB, "ecs", 1000), **SAME_REGION},
             workloads={THUMB: {"fargate": {"min_tasks": 2, "max_tasks": 2}}})
    outs = [m.handle(i * 0.001, "ecs", THUMB, 1024, new_connection=False) for i in range(5)]
    ids = [o.instance_id for o in outs]
    assert len(set(ids)) == 2 and ids[0] != ids[1] and ids[0] == ids[2]
    assert [o.queue_wait_ms > 0 for o in outs] == [False, False, False, False, True]   # 2 tasks x 2 workers


def test_autoscaling_only_after_its_delay() -> None:
    asc = {"enabled": v(True), "metric": v("request_count_per_target"), "target_value": v(60.0),
           "metric_period_s": v(60.0), "scale_out_datapoints": v(3), "scale_out_cooldown_s": v(300.0),
           "task_start_s": v(60.0), "health_check_s": v(60.0)}
    m = make({"fargate": {"autoscaling": asc}, **sleep(LIGHT, "ecs", 10), **SAME_REGION},
             workloads={LIGHT: {"fargate": {"min_tasks": 1, "max_tasks": 4}}})
    first_task = None
    seen: dict[str, float] = {}
    t = 0.0
    while t < 600.0:                                          # 5 req/s = 300 per minute per target
        o = m.handle(t, "ecs", LIGHT, 1024, new_connection=False)
        first_task = first_task or o.instance_id
        seen.setdefault(o.instance_id, t)
        t += 0.2
    new = {k: s for k, s in seen.items() if k != first_task}
    assert new, "the service never scaled out"
    # first evaluation at 60 s; 3 breaching datapoints -> decision at 180 s; + 120 s start and health
    assert min(new.values()) >= 180.0 + 120.0 - 1e-6
    stats = m.stats(t)["ecs"][LIGHT]
    assert stats["scale_outs"] >= 1 and stats["tasks_ready"] > 1
    # disabled autoscaling never adds a task
    m2 = make({**sleep(LIGHT, "ecs", 10), **SAME_REGION},
              workloads={LIGHT: {"fargate": {"min_tasks": 1, "max_tasks": 4}}})
    ids = {m2.handle(i * 0.2, "ecs", LIGHT, 1024).instance_id for i in range(3000)}
    assert len(ids) == 1


# ------------------------------------------------------------------------------------- the whole model
def test_deterministic_for_a_seed() -> None:
    def run(seed: int) -> list[tuple]:
        m = make(seed=seed)
        rng = np.random.default_rng(5)
        out = []
        for i in range(300):
            w = [LIGHT, THUMB, MEDIUM, HEAVY][i % 4]
            p = m.submit(i * 0.1, "lambda" if i % 2 else "ecs", w, int(rng.integers(100, 3 * MB)))
            o = m.dispatch(p)
            out.append((o.http_status, o.total_ms, o.cold_start, o.instance_id))
        return out
    assert run(3) == run(3)
    assert run(3) != run(4)


def test_upload_grows_with_size_under_slow_start() -> None:
    m = make()
    c = m.client
    rtt = 0.15
    small = c.upload_s(1000, rtt)
    assert small < 0.01                                       # fits the initial window: no round trip
    times = [c.upload_s(n, rtt) for n in (50_000, 200_000, 1 * MB, 5 * MB)]
    assert times == sorted(times) and times[0] >= rtt        # needs at least one more round trip
    assert times[-1] == pytest.approx(5 * MB / (20e6 / 8), rel=0.5)


def test_client_timeout_turns_a_slow_response_into_a_logged_timeout() -> None:
    m = make({**sleep(HEAVY, "lambda", 15_000)})
    o = m.apply_client_timeout(m.handle(0.0, "lambda", HEAVY, 1024))
    assert o.http_status is None and o.error == "timeout" and o.first_byte_ms is None
    assert o.total_ms == 10_000.0                              # counted from the start of the request


def slow_client(**extra: Any) -> dict[str, Any]:
    """The same-region client with a 1 MB/s uplink (8 Mbit/s) and the given overrides."""
    return {"client_preset": "same_region",
            "clients": {"same_region": {"upload_mbps": v(8.0), "rtt_jitter_sigma": v(0.0), **extra}}}


def test_upload_plus_wait_beyond_the_timeout_is_a_timeout_although_the_platform_finished() -> None:
    """Artillery's http.timeout is got's timeout.request: it counts from the start of the request, so a
    5 MB upload (~5 s here) plus a 6 s handler exceed 10 s even though the response's first byte comes
    only ~6 s after the upload ended (the old reading of the timeout would have logged a success)."""
    m = make({**slow_client(), **sleep(HEAVY, "lambda", 6000)})
    raw = m.handle(0.0, "lambda", HEAVY, 5 * MB)
    assert raw.ok and raw.first_byte_ms < 10_000 < raw.total_ms       # the function ran and answered
    assert m.lambda_.functions[HEAVY].cold_starts == 1
    o = m.apply_client_timeout(raw)
    assert o.error == "timeout" and o.http_status is None and o.total_ms == 10_000.0
    assert o.execution_time_ms is None and o.cold_start is None
    assert o.upload_ms == pytest.approx(raw.upload_ms)
    fast = m.apply_client_timeout(m.handle(100.0, "lambda", HEAVY, 1 * MB))
    assert fast.ok and fast.total_ms < 10_000                          # within the timeout: untouched


def test_lambda_is_never_invoked_when_the_upload_outlasts_the_client_timeout() -> None:
    body = 6 * MB - 4096                                                # ~12 s at 0.5 MB/s
    m = make({**slow_client(upload_mbps=v(4.0)), **sleep(HEAVY, "lambda", 100)})
    o = m.handle(0.0, "lambda", HEAVY, body)
    assert o.error == "timeout" and o.reason == "client_timeout(upload)" and o.total_ms == 10_000.0
    assert m.lambda_.functions[HEAVY].cold_starts == 0 and m.dispatched == 0
    patient = make({**slow_client(upload_mbps=v(4.0), request_timeout_s=v(60.0)), **sleep(HEAVY, "lambda", 100)})
    assert patient.handle(0.0, "lambda", HEAVY, body).ok and patient.lambda_.functions[HEAVY].cold_starts == 1


def test_a_queued_multi_mb_ecs_request_uploads_only_once_a_worker_takes_it() -> None:
    """Two 3 MB requests occupy both workers; a third 3 MB request waits in the accept queue, where only
    queued_receive_bytes (64 KiB here) of it can arrive: the rest of its upload starts when a worker takes
    it, inside the handler's timed region, from a fresh slow start (the client was idle for seconds: RFC
    5681 4.1) one round trip after the window opened. A queued 10 KB request arrives whole while it waits."""
    tb = {**slow_client(request_timeout_s=v(120.0), rtt_ms=v(100.0)),
          **sleep(HEAVY, "ecs", 5000, cpu_ms=0.0, cpu_ms_per_mb=0.0), "fargate": {"queued_receive_bytes": v(65536)}}
    m = make(tb)
    c = m.client
    a, b = (m.handle(0.0, "ecs", HEAVY, 3 * MB) for _ in range(2))
    assert a.queue_wait_ms == b.queue_wait_ms == 0.0
    queued = m.handle(0.001, "ecs", HEAVY, 3 * MB)
    rtt = c.rtt_s
    assert queued.queue_wait_ms > 7000                                # behind ~3 s of upload + 5 s of sleep
    rest = 3 * MB + c.header_bytes - 65536                             # what had not arrived when the window closed
    assert queued.execution_time_ms == pytest.approx(5000 + (rtt + c.wire_s(rest, rtt)) * 1000, abs=5)
    continued = c.upload_s(3 * MB, rtt) - c.wire_s(65536, rtt)         # without the restart: less
    assert queued.execution_time_ms > 5000 + continued * 1000 + 100
    assert queued.upload_ms > queued.queue_wait_ms                     # the client's upload waited too
    small = make(tb)
    small.handle(0.0, "ecs", HEAVY, 3 * MB)
    small.handle(0.0, "ecs", HEAVY, 3 * MB)
    little = small.handle(0.001, "ecs", HEAVY, 10_000)
    assert little.queue_wait_ms > 7000 and little.execution_time_ms == pytest.approx(5000, abs=1)
    # a receive window as large as the body restores "arrives while queued"
    wide = make({**tb, "fargate": {"queued_receive_bytes": v(4 * MB)}})
    wide.handle(0.0, "ecs", HEAVY, 3 * MB)
    wide.handle(0.0, "ecs", HEAVY, 3 * MB)
    assert wide.handle(0.001, "ecs", HEAVY, 3 * MB).execution_time_ms == pytest.approx(5000, abs=1)


def test_an_abandoned_ecs_request_with_an_incomplete_body_frees_its_worker_at_once() -> None:
    """Both workers busy with two small requests for 12 s (their clients leave at 10 s, but a sync worker
    runs a handler whose body it has to the end). Two 3 MB requests queued behind them are abandoned at
    10 s with their bodies stuck in the receive window: when the workers take them at ~12.1 s they fail at
    once, so the next request starts right away. If the ALB kept the target connections open, the workers
    would wait for the bodies until the ALB's idle timeout."""
    base = {**slow_client(), **sleep(HEAVY, "ecs", 12_000, cpu_ms=0.0, cpu_ms_per_mb=0.0)}

    def run(closes: bool) -> tuple[Any, Any, Any, PlatformModel]:
        m = make({**base, "fargate": {"alb_closes_target_on_client_close": v(closes)}})
        a = m.handle(0.0, "ecs", HEAVY, 1024)
        m.handle(0.0, "ecs", HEAVY, 1024)
        big = m.handle(0.01, "ecs", HEAVY, 3 * MB)
        m.handle(0.02, "ecs", HEAVY, 3 * MB)
        nxt = m.handle(5.0, "ecs", HEAVY, 1024)
        return a, big, nxt, m

    a, big, nxt, m = run(True)
    assert a.ok and a.total_ms > 12_000 and a.execution_time_ms == pytest.approx(12_000, abs=2)
    assert m.apply_client_timeout(a).error == "timeout"               # the client left; the worker did not
    assert big.error == "timeout" and big.reason == "client_timeout(body_incomplete)" and big.total_ms == 10_000
    free_at = 12.0 + 0.1                                               # a's handler + psutil's 100 ms sample
    assert nxt.queue_wait_ms == pytest.approx((free_at - 5.0) * 1000, abs=30)   # big cost the worker nothing
    assert m.stats(100.0)["ecs"][HEAVY]["abandoned"] == 2
    _, big2, nxt2, _ = run(False)
    assert big2.error == "timeout"
    assert nxt2.queue_wait_ms > (10.0 + 60.0 - 5.0) * 1000            # held until the ALB's idle timeout


def test_missing_service_time_names_the_key() -> None:
    params = load_params("smoke")
    bad = params.testbed.model_copy(update={"service_presets": {"deployed": params.testbed.service.model_copy(
        update={"workloads": {LIGHT: params.testbed.service.workloads[LIGHT]}})}})
    with pytest.raises(ParamsError, match=r"service_presets\.deployed\.workloads\.thumbnail_processing"):
        PlatformModel(bad, params.workloads, np.random.default_rng(0))


def test_bad_requests_are_refused() -> None:
    m = make()
    with pytest.raises(ValueError, match="platform"):
        m.submit(0.0, "ec2", LIGHT, 10)
    with pytest.raises(ValueError, match="workload_type"):
        m.submit(0.0, "lambda", "nope", 10)
    with pytest.raises(TypeError, match="Generator"):
        PlatformModel(load_params("smoke").testbed, load_params("smoke").workloads, 42)  # type: ignore[arg-type]


def test_measurement_inflation_grows_with_the_clients_rate_and_is_off_by_default() -> None:
    def infl_with(form: str) -> dict[str, Any]:
        return {"clients": {"distant": {"rtt_jitter_sigma": v(0.0), "inflation": {
            "enabled": v(True), "form": v(form), "window_s": v(10.0), "threshold_rps": v(2.0),
            "ms_per_rps": v(100.0), "exponent": v(1.0)}}},
            **sleep(LIGHT, "lambda", 100), **sleep(LIGHT, "ecs", 100)}
    infl = infl_with("additive")

    def median_extra(model: PlatformModel, rate: float) -> float:
        ps = [model.submit(1000.0 + i / rate, "lambda", LIGHT, 1024) for i in range(int(20 * rate))]
        return float(np.median([p.inflation_s for p in ps[-10:]]))

    assert median_extra(make(infl), 1.0) == 0.0                       # below the threshold
    assert median_extra(make(infl), 6.0) == pytest.approx(0.4, abs=0.02)   # (6 - 2) rps * 100 ms
    assert median_extra(make(), 6.0) == 0.0                           # default: off

    def last(form: str, rate: float, nbytes: int) -> Any:
        m = make(infl_with(form))
        ps = [m.submit(1000.0 + i / rate, "lambda", LIGHT, nbytes) for i in range(int(20 * rate))]
        return ps[-1]

    rtt = make().client.rtt_s
    # round_trip: every round trip of the request takes q = 0.4 s longer (handshakes, slow start, request)
    p = last("round_trip", 6.0, 1024)
    assert p.inflation_s == 0.0 and p.rtt_s == pytest.approx(rtt + 0.4, abs=0.02)
    c = make().client
    assert p.connect_s == pytest.approx((c.tcp_rtts + c.tls_rtts) * p.rtt_s)   # the handshakes' round trips
    big = last("round_trip", 6.0, 1 * MB)
    assert big.upload_s > make().client.upload_s(1 * MB, rtt) + 3 * 0.4   # slow-start rounds stretched too
    assert last("round_trip", 1.0, 1024).rtt_s == pytest.approx(rtt)      # below the threshold
    # multiplicative: 100 ms per second of client-side time per req/s: x4 rps -> +40 %
    p = last("multiplicative", 6.0, 1024)
    assert p.inflation_s == pytest.approx(0.4 * (p.connect_s + p.upload_s + p.rtt_s), rel=0.05)
