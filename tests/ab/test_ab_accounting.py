"""The online A/B's accounting: what the router proxy counts for each request over real HTTP (an
upstream that refuses, one that answers after the client gave up), the platform of a line whose
client never saw the answer, and the report's reconciliation, bookkeeping sentence and verdict."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hybridopt.ab import online
from hybridopt.ab.proxy import RouterProxy
from hybridopt.data.features import FeatureSpec
from hybridopt.report import ab as report
from hybridopt.router.handler import Router
from hybridopt.router.package import router_config
from hybridopt.testing import write_synthetic_model_dir


@pytest.fixture(scope="module")
def router(params, tmp_path_factory) -> Router:
    d = write_synthetic_model_dir(FeatureSpec.from_params(params), tmp_path_factory.mktemp("acc") / "model",
                                  "lightgbm", n_trees=10, seed=4)
    return Router.from_dir(d, router_config(params))


def _routes(params) -> dict[str, dict[str, str]]:
    return {w: {"lambda": wl.lambda_route, "ecs": wl.ecs_route} for w, wl in params.workloads.items()}


def _dead_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                       # nothing listens there: connection refused
    return f"http://127.0.0.1:{port}"


class _Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    delay_s = 0.8

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(self.delay_s)
        body = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _post(url: str, arm: str, timeout_s: float) -> tuple[int, dict[str, str]]:
    req = urllib.request.Request(f"{url}/route/lightweight_api", data=b'{"x":1}', headers={
        "content-type": "application/json", "x-ab-arm": arm, "x-request-id": f"r-{arm}-{time.perf_counter()}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            resp.read()
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers)


def test_an_unreachable_platform_is_a_502_counted_in_its_arm(params, router) -> None:
    dead = _dead_url()
    with RouterProxy(router, {"lambda": dead, "ecs": dead}, _routes(params), timeout_s=2.0) as px:
        got = [(arm, *_post(px.base_url, arm, 5.0)) for arm in ("control", "treatment", "treatment")]
        counts = dict(px.counts)
        records = list(px.decisions)
    assert all(status == 502 and h["x-router-platform"] in ("lambda", "ecs") for _, status, h in got)
    want: dict[str, int] = {}
    for arm, _, h in got:
        want[f"{arm}:{h['x-router-platform']}:502"] = want.get(f"{arm}:{h['x-router-platform']}:502", 0) + 1
    assert counts == want
    assert records == []                  # a classifier-only router keeps no decision records


def test_a_client_that_timed_out_is_counted_client_gone_beside_the_answer(params, router) -> None:
    slow = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{slow.server_address[1]}"
    try:
        with RouterProxy(router, {"lambda": url, "ecs": url}, _routes(params), timeout_s=5.0) as px:
            with pytest.raises((TimeoutError, urllib.error.URLError)):
                _post(px.base_url, "control", 0.2)
            status, h = _post(px.base_url, "treatment", 5.0)
            assert px.wait_idle(5.0) and px.active == 0      # the gone client's forward finishes after it left
            counts = dict(px.counts)
    finally:
        slow.shutdown()
        slow.server_close()
    assert status == 200
    gone = {k: v for k, v in counts.items() if k.endswith(":client_gone")}
    answered = {k: v for k, v in counts.items() if k.endswith(":answered")}
    assert sum(answered.values()) == 2 and f"treatment:{h['x-router-platform']}:answered" in answered
    assert len(gone) == 1 and next(iter(gone)).startswith("control:") and sum(gone.values()) == 1
    assert "client_gone" not in counts


def test_a_line_without_platform_takes_the_routed_one() -> None:
    lines = pd.DataFrame({"request_id": ["a", "b", "c"], "platform": pd.Categorical(["lambda", None, None])})
    decided = pd.DataFrame({"routed_platform": ["lambda", "ecs", None]})
    out = online.with_routed_platform(lines, decided)
    assert out["platform"].tolist()[:2] == ["lambda", "ecs"] and pd.isna(out["platform"].iloc[2])
    assert online.with_routed_platform(lines, None) is lines
    with pytest.raises(ValueError, match="2 rows for 3"):
        online.with_routed_platform(lines, decided.iloc[:2])


def test_the_accounting_table_reconciles_to_the_lines() -> None:
    counts = {"control:lambda:answered": 3, "control:ecs:answered": 1, "treatment:ecs:answered": 2,
              "treatment:ecs:502": 2, "treatment:ecs:client_gone": 3}
    frame = pd.DataFrame({"arm": ["control"] * 4 + ["treatment"] * 4,
                          "ok": [True, True, True, False, True, False, False, False]})
    t = report.online_accounting_table(counts, frame)
    assert t.loc["routed requests (sum of the rows above)", ["control", "treatment", "total"]].tolist() == [4, 4, 8]
    assert t.loc["contract lines (Artillery)", "total"] == 8
    assert t.loc["routed to ECS, no answer (502)", ["control", "treatment"]].tolist() == [0, 2]
    assert t.loc["of which: client gone before the answer", "treatment"] == 3
    assert t.loc["failed (in the arm's error rate)", ["control", "treatment"]].tolist() == [1, 3]
    assert t["meaning"].str.len().gt(20).all()


def test_the_completions_sentence_reconciles_reports_and_expiries() -> None:
    s = report.completions_sentence({"reported": 395, "unknown": 5, "expired": 5}, 400)
    assert "395 when the proxy reported" in s and "5 expired" in s and "late reports, 5" in s and "still" not in s
    assert "2 still in flight" in report.completions_sentence({"reported": 398, "unknown": 0, "expired": 0}, 400)
    assert "1 record(s) missing" in report.completions_sentence({"reported": 396, "unknown": 4, "expired": 4}, 399)


def _result(rows: dict[str, tuple[float, float, float, bool]]) -> SimpleNamespace:
    c = pd.DataFrame([{"metric": m, "control": a, "treatment": b, "difference": b - a, "p_value": p,
                       "significant": s} for m, (a, b, p, s) in rows.items()]).set_index("metric")
    return SimpleNamespace(comparison=c)


def test_the_verdict_names_direction_significance_and_the_timeout_cap() -> None:
    res = _result({"bill_avg_usd_per_request": (1.2e-5, 1.9e-5, 1e-9, True),
                   "latency_p95_ms": (7127.0, 10000.0, 0.0005, True),
                   "latency_p50_ms": (2310.0, 2265.0, 0.4, False),
                   "error_rate": (0.126, 0.114, 1e-30, True)})
    v = report.verdict(res, "sim", 10_000.0, 0.05)
    assert "Bill higher in the treatment (0.0120 USD per 1k requests control → 0.0190" in v
    assert "at the client timeout cap of 10,000 ms" in v and "at least 5 %" in v
    assert "error rate lower in the treatment" in v and "p < 0.001" in v
    assert "Not significant (the CI includes 0): latency p50." in v


def test_plan_power_table_is_per_1k_with_whole_request_counts() -> None:
    pp = pd.DataFrame({"mde_at_plan": [1e-7, 30.0], "mde_relative": [0.01, 0.02],
                       "requests_for_observed": [1657.2, np.inf], "requests_for_target": [279.1, 46159.4],
                       "plan_detects_observed": [True, False]},
                      index=pd.Index(["bill_avg_usd_per_request", "latency_p50_ms"], name="metric"))
    pp.attrs["target_relative"] = 0.05
    t = report.plan_power_table(pp)
    assert t.loc["bill avg USD per 1k requests", "MDE at the plan's size"] == pytest.approx(1e-4)
    assert t["requests to detect the observed difference"].tolist()[0] == 1658
    assert pd.isna(t["requests to detect the observed difference"].tolist()[1])
    assert t.loc["latency_p50_ms", "requests to detect a 5 % change"] == 46160
