"""The inference handler: API Gateway REST (v1) and HTTP API (v2) proxy events, direct
invocations, a corpus of bad inputs (each a 400 naming the field, none a 500), time-window and
load-pattern defaults, arms, and the same features and probability as training's code path."""

from __future__ import annotations

import base64
import copy
import json
from datetime import datetime, timezone
from pathlib import Path

import lightgbm as lgb
import pandas as pd
import pytest
from hybridopt.data.features import FeatureSpec
from hybridopt.params import load_params
from hybridopt.router import handler as H
from hybridopt.router.handler import (
    BadRequest,
    PackageError,
    Router,
    nearest_time_window,
)
from hybridopt.router.package import router_config
from hybridopt.testing import synthetic_contexts, write_synthetic_model_dir

PROFILE = "thesis-2025-11"
NOW = datetime(2025, 11, 20, 3, 30, tzinfo=timezone.utc)   # 09:00 IST: outside every window


@pytest.fixture(scope="module")
def params():
    return load_params(PROFILE)


@pytest.fixture(scope="module")
def spec(params) -> FeatureSpec:
    return FeatureSpec.from_params(params)


@pytest.fixture(scope="module", params=["lightgbm", "xgboost"])
def model_dir(request, spec, tmp_path_factory) -> Path:
    return write_synthetic_model_dir(spec, tmp_path_factory.mktemp(request.param), request.param,
                                     n_rows=3000, n_trees=60, seed=1)


@pytest.fixture(scope="module")
def router(model_dir, params) -> Router:
    return Router.from_dir(model_dir, router_config(params))


# Event shapes as documented by AWS: API Gateway developer guide, "Input format of a Lambda
# function for proxy integration" (REST API) and "Create AWS Lambda proxy integrations for HTTP
# APIs", payload format 2.0. Values are ours.
REST_V1 = {
    "resource": "/route/{workload}", "path": "/route/lightweight_api", "httpMethod": "POST",
    "headers": {"Content-Type": "application/json", "Host": "abc123.execute-api.eu-west-1.amazonaws.com"},
    "multiValueHeaders": {"Content-Type": ["application/json"]},
    "queryStringParameters": None, "multiValueQueryStringParameters": None,
    "pathParameters": None, "stageVariables": None,
    "requestContext": {
        "accountId": "123456789012", "apiId": "abc123", "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
        "domainPrefix": "abc123", "extendedRequestId": "request-id", "httpMethod": "POST",
        "identity": {"accessKey": None, "accountId": None, "caller": None, "sourceIp": "203.0.113.7",
                     "user": None, "userAgent": "curl/8.5.0", "userArn": None},
        "path": "/prod/route/lightweight_api", "protocol": "HTTP/1.1", "requestId": "c6af9ac6-7b61-11e6-9a41",
        "requestTime": "20/Nov/2025:03:30:00 +0000", "requestTimeEpoch": 1763609400000,
        "resourceId": "abcdef", "resourcePath": "/route/{workload}", "stage": "prod"},
    "body": None, "isBase64Encoded": False,
}
HTTP_V2 = {
    "version": "2.0", "routeKey": "POST /route", "rawPath": "/route", "rawQueryString": "",
    "cookies": [], "headers": {"content-type": "application/json", "host": "abc123.execute-api.eu-west-1.amazonaws.com"},
    "queryStringParameters": None,
    "requestContext": {
        "accountId": "123456789012", "apiId": "abc123", "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
        "domainPrefix": "abc123",
        "http": {"method": "POST", "path": "/route", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7",
                 "userAgent": "curl/8.5.0"},
        "requestId": "JKJaXmPLvHcESHA=", "routeKey": "POST /route", "stage": "$default",
        "time": "20/Nov/2025:03:30:00 +0000", "timeEpoch": 1763609400000},
    "body": None, "pathParameters": None, "isBase64Encoded": False, "stageVariables": None,
}
GOOD = {"workload_type": "thumbnail_processing", "payload_size_kb": 200, "timestamp": "2025-11-20T12:15:00+05:30"}


