"""A small asyncio TCP proxy to put between a service and a server (e.g. PostgreSQL) and cut the path
without touching the server: `cut()` closes every connection and refuses new ones (as a server that is
down or restarting), `blackhole()` holds every byte (as a network partition: open connections go silent, new ones are
accepted and never answered; TCP delivers what was held once the path is back), `restore()` forwards
again.

It runs on its own event loop in a thread: services connect to their database synchronously at start
(migrations), which would block a proxy served by the test's own loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode = "forward"  # forward, refuse, blackhole
        self.port = 0
        self.accepted = 0
        self.refused = 0
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._open = asyncio.Event()
        self._open.set()
        self.loop: asyncio.AbstractEventLoop | None = None  # the thread's loop, set by `tcp_proxy`

    @property
    def host(self) -> str:
        return "127.0.0.1"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self._drop_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _switch(self, mode: str) -> None:
        def apply() -> None:
            self.mode = mode
            if mode == "forward":
                self._open.set()
            else:
                self._open.clear()
            if mode == "refuse":
                self._drop_all()

        if self.loop is None:
            apply()
            return
        done = threading.Event()

        def apply_and_tell() -> None:
            apply()
            done.set()

        self.loop.call_soon_threadsafe(apply_and_tell)
        done.wait(5)

    def cut(self) -> None:
        """Close every open connection and refuse (accept and close at once) new ones."""
        self._switch("refuse")

    def blackhole(self) -> None:
        """Open connections go silent and new ones are accepted but not answered, until `restore()`."""
        self._switch("blackhole")

    def restore(self) -> None:
        self._switch("forward")

    def _drop_all(self) -> None:
        for w in list(self._conns):
            with contextlib.suppress(Exception):
                w.transport.abort()
        self._conns.clear()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "refuse":
            self.refused += 1
            writer.transport.abort()
            return
        self.accepted += 1
        self._conns.add(writer)
        await self._open.wait()  # partitioned: the client's connect "succeeds" but nothing answers
        if self.mode == "refuse":
            self._conns.discard(writer)
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            self._conns.discard(writer)
            return
        self._conns.add(up_writer)
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in pumps:
                t.cancel()
                self._tasks.discard(t)
            for w in (writer, up_writer):
                self._conns.discard(w)
                with contextlib.suppress(Exception):
                    w.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                return
            await self._open.wait()  # partitioned: held, as TCP would retransmit it later
            if self.mode == "refuse":
                return
            writer.write(data)
            await writer.drain()


@contextmanager
def tcp_proxy(target_host: str, target_port: int) -> Iterator[TcpProxy]:
    """A proxy to `target_host:target_port` served from its own thread; `cut()`, `blackhole()` and
    `restore()` may be called from any thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="tcp-proxy", daemon=True)
    thread.start()
    proxy = asyncio.run_coroutine_threadsafe(_started(target_host, target_port), loop).result(10)
    proxy.loop = loop
    try:
        yield proxy
    finally:
        asyncio.run_coroutine_threadsafe(proxy.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def _started(target_host: str, target_port: int) -> TcpProxy:
    proxy = TcpProxy(target_host, target_port)
    await proxy.start()
    return proxy
