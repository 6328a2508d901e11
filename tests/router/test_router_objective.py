"""The handler's objective path (a model folder with decision/): API Gateway v1/v2 events answer
with the objective's platform, the predictions and marginal costs per platform; the predictions,
costs and choices equal the decide stage's own library code on the same rows; the load state
follows arrivals, reported completions and the client-timeout expiry; control = the decide stage's
workload rule; every bad input (new fields included) is a 400 naming the field."""

from __future__ import annotations

import json
import math
import shutil
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
from hybridopt import model_dir as layout
from hybridopt.data.features import FeatureSpec
from hybridopt.decision.artifacts import load_decision
from hybridopt.decision.load_state import LoadTracker, feature_names
from hybridopt.decision.policies import marginal_costs, objective_choice
from hybridopt.params import load_params
from hybridopt.router import handler as H
from hybridopt.router.handler import PackageError, Router
from hybridopt.router.package import router_config
from hybridopt.testing import synthetic_contexts, write_synthetic_decision_dir, write_synthetic_model_dir

from tests.router.test_router_handler import _assert_400, v1, v2

PROFILE = "thesis-2025-11"
NOW = datetime(2025, 11, 20, 6, 45, tzinfo=timezone.utc)       # 12:15 IST: midday
GOOD = {"workload_type": "lightweight_api", "payload_size_kb": 5, "timestamp": "2025-11-20T12:15:00+05:30"}


class Clock:
    """A settable clock for the router's load state."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def params():
    return load_params(PROFILE)


@pytest.fixture(scope="module")
def model_dir(params, tmp_path_factory):
    d = tmp_path_factory.mktemp("objective") / "model"
    write_synthetic_model_dir(FeatureSpec.from_params(params), d, "lightgbm", n_rows=2000, n_trees=40, seed=1)
    write_synthetic_decision_dir(params, d, n_pairs=4000, seed=2)
    return d


@pytest.fixture()
def router(model_dir, params):
    r = Router.from_dir(model_dir, router_config(params))
    r.clock = Clock()
    return r


def _body(resp: dict) -> dict:
    assert resp["statusCode"] == 200, resp
    return json.loads(resp["body"]) if "body" in resp else resp


# ----------------------------------------------------------------------------------- the answer
@pytest.mark.parametrize("make", [v1, v2])
def test_events_answer_with_the_objective_its_predictions_and_costs(router: Router, make) -> None:
    b = _body(router.handle(make(GOOD), NOW))
    assert b["decided_by"] == "objective" and b["arm"] == "treatment"
    assert b["recommended_platform"] == b["objective_platform"] in ("lambda", "ecs")
    assert b["workload_rule_platform"] == router.decision.rule["lightweight_api"]
    assert b["objective"] == {"name": "default", "kind": "slo_cheapest", "slo_p95_ms": 1000.0, "max_failure": 0.01,
                              "value_of_time_usd_per_s": 1e-4, "failure_penalty_s": 10.0, "latency_quantile": "p50"}
    for p in ("lambda", "ecs"):
        pr = b["platforms"][p]
        assert 0 < pr["p50_ms"] <= pr["p95_ms"] and 0 <= pr["p_fail"] <= 1 and pr["marginal_usd"] >= 0
    assert list(b["load"]) == list(feature_names((10.0, 60.0))) and all(v == 0 for v in b["load"].values())
    assert 0 <= b["probability_lambda"] <= 1 and b["model_platform"] in ("lambda", "ecs")
    assert b["decision_id"] and b["decision_version"].startswith("decision-")
    router.clock.t += 1000.0                                 # the first request expired: the same load state
    by_path = _body(router.handle(make({k: v for k, v in GOOD.items() if k != "workload_type"},
                                       path={"workload": "lightweight_api"}), NOW))
    assert by_path["platforms"]["lambda"]["p50_ms"] == b["platforms"]["lambda"]["p50_ms"]
    query = {k: str(v) for k, v in GOOD.items()}
    router.clock.t += 1000.0
    got = _body(router.handle(make(method="GET", query={**query, "objective": "SLO x2"}), NOW))
    assert got["objective"]["name"] == "SLO x2" and got["objective"]["slo_p95_ms"] == 2000.0


def test_predictions_costs_and_choices_equal_the_decide_stages_code(router: Router, model_dir, params) -> None:
    """Router (pure Python, one row at a time) == decide stage (LightGBM on a frame): p50/p95/P(fail),
    marginal costs and the objective's choice for every setting, on 400 contexts x random load states."""
    saved = load_decision(model_dir)
    spec = router.spec
    ctx = synthetic_contexts(spec, 400, seed=5)
    rng = np.random.default_rng(5)
    names = list(feature_names(saved.windows_s))
    load = pd.DataFrame({n: (rng.integers(0, 12, len(ctx)).astype(float) if "in_flight" in n
                             else rng.uniform(0, 30, len(ctx))) for n in names})
    X = pd.concat([spec.frame(ctx), load], axis=1)
    lib = saved.fitted.models.predict(X)
    work = ctx["workload_type"].to_numpy(dtype=object)
    kb = ctx["payload_size_kb"].to_numpy(dtype=float)
    cost = marginal_costs(saved.fitted.marginal, work, kb, load["workload_in_flight_ecs"].to_numpy())
    pol = router.decision
    rows = X.to_numpy().tolist()
    for p in ("lambda", "ecs"):
        mine = np.array([pol.predict(r)[p] for r in rows])
        ref = lib[p][["p50_ms", "p95_ms", "p_fail"]].to_numpy()
        assert np.max(np.abs(mine - ref) / np.maximum(np.abs(ref), 1e-12)) <= 1e-12, p
        mc = np.array([pol.marginal.usd(p, w, k, f) for w, k, f in
                       zip(work, kb, load["workload_in_flight_ecs"])])
        assert np.allclose(mc, cost[p], rtol=1e-12, atol=0)
    for name, obj in pol.objectives.items():
        expected = objective_choice(saved.objs[name], work, lib, cost)
        from hybridopt.decision.objective import Prediction

        got = []
        for i, r in enumerate(rows):
            pr = pol.predict(r)
            preds = {p: Prediction(*pr[p], float(cost[p][i])) for p in pr}
            got.append(obj.choose(work[i], preds) == "lambda")
        assert (np.array(got) == expected).all(), name