def v1(body=None, method="POST", query=None, path=None, b64=False):
    e = copy.deepcopy(REST_V1)
    e["httpMethod"] = e["requestContext"]["httpMethod"] = method
    raw = body if isinstance(body, str) or body is None else json.dumps(body)
    if b64 and raw is not None:
        raw = base64.b64encode(raw.encode()).decode()
    e.update(body=raw, queryStringParameters=query, pathParameters=path, isBase64Encoded=b64)
    return e


def v2(body=None, method="POST", query=None, path=None, b64=False):
    e = copy.deepcopy(HTTP_V2)
    e["requestContext"]["http"]["method"] = method
    raw = body if isinstance(body, str) or body is None else json.dumps(body)
    if b64 and raw is not None:
        raw = base64.b64encode(raw.encode()).decode()
    e.update(body=raw, queryStringParameters=query, pathParameters=path, isBase64Encoded=b64)
    return e


def _ok(resp: dict) -> dict:
    assert resp["statusCode"] == 200, resp
    body = json.loads(resp["body"]) if "body" in resp else resp
    assert body["recommended_platform"] in ("lambda", "ecs")
    assert 0.0 <= body["probability_lambda"] <= 1.0
    return body


# ---------------------------------------------------------------------------------------- events
@pytest.mark.parametrize("make", [v1, v2])
def test_proxy_post_get_base64_and_path_parameter(router: Router, make) -> None:
    posted = _ok(router.handle(make(GOOD), NOW))
    assert posted["inputs"]["time_window"] == "midday" and posted["inputs"]["time_window_source"] == "hour"
    assert posted["inputs"]["load_pattern"] == "medium_load"
    assert posted["model_version"] == router.model_version
    query = {k: str(v) for k, v in GOOD.items()}
    assert _ok(router.handle(make(method="GET", query=query), NOW))["probability_lambda"] == posted["probability_lambda"]
    assert _ok(router.handle(make(GOOD, b64=True), NOW))["probability_lambda"] == posted["probability_lambda"]
    fields = {k: v for k, v in GOOD.items() if k != "workload_type"}
    by_path = _ok(router.handle(make(fields, path={"workload": "thumbnail_processing"}), NOW))
    assert by_path["probability_lambda"] == posted["probability_lambda"]
    resp = router.handle(make(GOOD), NOW)
    assert resp["headers"]["Content-Type"] == "application/json" and resp["isBase64Encoded"] is False


def test_direct_invocation_answers_flat(router: Router) -> None:
    body = _ok(router.handle(dict(GOOD), NOW))
    assert body["statusCode"] == 200 and "body" not in body
    bad = router.handle({"payload_size_kb": 1}, NOW)
    assert bad["statusCode"] == 400 and bad["error"]["field"] == "workload_type"


def test_probability_is_the_librarys_on_the_training_feature_row(router: Router, spec, model_dir) -> None:
    """Handler -> FeatureSpec.row -> pure-Python trees == FeatureSpec.frame -> the library."""
    ctx = synthetic_contexts(spec, 300, seed=9)
    X = spec.frame(ctx)
    meta = json.loads((model_dir / "model_metadata.json").read_text())
    if meta["serving"]["format"] == "lightgbm_text":
        ref = lgb.Booster(model_file=str(model_dir / "model.txt")).predict(X)
    else:
        import xgboost as xgb

        b = xgb.Booster()
        b.load_model(str(model_dir / "model.json"))
        ref = b.predict(xgb.DMatrix(X))
    for i, r in enumerate(ctx.itertuples()):
        d = router.route({"workload_type": r.workload_type, "payload_size_kb": float(r.payload_size_kb),
                          "timestamp": r.sent_at.isoformat(), "time_window": r.time_window,
                          "load_pattern": r.load_pattern})
        assert abs(d.probability_lambda - float(ref[i])) <= 1e-9
        assert d.platform == ("lambda" if ref[i] >= 0.5 else "ecs")


