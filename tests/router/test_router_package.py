"""The Lambda zip: small, deterministic, and it imports and answers in a fresh interpreter that
has nothing but the unzipped folder (and the standard library) on its path."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest
from hybridopt.data.features import FeatureSpec
from hybridopt.params import load_params
from hybridopt.router.handler import PackageError, Router
from hybridopt.router.package import SHIPPED_MODULES, build_package, router_config
from hybridopt.testing import write_synthetic_model_dir

PROFILE = "thesis-2025-11"

# Runs under `python -I -S`: no site-packages, no PYTHON* variables, no script dir; sys.path is
# set to the unzipped package plus the standard library only. zoneinfo is forced onto the shipped
# tzdata (no system zone files), as on a Lambda runtime without /usr/share/zoneinfo.
FRESH = r"""
import importlib.util, json, sys, sysconfig, time, zoneinfo
t0 = time.perf_counter()
pkg = sys.argv[1]
stdlib = [sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]]
sys.path[:] = [pkg] + [p for p in sys.path if p.startswith(tuple(stdlib))]
zoneinfo.reset_tzpath([])
out = {"path": sys.path, "numpy_findable": importlib.util.find_spec("numpy") is not None,
       "lightgbm_findable": importlib.util.find_spec("lightgbm") is not None}
import hybridopt.router.handler as h
router = h.get_router()
out["init_ms"] = (time.perf_counter() - t0) * 1000
events = json.loads(sys.stdin.read())
out["answers"] = [h.lambda_handler(e, None) for e in events]
out["modules"] = sorted(m for m in sys.modules if m.split(".")[0] not in sys.stdlib_module_names
                        and not m.startswith(("_sysconfigdata", "__main__")))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def params():
    return load_params(PROFILE)


@pytest.fixture(scope="module", params=["lightgbm", "xgboost"])
def built(request, params, tmp_path_factory):
    spec = FeatureSpec.from_params(params)
    tmp = tmp_path_factory.mktemp(f"pkg-{request.param}")
    model_dir = write_synthetic_model_dir(spec, tmp / "model", request.param, n_rows=2000, n_trees=150, seed=2)
    report = build_package(model_dir, tmp / "out" / "router.zip", router_config(params))
    return model_dir, report, tmp


def test_zip_is_small_and_holds_only_what_it_needs(built) -> None:
    _, report, _ = built
    assert report.zip_bytes < 10e6
    names = zipfile.ZipFile(report.zip_path).namelist()
    code = sorted(n for n in names if n.endswith(".py") and not n.startswith("tzdata/"))
    assert code == sorted(f"hybridopt/{m}" for m in SHIPPED_MODULES)
    assert {n.split("/")[0] for n in names} == {"hybridopt", "tzdata", "model"}
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".joblib", ".so", ".pyc"))]
    for f in ("model/feature_spec.json", "model/feature_columns.json", "model/static_rule.json",
              "model/model_metadata.json", "model/router_config.json", "model/MANIFEST.json",
              "tzdata/zoneinfo/Asia/Kolkata"):
        assert f in names
    assert any("LICENSE" in n for n in names if n.startswith("tzdata/tzdata-"))
    assert report.synthetic_model and any("SYNTHETIC" in w for w in report.warnings)


def test_build_is_deterministic(built, params) -> None:
    model_dir, report, tmp = built
    again = build_package(model_dir, tmp / "again.zip", router_config(params))
    assert again.sha256 == report.sha256


