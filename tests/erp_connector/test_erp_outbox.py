"""The transactional outbox against the real broker: publish, order, outages, duplicates, traces."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from erp_support import TOKEN, Running, Tap, seed, sqlite_only
from opentelemetry import trace
from sqlmodel import col, select

from erp_connector.app import create_app
from erp_connector.models import OutboxMessage
from erp_connector.outbox import OutboxRelay
from erp_connector.settings import ErpConnectorSettings
from shared.bus import Bus
from shared.envelope import Envelope
from shared.errors import BrokerUnavailable
from shared.settings import CommonSettings
from tests.support.servers import free_port, serve

MEETING = {
    "kind": "meeting",
    "subject": "Kick-off",
    "start": "2030-05-06T09:00:00Z",
    "end": "2030-05-06T10:00:00Z",
    "representative": "REP01",
}


def meeting_at(hour: int) -> dict[str, Any]:
    return {**MEETING, "start": f"2030-05-06T{hour:02d}:00:00Z", "end": f"2030-05-06T{hour:02d}:30:00Z"}


async def outbox_rows(erp: Running) -> list[OutboxMessage]:
    async with erp.app.state.db.read() as session:
        return list((await session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all())


async def all_marked(erp: Running) -> None:
    for _ in range(100):
        if all(r.sent_at is not None for r in await outbox_rows(erp)):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("published rows must be marked sent")


async def test_write_is_published_as_erp_changed_with_the_outbox_message_id(erp: Running, tap: Tap) -> None:
    await seed(erp.client)
    meeting = (await erp.client.post("/api/v1/activities", json=MEETING)).json()
    [message] = await tap.wait_for(1, "erp.changed")
    assert message["user"] == "ana.silva@contoso.example"
    assert message["kind"] == "event"
    payload = message["payload"]
    assert payload["erp_id"] == str(meeting["id"]) and payload["change"] == "created"
    assert payload["version"] == 1 and payload["origin"] == "erp" and payload["representative"] == "REP01"
    assert payload["data"]["chrono"] == meeting["chrono"]
    users = await tap.wait_for(2, "user.changed")
    assert {u["payload"]["code"] for u in users} == {"REP01", "REP02"}
    await asyncio.sleep(0.3)
    rows = [r for r in await outbox_rows(erp) if r.type == "erp.changed"]
    assert [r.message_id for r in rows] == [message["id"]]
    assert rows[0].sent_at is not None


async def test_write_from_sync_core_is_tagged_with_outlook_origin_and_not_echoed_R22(erp: Running, tap: Tap) -> None:
    await seed(erp.client)
    created = await erp.client.post("/api/v1/activities", json=MEETING, headers={"X-Change-Origin": "outlook"})
    assert created.json()["origin"] == "outlook"
    updated = await erp.client.put(
        f"/api/v1/activities/{created.json()['id']}",
        json={"subject": "From Outlook"},
        headers={"X-Change-Origin": "outlook"},
    )
    assert updated.json()["version"] == 2
    # Written from the owner's own mailbox: announcing it would only echo sync-core's write back to it.
    # An ERP user's edit of the same activity is announced, with origin `erp`.
    edited = await erp.client.put(f"/api/v1/activities/{created.json()['id']}", json={"subject": "From the ERP"})
    assert edited.json()["version"] == 3
    [message] = await tap.wait_for(1, "erp.changed")
    assert message["payload"]["origin"] == "erp" and message["payload"]["version"] == 3
    # Writing back the values already stored changes nothing and publishes nothing.
    same = await erp.client.put(f"/api/v1/activities/{created.json()['id']}", json={"subject": "From the ERP"})
    assert same.json()["version"] == 3
    await asyncio.sleep(0.4)
    assert len(tap.bodies("erp.changed")) == 1
    rows = [r for r in await outbox_rows(erp) if r.type == "erp.changed"]
    assert [r.message_id for r in rows] == [message["id"]]


async def test_reassigned_activity_is_announced_to_both_mailboxes_R32(erp: Running, tap: Tap) -> None:
    await seed(erp.client)
    meeting = (await erp.client.post("/api/v1/activities", json=MEETING)).json()
    await erp.client.put(f"/api/v1/activities/{meeting['id']}", json={"representative": "REP02"})
    messages = await tap.wait_for(3, "erp.changed")
    moved = [m for m in messages if m["payload"]["change"] == "updated"]
    assert {m["user"] for m in moved} == {"ana.silva@contoso.example", "bruno.costa@contoso.example"}
    assert all(m["payload"]["previous_representative"] == "REP01" for m in moved)
    assert all(m["payload"]["representative"] == "REP02" for m in moved)


async def test_trace_runs_from_the_erp_write_through_the_broker_to_the_consumer(
    erp: Running, common_settings: CommonSettings
) -> None:
    await seed(erp.client)
    seen: list[tuple[Envelope, str]] = []
    done = asyncio.Event()

    async def handler(envelope: Envelope) -> None:
        if envelope.type == "erp.changed":
            seen.append((envelope, format(trace.get_current_span().get_span_context().trace_id, "032x")))
            done.set()

    consumer = Bus(common_settings, "test-consumer")
    await consumer.connect()
    try:
        for shard in range(common_settings.sync_shards):
            await consumer.consume(consumer.topology.sync_core_queue(shard), handler)
        with trace.get_tracer("test").start_as_current_span("erp user saves a meeting") as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            assert (await erp.client.post("/api/v1/activities", json=MEETING)).status_code == 201
        await asyncio.wait_for(done.wait(), 10)
    finally:
        await consumer.close()
    assert seen[0][1] == trace_id, "the consumer must continue the trace of the ERP write"


async def test_broker_outage_delays_changes_but_loses_none(erp: Running, tap: Tap) -> None:
    await seed(erp.client)
    await tap.wait_for(2, "user.changed")
    bus: Bus = erp.app.state.bus
    await bus.close()
    ids = []
    for hour in (8, 9, 10):
        created = await erp.client.post("/api/v1/activities", json=meeting_at(hour))
        assert created.status_code == 201, "writes go on while the broker is away"
        ids.append(str(created.json()["id"]))
    ready = await erp.client.get("/readyz")
    assert ready.status_code == 503 and "broker" in ready.json()["failing"]
    await asyncio.sleep(0.5)
    assert tap.bodies("erp.changed") == []
    await bus.connect()
    erp.app.state.relay.wake()
    messages = await tap.wait_for(3, "erp.changed")
    assert [m["payload"]["erp_id"] for m in messages] == ids, "published in the order written"
    await all_marked(erp)


async def test_crash_between_publish_and_mark_republishes_with_the_same_message_id(
    erp: Running, tap: Tap, monkeypatch: Any
) -> None:
    await seed(erp.client)
    await tap.wait_for(2, "user.changed")
    await all_marked(erp)
    relay = erp.app.state.relay
    real_mark = relay._mark
    crashes = []

    async def crash_once(*args: Any, **kwargs: Any) -> None:
        if not crashes:
            crashes.append(1)
            raise RuntimeError("process died after the confirm, before marking the row")
        await real_mark(*args, **kwargs)

    monkeypatch.setattr(relay, "_mark", crash_once)
    await erp.client.post("/api/v1/activities", json=MEETING)
    messages = await tap.wait_for(2, "erp.changed")
    assert messages[0]["id"] == messages[1]["id"], "a re-publish keeps the message id, so consumers dedupe"
    assert [m.message_id for m in tap.messages if m.type == "erp.changed"] == [messages[0]["id"]] * 2
    await asyncio.sleep(0.5)
    assert len(tap.bodies("erp.changed")) == 2, "once marked, the row is not published again"


@sqlite_only
async def test_app_starts_without_broker_and_readyz_names_it(erp_settings: ErpConnectorSettings) -> None:
    settings = erp_settings.model_copy(update={"amqp_url": f"amqp://guest:guest@127.0.0.1:{free_port()}/"})
    async with (
        serve(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as client,
    ):
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["failing"] == ["broker"]
        rep = {"code": "R1", "name": "R", "email": "r@x.example"}
        assert (await client.post("/api/v1/representatives", json=rep)).status_code == 201


class _HalfConfirmingBus:
    """A bus whose broker confirms every message but the second (as a nack or a return would)."""

    connected = True

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    async def publish_each(self, envelopes: list[Envelope], *, parents: list[Any]) -> list[Any]:
        self.batches.append([str(e.id) for e in envelopes])
        assert len(parents) == len(envelopes)
        return [None if i != 1 else BrokerUnavailable("nacked") for i in range(len(envelopes))]


async def test_relay_publishes_a_batch_at_once_and_marks_sent_only_up_to_the_first_unconfirmed_row(
    erp_settings: ErpConnectorSettings,
) -> None:
    """Order is kept per batch: rows after an unconfirmed one go again (same message id, dropped by
    consumers as duplicates) rather than being counted sent ahead of it."""
    bus = _HalfConfirmingBus()
    relay = OutboxRelay(db=None, bus=bus, settings=erp_settings)  # type: ignore[arg-type]
    rows = [
        OutboxMessage(id=i, message_id=str(uuid.uuid4()), type="erp.changed", kind="event", user="a@b.c", payload={})
        for i in (7, 8, 9)
    ]
    sent, failed = await relay._publish(rows)
    assert bus.batches == [[r.message_id for r in rows]]  # one publish for the whole batch, in id order
    assert sent == [7]
    assert failed is not None and failed[0] == 8 and "nacked" in failed[1]
