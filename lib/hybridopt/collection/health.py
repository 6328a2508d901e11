"""Watching a running window: the CPU of Artillery's process tree, sampled by a thread, and the live
counts of what the processor has flushed to the run directory (contract lines and its periodic
health records), read incrementally so a long window is never re-read from the start."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from hybridopt.collection import loadgen


class CpuSampler(threading.Thread):
    """Samples CPU (percent of one core) of a process and its descendants every `interval_s`;
    `samples` holds (epoch s, percent of one core)."""

    def __init__(self, pid: int, interval_s: float) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        procs: dict[int, psutil.Process] = {}
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._halt.is_set():
            try:
                current = [root] + root.children(recursive=True)
            except psutil.Error:
                break
            total = 0.0
            for p in current:
                if p.pid not in procs:
                    procs[p.pid] = p
                    try:
                        p.cpu_percent(None)  # the first call only sets the reference point
                    except psutil.Error:
                        pass
                    continue
                try:
                    total += procs[p.pid].cpu_percent(None)
                except psutil.Error:
                    continue
            self.samples.append((time.time(), total))
            self._halt.wait(self.interval_s)

    def stop(self) -> None:
        self._halt.set()


@dataclass(frozen=True)
class LiveCounts:
    """What the processor has flushed so far."""
    pairs_sent: int       # pairs started (latest health record of each worker thread)
    attempts: int         # requests started (latest health record of each worker thread)
    lines_written: int    # newline-terminated lines in the run's *.jsonl files


class _Tail:
    """The bytes appended to one file since the previous read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read_new(self) -> bytes:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return b""
        self.offset += len(data)
        return data


class RunDirWatcher:
    """Live counts of a running window's directory. Each `counts()` reads only what was appended
    since the previous call: newlines of the contract files, new records of the health files."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._lines: dict[Path, tuple[_Tail, int]] = {}
        self._health: dict[Path, tuple[_Tail, bytearray]] = {}
        self._latest: dict[object, dict[str, Any]] = {}   # thread_id -> its latest health record

    def counts(self) -> LiveCounts:
        for f in sorted(self.run_dir.glob("*.jsonl")):
            tail, n = self._lines.get(f, (_Tail(f), 0))
            self._lines[f] = (tail, n + tail.read_new().count(b"\n"))
        for f in sorted(self.run_dir.glob(loadgen.HEALTH_GLOB)):
            tail, pending = self._health.setdefault(f, (_Tail(f), bytearray()))
            pending += tail.read_new()
            *complete, rest = bytes(pending).split(b"\n")
            pending[:] = rest
            for raw in complete:
                try:
                    rec = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(rec, dict):
                    self._latest[rec.get("thread_id")] = rec
        return LiveCounts(pairs_sent=sum(int(r.get("pairs") or 0) for r in self._latest.values()),
                          attempts=sum(int(r.get("attempts") or 0) for r in self._latest.values()),
                          lines_written=sum(n for _, n in self._lines.values()))
