"""Send-time policies for the closed loop (`hybridopt.closedloop.loop.SendTimePolicy`).

- `Tracked`: a policy that reads the load a deployed router observes: one LoadTracker fed with its
  arrivals (before it reads them), its sends and the completions the loop reports. Subclasses pick
  the platform from (arrival index, workload, payload, load):
  - `Fixed`: a choice made per arrival in advance (always_lambda, always_ecs, the decide stage's
    workload rule and lookup table, the plan's classifier at a threshold): the load does not change
    it, but it is read and recorded all the same;
  - `Threshold`: the load-aware threshold rule (Spock / LIBRA style): ECS while the arrival's
    workload service has fewer than `limit` requests in flight, else Lambda.
- `Static` and `InFlightThreshold`: the same choices as `Fixed` (one platform for every arrival) and
  `Threshold`, without the LoadTracker's arrival windows and without recording a load (`Routed.load`
  None): the crossover map's runs, where only the in-flight count decides and the load is not reported.
  Same decisions, so the same runs, at a fraction of the per-arrival cost.
- `Objective`: the router's objective policy (`hybridopt.router.policy.DecisionPolicy.decide`, its
  own tracker and in-flight bookkeeping) at one objective setting.
- `ABArms`: the A/B's two arms through one DecisionPolicy (control: the workload rule, treatment:
  the objective), with the per-arrival facts the A/B reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Hashable, Mapping, Sequence

import numpy as np
import pandas as pd

from hybridopt.closedloop.loop import Routed
from hybridopt.data.contract import PLATFORMS
from hybridopt.decision.load_state import DEFAULT_WINDOWS_S, LoadTracker

if TYPE_CHECKING:
    from hybridopt.router.policy import DecisionPolicy


class Tracked:
    """A policy with a LoadTracker of its own (subclasses define `choose`)."""

    def __init__(self, name: str, detail: str, windows_s: tuple[float, ...] = DEFAULT_WINDOWS_S) -> None:
        self.name = name
        self.detail = detail
        self.tracker = LoadTracker(windows_s)
        self._flights: dict[Hashable, tuple[str, str]] = {}
        self.completions = {"reported": 0, "unknown": 0}

    def choose(self, i: int, workload: str, payload_kb: float, load: Mapping[str, float]) -> str:
        raise NotImplementedError

    def _complete(self, completed: Sequence[Hashable]) -> None:
        for k in completed:
            got = self._flights.pop(k, None)
            if got is None:
                self.completions["unknown"] += 1
            else:
                self.completions["reported"] += 1
                self.tracker.completed(*got)

    def route(self, i: int, t_s: float, workload: str, payload_kb: float, completed: Sequence[Hashable]) -> Routed:
        self._complete(completed)
        tr = self.tracker
        load = tr.features(t_s, workload)
        tr.arrived(t_s, workload)
        platform = self.choose(i, workload, payload_kb, load)
        tr.sent(platform, workload)
        self._flights[i] = (platform, workload)
        return Routed(platform, i, load)

    def finish(self, completed: Sequence[Hashable]) -> None:
        """The completions after the last arrival (the tracker ends empty)."""
        self._complete(completed)

    def in_flight(self) -> dict[str, int]:
        out = {p: 0 for p in PLATFORMS}
        for p, _ in self._flights.values():
            out[p] += 1
        return out


class Fixed(Tracked):
    """A platform per arrival chosen in advance (`to_lambda[i]`)."""

    def __init__(self, name: str, detail: str, to_lambda: np.ndarray,
                 windows_s: tuple[float, ...] = DEFAULT_WINDOWS_S) -> None:
        super().__init__(name, detail, windows_s)
        self._platform = np.where(np.asarray(to_lambda, dtype=bool), "lambda", "ecs").tolist()

    def choose(self, i: int, workload: str, payload_kb: float, load: Mapping[str, float]) -> str:
        return self._platform[i]


class Threshold(Tracked):
    """ECS while the workload's ECS service has fewer than `limit[workload]` requests in flight (as
    this router counts them), else Lambda."""

    def __init__(self, name: str, limit: Mapping[str, int], windows_s: tuple[float, ...] = DEFAULT_WINDOWS_S) -> None:
        bad = {w: v for w, v in limit.items() if int(v) < 0}
        if bad:
            raise ValueError(f"threshold limits must be >= 0 requests in flight, got {bad}")
        self.limit = {w: int(v) for w, v in limit.items()}
        lims = sorted(set(self.limit.values()))
        detail = (f"ECS until its workload service has {lims[0]} request(s) in flight, then Lambda" if len(lims) == 1
                  else f"ECS until the workload service's in-flight count reaches {self.limit}, then Lambda")
        super().__init__(name, detail, windows_s)

    def choose(self, i: int, workload: str, payload_kb: float, load: Mapping[str, float]) -> str:
        return "ecs" if load["workload_in_flight_ecs"] < self.limit[workload] else "lambda"


class Static:
    """Every arrival to `platform`; reads no load."""

    def __init__(self, name: str, detail: str, platform: str) -> None:
        if platform not in PLATFORMS:
            raise ValueError(f"platform must be one of {PLATFORMS}, got {platform!r}")
        self.name = name
        self.detail = detail
        self.platform = platform

    def route(self, i: int, t_s: float, workload: str, payload_kb: float, completed: Sequence[Hashable]) -> Routed:
        return Routed(self.platform, i, None)


class InFlightThreshold:
    """`Threshold`'s rule on its only input, the workload's ECS requests in flight as this router counts
    them (sent, not yet reported completed); no arrival windows, no load recorded."""

    def __init__(self, name: str, limit: Mapping[str, int]) -> None:
        bad = {w: v for w, v in limit.items() if int(v) < 0}
        if bad:
            raise ValueError(f"threshold limits must be >= 0 requests in flight, got {bad}")
        self.name = name
        self.limit = {w: int(v) for w, v in limit.items()}
        self.detail = Threshold(name, self.limit).detail
        self._ecs: dict[Hashable, str] = {}           # token -> workload of the ECS requests in flight
        self._count: dict[str, int] = {}

    def route(self, i: int, t_s: float, workload: str, payload_kb: float, completed: Sequence[Hashable]) -> Routed:
        ecs, count = self._ecs, self._count
        for k in completed:
            w = ecs.pop(k, None)
            if w is not None:
                count[w] -= 1
        if count.get(workload, 0) < self.limit[workload]:
            ecs[i] = workload
            count[workload] = count.get(workload, 0) + 1
            return Routed("ecs", i, None)
        return Routed("lambda", i, None)

    def finish(self, completed: Sequence[Hashable]) -> None:
        for k in completed:
            w = self._ecs.pop(k, None)
            if w is not None:
                self._count[w] -= 1


class Objective:
    """The router's objective policy at one objective setting (the treatment arm, every arrival)."""

    def __init__(self, name: str, policy: "DecisionPolicy", rows14: Sequence[Sequence[float]],
                 objective: str = "default") -> None:
        if objective not in policy.objectives:
            raise ValueError(f"objective setting {objective!r} is not in the decision spec "
                             f"(it has {sorted(policy.objectives)})")
        self.name = name
        o = policy.objectives[objective]
        self.detail = f"router objective policy, setting {objective!r} ({o.kind})"
        self.policy = policy
        self.objective = objective
        self._rows = rows14

    def route(self, i: int, t_s: float, workload: str, payload_kb: float, completed: Sequence[Hashable]) -> Routed:
        ans = self.policy.decide(workload, payload_kb, self._rows[i], t_s, "treatment", objective=self.objective,
                                 completed=[str(k) for k in completed])
        return Routed(ans.platform, ans.decision_id, ans.load)

    def finish(self, completed: Sequence[Hashable]) -> None:
        self.policy.complete([str(k) for k in completed])


