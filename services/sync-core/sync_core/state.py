"""Reads and writes of sync-core's own state: links, delta cursors, inbox, journal, user state."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import TextClause, bindparam, delete, insert, text, update
from sqlalchemy import select as core_select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db import Transactions, all_rows
from shared.envelope import Kind, collection_of
from shared.metrics import count_journal_failure
from shared.telemetry import current_trace_id
from sync_core.models import DeltaCursor, InboxEntry, JournalEntry, Link, PendingCreate, UserState

log = logging.getLogger(__name__)


_LINK_FIELDS = (
    "graph_id",
    "collection",
    "fingerprint",
    "graph_change_key",
    "erp_version",
    "graph_modified_at",
    "erp_modified_at",
    "synced_at",
    "pending_write",
)


_JOURNAL_COLUMNS = [c.name for c in JournalEntry.__table__.columns if c.name != "id"]  # type: ignore[attr-defined]
# The statements of every link saved, built once on the tables (not the ORM entities, whose bulk
# INSERT/UPDATE/DELETE paths add their own bookkeeping): values go in as parameters (ADR 0054).
_JOURNAL_INSERT = insert(JournalEntry.__table__)  # type: ignore[attr-defined]
_LINKS = Link.__table__  # type: ignore[attr-defined]
_UPDATE_LINK = update(_LINKS).where(_LINKS.c.id == bindparam("link_id"))
_DROP_LINK = delete(_LINKS).where(_LINKS.c.id == bindparam("link_id"))
# Links read as rows from statements built once, then made `Link`s: half the CPU of the ORM's
# entity loading (measured: 123–151 against 230–273 µs per read, session included).
_LINK_OF_USER = _LINKS.c.user == bindparam("of_user")
_LINK_BY_ERP_ID = core_select(_LINKS).where(
    _LINK_OF_USER, _LINKS.c.kind == bindparam("of_kind"), _LINKS.c.erp_id == bindparam("of_erp_id")
)
_LINK_BY_GRAPH_ID = core_select(_LINKS).where(
    _LINK_OF_USER, _LINKS.c.collection == bindparam("of_collection"), _LINKS.c.graph_id == bindparam("of_graph_id")
)
_LINKS_BY_GRAPH_IDS = core_select(_LINKS).where(
    _LINK_OF_USER,
    _LINKS.c.collection == bindparam("of_collection"),
    _LINKS.c.graph_id.in_(bindparam("ids", expanding=True)),
)
_PENDING = PendingCreate.__table__  # type: ignore[attr-defined]
_DROP_PENDING = delete(_PENDING).where(_PENDING.c.id.in_(bindparam("ids", expanding=True)))
_PENDING_INSERT = insert(_PENDING).returning(_PENDING.c.id)
_PENDING_GRAPH_IDS = core_select(_PENDING.c.graph_id).where(
    _PENDING.c.user == bindparam("of_user"),
    _PENDING.c.collection == bindparam("of_collection"),
    _PENDING.c.graph_id.in_(bindparam("ids", expanding=True)),
)
_PENDING_COLUMNS = [c.name for c in _PENDING.columns if c.name != "id"]
# A collection's delta cursor: read, updated (then inserted if it had none) and dropped by its keys.
_CURSORS = DeltaCursor.__table__  # type: ignore[attr-defined]
_CURSOR_KEY = (_CURSORS.c.user == bindparam("of_user")) & (_CURSORS.c.collection == bindparam("of_collection"))
_CURSOR_OF = core_select(_CURSORS.c.delta_link).where(_CURSOR_KEY)
_UPDATE_CURSOR = update(_CURSORS).where(_CURSOR_KEY)
_INSERT_CURSOR = insert(_CURSORS)
_DROP_CURSOR = delete(_CURSORS).where(_CURSOR_KEY)


def _upsert(
    table: Any, keys: Sequence[str], fields: Sequence[str], *, defaults: Sequence[str] = (), returning: str = ""
) -> TextClause:
    """`INSERT … ON CONFLICT (keys) DO UPDATE SET fields …` on `table` (`defaults`: columns inserted,
    never updated, unless they are among `fields`; no `fields`: `DO NOTHING`), in the syntax SQLite
    (3.35+) and PostgreSQL share. Written as text: SQLAlchemy 2.0 compiles its dialects' ON CONFLICT
    constructs again at every execution (they have no cache key); a text statement is compiled once.
    Built from the table's own names only, never from data (a name that is not a column is a
    KeyError): values go in as bound parameters, typed by their columns."""
    columns = list(dict.fromkeys([*keys, *defaults, *fields]))
    names = ", ".join(f'"{c}"' for c in columns)
    slots = ", ".join(f":{c}" for c in columns)
    conflict = ", ".join(f'"{c}"' for c in keys)
    updates = ", ".join(f'"{c}" = excluded."{c}"' for c in fields)
    action = f"DO UPDATE SET {updates}" if fields else "DO NOTHING"
    sql = f"INSERT INTO {table.name} ({names}) VALUES ({slots}) ON CONFLICT ({conflict}) {action}"  # noqa: S608
    if returning:
        sql += f" RETURNING {table.c[returning].name}"
    return text(sql).bindparams(*(bindparam(c, type_=table.c[c].type) for c in columns))


_LINK_UPSERT = _upsert(_LINKS, ("user", "kind", "erp_id"), _LINK_FIELDS, returning="id")
_USER_STATES = UserState.__table__  # type: ignore[attr-defined]
# A processed message id, kept unless it is there already: run as an executemany of the ids of a flush.
_INBOX_INSERT = _upsert(InboxEntry.__table__, ("message_id",), (), defaults=("processed_at",))  # type: ignore[attr-defined]


@functools.cache
def _user_state_upsert(fields: tuple[str, ...]) -> TextClause:
    """The upsert of some fields of a user's state; a new row is healthy unless told otherwise. One
    statement per set of fields, which the code names (a handful)."""
    return _upsert(_USER_STATES, ("user",), fields, defaults=("healthy",))


def now_utc() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes: they were stored as UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class State:
    """One façade over sync-core's tables; every method is its own short transaction.

    On SQLite the process's writes take turns on an asyncio lock: SQLite has one writer at a time,
    and without the lock the handlers of all shards would wait for each other in SQLite's busy
    handler (sleeps of several milliseconds each, measured in docs/benchmarks.md). No transaction
    holds the lock across an HTTP call. Other replicas still meet SQLite's busy timeout. On a SQLite
    file each call runs whole on a thread (`Transactions`, ADR 0028).
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.tx = Transactions(sessions)
        # Ids of processed messages not yet written (see `mark_seen`), with the time they were.
        self._inbox_pending: dict[str, datetime] = {}
        self._inbox_flush: asyncio.Task[None] | None = None
        self.inbox_flush_s = 0.05
        self.inbox_keep = timedelta(days=7)
        self.inbox_prune_every_s = 600.0
        self._inbox_pruned_at: float | None = None

    # Links -----------------------------------------------------------------------------------

    async def link_by_graph_id(self, user: str, kind: Kind, graph_id: str) -> Link | None:
        key = {"of_user": user, "of_collection": collection_of(kind), "of_graph_id": graph_id}
        return await self.tx.read_keyed(lambda s: _one_link(s, _LINK_BY_GRAPH_ID, key))

    async def links_by_graph_ids(self, user: str, kind: Kind, graph_ids: list[str]) -> tuple[dict[str, Link], set[str]]:
        """The links of several Graph items of one collection (a delta page), and which of those
        items have pending creates: two queries in one read."""
        if not graph_ids:
            return {}, set()
        key = {"of_user": user, "of_collection": collection_of(kind), "ids": graph_ids}

        async def read(s: AsyncSession) -> tuple[dict[str, Link], set[str]]:
            rows = (await s.exec(_LINKS_BY_GRAPH_IDS, params=key)).all()  # type: ignore[call-overload]
            pending = (await s.exec(_PENDING_GRAPH_IDS, params=key)).scalars()  # type: ignore[call-overload]
            return {row.graph_id: _link_of(row) for row in rows}, set(pending)

        return await self.tx.read_keyed(read)

    async def link_by_erp_id(self, user: str, kind: Kind, erp_id: str) -> Link | None:
        key = {"of_user": user, "of_kind": kind.value, "of_erp_id": erp_id}
        return await self.tx.read_keyed(lambda s: _one_link(s, _LINK_BY_ERP_ID, key))

    async def linked_graph_ids(self, user: str, collection: str) -> list[str]:
        """The Graph ids of a user's links in one collection (ids only: a mailbox may hold 50,000)."""
        query = select(Link.graph_id).where(Link.user == user, Link.collection == collection)
        return await self.tx.read(lambda s: all_rows(s, query))

    async def links_of(self, user: str, kind: Kind | None = None) -> list[Link]:
        query = select(Link).where(Link.user == user)
        if kind is not None:
            query = query.where(Link.kind == kind.value)
        return await self.tx.read(lambda s: all_rows(s, query))

    async def save_link(
        self, link: Link, journal: JournalEntry | None = None, *, settled: list[int] | None = None
    ) -> Link:
        """Insert or update a link (by its unique keys) together with its journal line, dropping the
        pending creates (`settled`) it makes moot, in one transaction.

        A link read earlier (it has an id) is updated by its id; any other is upserted on its ERP
        key (`_LINK_UPSERT`) — one statement each: no ORM unit of work, no read first.
        One dropped meanwhile (e.g. by reconciliation) is written again as a new row.
        """
        values = {field: getattr(link, field) for field in _LINK_FIELDS}
        # A saved link records what both sides now hold: a write of unknown outcome is moot.
        link.pending_write = values["pending_write"] = None
        params = {"user": link.user, "kind": link.kind, "erp_id": link.erp_id, **values}
        known = link.id

        async def write(s: AsyncSession) -> int:
            if settled:
                await s.exec(_DROP_PENDING, params={"ids": settled})  # type: ignore[call-overload]
            updated = 0
            if known is not None:
                result = await s.exec(_UPDATE_LINK, params={"link_id": known, **values})  # type: ignore[call-overload]
                updated = result.rowcount
            link_id = known if updated == 1 else (await s.exec(_LINK_UPSERT, params=params)).scalar_one()  # type: ignore[call-overload]
            if journal is not None:
                await _insert_journal(s, journal)
            return link_id  # type: ignore[return-value]

        link.id = await self.tx.write_keyed(write)
        return link

    async def note_pending_write(self, link: Link, pending: str) -> None:
        """Remember on a link a write of ours whose outcome is unknown (ADR 0025); nothing else changes."""
        statement = update(Link).where(col(Link.id) == link.id).values(pending_write=pending)
        await self.tx.write_keyed(lambda s: s.exec(statement))
        link.pending_write = pending

    async def drop_link(self, link: Link, journal: JournalEntry | None = None) -> None:
        async def write(s: AsyncSession) -> None:
            await s.exec(_DROP_LINK, params={"link_id": link.id})  # type: ignore[call-overload]
            if journal is not None:
                await _insert_journal(s, journal)

        await self.tx.write_keyed(write)

    # Pending creates (an ERP create without an answer) ---------------------------------------------

    async def add_pending_create(self, entry: PendingCreate) -> None:
        """Insert `entry` (one Core `INSERT … RETURNING id`) and set its id."""
        params = {name: getattr(entry, name) for name in _PENDING_COLUMNS}
        entry.id = await self.tx.write_keyed(lambda s: _scalar(s, _PENDING_INSERT, params))

    async def pending_creates(self, user: str, collection: str, graph_id: str | None = None) -> list[PendingCreate]:
        """A user's pending creates in a collection, of one Outlook item or all."""
        query = select(PendingCreate).where(PendingCreate.user == user, PendingCreate.collection == collection)
        if graph_id is not None:
            query = query.where(PendingCreate.graph_id == graph_id)
        return await self.tx.read(lambda s: all_rows(s, query.order_by(col(PendingCreate.id))))

    async def drop_pending_creates(self, ids: list[int]) -> None:
        if not ids:
            return
        await self.tx.write_keyed(lambda s: s.exec(delete(PendingCreate).where(col(PendingCreate.id).in_(ids))))

    # Delta cursors -----------------------------------------------------------------------------

    async def cursor(self, user: str, collection: str) -> str | None:
        key = {"of_user": user, "of_collection": collection}
        return await self.tx.read_keyed(lambda s: _scalar(s, _CURSOR_OF, key))  # type: ignore[no-any-return]

    async def set_cursor(self, user: str, collection: str, delta_link: str | None) -> None:
        """Save (None: drop) a collection's cursor: an update by its keys, an insert if it had none."""
        key = {"of_user": user, "of_collection": collection}

        async def write(s: AsyncSession) -> None:
            if delta_link is None:
                await s.exec(_DROP_CURSOR, params=key)  # type: ignore[call-overload]
                return
            values = {"delta_link": delta_link, "updated_at": now_utc()}
            updated = await s.exec(_UPDATE_CURSOR, params={**key, **values})  # type: ignore[call-overload]
            if updated.rowcount == 0:
                await s.exec(_INSERT_CURSOR, params={"user": user, "collection": collection, **values})  # type: ignore[call-overload]

        await self.tx.write_keyed(write)

    # Inbox ---------------------------------------------------------------------------------------

    async def seen(self, message_id: str) -> bool:
        if message_id in self._inbox_pending:
            return True
        return await self.tx.read(lambda s: s.get(InboxEntry, message_id)) is not None

    async def mark_seen(self, message_id: str) -> None:
        """Record a processed message. Written behind, many ids per transaction (ADR 0026): one
        transaction per message was a tenth of sync-core's CPU per change. An id lost in a crash
        only lets a duplicate of that message be processed again, which every handler tolerates."""
        self._inbox_pending[message_id] = now_utc()
        if self._inbox_flush is None or self._inbox_flush.done():
            self._inbox_flush = asyncio.get_running_loop().create_task(self._flush_inbox_later())

    async def _flush_inbox_later(self) -> None:
        await asyncio.sleep(self.inbox_flush_s)
        await self.flush_inbox()

    async def flush_inbox(self) -> None:
        """Write the ids recorded since the last flush (and now and then forget week-old ones)."""
        while self._inbox_pending:
            batch = dict(list(self._inbox_pending.items())[:400])
            rows = [{"message_id": k, "processed_at": v} for k, v in batch.items()]
            prune = self._inbox_prune_due()
            try:
                # A few ids a flush at most rates (keyed, in place), unless week-old ones go too.
                write = self.tx.write if prune is not None else self.tx.write_keyed
                await write(partial(_run, statement=_INBOX_INSERT, params=rows, then=prune))
            except Exception:
                log.warning("could not write %d processed message ids", len(batch), exc_info=True)
                return
            finally:
                for key in batch:
                    self._inbox_pending.pop(key, None)

    def _inbox_prune_due(self) -> Any:
        """Now and then (`inbox_prune_every_s`): the statement that forgets week-old ids."""
        loop_now = asyncio.get_running_loop().time()
        if self._inbox_pruned_at is not None and loop_now - self._inbox_pruned_at < self.inbox_prune_every_s:
            return None
        self._inbox_pruned_at = loop_now
        return delete(InboxEntry).where(col(InboxEntry.processed_at) < now_utc() - self.inbox_keep)

    async def aclose(self) -> None:
        """Write what is still pending (processed message ids)."""
        if self._inbox_flush is not None and not self._inbox_flush.done():
            self._inbox_flush.cancel()
            await asyncio.gather(self._inbox_flush, return_exceptions=True)
        await self.flush_inbox()
        self.tx.close()

    # Journal -------------------------------------------------------------------------------------

    async def journal(self, entry: JournalEntry) -> None:
        await self.tx.write_keyed(lambda s: _insert_journal(s, entry))

    # User state ----------------------------------------------------------------------------------

    async def user_state(self, user: str) -> UserState | None:
        return await self.tx.read(lambda s: s.get(UserState, user))

    async def update_user_state(self, user: str, **fields: Any) -> None:
        """Set some of a user's state fields: one upsert on the user's key (no ORM read first), so a
        replica that inserted the row meanwhile is simply updated."""
        if not fields:
            return
        statement = _user_state_upsert(tuple(sorted(fields)))
        params = {"user": user, "healthy": True, **fields}
        await self.tx.write_keyed(lambda s: s.exec(statement, params=params))


