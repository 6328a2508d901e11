"""Running a testbed: `serve` (a coroutine), `start` (a background thread or a child process, returning a
`Testbed` handle) and `run_forever` (the CLI's loop, until SIGTERM/SIGINT)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from hybridopt.emulation.testbed.admin import ADMIN_PREFIX
from hybridopt.emulation.testbed.server import TestbedServer
from hybridopt.params import Params


async def serve(params: Params, host: str = "127.0.0.1", port: int = 0, *, seed: int | None = None,
                ready: Callable[[TestbedServer], None] | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Serve until `stop` is set (or forever)."""
    server = TestbedServer(params, seed)
    await server.start(host, port)
    stop = stop or asyncio.Event()
    if ready is not None:
        ready(server)
    try:
        await stop.wait()
    finally:
        await server.close()


class Testbed:
    """A running testbed: `.base_url`, `.stop()`, usable as a context manager."""

    __test__ = False

    def __init__(self) -> None:
        self.base_url = ""
        self.server: TestbedServer | None = None     # thread mode: the live server (same process)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._tmp: Path | None = None

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            if self._thread.is_alive():
                self._loop.call_soon_threadsafe(self._stop.set)
                self._thread.join(timeout_s)
            self._thread = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
                try:
                    self._proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            if self._proc.stdout:
                self._proc.stdout.close()
            self._proc = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def __enter__(self) -> Testbed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(params: Params, host: str = "127.0.0.1", port: int = 0, *, seed: int | None = None,
          mode: Literal["thread", "process"] = "thread", timeout_s: float = 30.0) -> Testbed:
    """Start a testbed for `params` and return once it listens. mode="thread": an event loop in a
    background thread of this process (tb.server is the live TestbedServer); mode="process": a child
    `python -m hybridopt testbed` process (no GIL shared with the caller)."""
    if mode == "thread":
        return _start_thread(params, host, port, seed, timeout_s)
    if mode != "process":
        raise ValueError(f"mode must be 'thread' or 'process', got {mode!r}")
    return _start_process(params, host, port, seed, timeout_s)


def _start_thread(params: Params, host: str, port: int, seed: int | None, timeout_s: float) -> Testbed:
    tb = Testbed()
    ready = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        loop = asyncio.new_event_loop()
        tb._loop = loop
        tb._stop = asyncio.Event()

        def on_ready(server: TestbedServer) -> None:
            tb.server = server
            tb.base_url = server.base_url
            ready.set()

        try:
            loop.run_until_complete(serve(params, host, port, seed=seed, ready=on_ready, stop=tb._stop))
        except BaseException as exc:  # noqa: BLE001 - reported to the caller of start()
            errors.append(exc)
            ready.set()
        finally:
            loop.close()

    tb._thread = threading.Thread(target=run, name="hybridopt-testbed", daemon=True)
    tb._thread.start()
    if not ready.wait(timeout_s) or errors:
        tb.stop()
        raise RuntimeError(f"testbed did not start on {host}:{port}: {errors[0] if errors else 'timeout'}")
    return tb


def _start_process(params: Params, host: str, port: int, seed: int | None, timeout_s: float) -> Testbed:
    tb = Testbed()
    fd, name = tempfile.mkstemp(prefix="hybridopt-testbed-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(params.model_dump(mode="json", by_alias=True), f)
    tb._tmp = Path(name)
    cmd = [sys.executable, "-m", "hybridopt", "testbed", "--params-json", name, "--host", host, "--port", str(port)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    tb._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout_s
    stdout = tb._proc.stdout
    while stdout is not None and time.monotonic() < deadline:
        line = stdout.readline()
        if not line:
            break
        if line.startswith("TESTBED_URL="):
            tb.base_url = line.strip().split("=", 1)[1]
            return tb
    code = tb._proc.poll()
    tb.stop()
    raise RuntimeError(f"testbed process did not report TESTBED_URL (exit code {code}): {' '.join(cmd)}")


def run_forever(params: Params, host: str, port: int, seed: int | None = None) -> int:
    """The CLI's loop: print TESTBED_URL once listening, serve until SIGTERM/SIGINT, shut down cleanly."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def ready(server: TestbedServer) -> None:
            print(f"TESTBED_URL={server.base_url}", flush=True)
            print(f"testbed: profile {params.profile}, client preset {params.testbed.client_preset}, "
                  f"service preset {params.testbed.service_preset}, seed {server.seed}, client timeout "
                  f"{server.client_timeout_s:g} s; "
                  f"{len(server.routes)} routes; admin at {server.base_url}{ADMIN_PREFIX}stats", file=sys.stderr,
                  flush=True)

        await serve(params, host, port, seed=seed, ready=ready, stop=stop)

    asyncio.run(main())
    print("testbed: stopped", file=sys.stderr, flush=True)
    return 0