class ABArms:
    """One DecisionPolicy routing both A/B arms: control by the workload rule (no predictions),
    treatment by the objective; records what each decision saw."""

    name = "ab_arms"
    detail = "control: the decide stage's workload rule; treatment: the router's objective policy"

    def __init__(self, policy: "DecisionPolicy", rows14: Sequence[Sequence[float]], arms: Sequence[str]) -> None:
        self.policy = policy
        self._rows = rows14
        self._arms = list(arms)
        n = len(self._arms)
        self.rec = {k: np.full(n, np.nan) for k in ("marginal_usd", "other_marginal_usd", "p50_ms", "p95_ms", "p_fail",
                                                    "workload_in_flight_ecs", "in_flight_lambda", "in_flight_ecs")}
        self.objective_platform: list[str | None] = [None] * n
        self.rule_platform: list[str] = [""] * n

    def route(self, i: int, t_s: float, workload: str, payload_kb: float, completed: Sequence[Hashable]) -> Routed:
        arm = self._arms[i]
        ans = self.policy.decide(workload, payload_kb, self._rows[i], t_s, arm, completed=[str(k) for k in completed],
                                 predict=arm == "treatment")
        rec = self.rec
        other = "ecs" if ans.platform == "lambda" else "lambda"
        rec["marginal_usd"][i] = ans.marginal_usd[ans.platform]
        rec["other_marginal_usd"][i] = ans.marginal_usd[other]
        for k in ("workload_in_flight_ecs", "in_flight_lambda", "in_flight_ecs"):
            rec[k][i] = ans.load[k]
        self.rule_platform[i] = ans.rule_platform
        if ans.predictions is not None:
            self.objective_platform[i] = ans.objective_platform
            pr = ans.predictions[ans.platform]
            rec["p50_ms"][i], rec["p95_ms"][i], rec["p_fail"][i] = pr.p50_ms, pr.p95_ms, pr.p_fail
        return Routed(ans.platform, ans.decision_id, ans.load)

    def per_arrival(self) -> pd.DataFrame:
        return pd.DataFrame({**self.rec, "objective_platform": self.objective_platform,
                             "workload_rule_platform": self.rule_platform})
