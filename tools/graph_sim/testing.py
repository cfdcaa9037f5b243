"""Run the simulator over TLS in its own thread and event loop, for tests and demos.

    with SimServer() as sim:
        app = msal.ConfidentialClientApplication(sim.config.client_id, client_credential=...,
                                                 authority=sim.authority, instance_discovery=False,
                                                 http_client=sim.requests_session())
        httpx.get(f"{sim.base_url}/users", verify=sim.ca_path, ...)

The simulator never shares the caller's event loop, so synchronous msal calls and services running
in the test's loop cannot deadlock against it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import ssl
import tempfile
import threading
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import uvicorn

from graph_sim.app import create_app
from graph_sim.config import SimConfig
from graph_sim.simulator import Simulator
from graph_sim.tls import ensure_certificates

if TYPE_CHECKING:
    import requests
    from fastapi import FastAPI

T = TypeVar("T")


def default_tls_dir() -> Path:
    """A per-user cache so every SimServer reuses one CA (startup stays well under a second)."""
    return Path(tempfile.gettempdir()) / f"graph-sim-tls-{os.getuid()}"


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class SimServer:
    """The simulator under uvicorn with TLS, on a free port (or `port`), in a background thread."""

    def __init__(
        self, config: SimConfig | None = None, port: int = 0, host: str = "127.0.0.1", tls_dir: str | Path | None = None
    ) -> None:
        self.config = config or SimConfig()
        self.host = host
        self._port = port
        folder = Path(tls_dir) if tls_dir else default_tls_dir()
        self.tls = ensure_certificates(folder / "ca.pem", folder)
        self.app: FastAPI = create_app(self.config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    # addresses -----------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def root_url(self) -> str:
        return f"https://{self.host}:{self._port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1.0"

    @property
    def authority(self) -> str:
        return f"{self.root_url}/{self.config.tenant_id}"

    @property
    def ca_path(self) -> str:
        return str(self.tls.ca_path)

    @property
    def sim(self) -> Simulator:
        return self.app.state.sim  # type: ignore[no-any-return]

    # lifecycle -----------------------------------------------------------------------------------
    def start(self) -> SimServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        sock.listen(2048)
        sock.setblocking(False)
        self._sock = sock
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self._port,
            ssl_certfile=str(self.tls.cert_path),
            ssl_keyfile=str(self.tls.key_path),
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="httptools",
            loop="none",
            timeout_keep_alive=75,  # longer than the Graph client's keep-alive expiry (30 s)
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = _new_loop()
            self.loop = loop
            asyncio.set_event_loop(loop)
            try:
                assert self._server is not None
                task = loop.create_task(self._server.serve(sockets=[sock]))
                while not self._server.started and not task.done():
                    loop.run_until_complete(asyncio.sleep(0.005))
                started.set()
                loop.run_until_complete(task)
            except BaseException as exc:  # reported to start()
                failure.append(exc)
                started.set()
            finally:
                loop.run_until_complete(self._cleanup())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"graph-sim-{self._port}", daemon=True)
        self._thread.start()
        started.wait(10)
        if failure or not self._server.started:
            raise RuntimeError(f"graph simulator failed to start: {failure!r}")
        return self

    def stop(self) -> None:
        if self._server is not None:
            # keep-alive TLS clients (msal's requests sessions) would hold a graceful shutdown open
            self._server.should_exit = True
            self._server.force_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self._sock is not None:
            self._sock.close()

    async def _cleanup(self) -> None:
        """What the lifespan would do; uvicorn skips it on a forced exit."""
        await self.sim.subscriptions.stop()
        await self.sim.notifier.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # helpers -------------------------------------------------------------------------------------
    def call(self, fn: Callable[[], Coroutine[Any, Any, T]] | Awaitable[T], timeout: float = 30) -> T:
        """Run a coroutine in the simulator's loop and wait for its result (from any thread)."""
        assert self.loop is not None
        coro = fn() if callable(fn) else fn
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return future.result(timeout)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until pending notification deliveries are done."""
        return self.call(self.sim.notifier.flush(timeout), timeout + 1)

    def ssl_context(self) -> ssl.SSLContext:
        """An SSL context trusting this simulator's CA (for httpx: `verify=sim.ssl_context()`)."""
        return ssl.create_default_context(cafile=self.ca_path)

    def requests_session(self) -> requests.Session:
        """A requests.Session for msal's `http_client`: trusts this CA and ignores REQUESTS_CA_BUNDLE."""
        import requests

        session = requests.Session()
        session.trust_env = False
        session.verify = self.ca_path
        return session
