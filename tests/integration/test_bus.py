"""The bus against the real RabbitMQ: confirms, acks, retries, dead letters, trace context."""

from __future__ import annotations

import asyncio

import aio_pika
from opentelemetry import trace

from shared.bus import Bus
from shared.envelope import Envelope, Kind, MessageType
from shared.errors import BrokerUnavailable, PermanentError
from shared.settings import CommonSettings


def _env(user: str = "ann@example.com", **payload: object) -> Envelope:
    return Envelope(type=MessageType.ERP_CHANGED, tenant="t", user=user, kind=Kind.EVENT, payload=dict(payload))


async def _dlq_count(settings: CommonSettings) -> int:
    conn = await aio_pika.connect(settings.amqp_url.get_secret_value())
    async with conn:
        ch = await conn.channel()
        q = await ch.declare_queue(f"{settings.amqp_prefix}sync-core.dlq", passive=True)
        return q.declaration_result.message_count or 0


async def _start(settings: CommonSettings, handler) -> Bus:  # type: ignore[no-untyped-def]
    bus = Bus(settings, "test")
    await bus.connect()
    for shard in range(settings.sync_shards):
        await bus.consume(bus.topology.sync_core_queue(shard), handler)
    return bus


async def test_published_message_is_consumed_once_and_carries_the_trace(common_settings, span_exporter) -> None:
    got: list[tuple[Envelope, str]] = []
    done = asyncio.Event()

    async def handler(env: Envelope) -> None:
        ctx = trace.get_current_span().get_span_context()
        got.append((env, format(ctx.trace_id, "032x")))
        done.set()

    bus = await _start(common_settings, handler)
    try:
        with trace.get_tracer("test").start_as_current_span("origin") as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            sent = _env(n=1)
            await bus.publish(sent)
        await asyncio.wait_for(done.wait(), 5)
        await asyncio.sleep(0.2)
    finally:
        await bus.close()
    assert [e.id for e, _ in got] == [sent.id]
    assert got[0][1] == trace_id, "the consumer span must continue the publisher's trace"


async def test_failing_handler_retries_then_dead_letters_with_reason(common_settings) -> None:
    attempts: list[int] = []

    async def handler(env: Envelope) -> None:
        attempts.append(1)
        raise RuntimeError("erp said no")

    bus = await _start(common_settings, handler)
    try:
        await bus.publish(_env())
        for _ in range(100):
            if await _dlq_count(common_settings) == 1:
                break
            await asyncio.sleep(0.1)
    finally:
        await bus.close()
    assert len(attempts) == 1 + len(common_settings.retry_delays_ms)
    assert await _dlq_count(common_settings) == 1


async def test_permanent_error_goes_straight_to_dead_letters(common_settings) -> None:
    calls: list[int] = []

    async def handler(env: Envelope) -> None:
        calls.append(1)
        raise PermanentError("unknown partner #XX#")

    bus = await _start(common_settings, handler)
    try:
        await bus.publish(_env())
        for _ in range(50):
            if await _dlq_count(common_settings) == 1:
                break
            await asyncio.sleep(0.1)
    finally:
        await bus.close()
    assert calls == [1]
    assert await _dlq_count(common_settings) == 1


async def test_messages_of_one_user_are_handled_one_at_a_time_in_order(common_settings) -> None:
    running = 0
    overlap = False
    seen: list[int] = []
    done = asyncio.Event()

    async def handler(env: Envelope) -> None:
        nonlocal running, overlap
        running += 1
        overlap = overlap or running > 1
        await asyncio.sleep(0.01)
        seen.append(int(env.payload["n"]))
        running -= 1
        if len(seen) == 20:
            done.set()

    bus = await _start(common_settings, handler)
    try:
        for n in range(20):
            await bus.publish(_env(n=n))
        await asyncio.wait_for(done.wait(), 10)
    finally:
        await bus.close()
    assert not overlap
    assert seen == list(range(20))


async def test_publish_without_broker_raises_broker_unavailable(common_settings) -> None:
    bus = Bus(common_settings, "test")
    try:
        await bus.publish(_env())
    except BrokerUnavailable:
        return
    raise AssertionError("publish on a disconnected bus must raise")


async def test_a_closing_replica_finishes_running_work_before_another_takes_the_queue_over(common_settings) -> None:
    """ADR 0002 across replicas: the broker activates the standby consumer when the active one cancels,
    so the closing replica must not still be running a message of the key (it hands the rest over)."""
    log: list[tuple[str, str, int]] = []
    first_running = asyncio.Event()
    release = asyncio.Event()
    second_done = asyncio.Event()

    def handler(replica: str):  # type: ignore[no-untyped-def]
        async def handle(env: Envelope) -> None:
            n = int(env.payload["n"])
            log.append((replica, "start", n))
            if n == 1:
                first_running.set()
                await release.wait()
            log.append((replica, "end", n))
            if n == 2:
                second_done.set()

        return handle

    active = await _start(common_settings, handler("a"))
    standby = await _start(common_settings, handler("b"))
    try:
        await active.publish(_env(n=1))
        await active.publish(_env(n=2))
        await asyncio.wait_for(first_running.wait(), 5)
        closing = asyncio.create_task(active.close())
        await asyncio.sleep(0.3)
        assert log == [("a", "start", 1)], "nothing may start on the standby while the key runs on the active"
        release.set()
        await asyncio.wait_for(closing, 5)
        await asyncio.wait_for(second_done.wait(), 5)
    finally:
        release.set()
        await standby.close()
    assert log == [("a", "start", 1), ("a", "end", 1), ("b", "start", 2), ("b", "end", 2)]
