"""A private RabbitMQ node for tests that must stop or restart the broker (the machine's broker at :5672
is shared with other runs and is never touched).

The node runs `rabbitmq-server` as this user with its own name, AMQP and distribution ports (loopback),
data, logs, config, plugins (none) and Erlang cookie, all under a temporary folder; `rabbitmqctl -n
<node>` controls it. `private_rabbitmq` is a session fixture: the node starts once (skipped with the
reason when it cannot start within 30 s) and is stopped at the end of the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
START_TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class RabbitNode:
    """One private node; `url` is its AMQP URL."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.name = f"tests-{uuid.uuid4().hex[:8]}@localhost"
        self.port = _free_port()
        self.dist_port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        (base / "home").mkdir(parents=True, exist_ok=True)
        (base / "enabled_plugins").write_text("[].\n")  # no management, no prometheus
        (base / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        (base / "rabbitmq-env.conf").write_text("")  # not the machine's /etc/rabbitmq/rabbitmq-env.conf
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def env(self) -> dict[str, str]:
        b = self.base
        return {
            **os.environ,
            "HOME": str(b / "home"),  # its own Erlang cookie, shared with our rabbitmqctl only
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(b / "mnesia"),
            "RABBITMQ_LOG_BASE": str(b / "log"),
            "RABBITMQ_CONFIG_FILE": str(b / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(b / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(b / "rabbitmq-env.conf"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    # Node life cycle (blocking; call through asyncio.to_thread from a running event loop) ---------

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start the Erlang node and wait until it accepts AMQP connections."""
        log = open(self.base / "server.out", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [str(RABBIT_BIN / "rabbitmq-server")],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_port(timeout)

    def wait_port(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited with {self.proc.returncode}: {self.log_tail()}")
            if _port_open(self.port):
                return
            time.sleep(0.2)
        raise TimeoutError(f"node {self.name} not accepting AMQP on {self.port} after {timeout:.0f}s")

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        r = subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-q", "-n", self.name, *args],
            env=self.env(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if r.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {r.stderr.decode(errors='replace')[:500]}")
        return r.stdout.decode(errors="replace")

    def stop_app(self) -> None:
        """The RabbitMQ application stops (every connection closed, listener gone); the VM stays."""
        self.ctl("stop_app")

    def start_app(self, timeout: float = START_TIMEOUT_S) -> None:
        self.ctl("start_app")
        self.wait_port(timeout)
        self.restarts += 1

    def kill(self) -> None:
        """SIGKILL the whole node (no clean shutdown: queues recover from their logs on start)."""
        assert self.proc is not None
        self._kill_tree()
        self.proc.wait(15)
        self.proc = None
        # The Erlang port mapper may still hold the node's name for a moment.
        deadline = time.monotonic() + 10
        while _port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def _kill_tree(self) -> None:
        """SIGKILL the node's processes; never `epmd`, which other nodes of the machine share."""
        assert self.proc is not None
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.proc.pid)
            for p in [*root.children(recursive=True), root]:
                with contextlib.suppress(psutil.Error):
                    if p.name() != "epmd":
                        p.send_signal(signal.SIGKILL)

    def restart_after_kill(self, timeout: float = START_TIMEOUT_S) -> None:
        self.start(timeout)
        self.restarts += 1

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(Exception):
            self.ctl("stop", timeout=30)
        if self.proc.poll() is None:
            self._kill_tree()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(15)
        self.proc = None

    def log_tail(self, lines: int = 20) -> str:
        path = self.base / "server.out"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # From tests ---------------------------------------------------------------------------------

    async def astop(self, how: str) -> None:
        """Take the broker away under the running test: `stop_app`, or `kill` (SIGKILL of the node)."""
        if how == "stop_app":
            await asyncio.to_thread(self.stop_app)
        elif how == "kill":
            await asyncio.to_thread(self.kill)
        else:
            raise ValueError(how)

    async def aensure_up(self) -> None:
        """Bring the node back if a test left it down (it failed between `astop` and `astart`), so the
        system's teardown and the next tests find a broker."""
        if self.proc is None:
            await asyncio.to_thread(self.restart_after_kill)
        elif not _port_open(self.port):
            await asyncio.to_thread(self.start_app)

    async def astart(self, how: str) -> None:
        """Bring it back after `astop(how)`; returns once it accepts AMQP connections."""
        await asyncio.to_thread(self.start_app if how == "stop_app" else self.restart_after_kill)


@pytest.fixture(scope="session")
def private_rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    """A RabbitMQ node of this test session alone, that tests may stop, kill and restart."""
    if not (RABBIT_BIN / "rabbitmq-server").exists() or shutil.which("erl") is None:
        pytest.skip("rabbitmq-server is not installed: no private broker node for broker_restart tests")
    node = RabbitNode(tmp_path_factory.mktemp("rabbitmq-node"))
    try:
        node.start()
    except (RuntimeError, TimeoutError, OSError) as exc:
        node.stop()
        pytest.skip(f"a private RabbitMQ node could not be started within {START_TIMEOUT_S:.0f}s: {exc}")
    try:
        yield node
    finally:
        node.stop()
