"""The `infra` section: the experiment's own AWS platforms (`python -m hybridopt infra ...`).

Only what the stacks need beyond the values they share with the platform model: Lambda memory and
the Fargate task sizes and bounds come from `workloads.<w>`, the function timeout, the worker slots
per task, the ALB idle timeout and the autoscaling policy from `testbed.lambda` / `testbed.fargate`
(one source for what is deployed and what the model assumes)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from hybridopt.params.common import _Strict

#: CloudWatch Logs accepts only these retention periods (PutRetentionPolicy, retentionInDays).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                      2557, 2922, 3288, 3653)


class HealthCheck(_Strict):
    """The ALB target group's health check. It asks the container's health port, which the gunicorn
    arbiter answers itself, so a task whose workers are all busy is not taken for a dead one."""
    path: str = "/health"
    interval_s: int = Field(15, ge=5, le=300)
    timeout_s: int = Field(5, ge=2, le=120)
    healthy_threshold: int = Field(2, ge=2, le=10)
    unhealthy_threshold: int = Field(3, ge=2, le=10)


class PlatformLogsJoin(_Strict):
    """How `platform-logs` joins what AWS logged to the request log."""
    time_match_window_s: float = Field(30.0, gt=0, description="a Lambda REPORT line without a request-id "
                                       "line is matched to the nearest unmatched contract line of the same "
                                       "workload whose sent_at lies this close to the invocation's start")
    fetch_margin_s: float = Field(300.0, ge=0, description="CloudWatch is read from the first sent_at minus "
                                  "this to the last sent_at plus this (late REPORT lines, task start-up)")


class InfraParams(_Strict):
    """The stacks `<stack_prefix>-artifacts` (ECR repository, S3 bucket for the Lambda zip) and
    `<stack_prefix>-platforms` (API Gateway + Lambda, ALB + ECS Fargate, logs, roles)."""
    stack_prefix: str = Field("hybridopt", description="stack, function, cluster and log-group names start so")
    region: str = "eu-west-1"
    synth_dir: str = Field("dist/{profile}/infra", description="where `infra synth` writes the templates")
    outputs_file: str = Field("params/{profile}.outputs.yaml", description="`infra outputs` writes the two "
                              "base URLs here (git-ignored); the params loader merges it last when present")
    lambda_runtime: Literal["python3.12"] = Field("python3.12", description="the container image's Python "
                                                  "(lib/hybridopt/infra/Dockerfile) is the same minor version")
    lambda_architecture: Literal["x86_64", "arm64"] = "x86_64"
    api_stage: str = Field("prod", description="API Gateway stage: the Lambda base URL ends with it")
    api_endpoint_type: Literal["REGIONAL", "EDGE"] = Field("REGIONAL", description="REGIONAL: no CloudFront "
                                                           "hop between the client and the region")
    container_port: int = Field(8080, ge=1024, le=65535)
    health_port: int = Field(8081, ge=1024, le=65535)
    health_check: HealthCheck = Field(default_factory=HealthCheck)
    worker_timeout_s: int = Field(120, ge=10, description="gunicorn kills a worker silent this long")
    deregistration_delay_s: int = Field(30, ge=0, le=3600, description="ALB draining time of a stopping task "
                                        "(AWS default 300 s)")
    log_retention_days: int = Field(30, description="every log group of the stacks (one of CloudWatch's values)")
    vpc_cidr: str = "10.42.0.0/16"
    max_azs: int = Field(2, ge=2, le=3, description="an ALB needs subnets in two Availability Zones")
    ecr_keep_images: int = Field(10, ge=1, description="the repository's lifecycle rule keeps this many images")
    tags: dict[str, str] = Field(default_factory=lambda: {"project": "hybridopt"})
    platform_logs: PlatformLogsJoin = Field(default_factory=PlatformLogsJoin)

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, v: int) -> int:
        if v not in LOG_RETENTION_DAYS:
            raise ValueError(f"must be one of CloudWatch's retention periods {LOG_RETENTION_DAYS}, got {v}")
        return v

    @field_validator("stack_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9-]{1,23}", v):
            raise ValueError(f"must be 2-24 lower-case letters, digits or '-', starting with a letter, got {v!r}")
        return v