def test_arms_treatment_objective_control_workload_rule(router: Router, monkeypatch) -> None:
    seen = set()
    for w in sorted(router.spec.workload_codes):
        for size in (0.5, 50, 1024, 8192):
            f = {"workload_type": w, "payload_size_kb": size, "timestamp": "2025-11-20T12:30:00+05:30"}
            c = router.route({**f, "arm": "control"})
            t = router.route({**f, "arm": "treatment"})
            assert c.platform == router.decision.rule[w] and c.decided_by == "workload_rule"
            assert t.platform == t.policy.objective_platform and t.decided_by == "objective"
            assert c.probability_lambda == t.probability_lambda          # the plan's classifier, both arms
            assert c.policy.objective_platform and c.policy.predictions is not None   # predicted in both arms
            seen.add((c.platform, t.platform))
    assert len(seen) > 1
    monkeypatch.setenv(H.ARM_ENV, "control")
    assert router.route(dict(GOOD)).decided_by == "workload_rule"


# ------------------------------------------------------------------------------------ load state
def test_load_state_follows_arrivals_completions_and_expiry(router: Router) -> None:
    clock = router.clock
    pol = router.decision
    a = _body(router.handle({**GOOD, "arm": "control"}, NOW))                # at 1000 s
    rule = pol.rule["lightweight_api"]
    assert a["load"]["arrivals_10s_rps"] == 0 and a["load"][f"in_flight_{rule}"] == 0
    clock.t += 1.0
    b = _body(router.handle({**GOOD, "arm": "control"}, NOW))                # sees a: arrived and in flight
    assert b["load"]["arrivals_10s_rps"] == pytest.approx(0.1) and b["load"]["arrivals_60s_rps"] == pytest.approx(1 / 60)
    assert b["load"][f"in_flight_{rule}"] == 1 and b["load"][f"workload_in_flight_{rule}"] == 1
    clock.t += 1.0
    c = _body(router.handle({**GOOD, "arm": "control", "completed": [a["decision_id"]]}, NOW))
    assert c["load"][f"in_flight_{rule}"] == 1                                # a reported done, b still in flight
    heavy = _body(router.handle({"workload_type": "heavy_processing", "payload_size_kb": 3072, "arm": "control",
                                 "timestamp": GOOD["timestamp"]}, NOW))
    # at the same instant as c: c is not "before" it (strictly-before semantics); a and b are
    assert heavy["load"]["workload_arrivals_10s_rps"] == 0 and heavy["load"]["arrivals_10s_rps"] == pytest.approx(0.2)
    done = _body(router.handle({"completed": f"{b['decision_id']},{c['decision_id']},nope-1"}, NOW))
    assert (done["completed"], done["unknown"]) == (2, 1)
    assert done["in_flight"] == {"lambda": int(pol.rule["heavy_processing"] == "lambda"),
                                 "ecs": int(pol.rule["heavy_processing"] == "ecs")}
    clock.t += pol.missing_completion_s                                       # heavy's client timeout passes
    later = _body(router.handle({**GOOD, "arm": "control"}, NOW))
    assert later["load"]["in_flight_lambda"] == later["load"]["in_flight_ecs"] == 0
    assert pol.completions == {"reported": 3, "unknown": 1, "expired": 1}          # a; b and c; heavy
    clock.t -= 100.0                                                          # a clock that runs back: held
    back = _body(router.handle({**GOOD, "arm": "control"}, NOW))
    # held at 1012 s: the 10 s window [1002, 1012) holds c and heavy (1002 s); `later` is at the same instant
    assert back["load"]["arrivals_10s_rps"] == pytest.approx(0.2)


