"""Parameters: `params/base.yaml` + `params/testbed.yaml` + `params/<profile>.yaml`, deep-merged in
that order and validated. Any unknown key, wrong type or missing file raises `ParamsError` naming the
file, the dotted key and what was expected."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import paths

BASE_FILES = ("base.yaml", "testbed.yaml")


class ParamsError(ValueError):
    """A parameter file is missing, malformed, or holds a key or value that is not allowed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ----------------------------------------------------------------------------------------- experiment
class DataPaths(_Strict):
    raw_dir: str = Field(description="contract JSONL written by collect/simulate, read by ingest")
    legacy_dir: str | None = Field(None, description="a folder in the legacy thesis layout to ingest")
    processed_dir: str
    reports_dir: str
    models_dir: str


class FargateTask(_Strict):
    vcpu: float = Field(gt=0)
    memory_gb: float = Field(gt=0)
    min_tasks: int = Field(1, ge=1)
    max_tasks: int = Field(1, ge=1)


class Workload(_Strict):
    code: int = Field(ge=0, description="workload_type_encoded")
    payload_sizes_kb: list[float] = Field(min_length=1)
    lambda_memory_mb: int = Field(ge=128, le=10240)
    fargate: FargateTask
    lambda_route: str
    ecs_route: str

    @field_validator("payload_sizes_kb")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(x <= 0 for x in v):
            raise ValueError("payload sizes must be > 0 KB")
        return v


class Phase(_Strict):
    name: str
    duration_s: float = Field(gt=0)
    arrival_rate_rps: float = Field(ge=0, description="generated payloads (pairs) per second")
    ramp_to_rps: float | None = Field(None, ge=0)


class LoadPattern(_Strict):
    code: int = Field(ge=0, description="load_pattern_encoded")
    phases: list[Phase] = Field(min_length=1)

    @property
    def duration_s(self) -> float:
        return sum(p.duration_s for p in self.phases)

    @property
    def expected_arrivals(self) -> float:
        return self.arrivals_until(self.duration_s)

    def arrivals_until(self, t_s: float) -> float:
        """Scheduled arrivals in [0, t_s) from the pattern's start (linear ramps integrated)."""
        total, start = 0.0, 0.0
        for p in self.phases:
            if t_s <= start:
                break
            d = min(t_s - start, p.duration_s)
            end_rate = p.ramp_to_rps if p.ramp_to_rps is not None else p.arrival_rate_rps
            rate_at_d = p.arrival_rate_rps + (end_rate - p.arrival_rate_rps) * d / p.duration_s
            total += d * (p.arrival_rate_rps + rate_at_d) / 2
            start += p.duration_s
        return total


class TimeWindow(_Strict):
    code: int = Field(ge=0, description="time_window_encoded")
    start_hour: int = Field(ge=0, le=23, description="local hour (profile timezone) the window starts")
    end_hour: int = Field(ge=0, le=24, description="local hour it ends (exclusive)")
    load_pattern: str = Field(description="the load pattern the schedule runs in this window")


# --------------------------------------------------------------------------------------------- prices
class Price(_Strict):
    value: float = Field(ge=0)
    source: str = Field(min_length=5, description="where the number comes from")


class Prices(_Strict):
    region: str
    lambda_gb_s_usd: Price
    lambda_request_usd: Price
    api_gateway_rest_request_usd: Price
    api_gateway_http_request_usd: Price
    fargate_vcpu_hour_usd: Price
    fargate_gb_hour_usd: Price
    alb_hour_usd: Price
    alb_lcu_hour_usd: Price
    alb_gb_per_lcu_hour: Price


class CostOptions(_Strict):
    fargate_mode: Literal["amortised", "marginal"] = "amortised"
    bill_lambda_init: bool = True
    api_gateway: Literal["rest", "http"] = "rest"
    include_alb: bool = True


class Pairing(_Strict):
    window_s: float = Field(gt=0, description="legacy time matching: max gap between the two platforms")


