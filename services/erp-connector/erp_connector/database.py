"""The connector's database: engine, sessions, and one rule for writes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db import create_engine, is_sqlite, ping, session_factory


class Database:
    """Engine and sessions of one database URL (SQLite or PostgreSQL)."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size)
        self.sessions = session_factory(self.engine)
        self.sqlite = is_sqlite(url)
        # SQLite has one writer per file; a transaction that read first and then writes fails at
        # once (SQLITE_BUSY_SNAPSHOT) instead of waiting, so this process serialises its writers.
        self._sqlite_writer = asyncio.Lock()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A transaction that commits when the block ends and rolls back if it raises."""
        if self.sqlite:
            async with self._sqlite_writer, self.sessions() as session, session.begin():
                yield session
        else:
            async with self.sessions() as session, session.begin():
                yield session

    async def ping(self) -> None:
        await ping(self.engine)

    async def dispose(self) -> None:
        await self.engine.dispose()
