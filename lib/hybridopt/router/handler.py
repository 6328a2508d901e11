"""The router's inference handler: one request's context in, the recommended platform out.

Runs in AWS Lambda (`hybridopt.router.handler.lambda_handler`) from the package that
`python -m hybridopt package` builds, and in-process on the testbed (`Router.from_dir`). It needs
the standard library, tzdata and three hybridopt modules: features.py (THE feature code, the
same `FeatureSpec.row` preprocessing's `FeatureSpec.frame` mirrors), contract.py and trees.py.

Accepted events
- API Gateway REST API proxy (payload v1: `httpMethod`, `body`, `queryStringParameters`,
  `pathParameters`, `isBase64Encoded`) and HTTP API proxy (payload v2: `version` "2.0",
  `requestContext.http.method`, `body`, `queryStringParameters`). POST takes a JSON object
  body; GET takes query-string parameters. A path parameter `workload` (route
  `/route/{workload}`) supplies workload_type.
- Direct invocation: the input object itself.

Input fields
- `workload_type` (required): one of the spec's workloads.
- `payload_size_kb` (required): a finite number 0 <= x <= router_config max_payload_size_kb
  (a string holding a number is accepted, since query strings are strings).
- `timestamp` (optional): ISO-8601; a timestamp without a zone is read in the spec's timezone;
  absent: now. (`sent_at` is accepted as an alias.)
- `time_window` (optional): one of the spec's windows. Absent: the window holding the local hour.
  Outside every window (the schedule covers 5 of 24 hours), router_config `outside_window`
  decides: "nearest" (default) uses the window nearest in circular hours, the earlier one on a
  tie, and the answer says `time_window_source: "nearest"` so a caller sees the extrapolation
  (the model never saw those hours); "reject" answers 400.
- `load_pattern` (optional): one of the spec's load patterns. Absent: the pattern the schedule
  runs in that time window (params time_windows.<w>.load_pattern).
- `arm` (optional): "control" (the static per-workload rule) or "treatment" (the model).
  Absent: environment variable HYBRIDOPT_ARM (set per published Lambda version for the
  weighted-alias A/B), else "treatment". The model's probability is reported in both arms.

Answers: HTTP 200 with `recommended_platform`, `probability_lambda`, `model_version`, `arm`,
`decided_by` and the resolved inputs; HTTP 400 with `{"error": {"field", "message"}}` for any
client error (never a 500); HTTP 500 only for a broken package (model missing or malformed).
Direct invocations get the same object with a `statusCode` key instead of an HTTP envelope.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import re
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from hybridopt import model_dir as layout
from hybridopt.errors import InputError
from hybridopt.data.contract import ARMS, PLATFORMS
from hybridopt.data.features import FeatureSpec
from hybridopt.router.trees import (
    LightGBMTextModel,
    ModelFormatError,
    XGBoostJSONModel,
    load_model,
)

#: The input fields a request may carry (anything else is a 400 naming the field).
INPUT_FIELDS = ("workload_type", "payload_size_kb", "timestamp", "sent_at", "time_window",
                "load_pattern", "arm")
MODEL_DIR_ENV = "HYBRIDOPT_MODEL_DIR"
ARM_ENV = "HYBRIDOPT_ARM"
MODEL_FILES = layout.REQUIRED_FILES
ROUTER_CONFIG = layout.ROUTER_CONFIG


class BadRequest(ValueError):
    """A client error: answered with HTTP 400 naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PackageError(InputError):
    """The model directory is incomplete or inconsistent (a server-side error)."""


@dataclass(frozen=True)
class RouteInput:
    workload_type: str
    payload_size_kb: float
    sent_at: datetime
    time_window: str
    time_window_source: str      # given | hour | nearest
    load_pattern: str
    load_pattern_source: str     # given | window
    arm: str
    arm_source: str              # given | environment | default