class Labels(_Strict):
    target: Literal["balanced_optimal", "latency_optimal", "cost_optimal"] = "balanced_optimal"
    latency_margin: float = Field(0.10, ge=0, lt=1)
    cost_margin: float = Field(0.10, ge=0, lt=1)


class Features(_Strict):
    columns: list[str] = Field(min_length=1)
    forbidden: list[str]


class Gates(_Strict):
    label_mean_min: float = 0.2
    label_mean_max: float = 0.8
    label_std_min: float = 0.3
    payload_sizes_min: int = 4
    payload_sizes_max: int = 5


class Audit(_Strict):
    hour_slack_h: int = Field(1, ge=0, description="hours past a window's end still counted consistent")
    client_timeout_s: float = Field(10.0, gt=0, description="the load generator's response timeout "
                                    "(Artillery's default is 10 s): slower responses were never seen")
    min_consistent_share: float = Field(0.95, ge=0, le=1, description="clock check passes above this share")


class Split(_Strict):
    train: float = Field(0.6, gt=0, lt=1)
    validation: float = Field(0.2, gt=0, lt=1)
    test: float = Field(0.2, gt=0, lt=1)
    seed: int = 42

    @model_validator(mode="after")
    def _sum_to_one(self) -> "Split":
        if abs(self.train + self.validation + self.test - 1.0) > 1e-9:
            raise ValueError("train + validation + test must be 1.0")
        return self


# ------------------------------------------------------------------------------------------ training
SearchValue = int | float | str | bool | None | list[int]


class ModelSearch(_Strict):
    """5-fold CV search of one model family: the plan's settings first, then `n_iter - 1` settings
    drawn (seeded) from `space`, stopping early when `budget_s` would be exceeded."""
    n_iter: int = Field(ge=1, description="candidates at most, the plan's settings included")
    budget_s: float = Field(gt=0, description="wall-clock budget of this model's search")
    plan: dict[str, SearchValue] = Field(description="the thesis plan's settings (candidate 1)")
    space: dict[str, list[SearchValue]] = Field(default_factory=dict, description="values to draw from")


class Selection(_Strict):
    rule: Literal["val_roc_auc_portable"] = "val_roc_auc_portable"
    portable: list[Literal["lightgbm", "xgboost"]] = Field(min_length=1)
    tie_tolerance: float = Field(ge=0, description="ROC-AUC difference treated as a tie")
    prefer: Literal["lightgbm", "xgboost"] = Field(description="winner of a tie (faster serving)")


class Verdict(_Strict):
    """The thesis plan's success criteria (accept: all of the first six; fail: any flag)."""
    accuracy_min: float
    accuracy_max: float
    gap_max: float
    top_feature_max: float
    meaningful_share: float = Field(description="a feature 'contributes meaningfully' at this |SHAP| share")
    min_meaningful_features: int
    precision_gap_max: float
    fail_accuracy_above: float
    fail_accuracy_below: float
    fail_gap_above: float
    fail_top_feature_above: float


class Training(_Strict):
    seed: int = 42
    n_jobs: int = Field(2, description="threads per model fit")
    cv_folds: int = Field(5, ge=2)
    cv_max_rows: int = Field(ge=0, description="rows of the training split the CV search uses (0 = all)")
    threshold: float = Field(0.5, gt=0, lt=1)
    search: dict[Literal["random_forest", "xgboost", "lightgbm", "mlp"], ModelSearch]
    ensemble_size: int = Field(3, ge=2)
    selection: Selection
    temporal_min_runs: int = Field(3, ge=2, description="leave-one-run-out only with this many runs")
    temporal_max_folds: int = Field(6, ge=2, description="more runs are held out in this many time blocks")
    ceiling_min_group: int = Field(ge=1, description="training samples a feature vector needs to count")
    ceiling_folds: int = Field(5, ge=2)
    explain_rows: int = Field(ge=10, description="rows whose SHAP values give the verdict importance")
    agnostic_explain_rows: int = Field(ge=10, description="rows explained for the MLP and the ensemble "
                                       "(permutation SHAP, far slower than TreeSHAP)")
    background_rows: int = Field(ge=10, description="background of the model-agnostic explainer")
    interaction_rows: int = Field(ge=10, description="rows for SHAP interaction values")
    surrogate_max_depth: int = Field(ge=1, le=6)
    surrogate_min_leaf_share: float = Field(gt=0, lt=0.5)
    verdict: Verdict


