"""ECS capacity timelines: per workload service, the Fargate tasks that ran and when, on the logs'
clock (Unix seconds, like `sent_at`), and the task-seconds each session is billed for.

Where a timeline comes from (`basis`):
- `simulator`: the platform model records every task as it starts and retires
  (`FargateService.task_intervals`); `emulation.simulate.write_capacity` writes `capacity.json`
  beside the raw logs (`read_capacity` reads it back).
- `deployed_count`: logs without a timeline (the legacy logs; the testbed for now): `min_tasks` of
  each workload (params) running through every session. The bill carries this basis.

A task's `start_s` is None when it was running before the record began (a deployed task), its
`end_s` None when it still ran when the record ended.

Task-seconds of a session (`session_task_seconds`), per service:
- tasks running before the record (deployed): the part of the session's span [first send, last
  completion] they ran, rounded up to the second; where two sessions' spans overlap, the overlap
  counts once, for the session that started first. No minimum: the task's life extends beyond it.
- tasks started during the record (autoscaling): the whole life, start to end, rounded up to the
  second with Fargate's 1-minute minimum, for the session in which the autoscaler started them
  (its latest session start at or before the task's start, no later than one metric period after
  that session's last completion: an evaluation counts only the period before it). A task still
  running when the record ended is billed up to `record_end_s` and counted as `open_end`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

from hybridopt.decision.load_frame import seconds
from hybridopt.params import Params

if TYPE_CHECKING:
    from hybridopt.platforms.fargate import FargatePlatform

CAPACITY_FILE: Final = "capacity.json"
BASES: Final = ("simulator", "testbed", "deployed_count")
#: Fargate bills per second with a one-minute minimum per task (platform-facts.md 1.1, Fargate billing).
FARGATE_MIN_BILLED_S: Final = 60
FARGATE_BILLING_SOURCE: Final = ("platform-facts.md 1.1: Fargate billing per second, rounded up to the nearest "
                                 "second, 1-minute minimum (aws.amazon.com/fargate/pricing)")
VERSION: Final = 1


@dataclass(frozen=True)
class Task:
    task_id: str | None
    start_s: float | None            # None: running before the record began
    end_s: float | None              # None: still running when the record ended
    ready_s: float | None = None     # serving from (None: before the record)
    drain_s: float | None = None     # chosen for scale-in (None: never)


@dataclass(frozen=True)
class Service:
    workload: str
    vcpu: float
    memory_gb: float
    min_tasks: int
    max_tasks: int
    autoscaling: bool
    tasks: tuple[Task, ...]
    scale_outs: int = 0
    scale_ins: int = 0


@dataclass(frozen=True)
class CapacityTimeline:
    basis: str
    services: Mapping[str, Service]
    record_end_s: float | None = None    # the last moment any recorded task was busy
    metric_period_s: float = 60.0        # the autoscaler's evaluation period (attribution slack)

    def __post_init__(self) -> None:
        if self.basis not in BASES:
            raise ValueError(f"capacity basis {self.basis!r} is not one of {BASES}")

    def to_dict(self) -> dict[str, Any]:
        return {"version": VERSION, "clock": "unix_s", "basis": self.basis, "record_end_s": self.record_end_s,
                "metric_period_s": self.metric_period_s,
                "services": {w: {**{k: v for k, v in asdict(s).items() if k != "tasks"},
                                 "tasks": [asdict(t) for t in s.tasks]} for w, s in self.services.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "capacity") -> "CapacityTimeline":
        def num(x: Any, key: str) -> float | None:
            if x is None:
                return None
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                raise ValueError(f"{where}: {key} must be a finite number or null, got {x!r}")
            return float(x)

        try:
            if d.get("version") != VERSION or d.get("clock") != "unix_s":
                raise ValueError(f"{where}: expected version {VERSION} and clock 'unix_s', got "
                                 f"version {d.get('version')!r}, clock {d.get('clock')!r}")
            services = {}
            for w, s in dict(d["services"]).items():
                lacking = [k for k in ("vcpu", "memory_gb", "min_tasks", "max_tasks", "autoscaling", "tasks")
                           if k not in s]
                if lacking:
                    raise ValueError(f"{where}: services.{w} lacks fields {lacking}")
                tasks = tuple(Task(None if t.get("task_id") is None else str(t["task_id"]),
                                   num(t.get("start_s"), f"services.{w}.tasks[{i}].start_s"),
                                   num(t.get("end_s"), f"services.{w}.tasks[{i}].end_s"),
                                   num(t.get("ready_s"), f"services.{w}.tasks[{i}].ready_s"),
                                   num(t.get("drain_s"), f"services.{w}.tasks[{i}].drain_s"))
                              for i, t in enumerate(s["tasks"]))
                for i, t in enumerate(tasks):
                    if t.start_s is not None and t.end_s is not None and t.end_s < t.start_s:
                        raise ValueError(f"{where}: services.{w}.tasks[{i}] ends ({t.end_s}) before it starts "
                                         f"({t.start_s})")
                services[str(w)] = Service(str(w), float(s["vcpu"]), float(s["memory_gb"]), int(s["min_tasks"]),
                                           int(s["max_tasks"]), bool(s["autoscaling"]), tasks,
                                           int(s.get("scale_outs", 0)), int(s.get("scale_ins", 0)))
            return cls(str(d["basis"]), services, num(d.get("record_end_s"), "record_end_s"),
                       float(d.get("metric_period_s", 60.0)))
        except KeyError as exc:
            raise ValueError(f"{where}: missing field {exc.args[0]!r}") from None


# ------------------------------------------------------------------------------------------ sources
def from_model(platform: "FargatePlatform", origin_s: float) -> CapacityTimeline:
    """The timeline a `FargatePlatform` recorded (model seconds + `origin_s` = Unix seconds)."""
    def when(t: float) -> float | None:
        return round(origin_s + t, 6) if math.isfinite(t) else None

    services: dict[str, Service] = {}
    busy = [-math.inf]
    for name, svc in platform.services.items():
        rows = svc.task_intervals()
        busy += [float(r["last_busy_s"]) for r in rows]
        tasks = tuple(Task(str(r["task_id"]), when(float(r["start_s"])), when(float(r["end_s"])),
                           when(float(r["ready_s"])), when(float(r["drain_s"]))) for r in rows)
        services[name] = Service(name, float(svc.vcpu), float(svc.memory_mb) / 1024.0, int(svc.min_tasks),
                                 int(svc.max_tasks), bool(svc.autoscaling), tasks, int(svc.scale_outs),
                                 int(svc.scale_ins))
    period = float(platform.model.autoscaling.metric_period_s.value)
    return CapacityTimeline("simulator", services, when(max(busy)), period)


def merge_disjoint(parts: list[CapacityTimeline]) -> CapacityTimeline:
    """One capacity timeline of runs over disjoint sessions: the first run's tasks (its deployed ones
    stand for the service's minimum, which every run had), plus the tasks the others started."""
    first = parts[0]
    services = {}
    for w, s0 in first.services.items():
        tasks, outs, ins = list(s0.tasks), s0.scale_outs, s0.scale_ins
        for g, tl in enumerate(parts[1:], start=1):
            s = tl.services[w]
            for t in s.tasks:
                if t.start_s is None and t.end_s is not None:
                    raise ValueError(f"capacity: a deployed {w} task of run {g} ended at {t.end_s}: the "
                                     "runs' timelines cannot be merged")
            tasks += [replace(t, task_id=f"p{g}-{t.task_id}") for t in s.tasks if t.start_s is not None]
            outs += s.scale_outs
            ins += s.scale_ins
        services[w] = replace(s0, tasks=tuple(tasks), scale_outs=outs, scale_ins=ins)
    ends = [tl.record_end_s for tl in parts if tl.record_end_s is not None]
    return replace(first, services=services, record_end_s=max(ends) if ends else None)