def test_row_equals_frame_on_every_configured_context(spec: FeatureSpec, params) -> None:
    """The one feature definition gives identical values one-by-one (router) and vectorised
    (training), on every workload x payload size x window x load pattern."""
    rows, ctx = [], []
    for w, wl in params.workloads.items():
        for p in wl.payload_sizes_kb:
            for tw, t in params.time_windows.items():
                for lp in params.load_patterns:
                    sent = pd.Timestamp(2025, 11, 22, t.start_hour, 30, tz=params.timezone)
                    rows.append(spec.row(w, p, sent.to_pydatetime(), tw, lp))
                    ctx.append({"workload_type": w, "payload_size_kb": p, "sent_at": sent, "time_window": tw,
                                "load_pattern": lp})
    frame = spec.frame(pd.DataFrame(ctx))
    assert frame.to_numpy().tolist() == rows


# ---------------------------------------------------------------------------------- bad inputs
BAD_FIELDS = [
    ({"payload_size_kb": 5}, "workload_type", "missing"),
    ({"workload_type": "video", "payload_size_kb": 5}, "workload_type", "not one of"),
    ({"workload_type": 3, "payload_size_kb": 5}, "workload_type", "not one of"),
    ({"workload_type": None, "payload_size_kb": 5}, "workload_type", "missing"),
    ({"workload_type": "lightweight_api"}, "payload_size_kb", "missing"),
    ({"workload_type": "lightweight_api", "payload_size_kb": -1}, "payload_size_kb", "negative"),
    ({"workload_type": "lightweight_api", "payload_size_kb": "big"}, "payload_size_kb", "not a number"),
    ({"workload_type": "lightweight_api", "payload_size_kb": ""}, "payload_size_kb", "not a number"),
    ({"workload_type": "lightweight_api", "payload_size_kb": True}, "payload_size_kb", "not a number"),
    ({"workload_type": "lightweight_api", "payload_size_kb": [5]}, "payload_size_kb", "not a number"),
    ({"workload_type": "lightweight_api", "payload_size_kb": {"kb": 5}}, "payload_size_kb", "not a number"),
    ({"workload_type": "lightweight_api", "payload_size_kb": "nan"}, "payload_size_kb", "finite"),
    ({"workload_type": "lightweight_api", "payload_size_kb": "inf"}, "payload_size_kb", "finite"),
    ({"workload_type": "lightweight_api", "payload_size_kb": 10 ** 400}, "payload_size_kb", "too large"),
    ({"workload_type": "lightweight_api", "payload_size_kb": 20480}, "payload_size_kb", "exceeds"),
    ({**GOOD, "timestamp": "yesterday"}, "timestamp", "ISO-8601"),
    ({**GOOD, "timestamp": 1763609400}, "timestamp", "ISO-8601"),
    ({**GOOD, "timestamp": "2025-13-45T99:00:00Z"}, "timestamp", "ISO-8601"),
    ({**GOOD, "sent_at": "2025-11-20T12:00:00Z"}, "timestamp", "not both"),
    ({**GOOD, "time_window": "lunch"}, "time_window", "not one of"),
    ({**GOOD, "load_pattern": "extreme"}, "load_pattern", "not one of"),
    ({**GOOD, "load_pattern": 2}, "load_pattern", "not one of"),
    ({**GOOD, "arm": "both"}, "arm", "not one of"),
    ({**GOOD, "payload": 5}, "payload", "unknown field"),
]
BAD_EVENTS = [
    (lambda mk: mk("{not json"), "body", "malformed JSON"),
    (lambda mk: mk("[1, 2]"), "body", "JSON object"),
    (lambda mk: mk('"text"'), "body", "JSON object"),
    (lambda mk: mk(None), "body", "missing"),
    (lambda mk: mk(""), "body", "missing"),
    (lambda mk: {**mk("x"), "body": "%%%not-base64", "isBase64Encoded": True}, "body", "base64"),
    (lambda mk: {**mk("x"), "body": base64.b64encode(b"\xff\xfe").decode(), "isBase64Encoded": True},
     "body", "base64"),
    (lambda mk: {**mk("x"), "body": 17}, "body", "expected a string"),
    (lambda mk: mk(GOOD, method="PUT"), "method", "PUT is not allowed"),
    (lambda mk: mk(GOOD, method="DELETE"), "method", "not allowed"),
    (lambda mk: mk(GOOD, method="GET"), "body", "GET request takes query-string"),
    (lambda mk: mk(method="GET", query=None), "workload_type", "missing"),
    (lambda mk: mk(method="GET", query={"workload_type": "heavy_processing", "payload_size_kb": "-3"}),
     "payload_size_kb", "negative"),
    (lambda mk: mk({**GOOD, "workload_type": "heavy_processing"}, path={"workload": "lightweight_api"}),
     "workload_type", "path says"),
    (lambda mk: mk({"payload_size_kb": 1}, path={"workload": "nope"}), "workload_type", "not one of"),
]


