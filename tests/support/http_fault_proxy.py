"""An HTTP proxy with an outage switch, to put in front of erp-connector (what sync-core talks to):
while `down`, writes (POST, PUT, PATCH, DELETE) are answered 503. Some (seeded, `lost_ratio`) reach the
ERP and only their answer is lost (a timeout after the fact), so a retry with the same idempotency key
must not apply them twice; the others are refused before reaching it. Reads always pass."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson

from tests.support.servers import serve

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
INJECTED = "injected_unavailable"  # the error code of every injected 503 (found again in journal and DLQ)


class HttpFaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.down = False
        self.rng = random.Random(0)
        self.refused = 0  # writes answered 503 without reaching the ERP
        self.lost = 0  # writes applied by the ERP whose answer was replaced by a 503
        self.lost_by_method: Counter[str] = Counter()
        self.forwarded = 0
        self.outages = 0
        self.lost_ratio = 0.5
        self.can_lose: Callable[[str, str], bool] = lambda method, path: True
        self._client = httpx.AsyncClient(base_url=self.upstream, timeout=30)
        self._timer: asyncio.TimerHandle | None = None
        self._next: list[tuple[str, str, float, bool]] = []  # (method, path prefix, seconds held, lose)
        self.held = 0  # writes being held now (see `lose_next`)

    def outage(
        self,
        seconds: float,
        seed: int,
        lost_ratio: float = 0.5,
        can_lose: Callable[[str, str], bool] = lambda method, path: True,
    ) -> None:
        """Writes fail from now for `seconds`; `lost_ratio` of those `can_lose(method, path)` allows reach
        the ERP and lose their answer, the others are refused."""
        self.rng = random.Random(seed)
        self.lost_ratio = lost_ratio
        self.can_lose = can_lose
        self.down = True
        self.outages += 1
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(seconds, self.up)

    def lose_next(self, method: str, path_prefix: str, hold: float = 0.0) -> None:
        """The next `method` write under `path_prefix` is held `hold` seconds (a slow ERP), then
        applied by the ERP, and its answer lost (503). Other requests are not affected."""
        self._next.append((method, path_prefix, hold, True))

    def refuse_next(self, method: str, path_prefix: str) -> None:
        """The next `method` write under `path_prefix` is refused (503) without reaching the ERP."""
        self._next.append((method, path_prefix, 0.0, False))

    def up(self) -> None:
        self.down = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def aclose(self) -> None:
        self.up()
        await self._client.aclose()

    # The ASGI app ---------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = (await receive())["type"]
                if event == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif event == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        method = scope["method"]
        paths = _paths(method, scope["path"], body)
        rule = next((r for r in self._next if r[0] == method and any(p.startswith(r[1]) for p in paths)), None)
        if rule is not None:
            self._next.remove(rule)
            self.held += 1
            try:
                await asyncio.sleep(rule[2])
            finally:
                self.held -= 1
        failing = (self.down or rule is not None) and method in WRITES
        if rule is not None:
            lose = rule[3]
        else:
            lose = all(self.can_lose(method, p) for p in paths) and self.rng.random() < self.lost_ratio
        if failing and not lose:
            self.refused += 1
            await self._unavailable(send)
            return
        path = scope["path"] + (f"?{scope['query_string'].decode()}" if scope.get("query_string") else "")
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k not in (b"host", b"content-length")]
        resp = await self._client.request(method, path, content=body, headers=headers)
        self.forwarded += 1
        if failing:
            self.lost += 1
            self.lost_by_method[method] += 1
            await self._unavailable(send)
            return
        dropped = ("content-length", "transfer-encoding", "content-encoding")
        out = [(k.encode(), v.encode()) for k, v in resp.headers.items() if k.lower() not in dropped]
        await send({"type": "http.response.start", "status": resp.status_code, "headers": out})
        await send({"type": "http.response.body", "body": resp.content})

    async def _unavailable(self, send: Any) -> None:
        body = orjson.dumps({"detail": {"code": INJECTED, "message": "ERP write API down (test fault)"}})
        headers = [(b"content-type", b"application/json"), (b"retry-after", b"1")]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _paths(method: str, path: str, body: bytes) -> list[str]:
    """The writes a request stands for: itself, or each request of an ERP batch (`POST /api/v1/batch`
    holds creates): a fault aimed at `POST /api/v1/activities` hits a batch holding one too, and
    then the whole batch, as a real outage would."""
    if method != "POST" or path != "/api/v1/batch":
        return [path]
    try:
        return ["/api/v1/" + str(r.get("url", "")).lstrip("/") for r in orjson.loads(body)["requests"]] or [path]
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return [path]


@asynccontextmanager
async def http_fault_proxy(upstream: str) -> AsyncIterator[tuple[HttpFaultProxy, str]]:
    """The proxy served on loopback; yields it and its base URL."""
    proxy = HttpFaultProxy(upstream)
    try:
        async with serve(proxy) as url:
            yield proxy, url
    finally:
        await proxy.aclose()
