"""`Bus.publish_many` as graph-webhook uses it, against the real broker: one write per batch (aiormq's
channel bookkeeping done by `shared.bus`) or one `basic_publish` per message, same guarantees either way:
every message confirmed before it returns, one producer span per message that the consumer continues,
and a message the broker cannot route fails the batch without confusing later confirms."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from webhook_support import Collector

from shared.bus import Bus
from shared.envelope import Envelope, Kind, MessageType
from shared.errors import BrokerUnavailable
from shared.settings import CommonSettings


def _changed(user: str) -> Envelope:
    return Envelope(type=MessageType.GRAPH_CHANGED, tenant="t", user=user, kind=Kind.EVENT, payload={"n": user})


def _users_by_shard(bus: Bus, count: int) -> dict[int, list[str]]:
    shards: dict[int, list[str]] = {}
    for i in range(count):
        user = f"u{i}@contoso.example"
        shard = int(_changed(user).routing_key(bus.settings.sync_shards).rsplit(".", 1)[1])
        shards.setdefault(shard, []).append(user)
    return shards


@pytest.mark.parametrize("batch_frames", [True, False], ids=["one-write", "per-message"])
async def test_a_batch_is_confirmed_and_each_message_continues_its_own_producer_span(
    common_settings: CommonSettings, span_exporter: InMemorySpanExporter, batch_frames: bool
) -> None:
    span_exporter.clear()
    collector = Collector(common_settings)
    await collector.start()
    bus = Bus(common_settings, "test-publisher")
    bus.batch_frames = batch_frames
    await bus.connect()
    try:
        batch = [_changed(f"u{i}@contoso.example") for i in range(12)]
        with trace.get_tracer("test").start_as_current_span("origin") as origin:
            await bus.publish_many(batch, timeout=5)
            await bus.publish_many(batch[:3], timeout=5)  # the same ids again: Graph may redeliver
        got = await collector.wait(MessageType.GRAPH_CHANGED, 15)
        await asyncio.sleep(0.2)
    finally:
        await bus.close()
        await collector.bus.close(drain_timeout=1)
    assert sorted(str(m.id) for m in got) == sorted([str(e.id) for e in batch] + [str(e.id) for e in batch[:3]])
    spans = span_exporter.get_finished_spans()
    producers = [s for s in spans if s.kind is SpanKind.PRODUCER]
    consumers = [s for s in spans if s.kind is SpanKind.CONSUMER]
    assert len(producers) == 15 and len(consumers) == 15
    origin_id = origin.get_span_context().span_id
    assert all(p.parent is not None and p.parent.span_id == origin_id for p in producers)
    by_span = {p.context.span_id: p for p in producers}  # type: ignore[union-attr]
    for consumer in consumers:
        assert consumer.parent is not None
        producer = by_span[consumer.parent.span_id]
        assert consumer.attributes is not None and producer.attributes is not None
        assert consumer.attributes["messaging.message.id"] == producer.attributes["messaging.message.id"]
    assert all(p.status.status_code is StatusCode.UNSET for p in producers)


@pytest.mark.parametrize("batch_frames", [True, False], ids=["one-write", "per-message"])
async def test_an_unroutable_message_fails_its_batch_and_later_confirms_stay_right(
    common_settings: CommonSettings, span_exporter: InMemorySpanExporter, batch_frames: bool
) -> None:
    """The broker returns a mandatory message no queue takes: the POST must not be acknowledged (503)."""
    span_exporter.clear()
    bus = Bus(common_settings, "test-publisher")
    bus.batch_frames = batch_frames
    await bus.connect()
    try:
        shards = _users_by_shard(bus, 40)
        lost_shard, kept_shard = sorted(shards)[:2]
        async with await aio_pika.connect(common_settings.amqp_url.get_secret_value()) as conn:
            channel = await conn.channel()
            await channel.queue_delete(bus.topology.sync_core_queue(lost_shard))
        kept = [_changed(u) for u in shards[kept_shard][:3]]
        lost = _changed(shards[lost_shard][0])
        with pytest.raises(BrokerUnavailable, match="did not confirm"):
            await bus.publish_many([kept[0], lost, kept[1]], timeout=5)
        # Delivery tags and confirms still line up: the next batches are confirmed.
        await bus.publish_many([kept[2]], timeout=5)
        await bus.publish_many(kept, timeout=5)
    finally:
        await bus.close()
    failed = [s for s in span_exporter.get_finished_spans() if s.status.status_code is StatusCode.ERROR]
    assert [s.attributes["messaging.message.id"] for s in failed if s.attributes] == [str(lost.id)]