async def _run(s: AsyncSession, statement: Any, params: Any = None, then: Any = None) -> None:
    """Execute `statement` (once per row of `params` when it is a list) and `then` (when given), in
    the caller's transaction."""
    await s.exec(statement, params=params)  # type: ignore[call-overload]
    if then is not None:
        await s.exec(then)


async def _scalar(s: AsyncSession, statement: Any, params: dict[str, Any]) -> Any:
    return (await s.exec(statement, params=params)).scalar()


def _link_of(row: Any) -> Link:
    return Link(**row._mapping)


async def _one_link(s: AsyncSession, statement: Any, params: dict[str, Any]) -> Link | None:
    row = (await s.exec(statement, params=params)).first()
    return _link_of(row) if row is not None else None


async def _insert_journal(s: AsyncSession, entry: JournalEntry) -> None:
    """Write a journal line (one Core INSERT, cheaper than the ORM's flush of one added object) and
    count it when it is a failure (a metric per user hash)."""
    await s.exec(_JOURNAL_INSERT, params=journal_row(entry))  # type: ignore[call-overload]
    if entry.outcome == "failed":
        count_journal_failure(entry.user, entry.kind, entry.direction)


def journal_row(entry: JournalEntry) -> dict[str, Any]:
    """A journal line as the parameters of `_JOURNAL_INSERT`."""
    return {name: getattr(entry, name) for name in _JOURNAL_COLUMNS}


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
