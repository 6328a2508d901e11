"""The later stages' sections: decision, router, deploy, A/B and collection."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator

from hybridopt.params.common import _Strict


# ---------------------------------------------------------------------------------------- decision
class DecisionObjective(_Strict):
    """The objective a routing policy is judged by, and its oracle (hybridopt.decision.objective)."""
    kind: Literal["slo_cheapest", "weighted"] = "slo_cheapest"
    slo_p95_ms: dict[str, float] = Field(description="per workload: the p95 latency the request must meet")
    slo_basis: str = Field(min_length=5, description="why these SLOs")
    max_failure: float = Field(0.01, ge=0, le=1, description="slo_cheapest: a platform whose predicted "
                               "P(failure) is above this is not eligible")
    value_of_time_usd_per_s: float = Field(0.0, ge=0, description="weighted: dollars per second of latency")
    value_of_time_basis: str = Field("", description="why this value of time")
    failure_penalty_s: float = Field(10.0, ge=0, description="weighted: a failure costs this many seconds "
                                     "of waiting")
    latency_quantile: Literal["p50", "p95"] = Field("p50", description="weighted: the predicted quantile "
                                                    "that stands for the request's latency")

    @field_validator("slo_p95_ms")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: x for k, x in v.items() if not x > 0}
        if bad:
            raise ValueError(f"SLOs must be > 0 ms, got {bad}")
        return v


class DecisionSetting(_Strict):
    """One variant of the objective for the policy frontier: a name and the fields it changes."""
    name: str
    kind: Literal["slo_cheapest", "weighted"] | None = None
    slo_scale: float = Field(1.0, gt=0, description="multiplies every SLO")
    max_failure: float | None = Field(None, ge=0, le=1)
    value_of_time_usd_per_s: float | None = Field(None, ge=0)
    latency_quantile: Literal["p50", "p95"] | None = None


class Decision(_Strict):
    """Stage 06: outcome models with load state, the objective and its oracle, policies side by side."""
    objective: DecisionObjective
    settings: list[DecisionSetting] = Field(default_factory=list, description="objective variants "
                                            "evaluated beside the default (the frontier)")
    load_windows_s: list[float] = Field(default_factory=lambda: [10.0, 60.0], min_length=1,
                                        description="arrival windows of the load features")
    bootstrap_resamples: int = Field(1000, ge=100)
    bootstrap_block_s: float = Field(60.0, gt=0, description="CIs resample whole blocks of this many "
                                     "seconds (requests in one minute share its load)")
    seed: int = 11


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
    simulate_processes: int = Field(2, ge=1, description="processes running the virtual-time A/B: whole "
                                    "sessions each, every session starting idle (only when the schedule "
                                    "leaves every session at least ab.simulate_idle_gap_s after the previous)")
    simulate_idle_gap_s: float = Field(7200.0, gt=0, description="idle time after which the platforms and the "
                                       "router hold no state of earlier sessions")
    heldout_split: Literal["test", "validation"] = Field("test", description="offline evaluation rows")


# -------------------------------------------------------------------------------------- collection
class GeneratorLimits(_Strict):
    """When the load generator (Artillery) counts as saturated: its latencies then measure itself."""
    cpu_pct_p95_max: float = Field(85.0, gt=0, description="Artillery process tree CPU, percent of ONE "
                                   "core (its worker thread is single-threaded), 95th percentile")
    event_loop_lag_ms_p99_max: float = Field(50.0, gt=0, description="worker event-loop delay, p99")
    cpu_sample_interval_s: float = Field(0.5, gt=0, description="psutil sampling of the process tree")
    health_interval_s: float = Field(1.0, gt=0, description="processor's health record period")


class Probe(_Strict):
    """The network probe before each window: a few pairs of one lightweight workload at a low rate,
    tagged with the contract's probe phase (hybridopt.data.contract.PROBE_PHASE). They read the client's
    round trip apart from the load; training and gates leave them out."""
    pairs: int = Field(10, ge=0, description="pairs per window (0: no probe)")
    rate_rps: float = Field(2.0, gt=0, le=10, description="pairs per second (a low rate: no queueing)")
    workload: str = Field("lightweight_api", description="the workload of every probe pair (small bodies)")

    @property
    def duration_s(self) -> int:
        """Whole seconds of the probe's arrivals (Artillery's phases are whole seconds; the collection
        adds a one-second pause after them)."""
        return 0 if self.pairs == 0 else max(1, math.ceil(self.pairs / self.rate_rps - 1e-9))


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
    probe: Probe = Field(default_factory=Probe, description="lightweight pairs at a low rate before each "
                         "window's load phases (the client network's probe)")

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