@dataclass(frozen=True)
class Decision:
    platform: str
    probability_lambda: float
    model_platform: str
    static_platform: str
    decided_by: str              # model | static_rule
    arm: str
    model_version: str
    inference_ms: float
    inputs: RouteInput

    def body(self) -> dict[str, Any]:
        i = self.inputs
        return {
            "recommended_platform": self.platform,
            "probability_lambda": self.probability_lambda,
            "model_version": self.model_version,
            "arm": self.arm,
            "decided_by": self.decided_by,
            "model_platform": self.model_platform,
            "static_platform": self.static_platform,
            "inference_ms": round(self.inference_ms, 4),
            "inputs": {
                "workload_type": i.workload_type, "payload_size_kb": i.payload_size_kb,
                "sent_at": i.sent_at.isoformat(), "time_window": i.time_window,
                "time_window_source": i.time_window_source, "load_pattern": i.load_pattern,
                "load_pattern_source": i.load_pattern_source, "arm_source": i.arm_source,
            },
        }


@dataclass(frozen=True)
class RouterConfig:
    """router_config.json: what the handler needs beyond the training artifacts."""

    window_load_patterns: dict[str, str]
    outside_window: str = "nearest"          # nearest | reject
    max_payload_size_kb: float = 10240.0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RouterConfig":
        cfg = cls(window_load_patterns=dict(d["window_load_patterns"]),
                  outside_window=str(d.get("outside_window", "nearest")),
                  max_payload_size_kb=float(d.get("max_payload_size_kb", 10240.0)))
        if cfg.outside_window not in ("nearest", "reject"):
            raise PackageError(f"{ROUTER_CONFIG}: outside_window {cfg.outside_window!r} is not nearest|reject")
        return cfg