def test_load_features_equal_a_tracker_fed_the_same_events(router: Router, params) -> None:
    """200 requests at random times with random completion reports: the answers' load features are
    exactly those of a LoadTracker fed the same arrivals, sends and completions."""
    rng = np.random.default_rng(3)
    ref = LoadTracker(router.decision.windows_s)
    open_ids: dict[str, tuple[str, str]] = {}
    workloads = sorted(router.spec.workload_codes)
    for _ in range(200):
        router.clock.t += float(rng.exponential(0.3))
        report = [k for k in open_ids if rng.random() < 0.3]
        w = workloads[rng.integers(len(workloads))]
        for k in report:
            ref.completed(*open_ids.pop(k))
        expected = ref.features(router.clock.t, w)
        ref.arrived(router.clock.t, w)
        b = _body(router.handle({"workload_type": w, "payload_size_kb": 100, "timestamp": GOOD["timestamp"],
                                 "arm": str(rng.choice(["control", "treatment"])), "completed": report}, NOW))
        assert b["load"] == expected
        ref.sent(b["recommended_platform"], w)
        open_ids[b["decision_id"]] = (b["recommended_platform"], w)


# ------------------------------------------------------------------------------------ bad inputs
BAD = [
    ({**GOOD, "objective": "cheapest"}, "objective", "not one of"),
    ({**GOOD, "objective": 3}, "objective", "not one of"),
    ({**GOOD, "objective": ""}, "objective", "not one of"),
    ({**GOOD, "completed": {"id": "x"}}, "completed", "not a decision id"),
    ({**GOOD, "completed": 17}, "completed", "not a decision id"),
    ({**GOOD, "completed": [1, 2]}, "completed", "not a decision id"),
    ({**GOOD, "completed": ["ok-1", ""]}, "completed", "not a decision id"),
    ({**GOOD, "completed": ["x" * 65]}, "completed", "at most 64"),
    ({**GOOD, "completed": [f"a-{i}" for i in range(1001)]}, "completed", "at most 1000"),
    ({"completed": ["a-1"], "arm": "control"}, "arm", "takes no other field"),
    ({"completed": 5}, "completed", "not a decision id"),
    ({**GOOD, "load": {"in_flight_ecs": 3}}, "load", "unknown field"),
]


@pytest.mark.parametrize("fields, field, words", BAD)
@pytest.mark.parametrize("kind", ["direct", "v1", "v2"])
def test_bad_new_fields_are_400_naming_the_field(router: Router, kind, fields, field, words) -> None:
    event = dict(fields) if kind == "direct" else (v1 if kind == "v1" else v2)(json.dumps(fields))
    _assert_400(router.handle(event, NOW), field, words)
    assert router.decision.in_flight() == {"lambda": 0, "ecs": 0}            # a refused request is not counted


