"""Database engines from a URL: SQLite (default, file under var/) or PostgreSQL."""

from __future__ import annotations

import asyncio
import contextvars
import fcntl
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy
from sqlalchemy import DateTime, TypeDecorator, event, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from shared.gather import Call, Gather, answer_with, settle

T = TypeVar("T")
log = logging.getLogger(__name__)


def async_url(url: str) -> str:
    """The async-driver form of a database URL (aiosqlite, psycopg 3)."""
    u = make_url(url)
    if u.drivername in ("sqlite", "sqlite+pysqlite"):
        u = u.set(drivername="sqlite+aiosqlite")
    elif u.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+asyncpg"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def sync_url(url: str) -> str:
    """The blocking-driver form of a database URL, for Alembic."""
    u = make_url(url)
    if u.drivername.startswith("sqlite"):
        u = u.set(drivername="sqlite")
    elif u.drivername.startswith("postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def ensure_sqlite_dir(url: str) -> None:
    u = make_url(url)
    if u.drivername.startswith("sqlite") and u.database and u.database != ":memory:":
        Path(u.database).parent.mkdir(parents=True, exist_ok=True)


def _pragmas(busy_timeout_ms: int, *, autocheckpoint: bool = True) -> Callable[[Any, Any], None]:
    """`autocheckpoint` False: the connection's commits never checkpoint the WAL (someone else does)."""

    def set_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        # busy_timeout waits instead of failing at once (first: switching a new file to WAL needs the
        # file to itself, and another connection may be opening it); WAL lets readers run beside the
        # one writer.
        cur.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        if not autocheckpoint:
            cur.execute("PRAGMA wal_autocheckpoint=0")
        cur.close()

    return set_pragmas


_sqlite_pragmas = _pragmas(10_000)


# libpq's TCP settings for PostgreSQL unless the URL sets them: a connection whose peer vanished
# without a word (a failover, a firewall that forgot the flow) is found dead in about a minute instead
# of the kernel's two hours, so a pooled connection cannot hang a handler (docs/reliability.md).
PG_TCP_DEFAULTS: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,  # ms: unacknowledged data (a query sent into the void) fails after 60 s
}


def pg_connect_args(url: str) -> dict[str, Any]:
    """`PG_TCP_DEFAULTS` less what the URL's query already chooses."""
    query = make_url(url).query
    return {key: value for key, value in PG_TCP_DEFAULTS.items() if key not in query}


