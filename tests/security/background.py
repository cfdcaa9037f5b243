"""Serve the services from a thread of their own, so synchronous tests (schemathesis) can call them.

Schemathesis' pytest integration runs Hypothesis synchronously and sends real HTTP requests; the
services are asyncio apps. They run here in a private event loop on a daemon thread, entered and
left by one task (async context managers are not moved between tasks).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import TypeVar

T = TypeVar("T")


@contextmanager
def in_background(factory: Callable[[], AbstractAsyncContextManager[T]], timeout: float = 90.0) -> Iterator[T]:
    """Enter `factory()` in a private loop on another thread; yield its value; leave it on exit."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="security-services", daemon=True)
    thread.start()
    entered: concurrent.futures.Future[T] = concurrent.futures.Future()
    stop = asyncio.Event()

    async def hold() -> None:
        try:
            async with factory() as value:
                entered.set_result(value)
                await stop.wait()
        except BaseException as exc:
            if not entered.done():
                entered.set_exception(exc)
            raise

    held = asyncio.run_coroutine_threadsafe(hold(), loop)
    try:
        yield entered.result(timeout)
    finally:
        loop.call_soon_threadsafe(stop.set)
        try:
            held.result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            loop.close()
