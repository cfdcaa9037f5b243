"""`shared.transport` (ADR 0057): httpx on aiohttp's connections, against real servers on loopback.

The limit on requests in flight holds and the others wait and complete; the pool timeout holds;
every slot comes back (after a body is read, after an error); and the errors say whether a request
can have reached the server — what the Graph client's retries of writes depend on."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared.graph.client import _NOT_SENT
from shared.telemetry import RecordWhenExported, RedactingSpanProcessor, SpanProcessors, spans_recorded
from shared.transport import AiohttpTransport, TracedTransport, aiohttp_transport, http_client
from tests.support.servers import free_port, serve


class Slow:
    """An app whose `/slow` answers after a while and counts how many it serves at once."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.release = asyncio.Event()
        self.bodies: list[bytes] = []

    async def slow(self, request: Request) -> JSONResponse:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.wait_for(self.release.wait(), 0.05)
        except TimeoutError:
            pass
        finally:
            self.now -= 1
        return JSONResponse({"ok": True, "pad": "x" * 20_000})

    async def held(self, request: Request) -> JSONResponse:
        await self.release.wait()
        return JSONResponse({"ok": True})

    async def echo(self, request: Request) -> JSONResponse:
        self.bodies.append(await request.body())
        return JSONResponse(
            {"method": request.method, "query": str(request.url.query), "headers": dict(request.headers)},
            status_code=201,
            headers={"X-Answer": "yes"},
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/slow", self.slow),
                Route("/held", self.held),
                Route("/echo/{rest:path}", self.echo, methods=["GET", "POST", "PATCH", "DELETE"]),
            ]
        )


async def test_a_request_and_its_answer_go_through_whole() -> None:
    server = Slow()
    limits = httpx.Limits(max_connections=4)
    async with serve(server.app()) as base, http_client(base_url=base, limits=limits, timeout=5) as client:
        response = await client.post(
            "/echo/a%2Fb", params={"$filter": "x eq 'é'"}, json={"n": 1}, headers={"If-Match": 'W/"1"'}
        )
        assert response.status_code == 201 and response.headers["x-answer"] == "yes"
        seen = response.json()
        assert seen["method"] == "POST" and seen["headers"]["if-match"] == 'W/"1"'
        assert seen["headers"]["content-type"] == "application/json"
        assert seen["query"] == "%24filter=x+eq+%27%C3%A9%27"  # as httpx encoded it, not re-encoded
        assert server.bodies == [b'{"n":1}']
        assert (await client.delete("/echo/x")).status_code == 201
        assert aiohttp_transport(client).in_flight == 0


async def test_requests_beyond_the_limit_wait_and_all_complete() -> None:
    server = Slow()
    limits = httpx.Limits(max_connections=12, max_keepalive_connections=4)
    async with serve(server.app()) as base, http_client(base_url=base, limits=limits, timeout=10) as client:
        transport = aiohttp_transport(client)
        answers = await asyncio.gather(*[client.get("/slow") for _ in range(60)])
        assert all(r.status_code == 200 and r.json()["ok"] for r in answers)
        assert 1 < server.most <= 12  # concurrent, never more than the limit at once
        assert transport.in_flight == 0  # every slot back once the bodies were read


async def test_a_request_waits_no_longer_than_the_pool_timeout() -> None:
    server = Slow()
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    timeout = httpx.Timeout(10, pool=0.1)
    async with serve(server.app()) as base, http_client(base_url=base, limits=limits, timeout=timeout) as client:
        held = asyncio.create_task(client.get("/held"))
        await asyncio.sleep(0.2)
        with pytest.raises(httpx.PoolTimeout):
            await client.get("/slow")
        server.release.set()
        assert (await held).status_code == 200
        assert (await client.get("/slow")).status_code == 200  # the slot came back


async def test_a_failed_connection_is_not_sent_and_gives_its_slot_back() -> None:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with http_client(base_url=f"http://127.0.0.1:{free_port()}", limits=limits, timeout=2) as client:
        for _ in range(3):  # with one slot, a leaked one would make the second wait for ever
            with pytest.raises(httpx.ConnectError) as caught:
                await client.post("/nothing-listens", json={})
            assert isinstance(caught.value, _NOT_SENT)
        assert aiohttp_transport(client).in_flight == 0


