"""Faults: Outlook throttling (429 + Retry-After), forced 429/503 bursts, latency, notification drops,
duplicates and reordering.

Docs: https://learn.microsoft.com/graph/throttling, https://learn.microsoft.com/graph/throttling-limits
(Outlook service limits: 4 concurrent requests, 10,000 requests per 10 minutes, per app and mailbox).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from graph_payloads import event_body
from webhook_receiver import Webhook, subscribe

from graph_sim.testing import SimServer


def test_request_limit_per_mailbox(client: httpx.Client, control: httpx.Client, user: dict[str, Any]) -> None:
    other = control.post("/users", json={"userPrincipalName": "bob@contoso.example"}).json()
    control.post("/faults", json={"throttling": {"enabled": True, "requests": 3, "window_seconds": 600}})
    for _ in range(3):
        assert client.get(f"/users/{user['id']}/events").status_code == 200
    r = client.get(f"/users/{user['id']}/events")
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) > 0
    assert r.json()["error"]["code"] == "ApplicationThrottled"
    # another mailbox has its own budget; the window slides with the simulator clock
    assert client.get(f"/users/{other['id']}/events").status_code == 200
    control.post("/clock", json={"advance_seconds": 601})
    assert client.get(f"/users/{user['id']}/events").status_code == 200


def test_concurrency_limit_of_four(server: SimServer, token: str, control: httpx.Client, user: dict[str, Any]) -> None:
    control.post("/faults", json={"throttling": {"enabled": True}, "latency_ms": 300})

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            verify=server.ssl_context(), trust_env=False, headers={"Authorization": f"Bearer {token}"}
        ) as c:
            return list(
                await asyncio.gather(*[c.get(f"{server.base_url}/users/{user['id']}/events") for _ in range(6)])
            )

    responses = asyncio.run(burst())
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 4 + [429] * 2
    throttled = next(r for r in responses if r.status_code == 429)
    assert "MailboxConcurrency" in throttled.json()["error"]["message"]
    assert "Retry-After" in throttled.headers


def test_forced_429_and_503_bursts(client: httpx.Client, control: httpx.Client, user: dict[str, Any]) -> None:
    control.post("/faults", json={"force_429": {"count": 2, "retry_after": 3}, "force_503": {"count": 1}})
    codes = [client.get(f"/users/{user['id']}/events") for _ in range(4)]
    assert [r.status_code for r in codes] == [503, 429, 429, 200]
    assert codes[1].headers["Retry-After"] == "3"
    body = codes[1].json()["error"]
    assert body["code"] == "TooManyRequests"
    assert body["innerError"]["status"] == "429"


def test_added_latency(client: httpx.Client, control: httpx.Client, user: dict[str, Any]) -> None:
    control.post("/faults", json={"latency_ms": 200})
    started = time.perf_counter()
    client.get(f"/users/{user['id']}/events")
    assert time.perf_counter() - started >= 0.2


def test_dropped_notifications(
    client: httpx.Client, control: httpx.Client, server: SimServer, user: dict[str, Any], webhook: Webhook
) -> None:
    subscribe(client, user, webhook)
    control.post("/faults", json={"notifications": {"drop_ratio": 1.0, "seed": 1}})
    client.post(f"/users/{user['id']}/events", json=event_body())
    assert server.flush()
    assert webhook.notifications() == []
    assert control.get("/stats").json()["notifications"]["dropped"] == 1


def test_duplicated_notifications(
    client: httpx.Client, control: httpx.Client, server: SimServer, user: dict[str, Any], webhook: Webhook
) -> None:
    subscribe(client, user, webhook)
    control.post("/faults", json={"notifications": {"duplicate_ratio": 1.0, "seed": 1}})
    client.post(f"/users/{user['id']}/events", json=event_body())
    assert server.flush()
    got = webhook.notifications()
    assert len(got) == 2 and got[0] == got[1]


def test_reordered_notifications(
    client: httpx.Client, control: httpx.Client, server: SimServer, user: dict[str, Any], webhook: Webhook
) -> None:
    subscribe(client, user, webhook)
    control.post("/faults", json={"notifications": {"reorder_ratio": 0.5, "seed": 7}})
    ids = []
    for n in range(12):
        ids.append(client.post(f"/users/{user['id']}/events", json=event_body(subject=str(n))).json()["id"])
        time.sleep(0.06)  # one batch per change, so order is observable
    assert server.flush()
    got = [n["resourceData"]["id"] for n in webhook.notifications()]
    assert sorted(got) == sorted(ids)
    assert got != ids


def test_flush_endpoint_waits_for_deliveries(
    client: httpx.Client, control: httpx.Client, user: dict[str, Any], webhook: Webhook
) -> None:
    subscribe(client, user, webhook)
    webhook.delays = [0.3]
    client.post(f"/users/{user['id']}/events", json=event_body())
    r = control.post("/notifications/flush")
    assert r.status_code == 200 and r.json()["delivered"] == 1
    assert len(webhook.notifications()) == 1
    stats = control.get("/stats").json()
    assert stats["requests"]["POST /users/{user}/events"] == {"201": 1}
