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
from shared.bus import Bus
from shared.envelope import Envelope, Kind, MessageType
from shared.graph.client import GraphClient
from shared.settings import CommonSettings, GraphSettings
from sync_core.app import create_app as create_sync_app
from sync_core.settings import SyncCoreSettings
from tests.support.servers import reserve_port, serve

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
    common: CommonSettings | None = None
    sync_settings: SyncCoreSettings | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # Acting as the user in Outlook ----------------------------------------------------------------

    def user_path(self, graph_user_id: str | None = None) -> str:
        return f"/users/{graph_user_id or self.graph_user_id}"

    async def todo_list_id(self, graph_user_id: str | None = None) -> str:
        lists = await self.graph.get_json(f"{self.user_path(graph_user_id)}/todo/lists")
        return str(next(x["id"] for x in lists["value"] if x.get("wellknownListName") == "defaultList"))

    async def tasks_path(self, graph_user_id: str | None = None) -> str:
        return f"{self.user_path(graph_user_id)}/todo/lists/{await self.todo_list_id(graph_user_id)}/tasks"

    # The simulator's control API ------------------------------------------------------------------

    async def sim_control(self, method: str, path: str, json: Any = None) -> Any:
        async with httpx.AsyncClient(verify=self.sim.ssl_context()) as c:
            r = await c.request(method, f"{self.sim.root_url}/_sim/{path.lstrip('/')}", json=json)
            r.raise_for_status()
            return r.json()

    async def sim_item(self, kind: str, immutable_id: str, graph_user_id: str | None = None) -> dict[str, Any] | None:
        """One item's internal record (tombstones included), by immutable id."""
        async with httpx.AsyncClient(verify=self.sim.ssl_context()) as c:
            r = await c.get(f"{self.sim.root_url}/_sim/users/{graph_user_id or self.graph_user_id}/{kind}")
            r.raise_for_status()
            return next((i for i in r.json() if i["immutableId"] == immutable_id), None)

    async def delta_requests(self) -> int:
        """How many delta pages the simulator has served (all collections, all statuses)."""
        stats = await self.sim_control("GET", "stats")
        return sum(sum(by_status.values()) for path, by_status in stats["requests"].items() if "/delta" in path)

    # sync-core --------------------------------------------------------------------------------------

    async def user_state(self, user: str = USER_EMAIL) -> dict[str, Any] | None:
        async with httpx.AsyncClient(base_url=self.sync_url, headers={"Authorization": f"Bearer {OPS_TOKEN}"}) as c:
            r = await c.get("/api/v1/ops/users/state")
            r.raise_for_status()
            return next((u for u in r.json() if u["user"] == user), None)

    async def stop_sync_core(self) -> None:
        """Stop the sync-core replica `running_system` started (in-flight work drains first)."""
        await self.extra["sync_stack"].aclose()

    async def sync_db(self, statement: str, **params: Any) -> None:
        """Run one SQL statement on sync-core's database (to simulate lost state, e.g. links)."""
        from sqlalchemy import text

        from shared import db

        assert self.sync_settings is not None
        engine = db.create_engine(self.sync_settings.sync_database_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(statement), params)
        finally:
            await engine.dispose()

    async def forget_links(self) -> None:
        """Lose every link sync-core holds (R21: they must be re-found, never duplicated)."""
        await self.sync_db("DELETE FROM sync_link")

    async def publish(
        self, type: MessageType, *, kind: Kind | None = None, user: str = USER_EMAIL, **payload: Any
    ) -> None:
        """Publish one envelope on the system's bus, as an operator tool would (e.g. `sync.force`)."""
        assert self.common is not None
        bus = Bus(self.common, "tests")
        await bus.connect()
        try:
            await bus.publish(Envelope(type=type, tenant=self.common.tenant, user=user, kind=kind, payload=payload))
        finally:
            await bus.close()

    # ERP ---------------------------------------------------------------------------------------------

    async def erp_write(self, method: str, path: str, json: Any = None, *, expect: int | None = None) -> Any:
        r = await self.erp.request(method, f"/api/v1/{path.lstrip('/')}", json=json)
        if expect is not None:
            assert r.status_code == expect, r.text
        else:
            r.raise_for_status()
        return r.json() if r.content else None

    async def set_representative(self, code: str = "REP01", **changes: Any) -> dict[str, Any]:
        return dict(await self.erp_write("PUT", f"representatives/{code}", changes))

    async def add_user(self, rep: dict[str, Any]) -> str:
        """A second representative with its own mailbox; returns its Graph user id once sync-core caught up."""
        async with httpx.AsyncClient(verify=self.sim.ssl_context()) as c:
            r = await c.post(
                f"{self.sim.root_url}/_sim/users",
                json={"userPrincipalName": rep["email"], "mail": rep["email"], "displayName": rep["name"]},
            )
            r.raise_for_status()
            graph_user_id = str(r.json()["id"])
        await self.erp_write("POST", "representatives", {**REP01, **rep})

        await eventually(
            lambda: self.caught_up(rep["email"].lower(), watched_collections({**REP01, **rep})), timeout=20
        )
        return graph_user_id

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

    async def caught_up(self, user: str = USER_EMAIL, collections: tuple[str, ...] | None = None) -> bool:
        """True once sync-core holds a delta cursor for each of the user's watched collections."""
        wanted = self.extra.get("collections", ("contact", "event", "todo")) if collections is None else collections
        state = await self.user_state(user)
        held = tuple(state["delta_collections"]) if state else ()
        return set(wanted) <= set(held)

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