# ------------------------------------------------------------------------------------------- testbed
#: How a testbed value is known. fact: published by AWS (docs, pricing, blog); observed: a public
#: third-party measurement or report; derived: arithmetic on sourced numbers; deployed: what the student
#: actually deployed (origin repository); assumption: our choice, to be checked; fitted: estimated from
#: real logs by the calibration code; measured: our own benchmark on this machine.
Basis = Literal["fact", "observed", "derived", "deployed", "assumption", "fitted", "measured"]
_T = TypeVar("_T")


class Sourced(_Strict, Generic[_T]):
    """A platform-model value with its provenance."""
    value: _T
    basis: Basis
    source: str = Field(min_length=5, description="platform-facts.md section and URL, or why assumed")


class ClientInflation(_Strict):
    """Load-dependent latency added by the measurement setup itself (a saturated load generator), not
    by a platform. With x = max(0, rate - threshold_rps) ** exponent, where rate is the client's own
    request rate over the last window_s seconds (both platforms counted), and q_ms = ms_per_rps * x:

    - form `additive`: each request's response reaches the client q_ms later;
    - form `round_trip`: every round trip of the request (handshakes, the upload's slow-start rounds,
      request and response) takes q_ms longer, as if the client's round-trip time grew by q_ms;
    - form `multiplicative`: the request's client-side time (handshakes + upload + one round trip)
      grows by q_ms per second of it (ms_per_rps is then ms per second per request/s)."""
    enabled: Sourced[bool]
    form: Sourced[Literal["additive", "round_trip", "multiplicative"]]
    window_s: Sourced[float]
    threshold_rps: Sourced[float]
    ms_per_rps: Sourced[float]
    exponent: Sourced[float]


class ClientPreset(_Strict):
    """The client's network and timeout: where the load generator sits relative to the region."""
    description: str
    rtt_ms: Sourced[float]
    rtt_jitter_sigma: Sourced[float]
    dns_ms: Sourced[float]
    tcp_handshake_rtts: Sourced[float]
    tls_handshake_rtts: Sourced[float]
    upload_mbps: Sourced[float]
    initcwnd_segments: Sourced[int]
    mss_bytes: Sourced[int]
    request_header_bytes: Sourced[int]
    request_timeout_s: Sourced[float] = Field(
        description="the client gives up this long after it STARTED the request (got's timeout.request, "
        "as Artillery passes http.timeout): connect, upload, wait and response together")
    inflation: ClientInflation


class KeepAlive(_Strict):
    """Idle execution-environment reclaim: `fixed` (gone idle_timeout_s after its last request) or
    `halving` (SeBS 2020: survives k * halving_period_s with probability 0.5 ** (k - 1))."""
    policy: Sourced[Literal["fixed", "halving"]]
    idle_timeout_s: Sourced[float]
    halving_period_s: Sourced[float]
    max_env_lifetime_s: Sourced[float | None]


class LambdaModel(_Strict):
    api_gateway_max_request_bytes: Sourced[int]
    api_gateway_too_large_body: Sourced[str]
    api_gateway_integration_timeout_s: Sourced[float]
    api_gateway_overhead_ms: Sourced[float]
    invoke_payload_limit_bytes: Sourced[int]
    event_overhead_bytes: Sourced[int]
    account_concurrency: Sourced[int]
    scaling_burst_envs: Sourced[int]
    scaling_refill_envs_per_s: Sourced[float]
    throttle_status: Sourced[int]
    full_vcpu_memory_mb: Sourced[float]
    init_p50_ms: Sourced[float]
    init_p99_ms: Sourced[float]
    cold_start_overhead_ms: Sourced[float]
    runtime_overhead_ms: Sourced[float]
    function_timeout_s: Sourced[float]
    billed_duration_includes_init: Sourced[bool]
    memory_used_base_mb: Sourced[float]
    keep_alive: KeepAlive


