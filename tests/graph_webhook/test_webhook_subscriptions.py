"""Subscriptions against the Graph simulator, the real erp-connector, RabbitMQ and the database.

Graph's rules (microsoft-graph-docs-contrib):
- subscription lifetime for Outlook events, contacts and To Do tasks: 4,230 minutes at most
  (https://learn.microsoft.com/graph/api/resources/subscription#subscription-lifetime)
- renew with PATCH expirationDateTime; lifecycle `reauthorizationRequired`, `subscriptionRemoved`,
  `missed` (https://learn.microsoft.com/graph/change-notifications-lifecycle-events)
- `clientState` in every notification, checked by the receiver
  (https://learn.microsoft.com/graph/change-notifications-delivery-webhooks)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from webhook_sim_control import WebhookSim
from webhook_support import Collector, Erp, eventually, webhook_settings_for

from graph_sim.testing import SimServer
from graph_webhook.app import WebhookState, create_app
from graph_webhook.settings import GraphWebhookSettings
from shared.envelope import Kind, MessageType
from shared.graph import GraphClient
from shared.settings import CommonSettings
from tests.support.servers import serve

ANN = "ann@contoso.example"
BOB = "bob@contoso.example"


class SimClockGraph(GraphClient):
    """GraphClient whose idea of Graph's clock follows the simulator's moved clock.

    Real Graph's `Date` header carries its clock and GraphClient reads it; the simulator's `Date`
    header is uvicorn's wall clock, not its controllable one, so the test tells the client instead.
    """

    offset_s = 0.0

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset_s)


def _time(value: str) -> datetime:
    """A Graph timestamp (`…T04:36:55.1234567Z`, seven fractional digits) as an aware datetime."""
    head, _, fraction = value.rstrip("Z").partition(".")
    micro = int((fraction + "000000")[:6]) if fraction else 0
    return datetime.fromisoformat(head).replace(tzinfo=UTC, microsecond=micro)


@asynccontextmanager
async def running(settings: GraphWebhookSettings, graph: GraphClient | None = None) -> AsyncIterator[WebhookState]:
    app = create_app(settings, graph=graph)
    async with serve(app, port=settings.webhook_port):
        state: WebhookState = app.state.webhook
        await eventually(lambda: state.broker_error is None, 10, "broker connection")
        yield state


def _subs(sim: WebhookSim, user_id: str) -> dict[str, dict[str, Any]]:
    """The simulator's subscriptions of one user, by collection."""
    out: dict[str, dict[str, Any]] = {}
    for sub in sim.subscriptions():
        resource = sub["resource"]
        if f"/users/{user_id}/" not in resource:
            continue
        kind = "event" if resource.endswith("/events") else "contact" if resource.endswith("/contacts") else "task"
        out[kind] = sub
    return out


@pytest.fixture
async def world(
    sim: WebhookSim, erp: Erp, common_settings: CommonSettings, sim_server: SimServer, database_url: str
) -> dict[str, Any]:
    """Ann watches all three collections, Bob contacts only, Carl is switched off, Dan isn't in sales (R13, R16)."""
    users = {email: sim.add_user(email) for email in (ANN, BOB, "carl@contoso.example", "dan@contoso.example")}
    await erp.add_representative("ANN", ANN)
    await erp.add_representative("BOB", BOB, activities_outlook_to_erp=False)
    await erp.add_representative("CARL", "carl@contoso.example", sync_enabled=False)
    await erp.add_representative("DAN", "dan@contoso.example", sales_role=False, sync_enabled=False)
    settings = webhook_settings_for(common_settings, sim_server, database_url, erp_connector_url=erp.url)
    return {"users": users, "settings": settings}


