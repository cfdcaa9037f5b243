"""`shared.db.Transactions` (ADR 0028): units of work on SQLite run whole on a thread, on PostgreSQL on
the loop; the same `fn(session)` commits or rolls back as a whole on both, and writes take turns."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlmodel import col, select

from shared import db
from sync_core.db import migrate
from sync_core.models import UserState


@pytest.fixture
async def tx(database_url: str) -> Any:
    migrate(database_url)
    engine = db.create_engine(database_url)
    transactions = db.Transactions(db.session_factory(engine))
    try:
        yield transactions
    finally:
        transactions.close()
        await engine.dispose()


async def _get(s: Any, user: str) -> UserState | None:
    return await s.get(UserState, user)  # type: ignore[no-any-return]


async def test_a_write_commits_as_a_whole_or_not_at_all(tx: db.Transactions) -> None:
    async def write(s: Any) -> str:
        s.add(UserState(user="a@x.example"))
        s.add(UserState(user="b@x.example"))
        return "written"

    assert await tx.write(write) == "written"

    async def fails_half_way(s: Any) -> None:
        s.add(UserState(user="c@x.example"))
        await s.flush()  # the row is in the transaction...
        raise ValueError("refused")  # ...and goes with it

    with pytest.raises(ValueError, match="refused"):
        await tx.write(fails_half_way)
    assert await tx.read(lambda s: _get(s, "a@x.example")) is not None
    assert await tx.read(lambda s: _get(s, "c@x.example")) is None


async def test_on_a_sqlite_file_the_unit_of_work_runs_on_a_thread_elsewhere_on_the_loop(
    tx: db.Transactions, database_url: str
) -> None:
    where: list[str] = []

    async def note(s: Any) -> None:
        where.append(threading.current_thread().name)
        await s.exec(select(UserState))

    await tx.read(note)
    await tx.write(note)
    if database_url.startswith("sqlite"):
        assert where[0].startswith("sqlite-read") and where[1].startswith("sqlite-write")
    else:
        assert where == [threading.current_thread().name] * 2


async def test_writes_that_read_then_write_take_turns_and_lose_no_update(tx: db.Transactions) -> None:
    """Twenty read-modify-writes at once: each reads what the previous one wrote (on SQLite the write
    turn and BEGIN IMMEDIATE; on PostgreSQL the row lock asked for), so the counter ends at 20."""
    await tx.write(lambda s: _add(s, UserState(user="n@x.example", last_error="0")))

    async def bump(s: Any) -> None:
        row = await s.get(UserState, "n@x.example", with_for_update=True)
        row.last_error = str(int(row.last_error) + 1)
        s.add(row)

    await asyncio.gather(*(tx.write(bump) for _ in range(20)))
    row = await tx.read(lambda s: _get(s, "n@x.example"))
    assert row is not None and row.last_error == "20"


async def _add(s: Any, row: Any) -> None:
    s.add(row)


async def test_a_unit_of_work_that_awaits_something_else_is_refused_loudly(
    tx: db.Transactions, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("on PostgreSQL the unit of work runs on the loop, where any await is fine")

    async def awaits_the_loop(s: Any) -> None:
        s.add(UserState(user="loop@x.example"))
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="awaited something else"):
        await tx.write(awaits_the_loop)
    assert await tx.read(lambda s: _get(s, "loop@x.example")) is None  # rolled back


async def test_a_cancelled_caller_keeps_the_write_turn_until_its_transaction_ends(
    tx: db.Transactions, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("a thread only on SQLite")
    user = f"{uuid.uuid4().hex[:8]}@x.example"

    async def slow(s: Any) -> None:
        s.add(UserState(user=user))
        time.sleep(0.3)  # on the writer thread: the loop goes on

    task = asyncio.create_task(tx.write(slow))
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.sleep(0)
    assert tx.write_lock is not None
    started = time.monotonic()
    async with tx.write_lock:  # a writer on an AsyncSession takes the same turn
        waited = time.monotonic() - started
        assert await tx.read(lambda s: _get(s, user)) is not None, "the turn passed before the commit"
    assert waited > 0.1
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_writes_that_queue_up_commit_together_each_undone_alone_when_it_fails(
    tx: db.Transactions, database_url: str
) -> None:
    """Group commit (`GroupCommit`): writes asked for while the writer is busy run in one transaction,
    each in a savepoint, in the order asked. A failing one is undone alone and its caller gets its own
    exception; the others commit; each sees the writes before it."""
    if not database_url.startswith("sqlite"):
        pytest.skip("the writer thread only on SQLite")
    assert tx.threads is not None
    begins: list[str] = []
    sqlalchemy_event.listen(tx.threads.writer, "begin", lambda conn: begins.append("begin"))
    tag = uuid.uuid4().hex[:8]
    users = [f"{tag}-{i}@x.example" for i in range(12)]

    async def slow_first(s: Any) -> None:
        s.add(UserState(user=f"{tag}-first@x.example"))
        time.sleep(0.2)  # on the writer thread: the others queue up meanwhile

    def create(user: str, *, fail: bool = False) -> Any:
        async def unit(s: Any) -> int:
            s.add(UserState(user=user))
            await s.flush()
            if fail:
                raise ValueError(f"refused {user}")
            # Every earlier unit of the batch is visible to this one.
            return len((await s.exec(select(UserState).where(col(UserState.user).startswith(tag)))).all())

        return unit

    first = asyncio.create_task(tx.write(slow_first))
    await asyncio.sleep(0.05)
    results = await asyncio.gather(
        *[tx.write(create(u, fail=(i == 5))) for i, u in enumerate(users)], return_exceptions=True
    )
    await first
    assert isinstance(results[5], ValueError) and users[5] in str(results[5])
    assert [r for i, r in enumerate(results) if i != 5] == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    stored = await tx.read(lambda s: all_user_names(s, tag))
    assert sorted(stored) == sorted([f"{tag}-first@x.example", *[u for i, u in enumerate(users) if i != 5]])
    assert len(begins) == 2  # the slow one alone, then the twelve that queued behind it together


async def all_user_names(s: Any, tag: str) -> list[str]:
    return [r.user for r in (await s.exec(select(UserState).where(col(UserState.user).startswith(tag)))).all()]


async def test_a_keyed_read_runs_in_place_and_goes_to_a_thread_when_the_file_is_busy(
    tmp_path: Any,
) -> None:
    """ADR 0056: on a SQLite file a keyed read runs on the caller's thread; a file locked by another
    process's writer is not waited for there (the event loop would stall) but on a reader thread."""
    import sqlite3

    from sqlalchemy import text

    where: list[str] = []

    async def read(s: Any) -> int:
        where.append(threading.current_thread().name)
        return int((await s.execute(text("SELECT x FROM t"))).scalar())

    def made(name: str) -> tuple[sqlite3.Connection, db.SqliteThreads]:
        raw = sqlite3.connect(tmp_path / name, isolation_level=None)
        raw.execute("CREATE TABLE t (x INTEGER)")
        raw.execute("INSERT INTO t VALUES (7)")
        return raw, db.SqliteThreads(f"sqlite:///{tmp_path / name}")

    raw, threads = made("free.db")
    try:
        assert threads.read_here(read) == (True, 7)
        assert where == [threading.current_thread().name]
    finally:
        raw.close()
        threads.close()

    # A rollback-journal file held by another writer: the in-place read cannot even open it.
    raw, threads = made("locked.db")
    try:
        raw.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        assert threads.read_here(read) == (False, None)
        assert time.monotonic() - started < 1.0, "nothing is waited for in place"
        # A reader thread waits (busy_timeout) for the lock, without stalling the loop.
        waiting = asyncio.create_task(threads.read(read))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        raw.execute("COMMIT")
        assert await waiting == 7
        assert where[-1] != threading.current_thread().name
    finally:
        raw.close()
        threads.close()


