"""Helpers of the graph-webhook tests: settings against the simulator, a bus collector, the ERP's API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from graph_sim.testing import SimServer
from graph_webhook.settings import GraphWebhookSettings
from shared.bus import Bus
from shared.envelope import Envelope, MessageType
from shared.settings import CommonSettings
from tests.support.servers import reserve_port


def webhook_settings_for(
    common: CommonSettings, server: SimServer, database_url: str, **overrides: Any
) -> GraphWebhookSettings:
    port = reserve_port()
    values: dict[str, Any] = {
        **common.model_dump(),
        "graph_base_url": server.base_url,
        "graph_authority_host": server.root_url,
        "graph_ca_bundle": server.ca_path,
        "graph_tenant_id": server.config.tenant_id,
        "graph_client_id": server.config.client_id,
        "graph_client_secret": server.config.client_secret,
        "webhook_database_url": database_url,
        "webhook_public_url": f"http://127.0.0.1:{port}",
        "webhook_port": port,
        "subscription_check_interval_s": 0.2,
        "last_notification_flush_s": 3600,
        "broker_retry_s": 0.2,
    }
    values.update(overrides)
    return GraphWebhookSettings(**values)


class Collector:
    """Every message that reaches sync-core's queues, as sync-core would receive it."""

    def __init__(self, settings: CommonSettings) -> None:
        self.bus = Bus(settings, "test-collector")
        self.messages: list[Envelope] = []

    async def start(self) -> None:
        await self.bus.connect()

        async def keep(envelope: Envelope) -> None:
            self.messages.append(envelope)

        for shard in range(self.bus.settings.sync_shards):
            await self.bus.consume(self.bus.topology.sync_core_queue(shard), keep)

    def of(self, kind: MessageType) -> list[Envelope]:
        return [m for m in self.messages if m.type == kind]

    async def wait(self, kind: MessageType, count: int, timeout: float = 10.0) -> list[Envelope]:
        await eventually(lambda: len(self.of(kind)) >= count, timeout, f"{count} × {kind.value}")
        return self.of(kind)


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def eventually_async(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


class Erp:
    """The real erp-connector app, served over HTTP: representatives are created through its API."""

    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"})
        self.url = url

    async def add_representative(self, code: str, email: str, **switches: Any) -> dict[str, Any]:
        body = {"code": code, "name": code.title(), "email": email, "sales_role": True, "sync_enabled": True}
        body.update(switches)
        response = await self.http.post("/api/v1/representatives", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def update_representative(self, code: str, **fields: Any) -> dict[str, Any]:
        response = await self.http.put(f"/api/v1/representatives/{code}", json=fields)
        assert response.status_code == 200, response.text
        return dict(response.json())