class Router:
    """A loaded model directory: feature spec, serving model, static rule, metadata."""

    def __init__(self, spec: FeatureSpec, model: LightGBMTextModel | XGBoostJSONModel,
                 static_rule: dict[str, str], metadata: dict[str, Any], config: RouterConfig,
                 model_version: str) -> None:
        self.spec = spec
        self.model = model
        self.static_rule = static_rule
        self.metadata = metadata
        self.config = config
        self.model_version = model_version
        serving = metadata.get("serving") or {}
        self.threshold = float(serving.get("threshold", 0.5))
        positive = str(serving.get("positive_class", "lambda"))
        if positive not in PLATFORMS:
            raise PackageError(f"model_metadata.json serving.positive_class {positive!r} is not lambda|ecs")
        self.positive_class = positive
        self.tz = ZoneInfo(spec.timezone)
        missing = sorted(set(spec.workload_codes) - set(static_rule))
        if missing:
            raise PackageError(f"static_rule.json has no platform for workloads {missing}")
        bad = {w: p for w, p in static_rule.items() if p not in PLATFORMS}
        if bad:
            raise PackageError(f"static_rule.json: platforms {bad} are not lambda|ecs")
        unknown = {w: lp for w, lp in config.window_load_patterns.items()
                   if w not in spec.time_window_codes or lp not in spec.load_pattern_codes}
        if unknown or set(config.window_load_patterns) != set(spec.time_window_codes):
            raise PackageError(f"{ROUTER_CONFIG}: window_load_patterns {config.window_load_patterns} "
                               f"must map every time window {sorted(spec.time_window_codes)} to a load "
                               f"pattern {sorted(spec.load_pattern_codes)}")

    # -- loading --------------------------------------------------------------------------------
    @classmethod
    def from_dir(cls, model_dir: str | os.PathLike[str], config: RouterConfig | None = None) -> "Router":
        """Load a model directory. `config` None: read its router_config.json (the package's)."""
        d = Path(model_dir)
        if not d.is_dir():
            raise PackageError(f"{d}: no such model folder: train a model first (notebook 04_train)")
        names = MODEL_FILES + (() if config is not None else (ROUTER_CONFIG,))
        docs = {}
        for name in names:
            try:
                docs[name] = json.loads((d / name).read_bytes())
            except FileNotFoundError:
                raise PackageError(f"{d}: model file missing: {name}: train a model first (notebook 04_train)") from None
            except ValueError as exc:
                raise PackageError(f"{d / name}: not valid JSON ({exc}): retrain the model (notebook 04_train)") from None
        try:
            spec = FeatureSpec.from_json((d / layout.FEATURE_SPEC).read_text())
        except (KeyError, TypeError, ValueError) as exc:
            raise PackageError(f"{d / layout.FEATURE_SPEC}: not a feature spec ({exc!r}): retrain the model "
                               "(notebook 04_train)") from None
        if docs[layout.FEATURE_COLUMNS] != spec.columns:
            raise PackageError(f"{d}: feature_columns.json {docs['feature_columns.json']} differs from "
                               f"feature_spec.json columns {spec.columns}")
        serving = docs[layout.METADATA].get("serving")
        if not isinstance(serving, dict) or "format" not in serving or "file" not in serving:
            raise PackageError(f"{d}/model_metadata.json: 'serving' with 'format' and 'file' is required")
        model_path = d / str(serving["file"])
        try:
            text = model_path.read_text()
        except FileNotFoundError:
            raise PackageError(f"{model_path}: the serving model file is missing") from None
        except ValueError:
            raise PackageError(f"{model_path}: the serving model file is not text: retrain the model "
                               "(notebook 04_train)") from None
        try:
            model = load_model(str(serving["format"]), text, str(model_path))
        except ModelFormatError as exc:
            raise PackageError(str(exc)) from None
        if model.feature_names and model.feature_names != spec.columns and not _generic_names(model.feature_names):
            raise PackageError(f"{model_path}: model features {model.feature_names} differ from "
                               f"feature_columns.json {spec.columns}")
        meta = docs[layout.METADATA]
        version = str(meta.get("model_version") or
                      f"{serving['format']}-{hashlib.sha256(text.encode()).hexdigest()[:12]}")
        try:
            cfg = config or RouterConfig.from_dict(docs[ROUTER_CONFIG])
        except PackageError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise PackageError(f"{d}/{ROUTER_CONFIG}: {exc!r}") from None
        return cls(spec, model, docs[layout.STATIC_RULE], meta, cfg, version)

    # -- one decision ---------------------------------------------------------------------------
    def parse(self, fields: Mapping[str, Any], now: datetime | None = None) -> RouteInput:
        """Validate a request's fields (BadRequest names the field)."""
        unknown = sorted(k for k in fields if k not in INPUT_FIELDS)
        if unknown:
            raise BadRequest(unknown[0], f"unknown field (allowed: {', '.join(INPUT_FIELDS)})")
        workload = _category(fields, "workload_type", self.spec.workload_codes, required=True)
        size = _size(fields.get("payload_size_kb"), self.config.max_payload_size_kb)
        sent_at = self._timestamp(fields, now)
        local_hour = sent_at.astimezone(self.tz).hour
        window = _category(fields, "time_window", self.spec.time_window_codes, required=False)
        window_source = "given"
        if window is None:
            window = self.spec.time_window_for_hour(local_hour)
            window_source = "hour"
            if window is None:
                if self.config.outside_window == "reject":
                    raise BadRequest("time_window", f"missing, and local hour {local_hour} "
                                     f"({self.spec.timezone}) is outside every window "
                                     f"{self.spec.time_window_hours}: give time_window")
                window = nearest_time_window(self.spec.time_window_hours, local_hour)
                window_source = "nearest"
        pattern = _category(fields, "load_pattern", self.spec.load_pattern_codes, required=False)
        pattern_source = "given"
        if pattern is None:
            pattern = self.config.window_load_patterns[window]
            pattern_source = "window"
        arm = fields.get("arm")
        arm_source = "given"
        if arm is None:
            arm, arm_source = os.environ.get(ARM_ENV), "environment"
            if not arm:
                arm, arm_source = "treatment", "default"
            elif arm not in ARMS:
                raise PackageError(f"environment {ARM_ENV}={arm!r} is not one of {ARMS}")
        elif not isinstance(arm, str) or arm not in ARMS:
            raise BadRequest("arm", f"{arm!r} is not one of {list(ARMS)}")
        return RouteInput(workload, size, sent_at, window, window_source, pattern, pattern_source,
                          arm, arm_source)

    def _timestamp(self, fields: Mapping[str, Any], now: datetime | None) -> datetime:
        name = "timestamp" if "timestamp" in fields else "sent_at"
        value = fields.get(name)
        if "timestamp" in fields and "sent_at" in fields:
            raise BadRequest("timestamp", "give timestamp or sent_at, not both")
        if value is None:
            return now or datetime.now(timezone.utc)
        if isinstance(value, bool) or not isinstance(value, str):
            raise BadRequest(name, f"{value!r} is not an ISO-8601 string (e.g. 2025-11-20T08:15:00+05:30)")
        try:
            ts = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest(name, f"{value!r} is not an ISO-8601 timestamp "
                             "(e.g. 2025-11-20T08:15:00+05:30)") from None
        return ts if ts.tzinfo is not None else ts.replace(tzinfo=self.tz)

    def decide(self, inp: RouteInput) -> Decision:
        t0 = time.perf_counter()
        row = self.spec.row(inp.workload_type, inp.payload_size_kb, inp.sent_at, inp.time_window,
                            inp.load_pattern)
        p_pos = self.model.predict_proba(row)
        p_lambda = p_pos if self.positive_class == "lambda" else 1.0 - p_pos
        model_platform = self.positive_class if p_pos >= self.threshold else _other(self.positive_class)
        static_platform = self.static_rule[inp.workload_type]
        treatment = inp.arm == "treatment"
        elapsed_ms = (time.perf_counter() - t0) * 1000.0
        return Decision(model_platform if treatment else static_platform, p_lambda, model_platform,
                        static_platform, "model" if treatment else "static_rule", inp.arm,
                        self.model_version, elapsed_ms, inp)

    def route(self, fields: Mapping[str, Any], now: datetime | None = None) -> Decision:
        return self.decide(self.parse(fields, now))

    def handle(self, event: object, now: datetime | None = None) -> dict[str, Any]:
        """Answer one Lambda event (API Gateway v1/v2 proxy or direct invocation)."""
        kind = event_kind(event)
        try:
            fields = request_fields(event, kind)
            body: dict[str, Any] = self.route(fields, now).body()
            status = 200
        except BadRequest as exc:
            status, body = 400, {"error": {"field": exc.field, "message": exc.message}}
        return respond(kind, status, body)


