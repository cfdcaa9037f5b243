"""The system under benchmark: the Graph simulator and the three services as separate processes.

Started like `make run` (devstack's `Supervisor`, `ensure_rabbitmq`), but isolated from it and from
other runs: free ports instead of the defaults, databases and logs under `var/bench/<run>/<stack>/`,
an `AMQP_PREFIX` of its own (its queues and exchange are deleted at the end), and every setting passed
explicitly so a `.env` cannot leak in. Separate processes, so each service's RSS and CPU are its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import psutil
from sqlalchemy.engine import make_url

from devstack import processes
from devstack.processes import Supervisor, ensure_rabbitmq
from shared.bus import topology_of
from shared.settings import CommonSettings, GraphSettings

AMQP_URL = os.environ.get("BENCH_AMQP_URL", os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
# A PostgreSQL server to run the services on (each stack gets new databases there, dropped at its end);
# unset: SQLite files, the default of `make run`.
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "")
ERP_TOKEN = "bench-erp-token"
OPS_TOKEN = "bench-ops-token"
TENANT = "bench"
SERVICES = ("erp-connector", "sync-core", "graph-webhook")
SIM_TENANT_ID = "00000000-0000-0000-0000-0000000000aa"
SIM_CLIENT_ID = "11111111-1111-1111-1111-111111111111"
SIM_CLIENT_SECRET = "demo-secret-change-me"


def free_ports(count: int) -> list[int]:
    """`count` distinct ports nothing listens on now: all held at once while picked, so the kernel
    cannot hand the same one out twice (it did: two services of one stack on one port)."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]


class RssSampler:
    """Peak resident memory of every service process, sampled in a thread while the bench runs:
    `peak_mb`, of a service's largest process (the goal is per process); `peak_total_mb`, of all its
    processes together (sync-core's workers, ADR 0055)."""

    CHILDREN_EVERY_S = 2.0

    def __init__(self, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self._children: dict[str, list[psutil.Process]] = {}
        self._children_at = float("-inf")
        self.peak_mb: dict[str, float] = {}
        self.peak_total_mb: dict[str, float] = {}
        self._procs: dict[str, psutil.Process] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def watch(self, name: str, pid: int) -> None:
        with self._lock:
            self._procs[name] = psutil.Process(pid)
            self._children.pop(name, None)

    def forget(self, name: str) -> None:
        with self._lock:
            self._procs.pop(name, None)
            self._children.pop(name, None)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def sample(self) -> None:
        with self._lock:
            procs = list(self._procs.items())
        # A service's child processes are looked up again every CHILDREN_EVERY_S only: finding them
        # scans every process of the machine, and at each sample that was a sixth of the bench's own
        # CPU during the e2e load, taken from the same two cores (session 14).
        now = time.monotonic()
        refresh = now - self._children_at >= self.CHILDREN_EVERY_S
        if refresh:
            self._children_at = now
        for name, proc in procs:
            children = None if refresh else self._children.get(name)
            try:
                if children is None:
                    children = self._children[name] = proc.children(recursive=True)
                each = [proc.memory_info().rss / 2**20]
            except psutil.Error:
                continue
            for child in children:
                with contextlib.suppress(psutil.Error):
                    each.append(child.memory_info().rss / 2**20)
            self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), *each)
            self.peak_total_mb[name] = max(self.peak_total_mb.get(name, 0.0), sum(each))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()


def _children(pid: int) -> list[psutil.Process]:
    """A service's own child processes (sync-core's workers), counted with it."""
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def broker_pid() -> int | None:
    """The local RabbitMQ node's process (read-only: its CPU counts against the same cores)."""
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] == "beam.smp":
            return int(proc.pid)
    return None


def postgres_processes() -> list[psutil.Process]:
    """The local PostgreSQL server's processes (one per connection, plus its own workers)."""
    return [proc for proc in psutil.process_iter(["name"]) if proc.info["name"] in ("postgres", "postmaster")]


