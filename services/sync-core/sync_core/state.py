"""Reads and writes of sync-core's own state: links, delta cursors, inbox, journal, user state."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.envelope import Kind, collection_of
from shared.telemetry import current_trace_id
from sync_core.models import DeltaCursor, InboxEntry, JournalEntry, Link, UserState

log = logging.getLogger(__name__)


def now_utc() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes: they were stored as UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class State:
    """One façade over sync-core's tables; every method is its own short transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    # Links -----------------------------------------------------------------------------------

    async def link_by_graph_id(self, user: str, kind: Kind, graph_id: str) -> Link | None:
        async with self.sessions() as s:
            rows = await s.exec(
                select(Link).where(Link.user == user, Link.collection == collection_of(kind), Link.graph_id == graph_id)
            )
            return rows.first()

    async def link_by_erp_id(self, user: str, kind: Kind, erp_id: str) -> Link | None:
        async with self.sessions() as s:
            rows = await s.exec(select(Link).where(Link.user == user, Link.kind == kind.value, Link.erp_id == erp_id))
            return rows.first()

    async def links_of(self, user: str, kind: Kind | None = None) -> list[Link]:
        async with self.sessions() as s:
            query = select(Link).where(Link.user == user)
            if kind is not None:
                query = query.where(Link.kind == kind.value)
            rows = await s.exec(query)
            return list(rows.all())

    async def save_link(self, link: Link, journal: JournalEntry | None = None) -> Link:
        """Insert or update a link (by its unique keys) together with its journal line."""
        async with self.sessions() as s:
            existing = None
            if link.id is None:
                rows = await s.exec(
                    select(Link).where(Link.user == link.user, Link.kind == link.kind, Link.erp_id == link.erp_id)
                )
                existing = rows.first()
            if existing is not None:
                for field in (
                    "graph_id",
                    "collection",
                    "fingerprint",
                    "graph_change_key",
                    "erp_version",
                    "graph_modified_at",
                    "erp_modified_at",
                    "synced_at",
                ):
                    setattr(existing, field, getattr(link, field))
                link = existing
            else:
                link = await s.merge(link)
            s.add(link)
            if journal is not None:
                s.add(journal)
            await s.commit()
            await s.refresh(link)
            return link

    async def drop_link(self, link: Link, journal: JournalEntry | None = None) -> None:
        async with self.sessions() as s:
            await s.exec(delete(Link).where(col(Link.id) == link.id))
            if journal is not None:
                s.add(journal)
            await s.commit()

    # Delta cursors -----------------------------------------------------------------------------

    async def cursor(self, user: str, collection: str) -> str | None:
        async with self.sessions() as s:
            rows = await s.exec(
                select(DeltaCursor).where(DeltaCursor.user == user, DeltaCursor.collection == collection)
            )
            row = rows.first()
            return row.delta_link if row else None

    async def set_cursor(self, user: str, collection: str, delta_link: str | None) -> None:
        async with self.sessions() as s:
            rows = await s.exec(
                select(DeltaCursor).where(DeltaCursor.user == user, DeltaCursor.collection == collection)
            )
            row = rows.first()
            if delta_link is None:
                if row is not None:
                    await s.delete(row)
            elif row is None:
                s.add(DeltaCursor(user=user, collection=collection, delta_link=delta_link, updated_at=now_utc()))
            else:
                row.delta_link = delta_link
                row.updated_at = now_utc()
                s.add(row)
            await s.commit()

    # Inbox ---------------------------------------------------------------------------------------

    async def seen(self, message_id: str) -> bool:
        async with self.sessions() as s:
            return await s.get(InboxEntry, message_id) is not None

    async def mark_seen(self, message_id: str) -> None:
        async with self.sessions() as s:
            s.add(InboxEntry(message_id=message_id, processed_at=now_utc()))
            try:
                await s.commit()
            except IntegrityError:
                # Another replica processed it meanwhile: nothing to record twice.
                await s.rollback()

    async def prune_inbox(self, older_than: timedelta = timedelta(days=7)) -> None:
        async with self.sessions() as s:
            await s.exec(delete(InboxEntry).where(col(InboxEntry.processed_at) < now_utc() - older_than))
            await s.commit()

    # Journal -------------------------------------------------------------------------------------

    async def journal(self, entry: JournalEntry) -> None:
        async with self.sessions() as s:
            s.add(entry)
            await s.commit()

    # User state ----------------------------------------------------------------------------------

    async def user_state(self, user: str) -> UserState | None:
        async with self.sessions() as s:
            return await s.get(UserState, user)

    async def update_user_state(self, user: str, **fields: Any) -> None:
        async with self.sessions() as s:
            row = await s.get(UserState, user)
            if row is None:
                row = UserState(user=user)
            for key, value in fields.items():
                setattr(row, key, value)
            s.add(row)
            try:
                await s.commit()
            except IntegrityError:
                await s.rollback()
                await self.update_user_state(user, **fields)


def journal_entry(
    *,
    user: str,
    outcome: str,
    kind: Kind | str | None = None,
    direction: str | None = None,
    rule: str | None = None,
    reason: str | None = None,
    erp_id: str | None = None,
    graph_id: str | None = None,
    actor: str | None = None,
    details: dict[str, Any] | None = None,
) -> JournalEntry:
    """A journal row stamped with the current time and trace id."""
    return JournalEntry(
        at=now_utc(),
        user=user,
        kind=kind.value if isinstance(kind, Kind) else kind,
        direction=direction,
        outcome=outcome,
        rule=rule,
        reason=(reason or "")[:1000] or None,
        erp_id=erp_id,
        graph_id=graph_id,
        trace_id=current_trace_id(),
        actor=actor,
        details=details,
    )