async def test_enabled_users_get_a_subscription_per_watched_collection_then_a_resync_R16(
    world: dict[str, Any], sim: WebhookSim, collector: Collector
) -> None:
    settings: GraphWebhookSettings = world["settings"]
    ann, bob = world["users"][ANN], world["users"][BOB]
    async with running(settings):
        resyncs = await collector.wait(MessageType.GRAPH_RESYNC, 4)
    subs = sim.subscriptions()
    assert len(subs) == 4, "carl (switched off) and dan (no sales role) get none"
    ann_subs = _subs(sim, ann["id"])
    assert set(ann_subs) == {"event", "contact", "task"}
    assert set(_subs(sim, bob["id"])) == {"contact"}
    assert ann_subs["task"]["resource"] == f"/users/{ann['id']}/todo/lists/{ann['defaultTodoListId']}/tasks"
    assert len({s["clientState"] for s in subs}) == 4 and all(len(s["clientState"]) >= 40 for s in subs)
    for sub in subs:
        assert sub["notificationUrl"] == settings.notification_url
        assert sub["lifecycleNotificationUrl"] == settings.lifecycle_url
        assert sub["immutableIds"] is True
        assert set(sub["changeType"].split(",")) == {"created", "updated", "deleted"}
        left = _time(sub["expirationDateTime"]) - datetime.now(UTC)
        assert timedelta(minutes=4225) < left <= timedelta(minutes=4230)
    assert {(m.user, m.kind, m.payload["reason"]) for m in resyncs} == {
        (ANN, Kind.EVENT, "subscriptionCreated"),
        (ANN, Kind.CONTACT, "subscriptionCreated"),
        (ANN, Kind.TASK, "subscriptionCreated"),
        (BOB, Kind.CONTACT, "subscriptionCreated"),
    }
    [task_resync] = [m for m in resyncs if m.kind == Kind.TASK]
    assert task_resync.payload["list_id"] == ann["defaultTodoListId"]


async def test_an_outlook_change_reaches_sync_core_as_graph_changed(
    world: dict[str, Any], sim: WebhookSim, collector: Collector
) -> None:
    ann = world["users"][ANN]
    async with running(world["settings"]):
        await collector.wait(MessageType.GRAPH_RESYNC, 4)
        item = sim.seed(
            ann["id"],
            "contacts",
            {"givenName": "Zoe", "surname": "Ray", "emailAddresses": [{"address": "zoe@fabrikam.example"}]},
        )
        [changed] = await collector.wait(MessageType.GRAPH_CHANGED, 1)
    assert changed.user == ANN and changed.kind == Kind.CONTACT
    assert changed.payload["change_type"] == "created"
    assert changed.payload["resource_id"] == item["immutableId"], "immutable ids (R21)"
    assert changed.payload["graph_user_id"] == ann["id"]


async def test_each_lifecycle_event_is_handled(world: dict[str, Any], sim: WebhookSim, collector: Collector) -> None:
    """missed → resync; subscriptionRemoved → a new subscription, then resync; reauthorizationRequired →
    renewed (PATCH expiry), then resync."""
    ann = world["users"][ANN]
    async with running(world["settings"]) as state:
        await collector.wait(MessageType.GRAPH_RESYNC, 4)
        subs = _subs(sim, ann["id"])

        sim.lifecycle(subs["event"]["id"], "missed")
        resyncs = await collector.wait(MessageType.GRAPH_RESYNC, 5)
        assert (resyncs[-1].kind, resyncs[-1].payload["reason"]) == (Kind.EVENT, "missed")

        sim.lifecycle(subs["contact"]["id"], "subscriptionRemoved")
        resyncs = await collector.wait(MessageType.GRAPH_RESYNC, 6)
        assert (resyncs[-1].kind, resyncs[-1].payload["reason"]) == (Kind.CONTACT, "subscriptionRemoved")
        recreated = _subs(sim, ann["id"])["contact"]
        assert recreated["id"] != subs["contact"]["id"]
        assert state.cache.peek(recreated["id"]) is not None and state.cache.peek(subs["contact"]["id"]) is None

        before = subs["task"]["expirationDateTime"]
        sim.lifecycle(subs["task"]["id"], "reauthorizationRequired")
        resyncs = await collector.wait(MessageType.GRAPH_RESYNC, 7)
        assert (resyncs[-1].kind, resyncs[-1].payload["reason"]) == (Kind.TASK, "reauthorized")
        renewed = _subs(sim, ann["id"])["task"]
        assert renewed["id"] == subs["task"]["id"]
        assert _time(renewed["expirationDateTime"]) > _time(before)

        # The recreated subscription works: a change still arrives.
        sim.seed(ann["id"], "contacts", {"givenName": "Al", "surname": "Bo"})
        [changed] = await collector.wait(MessageType.GRAPH_CHANGED, 1)
        assert changed.payload["subscription_id"] == recreated["id"]