@asynccontextmanager
async def raw_server(answer: bytes | None, *, delay: float = 0.0) -> AsyncIterator[str]:
    """A TCP server that reads a request, then after `delay` writes `answer` (None: says nothing)
    and closes the connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(delay)
        if answer is not None:
            writer.write(answer)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, family=socket.AF_INET)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


async def test_a_connection_lost_after_the_request_may_have_been_sent() -> None:
    """A POST whose connection drops before the answer may have been applied: not `_NOT_SENT`, so the
    Graph client does not send it again (a duplicate create)."""
    limits = httpx.Limits(max_connections=2)
    async with raw_server(None) as base, http_client(base_url=base, limits=limits, timeout=5) as client:
        with pytest.raises(httpx.TransportError) as caught:
            await client.post("/events", json={"subject": "x"})
        assert not isinstance(caught.value, _NOT_SENT)
        assert aiohttp_transport(client).in_flight == 0


async def test_an_answer_too_slow_is_a_read_timeout() -> None:
    limits = httpx.Limits(max_connections=2)
    late = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    timeout = httpx.Timeout(5, read=0.2)
    async with raw_server(late, delay=2) as base, http_client(base_url=base, limits=limits, timeout=timeout) as client:
        with pytest.raises(httpx.ReadTimeout) as caught:
            await client.post("/events", json={})
        assert not isinstance(caught.value, _NOT_SENT)
        assert aiohttp_transport(client).in_flight == 0


async def test_a_streamed_response_holds_its_slot_until_closed() -> None:
    server = Slow()
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    async with serve(server.app()) as base, http_client(base_url=base, limits=limits, timeout=5) as client:
        transport = aiohttp_transport(client)
        async with client.stream("GET", "/slow") as response:
            assert transport.in_flight == 1
            assert len(await response.aread()) > 20_000
        assert transport.in_flight == 0


def _traceparent(answer: httpx.Response) -> tuple[int, int]:
    _, trace_id, span_id, _ = answer.json()["headers"]["traceparent"].split("-")
    return int(trace_id, 16), int(span_id, 16)


async def test_client_spans_only_while_spans_are_recorded_and_the_trace_goes_on_either_way(
    span_exporter: InMemorySpanExporter,
) -> None:
    """ADR 0062: recorded, a request gets OpenTelemetry's client span and sends its id; not recorded,
    no span is built for nobody and the request sends the caller's own context (same trace)."""
    server = Slow()
    limits = httpx.Limits(max_connections=2)
    recorded = True
    transport = TracedTransport(AiohttpTransport(limits=limits), recorded=lambda: recorded)
    tracer = trace.get_tracer("test")
    async with serve(server.app()) as base, httpx.AsyncClient(transport=transport, base_url=base, timeout=5) as client:
        with tracer.start_as_current_span("caller") as caller:
            ctx = caller.get_span_context()
            traced = await client.get("/echo/traced")
            recorded = False
            plain = await client.get("/echo/plain")
    spans = [s for s in span_exporter.get_finished_spans() if s.kind is SpanKind.CLIENT and s.parent is not None]
    [client_span] = [s for s in spans if s.parent.span_id == ctx.span_id]  # type: ignore[union-attr]
    attributes = client_span.attributes or {}
    assert "/echo/traced" in str(attributes.get("url.full") or attributes.get("http.url"))
    assert _traceparent(traced) == (ctx.trace_id, client_span.context.span_id)  # type: ignore[union-attr]
    assert _traceparent(plain) == (ctx.trace_id, ctx.span_id)


def test_spans_recorded_follows_what_exports_them() -> None:
    """ADR 0053/0062: a provider of ours records once something exports; another SDK provider always;
    the API's no-op provider never."""
    processors = SpanProcessors()
    ours = TracerProvider(sampler=RecordWhenExported(processors), active_span_processor=processors)
    ours.add_span_processor(RedactingSpanProcessor())
    assert not spans_recorded(ours)
    ours.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    assert spans_recorded(ours)
    assert spans_recorded(TracerProvider())
    assert not spans_recorded(trace.NoOpTracerProvider())