def deployed_count(params: Params) -> CapacityTimeline:
    """No recorded timeline: every workload's `min_tasks` running through every session."""
    services = {w: Service(w, wl.fargate.vcpu, wl.fargate.memory_gb, wl.fargate.min_tasks, wl.fargate.max_tasks,
                           False, tuple(Task(None, None, None) for _ in range(wl.fargate.min_tasks)))
                for w, wl in params.workloads.items()}
    return CapacityTimeline("deployed_count", services, None,
                            float(params.testbed.fargate.autoscaling.metric_period_s.value))


def write_capacity(timeline: CapacityTimeline, out_dir: Path) -> Path:
    path = Path(out_dir) / CAPACITY_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(timeline.to_dict(), indent=1) + "\n")
    tmp.replace(path)
    return path


def read_capacity(data_dir: Path) -> CapacityTimeline | None:
    """`<data_dir>/capacity.json` if present, else None."""
    path = Path(data_dir) / CAPACITY_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None
    return CapacityTimeline.from_dict(doc, str(path))


def capacity_for(params: Params, data_dir: Path | None = None) -> CapacityTimeline:
    """The recorded timeline beside the logs, else the deployed count."""
    found = read_capacity(data_dir) if data_dir is not None else None
    return found if found is not None else deployed_count(params)


