"""sync-core's worker processes (`SYNC_CORE_WORKERS`, ADR 0055): each consumes its own shards, and the
main process stands in for one that dies (it is then started again) — nothing lost, nothing twice."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import psutil
import pytest

from shared.envelope import Kind, shard_of
from sync_core.workers import own_shards
from tests.support.items import at, event_body, meeting_body
from tests.support.system import USER_EMAIL, System, eventually, running_system


async def workers() -> list[psutil.Process]:
    """This test's sync-core worker processes (children of the test process, which runs the main one)."""
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "sync_core.worker" in " ".join(p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except psutil.Error:
            continue
    return found


@pytest.fixture
async def system(common_settings, database_url, tmp_path) -> AsyncIterator[System]:  # type: ignore[no-untyped-def]
    async with running_system(common_settings, database_url, tmp_path, sync_overrides={"sync_core_workers": 2}) as s:
        yield s

    # The main process stops its workers with itself.
    async def none_left() -> bool:
        return not await workers()

    await eventually(none_left, timeout=30)


async def in_erp(system: System, subject: str) -> bool:
    return any(a["subject"] == subject for a in await system.erp_items("activities"))


async def in_outlook(system: System, subject: str) -> bool:
    return any(e["data"]["subject"] == subject for e in await system.sim_items("events"))


async def test_a_worker_consumes_its_own_shards_and_the_main_process_stands_in_when_it_dies_R22(
    system: System,
) -> None:
    settings = system.sync_settings
    assert settings is not None
    shard = shard_of(settings.tenant, USER_EMAIL, Kind.EVENT, settings.sync_shards)
    assert shard in own_shards(settings.sync_shards, 2, 1), "the test user's calendar must be the worker's"
    (worker,) = await eventually(workers, timeout=30)
    async with httpx.AsyncClient(base_url=system.sync_url) as c:
        ready = (await c.get("/readyz")).json()
    assert ready["checks"]["workers"] == "ok", ready

    # The worker is the calendar's consumer: frozen, it holds its queue and nothing moves; the main
    # process, subscribed after it, only stands by.
    os.kill(worker.pid, signal.SIGSTOP)
    try:
        await system.graph.post_json(f"{system.user_path()}/events", json=event_body("While frozen", at(days=2)))
        with pytest.raises(AssertionError):
            await eventually(lambda: in_erp(system, "While frozen"), timeout=3)
    finally:
        os.kill(worker.pid, signal.SIGCONT)
    await eventually(lambda: in_erp(system, "While frozen"), timeout=20)

    # Killed: the broker hands its queues to the main process at once, and the worker is started again.
    os.kill(worker.pid, signal.SIGKILL)
    start = at(days=3)
    await system.erp_write("POST", "activities", meeting_body("After the kill", start), expect=201)
    await system.graph.post_json(
        f"{system.user_path()}/events", json=event_body("Outlook after the kill", start + timedelta(hours=2))
    )
    await eventually(lambda: in_outlook(system, "After the kill"), timeout=20)
    await eventually(lambda: in_erp(system, "Outlook after the kill"), timeout=20)

    async def replaced() -> bool:
        return any(p.pid != worker.pid for p in await workers())

    await eventually(replaced, timeout=30)
    async with httpx.AsyncClient(base_url=system.sync_url) as c:

        async def ready_again() -> bool:
            return (await c.get("/readyz")).status_code == 200

        await eventually(ready_again, timeout=30)

    # Each item once on each side (R22).
    erp = [a["subject"] for a in await system.erp_items("activities")]
    outlook = [e["data"]["subject"] for e in await system.sim_items("events")]
    assert sorted(erp) == sorted(set(erp)) and sorted(outlook) == sorted(set(outlook))
    assert {"While frozen", "After the kill", "Outlook after the kill"} <= set(erp) & set(outlook)
    assert not await system.journal(outcome="failed")
