"""POST /notifications and /lifecycle against the real broker and database (subscriptions stored directly).

Graph's rules (microsoft-graph-docs-contrib):
- validation handshake: https://learn.microsoft.com/graph/change-notifications-delivery-webhooks#notificationurl-validation
- 2xx within 3 s only once stored, else 5xx so Graph redelivers; check clientState:
  https://learn.microsoft.com/graph/change-notifications-delivery-webhooks#processing-the-change-notification
- lifecycle `missed` → resync with delta: https://learn.microsoft.com/graph/change-notifications-lifecycle-events
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession
from webhook_support import Collector, eventually, webhook_settings_for

from graph_sim.testing import SimServer
from graph_webhook.app import WebhookState, create_app
from graph_webhook.directory import Representative
from graph_webhook.models import Subscription, utcnow
from graph_webhook.settings import GraphWebhookSettings
from shared import db
from shared.envelope import Kind, MessageType
from shared.settings import CommonSettings
from tests.support.servers import serve

TENANT = "00000000-0000-0000-0000-0000000000aa"


class NoUsers:
    async def representatives(self) -> list[Representative]:
        return []


def _subscription(sid: str, email: str, kind: Kind, secret: str, list_id: str | None = None) -> Subscription:
    return Subscription(
        id=sid,
        user_email=email,
        graph_user_id=f"guid-{email.split('@')[0]}",
        kind=kind.value,
        resource=f"/users/guid-{email.split('@')[0]}/{kind.value}s",
        list_id=list_id,
        client_state=secret,
        expires_at=utcnow().replace(year=2100),
    )


def _rows() -> list[Subscription]:
    return [
        _subscription("sub-ann-ev", "ann@contoso.example", Kind.EVENT, "secret-ann-ev"),
        _subscription("sub-ann-co", "ann@contoso.example", Kind.CONTACT, "secret-ann-co"),
        _subscription("sub-bob-td", "bob@contoso.example", Kind.TASK, "secret-bob-td", list_id="LIST1"),
    ]


def _change(
    sid: str, secret: str | None, item: str = "AAkALgITEM", change: str = "updated", **kw: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subscriptionId": sid,
        "subscriptionExpirationDateTime": "2100-01-01T00:00:00Z",
        "changeType": change,
        "resource": f"Users/guid/Events/{item}",
        "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": f"Users/guid/Events/{item}", "id": item},
        "tenantId": TENANT,
    }
    if secret is not None:
        body["clientState"] = secret
    body.update(kw)
    return body


@pytest.fixture
def settings(common_settings: CommonSettings, sim_server: SimServer, tmp_path: Any) -> GraphWebhookSettings:
    return webhook_settings_for(
        common_settings, sim_server, f"sqlite:///{tmp_path}/webhook.db", subscriptions_enabled=False
    )


@asynccontextmanager
async def running(
    settings: GraphWebhookSettings, rows: list[Subscription]
) -> AsyncIterator[tuple[httpx.AsyncClient, WebhookState]]:
    app = create_app(settings, directory=NoUsers())
    async with serve(app, port=settings.webhook_port) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        state: WebhookState = app.state.webhook
        async with AsyncSession(state.engine) as session:
            session.add_all(rows)
            await session.commit()
        await state.cache.load()
        await eventually(lambda: state.broker_error is None, 10, "broker connection")
        yield http, state


async def test_handshake_answers_the_decoded_token_as_inert_plain_text(settings: GraphWebhookSettings) -> None:
    """Graph sends the token URL-encoded and wants it back decoded, as text/plain, within 10 s."""
    token = "Validation: Testing client application reachability <script>alert('x')</script> a+b&c=d"
    async with running(settings, []) as (http, _):
        for path in ("/notifications", "/lifecycle"):
            # The body is not even read: the handshake is answered first.
            response = await http.post(f"{path}?validationToken={quote(token)}", content=b"not json at all")
            assert response.status_code == 200
            assert response.text == token
            assert response.headers["content-type"].startswith("text/plain")
            assert response.headers["x-content-type-options"] == "nosniff"


async def test_bodies_that_are_not_notifications_get_400_with_the_reason(settings: GraphWebhookSettings) -> None:
    async with running(settings, []) as (http, _):
        bad_json = await http.post("/notifications", content=b"{oops")
        bad_shape = await http.post("/notifications", json={"value": [{"changeType": "updated"}]})
    assert bad_json.status_code == 400 and "not JSON" in bad_json.json()["error"]
    assert bad_shape.status_code == 400 and "subscriptionId" in bad_shape.json()["error"]


async def test_bodies_over_one_mib_get_413_even_without_a_content_length(settings: GraphWebhookSettings) -> None:
    big = b'{"value": [' + b" " * (1024 * 1024) + b"]}"

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    async with running(settings, []) as (http, _):
        declared = await http.post("/notifications", content=big)
        streamed = await http.post("/notifications", content=chunks())
        small = await http.post("/notifications", json={"value": []})
    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert small.status_code == 202


async def test_foreign_or_wrong_client_state_notifications_are_discarded_unlogged(
    settings: GraphWebhookSettings, collector: Collector, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = [
        _change("sub-ann-ev", "secret-ann-ev", item="GOOD"),
        _change("sub-unknown", "secret-ann-ev", item="FOREIGN"),
        _change("sub-ann-ev", "secret-ann-co", item="WRONG"),
        _change("sub-ann-ev", None, item="MISSING"),
        _change("sub-ann-ev", "secret-ann-ev", item="OTHERTENANT", tenantId="ffffffff-0000-0000-0000-000000000000"),
    ]
    async with running(settings, _rows()) as (http, _):
        response = await http.post("/notifications", json={"value": batch})
        assert response.status_code == 202
        [published] = await collector.wait(MessageType.GRAPH_CHANGED, 1)
        metrics = (await http.get("/metrics")).text
    assert published.payload["resource_id"] == "GOOD"
    assert len(collector.of(MessageType.GRAPH_CHANGED)) == 1
    assert 'outcome="client_state_mismatch"' in metrics and 'outcome="unknown_subscription"' in metrics
    logged = capsys.readouterr().err  # the service's own log handler writes to stderr
    assert "notification discarded" in logged
    assert "secret-ann" not in logged and "FOREIGN" not in logged, "no clientState nor payload in the logs"


async def test_a_batch_of_mixed_subscriptions_becomes_one_message_each(
    settings: GraphWebhookSettings, collector: Collector
) -> None:
    batch = [
        _change("sub-ann-ev", "secret-ann-ev", item="E1", change="created"),
        _change("sub-ann-co", "secret-ann-co", item="C1", change="deleted"),
        _change("sub-bob-td", "secret-bob-td", item="T1", change="updated"),
    ]
    batch[2]["resourceData"]["@odata.etag"] = 'W/"ck-T1"'  # the version it changed to, passed on
    async with running(settings, _rows()) as (http, _):
        assert (await http.post("/notifications", json={"value": batch})).status_code == 202
        got = await collector.wait(MessageType.GRAPH_CHANGED, 3)
    by_item = {m.payload["resource_id"]: m for m in got}
    assert {(m.user, m.kind, m.payload["change_type"]) for m in got} == {
        ("ann@contoso.example", Kind.EVENT, "created"),
        ("ann@contoso.example", Kind.CONTACT, "deleted"),
        ("bob@contoso.example", Kind.TASK, "updated"),
    }
    assert by_item["T1"].payload == {
        "graph_user_id": "guid-bob",
        "subscription_id": "sub-bob-td",
        "change_type": "updated",
        "resource": "Users/guid/Events/T1",
        "resource_id": "T1",
        "list_id": "LIST1",
        "etag": 'W/"ck-T1"',
    }
    assert by_item["E1"].payload["etag"] is None  # none sent
    assert all(m.tenant == settings.tenant for m in got)


async def test_duplicate_notifications_are_published_twice(
    settings: GraphWebhookSettings, collector: Collector
) -> None:
    """Graph may deliver a notification twice; both are published, and that is harmless:
    a notification only makes sync-core run the user's delta query, and a second delta round
    with nothing new is a no-op (sync-core dedupes by delta and by message id)."""
    note = _change("sub-ann-ev", "secret-ann-ev", item="DUP")
    async with running(settings, _rows()) as (http, _):
        assert (await http.post("/notifications", json={"value": [note]})).status_code == 202
        assert (await http.post("/notifications", json={"value": [note]})).status_code == 202
        got = await collector.wait(MessageType.GRAPH_CHANGED, 2)
    assert [m.payload["resource_id"] for m in got] == ["DUP", "DUP"]
    assert got[0].id != got[1].id


async def test_broker_down_means_503_and_nothing_acknowledged_then_redelivery_is_accepted(
    settings: GraphWebhookSettings, collector: Collector
) -> None:
    """Graph redelivers what wasn't answered 2xx; we answer 2xx only for what the broker confirmed."""
    note = _change("sub-ann-ev", "secret-ann-ev", item="AFTER-OUTAGE")
    async with running(settings, _rows()) as (http, state):
        assert state.bus.connection is not None
        await state.bus.connection.close()  # this service's connection only; the broker stays up
        refused = await http.post("/notifications", json={"value": [note]})
        ready = await http.get("/readyz")
        await state.bus.connect()
        redelivered = await http.post("/notifications", json={"value": [note]})
        got = await collector.wait(MessageType.GRAPH_CHANGED, 1)
    assert refused.status_code == 503
    assert ready.status_code == 503 and "broker" in ready.json()["failing"]
    assert redelivered.status_code == 202
    assert [m.payload["resource_id"] for m in got] == ["AFTER-OUTAGE"]