@pytest.mark.slow
def test_zip_answers_in_a_fresh_isolated_interpreter(built, params, tmp_path) -> None:
    model_dir, report, _ = built
    pkg = tmp_path / "unzipped"
    zipfile.ZipFile(report.zip_path).extractall(pkg)
    good = {"workload_type": "medium_processing", "payload_size_kb": 2048,
            "timestamp": "2025-11-20T18:20:00+05:30"}
    events = [
        good,
        {"version": "2.0", "routeKey": "POST /route", "rawPath": "/route", "headers": {},
         "requestContext": {"http": {"method": "POST", "path": "/route"}}, "isBase64Encoded": False,
         "body": json.dumps(good)},
        {"resource": "/route/{workload}", "path": "/route/medium_processing", "httpMethod": "GET",
         "requestContext": {"httpMethod": "GET", "stage": "prod"}, "body": None, "isBase64Encoded": False,
         "pathParameters": {"workload": "medium_processing"},
         "queryStringParameters": {"payload_size_kb": "2048", "timestamp": good["timestamp"]}},
        {"workload_type": "medium_processing", "payload_size_kb": -1},
    ]
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", FRESH, str(pkg)], input=json.dumps(events),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert not out["numpy_findable"] and not out["lightgbm_findable"], out["path"]
    assert out["path"][0] == str(pkg) and not any("site-packages" in p for p in out["path"])
    assert {m.split(".")[0] for m in out["modules"]} <= {"hybridopt", "tzdata"}, out["modules"]
    direct, v2, v1, bad = out["answers"]
    expected = Router.from_dir(pkg / "model").route(good)
    assert direct["statusCode"] == 200 and direct["probability_lambda"] == expected.probability_lambda
    assert direct["inputs"]["time_window"] == "evening" and direct["inputs"]["load_pattern"] == "burst_load"
    for resp in (v2, v1):
        assert resp["statusCode"] == 200
        assert json.loads(resp["body"])["probability_lambda"] == expected.probability_lambda
    assert bad["statusCode"] == 400 and bad["error"]["field"] == "payload_size_kb"


def test_missing_model_is_a_clear_error(params, tmp_path) -> None:
    with pytest.raises(PackageError, match="train a model first"):
        build_package(tmp_path, tmp_path / "x.zip", router_config(params))


def test_over_the_size_limit_fails(built, params, tmp_path) -> None:
    model_dir, _, _ = built
    with pytest.raises(PackageError, match="over the 0.01 MB limit"):
        build_package(model_dir, tmp_path / "big.zip", router_config(params), max_mb=0.01)
    assert not (tmp_path / "big.zip").exists()


