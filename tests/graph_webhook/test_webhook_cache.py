"""The notification path's subscription cache: memory first, the database only for unknown ids, rate-limited."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlmodel.ext.asyncio.session import AsyncSession

from graph_webhook.app import MIGRATIONS, VERSION_TABLE
from graph_webhook.cache import SubscriptionCache
from graph_webhook.models import Subscription, utcnow
from shared import db
from shared.migrations import upgrade


async def test_known_ids_cost_no_query_and_forged_ids_cannot_flood_the_database(database_url: str) -> None:
    upgrade(database_url, MIGRATIONS, VERSION_TABLE)
    engine = db.create_engine(database_url)
    queries: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "webhook_subscription" in statement:
            queries.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        cache = SubscriptionCache(engine, lookups_per_s=20)
        await cache.load()
        async with AsyncSession(engine) as session:
            session.add(
                Subscription(
                    id="late",
                    user_email="ann@x.example",
                    graph_user_id="g",
                    kind="event",
                    resource="/users/g/events",
                    client_state="s",
                    expires_at=utcnow(),
                )
            )
            await session.commit()
        queries.clear()
        # Created by another replica after our load: found once in the database, then from memory.
        assert (await cache.get("late")) is not None
        assert (await cache.get("late")) is not None
        assert len(queries) == 1
        queries.clear()
        for i in range(100):
            assert await cache.get(f"forged-{i}") is None
        for i in range(10):
            assert await cache.get(f"forged-{i}") is None
        # A burst of 20, then 20 a second (this loop takes well under half a second).
        assert len(queries) <= 30, "forged ids are rate-limited, and an id just missed isn't looked up again"
    finally:
        await engine.dispose()
