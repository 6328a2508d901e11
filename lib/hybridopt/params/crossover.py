"""The crossover sweep's grid (params `closed_loop.crossover`): per workload, arrival rate x payload size
x Fargate capacity x policy x seed, each point one closed-loop simulator run
(`hybridopt.closedloop.crossover`), run by the Dask sweep engine (`hybridopt.closedloop.sweep`)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from hybridopt.params.common import _Strict

CAPACITY = re.compile(r"^([1-9][0-9]*)x([1-9][0-9]*)$")
CrossoverPolicy = Literal["always_lambda", "always_ecs", "hybrid"]


def parse_capacity(label: str) -> tuple[int, int]:
    """"TxW" (ECS tasks x worker slots per task) -> (tasks, workers)."""
    m = CAPACITY.match(label)
    if m is None:
        raise ValueError(f"capacity {label!r} is not 'TxW' (tasks x workers per task, e.g. '1x2')")
    return int(m.group(1)), int(m.group(2))


class CrossoverGrid(_Strict):
    """Which cells the crossover map has and how each is run."""
    workloads: list[str] | None = Field(None, description="workloads swept (None: every workload of params)")
    rates_rps: list[float] = Field(default_factory=lambda: [1.0, 2.0, 5.0, 10.0, 20.0, 35.0, 50.0], min_length=1,
                                   description="constant Poisson arrival rates, requests per second")
    payload_points_between: int = Field(1, ge=0, le=5, description="payload sizes: each workload's planned "
                                        "sizes plus this many geometric points between two neighbours")
    capacities: list[str] = Field(default_factory=lambda: ["1x2", "2x2", "4x2"], min_length=1,
                                  description="Fargate capacities 'TxW': tasks x worker slots per task")
    policies: list[CrossoverPolicy] = Field(default_factory=lambda: ["always_lambda", "always_ecs", "hybrid"],
                                            min_length=2)
    seeds: list[int] = Field(default_factory=lambda: [1, 2, 3], min_length=1)
    duration_s: float = Field(300.0, gt=0, description="virtual seconds of arrivals per run")
    budget_s: float = Field(120.0, gt=0, description="wall seconds one run may take; past it the run is "
                            "stopped and recorded over_budget")
    n_workers: int = Field(2, ge=1, description="LocalCluster worker processes (one thread each)")
    validation_profile: str | None = Field("thesis-2025-11", description="the profile whose validate-testbed "
                                           "result (reports/<profile>/validate-testbed/validation.json) marks "
                                           "the real-log points on the map; None: no overlay")
    out_dir: str = Field("data/{profile}/crossover", description="results.parquet, sweep.json and cache/")

    @field_validator("capacities")
    @classmethod
    def _capacities(cls, v: list[str]) -> list[str]:
        for label in v:
            parse_capacity(label)
        if len(set(v)) != len(v):
            raise ValueError(f"capacities repeat: {v}")
        return v

    @field_validator("rates_rps")
    @classmethod
    def _rates(cls, v: list[float]) -> list[float]:
        if any(not r > 0 for r in v) or len(set(v)) != len(v):
            raise ValueError(f"rates must be > 0 and distinct, got {v}")
        return sorted(v)

    @field_validator("seeds", "policies")
    @classmethod
    def _distinct(cls, v: list[int] | list[str]) -> list[int] | list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"values repeat: {v}")
        return v