def _assert_400(resp: dict, field: str, words: str) -> None:
    assert resp["statusCode"] == 400, resp
    body = json.loads(resp["body"]) if "body" in resp else resp
    assert body["error"]["field"] == field, body
    assert words in body["error"]["message"], body
    assert field in f"{body['error']['field']}: {body['error']['message']}"


@pytest.mark.parametrize("fields, field, words", BAD_FIELDS)
@pytest.mark.parametrize("kind", ["direct", "v1", "v2"])
def test_bad_fields_are_400_naming_the_field(router: Router, kind: str, fields: dict, field: str,
                                             words: str) -> None:
    if kind == "direct":
        event = dict(fields)
    else:
        try:
            event = (v1 if kind == "v1" else v2)(json.dumps(fields))
        except ValueError:      # 10**400 is not JSON-serialisable as a float: send the digits
            event = (v1 if kind == "v1" else v2)(json.dumps(fields, default=str))
    _assert_400(router.handle(event, NOW), field, words)


@pytest.mark.parametrize("case, field, words", BAD_EVENTS)
@pytest.mark.parametrize("make", [v1, v2])
def test_bad_events_are_400_naming_the_field(router: Router, make, case, field: str, words: str) -> None:
    _assert_400(router.handle(case(make), NOW), field, words)


@pytest.mark.parametrize("event", [None, [], "workload_type=lightweight_api", 42, [GOOD]])
def test_non_object_direct_events_are_400(router: Router, event) -> None:
    _assert_400(router.handle(event, NOW), "event", "JSON object")


def test_no_client_error_is_ever_a_500(router: Router) -> None:
    """A sweep of mangled events: every answer is 200 or 400, and 400s always name a field."""
    import random

    rng = random.Random(0)
    values = [None, "", "x", -1, 0, 1e9, True, [], {}, "1e3", "lightweight_api", "midday", "2025-11-20"]
    keys = ["workload_type", "payload_size_kb", "timestamp", "time_window", "load_pattern", "arm", "junk"]
    for _ in range(400):
        fields = {k: rng.choice(values) for k in rng.sample(keys, rng.randint(0, len(keys)))}
        for event in (fields, v1(json.dumps(fields)), v2(json.dumps(fields)),
                      v1(method="GET", query={k: str(v) for k, v in fields.items()})):
            resp = router.handle(event, NOW)
            assert resp["statusCode"] in (200, 400), (event, resp)
            if resp["statusCode"] == 400:
                body = json.loads(resp["body"]) if "body" in resp else resp
                assert body["error"]["field"] and body["error"]["message"]


# ------------------------------------------------------------------------ windows, patterns, arms
def test_nearest_window_rule(spec: FeatureSpec) -> None:
    hours = spec.time_window_hours      # 2-3, 8-9, 12-13, 18-19, 22-23 local
    assert nearest_time_window(hours, 12) == "midday"            # inside
    assert nearest_time_window(hours, 14) == "midday"            # 2 h after vs 4 h before evening
    assert nearest_time_window(hours, 16) == "evening"
    assert nearest_time_window(hours, 0) == "late_night"         # wraps midnight: 2 h vs 2 h -> earlier
    assert nearest_time_window(hours, 5) == "early_morning"      # 3 h after vs 3 h before: earlier
    assert nearest_time_window(hours, 20) == "evening"


def test_outside_every_window_uses_nearest_and_says_so(router: Router) -> None:
    d = router.route({"workload_type": "lightweight_api", "payload_size_kb": 1,
                      "timestamp": "2025-11-20T16:00:00+05:30"})
    assert (d.inputs.time_window, d.inputs.time_window_source) == ("evening", "nearest")
    assert (d.inputs.load_pattern, d.inputs.load_pattern_source) == ("burst_load", "window")
    naive = router.route({"workload_type": "lightweight_api", "payload_size_kb": 1,
                          "timestamp": "2025-11-20T02:30:00"})      # read in the spec's timezone
    assert (naive.inputs.time_window, naive.inputs.time_window_source) == ("early_morning", "hour")


