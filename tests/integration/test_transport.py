"""`shared.transport.SpreadTransport` (ADR 0029) against a real uvicorn server on loopback: requests
spread over small httpcore pools, never more in flight than the connection limit, the rest wait and
complete, the pool timeout holds, and every slot comes back (after a body is read, after an error)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared.transport import SpreadTransport, spread_client
from tests.support.servers import free_port, serve


class Slow:
    """An app whose `/slow` answers after a while and counts how many it serves at once."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.release = asyncio.Event()

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

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/slow", self.slow), Route("/held", self.held)])


def spread_of(client: httpx.AsyncClient) -> SpreadTransport:
    transport = client._transport
    assert isinstance(transport, SpreadTransport)
    return transport


async def test_requests_beyond_the_limit_wait_and_all_complete_spread_over_small_pools() -> None:
    server = Slow()
    limits = httpx.Limits(max_connections=12, max_keepalive_connections=4)
    async with serve(server.app()) as base, spread_client(base_url=base, limits=limits, timeout=10) as client:
        transport = spread_of(client)
        assert transport.capacity == 12 and len(transport.in_flight) == 2  # two pools of 6 (8 at most each)
        answers = await asyncio.gather(*[client.get("/slow") for _ in range(60)])
        assert all(r.status_code == 200 and r.json()["ok"] for r in answers)
        assert 6 < server.most <= 12  # both pools used, never more than the limit at once
        assert transport.in_flight == [0, 0]  # every slot back once the bodies were read


async def test_a_request_waits_no_longer_than_the_pool_timeout() -> None:
    server = Slow()
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    timeout = httpx.Timeout(10, pool=0.1)
    async with serve(server.app()) as base, spread_client(base_url=base, limits=limits, timeout=timeout) as client:
        held = asyncio.create_task(client.get("/held"))
        await asyncio.sleep(0.2)
        with pytest.raises(httpx.PoolTimeout):
            await client.get("/slow")
        server.release.set()
        assert (await held).status_code == 200
        assert (await client.get("/slow")).status_code == 200  # the slot came back


async def test_a_failed_request_gives_its_slot_back() -> None:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with spread_client(base_url=f"http://127.0.0.1:{free_port()}", limits=limits, timeout=2) as client:
        for _ in range(3):  # with one slot, a leaked one would make the second wait for ever
            with pytest.raises(httpx.ConnectError):
                await client.get("/nothing-listens")
        assert spread_of(client).in_flight == [0]


async def test_a_streamed_response_holds_its_slot_until_closed() -> None:
    server = Slow()
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    async with serve(server.app()) as base, spread_client(base_url=base, limits=limits, timeout=5) as client:
        transport = spread_of(client)
        async with client.stream("GET", "/slow") as response:
            assert sum(transport.in_flight) == 1
            assert len(await response.aread()) > 20_000
        assert sum(transport.in_flight) == 0