class Autoscaling(_Strict):
    """ECS service target tracking (Application Auto Scaling), per workload service."""
    enabled: Sourced[bool]
    metric: Sourced[Literal["cpu", "request_count_per_target"]]
    target_value: Sourced[float]
    metric_period_s: Sourced[float]
    scale_out_datapoints: Sourced[int]
    scale_in_datapoints: Sourced[int]
    scale_in_ratio: Sourced[float]
    scale_out_cooldown_s: Sourced[float]
    scale_in_cooldown_s: Sourced[float]
    task_start_s: Sourced[float]
    health_check_s: Sourced[float]


class FargateModel(_Strict):
    alb_idle_timeout_s: Sourced[float]
    alb_overhead_ms: Sourced[float]
    alb_buffers_request_body: Sourced[bool]
    queued_receive_bytes: Sourced[int] = Field(
        description="bytes of a request (headers + body) that can get past the ALB towards a task while it "
        "waits for a worker (the ALB's buffers and the target socket's): a longer upload stalls until a worker "
        "starts reading")
    alb_closes_target_on_client_close: Sourced[bool] = Field(
        description="when the client gives up, the ALB closes its connection to the target: a worker that "
        "has not received the whole body then fails at once (400) instead of waiting for it")
    routing: Sourced[Literal["round_robin", "least_outstanding_requests"]]
    worker_slots_per_task: Sourced[int]
    cpu_sample_ms: Sourced[float]
    memory_used_base_mb: Sourced[float]
    memory_used_per_mb: Sourced[float]
    autoscaling: Autoscaling


class ServiceEntry(_Strict):
    """Handler time of one (workload, platform): a wall-clock part drawn uniformly from sleep_ms (not
    scaled by CPU) plus CPU work at one full vCPU (cpu_ms per request + cpu_ms_per_mb per MiB of
    request body), divided by the CPU share; optional lognormal noise on the total."""
    sleep_ms: Sourced[list[float]]
    cpu_ms: Sourced[float]
    cpu_ms_per_mb: Sourced[float]
    noise_sigma: Sourced[float] | None = None
    init_extra_ms: Sourced[float] | None = Field(
        None, description="Lambda only: INIT cost beyond a hello-world function, at one full vCPU")

    @field_validator("sleep_ms")
    @classmethod
    def _range(cls, v: Sourced[list[float]]) -> Sourced[list[float]]:
        if len(v.value) != 2 or not 0 <= v.value[0] <= v.value[1]:
            raise ValueError(f"sleep_ms.value must be [low, high] with 0 <= low <= high, got {v.value}")
        return v


class ServicePreset(_Strict):
    description: str
    workloads: dict[str, dict[Literal["lambda", "ecs"], ServiceEntry]] = Field(min_length=1)


class TestbedParams(_Strict):
    """The Lambda / Fargate platform model behind the testbed and the simulator (params/testbed.yaml)."""
    client_preset: str = Field(description="key of `clients` used by the testbed and the simulator")
    service_preset: str = Field(description="key of `service_presets` (deployed | fitted | measured)")
    seed: int = Field(7, description="the testbed's random seed (the simulator takes its own --seed)")
    clients: dict[str, ClientPreset] = Field(min_length=1)
    lambda_: LambdaModel = Field(alias="lambda")
    fargate: FargateModel
    service_presets: dict[str, ServicePreset] = Field(min_length=1)

    @model_validator(mode="after")
    def _presets_exist(self) -> "TestbedParams":
        if self.client_preset not in self.clients:
            raise ValueError(f"client_preset {self.client_preset!r} is not one of clients {sorted(self.clients)}")
        if self.service_preset not in self.service_presets:
            raise ValueError(f"service_preset {self.service_preset!r} is not one of service_presets "
                             f"{sorted(self.service_presets)}")
        return self

    @property
    def client(self) -> ClientPreset:
        return self.clients[self.client_preset]

    @property
    def service(self) -> ServicePreset:
        return self.service_presets[self.service_preset]