async def test_keyed_reads_see_the_writes_before_them(tx: db.Transactions) -> None:
    async def write(s: Any) -> None:
        s.add(UserState(user="k@x.example", healthy=False))

    await tx.write(write)
    state = await tx.read_keyed(lambda s: _get(s, "k@x.example"))
    assert state is not None and state.healthy is False
    assert await tx.read_keyed(lambda s: _get(s, "nobody@x.example")) is None


async def test_a_keyed_write_runs_in_place_when_the_turn_is_free_and_waits_on_the_writer_thread_when_not(
    tmp_path: Any,
) -> None:
    """ADR 0058: on a SQLite file a keyed write runs on the caller's thread when this process's writer
    is idle and no other process holds the write turn. When another process's writer holds the turn
    (its `flock`), or a writer that takes no turn (a CLI) holds SQLite's write lock, nothing is waited
    for in place: the write waits on the writer thread and the loop goes on."""
    import fcntl
    import os
    import sqlite3

    url = f"sqlite:///{tmp_path / 'state.db'}"
    migrate(url)
    engine = db.create_engine(url)
    tx = db.Transactions(db.session_factory(engine))
    where: list[str] = []

    def create(user: str) -> Any:
        async def unit(s: Any) -> None:
            where.append(threading.current_thread().name)
            s.add(UserState(user=user))

        return unit

    try:
        await tx.write_keyed(create("here@x.example"))
        assert where == [threading.current_thread().name]

        # Another process's writer holds the turn: a lock on another open file description conflicts.
        other = os.open(tmp_path / "state.db.writer", os.O_RDWR)
        fcntl.flock(other, fcntl.LOCK_EX)
        waiting = asyncio.create_task(tx.write_keyed(create("turn@x.example")))
        started = time.monotonic()
        await asyncio.sleep(0.2)
        assert time.monotonic() - started < 0.5, "the loop was not stalled"
        assert not waiting.done()
        fcntl.flock(other, fcntl.LOCK_UN)
        os.close(other)
        await waiting
        assert where[-1].startswith("sqlite-write")

        # A writer that takes no turn holds SQLite's write lock.
        raw = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
        raw.execute("BEGIN IMMEDIATE")
        waiting = asyncio.create_task(tx.write_keyed(create("lock@x.example")))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        raw.execute("COMMIT")
        raw.close()
        await waiting
        assert where[-1].startswith("sqlite-write")

        names = await tx.read(lambda s: all_user_names(s, ""))
        assert {"here@x.example", "turn@x.example", "lock@x.example"} <= set(names)
        await tx.write_keyed(create("again@x.example"))
        assert where[-1] == threading.current_thread().name, "free again: in place again"
    finally:
        tx.close()
        await engine.dispose()