def test_classifier_only_router_names_the_decision_fields(params, tmp_path) -> None:
    d = write_synthetic_model_dir(FeatureSpec.from_params(params), tmp_path / "m", "lightgbm", n_rows=500,
                                  n_trees=5, seed=1)
    r = Router.from_dir(d, router_config(params))
    for field in ("objective", "completed"):
        _assert_400(r.handle({**GOOD, field: "default"}, NOW), field, "no decision/")


def test_no_client_error_is_ever_a_500_on_the_objective_path(router: Router) -> None:
    import random

    rng = random.Random(1)
    values = [None, "", "x", -1, 0, 3.5, True, [], {}, ["a-1"], "default", "SLO x2", "lightweight_api", "2025-11-20"]
    keys = ["workload_type", "payload_size_kb", "timestamp", "arm", "objective", "completed", "junk"]
    for _ in range(300):
        fields = {k: rng.choice(values) for k in rng.sample(keys, rng.randint(0, len(keys)))}
        for event in (fields, v1(json.dumps(fields)), v2(json.dumps(fields)),
                      v2(method="GET", query={k: str(v) for k, v in fields.items()})):
            resp = router.handle(event, NOW)
            assert resp["statusCode"] in (200, 400), (event, resp)


# ------------------------------------------------------------------------------- broken folders
def _copy(model_dir, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(model_dir, d)
    return d


def test_broken_decision_folders_are_package_errors(model_dir, params, tmp_path, monkeypatch) -> None:
    d = _copy(model_dir, tmp_path)
    spec = layout.decision_spec_path(d)
    doc = json.loads(spec.read_text())
    cases = [
        (lambda: (layout.decision_dir(d) / "ecs_p95.txt").unlink(), "ecs p95 model named in"),
        (lambda: spec.write_text("{not json"), "not valid JSON"),
        (lambda: spec.write_text(json.dumps({**doc, "version": 99})), "version 99"),
        (lambda: spec.write_text(json.dumps({**doc, "latency_transform": "sqrt"})), "latency_transform 'sqrt'"),
        (lambda: spec.write_text(json.dumps({**doc, "feature_spec": {**doc["feature_spec"],
                                                                    "timezone": "UTC"}})), "feature_spec"),
        (lambda: spec.write_text(json.dumps({**doc, "models": {"lambda": {"p50": "../x.txt"}}})), "models"),
        (lambda: spec.write_text(json.dumps({k: v for k, v in doc.items() if k != "marginal_cost"})), "marginal_cost"),
        (lambda: (layout.decision_dir(d) / "lambda_fail.txt").write_text(
            (layout.decision_dir(model_dir) / "lambda_p50.txt").read_text()), "expected binary"),
    ]
    for make_broken, words in cases:
        shutil.rmtree(layout.decision_dir(d))
        shutil.copytree(layout.decision_dir(model_dir), layout.decision_dir(d))
        make_broken()
        with pytest.raises(PackageError, match=words):
            Router.from_dir(d, router_config(params))
    monkeypatch.setenv(H.MODEL_DIR_ENV, str(d))
    monkeypatch.setattr(H, "_ROUTER", None)
    from dataclasses import asdict

    (d / H.ROUTER_CONFIG).write_text(json.dumps(asdict(router_config(params))))
    resp = H.lambda_handler(v2(GOOD))
    assert resp["statusCode"] == 500 and "broken" in json.loads(resp["body"])["error"]["message"]


def test_exp_of_the_quantile_boosters_is_the_latency(router: Router, model_dir) -> None:
    """The answer's p50 is exp() of the p50 booster's raw output (the boosters learned log latency)."""
    import lightgbm as lgb

    b = _body(router.handle({**GOOD, "arm": "control"}, NOW))
    row = [*router.spec.row("lightweight_api", 5.0, datetime.fromisoformat(GOOD["timestamp"]), "midday",
                            "medium_load"), *b["load"].values()]
    raw = lgb.Booster(model_file=str(layout.decision_dir(model_dir) / "lambda_p50.txt")).predict(
        np.array([row]), raw_score=True)[0]
    assert b["platforms"]["lambda"]["p50_ms"] == pytest.approx(math.exp(raw), rel=1e-12)