def create_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> AsyncEngine:
    """An async engine for `url`; SQLite gets WAL and a busy timeout, PostgreSQL TCP keepalives."""
    ensure_sqlite_dir(url)
    aurl = async_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if aurl.startswith("postgresql"):
        kwargs.update(
            pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, connect_args=pg_connect_args(aurl)
        )
    engine = create_async_engine(aurl, **kwargs)
    if aurl.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    """Raise when the database does not answer."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def is_sqlite(engine_or_url: AsyncEngine | str) -> bool:
    url = engine_or_url if isinstance(engine_or_url, str) else str(engine_or_url.url)
    return url.startswith("sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back time-zone aware (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: timestamps are stored in UTC (R33)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Whole transactions on a thread (SQLite) ----------------------------------------------------------
#
# aiosqlite hands every statement to its thread and back (a wake-up of the event loop per step):
# for a short transaction that hand-off, not SQLite nor the ORM, is most of the CPU (ADR 0028,
# measured in docs/benchmarks.md). On SQLite a unit of work written against `AsyncSession` therefore
# runs whole on a worker thread, over a blocking `Session` whose awaits never suspend: one hand-off
# per transaction instead of one per statement, and the event loop is never blocked by SQLite.


class BlockingSession:
    """The part of `AsyncSession` that units of work use, over a blocking connection in a transaction.

    Its coroutines finish without suspending, so a coroutine that awaits only these runs to its end
    in one `run_to_end` call, on whatever thread holds the connection.

    Core statements (on tables, text) run on the connection itself; the ORM `Session` is made only
    when the unit first uses the ORM (an entity query, `get`, `add`, `delete`), and from then on
    everything goes through it, so its autoflush sees every statement. A session costs more than a
    one-row statement (docs/benchmarks.md, session 9). `finish` flushes what the ORM holds.
    """

    def __init__(self, connection: sqlalchemy.Connection) -> None:
        self.connection = connection
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            # Joins the connection's transaction (or savepoint); only the caller commits or rolls back.
            self._session = Session(bind=self.connection, join_transaction_mode="rollback_only", expire_on_commit=False)
        return self._session

    def _core(self, statement: Any) -> bool:
        return self._session is None and statement._propagate_attrs.get("compile_state_plugin") != "orm"

    def add(self, instance: Any) -> None:
        self.session.add(instance)

    async def get(self, model: Any, key: Any, **kw: Any) -> Any:
        return self.session.get(model, key, **kw)

    async def exec(self, statement: Any, *, params: Any = None, **kw: Any) -> Any:
        if not self._core(statement) or kw:
            return self.session.exec(statement, params=params, **kw)
        result = self.connection.execute(statement, params)
        return result.scalars() if isinstance(statement, SelectOfScalar) else result  # as sqlmodel's exec

    async def execute(self, statement: Any, *args: Any, **kw: Any) -> Any:
        if not self._core(statement) or kw:
            return self.session.execute(statement, *args, **kw)
        return self.connection.execute(statement, *args)

    async def flush(self) -> None:
        if self._session is not None:
            self._session.flush()

    async def delete(self, instance: Any) -> None:
        self.session.delete(instance)

    def get_bind(self) -> Any:
        return self.connection

    def finish(self) -> None:
        """Write what the ORM session holds (the unit returned; its transaction commits next)."""
        if self._session is not None:
            self._session.flush()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def _run_unit(connection: sqlalchemy.Connection, fn: Callable[[Any], Awaitable[T]]) -> T:
    """`fn` on a `BlockingSession` of `connection`, in whatever transaction it is in."""
    session = BlockingSession(connection)
    try:
        result: T = run_to_end(fn(session))  # type: ignore[arg-type]
        session.finish()
        return result
    finally:
        session.close()


def run_to_end(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (it awaits only a `BlockingSession`) and return its value."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a unit of work on a blocking session awaited something else than the session")


@dataclass
class Unit(Call):
    """A write unit of work queued for the writer, with the context of the caller that asked for it."""

    fn: Callable[[Any], Awaitable[Any]]
    context: contextvars.Context
    # A few rows by key (`Transactions.write_keyed`): may run in place, on the event loop's thread.
    keyed: bool = False


def _in_savepoint(connection: sqlalchemy.Connection, fn: Callable[[Any], Awaitable[Any]]) -> tuple[bool, Any]:
    try:
        with connection.begin_nested():
            return True, _run_unit(connection, fn)
    except Exception as exc:
        return False, exc


def _alone_in(transaction: sqlalchemy.RootTransaction, fn: Callable[[Any], Awaitable[Any]]) -> tuple[bool, Any]:
    """`fn` as the only unit of `transaction`, rolled back if it raises: no savepoint, which with its
    release took 18 of the 117 µs of CPU of a one-row write in place (docs/benchmarks.md, session 11)."""
    try:
        return True, _run_unit(transaction.connection, fn)
    except Exception as exc:
        transaction.rollback()
        return False, exc


def _run_units(transaction: sqlalchemy.RootTransaction, units: list[Unit]) -> list[tuple[bool, Any]]:
    """Units of work in one transaction, each in its caller's context: per unit, (True, its result)
    or (False, its exception). Several take a savepoint each, so one that raises is undone alone."""
    if len(units) == 1:
        return [units[0].context.run(_alone_in, transaction, units[0].fn)]
    return [unit.context.run(_in_savepoint, transaction.connection, unit.fn) for unit in units]


def _on_the_driver(template: str) -> Callable[..., None]:
    """`template` (formatted with the call's other arguments: a savepoint's name) run on the
    driver's connection. Through SQLAlchemy's execution path (`exec_driver_sql`, or its default
    savepoint methods, which compile a statement each time) a BEGIN cost about 8 % of a one-row
    read (docs/benchmarks.md, session 8)."""

    def run(conn: sqlalchemy.Connection, *names: str) -> None:
        conn.connection.driver_connection.execute(template.format(*names))  # type: ignore[union-attr]

    return run


def _savepoints_on_the_driver(engine: sqlalchemy.Engine) -> None:
    """SAVEPOINT, RELEASE and ROLLBACK TO of an engine on the driver's connection: the group commit
    takes a savepoint per unit (`_in_savepoint`). Same statements, same names, same order."""
    for method, template in (
        ("do_savepoint", "SAVEPOINT {}"),
        ("do_release_savepoint", "RELEASE SAVEPOINT {}"),
        ("do_rollback_to_savepoint", "ROLLBACK TO SAVEPOINT {}"),
    ):
        setattr(engine.dialect, method, _on_the_driver(template))


CHECKPOINT_EVERY = 200


def _busy(exc: sqlalchemy.exc.OperationalError | sqlite3.OperationalError) -> bool:
    message = str(getattr(exc, "orig", exc)).lower()
    return "locked" in message or "busy" in message


class _WriterTurns:
    """Writers of one SQLite file in several processes (sync-core's workers, ADR 0055) take turns on
    an exclusive `flock` of a file beside it, held from before `BEGIN IMMEDIATE` to after the commit.
    SQLite's own busy handler polls with sleeps (1, 2, 5, 10 … 100 ms); the kernel wakes the next
    writer as soon as the lock is released, in turn. A process that does not take it (a migration, a
    CLI) still meets the busy timeout, as before. Used on the writer thread only."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> None:
        if self.path is not None:
            fcntl.flock(self._file(), fcntl.LOCK_EX)

    def take_now(self) -> bool:
        """Take the turn if no other process holds it, without waiting."""
        if self.path is None:
            return True
        try:
            fcntl.flock(self._file(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _file(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # type: ignore[arg-type]
        return self._fd

    def __exit__(self, *_: object) -> None:
        self.give_back()

    def give_back(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class SqliteThreads:
    """Units of work of one SQLite file run whole on worker threads: one for writes (so they take
    turns, in the order asked), a few for reads (WAL lets them run beside the writer).

    A write transaction starts with `BEGIN IMMEDIATE`: it holds the write lock from its first
    statement, so what it read before writing is what its writes apply to, and another process's
    writer is waited for (busy_timeout) instead of failing at once. A read is one snapshot.
    """

    def __init__(self, url: str, *, readers: int = 2) -> None:
        ensure_sqlite_dir(url)
        database = make_url(url).database
        self._turns = _WriterTurns(f"{database}.writer" if database and database != ":memory:" else None)
        common: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
        self.reader = sqlalchemy.create_engine(sync_url(url), pool_size=readers, **common)
        self.writer = sqlalchemy.create_engine(sync_url(url), pool_size=1, **common)
        # The event loop's own connections, for keyed reads and writes run in place (`read_here`,
        # `write_here`): they never wait for a lock (busy_timeout 0; such a unit goes to a thread
        # instead). The in-place writer never checkpoints the WAL itself (a checkpoint syncs the file
        # to disk): every `CHECKPOINT_EVERY` of its commits a passive checkpoint runs on the writer
        # thread.
        self.here = sqlalchemy.create_engine(sync_url(url), pool_size=1, **common)
        self.here_writer = sqlalchemy.create_engine(sync_url(url), pool_size=1, **common)
        connect = {self.reader: _sqlite_pragmas, self.writer: _sqlite_pragmas, self.here: _pragmas(0)}
        connect[self.here_writer] = _pragmas(0, autocheckpoint=False)
        for engine, set_pragmas in connect.items():
            event.listen(engine, "connect", set_pragmas)
            # pysqlite's own transaction handling off: SQLAlchemy's `begin` decides (docs: "Serializable
            # isolation / Savepoints / Transactional DDL" for pysqlite).
            event.listen(engine, "connect", lambda dbapi_conn, _r: setattr(dbapi_conn, "isolation_level", None))
        for engine in (self.writer, self.here_writer):
            event.listen(engine, "begin", _on_the_driver("BEGIN IMMEDIATE"))
            _savepoints_on_the_driver(engine)
        event.listen(self.reader, "begin", _on_the_driver("BEGIN"))
        event.listen(self.here, "begin", _on_the_driver("BEGIN"))
        self._readers = readers
        self._here_commits = 0
        self.checkpoints = 0
        # Made when first used, and again after `close` (like an engine after `dispose`).
        self._pools: dict[str, ThreadPoolExecutor] = {}

    async def write(self, fn: Callable[[Any], Awaitable[T]], context: contextvars.Context | None = None) -> T:
        """`fn(session)` in one transaction, committed when it returns, rolled back if it raises."""
        if context is None:
            context = contextvars.copy_context()
        return await self._on("write", 1, context, self._write, fn)

    async def write_all(self, units: list[Unit]) -> list[tuple[bool, Any]]:
        """Several units of work in one transaction (`_write_all`); per unit, (True, its result) or
        (False, its exception). Raises, for all of them, when the transaction itself fails."""
        return await self._on("write", 1, contextvars.copy_context(), self._write_all, units)

    async def read(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        return await self._on("read", self._readers, contextvars.copy_context(), self._read, fn)

    def read_here(self, fn: Callable[[Any], Awaitable[T]]) -> tuple[bool, T | None]:
        """`fn` as a read transaction on the calling thread: (True, its result), or (False, None) when
        the file was busy (a lock held during WAL recovery, say) and nothing was waited for."""
        try:
            with self.here.connect() as connection, connection.begin():
                return True, _run_unit(connection, fn)
        except sqlalchemy.exc.OperationalError as exc:
            if not _busy(exc):
                raise
            return False, None

    def write_here(self, units: list[Unit]) -> list[tuple[bool, Any]] | None:
        """`units` in one transaction on the calling thread, each in a savepoint (as `write_all`; one
        unit alone needs none: the transaction is its own); None when the write turn is not free at
        once (another process's writer holds it) and nothing was done. The caller holds this
        process's write turn."""
        if not self._turns.take_now():
            return None
        try:
            with self.here_writer.connect() as connection:
                try:
                    transaction = connection.begin()
                except sqlite3.OperationalError as exc:  # raised by BEGIN IMMEDIATE on the driver
                    if not _busy(exc):  # a writer that does not take the turn (a migration, a CLI)
                        raise
                    return None
                with transaction:
                    outcomes = _run_units(transaction, units)
        finally:
            self._turns.give_back()
        self._here_commits += 1
        if self._here_commits % CHECKPOINT_EVERY == 0:
            self._pool("write", 1).submit(self._checkpoint)
        return outcomes

    def _checkpoint(self) -> None:
        try:
            with self.writer.connect() as connection:
                _on_the_driver("PRAGMA wal_checkpoint(PASSIVE)")(connection)
        except Exception:
            log.warning("a WAL checkpoint failed; the next one will try again", exc_info=True)
            return
        self.checkpoints += 1

    def _pool(self, name: str, threads: int) -> ThreadPoolExecutor:
        pool = self._pools.get(name)
        if pool is None:
            pool = self._pools[name] = ThreadPoolExecutor(threads, thread_name_prefix=f"sqlite-{name}")
        return pool

    async def _on(self, name: str, threads: int, context: contextvars.Context, call: Callable[..., T], arg: Any) -> T:
        # `context`: the caller's trace and log context, on the thread.
        return await asyncio.get_running_loop().run_in_executor(self._pool(name, threads), context.run, call, arg)

    def _write(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        with self._turns, self.writer.connect() as connection, connection.begin():
            return _run_unit(connection, fn)

    def _write_all(self, units: list[Unit]) -> list[tuple[bool, Any]]:
        """One transaction for all the units (`_run_units`: several take a savepoint each): a unit
        that raises is undone alone, the others commit together. Nobody hears of a success before
        the commit: the caller answers after this returns."""
        with self._turns, self.writer.connect() as connection, connection.begin() as transaction:
            return _run_units(transaction, units)

    def _read(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        with self.reader.connect() as connection, connection.begin():
            return _run_unit(connection, fn)

    def close(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.shutdown(wait=True)
        for engine in (self.writer, self.reader, self.here, self.here_writer):
            engine.dispose()
        self._turns.close()


class Transactions:
    """Reads and write transactions of one database, each given as `fn(session)`.

    On a SQLite file they run whole on threads (`SqliteThreads`); elsewhere (PostgreSQL, an
    in-memory SQLite) on an `AsyncSession` on the event loop. `fn` uses the session's `add`, `get`,
    `exec`, `execute`, `flush` and `delete` (`BlockingSession`), and never commits: a write commits
    when `fn` returns and rolls back if it raises. On SQLite a process's writes take turns on
    `write_lock`, which writers that hold an `AsyncSession` of the same database take too.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        bind = sessions.kw.get("bind")
        url = bind.url if bind is not None else None
        self.sqlite = url is not None and url.get_backend_name() == "sqlite"
        self.write_lock: asyncio.Lock | None = asyncio.Lock() if self.sqlite else None
        on_file = url is not None and url.database not in (None, "", ":memory:")
        self.threads: SqliteThreads | None = None
        self._group: GroupCommit | None = None
        if self.write_lock is not None and on_file:
            self.threads = SqliteThreads(url.render_as_string(hide_password=False))  # type: ignore[union-attr]
            self._group = GroupCommit(self.threads, self.write_lock)

    @property
    def queues_writes(self) -> bool:
        """Whether writes asked for at once run one after the other in the order asked (group commit
        on a SQLite file): callers may then start several writes together and keep their order."""
        return self._group is not None

    async def read(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        if self.threads is not None:
            return await self.threads.read(fn)
        async with self.sessions() as session:
            return await fn(session)

    async def read_keyed(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """A read of a few rows found through an index (a link by its ids, a cursor): on a SQLite file
        it runs in place, on the event loop's thread (ADR 0056). Such a read takes tens of
        microseconds; handing it to a thread and back cost several times that in CPU. A file that is
        busy (nothing is waited for in place) sends it to a reader thread. Elsewhere, as `read`."""
        if self.threads is not None:
            done, value = self.threads.read_here(fn)
            if done:
                return value  # type: ignore[return-value]
        return await self.read(fn)

    async def write(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        return await self._write(fn, keyed=False)

    async def write_keyed(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """A write of a few rows found or made by key (a link, a cursor, a pending create): on a SQLite
        file, when this process's writer is idle and no other process holds the write turn, it runs in
        place on the event loop's thread (ADR 0058), with the keyed writes queued beside it; else as
        `write`. Elsewhere, as `write`."""
        return await self._write(fn, keyed=True)

    async def _write(self, fn: Callable[[Any], Awaitable[T]], *, keyed: bool) -> T:
        if self._group is not None:
            unit = Unit(fn=fn, context=contextvars.copy_context(), keyed=keyed)
            if keyed and self._group.idle and not self.write_lock.locked():  # type: ignore[union-attr]
                # Nothing queued or running: the unit runs now, in the caller's coroutine, without a
                # round of the event loop to start a send and another to hear its answer (under
                # load each round is milliseconds).
                done = self.threads.write_here([unit])  # type: ignore[union-attr]
                if done is not None:
                    ok, value = done[0]
                    if ok:
                        return value  # type: ignore[no-any-return]
                    raise value
            # Queued now, before this coroutine yields: writes keep the order they were asked in.
            result: T = await _to_the_end(self._group.enqueue(unit))
            return result
        async with self.writing() as session:
            return await fn(session)

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        """A write transaction on an `AsyncSession` (committed when the block ends, rolled back if it
        raises), in this process's write turn on SQLite."""
        if self.write_lock is None:
            async with self.sessions() as session, session.begin():
                yield session
            return
        async with self.write_lock, self.sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        if self.threads is not None:
            self.threads.close()


async def _to_the_end(awaitable: Awaitable[T]) -> T:
    """Await a write that cannot be stopped once on its thread: a caller cancelled meanwhile still
    waits for its transaction to end before it hears of the cancellation (and the turn passes on)."""
    running = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        await asyncio.wait([running])
        raise


class GroupCommit(Gather[Unit]):
    """A process's SQLite writes, committed together when they queue up (`shared.gather`): while the
    writer thread runs one transaction, the units of work asked for meanwhile wait, then run in the
    next one, each in a savepoint (`SqliteThreads.write_all`). At low load each unit still has a
    transaction of its own. Under load the fixed cost of a transaction (the hand-off to the thread,
    BEGIN, COMMIT, a session) is paid once per batch, not per unit. Units run one after the other in
    the order asked, so each still sees every write before it; each caller gets its own result or its
    own exception, and none before the commit."""

    def __init__(self, threads: SqliteThreads, lock: asyncio.Lock, *, max_batch: int = 64) -> None:
        super().__init__(max_batch=max_batch, in_flight=1)
        self.threads = threads
        self.lock = lock

    async def _alone(self, unit: Unit) -> None:
        if unit.keyed:
            await self._together([unit])
            return
        async with self.lock:
            await answer_with(unit, _to_the_end(self.threads.write(unit.fn, unit.context)))

    async def _together(self, units: list[Unit]) -> None:
        try:
            async with self.lock:
                outcomes = self.threads.write_here(units) if all(unit.keyed for unit in units) else None
                if outcomes is None:
                    outcomes = await _to_the_end(self.threads.write_all(units))
        except Exception as exc:
            for unit in units:
                settle(unit, exc)
            return
        for unit, (ok, value) in zip(units, outcomes, strict=True):
            if unit.answer.done():
                continue
            if ok:
                unit.answer.set_result(value)
            else:
                unit.answer.set_exception(value)

    def _stopped(self, reason: str) -> BaseException:
        return RuntimeError(f"the database writer {reason}")


# One-line units of work: `transactions.read(lambda s: first_row(s, query))`.


async def first_row(session: Any, query: Any) -> Any:
    return (await session.exec(query)).first()


async def all_rows(session: Any, query: Any) -> list[Any]:
    return list((await session.exec(query)).all())


async def one_row(session: Any, query: Any) -> Any:
    return (await session.exec(query)).one()
