"""`/healthz` (the process is alive) and `/readyz` (its broker and database answer).

`/readyz` runs its checks side by side, each bounded by `timeout_s`, so it answers within that bound
whatever hangs (a partitioned database, a broker that does not answer): 200 when every check passed,
503 with each failing check and its reason otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

Check = Callable[[], Awaitable[None]]


async def database_ready(engine: AsyncEngine, lock_wait_s: float = 0.8) -> None:
    """Raise unless the database answers and would take a write now.

    PostgreSQL: a round trip (`SELECT 1`; the pool's pre-ping replaces dead connections). SQLite: the
    write lock is taken and released at once (`BEGIN IMMEDIATE`; `ROLLBACK`), waiting at most
    `lock_wait_s` for it: reads go on under another connection's write lock (WAL), so `SELECT 1` would
    say ready while every write waits for the busy timeout and fails with "database is locked".
    """
    async with engine.connect() as conn:
        if engine.dialect.name != "sqlite":
            await conn.execute(text("SELECT 1"))
            return
        busy = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
        await conn.exec_driver_sql(f"PRAGMA busy_timeout={int(lock_wait_s * 1000)}")
        try:
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
            await conn.exec_driver_sql("ROLLBACK")
        finally:
            await conn.exec_driver_sql(f"PRAGMA busy_timeout={int(busy or 0)}")


class _Probe:
    """Runs one named check with a bound on the answer, not on the check: a check that overruns is
    cancelled and left to finish in the background (a driver's cancellation may itself wait on the
    network, e.g. psycopg's cancel request to a partitioned server). Callers while a run is going share
    it; no new run starts before an overrunning one has finished."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.task: asyncio.Future[None] | None = None
        self.since = 0.0

    async def __call__(self, check: Check) -> str:
        now = asyncio.get_running_loop().time()
        if self.task is None or self.task.done():
            self.task, self.since = asyncio.ensure_future(check()), now
            self.task.add_done_callback(_consume)
        task = self.task
        remaining = self.timeout_s - (now - self.since)
        if remaining <= 0:
            return f"failing: no answer for {now - self.since:.1f}s (check still running)"
        done, _ = await asyncio.wait({task}, timeout=remaining)
        if not done:
            task.cancel()
            return f"failing: no answer within {self.timeout_s:g}s"
        if task.cancelled():
            return f"failing: no answer within {self.timeout_s:g}s"
        exc = task.exception()
        return "ok" if exc is None else f"failing: {type(exc).__name__}: {exc}"[:300]


def _consume(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()


def health_router(checks: Callable[[], dict[str, Check]], timeout_s: float = 2.0) -> APIRouter:
    """Router with the two probes; `checks` returns the named readiness checks of the moment."""
    router = APIRouter(tags=["health"])
    probes: dict[str, _Probe] = {}

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        named = checks()
        runs = [probes.setdefault(name, _Probe(timeout_s))(check) for name, check in named.items()]
        results = dict(zip(named, await asyncio.gather(*runs), strict=True))
        failing = [n for n, r in results.items() if r != "ok"]
        status = 503 if failing else 200
        body = {"status": "ready" if not failing else "not ready", "checks": results, "failing": failing}
        return JSONResponse(body, status_code=status)

    return router
