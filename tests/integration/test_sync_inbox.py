"""sync-core's inbox of processed message ids, on SQLite and PostgreSQL (ADR 0026): written behind in
batches, counted as seen while queued, written on shutdown, old ids pruned (R22: a duplicate has one
effect)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

from shared import db
from sync_core.db import migrate
from sync_core.models import InboxEntry
from sync_core.state import State, as_utc, now_utc


async def _stored(state: State) -> set[str]:
    return set(await _stored_at(state))


async def _stored_at(state: State) -> dict[str, datetime]:
    async with state.sessions() as s:
        rows = await s.exec(InboxEntry.__table__.select())  # type: ignore[attr-defined, call-overload]
        return {row.message_id: row.processed_at for row in rows.all()}


async def test_processed_ids_are_seen_at_once_and_written_in_batches_R22(database_url: str) -> None:
    migrate(database_url)
    engine = db.create_engine(database_url)
    state = State(db.session_factory(engine))
    try:
        ids = [uuid.uuid4().hex for _ in range(900)]  # more than one statement's 400
        for message_id in ids:
            await state.mark_seen(message_id)
        assert all([await state.seen(i) for i in ids[:3]])  # queued: already seen
        await state.mark_seen(ids[0])  # a duplicate queued twice is written once
        await asyncio.sleep(state.inbox_flush_s * 6)
        stored = await _stored_at(state)
        assert set(stored) == set(ids)
        # Stored as the column's type (a datetime read back as one, UTC), so that pruning compares
        # like with like.
        assert all(abs(as_utc(at) - now_utc()) < timedelta(minutes=1) for at in stored.values())  # type: ignore[operator]
        assert await state.seen(ids[-1]) and not await state.seen("never-processed")

        # An id another replica wrote meanwhile is not an error; a queued id is written on shutdown.
        late = uuid.uuid4().hex
        state.inbox_flush_s = 60
        await state.mark_seen(ids[1])
        await state.mark_seen(late)
        await state.aclose()
        assert late in await _stored(state)
    finally:
        await engine.dispose()


async def test_ids_older_than_a_week_are_pruned_R22(database_url: str) -> None:
    migrate(database_url)
    engine = db.create_engine(database_url)
    state = State(db.session_factory(engine))
    try:
        old = uuid.uuid4().hex
        async with state.sessions() as s:
            s.add(InboxEntry(message_id=old, processed_at=now_utc() - timedelta(days=8)))
            await s.commit()
        fresh = uuid.uuid4().hex
        await state.mark_seen(fresh)
        await state.aclose()
        assert await _stored(state) == {fresh}
    finally:
        await engine.dispose()