# ------------------------------------------------------------------------------------------ events
def event_kind(event: object) -> str:
    """'v2' (HTTP API), 'v1' (REST API), or 'direct'."""
    if isinstance(event, Mapping):
        ctx = event.get("requestContext")
        if event.get("version") == "2.0" and isinstance(ctx, Mapping) and isinstance(ctx.get("http"), Mapping):
            return "v2"
        if "httpMethod" in event and isinstance(ctx, Mapping):
            return "v1"
    return "direct"


def request_fields(event: object, kind: str) -> dict[str, Any]:
    """The input fields of an event (BadRequest for a wrong method, a bad body, ...)."""
    if not isinstance(event, Mapping):  # only a direct invocation can be anything else
        raise BadRequest("event", f"expected a JSON object, got {type(event).__name__}")
    if kind == "direct":
        return dict(event)
    method = (event["requestContext"]["http"].get("method") if kind == "v2" else event.get("httpMethod"))
    method = str(method or "").upper()
    if method == "POST":
        fields = _json_body(event)
    elif method == "GET":
        if event.get("body"):
            raise BadRequest("body", "a GET request takes query-string parameters, not a body")
        fields = dict(event.get("queryStringParameters") or {})
    else:
        raise BadRequest("method", f"{method or '(none)'} is not allowed (use POST with a JSON body "
                         "or GET with query-string parameters)")
    path_workload = (event.get("pathParameters") or {}).get("workload")
    if path_workload is not None:
        if "workload_type" in fields and fields["workload_type"] != path_workload:
            raise BadRequest("workload_type", f"body says {fields['workload_type']!r} but the path "
                             f"says {path_workload!r}")
        fields["workload_type"] = path_workload
    return fields