# ------------------------------------------------------------------------------------------ sessions
@dataclass(frozen=True)
class Span:
    session: str
    start_s: float       # first send
    end_s: float         # last completion


def session_spans(requests: pd.DataFrame, missing_completion_s: float) -> list[Span]:
    """Per run_id: first send to last completion (sent_at + total_ms; an attempt without a total_ms
    completes `missing_completion_s` after it was sent), ordered by start."""
    if len(requests) == 0:
        return []
    t0 = seconds(requests["sent_at"])
    total_s = requests["total_ms"].astype("float64").to_numpy() / 1000.0
    t1 = t0 + np.where(np.isfinite(total_s), total_s, missing_completion_s)
    # per session (sorted by name) the min/max ignoring NaN (all NaN: NaN), then by (start, end),
    # ties in name order: numpy, as pandas' groupby-min/max and stable sort would give, 10x faster
    inv, names = pd.factorize(requests["run_id"].astype(str).to_numpy(dtype=object), sort=True)
    a = np.full(len(names), np.nan)
    b = np.full(len(names), np.nan)
    np.fmin.at(a, inv, t0)
    np.fmax.at(b, inv, t1)
    order = np.lexsort((b, a))
    return [Span(str(names[k]), float(a[k]), float(b[k])) for k in order.tolist()]


@dataclass
class TaskSeconds:
    """Billed task-seconds of one service in one session, with how they arose."""
    deployed_s: float = 0.0
    added_s: float = 0.0
    added_tasks: int = 0
    minimum_applied: int = 0       # added tasks that ran less than the 1-minute minimum
    open_end: int = 0              # added tasks still running when the record ended

    @property
    def total_s(self) -> float:
        return self.deployed_s + self.added_s


def _owned(spans: list[Span]) -> dict[str, list[tuple[float, float]]]:
    """Each session's span minus what earlier-starting sessions already cover."""
    out: dict[str, list[tuple[float, float]]] = {}
    covered: list[tuple[float, float]] = []
    for sp in spans:
        pieces = [(sp.start_s, sp.end_s)]
        for a, b in covered:
            nxt = []
            for x, y in pieces:
                if b <= x or a >= y:
                    nxt.append((x, y))
                    continue
                if x < a:
                    nxt.append((x, a))
                if b < y:
                    nxt.append((b, y))
            pieces = nxt
        out[sp.session] = pieces
        covered.append((sp.start_s, sp.end_s))
    return out


def _overlap(pieces: Iterable[tuple[float, float]], lo: float | None, hi: float | None) -> float:
    lo_v = -math.inf if lo is None else lo
    hi_v = math.inf if hi is None else hi
    return sum(max(0.0, min(y, hi_v) - max(x, lo_v)) for x, y in pieces)


def session_task_seconds(timeline: CapacityTimeline, spans: list[Span],
                         billed: set[tuple[str, str]] | None = None) -> dict[tuple[str, str], TaskSeconds]:
    """Billed task-seconds per (session, workload service) for the pairs in `billed` (default: every
    session x service); see the module docstring. Overlapping spans count once among billed sessions."""
    if billed is None:
        billed = {(sp.session, w) for sp in spans for w in timeline.services}
    starts = [sp.start_s for sp in spans]
    out: dict[tuple[str, str], TaskSeconds] = {key: TaskSeconds() for key in billed}
    for w, svc in timeline.services.items():
        owned = _owned([sp for sp in spans if (sp.session, w) in billed])
        for t in svc.tasks:
            if t.start_s is None:
                for session, pieces in owned.items():
                    ran = _overlap(pieces, None, t.end_s)
                    out[(session, w)].deployed_s += float(math.ceil(ran - 1e-9)) if ran > 0 else 0.0
                continue
            i = int(np.searchsorted(starts, t.start_s, side="right")) - 1
            if i < 0 or t.start_s > spans[i].end_s + timeline.metric_period_s:
                continue      # started outside every session given
            if (spans[i].session, w) not in billed:
                continue
            ts = out[(spans[i].session, w)]
            end = t.end_s
            if end is None:
                end = max(t.start_s, timeline.record_end_s if timeline.record_end_s is not None else spans[i].end_s)
                ts.open_end += 1
            life = float(math.ceil(end - t.start_s - 1e-9))
            if life < FARGATE_MIN_BILLED_S:
                ts.minimum_applied += 1
                life = float(FARGATE_MIN_BILLED_S)
            ts.added_s += life
            ts.added_tasks += 1
    return out