class CpuMeter:
    """CPU seconds each process of the run used between `start()` and `stop()`; a group (the
    PostgreSQL server: a process per connection; a service and its worker processes) sums its
    processes, one started meanwhile from zero (one that ended meanwhile is missed: the services'
    pools keep theirs)."""

    def __init__(
        self,
        pids: dict[str, int],
        groups: dict[str, Callable[[], list[psutil.Process]]] | None = None,
    ) -> None:
        self.procs = {}
        for name, pid in pids.items():
            with contextlib.suppress(psutil.Error):
                self.procs[name] = psutil.Process(pid)
        self.groups = groups or {}
        self.before: dict[str, float] = {}
        self._group_before: dict[int, float] = {}
        self.used: dict[str, float] = {}

    @staticmethod
    def _cpu(proc: psutil.Process) -> float:
        t = proc.cpu_times()
        return float(t.user + t.system)

    def _now(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, proc in self.procs.items():
            with contextlib.suppress(psutil.Error):
                out[name] = self._cpu(proc)
        return out

    def _group_now(self) -> dict[int, tuple[str, float]]:
        out: dict[int, tuple[str, float]] = {}
        for name, members in self.groups.items():
            for proc in members():
                with contextlib.suppress(psutil.Error):
                    out[proc.pid] = (name, self._cpu(proc))
        return out

    def start(self) -> None:
        self.before = self._now()
        self._group_before = {pid: cpu for pid, (_, cpu) in self._group_now().items()}

    def stop(self) -> dict[str, float]:
        after = self._now()
        self.used = {k: round(after[k] - self.before[k], 3) for k in after if k in self.before}
        for pid, (name, cpu) in self._group_now().items():
            self.used[name] = round(self.used.get(name, 0.0) + cpu - self._group_before.get(pid, 0.0), 3)
        return self.used

    def per_item_ms(self, items: int) -> dict[str, float]:
        return {k: round(v / max(items, 1) * 1000, 2) for k, v in self.used.items()}


@dataclass
class Stack:
    """One isolated copy of the system; `start()` brings it up, `stop()` takes it down and cleans the broker."""

    run_dir: Path
    name: str
    rss: RssSampler | None = None
    env_overrides: dict[str, str] = field(default_factory=dict)
    # Services of this stack to leave out (e.g. the webhook bench needs no sync-core consuming).
    without: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.dir = (self.run_dir / self.name).resolve()
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}."
        self.sim_port, self.erp_port, self.webhook_port, self.sync_port = free_ports(4)
        self.sup = Supervisor()
        self.ca_path = self.dir / "graph-sim" / "ca.pem"
        self._old_log_dir: Path | None = None

    # Addresses ----------------------------------------------------------------------------------

    @property
    def sim_root(self) -> str:
        return f"https://127.0.0.1:{self.sim_port}"

    @property
    def graph_base(self) -> str:
        return f"{self.sim_root}/v1.0"

    @property
    def erp_url(self) -> str:
        return f"http://127.0.0.1:{self.erp_port}"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.webhook_port}"

    @property
    def sync_url(self) -> str:
        return f"http://127.0.0.1:{self.sync_port}"

    def db_url(self, name: str) -> str:
        if DATABASE_URL:
            return make_url(DATABASE_URL).set(database=self._pg_name(name)).render_as_string(hide_password=False)
        return f"sqlite:///{self.dir / (name + '.db')}"

    def _pg_name(self, name: str) -> str:
        return f"{self.prefix.replace('-', '_').rstrip('.')}_{name}"

    def _pg_databases(self, create: bool) -> None:
        """Create (or drop) this stack's databases on `BENCH_DATABASE_URL`'s server."""
        import psycopg

        admin = make_url(DATABASE_URL).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in ("erp", "webhook", "sync"):
                if create:
                    conn.execute(f'CREATE DATABASE "{self._pg_name(name)}"')
                else:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self._pg_name(name)}" WITH (FORCE)')

    def env(self) -> dict[str, str]:
        """Every setting the processes read, explicit: no default port, database or queue is shared."""
        env = {
            "ENVIRONMENT": "development",
            "SYNC_TENANT": TENANT,
            "AMQP_URL": AMQP_URL,
            "AMQP_PREFIX": self.prefix,
            "GRAPH_TENANT_ID": SIM_TENANT_ID,
            "GRAPH_CLIENT_ID": SIM_CLIENT_ID,
            "GRAPH_CLIENT_SECRET": SIM_CLIENT_SECRET,
            "GRAPH_BASE_URL": self.graph_base,
            "GRAPH_AUTHORITY_HOST": self.sim_root,
            "GRAPH_CA_BUNDLE": str(self.ca_path),
            "GRAPH_SIM_HOST": "127.0.0.1",
            "GRAPH_SIM_PORT": str(self.sim_port),
            "GRAPH_SIM_CA_PATH": str(self.ca_path),
            "ERP_DATABASE_URL": self.db_url("erp"),
            "ERP_API_TOKEN": ERP_TOKEN,
            "ERP_CONNECTOR_HOST": "127.0.0.1",
            "ERP_CONNECTOR_PORT": str(self.erp_port),
            "ERP_CONNECTOR_URL": self.erp_url,
            "WEBHOOK_DATABASE_URL": self.db_url("webhook"),
            "WEBHOOK_HOST": "127.0.0.1",
            "WEBHOOK_PORT": str(self.webhook_port),
            "WEBHOOK_PUBLIC_URL": self.webhook_url,
            "GRAPH_WEBHOOK_URL": self.webhook_url,
            "SYNC_DATABASE_URL": self.db_url("sync"),
            "SYNC_CORE_HOST": "127.0.0.1",
            "SYNC_CORE_PORT": str(self.sync_port),
            "SYNC_CORE_URL": self.sync_url,
            "OPS_API_TOKEN": OPS_TOKEN,
            "OTEL_EXPORTER_OTLP_ENDPOINT": "",
        }
        env.update(self.env_overrides)
        return env

    def common_settings(self) -> CommonSettings:
        return CommonSettings(amqp_url=AMQP_URL, amqp_prefix=self.prefix, tenant=TENANT)  # type: ignore[arg-type]

    def graph_settings(self) -> GraphSettings:
        return GraphSettings(
            graph_tenant_id=SIM_TENANT_ID,
            graph_client_id=SIM_CLIENT_ID,
            graph_client_secret=SIM_CLIENT_SECRET,  # type: ignore[arg-type]
            graph_base_url=self.graph_base,
            graph_authority_host=self.sim_root,
            graph_ca_bundle=str(self.ca_path),
        )

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_path))

    # Life cycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Broker check, then simulator, erp-connector, sync-core, graph-webhook, each waited for."""
        ensure_rabbitmq(AMQP_URL)
        if self.dir.exists():
            shutil.rmtree(self.dir)  # a stack always starts from empty databases
        self.dir.mkdir(parents=True)
        if DATABASE_URL:
            self._pg_databases(create=True)
        # devstack's Supervisor writes `<LOG_DIR>/<name>.log`: point it at this stack's folder.
        self._old_log_dir = processes.LOG_DIR
        processes.LOG_DIR = self.dir / "logs"
        env = self.env()
        try:
            self.sup.start("graph-sim", "graph_sim", env)
            for _ in range(400):
                self.sup.check_alive()
                if self.ca_path.exists():
                    break
                time.sleep(0.05)
            self.sup.wait_ready("graph-sim", f"{self.sim_root}/_sim/stats", verify=str(self.ca_path))
            self._start_service("erp-connector", "erp_connector", f"{self.erp_url}/readyz", env)
            # sync-core and graph-webhook only need the ERP and the broker: they start side by side.
            later = [
                ("sync-core", "sync_core", f"{self.sync_url}/readyz"),
                ("graph-webhook", "graph_webhook", f"{self.webhook_url}/readyz"),
            ]
            for name, module, _ in later:
                self._start_service(name, module, None, env)
            for name, _, url in later:
                if name not in self.without:
                    self.sup.wait_ready(name, url, timeout=90)
        except BaseException:
            self.stop()
            raise

    def _start_service(self, name: str, module: str, ready_url: str | None, env: dict[str, str]) -> None:
        """Start one service (unless left out) and, given its readiness URL, wait for it."""
        if name in self.without:
            return
        self.sup.start(name, module, env)
        if self.rss is not None:
            self.rss.watch(name, self.sup.procs[name].pid)
        if ready_url is not None:
            self.sup.wait_ready(name, ready_url, timeout=90)

    def pid(self, name: str) -> int:
        return self.sup.procs[name].pid

    def cpu_meter(self) -> CpuMeter:
        """CPU of the simulator, the running services, the broker and this process."""
        pids = {name: proc.pid for name, proc in self.sup.procs.items()}
        broker = broker_pid()
        if broker is not None:
            pids["rabbitmq"] = broker
        pids["bench-client"] = os.getpid()
        groups: dict[str, Callable[[], list[psutil.Process]]] = {
            name: partial(_children, pid) for name, pid in pids.items() if name in SERVICES
        }
        if DATABASE_URL:
            groups["postgresql"] = postgres_processes
        return CpuMeter(pids, groups)

    def stop_service(self, name: str) -> None:
        """Stop one service (SIGTERM, then SIGKILL) and forget it; the others keep running."""
        proc = self.sup.procs.pop(name, None)
        if proc is None:
            return
        if self.rss is not None:
            self.rss.sample()
            self.rss.forget(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(15)
        except Exception:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait(5)

    def start_service(self, name: str) -> None:
        module = name.replace("-", "_")
        url = {"erp-connector": self.erp_url, "sync-core": self.sync_url, "graph-webhook": self.webhook_url}[name]
        processes.LOG_DIR = self.dir / "logs"
        self._start_service(name, module, f"{url}/readyz", self.env())

    def stop(self) -> None:
        if self.rss is not None:
            self.rss.sample()
            for name in SERVICES:
                self.rss.forget(name)
        self.sup.stop()
        if self._old_log_dir is not None:
            processes.LOG_DIR = self._old_log_dir
        with contextlib.suppress(Exception):
            delete_broker_objects(self.prefix)
        if DATABASE_URL:
            with contextlib.suppress(Exception):
                self._pg_databases(create=False)

    # Clients --------------------------------------------------------------------------------------

    def sim(self, timeout: float = 60.0) -> httpx.AsyncClient:
        """The simulator's `/_sim` control API and Graph URLs (no token)."""
        return httpx.AsyncClient(base_url=self.sim_root, verify=self.ssl_context(), trust_env=False, timeout=timeout)

    def erp(self, timeout: float = 60.0) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"{self.erp_url}/api/v1",
            headers={"Authorization": f"Bearer {ERP_TOKEN}"},
            trust_env=False,
            timeout=timeout,
        )

    def ops(self, timeout: float = 60.0) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"{self.sync_url}/api/v1/ops",
            headers={"Authorization": f"Bearer {OPS_TOKEN}"},
            trust_env=False,
            timeout=timeout,
        )

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.dir / "logs" / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def running(run_dir: Path, name: str, rss: RssSampler | None = None, **kwargs: Any) -> Iterator[Stack]:
    stack = Stack(run_dir, name, rss, **kwargs)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def delete_broker_objects(prefix: str) -> None:
    """Delete the queues and the exchange of one AMQP prefix (what the stack's services declared)."""
    import asyncio

    async def run() -> None:
        conn = await aio_pika.connect(AMQP_URL)
        try:
            channel = await conn.channel()
            topo = topology_of(CommonSettings(amqp_prefix=prefix))
            for name in topo.all_queue_names():
                await channel.queue_delete(name)
            await channel.exchange_delete(topo.exchange)
        finally:
            await conn.close()

    asyncio.run(run())