async def test_a_disabled_users_notification_becomes_a_journal_line_R16(
    settings: GraphWebhookSettings, collector: Collector
) -> None:
    async with running(settings, _rows()) as (http, state):
        state.cache.block_user("bob@contoso.example")
        batch = [_change("sub-bob-td", "secret-bob-td", item="T2"), _change("sub-ann-ev", "secret-ann-ev", item="E2")]
        assert (await http.post("/notifications", json={"value": batch})).status_code == 202
        [line] = await collector.wait(MessageType.JOURNAL_LINE, 1)
        [change] = await collector.wait(MessageType.GRAPH_CHANGED, 1)
    assert line.user == "bob@contoso.example" and line.payload["outcome"] == "skipped"
    assert line.payload["rule"] == "R16" and line.payload["graph_id"] == "T2"
    assert change.payload["resource_id"] == "E2"


async def test_missed_lifecycle_event_publishes_a_resync_before_answering(
    settings: GraphWebhookSettings, collector: Collector
) -> None:
    missed = {
        "subscriptionId": "sub-bob-td",
        "subscriptionExpirationDateTime": "2100-01-01T00:00:00Z",
        "tenantId": TENANT,
        "clientState": "secret-bob-td",
        "lifecycleEvent": "missed",
    }
    async with running(settings, _rows()) as (http, _):
        assert (await http.post("/lifecycle", json={"value": [missed]})).status_code == 202
        [resync] = await collector.wait(MessageType.GRAPH_RESYNC, 1)
        forged = await http.post("/lifecycle", json={"value": [{**missed, "clientState": "guess"}]})
    assert forged.status_code == 202
    assert resync.user == "bob@contoso.example" and resync.kind == Kind.TASK
    assert resync.payload == {"graph_user_id": "guid-bob", "reason": "missed", "list_id": "LIST1"}
    assert len(collector.of(MessageType.GRAPH_RESYNC)) == 1


