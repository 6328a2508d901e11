"""The Artillery harness (artillery/variance-functions.js, request-log.js, preload.js and the script
template variance-test.yml) run for real: pinned Artillery 2.0.21 against a small stdlib HTTP server
on 127.0.0.1 that answers the way the platforms can (JSON, HTTP errors with JSON or HTML bodies,
non-JSON 200, slow answers, reset connections, a server that goes away), plus fast tests of the
processors' pure parts through node.

Every slow test runs one short window through `collect.run_window` (the orchestrator's own path)
and checks the one invariant the harness exists for: lines written == attempts made."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time
from collections import Counter
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import pytest
from hybridopt import collection as collect
from hybridopt import paths
from hybridopt.collection import loadgen
from hybridopt.data import contract
from hybridopt.data.ingest import vocab_of
from hybridopt.data.reader import validate
from hybridopt.params import load_params

ADIR = paths.ARTILLERY_DIR
NODE_MODULES = ADIR / "node_modules" / "artillery" / "package.json"
needs_artillery = pytest.mark.skipif(not NODE_MODULES.is_file(),
                                     reason="Artillery not installed: run `make install-artillery`")

Action = tuple[Any, ...]


# ----------------------------------------------------------------------------------- a small server
class StubServer:
    """ThreadingHTTPServer on 127.0.0.1:0; `behave(path, body_len, headers) -> action` decides each
    answer: ("json", status, obj) | ("raw", status, content_type, bytes) | ("sleep", s, action) |
    ("reset",). It records (path, body_len, x-request-id, x-pair-id, arrival time) per request."""

    def __init__(self, behave: Callable[[str, int, Any], Action] | None = None) -> None:
        self.behave = behave or (lambda path, n, h: ("json", 200, default_body(path, n)))
        self.seen: list[tuple[str, int, str | None, str | None, float]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                n = int(self.headers.get("content-length", 0))
                remaining = n
                while remaining:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        return
                    remaining -= len(chunk)
                with outer._lock:
                    outer.seen.append((self.path, n, self.headers.get("x-request-id"),
                                       self.headers.get("x-pair-id"), time.time()))
                self._act(outer.behave(self.path, n, self.headers))

            def _act(self, action: Action) -> None:
                kind = action[0]
                if kind == "sleep":
                    time.sleep(action[1])
                    return self._act(action[2])
                if kind == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return None
                if kind == "json":
                    status, body, ctype = action[1], json.dumps(action[2]).encode(), "application/json"
                else:
                    status, ctype, body = action[1], action[2], action[3]
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return None

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients that gave up (timeouts) make writes fail: expected here

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def target(self) -> collect.Target:
        return collect.Target("testbed", self.url, self.url, stop=lambda: None)


def default_body(path: str, n: int) -> dict[str, Any]:
    platform = "ecs" if path.endswith("/process") else "lambda"
    return {"request_id": "echo", "platform": platform, "workload_type": "x",
            "metrics": {"execution_time_ms": 12.5, "cold_start": platform == "lambda" and n % 2 == 0,
                        "memory_limit_mb": "128", "payload_size_kb": n / 1024, "instance_id": 7}}


def small_params(tmp_path: Path, **collection: Any):
    over = {"data": {"raw_dir": str(tmp_path / "raw")},
            "collection": {"window_wall_s": 4, "drain_grace_s": 10, "http_timeout_s": 10, **collection}}
    return load_params("quick", overrides=over)


def lines_of(run_dir: Path) -> list[dict[str, Any]]:
    out = []
    for f in sorted(run_dir.glob("*.jsonl")):
        raw = f.read_bytes()
        assert raw == b"" or raw.endswith(b"\n"), f"{f}: last line not terminated"
        out += [json.loads(x) for x in raw.decode().splitlines()]
    return out


def assert_contract(params: Any, recs: list[dict[str, Any]]) -> None:
    """Every line passes the lead's reader unchanged (kept, no repair), and pairs are complete."""
    vocab = vocab_of(params)
    for r in recs:
        assert list(r) == list(contract.COLUMNS)
        _, repairs = validate(dict(r), vocab)
        assert repairs == [], (repairs, r)
    by_pair = Counter(r["pair_id"] for r in recs)
    assert set(by_pair.values()) == {2}
    plats: dict[str, set[str]] = {}
    for r in recs:
        plats.setdefault(r["pair_id"], set()).add(r["platform"])
    assert all(v == {"lambda", "ecs"} for v in plats.values())
    assert len({r["request_id"] for r in recs}) == len(recs)


