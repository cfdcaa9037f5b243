"""The whole system in one test: Graph simulator (own thread, TLS), erp-connector, graph-webhook
and sync-core served over real HTTP on loopback, on the real RabbitMQ and a real database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from erp_connector.app import create_app as create_erp_app
from erp_connector.settings import ErpConnectorSettings
from graph_sim.testing import SimServer
from graph_webhook.app import create_app as create_webhook_app
from graph_webhook.settings import GraphWebhookSettings
from sync_core.app import create_app as create_sync_app
from sync_core.settings import SyncCoreSettings

from shared.graph.client import GraphClient
from shared.settings import CommonSettings, GraphSettings
from tests.support.servers import free_port, serve

ERP_TOKEN = "test-erp-token"
OPS_TOKEN = "test-ops-token"
USER_EMAIL = "ana.silva@contoso.example"

REP01: dict[str, Any] = {
    "code": "REP01",
    "name": "Ana Silva",
    "email": USER_EMAIL,
    "sales_role": True,
    "active": True,
    "sync_enabled": True,
    "contacts_outlook_to_erp": True,
    "activities_outlook_to_erp": True,
    "activities_erp_to_outlook": True,
    "sync_meetings": True,
    "sync_tasks": True,
    "sync_calls": True,
    "sync_contacts": True,
    "contacts_two_way": False,
}
PARTNERS: list[dict[str, Any]] = [
    {"code": "ACME", "name": "Acme Corporation", "type": "customer", "domains": ["acme.example"]},
    {"code": "UMBRELLA", "name": "Umbrella Trading", "type": "prospect", "domains": ["umbrella.example"]},
    {"code": "VANDELAY", "name": "Vandelay Industries", "type": "supplier", "domains": ["vandelay.example"]},
]


async def eventually(probe: Callable[[], Awaitable[Any]], *, timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll `probe` until it returns something truthy; fail with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


@dataclass
class System:
    sim: SimServer
    erp_url: str
    webhook_url: str
    sync_url: str
    erp: httpx.AsyncClient
    graph: GraphClient
    graph_user_id: str
    extra: dict[str, Any] = field(default_factory=dict)

    async def sim_items(self, kind: str) -> list[dict[str, Any]]:
        """Live items of a kind in the user's simulated mailbox (events, contacts, tasks)."""
        async with httpx.AsyncClient(verify=self.sim.ssl_context()) as c:
            r = await c.get(f"{self.sim.root_url}/_sim/users/{self.graph_user_id}/{kind}", params={"deleted": "false"})
            r.raise_for_status()
            return list(r.json())

    async def erp_items(self, collection: str, **params: Any) -> list[dict[str, Any]]:
        r = await self.erp.get(f"/api/v1/{collection}", params={"limit": 1000, **params})
        r.raise_for_status()
        return list(r.json()["items"])

    async def caught_up(self) -> bool:
        """True once sync-core holds a delta cursor for each of the user's collections."""
        async with httpx.AsyncClient(base_url=self.sync_url, headers={"Authorization": f"Bearer {OPS_TOKEN}"}) as c:
            r = await c.get("/api/v1/ops/users/state")
            r.raise_for_status()
            held = {tuple(u["delta_collections"]) for u in r.json() if u["user"] == USER_EMAIL}
            return ("contact", "event", "todo") in held

    async def journal(self, **params: Any) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.sync_url, headers={"Authorization": f"Bearer {OPS_TOKEN}"}) as c:
            r = await c.get("/api/v1/ops/journal", params={"limit": 1000, **params})
            r.raise_for_status()
            return list(r.json())

    async def subscriptions(self) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(verify=self.sim.ssl_context()) as c:
            r = await c.get(f"{self.sim.root_url}/_sim/subscriptions")
            r.raise_for_status()
            body = r.json()
            return list(body if isinstance(body, list) else body.get("value", []))


def graph_settings(sim: SimServer) -> dict[str, Any]:
    return {
        "graph_tenant_id": sim.config.tenant_id,
        "graph_client_id": sim.config.client_id,
        "graph_client_secret": sim.config.client_secret,
        "graph_base_url": sim.base_url,
        "graph_authority_host": sim.root_url,
        "graph_ca_bundle": sim.ca_path,
    }


@asynccontextmanager
async def running_system(
    common: CommonSettings, database_url: str, tmp_path: Any, *, representative: dict[str, Any] | None = None
) -> AsyncIterator[System]:
    """Start everything, seed one representative and its mailbox, wait for its subscriptions."""
    base = common.model_dump()
    sqlite = database_url.startswith("sqlite")

    def db_url(name: str) -> str:
        return f"sqlite:///{tmp_path}/{name}.db" if sqlite else database_url

    async with AsyncExitStack() as stack:
        sim = stack.enter_context(SimServer())
        gs = graph_settings(sim)
        erp_settings = ErpConnectorSettings(**base, erp_database_url=db_url("erp"), erp_api_token=ERP_TOKEN)
        erp_url = await stack.enter_async_context(serve(create_erp_app(erp_settings)))
        erp = await stack.enter_async_context(
            httpx.AsyncClient(base_url=erp_url, headers={"Authorization": f"Bearer {ERP_TOKEN}"}, timeout=10)
        )
        rep = {**REP01, **(representative or {})}
        (await erp.post("/api/v1/representatives", json=rep)).raise_for_status()
        for partner in PARTNERS:
            (await erp.post("/api/v1/partners", json=partner)).raise_for_status()
        async with httpx.AsyncClient(verify=sim.ssl_context()) as c:
            r = await c.post(
                f"{sim.root_url}/_sim/users",
                json={"userPrincipalName": rep["email"], "mail": rep["email"], "displayName": rep["name"]},
            )
            r.raise_for_status()
            graph_user_id = str(r.json()["id"])
        sync_settings = SyncCoreSettings(
            **base,
            **gs,
            sync_database_url=db_url("sync"),
            erp_connector_url=erp_url,
            erp_api_token=ERP_TOKEN,
            settings_cache_s=0.0,
            ops_api_token=OPS_TOKEN,
        )
        sync_url = await stack.enter_async_context(serve(create_sync_app(sync_settings)))
        port = free_port()
        webhook_settings = GraphWebhookSettings(
            **base,
            **gs,
            webhook_database_url=db_url("webhook"),
            webhook_public_url=f"http://127.0.0.1:{port}",
            subscription_check_interval_s=0.5,
            erp_connector_url=erp_url,
            erp_api_token=ERP_TOKEN,
        )
        webhook_url = await stack.enter_async_context(serve(create_webhook_app(webhook_settings), port=port))
        graph = await stack.enter_async_context(GraphClient(GraphSettings(**gs)))
        system = System(sim, erp_url, webhook_url, sync_url, erp, graph, graph_user_id)
        await eventually(system.subscriptions, timeout=20)
        await eventually(system.caught_up, timeout=20)
        yield system
