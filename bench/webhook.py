"""graph-webhook intake: notifications per second and POST latency, publisher confirms on, against raw publishing.

The webhook runs as its own process with its real subscriptions (created in the simulator for
`users` representatives); sync-core is left out so the figure is the webhook's, and the messages
pile up in the stack's quorum queues (deleted with the stack). The client posts Graph-shaped
`changeNotificationCollection`s of `batch` valid notifications over `connections` keep-alive
connections, each POST waiting for its 202 (closed loop): notifications/s is what was accepted,
latency is per POST. Rounds alternate with raw aio-pika publishing of the same batches at the same
concurrency (`baselines.amqp_confirmed_publish`), so both see the same machine: the figures are the
medians of the rounds' rates and the p99 of all their latencies.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from typing import Any

import httpx
import orjson

from bench import baselines
from bench.seed import add_users, wait_subscriptions
from bench.stack import Stack
from bench.stats import median, summary


def _notification(sub: dict[str, Any]) -> dict[str, Any]:
    user = sub["resource"].strip("/").split("/")[1]
    item = f"AAMkAD{uuid.uuid4().hex}{uuid.uuid4().hex}"
    resource = f"Users/{user}/Events/{item}"
    return {
        "subscriptionId": sub["id"],
        "subscriptionExpirationDateTime": sub["expirationDateTime"],
        "changeType": "updated",
        "resource": resource,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Event",
            "@odata.id": resource,
            "@odata.etag": f'W/"{uuid.uuid4().hex}"',
            "id": item,
        },
        "clientState": sub["clientState"],
        "tenantId": "00000000-0000-0000-0000-0000000000aa",
    }


def bodies(subs: list[dict[str, Any]], batch: int, count: int) -> list[bytes]:
    """`count` POST bodies of `batch` notifications each, over all subscriptions (built before timing)."""
    rng = random.Random(7)
    return [orjson.dumps({"value": [_notification(rng.choice(subs)) for _ in range(batch)]}) for _ in range(count)]


async def drive(
    url: str, payloads: list[bytes], *, seconds: float, connections: int, batch: int
) -> tuple[dict[str, Any], list[float]]:
    """Closed loop: `connections` POSTs in flight; each waits for its answer before the next."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    async with httpx.AsyncClient(limits=limits, trust_env=False, timeout=10) as c:
        headers = {"Content-Type": "application/json"}
        # Warm up: open the connections and let the service's caches and JIT-free paths settle.
        await asyncio.gather(
            *(c.post(url, content=payloads[i % len(payloads)], headers=headers) for i in range(connections * 4))
        )
        deadline = time.perf_counter() + seconds
        index = 0

        async def worker() -> None:
            nonlocal index
            while time.perf_counter() < deadline:
                body = payloads[index % len(payloads)]
                index += 1
                t0 = time.perf_counter()
                r = await c.post(url, content=body, headers=headers)
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - start
    accepted = statuses.get(202, 0) * batch
    return {
        "notifications_per_s": round(accepted / elapsed, 1),
        "posts": sum(statuses.values()),
        "statuses": {str(k): v for k, v in statuses.items()},
        "post_ms": summary(latencies),
        "batch": batch,
        "connections": connections,
        "seconds": round(elapsed, 2),
    }, latencies


async def run(
    stack: Stack, *, users: int, seconds: float, batch: int, connections: int, rounds: int = 3
) -> dict[str, Any]:
    await add_users(stack, users, group="W")
    subs = await wait_subscriptions(stack, users * 3)
    await asyncio.sleep(1.0)  # the webhook's cache holds what its manager just created
    url = f"{stack.webhook_url}/notifications"
    payloads = bodies(subs, batch, 2000)
    hook: list[dict[str, Any]] = []
    raw: list[dict[str, Any]] = []
    hook_ms: list[float] = []
    raw_ms: list[float] = []
    meter = stack.cpu_meter()
    cpu: dict[str, float] = {}
    for _ in range(rounds):
        result = await baselines.amqp_confirmed_publish(seconds / rounds, batch, connections)
        raw_ms.extend(result.pop("_latencies_ms"))
        raw.append(result)
        meter.start()
        figures, latencies = await drive(url, payloads, seconds=seconds / rounds, connections=connections, batch=batch)
        for name, used in meter.stop().items():
            cpu[name] = cpu.get(name, 0.0) + used
        hook.append(figures)
        hook_ms.extend(latencies)
    # Unloaded: one notification per POST, one POST at a time — the floor under every e2e figure.
    single, _ = await drive(url, bodies(subs, 1, 200), seconds=min(3.0, seconds), connections=1, batch=1)
    accepted = sum(h["posts"] * batch for h in hook)
    return {
        "loaded": {
            "notifications_per_s": median([h["notifications_per_s"] for h in hook]),
            "rounds_per_s": [h["notifications_per_s"] for h in hook],
            "post_ms": summary(hook_ms),
            "statuses": [h["statuses"] for h in hook],
            "batch": batch,
            "connections": connections,
            "cpu_us_per_notification": {k: round(v / max(accepted, 1) * 1e6) for k, v in cpu.items()},
        },
        "raw_publish": {
            "messages_per_s": median([r["messages_per_s"] for r in raw]),
            "rounds_per_s": [r["messages_per_s"] for r in raw],
            "batch_latency_ms": summary(raw_ms),
            "client_cpu_us_per_message": median([r["client_cpu_us_per_message"] for r in raw]),
            "broker_cpu_us_per_message": median([r["broker_cpu_us_per_message"] for r in raw]),
        },
        "single": single,
        "subscriptions": len(subs),
    }
