"""A whole table of requests through a `PlatformModel` at once: the same model, the same random stream,
the same results as `submit` of every request in send order, `settle`, then `dispatch` +
`apply_client_timeout` in dispatch order (what `hybridopt.emulation.simulate.run_model` does request
by request), only faster.

What does not depend on the platforms' state is computed on whole arrays with the very same
floating-point operations as the per-request code (network timings, uploads under slow start, the
client's side of every outcome); one tight loop in dispatch order keeps the stateful parts (Lambda
environments, concurrency and scaling tokens; ECS tasks, worker slots, queue and autoscaler) and draws
the state-dependent random numbers in the same order as the per-request path. The model's objects and
counters end in the same state as after the per-request path.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from hybridopt.data.contract import error_kind_for_status
from hybridopt.platforms.fargate import RESTART_AFTER_S
from hybridopt.platforms.model import PlatformModel
from hybridopt.platforms.network import ClientNetwork
from hybridopt.platforms.outcome import Pending

#: The columns `run_batch` returns (one entry per request, in the order given): the Outcome fields a
#: contract row takes.
COLUMNS = ("http_status", "error", "upload_ms", "first_byte_ms", "total_ms", "execution_time_ms", "cold_start",
           "init_duration_ms", "billed_duration_ms", "memory_limit_mb", "instance_id", "actual_payload_size_kb")
_TIMEOUT = 0     # status code of a request the client gave up on (no HTTP status)


def _network(model: PlatformModel, t: np.ndarray, is_lambda: np.ndarray, nbytes: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """rtt_s, connect_s, upload_s, inflation_s of every request (submit's arithmetic on arrays)."""
    c = model.client
    n = len(t)
    if c.jitter_sigma > 0:
        exp, rs, sg = math.exp, c.rtt_s, c.jitter_sigma
        rtt = np.array([rs * exp(sg * z) for z in model.draws.z_many(n)], dtype=np.float64)
    else:
        rtt = np.full(n, c.rtt_s, dtype=np.float64)
    if c.inflation_on:
        infl = c.inflation_s
        q = np.array([infl(x) for x in t.tolist()], dtype=np.float64)
    else:
        q = np.zeros(n)
    if c.inflation_form == "round_trip":
        rtt = np.where(q > 0.0, rtt + q, rtt)
    factor = np.where(is_lambda, c.tcp_rtts + c.tls_rtts, c.tcp_rtts + 0.0)
    connect = c.dns_s + rtt * factor
    upload = _wire_s(c, (nbytes + c.header_bytes).astype(np.float64), rtt)
    if c.inflation_form == "additive":
        inflation = q
    elif c.inflation_form == "multiplicative":
        inflation = q * (connect + upload + rtt)
    else:
        inflation = np.zeros(n)
    return rtt, connect, upload, inflation


def _wire_s(c: ClientNetwork, n_bytes: np.ndarray, rtt: np.ndarray) -> np.ndarray:
    """ClientNetwork.wire_s element by element: slow start until the window covers the bandwidth-delay
    product, then the upload bandwidth."""
    remaining = n_bytes
    bw = c.bandwidth_bps
    bdp = bw * rtt
    cwnd = np.full(len(rtt), float(c.initcwnd_bytes))
    waited = np.zeros(len(rtt))
    active = (cwnd < bdp) & (remaining > cwnd)
    while active.any():
        remaining = np.where(active, remaining - cwnd, remaining)
        waited = np.where(active, waited + rtt, waited)
        cwnd = np.where(active, cwnd * 2.0, cwnd)
        active &= (cwnd < bdp) & (remaining > cwnd)
    return waited + remaining / bw


def run_batch(model: PlatformModel, t_s: Sequence[float] | np.ndarray, platform: Sequence[str],
              workload_type: Sequence[str], payload_bytes: Sequence[int] | np.ndarray) -> dict[str, Any]:
    """Send request i (`platform[i]` "lambda" | "ecs", `workload_type[i]`, `payload_bytes[i]` bytes, a new
    connection) at `t_s[i]` (non-decreasing) and return what the client logs of each, as columns (COLUMNS,
    the outcome after the client's timeout: float arrays with NaN, nullable Int64 / boolean arrays and
    lists with None where the per-request Outcome has None)."""
    t = np.asarray(t_s, dtype=np.float64)
    n = len(t)
    plats = np.asarray(platform, dtype=object)
    if len(plats) != n or len(workload_type) != n or len(payload_bytes) != n:
        raise ValueError("t_s, platform, workload_type and payload_bytes must have the same length")
    bad = sorted(set(plats.tolist()) - {"lambda", "ecs"})
    if bad:
        raise ValueError(f"platform must be one of ('lambda', 'ecs'), got {bad}")
    names = list(model.workloads)
    unknown = sorted(set(workload_type) - set(names))
    if unknown:
        raise ValueError(f"workload_type {unknown} is not one of {sorted(names)}")
    nb = np.asarray(payload_bytes, dtype=np.int64)
    if n and nb.min() < 0:
        raise ValueError(f"payload_bytes must be >= 0, got {int(nb.min())}")
    if n == 0:
        return {c: np.empty(0, dtype=object) for c in COLUMNS}
    lookup = {w: i for i, w in enumerate(names)}
    widx = np.fromiter((lookup[w] for w in workload_type), dtype=np.int64, count=n)
    is_l = plats == "lambda"

    # ---- client side, in send order (PlatformModel.submit)
    prev = np.concatenate(([model.last_submit_s], t[:-1]))
    model.out_of_order += int((t < prev).sum())
    model.last_submit_s = float(t[-1])
    model.submitted += n
    c, lp, ep = model.client, model.lambda_, model.ecs
    rtt, connect, upload, inflation = _network(model, t, is_l, nb)
    headers_at = t + connect + rtt / 2.0
    body_at = headers_at + upload
    limit_s = c.request_timeout_s
    # API Gateway's door at submit: the 10 MB limit (413), an upload the client gave up on
    door413 = is_l & (nb > lp._apigw_max)
    door_to = is_l & ~door413 & (connect + upload > limit_s)
    upload0, disp0 = upload, np.where(is_l, body_at, headers_at)
    at_submit = door413 | door_to           # outcomes fixed at submit, with the upload known then
    if c.uplink is not None:
        up = c.uplink
        send_at = (t + connect).tolist()
        deadline = (t + limit_s).tolist()
        body_bytes = (nb + c.header_bytes).tolist()
        for i, (s0, b, a, dl) in enumerate(zip(send_at, body_bytes, upload.tolist(), deadline)):
            up.add(s0, b, a, dl, owner=i)
        up.settle()
        stretched = [(f.owner, f.upload_s()) for f in up.finished if isinstance(f.owner, int) and f.stretched]
        for f in up.finished:            # requests submitted one by one before this batch
            if isinstance(f.owner, Pending) and f.stretched:
                model._set_upload(f.owner, f.upload_s())
        up.finished.clear()
        if stretched:
            idx = np.array([s[0] for s in stretched], dtype=np.int64)
            new = np.array([s[1] for s in stretched], dtype=np.float64)
            upload, body_at = upload.copy(), body_at.copy()
            hd = body_at[idx] - upload[idx]
            upload[idx] = new
            body_at[idx] = hd + new
        # the door again at dispatch, with the upload the shared link gave
        door_to |= is_l & ~door413 & ~door_to & (connect + upload > limit_s)
    disp = np.where(is_l, body_at, headers_at)
    door = door413 | door_to

    # ---- platform side, in dispatch order (PlatformModel.dispatch)
    status = np.full(n, 200, dtype=np.int64)
    status[door413] = 413
    status[door_to] = _TIMEOUT
    response_at = np.where(door413, disp0 + 2 * lp._gw_half_s, np.nan)
    order = np.argsort(disp, kind="stable")
    todo = order[~door[order]].tolist()
    model.dispatched += len(todo)
    st = status.tolist()
    resp = response_at.tolist()
    pz = [0.0] * n
    nan = math.nan
    exec_ms, init_ms, billed, mem_limit = [nan] * n, [nan] * n, [nan] * n, [nan] * n
    cold = [-1] * n                         # -1 unknown, 0 warm, 1 cold
    instance: list[str | None] = [None] * n
    dl, tl, rl, nbl, wl, bl, isl = (disp.tolist(), t.tolist(), rtt.tolist(), nb.tolist(), widx.tolist(),
                                    body_at.tolist(), is_l.tolist())
    fns = [lp.functions[w] for w in names]
    svcs = [ep.services[w] for w in names]
    # per workload and platform: sleep low, span, noise sigma; per request: CPU work / share
    lam_c = [(f.service._low_ms, f.service._span_ms, f.service._sigma) for f in fns]
    ecs_c = [(s.service._low_ms, s.service._span_ms, s.service._sigma) for s in svcs]
    work_l = _cpu_ms([f.service for f in fns], widx, nb, share=True)
    work_e = _cpu_ms([s.service for s in svcs], widx, nb, share=True)
    cpu_e = _cpu_ms([s.service for s in svcs], widx, nb, share=False)
    draws = model.draws
    ub, zb = draws._u, draws._z
    exp, ceil, heappush = math.exp, math.ceil, heapq.heappush
    last_l, last_e = model.last_dispatch_s["lambda"], model.last_dispatch_s["ecs"]
    ooo = 0
    gw_half, ev_over, inv_max = lp._gw_half_s, lp._event_overhead, lp._invoke_max
    conc, thr_status = lp._concurrency, lp._throttle_status
    init_med, init_sig, cold_over = lp._init_median, lp._init_sigma, lp._cold_overhead_ms
    runtime_ms, fn_timeout_ms, bill_init = lp._runtime_ms, lp._fn_timeout_ms, lp._bill_init
    gw_timeout_ms, gw_timeout_s = lp._timeout_s * 1000.0, lp._timeout_s
    half, idle_s, buffers, window = ep._alb_half_s, ep._idle_s, ep._buffers, ep._window_bytes
    closes, sample_s, header_b = ep._closes_on_client_close, ep._sample_s, c.header_bytes
    # the stall arithmetic's upload pieces (ClientNetwork.wire_s) for every request that can stall
    stall_w = np.zeros(n)
    stall_rest = np.zeros(n)
    if not buffers:
        can = ~is_l & (nb + header_b > window)
        stall_w[can] = _wire_s(c, np.full(int(can.sum()), float(window)), rtt[can])
        stall_rest[can] = _wire_s(c, (nb[can] + header_b - window).astype(np.float64), rtt[can])
    sw, sr = stall_w.tolist(), stall_rest.tolist()
    for k in todo:
        d = dl[k]
        if isl[k]:
            # ------------------------------------------------------------ LambdaPlatform.dispatch
            if d < last_l:
                ooo += 1
            else:
                last_l = d
            fn = fns[wl[k]]
            t_inv = d + gw_half
            if nbl[k] + ev_over > inv_max:
                st[k], resp[k] = 413, t_inv + gw_half
                continue
            busy = fn.busy
            if busy and busy[0][0] <= t_inv:
                fn.release(t_inv)
            env = None
            idle = fn.idle
            max_life = fn._max_life_s
            while idle:
                e = idle.pop()
                if e.expires_at < t_inv or (max_life is not None and e.created_at + max_life < t_inv):
                    fn.reclaimed += 1
                    continue
                env = e
                break
            if env is None:
                if lp.in_flight(t_inv) >= conc or not fn.take_token(t_inv):
                    fn.throttled += 1
                    st[k], resp[k] = thr_status, t_inv + gw_half
                    continue
                env = fn.new_env(t_inv)
                fn.cold_starts += 1
                init = draws.lognormal(init_med, init_sig) + fn.service.init_extra_ms
                start_ms = cold_over + init
                is_cold = True
            else:
                fn.warm_starts += 1
                init = start_ms = 0.0
                is_cold = False
            low, span, sigma = lam_c[wl[k]]
            if ub:
                x = ub.pop()
            else:
                x = draws.u()
                ub = draws._u
            ms = low + span * x + work_l[k]
            if sigma > 0:
                if zb:
                    z = zb.pop()
                else:
                    z = draws.z()
                    zb = draws._z
                ms = ms * exp(sigma * z)
            duration = ms + runtime_ms
            s = 200
            if duration > fn_timeout_ms:
                duration = ms = fn_timeout_ms
                s = 502
            lam_ms = start_ms + duration
            env.requests += 1
            fn._push_seq += 1
            heappush(busy, (t_inv + lam_ms / 1000.0, fn._push_seq, env))
            if lam_ms > gw_timeout_ms:
                st[k], resp[k] = 504, t_inv + gw_timeout_s + gw_half
            else:
                st[k], resp[k] = s, t_inv + lam_ms / 1000.0 + gw_half
                if s == 200:
                    exec_ms[k], cold[k] = ms, 1 if is_cold else 0
                    if is_cold:
                        init_ms[k] = init
                    billed[k] = float(ceil(duration + (init if (is_cold and bill_init) else 0.0)))
                    mem_limit[k], instance[k] = float(fn.memory_mb), env.id
            continue
        # -------------------------------------------------------------------- FargatePlatform.dispatch
        if d < last_e:
            ooo += 1
        else:
            last_e = d
        svc = svcs[wl[k]]
        t_body = bl[k] + half
        rtt_k = rl[k]
        t_gone = tl[k] + limit_s + rtt_k / 2.0 + half
        if buffers:
            if t_body > t_gone:
                svc.abandoned += 1
                st[k] = _TIMEOUT
                continue
            t_target = t_body
        else:
            t_target = d + half
        if svc.autoscaling:
            svc.advance(t_target)
        if svc._lor:
            task = svc.route(t_target)
        else:
            task = None
            tasks = svc.tasks
            nt = len(tasks)
            rr = svc._rr
            for _ in range(nt):
                rr = (rr + 1) % nt
                kk = tasks[rr]
                if not kk.draining and kk.ready_at <= t_target:
                    task = kk
                    break
            svc._rr = rr
        if task is None:
            svc.unavailable += 1
            st[k], resp[k] = 503, t_target + half
            continue
        slots = task.slots
        if len(slots) == 2:
            i = 0 if slots[0] <= slots[1] else 1
        else:
            i = min(range(len(slots)), key=slots.__getitem__)
        free = slots[i]
        start = t_target if t_target >= free else free
        pause_s = 0.0
        if start > t_target:
            heappush(svc._queued, start)
            n_bytes = nbl[k] + header_b
            if not buffers and n_bytes > window:
                stall_s = start - (t_target + sw[k])
                if stall_s > RESTART_AFTER_S:
                    t_done = start + rtt_k + sr[k]
                    pause_s = max(0.0, t_done - t_body)
                else:
                    pause_s = max(0.0, stall_s)
                t_body += pause_s
        if t_body > t_gone:
            free_at = max(start, t_gone)
            if not closes:
                free_at += idle_s
            slots[i] = free_at
            task.served += 1
            svc.abandoned += 1
            if svc.autoscaling:
                svc._record(t_target, start, 0.0)
            st[k], pz[k] = _TIMEOUT, pause_s
            continue
        low, span, sigma = ecs_c[wl[k]]
        if ub:
            x = ub.pop()
        else:
            x = draws.u()
            ub = draws._u
        ms = low + span * x + work_e[k]
        if sigma > 0:
            if zb:
                z = zb.pop()
            else:
                z = draws.z()
                zb = draws._z
            ms = ms * exp(sigma * z)
        ems = max(0.0, t_body - start) * 1000.0 + ms
        ready = start + ems / 1000.0 + sample_s
        slots[i] = ready
        task.served += 1
        svc.served += 1
        if svc.autoscaling:
            svc._record(t_target, start, cpu_e[k])
        pz[k] = pause_s
        if ready - t_body > idle_s:
            st[k], resp[k] = 504, t_body + idle_s + half
        else:
            st[k], resp[k] = 200, ready + half
            exec_ms[k], mem_limit[k], instance[k] = ems, svc.memory_mb, task.id
    model.out_of_order += ooo
    model.last_dispatch_s["lambda"], model.last_dispatch_s["ecs"] = last_l, last_e
    return _client_view(model, t, is_l, nb, connect, np.where(at_submit, upload0, upload), rtt, inflation,
                        np.asarray(st, dtype=np.int64), np.asarray(resp, dtype=np.float64),
                        np.asarray(pz, dtype=np.float64), exec_ms, cold, init_ms, billed, mem_limit, instance)


def _cpu_ms(services: list, widx: np.ndarray, nb: np.ndarray, share: bool) -> list[float]:
    """ServiceTime.cpu_work_ms of every request (divided by the CPU share when `share`)."""
    base = np.array([s._cpu_ms for s in services], dtype=np.float64)[widx]
    per_byte = np.array([s._cpu_ms_per_byte for s in services], dtype=np.float64)[widx]
    work = base + per_byte * nb
    if share:
        work = work / np.array([s._share for s in services], dtype=np.float64)[widx]
    return work.tolist()


def _client_view(model: PlatformModel, t: np.ndarray, is_l: np.ndarray, nb: np.ndarray, connect: np.ndarray,
                 upload: np.ndarray, rtt: np.ndarray, inflation: np.ndarray, status: np.ndarray,
                 response_at: np.ndarray, pause: np.ndarray, exec_ms: list, cold: list, init_ms: list,
                 billed: list, mem_limit: list, instance: list) -> dict[str, Any]:
    """What the client logs: the platforms' `_finish` and `client_timeout`, then `apply_client_timeout`."""
    limit_ms = model.client.request_timeout_s * 1000.0
    up_s = upload + pause
    upload_end = t + connect + up_s
    first_byte_at = response_at + rtt / 2.0 + inflation
    first_byte_at = np.where(is_l, first_byte_at, np.maximum(first_byte_at, upload_end))
    connect_ms = connect * 1000.0
    upload_ms = up_s * 1000.0
    first_byte_ms = (first_byte_at - upload_end) * 1000.0
    total_ms = (first_byte_at - t) * 1000.0
    gone = (status == _TIMEOUT) | (total_ms > limit_ms)
    c_ms = np.minimum(connect_ms, limit_ms)
    upload_ms = np.where(gone, np.maximum(0.0, np.minimum(upload_ms, limit_ms - c_ms)), upload_ms)
    first_byte_ms = np.where(gone, np.nan, first_byte_ms)
    total_ms = np.where(gone, limit_ms, total_ms)
    errors = {int(s): error_kind_for_status(int(s)) for s in np.unique(status) if s != _TIMEOUT}
    errors[_TIMEOUT] = "timeout"
    error = [errors[s] for s in np.where(gone, _TIMEOUT, status).tolist()]
    keep = ~gone
    cold_a = np.asarray(cold, dtype=np.int8)
    gl = gone.tolist()
    return {
        "http_status": pd.arrays.IntegerArray(np.where(gone, 0, status), gone.copy()), "error": error,
        "upload_ms": upload_ms, "first_byte_ms": first_byte_ms, "total_ms": total_ms,
        "execution_time_ms": np.where(keep, np.asarray(exec_ms, dtype=np.float64), np.nan),
        "cold_start": pd.arrays.BooleanArray(cold_a == 1, gone | (cold_a < 0)),
        "init_duration_ms": np.where(keep, np.asarray(init_ms, dtype=np.float64), np.nan),
        "billed_duration_ms": np.where(keep, np.asarray(billed, dtype=np.float64), np.nan),
        "memory_limit_mb": np.where(keep, np.asarray(mem_limit, dtype=np.float64), np.nan),
        "instance_id": [None if g else v for v, g in zip(instance, gl)],
        "actual_payload_size_kb": np.where(keep, nb / 1024.0, np.nan),
    }
