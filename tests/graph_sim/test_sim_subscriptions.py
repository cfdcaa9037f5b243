"""Subscriptions and notifications: handshake, limits, delivery, batching, retries, lifecycle.

Docs: https://learn.microsoft.com/graph/api/subscription-post-subscriptions,
https://learn.microsoft.com/graph/change-notifications-delivery-webhooks,
https://learn.microsoft.com/graph/change-notifications-lifecycle-events,
https://learn.microsoft.com/graph/api/resources/subscription (4,230-minute maximum for Outlook resources).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from graph_payloads import event_body
from webhook_receiver import Webhook, expiry, subscribe

from graph_sim.testing import SimServer


def test_handshake_validates_both_urls_then_201(client: httpx.Client, user: dict[str, Any], webhook: Webhook) -> None:
    r = subscribe(client, user, webhook)
    assert r.status_code == 201, r.text
    sub = r.json()
    assert sub["clientState"] == "s3cret"
    assert sub["changeType"] == "created,updated,deleted"
    assert len(webhook.validations) == 2
    assert webhook.validations[0].startswith("Validation: ")  # the token arrives URL-decoded
    assert [s["id"] for s in client.get("/subscriptions").json()["value"]] == [sub["id"]]


def test_failed_handshake_is_400_and_no_subscription(
    client: httpx.Client, user: dict[str, Any], webhook: Webhook
) -> None:
    webhook.echo_validation = False
    r = subscribe(client, user, webhook)
    assert r.status_code == 400
    assert client.get("/subscriptions").json()["value"] == []
    r = subscribe(client, user, webhook, notificationUrl="http://127.0.0.1:9/closed")
    assert r.status_code == 400


def test_expiry_limit_is_4230_minutes(client: httpx.Client, user: dict[str, Any], webhook: Webhook) -> None:
    assert subscribe(client, user, webhook, expirationDateTime=expiry(4231)).status_code == 400
    assert subscribe(client, user, webhook, expirationDateTime=expiry(-1)).status_code == 400
    sub = subscribe(client, user, webhook, expirationDateTime=expiry(4229)).json()
    renewed = client.patch(f"/subscriptions/{sub['id']}", json={"expirationDateTime": expiry(4000)})
    assert renewed.status_code == 200
    assert renewed.json()["expirationDateTime"] != sub["expirationDateTime"]
    assert client.patch(f"/subscriptions/{sub['id']}", json={"expirationDateTime": expiry(5000)}).status_code == 400
    assert client.delete(f"/subscriptions/{sub['id']}").status_code == 204
    assert client.get(f"/subscriptions/{sub['id']}").status_code == 404


def test_change_notifications_for_the_products_own_writes(
    client: httpx.Client, server: SimServer, user: dict[str, Any], webhook: Webhook
) -> None:
    sub = subscribe(client, user, webhook).json()
    ev = client.post(f"/users/{user['id']}/events", json=event_body()).json()
    client.patch(f"/users/{user['id']}/events/{ev['id']}", json={"subject": "x"})
    client.delete(f"/users/{user['id']}/events/{ev['id']}")
    assert server.flush()
    got = webhook.notifications()
    assert [n["changeType"] for n in got] == ["created", "updated", "deleted"]
    first = got[0]
    assert first["subscriptionId"] == sub["id"]
    assert first["clientState"] == "s3cret"
    assert first["tenantId"] == server.config.tenant_id
    assert first["resourceData"]["id"] == ev["id"]
    assert first["resource"] == f"Users/{user['id']}/Events/{ev['id']}"
    assert first["resourceData"]["@odata.etag"] == ev["@odata.etag"]
    assert "@odata.etag" not in got[2]["resourceData"]


def test_notifications_are_batched(
    client: httpx.Client, control: httpx.Client, server: SimServer, user: dict[str, Any], webhook: Webhook
) -> None:
    subscribe(client, user, webhook)
    control.post(f"/users/{user['id']}/events", json=[event_body(subject=str(n)) for n in range(30)])
    assert server.flush()
    assert len(webhook.notifications()) == 30
    assert len(webhook.posts()) < 30


def test_immutable_id_subscription_notifies_immutable_ids(
    client: httpx.Client, server: SimServer, user: dict[str, Any], webhook: Webhook
) -> None:
    imm = {"Prefer": 'IdType="ImmutableId"'}
    subscribe(client, user, webhook, headers=imm)
    ev = client.post(f"/users/{user['id']}/events", json=event_body(), headers=imm).json()
    assert server.flush()
    assert webhook.notifications()[0]["resourceData"]["id"] == ev["id"]


def test_failed_deliveries_are_retried(
    client: httpx.Client, server: SimServer, user: dict[str, Any], webhook: Webhook
) -> None:
    subscribe(client, user, webhook)
    webhook.statuses = [500, 503]
    client.post(f"/users/{user['id']}/events", json=event_body())
    assert server.flush()
    assert len(webhook.notifications()) == 1
    stats = server.sim.notifier.counters
    assert stats.retries == 2 and stats.delivered == 1


def test_slow_reply_is_retried(client: httpx.Client, server: SimServer, user: dict[str, Any], webhook: Webhook) -> None:
    # the session simulator uses a 1 s delivery timeout (Graph: 3 s)
    subscribe(client, user, webhook)
    webhook.delays = [1.3]
    client.post(f"/users/{user['id']}/events", json=event_body())
    assert server.flush()
    assert server.sim.notifier.counters.retries >= 1
    assert len(webhook.notifications()) >= 1


def test_permanent_failure_sends_missed(
    client: httpx.Client, server: SimServer, user: dict[str, Any], webhook: Webhook
) -> None:
    subscribe(client, user, webhook)
    webhook.statuses = [500] * server.config.delivery_max_attempts
    client.post(f"/users/{user['id']}/events", json=event_body())
    assert server.flush()
    assert server.sim.notifier.counters.failed == 1
    assert [n["lifecycleEvent"] for n in webhook.notifications("/lifecycle")] == ["missed"]


def test_lifecycle_on_command(
    client: httpx.Client, control: httpx.Client, server: SimServer, user: dict[str, Any], webhook: Webhook
) -> None:
    sub = subscribe(client, user, webhook).json()
    assert (
        control.post(
            f"/subscriptions/{sub['id']}/lifecycle", json={"lifecycleEvent": "subscriptionRemoved"}
        ).status_code
        == 200
    )
    assert server.flush()
    note = webhook.notifications("/lifecycle")[0]
    assert note["lifecycleEvent"] == "subscriptionRemoved"
    assert note["subscriptionId"] == sub["id"] and note["clientState"] == "s3cret"
    assert client.get(f"/subscriptions/{sub['id']}").status_code == 404


def test_clock_drives_reauthorization_andexpiry(
    client: httpx.Client, control: httpx.Client, server: SimServer, user: dict[str, Any], webhook: Webhook
) -> None:
    sub = subscribe(client, user, webhook, expirationDateTime=expiry(4000)).json()
    control.post("/clock", json={"advance_seconds": (4000 - 30) * 60})
    assert server.flush()
    assert [n["lifecycleEvent"] for n in webhook.notifications("/lifecycle")] == ["reauthorizationRequired"]
    assert client.post(f"/subscriptions/{sub['id']}/reauthorize").status_code == 204
    control.post("/clock", json={"advance_seconds": 31 * 60})
    assert client.get(f"/subscriptions/{sub['id']}").status_code == 404
    client.post(f"/users/{user['id']}/events", json=event_body())
    assert server.flush()
    assert webhook.notifications() == []


def test_subscription_to_a_contact_folder_and_todo_list(
    client: httpx.Client, server: SimServer, user: dict[str, Any], webhook: Webhook
) -> None:
    folder = client.post(f"/users/{user['id']}/contactFolders", json={"displayName": "Leads"}).json()
    lid = client.get(f"/users/{user['id']}/todo/lists").json()["value"][0]["id"]
    assert (
        subscribe(
            client,
            user,
            webhook,
            resource=f"/users/{user['id']}/contactFolders/{folder['id']}/contacts",
            expirationDateTime=expiry(4230),
        ).status_code
        == 201
    )
    assert subscribe(client, user, webhook, resource=f"/users/{user['id']}/todo/lists/{lid}/tasks").status_code == 201
    client.post(f"/users/{user['id']}/contacts", json={"givenName": "Not", "surname": "Watched"})
    c = client.post(f"/users/{user['id']}/contactFolders/{folder['id']}/contacts", json={"givenName": "W"}).json()
    t = client.post(f"/users/{user['id']}/todo/lists/{lid}/tasks", json={"title": "CLL0001"}).json()
    assert server.flush()
    got = {n["resourceData"]["@odata.type"]: n["resourceData"]["id"] for n in webhook.notifications()}
    assert got == {"#Microsoft.Graph.Contact": c["id"], "#Microsoft.Graph.todoTask": t["id"]}


def test_delivery_never_runs_inside_the_api_request(
    client: httpx.Client, server: SimServer, user: dict[str, Any], webhook: Webhook
) -> None:
    subscribe(client, user, webhook)
    webhook.delays = [0.8]
    started = time.perf_counter()
    assert client.post(f"/users/{user['id']}/events", json=event_body()).status_code == 201
    assert time.perf_counter() - started < 0.5
    assert server.flush()
    assert len(webhook.notifications()) == 1


def test_https_loopback_target(client: httpx.Client, server: SimServer, user: dict[str, Any]) -> None:
    hook = Webhook(tls=(str(server.tls.cert_path), str(server.tls.key_path)))
    try:
        assert hook.url.startswith("https://127.0.0.1:")
        assert subscribe(client, user, hook).status_code == 201
        client.post(f"/users/{user['id']}/events", json=event_body())
        assert server.flush()
        assert len(hook.notifications()) == 1
    finally:
        hook.close()
