"""Consumer processes of one sync-core replica (`SYNC_CORE_WORKERS`, ADR 0055).

One Python process runs its handlers on one core at most (the GIL), and at 200 changes/s sync-core
asks for more than that. With `SYNC_CORE_WORKERS` = N the replica's main process (HTTP API, console,
reconciliation, gauges) starts N − 1 worker processes (`python -m sync_core.worker`) that only
consume. The shards are split between them: process i is the primary consumer of shards s with
s mod N = i. Ordering per (user, collection) still rests on the single-active-consumer queues
(ADR 0002): a shard has one active consumer at a time, whatever process it is in.

Order of subscription decides who is active, so it is fixed:
1. the main process subscribes to its own shards;
2. it starts the workers, each of which subscribes to its own shards, then reports ready;
3. the main process subscribes to every other shard as well, as their standby: a worker that dies
   hands its shards to the main process at once (the broker moves them), and is started again.
A worker that does not report ready within `READY_TIMEOUT_S` leaves its shards to the main process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings

log = logging.getLogger(__name__)

READY_FD_ENV = "SYNC_CORE_READY_FD"
INDEX_ENV = "SYNC_CORE_WORKER_INDEX"  # set by the main process for each worker, not a setting
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0  # a worker drains its running handlers on SIGTERM (bus drain: 10 s)
RESTART_DELAY_S = 1.0


def own_shards(shards: int, workers: int, index: int) -> list[int]:
    """The shards process `index` of `workers` consumes as their primary consumer."""
    return [s for s in range(shards) if s % max(workers, 1) == index]


def settings_env(settings: BaseSettings) -> dict[str, str]:
    """The environment that gives a worker the main process's settings, whatever they were built
    from (the environment, `.env`, or arguments in a test)."""
    env: dict[str, str] = {}
    for name, info in type(settings).model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else name
        env[alias.upper()] = _env_value(getattr(settings, name))
    return env


def _env_value(value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def report_ready() -> None:
    """In a worker: tell the main process its shards are subscribed (once; no-op elsewhere)."""
    fd = os.environ.pop(READY_FD_ENV, None)
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.write(int(fd), b"1")
        os.close(int(fd))


class _Child:
    def __init__(self, index: int, env: dict[str, str]) -> None:
        self.index = index
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: asyncio.Future[None] | None = None
        self.started_at = 0.0

    def spawn(self) -> None:
        loop = asyncio.get_running_loop()
        read_fd, write_fd = os.pipe()
        env = {**os.environ, **self.env, INDEX_ENV: str(self.index), READY_FD_ENV: str(write_fd)}
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "sync_core.worker"], env=env, pass_fds=(write_fd,))
        finally:
            os.close(write_fd)
        self.started_at = time.monotonic()
        ready: asyncio.Future[None] = loop.create_future()
        self.ready = ready

        def on_readable() -> None:
            loop.remove_reader(read_fd)
            with contextlib.suppress(OSError):
                os.read(read_fd, 1)
            os.close(read_fd)
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(read_fd, on_readable)  # a byte, or end of file if the worker died first

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Workers:
    """The main process's worker processes: started, watched (one that exits is started again) and
    stopped (SIGTERM: each drains its running handlers, ADR 0040) with the service."""

    def __init__(self, count: int, settings: BaseSettings) -> None:
        env = settings_env(settings)
        self.children = [_Child(i, env) for i in range(1, count)]
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        """Start the workers and wait (bounded) until each has subscribed to its shards."""
        for child in self.children:
            child.spawn()
        waits = [child.ready for child in self.children if child.ready is not None]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=READY_TIMEOUT_S)
            if pending:
                log.warning(
                    "%d sync-core worker(s) not ready in %.0fs: the main one stands in", len(pending), READY_TIMEOUT_S
                )
        for child in self.children:
            if not child.alive():
                code = child.proc.returncode if child.proc else None
                log.warning("sync-core worker %d exited at start (code %s)", child.index, code)
        self._watch = asyncio.create_task(self._watching())

    async def _watching(self) -> None:
        while not self._stopping:
            await asyncio.sleep(RESTART_DELAY_S)
            for child in self.children:
                if self._stopping or child.alive():
                    continue
                code = child.proc.returncode if child.proc else None
                log.warning("sync-core worker %d exited (code %s): started again", child.index, code)
                child.spawn()

    def state(self) -> dict[int, bool]:
        """Worker index → alive."""
        return {child.index: child.alive() for child in self.children}

    async def check(self) -> None:
        """Readiness check: raise if a worker is not running."""
        dead = [i for i, alive in self.state().items() if not alive]
        if dead:
            raise RuntimeError(f"worker(s) {dead} not running")

    async def stop(self) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        running = [child.proc for child in self.children if child.proc is not None and child.alive()]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        await asyncio.gather(*(asyncio.to_thread(_wait_or_kill, proc) for proc in running))


def _wait_or_kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        log.warning("sync-core worker pid %d did not stop in %.0fs: killed", proc.pid, STOP_TIMEOUT_S)
        proc.kill()
        proc.wait(5)
