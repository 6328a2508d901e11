"""The five-window schedule: which windows run now (pending ones; for AWS only the one open in the
profile's timezone, and only with an explicit opt-in), the target they run against, and the virtual
clock of a testbed run. `run_profile` is what notebook 01 calls."""

from __future__ import annotations

from datetime import date, datetime
from typing import Callable, Sequence
from zoneinfo import ZoneInfo

from hybridopt.collection import loadgen
from hybridopt.collection.manifest import Manifest, is_done, manifests, now_utc, read_manifest, run_dir_for
from hybridopt.collection.progress import Notice, Progress, WindowSkipped, print_progress
from hybridopt.collection.targets import Target, aws_target, start_testbed
from hybridopt.collection.window import run_window
from hybridopt.params import Params


class CollectionRefused(RuntimeError):
    """Collection will not run now (outside the windows, no opt-in, wrong source): the message says why."""


class CollectionFailed(RuntimeError):
    """A window failed (Artillery did not finish) or lost lines; every manifest is written before this
    is raised. `manifests` holds them all."""

    def __init__(self, message: str, manifests: list[Manifest]) -> None:
        super().__init__(message)
        self.manifests = manifests


def plan(params: Params, *, force: bool = False) -> list[tuple[str, bool]]:
    """(window, done already) in schedule order."""
    return [(w, (not force) and is_done(params, w)) for w in loadgen.schedule(params)]


def virtual_date(params: Params, today_local: date) -> date:
    """The testbed schedule's date: params, else the one a done window of this schedule used, else today."""
    if params.collection.virtual_date:
        return date.fromisoformat(params.collection.virtual_date)
    for w in loadgen.schedule(params):
        m = read_manifest(run_dir_for(params, w))
        if m and m.get("clock") == "virtual" and m.get("virtual_start"):
            try:
                return datetime.fromisoformat(m["virtual_start"]).date()
            except ValueError:
                continue
    return today_local


def collect(params: Params, *, force: bool = False, allow_outside_window: bool = False,
            aws_opt_in: bool = False, now: datetime | None = None, progress: Progress | None = None,
            target_factory: Callable[[Params], Target] | None = None,
            windows: Sequence[str] | None = None, node: str | None = None) -> list[Manifest]:
    """Run the profile's pending windows; return the manifests of every window of the schedule
    (done before or now). Raises CollectionRefused when nothing may run now.

    testbed: starts the local testbed, runs the windows back to back (compressed to
    `collection.window_wall_s` wall seconds each when set) and stamps `sent_at` with a virtual
    clock: the window's local start on `collection.virtual_date` plus the elapsed wall time.
    aws: needs `collection.aws_opt_in` or `aws_opt_in=True`; runs only the window open now in
    `params.timezone` (the real clock) unless `allow_outside_window`, which runs the pending ones now.
    `force` redoes windows whose manifest says complete."""
    progress = progress or print_progress
    source = params.source
    if source not in ("testbed", "aws"):
        raise CollectionRefused(f"profile {params.profile!r} has source {source!r}: `collect` drives Artillery "
                                f"against the testbed or AWS only (legacy logs are read in place; the simulator "
                                f"writes its own logs)")
    todo = [w for w, done in plan(params, force=force) if not done and (windows is None or w in windows)]
    for w, done in plan(params, force=force):
        if done:
            m = read_manifest(run_dir_for(params, w)) or {}
            progress(WindowSkipped(m.get("run_id", w), "manifest says complete"))
            if m.get("params_hash") != params.hash:
                progress(Notice(f"{w} was collected with other params (hash {m.get('params_hash')} vs "
                                f"{params.hash}); --force redoes it"))
    if not todo:
        return manifests(params)
    now = now or now_utc()
    tz = ZoneInfo(params.timezone)
    if source == "aws":
        if not (params.collection.aws_opt_in or aws_opt_in):
            raise CollectionRefused(
                f"profile {params.profile!r} sends real traffic to AWS: opt in with `--aws-opt-in` "
                f"(or collection.aws_opt_in: true in params/{params.profile}.yaml)")
        if not allow_outside_window:
            open_now = loadgen.open_window(params, now)
            if open_now is None or open_now not in todo:
                nxt = loadgen.next_window(params, now, todo)
                where = (f"the next pending window is {nxt[0]} at {nxt[1].isoformat()} ({params.timezone})"
                         if nxt else "no pending window")
                why = (f"{open_now} is open but done already" if open_now
                       else f"no window is open at {now.astimezone(tz).isoformat()}")
                raise CollectionRefused(f"{why}; {where}. Run then, or pass --allow-outside-window "
                                        f"(its hour_of_day then disagrees with time_window)")
            todo = [open_now]
    factory = target_factory or (start_testbed if source == "testbed" else aws_target)
    target = factory(params)
    vdate = virtual_date(params, now.astimezone(tz).date())
    problems = []
    try:
        for k, w in enumerate(todo, start=1):
            vstart = None
            if source == "testbed":
                vstart = loadgen.window_bounds(params, w, vdate)[0]
            m = run_window(params, w, target, virtual_start=vstart,
                           outside_window=(source == "aws" and allow_outside_window
                                           and loadgen.open_window(params, now_utc()) != w),
                           progress=progress, node=node, position=(k, len(todo)))
            if m["status"] != "complete":
                problems.append(f"{m['run_id']}: {m['status']} (Artillery exit code {m['artillery']['exit_code']}): "
                                f"{'; '.join(m.get('errors_excerpt') or [])[:500]}")
            elif not m["checks"]["lines_equal_attempts"]:
                problems.append(f"{m['run_id']}: {m['lines_written']} lines for {m['attempts_made']} attempts")
    finally:
        target.stop()
    result = manifests(params)
    if problems:
        raise CollectionFailed("collection incomplete (manifests and artillery.log under "
                               f"{params.path('raw_dir')}):\n  " + "\n  ".join(problems), result)
    return result


def run_profile(params: Params, *, force: bool = False, progress: Progress | None = None) -> list[Manifest]:
    """What notebook 01 runs: collect (testbed/aws) the pending windows, printing a progress line per
    window every few seconds, or, for sources this module does not drive (legacy logs read in
    place, the simulator), only return the manifests found."""
    if params.source in ("testbed", "aws"):
        return collect(params, force=force, progress=progress)
    (progress or print_progress)(Notice(f"source {params.source!r}: nothing for Artillery to collect; "
                                        f"summarising what is on disk"))
    return manifests(params) if params.source == "simulator" else []