async def test_subscriptions_are_renewed_when_graphs_clock_nears_their_expiry(
    world: dict[str, Any], sim: WebhookSim, collector: Collector, sim_server: SimServer
) -> None:
    settings: GraphWebhookSettings = world["settings"]
    async with SimClockGraph(settings) as graph, running(settings, graph=graph):
        await collector.wait(MessageType.GRAPH_RESYNC, 4)
        first = {s["id"]: _time(s["expirationDateTime"]) for s in sim.subscriptions()}
        # Three quarters of 4,230 minutes and a bit: less than a quarter of the life is left.
        graph.offset_s = sim.advance_clock(3200 * 60)

        def renewed() -> bool:
            now = {s["id"]: _time(s["expirationDateTime"]) for s in sim.subscriptions()}
            return set(now) == set(first) and all(now[i] - first[i] > timedelta(minutes=3000) for i in now)

        await eventually(renewed, 10, "every subscription renewed on Graph's clock")
    assert len(collector.of(MessageType.GRAPH_RESYNC)) == 4, "a renewal in time leaves no gap: no resync"


async def test_switching_a_user_off_deletes_the_subscriptions_not_the_items_R32(
    world: dict[str, Any], sim: WebhookSim, erp: Erp, collector: Collector
) -> None:
    ann = world["users"][ANN]
    sim.seed(
        ann["id"],
        "events",
        {
            "subject": "Kick-off",
            "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-03-02T10:00:00", "timeZone": "UTC"},
        },
    )
    async with running(world["settings"]) as state:
        await collector.wait(MessageType.GRAPH_RESYNC, 4)
        # erp-connector publishes `user.changed`; graph-webhook consumes it from its control queue.
        await erp.update_representative("ANN", sync_enabled=False)
        await eventually(lambda: not _subs(sim, ann["id"]), 10, "ann's subscriptions deleted")
        assert state.cache.is_blocked(ANN) or all(s.user_email != ANN for s in state.cache._by_id.values())
    assert len(_subs(sim, world["users"][BOB]["id"])) == 1
    assert [e["data"]["subject"] for e in sim.items(ann["id"], "events")] == ["Kick-off"]


async def test_a_subscription_gone_at_renewal_is_recreated_and_the_gap_resynced(
    world: dict[str, Any], sim: WebhookSim, collector: Collector
) -> None:
    settings: GraphWebhookSettings = world["settings"]
    bob = world["users"][BOB]
    async with SimClockGraph(settings) as graph, running(settings, graph=graph):
        await collector.wait(MessageType.GRAPH_RESYNC, 4)
        lost = _subs(sim, bob["id"])["contact"]
        await graph.delete(f"/subscriptions/{lost['id']}")  # removed without telling us
        graph.offset_s = sim.advance_clock(3200 * 60)
        resyncs = await collector.wait(MessageType.GRAPH_RESYNC, 5)
        assert (resyncs[-1].user, resyncs[-1].kind, resyncs[-1].payload["reason"]) == (
            BOB,
            Kind.CONTACT,
            "subscriptionRemoved",
        )
        replacement = _subs(sim, bob["id"])["contact"]
    assert replacement["id"] != lost["id"]


async def test_a_representative_without_a_mailbox_is_reported_in_the_journal_R35(
    world: dict[str, Any], sim: WebhookSim, erp: Erp, collector: Collector
) -> None:
    """The ERP enables eve, but Graph has no such mailbox: each failed subscription is a journal line."""
    await erp.add_representative("EVE", "eve@contoso.example", sync_meetings=False, sync_tasks=False, sync_calls=False)
    async with running(world["settings"]):
        await collector.wait(MessageType.GRAPH_RESYNC, 4)
        [line] = await collector.wait(MessageType.JOURNAL_LINE, 1)
    assert line.user == "eve@contoso.example" and line.kind == Kind.CONTACT
    assert line.payload["outcome"] == "failed" and line.payload["rule"] == "R35"
    assert "eve@contoso.example" in line.payload["reason"] or "ErrorInvalidUser" in line.payload["reason"]
    assert len(sim.subscriptions()) == 4, "the other users are not held up"