async def test_keyed_and_other_writes_asked_at_once_keep_their_order_and_fail_alone(
    tx: db.Transactions,
) -> None:
    """Keyed writes (in place when the writer is idle) and other writes (on the writer thread) asked
    for together run in the order asked, each seeing those before it; one that fails is undone alone."""
    if not tx.queues_writes:
        pytest.skip("on PostgreSQL writes asked for at once run side by side")
    tag = uuid.uuid4().hex[:8]

    def create(i: int, *, fail: bool = False) -> Any:
        async def unit(s: Any) -> int:
            s.add(UserState(user=f"{tag}-{i}@x.example"))
            await s.flush()
            if fail:
                raise ValueError(f"refused {i}")
            return len((await s.exec(select(UserState).where(col(UserState.user).startswith(tag)))).all())

        return unit

    writes = [(tx.write_keyed if i % 3 else tx.write)(create(i, fail=(i == 4))) for i in range(10)]
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert isinstance(results[4], ValueError)
    assert [r for i, r in enumerate(results) if i != 4] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert len(await tx.read(lambda s: all_user_names(s, tag))) == 9


async def test_in_place_writes_leave_the_wal_checkpoint_to_the_writer_thread(tmp_path: Any) -> None:
    """The in-place writer never checkpoints the WAL on the event loop (a checkpoint syncs to disk);
    every `CHECKPOINT_EVERY` in-place commits a passive checkpoint runs on the writer thread."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    migrate(url)
    engine = db.create_engine(url)
    tx = db.Transactions(db.session_factory(engine))
    assert tx.threads is not None
    checkpointed_on: list[str] = []
    sqlalchemy_event.listen(
        tx.threads.writer, "checkout", lambda *_: checkpointed_on.append(threading.current_thread().name)
    )
    try:
        for i in range(db.CHECKPOINT_EVERY):
            await tx.write_keyed(lambda s, i=i: _add(s, UserState(user=f"{i}@x.example")))
        for _ in range(50):
            if tx.threads.checkpoints:
                break
            await asyncio.sleep(0.02)
        assert tx.threads.checkpoints == 1
        assert checkpointed_on and all(name.startswith("sqlite-write") for name in checkpointed_on)
        with tx.threads.here_writer.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    finally:
        tx.close()
        await engine.dispose()


async def test_a_keyed_write_on_an_idle_writer_ends_without_a_round_of_the_event_loop(tmp_path: Any) -> None:
    """ADR 0058: with nothing queued or running, a keyed write runs in its caller's coroutine; under
    load each round of the loop (to start a send, to hear its answer) costs milliseconds."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    migrate(url)
    engine = db.create_engine(url)
    tx = db.Transactions(db.session_factory(engine))
    try:
        coro = tx.write_keyed(lambda s: _add(s, UserState(user="now@x.example")))
        with pytest.raises(StopIteration):
            coro.send(None)  # finished at its first step: it never waited for the loop

        async def refused(s: Any) -> None:
            s.add(UserState(user="refused@x.example"))
            await s.flush()
            raise ValueError("refused")

        coro = tx.write_keyed(refused)
        with pytest.raises(ValueError, match="refused"):
            coro.send(None)
        names = await tx.read(lambda s: all_user_names(s, ""))
        assert "now@x.example" in names and "refused@x.example" not in names
    finally:
        tx.close()
        await engine.dispose()
