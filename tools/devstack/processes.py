"""Start, watch and stop the system's processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx

LOG_DIR = Path("var/logs")


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_rabbitmq(amqp_url: str) -> None:
    """Use the broker at AMQP_URL; start a local rabbitmq-server if it is down and installed."""
    u = urlparse(amqp_url)
    host, port = u.hostname or "127.0.0.1", u.port or 5672
    if port_open(host, port):
        return
    local = host in ("127.0.0.1", "localhost")
    server = "/usr/sbin/rabbitmq-server" if Path("/usr/sbin/rabbitmq-server").exists() else None
    if not (local and server):
        raise SystemExit(
            f"RabbitMQ is not reachable at {host}:{port}.\n"
            "Start one, e.g. `docker compose up -d rabbitmq`, or set AMQP_URL in .env."
        )
    print(f"RabbitMQ is down at {host}:{port}; starting the local rabbitmq-server …", flush=True)
    subprocess.run([server, "-detached"], check=False)  # noqa: S603
    for _ in range(90):
        if port_open(host, port):
            return
        time.sleep(1)
    raise SystemExit("rabbitmq-server did not come up in 90 s; see its logs under /var/log/rabbitmq")


@dataclass
class Supervisor:
    """Child processes of `make run`, each logging to var/logs/<name>.log."""

    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, module: str, env: dict[str, str] | None = None) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log = open(LOG_DIR / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.procs[name] = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", module],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with code {proc.returncode}; see {LOG_DIR / (name + '.log')}")

    def wait_ready(self, name: str, url: str, *, verify: str | bool = True, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                r = httpx.get(url, verify=verify, timeout=2)
                if r.status_code == 200:
                    return
                last = f"{r.status_code} {r.text[:200]}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.3)
        raise SystemExit(f"{name} not ready at {url} after {timeout:.0f}s ({last}); see {LOG_DIR / (name + '.log')}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
