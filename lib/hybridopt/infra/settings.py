"""Every name and size of the deployed platforms, derived once from params (pure, no AWS, no CDK).

The stack, the deploy/teardown commands, `platform-logs` and the cost note all read these, so a
function name or a log group is spelled in one place. Sizes come from the same params the platform
model uses: `workloads.<w>.lambda_memory_mb` and `.fargate`, `testbed.lambda.function_timeout_s`,
`testbed.fargate.worker_slots_per_task`, `.alb_idle_timeout_s` and `.autoscaling`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from hybridopt.params import ParamsError

if TYPE_CHECKING:
    from hybridopt.params import InfraParams, Params

#: Fargate's task sizes (AWS ECS developer guide, "Task CPU and memory"): CPU units -> allowed MiB.
FARGATE_MEMORY_MIB: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}
#: The platforms stack's parameters (the deploy passes both) and the stacks' outputs.
LAMBDA_CODE_KEY_PARAM = "LambdaCodeKey"
IMAGE_TAG_PARAM = "ImageTag"
LAMBDA_URL_OUTPUT = "LambdaBaseUrl"
ECS_URL_OUTPUT = "EcsBaseUrl"
BUCKET_OUTPUT = "ArtifactsBucketName"
REPOSITORY_OUTPUT = "RepositoryUri"


@dataclass(frozen=True)
class WorkloadSettings:
    workload: str
    slug: str                       # the workload name with '-' (AWS names)
    lambda_route: str
    ecs_route: str
    function_name: str
    lambda_memory_mb: int
    lambda_log_group: str
    service_name: str
    task_cpu_units: int
    task_memory_mib: int
    min_tasks: int
    max_tasks: int
    ecs_log_group: str
    listener_priority: int

    @property
    def task_vcpu(self) -> float:
        return self.task_cpu_units / 1024

    @property
    def task_memory_gb(self) -> float:
        return self.task_memory_mib / 1024


@dataclass(frozen=True)
class AutoscalingSettings:
    enabled: bool
    metric: Literal["cpu", "request_count_per_target"]
    target_value: float
    scale_out_cooldown_s: int
    scale_in_cooldown_s: int


@dataclass(frozen=True)
class InfraSettings:
    prefix: str
    region: str
    artifacts_stack: str
    platforms_stack: str
    repository_name: str
    cluster_name: str
    api_name: str
    load_balancer_name: str
    ecs_events_log_group: str
    lambda_timeout_s: int
    worker_slots_per_task: int
    alb_idle_timeout_s: int
    autoscaling: AutoscalingSettings
    infra: "InfraParams"
    workloads: tuple[WorkloadSettings, ...]

    @property
    def log_groups(self) -> list[str]:
        """Every log group the platforms stack creates (all retained when the stack is deleted)."""
        return ([w.lambda_log_group for w in self.workloads] + [w.ecs_log_group for w in self.workloads]
                + [self.ecs_events_log_group])

    def by_function(self) -> dict[str, WorkloadSettings]:
        return {w.function_name: w for w in self.workloads}

    def by_service(self) -> dict[str, WorkloadSettings]:
        return {w.service_name: w for w in self.workloads}


def fargate_size(workload: str, vcpu: float, memory_gb: float) -> tuple[int, int]:
    """(CPU units, MiB) of a Fargate task size, or a ParamsError naming the allowed ones."""
    cpu = round(vcpu * 1024)
    mem = round(memory_gb * 1024)
    if cpu not in FARGATE_MEMORY_MIB or abs(cpu - vcpu * 1024) > 1e-6:
        raise ParamsError(f"workloads.{workload}.fargate.vcpu = {vcpu} is not a Fargate size "
                          f"(allowed vCPU: {[c / 1024 for c in FARGATE_MEMORY_MIB]})")
    if mem not in FARGATE_MEMORY_MIB[cpu] or abs(mem - memory_gb * 1024) > 1e-6:
        allowed = [m / 1024 for m in FARGATE_MEMORY_MIB[cpu]]
        raise ParamsError(f"workloads.{workload}.fargate.memory_gb = {memory_gb} is not allowed with {vcpu} vCPU "
                          f"on Fargate (allowed GB: {allowed})")
    return cpu, mem


def settings(params: "Params") -> InfraSettings:
    """The deployment of a profile's params, validated (a ParamsError names the key)."""
    inf = params.infra
    p = inf.stack_prefix
    wl = []
    for name, w in sorted(params.workloads.items(), key=lambda kv: kv[1].code):
        slug = name.replace("_", "-")
        cpu, mem = fargate_size(name, w.fargate.vcpu, w.fargate.memory_gb)
        if w.fargate.min_tasks > w.fargate.max_tasks:
            raise ParamsError(f"workloads.{name}.fargate: min_tasks {w.fargate.min_tasks} > max_tasks "
                              f"{w.fargate.max_tasks}")
        for key, route in (("lambda_route", w.lambda_route), ("ecs_route", w.ecs_route)):
            if not route.startswith("/") or route.endswith("/") or "//" in route:
                raise ParamsError(f"workloads.{name}.{key} = {route!r}: expected /a/path without a trailing /")
        fn = f"{p}-{slug}"
        wl.append(WorkloadSettings(
            workload=name, slug=slug, lambda_route=w.lambda_route, ecs_route=w.ecs_route, function_name=fn,
            lambda_memory_mb=w.lambda_memory_mb, lambda_log_group=f"/aws/lambda/{fn}", service_name=f"{p}-{slug}",
            task_cpu_units=cpu, task_memory_mib=mem, min_tasks=w.fargate.min_tasks, max_tasks=w.fargate.max_tasks,
            ecs_log_group=f"/ecs/{p}/{slug}", listener_priority=10 * (w.code + 1)))
    tb = params.testbed
    timeout = math.ceil(tb.lambda_.function_timeout_s.value)
    if not 1 <= timeout <= 900:
        raise ParamsError(f"testbed.lambda.function_timeout_s = {tb.lambda_.function_timeout_s.value}: Lambda "
                          "allows 1-900 s")
    a = tb.fargate.autoscaling
    slots = tb.fargate.worker_slots_per_task.value
    if slots < 1:
        raise ParamsError(f"testbed.fargate.worker_slots_per_task = {slots}: at least 1")
    return InfraSettings(
        prefix=p, region=inf.region, artifacts_stack=f"{p}-artifacts", platforms_stack=f"{p}-platforms",
        repository_name=f"{p}-workloads", cluster_name=f"{p}-workloads", api_name=f"{p}-workloads",
        load_balancer_name=f"{p}-alb", ecs_events_log_group=f"/aws/events/{p}-ecs-tasks",
        lambda_timeout_s=timeout, worker_slots_per_task=slots,
        alb_idle_timeout_s=math.ceil(tb.fargate.alb_idle_timeout_s.value),
        autoscaling=AutoscalingSettings(enabled=a.enabled.value, metric=a.metric.value,
                                        target_value=a.target_value.value,
                                        scale_out_cooldown_s=math.ceil(a.scale_out_cooldown_s.value),
                                        scale_in_cooldown_s=math.ceil(a.scale_in_cooldown_s.value)),
        infra=inf, workloads=tuple(wl))
