"""With several replicas, only one manages Graph subscriptions at a time: a lease row in the database."""

from __future__ import annotations

import asyncio
from typing import Any

from graph_webhook.app import MIGRATIONS, VERSION_TABLE
from graph_webhook.cache import SubscriptionCache
from graph_webhook.directory import Representative
from graph_webhook.lease import DbLease
from graph_webhook.settings import GraphWebhookSettings
from graph_webhook.subscriptions import SubscriptionManager
from shared import db
from shared.envelope import Envelope
from shared.graph import GraphClient
from shared.migrations import upgrade


class Users:
    def __init__(self) -> None:
        self.calls = 0

    async def representatives(self) -> list[Representative]:
        self.calls += 1
        return []


class NoBus:
    async def publish_many(self, envelopes: list[Envelope], *, timeout: float = 5.0) -> None:
        raise AssertionError("nothing to publish")


async def test_the_lease_has_one_holder_until_released_or_expired(database_url: str) -> None:
    upgrade(database_url, MIGRATIONS, VERSION_TABLE)
    engine = db.create_engine(database_url)
    try:
        a = DbLease(engine, "subscriptions", "replica-a", ttl_s=0.3)
        b = DbLease(engine, "subscriptions", "replica-b", ttl_s=0.3)
        assert await a.acquire()
        assert not await b.acquire()
        assert await a.acquire(), "the holder may extend it"
        await a.release()
        assert await b.acquire()
        assert not await a.acquire()
        await asyncio.sleep(0.4)
        assert await a.acquire(), "an expired lease (its holder died) can be taken"
    finally:
        await engine.dispose()


async def test_a_second_replica_skips_its_run_while_the_first_holds_the_lease(database_url: str, tmp_path: Any) -> None:
    settings = GraphWebhookSettings(webhook_database_url=database_url, graph_ca_bundle=None, lease_ttl_s=30)
    upgrade(database_url, MIGRATIONS, VERSION_TABLE)
    engine = db.create_engine(database_url)
    users = Users()
    try:
        async with GraphClient(settings) as graph:
            second = SubscriptionManager(
                settings, graph, users, engine, SubscriptionCache(engine), NoBus(), owner="replica-b"
            )
            holder = DbLease(engine, "subscriptions", "replica-a", ttl_s=30)
            assert await holder.acquire()
            report = await second.reconcile()
            assert report.skipped == "lease held by another replica"
            assert users.calls == 0, "nothing read, nothing changed"
            await holder.release()
            # With the lease free the run happens: nothing to do for an empty user list (and no Graph
            # here to list orphan subscriptions from, which is reported, not raised).
            report = await second.reconcile()
            assert report.skipped is None and users.calls == 1
            assert report.errors and "listing subscriptions failed" in report.errors[0]
    finally:
        await engine.dispose()