def test_package_cli_builds_from_a_model_dir(built, tmp_path, capsys) -> None:
    import argparse

    from hybridopt.commands import package as cmd

    model_dir, _, _ = built
    out = tmp_path / "cli.zip"
    assert cmd.run(argparse.Namespace(profile=PROFILE, model_dir=model_dir, out=out)) == 0
    text = capsys.readouterr().out
    assert "MB zipped" in text and "SYNTHETIC" in text and out.is_file()
    assert json.loads(out.with_suffix(".json").read_text())["zip_bytes"] == out.stat().st_size
    from hybridopt.cli import main

    assert main(["package", "--profile", PROFILE, "--model-dir", str(tmp_path / "none"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "train a model first" in err and err.count("\n") == 1


# ------------------------------------------------------------------- with the decide stage's folder
@pytest.fixture(scope="module")
def built_objective(params, tmp_path_factory):
    from hybridopt.testing import write_synthetic_decision_dir

    tmp = tmp_path_factory.mktemp("pkg-objective")
    model_dir = write_synthetic_model_dir(FeatureSpec.from_params(params), tmp / "model", "lightgbm", n_rows=2000,
                                          n_trees=150, seed=2)
    write_synthetic_decision_dir(params, model_dir, n_pairs=4000, seed=3)
    (model_dir / "decision" / "classifier.txt").write_text("not shipped")
    report = build_package(model_dir, tmp / "out" / "router.zip", router_config(params))
    return model_dir, report, tmp


def test_zip_ships_the_decision_folder_and_its_modules(built_objective) -> None:
    model_dir, report, _ = built_objective
    names = zipfile.ZipFile(report.zip_path).namelist()
    spec = json.loads((model_dir / "decision" / "decision_spec.json").read_text())
    expected = {f"model/decision/{f}" for fs in spec["models"].values() for f in fs.values()}
    assert expected | {"model/decision/decision_spec.json"} == {n for n in names if n.startswith("model/decision/")}
    code = sorted(n for n in names if n.endswith(".py") and not n.startswith("tzdata/"))
    assert code == sorted(f"hybridopt/{m}" for m in SHIPPED_MODULES)
    assert {"hybridopt/decision/load_state.py", "hybridopt/decision/objective.py", "hybridopt/router/policy.py"} <= set(code)
    assert report.policy == "objective" and report.decision_version.startswith("decision-")
    assert report.decision_bytes > 0 and report.zip_bytes < 10e6
    assert any("decision models are SYNTHETIC" in w for w in report.warnings)
    manifest = json.loads(zipfile.ZipFile(report.zip_path).read("model/MANIFEST.json"))
    assert "model/decision/ecs_fail.txt" in manifest


@pytest.mark.slow
def test_zip_with_decision_answers_in_a_fresh_isolated_interpreter(built_objective, tmp_path) -> None:
    """The objective path answers from the unzipped folder alone (no numpy, no LightGBM), with the
    same predictions and costs as the router loaded in this process, and keeps its load state
    between invocations of one execution environment."""
    _, report, _ = built_objective
    pkg = tmp_path / "unzipped"
    zipfile.ZipFile(report.zip_path).extractall(pkg)
    good = {"workload_type": "thumbnail_processing", "payload_size_kb": 500, "timestamp": "2025-11-20T12:20:00+05:30",
            "arm": "treatment"}
    events = [
        good,
        {"version": "2.0", "routeKey": "POST /route", "rawPath": "/route", "headers": {},
         "requestContext": {"http": {"method": "POST", "path": "/route"}}, "isBase64Encoded": False,
         "body": json.dumps({**good, "arm": "control", "objective": "SLO x0.5"})},
        {"resource": "/route/{workload}", "path": "/route/thumbnail_processing", "httpMethod": "GET",
         "requestContext": {"httpMethod": "GET", "stage": "prod"}, "body": None, "isBase64Encoded": False,
         "pathParameters": {"workload": "thumbnail_processing"},
         "queryStringParameters": {"payload_size_kb": "500", "timestamp": good["timestamp"], "completed": "x-1"}},
        {**good, "objective": "fastest"},
        {**good, "completed": {"id": 1}},
    ]
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", FRESH, str(pkg)], input=json.dumps(events),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert not out["numpy_findable"] and not out["lightgbm_findable"], out["path"]
    assert {m.split(".")[0] for m in out["modules"]} <= {"hybridopt", "tzdata"}, out["modules"]
    first, v2, v1, bad_objective, bad_completed = out["answers"]
    assert first["statusCode"] == 200 and first["decided_by"] == "objective"
    fresh = Router.from_dir(pkg / "model")
    fresh.clock = lambda: 0.0
    expected = fresh.route(good)
    for p in ("lambda", "ecs"):
        assert first["platforms"][p]["p50_ms"] == expected.policy.predictions[p].p50_ms
        assert first["platforms"][p]["p_fail"] == expected.policy.predictions[p].p_fail
        assert first["platforms"][p]["marginal_usd"] == expected.policy.marginal_usd[p]
    second = json.loads(v2["body"])
    assert v2["statusCode"] == 200 and second["decided_by"] == "workload_rule"
    assert second["objective"]["name"] == "SLO x0.5" and second["objective"]["slo_p95_ms"] == 500.0
    assert second["load"]["arrivals_10s_rps"] > 0 or second["load"]["in_flight_" + first["recommended_platform"]] == 1
    third = json.loads(v1["body"])
    assert v1["statusCode"] == 200 and third["load"]["in_flight_lambda"] + third["load"]["in_flight_ecs"] == 2
    assert bad_objective["statusCode"] == 400 and bad_objective["error"]["field"] == "objective"
    assert bad_completed["statusCode"] == 400 and bad_completed["error"]["field"] == "completed"