def watched_collections(rep: dict[str, Any]) -> tuple[str, ...]:
    """The collections graph-webhook subscribes to for a representative (so sync-core runs their delta)."""
    if not (rep.get("sync_enabled") and rep.get("active", True) and rep.get("sales_role")):
        return ()
    out = []
    if rep.get("sync_contacts", True) and (rep.get("contacts_outlook_to_erp", True) or rep.get("contacts_two_way")):
        out.append("contact")
    if rep.get("activities_outlook_to_erp", True) and rep.get("sync_meetings", True):
        out.append("event")
    if rep.get("activities_outlook_to_erp", True) and (rep.get("sync_tasks", True) or rep.get("sync_calls", True)):
        out.append("todo")
    return tuple(out)


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
    common: CommonSettings,
    database_url: str,
    tmp_path: Any,
    *,
    representative: dict[str, Any] | None = None,
    sync_overrides: dict[str, Any] | None = None,
) -> AsyncIterator[System]:
    """Start everything, seed one representative and its mailbox, wait for its subscriptions.

    `sync_overrides`: more sync-core settings (those not set here), e.g. the reconciliation schedule."""
    base = common.model_dump()
    sqlite = database_url.startswith("sqlite")

    def db_url(name: str) -> str:
        return f"sqlite:///{tmp_path}/{name}.db" if sqlite else database_url

    async with AsyncExitStack() as stack:
        sim = stack.enter_context(SimServer())
        gs = graph_settings(sim)
        erp_settings = ErpConnectorSettings(**base, erp_database_url=db_url("erp"), erp_api_token=ERP_TOKEN)
        # Its own stack, so a test can stop it and run `python -m erp_connector` on its port instead.
        erp_stack = await stack.enter_async_context(AsyncExitStack())
        erp_url = await erp_stack.enter_async_context(serve(create_erp_app(erp_settings)))
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
        # graph-webhook's port is chosen first: sync-core asks it for subscription status (console).
        port = reserve_port()
        sync_settings = SyncCoreSettings(
            **base,
            **gs,
            sync_database_url=db_url("sync"),
            erp_connector_url=erp_url,
            erp_api_token=ERP_TOKEN,
            settings_cache_s=0.0,
            ops_api_token=OPS_TOKEN,
            graph_webhook_url=f"http://127.0.0.1:{port}",
            **(sync_overrides or {}),
        )
        # Its own stack, so a test can stop this replica alone (failover to another, ADR 0002).
        sync_stack = await stack.enter_async_context(AsyncExitStack())
        sync_url = await sync_stack.enter_async_context(serve(create_sync_app(sync_settings)))
        webhook_settings = GraphWebhookSettings(
            **base,
            **gs,
            webhook_database_url=db_url("webhook"),
            webhook_public_url=f"http://127.0.0.1:{port}",
            subscription_check_interval_s=0.5,
            erp_connector_url=erp_url,
            erp_api_token=ERP_TOKEN,
            ops_api_token=OPS_TOKEN,
        )
        webhook_url = await stack.enter_async_context(serve(create_webhook_app(webhook_settings), port=port))
        graph = await stack.enter_async_context(GraphClient(GraphSettings(**gs)))
        system = System(
            sim, erp_url, webhook_url, sync_url, erp, graph, graph_user_id, common=common, sync_settings=sync_settings
        )
        system.extra["collections"] = watched_collections(rep)
        system.extra["sync_stack"] = sync_stack
        system.extra["erp_stack"] = erp_stack
        system.extra["erp_settings"] = erp_settings
        if system.extra["collections"]:
            await eventually(system.subscriptions, timeout=20)
        await eventually(system.caught_up, timeout=20)
        yield system