# ------------------------------------------------------------------------------ router, deploy, A/B
class Router(_Strict):
    """The inference handler's settings (written into the package's router_config.json)."""
    outside_window: Literal["nearest", "reject"] = Field(
        "nearest", description="no time_window given and the local hour is outside every window: "
        "use the nearest window (answer says so) or answer 400")
    max_payload_size_kb: float = Field(10240.0, gt=0, description="larger sizes are a 400 "
                                       "(API Gateway's 10 MB payload limit, platform-facts.md 1.3)")
    package_dir: str = Field("dist/{profile}", description="where `package` writes the Lambda zip")
    max_package_mb: float = Field(50.0, gt=0, description="Lambda's direct-upload zip limit: larger fails")
    target_package_mb: float = Field(10.0, gt=0, description="the aim: larger warns")


class Deploy(_Strict):
    """`python -m hybridopt deploy`: the router function and its weighted alias (boto3)."""
    region: str = "eu-west-1"
    function_name: str = "hybrid-thesis-ml-router"
    runtime: str = "python3.12"
    architecture: Literal["x86_64", "arm64"] = "x86_64"
    memory_mb: int = Field(256, ge=128, le=10240)
    timeout_s: int = Field(10, ge=1, le=900)
    role_arn: str | None = Field(None, description="execution role; None: the deploy refuses to run")
    alias: str = "live"
    treatment_weight: float = Field(0.5, description="share of alias traffic to the model version "
                                    "(the rest runs the static rule); validated 0-1 by the deploy code")
    description: str = "Lambda-vs-Fargate router (hybridopt)"
    tags: dict[str, str] = Field(default_factory=lambda: {"project": "hybridopt"})


class AB(_Strict):
    """Online A/B test and offline policy evaluation."""
    seed: int = 7
    treatment_share: float = Field(0.5, gt=0, lt=1, description="share of requests in the model arm")
    confidence: float = Field(0.95, gt=0.5, lt=1)
    alpha: float = Field(0.05, gt=0, lt=0.5, description="significance level of the per-metric tests")
    power: float = Field(0.8, gt=0.5, lt=1, description="power for the minimum detectable effect")
    bootstrap_resamples: int = Field(2000, ge=200)
    plan_requests: int = Field(500_000, ge=1000, description="the plan's one-week test (thesis "
                               "requirements 6.2: ~500K requests minimum)")
    plan_days: float = Field(7.0, gt=0)
    testbed_requests: int = Field(400, ge=20, description="A/B requests sent to the local testbed")
    testbed_rate_rps: float = Field(20.0, gt=0, description="their arrival rate")
    testbed_window: str | None = Field(None, description="time window (and its load pattern) the testbed A/B "
                                       "runs in; None: the first window of the schedule")
    simulate_requests: int = Field(500_000, ge=1000, description="requests of the virtual-time A/B")
    heldout_split: Literal["test", "validation"] = Field("test", description="offline evaluation rows")


# -------------------------------------------------------------------------------------- collection
class GeneratorLimits(_Strict):
    """When the load generator (Artillery) counts as saturated: its latencies then measure itself."""
    cpu_pct_p95_max: float = Field(85.0, gt=0, description="Artillery process tree CPU, percent of ONE "
                                   "core (its worker thread is single-threaded), 95th percentile")
    event_loop_lag_ms_p99_max: float = Field(50.0, gt=0, description="worker event-loop delay, p99")
    cpu_sample_interval_s: float = Field(0.5, gt=0, description="psutil sampling of the process tree")
    health_interval_s: float = Field(1.0, gt=0, description="processor's health record period")


