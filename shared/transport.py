"""httpx on aiohttp's connections (ADR 0057, which replaces ADR 0029's small httpcore pools).

Our HTTP clients (Graph, sync-core's ERP client, the simulator's notifications) keep httpx's API:
requests, responses, errors, timeouts, `respx` in tests. Underneath, `AiohttpTransport` sends each
request on an aiohttp connection pool instead of httpcore's. Measured on this machine, httpx on its
stock transport spent 0.7–1.0 ms of client CPU per request on loopback, on this transport 0.28 ms,
and the server's share fell too: aiohttp writes a small request's head and body in one send, httpcore
in two (docs/benchmarks.md, session 10).

What a caller may rely on, as with httpx's own transport:
- at most `max_connections` requests in flight; the others wait here, no longer than httpx's pool
  timeout (`httpx.PoolTimeout`); a request holds its slot until its response is closed;
- errors are httpx's, and say whether the request can have reached the server. Only a failure to
  connect (`ConnectError`, `ConnectTimeout`) or to get a slot (`PoolTimeout`) means it did not: the
  Graph client retries a POST only then (`_NOT_SENT`). A connection lost or timed out afterwards is a
  `RemoteProtocolError`, `ReadTimeout` or `ReadError`: the write may have happened. (`httpx-aiohttp`
  maps a lost connection to `ConnectTimeout`, which would make such a POST look unsent and be sent
  twice; that is why this transport is ours.)
- OpenTelemetry's client spans and trace propagation: while spans are recorded (something exports
  them, ADR 0053), `http_client` sends each request through the instrumentation's
  `AsyncOpenTelemetryTransport`, with the same redaction hook as the rest. While nothing records them,
  a request only carries the current context's `traceparent` (ADR 0062): the instrumentation built a
  span's attributes and recorded its own duration histogram for a span nobody kept, 7.5 % of
  sync-core's CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import httpx
from opentelemetry import propagate
from yarl import URL


def _httpx_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """The httpx error for an aiohttp one, keeping what it says about the request having been sent."""
    message = f"{type(exc).__name__}: {exc}".rstrip(": ")
    kind: type[httpx.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        kind = httpx.ConnectTimeout  # no connection was made: nothing was sent
    elif isinstance(exc, aiohttp.ClientConnectorError):
        kind = httpx.ConnectError  # refused, unreachable, TLS handshake failed: nothing was sent
    elif isinstance(exc, (aiohttp.SocketTimeoutError, aiohttp.ServerTimeoutError, TimeoutError)):
        kind = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.InvalidURL):
        kind = httpx.UnsupportedProtocol
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        kind = httpx.RemoteProtocolError
    else:
        kind = httpx.ReadError  # any other I/O failure once connected: the request may have been sent
    return kind(message, request=request)


class _Body(httpx.AsyncByteStream):
    """A response body read from aiohttp; closing it gives the connection back and frees the slot."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request, release: Callable[[], None]) -> None:
        self._response = response
        self._request = request
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _httpx_error(exc, self._request) from exc

    async def aclose(self) -> None:
        try:
            self._response.release()
        finally:
            self._free()

    def _free(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def __del__(self) -> None:  # a response dropped unclosed must not hold its slot for ever
        with contextlib.suppress(Exception):
            self._free()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An `httpx.AsyncBaseTransport` on one aiohttp `ClientSession` (made on first use, in the loop)."""

    def __init__(
        self, *, limits: httpx.Limits, verify: ssl.SSLContext | str | bool = True, trust_env: bool = True
    ) -> None:
        self.capacity = limits.max_connections or 100
        self._keepalive_s = limits.keepalive_expiry if limits.keepalive_expiry is not None else 5.0
        self._ssl = httpx.create_ssl_context(verify=verify, trust_env=trust_env)
        self._slots = asyncio.Semaphore(self.capacity)
        self.in_flight = 0
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[Any, ...], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # The slots above bound the connections; keep-alive ones are closed after the expiry.
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=self._keepalive_s, ssl=self._ssl)
            # httpx decodes bodies and sets every header itself (Accept-Encoding, User-Agent, Host…).
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding")
            )
        return self._session

    def _timeout(self, timeout: dict[str, float | None]) -> aiohttp.ClientTimeout:
        key = (timeout.get("connect"), timeout.get("read"))
        found = self._timeouts.get(key)
        if found is None:
            # `total` unbounded, as httpx's: connect and each read are bounded separately.
            found = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None, connect=key[0], sock_connect=key[0], sock_read=key[1]
            )
        return found

    async def _take_slot(self, request: httpx.Request, timeout: dict[str, float | None]) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # a free slot: taken at once
            return
        wait = timeout.get("pool")
        try:
            async with asyncio.timeout(wait):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise httpx.PoolTimeout(f"no connection free within {wait} s", request=request) from exc

    def _give_slot(self) -> None:
        self.in_flight -= 1
        self._slots.release()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout: dict[str, float | None] = request.extensions.get("timeout") or {}
        await self._take_slot(request, timeout)
        self.in_flight += 1
        try:
            try:
                body: bytes | None = request.content
            except httpx.RequestNotRead:
                body = await request.aread()
            response = await self._open().request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                timeout=self._timeout(timeout),
                server_hostname=request.extensions.get("sni_hostname"),
            )
        except BaseException as exc:
            self._give_slot()
            if isinstance(exc, aiohttp.ClientError | TimeoutError):
                raise _httpx_error(exc, request) from exc
            raise
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_Body(response, request, self._give_slot),
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class TracedTransport(httpx.AsyncBaseTransport):
    """`transport` with OpenTelemetry's client spans while spans are recorded, and with only the
    current context's `traceparent` while they are not (ADR 0062). `recorded` is asked per request."""

    def __init__(self, transport: AiohttpTransport, recorded: Callable[[], bool] | None = None) -> None:
        from opentelemetry.instrumentation.httpx import AsyncOpenTelemetryTransport

        from shared.telemetry import redact_span_async, spans_recorded

        self._transport = transport
        self._traced = AsyncOpenTelemetryTransport(transport, request_hook=redact_span_async)
        self._recorded = recorded or spans_recorded

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._recorded():
            return await self._traced.handle_async_request(request)
        propagate.inject(request.headers)
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self._transport.aclose()


def http_client(
    *, limits: httpx.Limits, verify: ssl.SSLContext | str | bool = True, trust_env: bool = True, **client: Any
) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` on an `AiohttpTransport`, traced like httpx's own transport (client spans,
    `traceparent` sent, e-mails redacted from span attributes; `TracedTransport`); `client`:
    AsyncClient's other arguments."""
    transport = TracedTransport(AiohttpTransport(limits=limits, verify=verify, trust_env=trust_env))
    return httpx.AsyncClient(transport=transport, trust_env=trust_env, **client)


def aiohttp_transport(client: httpx.AsyncClient) -> AiohttpTransport:
    """The `AiohttpTransport` under a client made by `http_client` (tests, diagnostics)."""
    transport: Any = client._transport
    inner = getattr(transport, "_transport", transport)
    assert isinstance(inner, AiohttpTransport), type(inner)
    return inner