def test_outside_window_reject_policy(model_dir, params) -> None:
    cfg = router_config(params.model_copy(update={"router": params.router.model_copy(
        update={"outside_window": "reject"})}))
    r = Router.from_dir(model_dir, cfg)
    resp = r.handle({"workload_type": "lightweight_api", "payload_size_kb": 1}, NOW)
    _assert_400(resp, "time_window", "outside every window")
    assert r.handle({"workload_type": "lightweight_api", "payload_size_kb": 1, "time_window": "midday"},
                    NOW)["statusCode"] == 200


def test_timestamp_defaults_to_now(router: Router) -> None:
    d = router.route({"workload_type": "lightweight_api", "payload_size_kb": 1})
    assert abs((d.inputs.sent_at - datetime.now(timezone.utc)).total_seconds()) < 5


def test_arms_control_uses_static_rule_treatment_the_model(router: Router, monkeypatch) -> None:
    seen = set()
    for w in router.spec.workload_codes:
        for size in (0.5, 50, 1024, 8192):
            f = {"workload_type": w, "payload_size_kb": size, "timestamp": "2025-11-20T08:30:00+05:30"}
            c = router.route({**f, "arm": "control"})
            t = router.route({**f, "arm": "treatment"})
            assert c.platform == router.static_rule[w] and c.decided_by == "static_rule"
            assert t.platform == t.model_platform and t.decided_by == "model"
            assert c.probability_lambda == t.probability_lambda
            seen.add((c.platform, t.platform))
    monkeypatch.setenv(H.ARM_ENV, "control")
    d = router.route({"workload_type": "lightweight_api", "payload_size_kb": 1})
    assert (d.arm, d.inputs.arm_source) == ("control", "environment")
    assert router.route({"workload_type": "lightweight_api", "payload_size_kb": 1,
                         "arm": "treatment"}).arm == "treatment"
    monkeypatch.delenv(H.ARM_ENV)
    assert router.route({"workload_type": "lightweight_api", "payload_size_kb": 1}).inputs.arm_source == "default"


# ------------------------------------------------------------------------------ package problems
def test_broken_model_dir_is_a_package_error_and_a_500(model_dir, params, tmp_path, monkeypatch) -> None:
    import shutil

    broken = tmp_path / "m"
    shutil.copytree(model_dir, broken)
    (broken / "static_rule.json").write_text(json.dumps({"lightweight_api": "lambda"}))
    with pytest.raises(PackageError, match="static_rule.json has no platform"):
        Router.from_dir(broken, router_config(params))
    (broken / "feature_columns.json").write_text("[\"a\"]")
    with pytest.raises(PackageError, match="feature_columns.json"):
        Router.from_dir(broken, router_config(params))
    with pytest.raises(PackageError, match="router_config.json"):
        Router.from_dir(model_dir)               # the training dir has no router config: only packages do
    monkeypatch.setenv(H.MODEL_DIR_ENV, str(broken))
    monkeypatch.setattr(H, "_ROUTER", None)
    resp = H.lambda_handler(v2(GOOD))
    assert resp["statusCode"] == 500 and "broken" in json.loads(resp["body"])["error"]["message"]


def test_lambda_handler_entry_point_reads_the_model_dir(model_dir, params, tmp_path, monkeypatch) -> None:
    import shutil
    from dataclasses import asdict

    d = tmp_path / "model"
    shutil.copytree(model_dir, d)
    (d / H.ROUTER_CONFIG).write_text(json.dumps(asdict(router_config(params))))
    monkeypatch.setenv(H.MODEL_DIR_ENV, str(d))
    monkeypatch.setattr(H, "_ROUTER", None)
    _ok(H.lambda_handler(v1(GOOD), None))
    _assert_400(H.lambda_handler(v1("{"), None), "body", "malformed")


def test_bad_request_message_names_field() -> None:
    assert str(BadRequest("payload_size_kb", "is negative")).startswith("payload_size_kb")
