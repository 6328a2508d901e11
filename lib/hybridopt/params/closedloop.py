"""The closed-loop stage's section (`closed_loop:`): the replay of policies on the profile's pairs."""

from __future__ import annotations

from pydantic import Field, field_validator

from hybridopt.params.common import _Strict
from hybridopt.params.crossover import CrossoverGrid


class ClosedLoopReplay(_Strict):
    """replay-policy and 09_closed_loop: every policy routes the profile's logged pairs closed loop."""
    seeds: list[int] = Field(default_factory=lambda: [1, 2, 3], min_length=1,
                             description="platform-model seeds; means and 95 % CIs are over these")
    policies: list[str] | None = Field(None, description="policies to replay (None: every policy the profile's "
                                       "decision folder supports, and the threshold rules)")
    threshold_limits: list[int] = Field(default_factory=lambda: [1, 2, 4],
                                        description="the threshold rule's limits (requests in flight per ECS "
                                        "workload service), one policy `threshold:<limit>` each")
    workers: int = Field(1, ge=1, description="processes running the runs in parallel")

    @field_validator("threshold_limits")
    @classmethod
    def _limits(cls, v: list[int]) -> list[int]:
        if any(x < 0 for x in v):
            raise ValueError(f"threshold limits must be >= 0, got {v}")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v) or any(x < 0 for x in v):
            raise ValueError(f"seeds must be distinct and >= 0, got {v}")
        return v


class ClosedLoop(_Strict):
    """closed_loop: the replay (this block) and the crossover grid."""
    replay: ClosedLoopReplay = Field(default_factory=ClosedLoopReplay)
    crossover: CrossoverGrid = Field(default_factory=CrossoverGrid)
