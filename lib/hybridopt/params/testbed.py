"""The platform model's section (params/testbed.yaml): every value `Sourced` with its basis."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import Field, SerializerFunctionWrapHandler, field_validator, model_serializer, model_validator

from hybridopt.params.common import _Strict

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


class ClientUplink(_Strict):
    """The load generator's own uplink, shared by every request body in flight (hybridopt.platforms.network
    .SharedUplink): its capacity is divided fairly among the uploads, each capped at the rate it would have
    alone (upload_mbps and TCP slow start), so a saturated uplink stretches every upload in flight."""
    enabled: Sourced[bool]
    capacity_mbps: Sourced[float] = Field(description="the uplink's capacity in Mbit/s, shared by all uploads")

    @field_validator("capacity_mbps")
    @classmethod
    def _positive(cls, v: Sourced[float]) -> Sourced[float]:
        if not v.value > 0:
            raise ValueError(f"capacity_mbps.value must be > 0, got {v.value}")
        return v


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
    uplink: ClientUplink | None = Field(
        None, description="a shared uplink for the uploads in flight; absent or disabled: each upload has "
        "upload_mbps to itself")

    @model_serializer(mode="wrap")
    def _omit_absent_uplink(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A preset without an uplink dumps as it did before the field existed (same params hash)."""
        out = handler(self)
        if out.get("uplink", 0) is None:
            del out["uplink"]
        return out


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
