"""Focused reliability tests: sync-core stopped mid-batch, poison messages and the dead-letter queue,
duplicate notifications and ERP events, the broker connections dropped under load, and a lost
Outlook deletion across an expired delta token."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import timedelta

import aio_pika
import pytest

from shared.bus import Bus
from shared.envelope import Envelope, Kind, MessageType
from tests.reliability.support import Harness, dead_letter_queues, own_broker_connection_names
from tests.support.items import at, event_body, meeting_body
from tests.support.system import System, eventually


async def both_sides(system: System) -> tuple[list[str], list[str]]:
    """(ERP activity subjects, Outlook event subjects and task titles), sorted, duplicates kept."""
    erp = sorted(a["subject"] for a in await system.erp_items("activities") if not a["deleted"])
    outlook = sorted(
        [e["data"]["subject"] for e in await system.sim_items("events")]
        + [t["data"]["title"] for t in await system.sim_items("tasks")]
    )
    return erp, outlook


async def converged(system: System, expected: list[str]) -> bool:
    erp, outlook = await both_sides(system)
    return erp == sorted(expected) == outlook


async def batch(system: System, tag: str, n: int, day: int) -> list[str]:
    """n ERP meetings, n Outlook events and n To Do tasks, all at once; returns their names."""
    tasks = await system.tasks_path()
    work = []
    names = []
    for i in range(n):
        start = at(days=day + i // 4, hour=7 + 3 * (i % 4))
        names += [f"{tag} ERP {i}", f"{tag} Outlook {i}", f"{tag} task {i}"]
        work += [
            system.erp_write("POST", "activities", meeting_body(f"{tag} ERP {i}", start), expect=201),
            system.graph.post_json(
                f"{system.user_path()}/events", json=event_body(f"{tag} Outlook {i}", start + timedelta(hours=1))
            ),
            system.graph.post_json(tasks, json={"title": f"{tag} task {i}"}),
        ]
    await asyncio.gather(*work)
    return names


async def test_crash_sync_core_stopped_mid_batch_loses_and_duplicates_nothing(harness: Harness) -> None:
    system = harness.system
    first = asyncio.create_task(batch(system, "Crash", 8, day=3))
    await asyncio.sleep(0.3)  # mid-batch: some messages handled, some in flight, some queued
    await harness.stop_sync_core()
    names = await first
    names += await batch(system, "While down", 3, day=8)  # piles up on the queues
    await asyncio.sleep(0.5)
    erp, outlook = await both_sides(system)
    assert len(outlook) < len(names) or len(erp) < len(names)  # really mid-batch: not everything had crossed
    await harness.start_sync_core()
    await eventually(lambda: converged(system, names), timeout=40)
    await asyncio.sleep(1.0)  # late redeliveries would show up as duplicates now
    assert await converged(system, names)
    assert not await system.journal(outcome="failed")


async def test_dead_letter_poison_message_retries_with_growing_delay_then_replays_after_the_fix(system: System) -> None:
    assert system.common is not None
    delays = system.common.retry_delays_ms
    assert delays == sorted(delays) and len(set(delays)) == len(delays)  # growing
    # Graph fails for good (a 503 on every request): the ERP meeting's change cannot be applied.
    await system.sim_control("POST", "faults", {"force_503": {"count": 100000, "retry_after": 0.01}})
    began = time.monotonic()
    meeting = await system.erp_write("POST", "activities", meeting_body("Poison", at(days=4)), expect=201)

    async with dead_letter_queues(system) as dlq:
        queue = dlq.groups()["sync-core"]

        async def dead() -> list:
            return [d for d in await dlq.list(queue) if d.type == MessageType.ERP_CHANGED.value]

        [letter] = await eventually(dead, timeout=60, interval=0.3)
        elapsed = time.monotonic() - began
        assert letter.attempts == len(delays) + 1  # the first try and one per retry queue
        assert elapsed >= sum(delays) / 1000  # it waited in each retry queue in turn
        assert letter.original_queue and "503" in str(letter.error)
        assert [e for e in await system.sim_items("events") if e["data"]["subject"] == "Poison"] == []

        # The fix: Graph answers again. The replayed message goes through, exactly once.
        await system.sim_control("POST", "faults", {"force_503": {"count": 0}})
        assert await dlq.replay_all(queue, by="test") >= 1

        async def mirrored() -> list:
            return [e for e in await system.sim_items("events") if e["data"]["subject"] == "Poison"]

        await eventually(mirrored, timeout=20)
        assert await dead() == []
    await asyncio.sleep(0.5)
    assert len(await mirrored()) == 1
    assert [a["id"] for a in await system.erp_items("activities")] == [meeting["id"]]


async def test_dead_letter_malformed_envelope_goes_straight_to_the_queue_and_can_be_discarded(system: System) -> None:
    assert system.common is not None
    bus = Bus(system.common, "tests-reliability")
    await bus.connect()
    try:
        probe = Envelope(type=MessageType.ERP_CHANGED, tenant=system.common.tenant, user="x@y", kind=Kind.EVENT)
        assert bus._exchange is not None
        await bus._exchange.publish(
            aio_pika.Message(b'{"type": "erp.changed", "tenant": ', message_id="malformed-1"),
            routing_key=probe.routing_key(system.common.sync_shards),
        )
    finally:
        await bus.close()
    async with dead_letter_queues(system) as dlq:
        queue = dlq.groups()["sync-core"]

        async def dead() -> list:
            return [d for d in await dlq.list(queue) if d.key == "malformed-1"]

        [letter] = await eventually(dead, timeout=20, interval=0.3)
        assert letter.attempts == 0 and "invalid envelope" in str(letter.error)  # no retry can fix it
        assert await dlq.discard(queue, "malformed-1") is not None
        assert await dead() == []
    # The consumer is still alive: the next change goes through.
    await system.erp_write("POST", "activities", meeting_body("After poison", at(days=5)), expect=201)
    await eventually(lambda: converged(system, ["After poison"]))


async def test_duplicate_notifications_and_duplicate_erp_events_have_one_effect(system: System) -> None:
    assert system.common is not None
    await system.sim_control("POST", "faults", {"notifications": {"duplicate_ratio": 1.0, "seed": 9}})
    tasks = await system.tasks_path()
    names = []
    for i in range(4):
        names += [f"Dup Outlook {i}", f"Dup task {i}"]
        await system.graph.post_json(
            f"{system.user_path()}/events", json=event_body(f"Dup Outlook {i}", at(days=3, hour=7 + 2 * i))
        )
        await system.graph.post_json(tasks, json={"title": f"Dup task {i}"})
    await system.graph.post_json(
        f"{system.user_path()}/contacts",
        json={"givenName": "Dup", "surname": "Contact", "emailAddresses": [{"address": "dup@acme.example"}]},
    )
    meeting = await system.erp_write("POST", "activities", meeting_body("Dup ERP", at(days=6)), expect=201)
    names.append("Dup ERP")
    await eventually(lambda: converged(system, names), timeout=30)

    # The ERP's event again: the same envelope twice (a redelivery) and two new envelopes (a re-send).
    env = Envelope(
        type=MessageType.ERP_CHANGED,
        tenant=system.common.tenant,
        user="ana.silva@contoso.example",
        kind=Kind.EVENT,
        payload={"erp_id": meeting["id"]},
    )
    bus = Bus(system.common, "tests-reliability")
    await bus.connect()
    try:
        await bus.publish(env)
        await bus.publish(env)
    finally:
        await bus.close()
    for _ in range(2):
        await system.publish(MessageType.ERP_CHANGED, kind=Kind.EVENT, erp_id=meeting["id"])
    await system.sim_control("POST", "notifications/flush")
    stats = await system.sim_control("GET", "stats")
    assert stats["notifications"]["duplicated"] >= 8  # every Outlook change was notified twice

    # A barrier queued behind the duplicates on the same (user, calendar) queue.
    await system.erp_write("POST", "activities", meeting_body("Dup barrier", at(days=9)), expect=201)
    names.append("Dup barrier")
    await eventually(lambda: converged(system, names), timeout=30)
    assert len([c for c in await system.erp_items("contacts") if c["emails"] == ["dup@acme.example"]]) == 1
    created = Counter(
        (r["kind"], r["direction"], r.get("erp_id") or r.get("graph_id"))
        for r in await system.journal()
        if r["outcome"] == "created"
    )
    assert created and max(created.values()) == 1, created
    assert not await system.journal(outcome="failed")


async def test_broker_connections_dropped_under_load_reconnect_and_nothing_is_lost(harness: Harness) -> None:
    system = harness.system
    load = asyncio.create_task(batch(system, "Load", 8, day=3))
    await asyncio.sleep(0.2)
    closed = await harness.drop_own_broker_connections()
    assert len(closed) >= 3  # erp-connector, graph-webhook and sync-core each lost theirs
    names = await load
    names += await batch(system, "After drop", 3, day=8)  # published while they reconnect
    await eventually(own_broker_connection_names, timeout=20)
    await eventually(lambda: converged(system, names), timeout=60, interval=0.3)
    await asyncio.sleep(1.0)
    assert await converged(system, names)  # nothing lost, nothing twice
    assert not await system.journal(outcome="failed")


async def test_outlook_deletion_across_an_expired_delta_token_reaches_the_erp(system: System) -> None:
    tasks = await system.tasks_path()
    created = await system.graph.post_json(tasks, json={"title": "Deleted while expired"})
    await system.graph.post_json(tasks, json={"title": "Kept"})
    await eventually(lambda: converged(system, ["Deleted while expired", "Kept"]))
    # The deletion is made while notifications are lost, then the delta token expires.
    await system.sim_control("POST", "faults", {"notifications": {"drop_ratio": 1.0}})
    await system.graph.delete(f"{tasks}/{created['id']}")
    await system.sim_control("POST", "notifications/flush")
    await system.sim_control("POST", "faults", {"notifications": {"drop_ratio": 0.0}})
    await system.sim_control("POST", "delta/expire", {"user": system.graph_user_id})
    await system.publish(MessageType.GRAPH_RESYNC, kind=Kind.TASK, reason="test")
    try:
        await eventually(lambda: converged(system, ["Kept"]), timeout=10)
    except AssertionError:
        pytest.xfail(
            "BUG (issue 9): after a 410 syncStateNotFound sync-core restarts the delta from scratch; the fresh "
            "delta returns live items only, so an Outlook deletion not read before the expiry never reaches "
            "the ERP (R20). Fix: after a restarted delta, treat linked items it did not return as removed."
        )
