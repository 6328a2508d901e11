"""The A/B runs: through the router proxy on the real testbed over HTTP with real Artillery, and
in the simulator in virtual time."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from hybridopt import paths
from hybridopt.ab import online as abtest
from hybridopt.ab import stats as ab
from hybridopt.ab.proxy import proxy_for
from hybridopt.data.features import FeatureSpec
from hybridopt.params import load_params
from hybridopt.router.handler import Router
from hybridopt.router.package import build_package, router_config
from hybridopt.testing import write_synthetic_model_dir

PROFILE = "thesis-2025-11"


@pytest.fixture(scope="module")
def params():
    return load_params(PROFILE)


@pytest.fixture(scope="module")
def model(params, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ab")
    d = write_synthetic_model_dir(FeatureSpec.from_params(params), tmp / "model", "lightgbm", n_trees=40, seed=4)
    z = build_package(d, tmp / "router.zip", router_config(params))
    return d, Path(z.zip_path), tmp


@pytest.mark.slow
def test_router_proxy_forwards_to_the_chosen_platform_on_the_testbed(params, model) -> None:
    from hybridopt.emulation import testbed

    d, _, _ = model
    router = Router.from_dir(d, router_config(params))
    body = json.dumps({"request_id": "r1", "workload_type": "thumbnail_processing", "payload": "x" * 2048}).encode()
    with testbed.start(params) as tb, proxy_for(router, params, tb.base_url, tb.base_url) as px:
        seen = {}
        for arm in ("control", "treatment"):
            req = urllib.request.Request(f"{px.base_url}/route/thumbnail_processing", data=body, headers={
                "content-type": "application/json", "x-ab-arm": arm, "x-sent-at": "2025-11-24T12:05:00+05:30",
                "x-load-pattern": "medium_load"})
            with urllib.request.urlopen(req, timeout=60) as resp:
                doc = json.loads(resp.read())
                seen[arm] = resp.headers["x-router-platform"]
                assert resp.status == 200 and doc["platform"] == seen[arm]        # the platform that answered
                assert resp.headers["x-router-arm"] == arm and "Server-Timing" in resp.headers
                assert 0 <= float(resp.headers["x-router-probability"]) <= 1
        assert seen["control"] == router.static_rule["thumbnail_processing"]
        stats = json.loads(urllib.request.urlopen(f"{tb.base_url}/_testbed/stats").read())
        wl = params.workloads["thumbnail_processing"]
        expected = {wl.lambda_route if p == "lambda" else wl.ecs_route for p in seen.values()}
        assert expected <= set(stats["requests"])
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(f"{px.base_url}/route/nope", data=b"{}"))
        assert e.value.code == 400 and json.loads(e.value.read())["error"]["field"] == "workload_type"


@pytest.mark.slow
def test_artillery_ab_on_the_testbed_logs_arm_and_platform(params, model) -> None:
    if not (paths.ARTILLERY_DIR / "node_modules" / "artillery" / "bin" / "run").is_file():
        pytest.skip("Artillery is not installed (make install-artillery)")
    d, zp, tmp = model
    run = abtest.run_testbed_ab(params, zp, tmp / "run", n_requests=40, rate_rps=10)
    assert run.artillery_rc == 0 and run.lines == 40, (run.out_dir / "artillery.log").read_text()[-2000:]
    read = abtest.read_ab_lines(params, run.out_dir / "lines")
    assert read.ledger.accounted and read.ledger.lines_total == run.ledger.lines_total == 40
    assert read.ledger.quarantined == 0, dict(read.ledger.quarantine_reasons)
    lines = read.requests.astype({c: object for c in ("arm", "platform", "workload_type", "source")})
    assert set(lines["arm"]) == {"control", "treatment"}
    assert set(lines["platform"].dropna()) <= {"lambda", "ecs"}
    assert lines["router_probability"].between(0, 1).all() and lines["source"].eq("testbed").all()
    routed = {k: v for k, v in run.proxy_counts.items() if k.endswith((":answered", ":502"))}
    assert sum(routed.values()) == 40 and {k.split(":")[0] for k in routed} == {"control", "treatment"}
    router = Router.from_dir(d, router_config(params))
    control = lines[lines.arm == "control"]
    assert (control["platform"] == control["workload_type"].map(router.static_rule)).all()
    req = run.requests
    assert req["bill_usd"].notna().all() and (req["bill_usd"] > 0).all()
    res = ab.compare_arms(req, n_resamples=200)
    assert res.n["control"] + res.n["treatment"] == 40


def test_simulated_ab_routes_arms_and_costs_requests(params, model) -> None:
    d, _, _ = model
    frame, facts = abtest.simulated_ab(params, d, n_requests=4000, seed=3)
    assert len(frame) == 4000 and facts["requests"] == 4000
    assert 0.45 < (frame["arm"] == "treatment").mean() < 0.55
    router = Router.from_dir(d, router_config(params))
    c = frame[frame.arm == "control"]
    assert (c["platform"] == c["workload_type"].map(router.static_rule)).all()
    t = frame[frame.arm == "treatment"]
    assert ((t["router_probability"] >= 0.5) == (t["platform"] == "lambda")).all()
    assert frame["bill_usd"].notna().all() and frame["source"].eq("simulator").all()
    assert facts["policy"] == "classifier" and facts["loop"] == "open"
    assert np.isfinite(ab.compare_arms(frame, n_resamples=200).comparison["difference"].iloc[0])


def test_ab_cli_refuses_aws_without_opt_in(capsys) -> None:
    from hybridopt.cli import main

    assert main(["ab", "--profile", "aws"]) == 2
    err = capsys.readouterr().err
    assert "--aws-opt-in" in err and err.count("\n") == 1
