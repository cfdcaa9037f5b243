"""CPU of one ERP create, in-process, by how it is written: what the ERP's write path costs and what a
rewrite would gain (docs/benchmarks.md, "Session 5"). Not part of `python -m bench` (no goal of its own):

    .venv/bin/python -m bench.erp_create [--creates 300] [--rounds 3]

Variants, alternating in rounds on one SQLite database (WAL, as the services), To Do tasks from
Outlook with an idempotency key (the initial sync's creates), median CPU per create (all threads,
aiosqlite's included):
- `orm_per_create`: `UnitOfWork.write` of `ErpStore.create_activity` — what the ERP does for one
  `POST /activities` or one request of a `POST /batch`: since ADR 0028 the whole transaction on
  SQLite's writer thread (`shared.db.Transactions`), over a blocking session.
- `orm_on_event_loop`: the same unit of work as before ADR 0028: an `AsyncSession` on aiosqlite,
  each statement handed to aiosqlite's thread and back.
- `orm_20_in_one_transaction`: the same store calls, 20 in one transaction (no savepoints), on
  aiosqlite.
- `core_bare_connection`: the same six statements (idempotency lookup, representative, chrono counter
  `UPDATE … RETURNING`, chrono check, two inserts) as prebuilt Core statements on a connection,
  without a `Session`. A prototype of the proposed write path: it skips the store's checks that a
  task from Outlook does not need (no partner, contact or overlap) and builds no answer model.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from erp_connector.app import migrate
from erp_connector.database import Database
from erp_connector.models import Activity, ChronoCounter, IdempotencyRecord, Origin, Representative
from erp_connector.schemas import ActivityCreate, RepresentativeCreate
from erp_connector.store import ErpStore
from erp_connector.unit_of_work import UnitOfWork, WriteRequest

ACT, KEYS, CHRONOS, REPS = (m.__table__ for m in (Activity, IdempotencyRecord, ChronoCounter, Representative))  # type: ignore[union-attr,attr-defined]
FIND_KEY = select(KEYS.c.key, KEYS.c.fingerprint).where(KEYS.c.key == bindparam("key"))
FIND_REP = select(REPS).where(REPS.c.code == bindparam("code"))
NEXT_CHRONO = (
    update(CHRONOS).where(CHRONOS.c.prefix == bindparam("p")).values(last=CHRONOS.c.last + 1).returning(CHRONOS.c.last)
)
CHRONO_TAKEN = select(ACT.c.id).where(ACT.c.chrono == bindparam("chrono"))
INSERT_ACTIVITY = insert(ACT).returning(ACT.c.id)
INSERT_KEY = insert(KEYS)


class Bench:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.uow = UnitOfWork(db)
        self.n = 0

    def task(self) -> tuple[str, ActivityCreate]:
        self.n += 1
        data = ActivityCreate(
            kind="task", subject=f"T{self.n}", due="2030-03-05T00:00:00Z", representative="REP01", origin="outlook"
        )  # type: ignore[arg-type]
        return f"k{self.n}", data

    async def orm_per_create(self) -> None:
        key, data = self.task()
        request = WriteRequest(idempotency_key=key, fingerprint="f", origin=Origin.OUTLOOK)
        await self.uow.write(request, lambda erp: erp.create_activity(data), status_code=201)

    async def orm_on_event_loop(self) -> None:
        key, data = self.task()
        async with self.db.write() as session:
            await session.get(IdempotencyRecord, key)
            made = await ErpStore(session, origin=Origin.OUTLOOK).create_activity(data)
            body = made.model_dump(mode="json")
            session.add(IdempotencyRecord(key=key, fingerprint="f", status_code=201, body=body))

    async def orm_20_in_one_transaction(self) -> None:
        async with self.db.write() as session:
            for _ in range(20):
                key, data = self.task()
                await session.get(IdempotencyRecord, key)
                made = await ErpStore(session, origin=Origin.OUTLOOK).create_activity(data)
                body = made.model_dump(mode="json")
                session.add(IdempotencyRecord(key=key, fingerprint="f", status_code=201, body=body))

    async def core_bare_connection(self) -> None:
        key, data = self.task()
        assert self.db.transactions.write_lock is not None
        async with self.db.transactions.write_lock, self.db.engine.begin() as conn:  # the ERP's writer turn, no Session
            (await conn.execute(FIND_KEY, {"key": key})).first()
            (await conn.execute(FIND_REP, {"code": "REP01"})).first()
            chrono = f"TSK{(await conn.execute(NEXT_CHRONO, {'p': 'TSK'})).scalar_one():06d}"
            (await conn.execute(CHRONO_TAKEN, {"chrono": chrono})).first()
            now = datetime.now(UTC)
            row: dict[str, Any] = {
                "kind": "task", "chrono": chrono, "subject": data.subject, "start": None, "end": data.due,
                "due": data.due, "all_day": False, "location": None, "notes": None, "done": False,
                "partner_code": None, "contact_id": None, "representative": "REP01", "participants": [],
                "public": True, "origin": "outlook", "time_spent_minutes": None, "version": 1,
                "created_at": now, "updated_at": now, "deleted": False,
            }  # fmt: skip
            new_id = (await conn.execute(INSERT_ACTIVITY, row)).scalar_one()
            body = {"id": new_id, "chrono": chrono, "subject": data.subject}
            await conn.execute(
                INSERT_KEY, {"key": key, "fingerprint": "f", "status_code": 201, "body": body, "created_at": now}
            )


async def run(creates: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'erp.db'}"
        migrate(url)
        db = Database(url)
        bench = Bench(db)
        rep = RepresentativeCreate(code="REP01", name="Ana", email="ana@contoso.example", sales_role=True)
        await bench.uow.write(WriteRequest(), lambda erp: erp.create_representative(rep))
        variants: dict[str, tuple[Callable[[], Awaitable[None]], int]] = {
            "orm_per_create": (bench.orm_per_create, 1),
            "orm_on_event_loop": (bench.orm_on_event_loop, 1),
            "orm_20_in_one_transaction": (bench.orm_20_in_one_transaction, 20),
            "core_bare_connection": (bench.core_bare_connection, 1),
        }
        for fn, per_call in variants.values():  # warm caches (statements, pools) before timing
            for _ in range(max(1, 40 // per_call)):
                await fn()
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, (fn, per_call) in variants.items():
                calls = max(1, creates // per_call)
                started = time.process_time()
                for _ in range(calls):
                    await fn()
                samples[name].append((time.process_time() - started) / (calls * per_call) * 1000)
        await db.dispose()
    for name, values in samples.items():
        rounds_ms = ", ".join(f"{v:.2f}" for v in values)
        print(f"{name:28} {statistics.median(values):6.2f} ms CPU per create  (rounds: {rounds_ms})")
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--creates", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.creates, args.rounds))


if __name__ == "__main__":
    main()