async def test_last_notification_times_are_written_in_batches_not_per_notification(
    common_settings: CommonSettings, sim_server: SimServer, database_url: str
) -> None:
    settings = webhook_settings_for(common_settings, sim_server, database_url, subscriptions_enabled=False)

    async def stored() -> dict[str, Any]:
        engine = db.create_engine(settings.webhook_database_url)
        try:
            async with AsyncSession(engine) as session:
                rows = (await session.exec(select(Subscription))).scalars().all()  # type: ignore[call-overload]
                return {r.id: r.last_notification_at for r in rows}
        finally:
            await engine.dispose()

    async with running(settings, _rows()) as (http, state):
        batch = [_change("sub-ann-ev", "secret-ann-ev"), _change("sub-bob-td", "secret-bob-td")]
        assert (await http.post("/notifications", json={"value": batch})).status_code == 202
        before = await stored()
        assert await state.cache.flush() == 2
        after = await stored()
    assert set(before.values()) == {None}
    assert after["sub-ann-ev"] is not None and after["sub-bob-td"] is not None and after["sub-ann-co"] is None


async def test_the_service_starts_with_the_broker_down_and_readyz_names_it(settings: GraphWebhookSettings) -> None:
    """Graph's handshake still works (a subscription can be created); notifications get 503 (Graph redelivers)."""
    down = settings.model_copy(update={"amqp_url": SecretStr("amqp://guest:guest@127.0.0.1:1/")})
    app = create_app(down, directory=NoUsers())
    async with serve(app, port=down.webhook_port) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        state: WebhookState = app.state.webhook
        async with AsyncSession(state.engine) as session:
            session.add_all(_rows())
            await session.commit()
        await state.cache.load()
        ready = await http.get("/readyz")
        handshake = await http.post("/notifications?validationToken=abc")
        note = await http.post("/notifications", json={"value": [_change("sub-ann-ev", "secret-ann-ev")]})
    assert ready.status_code == 503
    assert ready.json()["failing"] == ["broker"] and ready.json()["checks"]["database"] == "ok"
    assert "Connection" in ready.json()["checks"]["broker"] or "failing" in ready.json()["checks"]["broker"]
    assert handshake.status_code == 200 and handshake.text == "abc"
    assert note.status_code == 503