class Collection(_Strict):
    """How `python -m hybridopt collect` drives Artillery (source testbed or aws; see collect.py)."""
    aws_opt_in: bool = Field(False, description="source aws sends real traffic to AWS (and costs money) "
                             "only when this is true or the command gets --aws-opt-in")
    lambda_base_url: str | None = Field(None, description="aws: API Gateway stage URL; testbed: ignored "
                                        "(the testbed's own URL is used)")
    ecs_base_url: str | None = Field(None, description="aws: ALB URL; testbed: ignored")
    secret_headers: dict[str, str] = Field(default_factory=dict, description="header name -> NAME of an "
                                           "environment variable holding its value (never written anywhere)")
    window_wall_s: float | None = Field(None, gt=0, description="compressed schedule: wall seconds per "
                                        "window, phases scaled to it (None: the load pattern's real length)")
    rate_scale: float = Field(1.0, gt=0, description="multiplies every arrival rate (1.0: as planned)")
    virtual_date: str | None = Field(None, description="testbed: the local date (YYYY-MM-DD) the virtual "
                                     "clock stamps; None: today in `timezone` when the schedule starts")
    http_timeout_s: float = Field(60.0, gt=0, description="Artillery config.http.timeout: whole request")
    drain_grace_s: float = Field(30.0, ge=0, description="on SIGINT/SIGTERM, wait this long for in-flight "
                                 "requests to get their lines before the worker exits")
    seed: int = Field(7, description="payload bytes and the workload/size draws")
    payload_encoding: dict[str, Literal["json", "base64"]] = Field(
        default_factory=lambda: {"lightweight_api": "json"},
        description="payload field format per workload (default base64, as the thesis generator)")
    artillery_dir: str = Field("artillery", description="package.json, node_modules, the YAML configs")
    testbed_host: str = "127.0.0.1"
    generator: GeneratorLimits = Field(default_factory=GeneratorLimits)

    @field_validator("virtual_date")
    @classmethod
    def _date(cls, v: str | None) -> str | None:
        if v is not None:
            import datetime as _dt
            try:
                _dt.date.fromisoformat(v)
            except ValueError as exc:
                raise ValueError(f"virtual_date must be YYYY-MM-DD, got {v!r}") from exc
        return v

    @field_validator("lambda_base_url", "ecs_base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {v!r}")
        return v


# ------------------------------------------------------------------------------------------- the whole
class Params(_Strict):
    profile: str
    experiment: str
    source: Literal["testbed", "simulator", "aws", "legacy"]
    timezone: str
    data: DataPaths
    workloads: dict[str, Workload] = Field(min_length=1)
    load_patterns: dict[str, LoadPattern] = Field(min_length=1)
    time_windows: dict[str, TimeWindow] = Field(min_length=1)
    prices: Prices
    cost: CostOptions
    pairing: Pairing
    labels: Labels
    features: Features
    gates: Gates
    audit: Audit
    split: Split
    training: Training
    testbed: TestbedParams = Field(description="platform model behind testbed and simulator; see testbed.yaml")
    router: Router = Field(default_factory=Router)
    deploy: Deploy = Field(default_factory=Deploy)
    ab: AB = Field(default_factory=AB)
    collection: Collection = Field(default_factory=Collection)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {v!r}") from exc
        return v

    @model_validator(mode="after")
    def _cross_refs(self) -> "Params":
        for name, tw in self.time_windows.items():
            if tw.load_pattern not in self.load_patterns:
                raise ValueError(f"time_windows.{name}.load_pattern {tw.load_pattern!r} is not one of "
                                 f"load_patterns {sorted(self.load_patterns)}")
        for section in ("workloads", "load_patterns", "time_windows"):
            codes = [v.code for v in getattr(self, section).values()]
            if sorted(codes) != list(range(len(codes))):
                raise ValueError(f"{section} codes must be 0..{len(codes) - 1} without gaps, got {codes}")
        bad = set(self.features.columns) & set(self.features.forbidden)
        if bad:
            raise ValueError(f"features.columns holds forbidden columns {sorted(bad)}")
        return self

    # conveniences -------------------------------------------------------------------------------
    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def path(self, key: str) -> Path:
        """A data path from `data.<key>`, resolved (None becomes a ParamsError)."""
        value = getattr(self.data, key)
        if value is None:
            raise ParamsError(f"profile {self.profile!r}: data.{key} is not set")
        return paths.resolve(value, self.profile)

    @property
    def hash(self) -> str:
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------- loading
def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ParamsError(f"{path}: parameter file is missing")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return _unshare(data)