def stop_after_lines(run_dir: Path, n_lines: int, stop: Callable[[], None], timeout_s: float = 60) -> None:
    """In a background thread: call `stop` once the run directory holds `n_lines` contract lines."""

    def wait_then_stop() -> None:
        deadline = time.time() + timeout_s
        while time.time() < deadline and sum(loadgen.count_lines(run_dir).values() if run_dir.is_dir() else [0]) < n_lines:
            time.sleep(0.05)
        stop()

    threading.Thread(target=wait_then_stop, daemon=True).start()


# --------------------------------------------------------------------------- fast: processor internals
def _node(js: str) -> Any:
    out = subprocess.run(["node", "-e", js], cwd=ADIR, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_bodies_are_prebuilt_with_exact_payload_sizes_and_valid_json() -> None:
    params = load_params("quick")
    wl = loadgen.workload_config(params)
    res = _node(f"""
      const f = require('./request-log.js');
      const b = f.buildBodies({json.dumps(wl)}, 42);
      const out = {{}};
      for (const [w, sizes] of Object.entries(b)) {{
        out[w] = {{}};
        for (const [s, buf] of Object.entries(sizes)) {{
          const o = JSON.parse(buf.toString());
          const p = typeof o.payload === 'string' ? JSON.stringify(o.payload).length - 2 : JSON.stringify(o.payload).length;
          const ok64 = typeof o.payload !== 'string' || Buffer.from(o.payload, 'base64').toString('base64') === o.payload;
          out[w][s] = [Buffer.isBuffer(buf), o.workload_type, p, ok64, buf.length];
        }}
      }}
      console.log(JSON.stringify(out));""")
    for w, cfg in wl.items():
        assert sorted(map(float, res[w])) == sorted(cfg["sizes_kb"])
        for s, (is_buf, wt, payload_chars, ok64, body_len) in res[w].items():
            target = round(float(s) * 1024)
            assert is_buf and wt == w and ok64
            if cfg["encoding"] == "base64":
                assert target - 4 < payload_chars <= target
            else:
                assert payload_chars == target
            assert body_len < payload_chars + 80


def test_schedule_errors_clock_and_metrics_helpers() -> None:
    res = _node("""
      const f = require('./request-log.js');
      const {scheduleAt} = require('./variance-functions.js')._internals;
      const ph = [{name: 'a', duration_s: 10, arrival_rate_rps: 5},
                  {name: 'r', duration_s: 11, arrival_rate_rps: 5, ramp_to_rps: 25}];
      console.log(JSON.stringify({
        s: [0, 9.9, 10, 15.5, 20.99, 30].map((t) => scheduleAt(ph, t)),
        iso: f.isoWithOffset(Date.parse('2025-11-24T02:00:00+05:30') + 1250, 330),
        neg: f.isoWithOffset(Date.parse('2025-11-24T02:00:00Z'), -300),
        c: [f.clockIso({start: '2025-11-24T12:00:00+05:30', utc_offset_minutes: 330, rate: 1}, 1000, 3500),
            f.clockIso({start: '2025-11-24T12:00:00+05:30', utc_offset_minutes: 330, rate: 1, real: true}, 1000,
                       Date.parse('2025-11-30T10:00:00Z'))],
        k: [{code: 'ETIMEDOUT', name: 'TimeoutError'}, {code: 'ECONNREFUSED'}, {code: 'ECONNRESET'},
            {message: 'socket hang up'}, {code: 'EPIPE'}, {name: 'Whatever'}].map(f.errorKindOf),
        r: [[200, {}], [200, null], [413, {}], [429, null], [504, null], [500, {}], [302, null]]
             .map(([s, p]) => f.errorKindOfResponse(s, p)),
        m: f.platformMetrics({metrics: {execution_time_ms: '12.5', cold_start: 'true', memory_limit_mb: '128',
                                        payload_size_kb: 4.5, instance_id: 3}, billed_duration_ms: 13}),
        j: [f.parseJsonObject('{"a":1}'), f.parseJsonObject('<html>'), f.parseJsonObject('[1]'),
            f.parseJsonObject('')],
        t: [f.timingsOf({start: 100, socket: 101, connect: 103, upload: 120, response: 140, end: 160,
                         phases: {total: 60}}),
            // large body: Node emitted `finish` after `response`
            f.timingsOf({start: 100, socket: 101, connect: 103, upload: 150, response: 140, end: 160,
                         phases: {total: 60, firstByte: NaN}}),
            f.timingsOf({start: 100, connect: 103, upload: 120, error: 1600, phases: {total: 1500}}),
            f.timingsOf({start: 100, socket: 101, error: 102, phases: {total: 2}})]
      }));""")
    assert [x["phase"] for x in res["s"]] == ["a", "a", "r", "r", "r", "r"]
    assert [x["rate"] for x in res["s"]] == [5, 5, 5, 5 + 2 * 5, 5 + 2 * 10, 25]
    assert res["iso"] == "2025-11-24T02:00:01.250+05:30"
    assert res["neg"] == "2025-11-23T21:00:00.000-05:00"
    assert res["c"] == ["2025-11-24T12:00:02.500+05:30", "2025-11-30T15:30:00.000+05:30"]
    assert res["k"] == ["timeout", "connection", "connection", "connection", "connection", "client_error"]
    assert res["r"] == [None, "non_json", "payload_too_large", "throttled", "gateway_timeout", "http_error",
                        "http_error"]
    assert res["m"] == {"execution_time_ms": 12.5, "cold_start": True, "init_duration_ms": None,
                        "billed_duration_ms": 13, "memory_limit_mb": 128, "instance_id": "3",
                        "actual_payload_size_kb": 4.5}
    assert res["j"] == [{"a": 1}, None, None, None]
    assert res["t"] == [{"upload_ms": 17, "first_byte_ms": 20, "total_ms": 60},
                        {"upload_ms": 37, "first_byte_ms": 0, "total_ms": 60},
                        {"upload_ms": 17, "first_byte_ms": None, "total_ms": 1500},
                        {"upload_ms": None, "first_byte_ms": None, "total_ms": 2}]


def test_probe_phase_forces_the_probe_workload_and_is_checked() -> None:
    params = load_params("quick")
    wl = loadgen.workload_config(params)
    res = _node(f"""
      const {{pickWorkload, validateConfig, scheduleAt}} = require('./variance-functions.js')._internals;
      const f = require('./request-log.js');
      const phases = [{{name: 'probe', duration_s: 5, arrival_rate_rps: 2, pause_after_s: 1}},
                      {{name: 'steady', duration_s: 50, arrival_rate_rps: 15}}];
      const cfg = {{workloads: {json.dumps(wl)}, probe: {{phase: 'probe', workload: 'lightweight_api'}}, phases}};
      const rng = f.makeRng(3);
      const at = (t) => pickWorkload(cfg, scheduleAt(phases, t).phase, rng);
      const probe = [0, 1, 2.5, 4.99, 5.0, 5.3, 5.99].map(at);   // the pause after it is the probe's too
      const load = Array.from({{length: 400}}, (_, i) => at(6 + i / 10));
      const noProbe = Array.from({{length: 200}}, () => pickWorkload(Object.assign({{}}, cfg, {{probe: null}}), 'probe', rng));
      const base = {{schema_version: f.SCHEMA_VERSION, experiment: 'x', run_id: 'r', source: 'testbed',
        time_window: 'midday', load_pattern: 'medium_load', out_dir: '/tmp', seed: 1, http_timeout_s: 1,
        drain_grace_s: 1, targets: {{lambda_base_url: 'http://a', ecs_base_url: 'http://b'}},
        workloads: cfg.workloads, phases,
        virtual_clock: {{start: '2025-11-24T12:00:00+05:30', utc_offset_minutes: 330, rate: 1}}}};
      const err = (c) => {{ try {{ validateConfig(c, 'cfg.json'); return 'ok'; }} catch (e) {{ return e.message; }} }};
      console.log(JSON.stringify({{probe, load: [...new Set(load)].sort(), noProbe: new Set(noProbe).size,
        ok: [err(Object.assign({{}}, base, {{probe: cfg.probe}})), err(Object.assign({{}}, base, {{probe: null}})), err(base)],
        badWorkload: err(Object.assign({{}}, base, {{probe: {{phase: 'probe', workload: 'nope'}}}})),
        badPhase: err(Object.assign({{}}, base, {{probe: {{phase: 'warmup', workload: 'lightweight_api'}}}}))}}));""")
    assert res["probe"] == ["lightweight_api"] * 7
    assert res["load"] == sorted(wl)                  # after the probe every workload is drawn again
    assert res["noProbe"] == len(wl)                  # no probe in the run config: no workload is forced
    assert res["ok"] == ["ok", "ok", "ok"]
    assert "cfg.json: key 'probe.workload' is \"nope\", not one of the workloads" in res["badWorkload"]
    assert "cfg.json: key 'probe.phase' is \"warmup\", which no entry of 'phases' names" in res["badPhase"]


def test_contract_fields_match_contract_py() -> None:
    res = _node("const f = require('./request-log.js'); console.log(JSON.stringify({fields: f.CONTRACT_FIELDS, "
                "version: f.SCHEMA_VERSION, line: f.contractRecord({request_id: 'r', error: null, bogus: 1})}))")
    assert tuple(res["fields"]) == contract.COLUMNS and res["version"] == contract.SCHEMA_VERSION
    assert list(res["line"]) == list(contract.COLUMNS) and res["line"]["request_id"] == "r"
    assert all(v is None for k, v in res["line"].items() if k != "request_id")


def test_both_processors_share_request_log_js_and_load_in_any_environment(tmp_path: Path) -> None:
    """The A/B processor loads with or without a collection run config in the environment, and
    both processors write lines through the same helpers (no copy of them in either file)."""
    env = {**os.environ, "HYBRIDOPT_RUN_CONFIG": str(tmp_path / "unused.json")}
    out = subprocess.run(["node", "-e", "const ab = require('./ab-functions.js'); const v = "
                          "require('./variance-functions.js'); console.log(typeof ab.abStart, typeof v.hyStartPair)"],
                         cwd=ADIR, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0 and out.stdout.split() == ["function", "function"], out.stderr
    shared = ("function buildBodies", "function errorKindOf", "function timingsOf", "CONTRACT_FIELDS = [")
    for name in ("variance-functions.js", "ab-functions.js"):
        text = (ADIR / name).read_text()
        assert "require('./request-log.js')" in text
        assert not [s for s in shared if s in text], name


def test_processor_refuses_a_bad_run_config(tmp_path: Path) -> None:
    bad = {"schema_version": "1.0", "experiment": "x"}
    p = tmp_path / "run-config.json"
    p.write_text(json.dumps(bad))
    out = subprocess.run(["node", "-e", "const f = require('./variance-functions.js'); f.hyStartPair({vars: {}}, "
                          "{emit() {}}, (e) => { console.log(e ? e.message : 'no error'); });"],
                         cwd=ADIR, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "HYBRIDOPT_RUN_CONFIG": str(p)})
    assert "run_id" in out.stdout and str(p) in out.stdout, out.stdout + out.stderr
    out = subprocess.run(["node", "-e", "require('./variance-functions.js')._internals; "
                          "const f = require('./variance-functions.js'); f.hyStartPair({vars: {}}, {emit() {}}, "
                          "(e) => console.log(e.message));"], cwd=ADIR, capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if k != "HYBRIDOPT_RUN_CONFIG"})
    assert "HYBRIDOPT_RUN_CONFIG is not set" in out.stdout


