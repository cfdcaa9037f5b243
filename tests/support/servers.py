"""Serve ASGI apps over real HTTP on loopback inside the test's event loop."""

from __future__ import annotations

import asyncio
import socket
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from shared.serving import KEEP_ALIVE_S

# Sockets bound ahead of time, by port: nobody else can take the port before `serve` uses it.
_reserved: dict[int, socket.socket] = {}
# A graceful stop longer than this is a hang worth naming (then the stop is forced).
STOP_S = 20.0


def free_port() -> int:
    """A port nothing listens on right now (it may be taken later: use `reserve_port` to serve on it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bind() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def reserve_port() -> int:
    """A port bound now and kept for a later `serve(app, port=...)`, for apps that must know their URL."""
    sock = _bind()
    port = int(sock.getsockname()[1])
    _reserved[port] = sock
    return port


@asynccontextmanager
async def serve(app: Any, port: int | None = None) -> AsyncIterator[str]:
    """Run `app` under uvicorn on 127.0.0.1 (lifespan on) and yield its base URL."""
    sock = _reserved.pop(port, None) if port else _bind()
    if sock is not None:
        port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port or 0, log_level="warning", lifespan="on", timeout_keep_alive=KEEP_ALIVE_S
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock] if sock is not None else None))
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
            raise RuntimeError("server exited during start-up")
        await asyncio.sleep(0.01)
    else:
        raise RuntimeError("server did not start in 5 s")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await _stopped(server, task, port)


def _stacks() -> str:
    """Where every task of the loop is waiting (its chain of awaits): what a slow stop waits on."""
    lines = []
    for t in asyncio.all_tasks():
        parts: list[str] = []
        step: Any = t.get_coro()
        while step is not None and len(parts) < 30:
            frame = (
                getattr(step, "cr_frame", None) or getattr(step, "gi_frame", None) or getattr(step, "ag_frame", None)
            )
            if frame is not None:
                parts.append(f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno} {frame.f_code.co_name}")
            step = (
                getattr(step, "cr_await", None)
                or getattr(step, "gi_yieldfrom", None)
                or getattr(step, "ag_await", None)
            )
        lines.append(f"  {t.get_name()}: {' -> '.join(parts)}")
    return "\n".join(lines)


async def _stopped(server: uvicorn.Server, task: asyncio.Task[None], port: int | None) -> None:
    """Wait for a graceful stop; one that takes over STOP_S is forced, with a warning naming what
    every task was waiting on (a slow machine, or a stop that hangs: the stacks tell which)."""
    try:
        await asyncio.wait_for(asyncio.shield(task), STOP_S)
        return
    except TimeoutError:
        stacks = _stacks()
    warnings.warn(
        f"server on port {port} did not stop within {STOP_S:.0f}s "
        f"(connections left: {len(server.server_state.connections)}, "
        f"tasks left: {len(server.server_state.tasks)}); forcing it. Tasks:\n{stacks}",
        RuntimeWarning,
        stacklevel=1,
    )
    server.force_exit = True
    try:
        await asyncio.wait_for(task, STOP_S)
    except TimeoutError:
        raise RuntimeError(f"server on port {port} did not stop even when forced; tasks:\n{stacks}") from None
