"""broker_restart (issue 9): RabbitMQ really restarted under load. The system runs on a private RabbitMQ
node (`tests/support/rabbitmq_node.py`; the machine's broker is shared and never restarted), which is
stopped (`stop_app`, or SIGKILL of the whole node) in the middle of a batch and started again while more
changes are made on both sides. Publishers (erp-connector's outbox relay, graph-webhook's intake,
sync-core) and consumers reconnect by themselves; every change arrives exactly once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from shared.settings import CommonSettings
from tests.reliability.support import assert_each_once
from tests.reliability.test_reliability_focused import batch, both_sides, converged
from tests.support.items import at, event_body
from tests.support.rabbitmq_node import RabbitNode, private_rabbitmq  # noqa: F401 - the session fixture
from tests.support.system import System, eventually, running_system

SERVICES = {"erp-connector", "graph-webhook", "sync-core"}


@pytest.fixture
async def private_system(private_rabbitmq: RabbitNode, database_url: str, tmp_path) -> AsyncIterator[System]:  # type: ignore[no-untyped-def]  # noqa: F811
    common = CommonSettings(
        amqp_url=private_rabbitmq.url,  # type: ignore[arg-type]
        amqp_prefix=f"t{uuid.uuid4().hex[:8]}.",
        environment="test",
        retry_delays_ms=[100, 300, 600],
        sync_shards=4,
        log_json=False,
    )
    async with running_system(common, database_url, tmp_path) as system:
        try:
            yield system
        finally:
            await private_rabbitmq.aensure_up()  # a failed test must not leave the next ones without it


async def connections(node: RabbitNode) -> int:
    """Open AMQP connections on the private node: one per service (their `Bus`) when all are connected."""
    listing = await asyncio.to_thread(node.ctl, "list_connections", "peer_port", "state")
    return sum(1 for line in listing.splitlines() if line.strip().endswith("running"))


@pytest.mark.parametrize("how", ["stop_app", "kill"])
async def test_broker_restart_under_load_reconnects_and_loses_nothing(
    private_system: System,
    private_rabbitmq: RabbitNode,  # noqa: F811
    how: str,
) -> None:
    system, node = private_system, private_rabbitmq
    assert await connections(node) == len(SERVICES)
    began = time.monotonic()

    # The broker goes away 0.3 s into a batch of 24 changes. While it is down 9 more changes are made
    # (the ERP's wait in the outbox; Outlook's notifications are refused with 503, the simulator retries
    # for ~3 s, then sends a `missed` lifecycle notification, which is refused too): it stays down 4 s more.
    load = asyncio.create_task(batch(system, "Load", 8, day=3))
    await asyncio.sleep(0.3)
    await node.astop(how)
    stopped = time.monotonic()
    names = await load
    names += await batch(system, "While down", 3, day=8)
    await asyncio.sleep(4.0)
    erp, outlook = await both_sides(system)
    assert len(erp) < len(names) or len(outlook) < len(names)  # the broker really went away mid-batch
    await node.astart(how)
    restarted = time.monotonic()
    down_s = restarted - stopped

    # Nothing more happens: whatever was in flight or made while it was down must arrive by itself.
    await eventually(lambda: converged(system, names), timeout=60, interval=0.3)
    caught_up_s = time.monotonic() - restarted

    async def all_back() -> bool:
        return await connections(node) == len(SERVICES)

    await eventually(all_back, timeout=20)

    # Publishers and consumers work after the reconnection.
    names += await batch(system, "After", 2, day=12)
    await eventually(lambda: converged(system, names), timeout=30, interval=0.3)
    await assert_each_once(system, names)
    print(
        f"broker_restart figures: how={how} changes={len(names)} down_s={down_s:.1f} "
        f"caught_up_after_restart_s={caught_up_s:.1f} "
        f"total_s={time.monotonic() - began:.1f}"
    )


async def test_notifications_refused_while_broker_down_heal_after_graph_gives_up(
    private_system: System,
    private_rabbitmq: RabbitNode,  # noqa: F811
) -> None:
    """Graph redelivers a refused notification only for a while, then sends `missed`, which graph-webhook
    must refuse too while the broker is away. Here the simulator gives up on both before the broker is
    back: the changes still arrive, because each refusal noted durably that a resync is owed, and the
    broker's return publishes it (no `missed` notice, no reconcile, nothing else happens)."""
    system, node = private_system, private_rabbitmq
    notifier = system.sim.sim.notifier
    system.sim.sim.config.delivery_max_attempts = 2  # ~0.2 s of redelivery instead of ~3 s
    await node.astop("stop_app")
    names = []
    for i in range(3):
        name = f"Refused Outlook {i}"
        await system.graph.post_json(f"{system.user_path()}/events", json=event_body(name, at(days=20, hour=8 + 2 * i)))
        names.append(name)
    tasks = await system.tasks_path()
    await system.graph.post_json(tasks, json={"title": "Refused task"})
    names.append("Refused task")

    async def graph_gave_up() -> bool:
        # Every change notification and every `missed` notice failed for good.
        counters = notifier.counters
        return (
            notifier.outstanding == 0
            and counters.missed_sent >= 2
            and counters.lifecycle_failed >= counters.missed_sent
        )

    await eventually(graph_gave_up, timeout=30, interval=0.2)
    erp, _ = await both_sides(system)
    assert not set(names) & set(erp)
    await node.astart("stop_app")
    await eventually(lambda: converged(system, names), timeout=45, interval=0.3)
    await assert_each_once(system, names)