def _unshare(value: Any) -> Any:
    """A copy in which no two keys share one object: a YAML anchor (`&x` ... `*x`) yields the same
    dict twice, and merging a profile's override into one place would change both."""
    if isinstance(value, dict):
        return {k: _unshare(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unshare(v) for v in value]
    return value


def _merge(dst: dict[str, Any], src: dict[str, Any], origin: dict[tuple[str, ...], str], file: str,
           prefix: tuple[str, ...] = ()) -> None:
    """Deep-merge src into dst (dicts merge, everything else replaces) and record which file set
    each key path."""
    for key, value in src.items():
        loc = prefix + (str(key),)
        origin[loc] = file
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            _merge(dst[key], value, origin, file, loc)
        else:
            dst[key] = copy.deepcopy(value)
            if isinstance(value, dict):
                _mark(value, origin, file, loc)


def _mark(value: dict[str, Any], origin: dict[tuple[str, ...], str], file: str,
          prefix: tuple[str, ...]) -> None:
    for key, sub in value.items():
        origin[prefix + (str(key),)] = file
        if isinstance(sub, dict):
            _mark(sub, origin, file, prefix + (str(key),))


def _explain(exc: ValidationError, origin: dict[tuple[str, ...], str], files: list[str]) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(str(p) for p in err["loc"])
        file = next((origin[loc[:i]] for i in range(len(loc), 0, -1) if loc[:i] in origin), None)
        dotted = ".".join(loc) or "(top level)"
        if err["type"] == "missing":
            where = f"{file or files[-1]}: key '{dotted}'"
            what = "is required but missing in every parameter file"
        elif err["type"] == "extra_forbidden":
            where = f"{file}: key '{dotted}'"
            what = "is not a known parameter (typo?)"
        else:
            where = f"{file}: key '{dotted}'"
            what = f"{err['msg']}; got {err.get('input')!r}"
        lines.append(f"{where} {what}")
    return "invalid parameters:\n  " + "\n  ".join(lines)


def profile_files(profile: str, params_dir: Path | None = None) -> list[Path]:
    d = params_dir or paths.PARAMS_DIR
    return [d / f for f in BASE_FILES] + [d / f"{profile}.yaml"]


def load_params(profile: str, params_dir: Path | None = None,
                overrides: dict[str, Any] | None = None) -> Params:
    """Load and validate the merged parameters of a profile."""
    if not profile or "/" in profile or profile in ("base", "testbed"):
        raise ParamsError(f"profile name {profile!r} is not a profile (expected e.g. quick, full, aws)")
    merged: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    files = profile_files(profile, params_dir)
    for f in files:
        if not f.is_file() and f.name == f"{profile}.yaml":
            known = sorted(p.stem for p in f.parent.glob("*.yaml") if p.name not in BASE_FILES)
            raise ParamsError(f"{f}: parameter file is missing: profile {profile!r} does not exist "
                              f"(known profiles: {', '.join(known)})")
        _merge(merged, _read_yaml(f), origin, str(f))
    if overrides:
        _merge(merged, overrides, origin, "overrides")
    merged["profile"] = profile
    try:
        return Params.model_validate(merged)
    except ValidationError as exc:
        raise ParamsError(_explain(exc, origin, [str(f) for f in files])) from None


def known_profiles(params_dir: Path | None = None) -> list[str]:
    d = params_dir or paths.PARAMS_DIR
    return sorted(p.stem for p in d.glob("*.yaml") if p.name not in BASE_FILES)
