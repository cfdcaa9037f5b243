"""A service as its own OS process (`python -m <module>`), started with devstack's `Supervisor` (as
`make run` and `bench/` do) from a settings object turned into environment variables."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from devstack import processes
from devstack.processes import Supervisor


def settings_env(settings: BaseSettings, **overrides: Any) -> dict[str, str]:
    """Every field of `settings` as the environment variable it is read from (explicit, so neither a
    `.env` nor the defaults can leak in); `overrides` replace fields by name."""
    values = {**dict(settings), **overrides}
    env: dict[str, str] = {}
    for name, info in type(settings).model_fields.items():
        value = values[name]
        if value is None:
            continue  # left to its default (None for every optional field of our settings)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, list | dict | tuple):
            text = json.dumps(value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        alias = info.validation_alias if isinstance(info.validation_alias, str) else name
        env[alias.upper()] = text
    return env


class ServiceProcess:
    """One service in its own process; log in `<log_dir>/<name>.log`."""

    def __init__(self, name: str, module: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.module = module
        self.env = env
        self.log_dir = log_dir
        self.sup = Supervisor()
        self.starts = 0

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.sup.procs.get(self.name)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def start(self, ready_url: str, timeout: float = 60.0) -> None:
        """Start it and wait until `ready_url` answers 200 (in a thread: the event loop of the test
        serves the services the process talks to)."""
        # devstack's Supervisor writes `<LOG_DIR>/<name>.log`; point it at this run's folder.
        old, processes.LOG_DIR = processes.LOG_DIR, self.log_dir
        try:
            self.sup.start(self.name, self.module, self.env)
        finally:
            processes.LOG_DIR = old
        self.starts += 1
        await asyncio.to_thread(self.sup.wait_ready, self.name, ready_url, timeout=timeout)

    @contextlib.asynccontextmanager
    async def serving(self, ready_url: str) -> AsyncIterator[ServiceProcess]:
        """Started (ready at `ready_url`) for the block; stopped after it, from a thread (the test's
        loop serves what the process's graceful drain may still call), and its log tail printed."""
        await self.start(ready_url)
        try:
            yield self
        finally:
            await asyncio.to_thread(self.stop)
            print(f"--- {self.name} process log (last lines) ---\n{self.log_tail()}")

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> int:
        """Send `sig` to the process group (its own session) and reap it; returns the exit code."""
        proc = self.sup.procs.pop(self.name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        return proc.wait(15)

    def stop(self) -> None:
        """SIGTERM (graceful), SIGKILL after 15 s."""
        if self.proc is not None:
            self.sup.stop()
            self.sup.procs.clear()

    def log_tail(self, lines: int = 40) -> str:
        path = self.log_dir / f"{self.name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
