"""A sweep engine on Dask distributed: one function run over a list of task dicts, each task a row.

`run_sweep(fn, tasks, context, key, cache_dir, ...)` calls `fn(context, **task)` on the workers of a
Dask cluster (a LocalCluster of `n_workers` processes with one thread each, or a running scheduler at
`scheduler`, e.g. `tcp://10.0.0.5:8786`) and returns one row per task:
- the task's inputs, then what `fn` returned (a mapping of column -> value), then the engine's
  columns: `task_id` (a stable hash of `key`, the function's name and the task's inputs, seed
  included), `status` ("ok" | "failed" | "over_budget"), `error` (empty when ok), `wall_s` and
  `cpu_s` (the task thread's CPU seconds: its cost on a quiet core, whatever else the machine runs);
- a task that raises is recorded as `failed` with its exception; one that runs past `budget_s` is
  stopped (an exception raised in its thread at the next Python instruction) and recorded as
  `over_budget`; a worker that dies under a task gives `failed` once Dask gives up on it
  (`distributed.scheduler.allowed-failures`). No task is ever left out of the frame;
- each `ok` row is written to `cache_dir/<task_id>.json` as soon as it arrives, so a rerun with the
  same key skips it (a cache hit) and an interrupted sweep keeps what finished; failed and
  over-budget rows are not cached: a rerun tries them again;
- a tqdm bar (stderr) fills as tasks finish, starting at the cached count (refreshed every
  PIPE_REFRESH_S seconds when stderr is not a terminal: a notebook's output, a log file).

The context (the params) is sent to every worker once (`Client.scatter(..., broadcast=True)`).
A task stuck inside a single C call is stopped only when that call returns to Python.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd

if TYPE_CHECKING:
    from distributed import Client
    from tqdm import tqdm

#: A task's inputs (keyword arguments of the sweep function): JSON scalars only, so the hash is stable.
Task = Mapping[str, str | int | float | bool | None]
#: One result row.
Row = dict[str, object]
Status = Literal["ok", "failed", "over_budget"]

STATUSES: tuple[Status, ...] = ("ok", "failed", "over_budget")
#: The columns the engine adds to every row.
ENGINE_COLUMNS = ("task_id", "status", "error", "wall_s", "cpu_s")
#: Longest error text kept in a row (a traceback's last lines).
ERROR_CHARS = 2000
#: Seconds between progress refreshes when stderr is not a terminal (a notebook, a log file): each
#: refresh adds a copy of the bar to the stream.
PIPE_REFRESH_S = 30.0
#: How long a Client waits for a running scheduler to answer.
CONNECT_TIMEOUT = "20s"


class SweepError(ValueError):
    """A sweep that cannot start: bad tasks, a bad budget, an unreachable scheduler."""


class BudgetExceeded(BaseException):
    """Raised inside a task's thread when it runs past its budget (a BaseException, so a task's own
    `except Exception` does not swallow it)."""


# --------------------------------------------------------------------------------------- task ids
def _jsonable(task: Task, where: str) -> dict[str, str | int | float | bool | None]:
    out: dict[str, str | int | float | bool | None] = {}
    for k, v in task.items():
        if not isinstance(k, str):
            raise SweepError(f"{where}: task keys must be strings, got {k!r}")
        if hasattr(v, "item") and not isinstance(v, (str, bytes)):   # numpy scalars
            v = v.item()
        if v is not None and not isinstance(v, (str, int, float, bool)):
            raise SweepError(f"{where}: task value {k}={v!r} is a {type(v).__name__}; tasks hold str, int, float, "
                             "bool or None only (the cache key is their JSON)")
        if isinstance(v, float) and not math.isfinite(v):
            raise SweepError(f"{where}: task value {k}={v!r} is not finite")
        out[k] = v
    return out


def function_name(fn: Callable[..., object]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def task_id(key: str, fn_name: str, task: Task) -> str:
    """A stable hash of the sweep's key (the params hash), the function and the task's inputs."""
    blob = json.dumps({"key": key, "fn": fn_name, "task": _jsonable(task, "task")}, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


# ------------------------------------------------------------------------------- on the worker
def _raise_in(thread_id: int, exc: type[BaseException]) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc))


def run_task(fn: Callable[..., Mapping[str, object]], context: object, task: Task, tid: str,
             budget_s: float) -> Row:
    """Run one task with its budget and return its row (never raises for the task's own failure).
    Runs on a Dask worker; also callable directly."""
    lock = threading.Lock()
    state = {"done": False, "fired": False}
    me = threading.get_ident()

    def stop() -> None:
        with lock:
            if not state["done"]:
                state["fired"] = True
                _raise_in(me, BudgetExceeded)

    timer = threading.Timer(budget_s, stop)
    timer.daemon = True
    t0, c0 = time.perf_counter(), time.thread_time()
    status: Status = "ok"
    error = ""
    out: Mapping[str, object] = {}
    try:
        timer.start()
        try:
            out = fn(context, **task)
            with lock:
                state["done"] = True
        finally:
            timer.cancel()
        if not isinstance(out, Mapping):
            raise TypeError(f"{function_name(fn)} returned a {type(out).__name__}, expected a mapping of column -> value")
    except BudgetExceeded:
        status, error = "over_budget", f"stopped after {budget_s:g} s (budget_s {budget_s:g})"
        out = {}
    except Exception as exc:  # noqa: BLE001 - recorded in the row, never dropped
        status = "failed"
        error = (f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_exc(limit=-4)))[-ERROR_CHARS:]
        out = {}
    wall_s, cpu_s = time.perf_counter() - t0, time.thread_time() - c0
    if status == "ok" and wall_s > budget_s:       # finished inside one C call past the budget
        status, error, out = "over_budget", f"took {wall_s:.1f} s (budget_s {budget_s:g})", {}
    row: Row = dict(task)
    row.update({k: v for k, v in out.items() if k not in ENGINE_COLUMNS})
    row.update({"task_id": tid, "status": status, "error": error, "wall_s": wall_s, "cpu_s": cpu_s})
    return row


# ---------------------------------------------------------------------------------------- cache
class Cache:
    """One JSON file per finished `ok` task: <dir>/<task_id>.json (written atomically)."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, tid: str) -> Path:
        return self.dir / f"{tid}.json"

    def get(self, tid: str) -> Row | None:
        p = self.path(tid)
        try:
            row = json.loads(p.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None                      # an unreadable or half-written entry is recomputed
        return row if isinstance(row, dict) and row.get("task_id") == tid and row.get("status") == "ok" else None

    def put(self, row: Row) -> None:
        if row.get("status") != "ok":
            return
        p = self.path(str(row["task_id"]))
        tmp = p.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(row, default=_json_default))
        tmp.replace(p)


def _json_default(v: object) -> object:
    if hasattr(v, "item"):
        return v.item()                      # numpy scalars
    if hasattr(v, "tolist"):
        return v.tolist()
    raise TypeError(f"a row value of type {type(v).__name__} cannot be cached as JSON: {v!r}")


# ---------------------------------------------------------------------------------------- cluster
@contextmanager
def dask_client(scheduler: str | None = None, n_workers: int = 2, memory_limit: str = "auto") -> Iterator["Client"]:
    """A Client on a running scheduler (`scheduler`, e.g. tcp://host:8786), or on a LocalCluster of
    `n_workers` processes with one thread each (closed on exit)."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            raise SweepError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
        except ValueError as exc:       # a malformed address (unknown scheme, no port)
            raise SweepError(f"not a Dask scheduler address: {scheduler}: {exc} (e.g. tcp://host:8786)") from exc
        try:
            yield client
        finally:
            client.close()
        return
    if n_workers < 1:
        raise SweepError(f"n_workers must be >= 1, got {n_workers}")
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      memory_limit=memory_limit) as cluster, Client(cluster) as client:
        yield client


# ---------------------------------------------------------------------------------------- results
@dataclass
class SweepResult:
    frame: pd.DataFrame                  # one row per task that finished (every task unless interrupted)
    tasks: int                           # tasks asked for
    cached: int                          # rows read from the cache
    computed: int                        # rows computed in this run (any status)
    wall_s: float
    interrupted: bool = False
    cached_ids: frozenset[str] = frozenset()                # task ids of the rows read from the cache
    workers: int = 0
    scheduler: str = ""
    counts: dict[str, int] = field(default_factory=dict)   # rows per status

    @property
    def missing(self) -> int:
        return self.tasks - len(self.frame)

    def summary(self) -> dict[str, object]:
        return {"tasks": self.tasks, "rows": len(self.frame), "cached": self.cached, "computed": self.computed,
                "missing": self.missing, "interrupted": self.interrupted, "wall_s": round(self.wall_s, 3),
                "workers": self.workers, "scheduler": self.scheduler, "status_counts": self.counts}


def _frame(rows: list[Row], order: dict[str, int]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=list(ENGINE_COLUMNS))
    df = df.iloc[sorted(range(len(df)), key=lambda i: order[str(df["task_id"].iat[i])])].reset_index(drop=True)
    front = [c for c in df.columns if c not in ENGINE_COLUMNS]
    return df[front + list(ENGINE_COLUMNS)]


def run_sweep(fn: Callable[..., Mapping[str, object]], tasks: Sequence[Task], context: object, key: str,
              cache_dir: Path | None, budget_s: float, *, client: "Client | None" = None,
              scheduler: str | None = None, n_workers: int = 2, force: bool = False, progress: bool = True,
              description: str = "sweep") -> SweepResult:
    """Run `fn(context, **task)` for every task on Dask (see the module docstring). `client`: use this
    one (else `scheduler`, else a LocalCluster of `n_workers`); `force`: ignore the cache (results are
    still written to it); `cache_dir` None: no cache. Ctrl-C stops the sweep and returns what finished
    with `interrupted` set (every finished `ok` row is already cached)."""
    from tqdm import tqdm  # noqa: F811 - the runtime import of the name typed above

    if not budget_s > 0:
        raise SweepError(f"budget_s must be > 0, got {budget_s!r}")
    name = function_name(fn)
    ids = [task_id(key, name, _jsonable(t, f"task {i}")) for i, t in enumerate(tasks)]
    if len(set(ids)) != len(ids):
        dup = next(t for t, i in zip(tasks, ids) if ids.count(i) > 1)
        raise SweepError(f"the task list holds the same task twice: {dict(dup)}")
    order = {tid: i for i, tid in enumerate(ids)}
    t0 = time.perf_counter()
    cache = Cache(cache_dir) if cache_dir is not None else None
    rows: list[Row] = []
    todo: list[tuple[str, Task]] = []
    for tid, task in zip(ids, tasks):
        hit = None if (force or cache is None) else cache.get(tid)
        if hit is not None:
            rows.append(hit)
        else:
            todo.append((tid, _jsonable(task, "task")))
    cached = len(rows)
    cached_ids = frozenset(str(r["task_id"]) for r in rows)
    result = SweepResult(pd.DataFrame(), len(tasks), cached, 0, 0.0, cached_ids=cached_ids)
    bar = tqdm(total=len(tasks), initial=cached, desc=description, unit="task", disable=not progress,
               file=sys.stderr, dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else PIPE_REFRESH_S)
    try:
        if todo:
            with (_given(client) if client is not None else dask_client(scheduler, n_workers)) as c:
                result.workers = len(c.scheduler_info(n_workers=-1).get("workers", {}))
                result.scheduler = str(c.scheduler.address) if c.scheduler else ""
                result.interrupted = _compute(c, fn, context, todo, budget_s, rows, cache, bar)
        bar.close()
    except BaseException:
        bar.close()
        raise
    result.computed = len(rows) - cached
    result.frame = _frame(rows, order)
    result.wall_s = time.perf_counter() - t0
    result.counts = {s: int((result.frame["status"] == s).sum()) for s in STATUSES} if len(result.frame) else \
        {s: 0 for s in STATUSES}
    return result


@contextmanager
def _given(client: "Client") -> Iterator["Client"]:
    yield client


def _compute(client: "Client", fn: Callable[..., Mapping[str, object]], context: object, todo: list[tuple[str, Task]],
             budget_s: float, rows: list[Row], cache: Cache | None, bar: "tqdm[None]") -> bool:
    """Submit every task, collect rows as they finish; True when stopped by Ctrl-C."""
    from distributed import as_completed

    ctx = client.scatter([context], broadcast=True, hash=False)[0]   # in a list: a dict would be scattered per key
    run = uuid.uuid4().hex[:8]               # keys of this run only: a finished key may linger in the scheduler
    futures = {client.submit(run_task, fn, ctx, task, tid, budget_s, key=f"sweep-{tid}-{run}", pure=False, retries=0):
               (tid, task) for tid, task in todo}
    try:
        for fut in as_completed(futures):
            tid, task = futures[fut]
            try:
                row = fut.result()
            except Exception as exc:  # noqa: BLE001 - the worker died under it, or it could not be sent
                row = {**task, "task_id": tid, "status": "failed",
                       "error": f"{type(exc).__name__}: {exc}"[-ERROR_CHARS:], "wall_s": float("nan"),
                       "cpu_s": float("nan")}
            rows.append(row)
            if cache is not None:
                cache.put(row)
            bar.update(1)
            fut.release()
    except KeyboardInterrupt:
        client.cancel(list(futures))
        return True
    return False
