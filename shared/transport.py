"""An httpx transport that keeps httpcore's connection pools small (ADR 0029).

httpcore 1.0 re-examines its whole pool each time a request starts or ends
(`AsyncConnectionPool._assign_requests_to_connections`): every connection's socket is polled, every
idle connection counts all the others, and every queued request scans every connection. The work per
request grows with the square of the pool, and with the queue times the pool. Under load (a backlog,
a slow peer) a pool of 64 connections spent more CPU there than on the requests themselves.

`SpreadTransport` holds several small pools and gives each request to the one with the fewest
requests in flight, so each pool's bookkeeping stays a few connections long. Requests beyond the
connection limit wait here, on a semaphore, not in httpcore's queue; the wait honours httpx's pool
timeout. Everything else (TLS, HTTP/1.1, keep-alive, OpenTelemetry's httpx instrumentation, which
wraps `AsyncHTTPTransport`) is the stock transport's.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

POOL_SIZE = 8  # connections per httpcore pool: its per-request bookkeeping is quadratic in this


class _Released(httpx.AsyncByteStream):
    """A response body that frees its slot when closed (the connection is busy until then)."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._free()

    def _free(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def __del__(self) -> None:  # a response dropped unclosed must not hold its slot for ever
        with contextlib.suppress(Exception):
            self._free()


class SpreadTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        *,
        limits: httpx.Limits,
        verify: ssl.SSLContext | str | bool = True,
        trust_env: bool = True,
        pool_size: int = POOL_SIZE,
    ) -> None:
        total = limits.max_connections or 100
        pools = max(1, math.ceil(total / pool_size))
        per_pool = math.ceil(total / pools)
        keepalive = limits.max_keepalive_connections
        keep_per_pool = per_pool if keepalive is None else max(1, math.ceil(keepalive / pools))
        self.capacity = per_pool * pools
        self._pools = [
            httpx.AsyncHTTPTransport(
                verify=verify,
                trust_env=trust_env,
                limits=httpx.Limits(
                    max_connections=per_pool,
                    max_keepalive_connections=min(per_pool, keep_per_pool),
                    keepalive_expiry=limits.keepalive_expiry,
                ),
            )
            for _ in range(pools)
        ]
        self.in_flight = [0] * pools
        self._slots = asyncio.Semaphore(self.capacity)
        self._next = 0

    def _pick(self) -> int:
        """The pool with the fewest requests in flight; ties go round, so idle connections spread."""
        n = len(self._pools)
        start = self._next = (self._next + 1) % n
        best = start
        for k in range(1, n):
            i = (start + k) % n
            if self.in_flight[i] < self.in_flight[best]:
                best = i
        return best

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._slots.locked():
            wait = (request.extensions.get("timeout") or {}).get("pool")
            try:
                async with asyncio.timeout(wait):
                    await self._slots.acquire()
            except TimeoutError as exc:
                raise httpx.PoolTimeout(f"no connection free within {wait} s", request=request) from exc
        else:
            await self._slots.acquire()  # a free slot: taken at once
        i = self._pick()
        self.in_flight[i] += 1

        def release() -> None:
            self.in_flight[i] -= 1
            self._slots.release()

        try:
            response = await self._pools[i].handle_async_request(request)
        except BaseException:
            release()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_Released(response.stream, release),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


def spread_client(
    *, limits: httpx.Limits, verify: ssl.SSLContext | str | bool = True, trust_env: bool = True, **client: Any
) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` on a `SpreadTransport`; `client` is the rest of AsyncClient's arguments."""
    transport = SpreadTransport(limits=limits, verify=verify, trust_env=trust_env)
    return httpx.AsyncClient(transport=transport, trust_env=trust_env, **client)