def _json_body(event: Mapping[str, Any]) -> dict[str, Any]:
    raw = event.get("body")
    if raw is None or raw == "":
        raise BadRequest("body", "missing: POST a JSON object such as "
                         '{"workload_type": "lightweight_api", "payload_size_kb": 5}')
    if not isinstance(raw, str):
        raise BadRequest("body", f"expected a string, got {type(raw).__name__}")
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise BadRequest("body", "isBase64Encoded is true but the body is not base64 of UTF-8 text") from None
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise BadRequest("body", f"malformed JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BadRequest("body", f"expected a JSON object, got {type(doc).__name__}")
    return doc


def respond(kind: str, status: int, body: dict[str, Any]) -> dict[str, Any]:
    if kind == "direct":
        return {"statusCode": status, **body}
    return {"statusCode": status, "headers": {"Content-Type": "application/json"},
            "isBase64Encoded": False, "body": json.dumps(body)}


# ------------------------------------------------------------------------------------------ fields
def _category(fields: Mapping[str, Any], name: str, codes: Mapping[str, int], required: bool) -> str | None:
    value = fields.get(name)
    if value is None:
        if required:
            raise BadRequest(name, f"missing (expected one of {sorted(codes)})")
        return None
    if not isinstance(value, str) or value not in codes:
        raise BadRequest(name, f"{value!r} is not one of {sorted(codes)}")
    return value


def _size(value: object, max_kb: float) -> float:
    name = "payload_size_kb"
    if value is None:
        raise BadRequest(name, "missing (a number of kilobytes, e.g. 5 or 1024)")
    if isinstance(value, bool):
        raise BadRequest(name, f"{value!r} is not a number")
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise BadRequest(name, f"{value!r} is not a number") from None
    elif isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            raise BadRequest(name, "too large") from None
    else:
        raise BadRequest(name, f"{value!r} is not a number")
    if not math.isfinite(number):
        raise BadRequest(name, f"{value!r} is not a finite number")
    if number < 0:
        raise BadRequest(name, f"{number} is negative")
    if number > max_kb:
        raise BadRequest(name, f"{number} KB exceeds {max_kb} KB (the front doors' payload limit)")
    return number


def _generic_names(names: list[str]) -> bool:
    """Names a library makes up when trained on a bare array (Column_0 / f0 ...)."""
    return all(re.fullmatch(r"(Column_|f)\d+", n) for n in names) and len(names) > 0


def _other(platform: str) -> str:
    return "ecs" if platform == "lambda" else "lambda"


def nearest_time_window(hours: Mapping[str, list[int]], hour: int) -> str:
    """The window nearest to a local hour in circular hours (0 inside it); ties go to the window
    that ended before the hour (the earlier one)."""
    best: tuple[int, int, str] | None = None
    for name, (start, end) in hours.items():
        inside = range(start, end) if end > start else [*range(start, 24), *range(0, end)]
        after = min((hour - h) % 24 for h in inside)     # hours since the window's nearest hour
        before = min((h - hour) % 24 for h in inside)    # hours until it
        key = (min(after, before), 0 if after <= before else 1, name)
        if best is None or key < best:
            best = key
    assert best is not None
    return best[2]


# --------------------------------------------------------------------------------- Lambda entry point
_ROUTER: Router | None = None


def default_model_dir() -> Path:
    """HYBRIDOPT_MODEL_DIR, else `model/` at the package root (the Lambda zip's layout)."""
    env = os.environ.get(MODEL_DIR_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "model"


def get_router() -> Router:
    global _ROUTER
    if _ROUTER is None:
        _ROUTER = Router.from_dir(default_model_dir())
    return _ROUTER


def lambda_handler(event: object, context: object = None) -> dict[str, Any]:
    """AWS Lambda entry point: `hybridopt.router.handler.lambda_handler`."""
    kind = event_kind(event)
    try:
        return get_router().handle(event)
    except (PackageError, OSError) as exc:
        print(json.dumps({"level": "error", "message": f"router package broken: {exc}"}))
        return respond(kind, 500, {"error": {"field": None, "message": "router package is broken"}})
    except Exception:  # a bug: answer 500 (not a Lambda crash) and log the traceback, never the event
        print(json.dumps({"level": "error", "message": traceback.format_exc()}))
        return respond(kind, 500, {"error": {"field": None, "message": "internal error"}})


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):   # load during INIT (boosted CPU), not on the first request
    try:
        get_router()
    except (PackageError, OSError):
        pass                                     # every request then answers 500 with the reason logged