# ------------------------------------------------------------------------------- slow: real Artillery
def _mixed(path: str, n: int, headers: Any) -> Action:
    """One outcome per (workload, platform): every error kind the contract knows from the network."""
    if path == "/heavy" and n > 6 * 1024 * 1024:
        return ("json", 413, {"message": "Request Entity Too Large"})
    if path == "/heavy/process":
        return ("raw", 504, "text/html", b"<html><body><h1>504 Gateway Time-out</h1></body></html>")
    if path == "/medium":
        return ("raw", 200, "text/html", b"<html>not json</html>")
    if path == "/thumbnail/process":
        return ("reset",)
    if path == "/lightweight/process":
        return ("sleep", 3.0, ("json", 200, default_body(path, n)))
    return ("json", 200, default_body(path, n))


@pytest.mark.slow
@needs_artillery
def test_every_attempt_is_one_line_for_every_outcome(tmp_path: Path) -> None:
    server = StubServer(_mixed)
    params = small_params(tmp_path, http_timeout_s=1.5, window_wall_s=5)
    try:
        m = collect.run_window(params, "midday", server.target(),
                               virtual_start=loadgen.window_bounds(params, "midday",
                                                                   datetime(2025, 11, 24).date())[0],
                               progress=lambda e: None)
    finally:
        server.stop()
    recs = lines_of(collect.run_dir_for(params, "midday"))
    assert m["status"] == "complete"
    assert m["lines_written"] == m["attempts_made"] == len(recs) > 50
    assert m["checks"] == {"lines_equal_attempts": True, "http_requests_equal_attempts": True,
                           "attempts_equal_two_per_pair": True, "health_final": True}
    assert_contract(params, recs)
    kinds = Counter((r["workload_type"], r["platform"], r["error"]) for r in recs)
    for (w, p, e) in kinds:
        expected = {("heavy_processing", "ecs"): {"gateway_timeout"},
                    ("medium_processing", "lambda"): {"non_json"},
                    ("thumbnail_processing", "ecs"): {"connection"},
                    ("lightweight_api", "ecs"): {"timeout"},
                    ("heavy_processing", "lambda"): {None, "payload_too_large"}}.get((w, p), {None})
        assert e in expected, (w, p, e)
    errors = Counter(r["error"] for r in recs)
    assert {"gateway_timeout", "non_json", "connection", "timeout", "payload_too_large", None} <= set(errors)
    for r in recs:
        if r["error"] in ("timeout", "connection"):
            assert r["http_status"] is None and r["execution_time_ms"] is None
        if r["error"] == "timeout":
            assert 1400 <= r["total_ms"] < 3000
        if r["error"] is None:
            assert r["memory_limit_mb"] == 128 and r["execution_time_ms"] == 12.5 and r["instance_id"] == "7"
            assert r["total_ms"] >= r["first_byte_ms"] >= 0 and r["upload_ms"] >= 0
        if r["error"] == "payload_too_large":
            assert r["target_payload_size_kb"] > 6 * 1024 and r["http_status"] == 413
        assert datetime.fromisoformat(r["sent_at"]).hour == 12
        assert r["time_window"] == "midday" and r["load_pattern"] == "medium_load"
    # a pair goes out together, and the body the server saw is the prebuilt one for the size drawn
    by_pair: dict[str, list[datetime]] = {}
    for r in recs:
        by_pair.setdefault(r["pair_id"], []).append(datetime.fromisoformat(r["sent_at"]))
    gaps = sorted(abs((a - b).total_seconds()) for a, b in by_pair.values())
    assert gaps[len(gaps) // 2] < 0.010 and gaps[-1] < 0.25, gaps[-5:]
    seen = {rid: n for _, n, rid, _, _ in server.seen}
    for r in recs:
        if r["request_id"] in seen:
            assert abs(seen[r["request_id"]] - r["target_payload_size_kb"] * 1024) < 100
    counters = m["artillery"]["counters"]
    assert counters["http.requests"] == len(recs)
    assert any(k.startswith("lambda_heavy_processing") for k in counters["per_endpoint"])


@pytest.mark.slow
@needs_artillery
def test_server_gone_mid_run_is_logged_as_connection_failures(tmp_path: Path) -> None:
    server = StubServer(lambda path, n, h: ("sleep", 0.05, ("json", 200, default_body(path, n))))
    params = small_params(tmp_path, window_wall_s=8)
    # the server goes away once the run has written a few lines (Artillery's start-up time varies)
    stop_after_lines(collect.run_dir_for(params, "early_morning"), 12, server.stop)
    m = collect.run_window(params, "early_morning", server.target(), virtual_start=None, progress=lambda e: None)
    recs = lines_of(collect.run_dir_for(params, "early_morning"))
    assert m["status"] == "complete" and m["checks"]["lines_equal_attempts"]
    assert m["lines_written"] == m["attempts_made"] == len(recs) == 2 * m["artillery"]["counters"]["hybridopt.pairs"]
    errors = Counter(r["error"] for r in recs)
    assert errors[None] > 5 and errors["connection"] > 5, errors
    assert_contract(params, recs)
    assert m["clock"] == "real"


def _sigint_run(tmp_path: Path, grace_s: float, sleep_s: float,
                sig: int = signal.SIGINT) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    server = StubServer(lambda path, n, h: ("sleep", sleep_s, ("json", 200, default_body(path, n))))
    params = small_params(tmp_path, window_wall_s=30, drain_grace_s=grace_s, http_timeout_s=20)
    main = threading.main_thread().ident
    assert main == threading.get_ident()

    def interrupt() -> None:
        run_dir = collect.run_dir_for(params, "evening")
        deadline = time.time() + 40
        while time.time() < deadline and sum(loadgen.count_lines(run_dir).values() or [0]) < 20:
            time.sleep(0.2)
        os.kill(os.getpid(), sig)  # Ctrl-C (or a kill) at the orchestrator

    threading.Thread(target=interrupt, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            collect.run_window(params, "evening", server.target(), virtual_start=None, progress=lambda e: None)
    finally:
        server.stop()
    run_dir = collect.run_dir_for(params, "evening")
    return collect.read_manifest(run_dir) or {}, lines_of(run_dir)


@pytest.mark.slow
@needs_artillery
def test_sigint_mid_window_keeps_every_line_and_drains_in_flight(tmp_path: Path, ctrl_c_raises: None) -> None:
    m, recs = _sigint_run(tmp_path, grace_s=10, sleep_s=1.0)
    assert m["status"] == "interrupted"
    assert m["lines_written"] == m["attempts_made"] == len(recs) >= 20
    assert m["attempts_abandoned"] == 0 and m["checks"]["health_final"]
    assert_contract(small_params(tmp_path), recs)
    assert all(r["error"] is None for r in recs)  # in-flight requests finished and were logged


@pytest.mark.slow
@needs_artillery
def test_sigint_without_drain_accounts_for_abandoned_attempts(tmp_path: Path, ctrl_c_raises: None) -> None:
    m, recs = _sigint_run(tmp_path, grace_s=0, sleep_s=4.0)
    assert m["status"] == "interrupted"
    assert m["attempts_abandoned"] > 0
    assert m["lines_written"] == len(recs) >= 20
    assert m["lines_written"] + m["attempts_abandoned"] == m["attempts_made"]
    health = loadgen.health_totals(loadgen.read_health(collect.run_dir_for(
        load_params("quick", overrides={"data": {"raw_dir": str(tmp_path / "raw")}}), "evening")))
    ids = {a["request_id"] for a in health["abandoned_in_flight"]}
    assert len(ids) == m["attempts_abandoned"] and not ids & {r["request_id"] for r in recs}


@pytest.mark.slow
@needs_artillery
def test_sigterm_to_the_orchestrator_ends_the_window_like_ctrl_c(tmp_path: Path) -> None:
    m, recs = _sigint_run(tmp_path, grace_s=10, sleep_s=0.5, sig=signal.SIGTERM)
    assert m["status"] == "interrupted" and m["lines_written"] == m["attempts_made"] == len(recs) >= 20
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the orchestrator's handler is gone again
