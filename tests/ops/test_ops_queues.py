"""Queues and dead letters: depth and consumers, failure reason and attempts, replay one / all, discard."""

from __future__ import annotations

import aio_pika
import httpx

from shared.envelope import Kind, MessageType
from tests.support.system import System, eventually

REP05 = {"code": "REP05", "name": "Rita Dias", "email": "rita.dias@contoso.example", "sync_enabled": False}


async def publish_garbage(system: System) -> None:
    """A message no consumer can read: dead-lettered at once as an invalid envelope."""
    assert system.common is not None
    conn = await aio_pika.connect(system.common.amqp_url.get_secret_value())
    try:
        channel = await conn.channel()
        exchange = await channel.get_exchange(f"{system.common.amqp_prefix}sync")
        await exchange.publish(aio_pika.Message(b"not json", message_id="garbage-1"), routing_key="sync.force.0")
    finally:
        await conn.close()


async def test_dead_letters_show_why_and_can_be_replayed_or_discarded(
    ops_system: System, ops: httpx.AsyncClient
) -> None:
    await ops_system.add_user(REP05)
    email = REP05["email"]
    # A force sync for a user who is not enabled keeps failing: retried, then dead-lettered.
    await ops_system.publish(
        MessageType.SYNC_FORCE, kind=Kind.EVENT, user=email, direction="erp_to_outlook", requested_by="tests:dlq"
    )
    await publish_garbage(ops_system)

    async def two() -> list[dict] | None:
        rows = (await ops.get("/api/v1/ops/dead-letters/sync-core")).json()
        return rows if len(rows) >= 2 else None

    letters = {d["key"]: d for d in await eventually(two, timeout=15)}
    garbage = letters.pop("garbage-1")
    assert garbage["error"].startswith("invalid envelope") and garbage["original_queue"].endswith("sync-core.s0")
    [force] = letters.values()
    assert force["type"] == "sync.force" and force["user"] == email and force["kind"] == "event"
    assert "UserUnavailable" in force["error"] and "not enabled" in force["error"]
    assert force["attempts"] == 4, "first try and three retries"
    assert force["dead_lettered_at"] and force["original_queue"]
    # Listing leaves them where they are.
    assert len((await ops.get("/api/v1/ops/dead-letters/sync-core")).json()) == 2

    stats = {q["name"]: q for q in (await ops.get("/api/v1/ops/queues")).json()}
    dlq = next(q for name, q in stats.items() if name.endswith("sync-core.dlq"))
    assert dlq["role"] == "dead-letter" and dlq["messages"] == 2
    work = [q for q in stats.values() if q["role"] == "work"]
    assert len(work) == 4 and all(q["consumers"] == 1 for q in work)
    assert any(name.endswith("graph-webhook.dlq") for name in stats)

    r = await ops.delete("/api/v1/ops/dead-letters/sync-core/garbage-1")
    assert r.status_code == 200 and r.json()["key"] == "garbage-1"
    assert (await ops.delete("/api/v1/ops/dead-letters/sync-core/garbage-1")).status_code == 404

    # Fixed the cause (the user is enabled now): the replayed message goes through.
    assert (await ops.post(f"/api/v1/ops/users/{email}/enable")).status_code == 200
    r = await ops.post(f"/api/v1/ops/dead-letters/sync-core/{force['key']}/replay")
    assert r.status_code == 200, r.text

    async def forced() -> list[dict]:
        return await ops_system.journal(user=email, outcome="forced", actor="tests:dlq")

    await eventually(forced, timeout=15)
    assert (await ops.get("/api/v1/ops/dead-letters/sync-core")).json() == []
    assert (await ops.post("/api/v1/ops/dead-letters/sync-core/replay-all")).json() == {"count": 0}
    assert (await ops.delete("/api/v1/ops/dead-letters/graph-webhook")).json() == {"count": 0}
    assert (await ops.get("/api/v1/ops/dead-letters/elsewhere")).status_code == 404

    actions = {a["details"]["action"] for a in await ops_system.journal(outcome="audit", actor="ops-api:tests")}
    assert {"dlq.replay", "dlq.discard", "dlq.replay-all", "dlq.discard-all"} <= actions
    [replayed] = [
        a for a in await ops_system.journal(outcome="audit", user=email) if a["details"]["action"] == "dlq.replay"
    ]
    assert force["key"] in replayed["reason"]


async def test_replay_all_puts_every_dead_letter_back(ops_system: System, ops: httpx.AsyncClient) -> None:
    for _ in range(3):
        await publish_garbage(ops_system)

    async def three() -> bool:
        return len((await ops.get("/api/v1/ops/dead-letters/sync-core")).json()) == 3

    await eventually(three, timeout=10)
    assert (await ops.post("/api/v1/ops/dead-letters/sync-core/replay-all")).json() == {"count": 3}
    # Still unreadable: they come straight back, replayed once.

    async def back() -> list[dict] | None:
        rows = (await ops.get("/api/v1/ops/dead-letters/sync-core")).json()
        return rows if len(rows) == 3 else None

    rows = await eventually(back, timeout=10)
    assert all(d["attempts"] == 0 and d["replays"] == 1 for d in rows)
    assert (await ops.delete("/api/v1/ops/dead-letters/sync-core")).json() == {"count": 3}
