"""What collection tells its caller while it runs: one event per step, and the lines printed for them.

`collect` and `run_window` take a `progress` callback (default `print_progress`, which prints one
line per event on stdout, flushed, so it shows in a terminal and as notebook cell output):

- `WindowStarted` when a window's Artillery run starts,
- `WindowProgress` every few seconds while it runs: pairs the processor has started and lines it
  has flushed so far (read from the run directory, not estimated from the schedule),
- `WindowFinished` once its manifest is written,
- `WindowSkipped` for a window that is done already, `Notice` for anything worth a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from hybridopt.collection.manifest import Manifest

PREFIX = "[collect]"


@dataclass(frozen=True)
class WindowSlot:
    """Which window runs: `number` of `count` windows this call runs (1-based)."""
    number: int
    count: int
    window: str
    load_pattern: str
    run_id: str

    def label(self) -> str:
        return f"window {self.number} of {self.count} ({self.window}, {self.load_pattern})"


@dataclass(frozen=True)
class WindowStarted:
    slot: WindowSlot
    target: str                 # testbed | aws
    phases_s: int               # length of Artillery's phases (the window's wall time before drain)
    pairs_planned: float        # pairs Artillery's phases schedule
    virtual_start: str          # ISO-8601: the local start sent_at counts from


@dataclass(frozen=True)
class WindowProgress:
    slot: WindowSlot
    elapsed_s: float            # since Artillery was started (its start-up of a few seconds included)
    phases_s: int
    pairs_sent: int             # pairs the processor started (its health records)
    pairs_planned: float
    attempts: int               # requests the processor started (its health records)
    lines_written: int          # newline-terminated contract lines in the run's files now


@dataclass(frozen=True)
class WindowFinished:
    slot: WindowSlot
    manifest: Manifest          # the window's manifest.json as written


@dataclass(frozen=True)
class WindowSkipped:
    run_id: str
    reason: str


@dataclass(frozen=True)
class Notice:
    message: str


ProgressEvent = WindowStarted | WindowProgress | WindowFinished | WindowSkipped | Notice
Progress = Callable[[ProgressEvent], None]


def progress_every_s(phases_s: float) -> float:
    """How often a running window reports: every 5 s, up to once a minute for long windows
    (an hour-long AWS window prints about 60 lines)."""
    return min(60.0, max(5.0, phases_s / 60.0))


def _num(value: object, fmt: str = "{:.0f}") -> str:
    return "-" if not isinstance(value, (int, float)) else fmt.format(value)


def describe(event: ProgressEvent) -> str:
    """The line printed for an event."""
    if isinstance(event, WindowStarted):
        return (f"{PREFIX} {event.slot.label()}: starting on {event.target}, {event.pairs_planned:.0f} pairs "
                f"planned over {event.phases_s} s (run {event.slot.run_id}, virtual start {event.virtual_start})")
    if isinstance(event, WindowProgress):
        return (f"{PREFIX} {event.slot.label()}: {event.pairs_sent} of {event.pairs_planned:.0f} pairs sent, "
                f"{event.lines_written} lines written, {event.elapsed_s:.0f} s elapsed (phases {event.phases_s} s)")
    if isinstance(event, WindowFinished):
        m = event.manifest
        g = m.get("generator") or {}
        lost = m.get("lines_written") != m.get("attempts_made")
        health = (f"generator CPU p95 {_num(g.get('cpu_pct_p95'), '{:.1f}')} %, "
                  f"event-loop lag p99 {_num(g.get('event_loop_lag_ms_p99'), '{:.1f}')} ms")
        if g.get("saturated"):
            health += f", SATURATED ({g.get('reason')})"
        return (f"{PREFIX} {event.slot.label()} {m.get('status')}: {_num(m.get('pairs_sent'))} of "
                f"{_num(m.get('scheduled_pairs'))} pairs sent, {_num(m.get('attempts_made'))} attempts, "
                f"{_num(m.get('lines_written'))} lines{' (LINES MISSING)' if lost else ''}, "
                f"{_num(m.get('wall_s'))} s; {health}")
    if isinstance(event, WindowSkipped):
        return f"{PREFIX} {event.run_id}: done already ({event.reason})"
    return f"{PREFIX} WARNING: {event.message}"


def print_progress(event: ProgressEvent) -> None:
    """The default progress callback: one line per event on stdout, flushed at once."""
    print(describe(event), flush=True)
