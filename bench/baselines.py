"""Bare I/O in the same run, so the product's figures can be read as overhead ratios.

- AMQP: aio-pika alone, the broker work the product does per message — a persistent, mandatory,
  confirmed publish to a topic exchange bound to `SYNC_SHARDS` durable quorum queues — and, for the
  round trip, a manual-ack consumer on the other end.
- HTTP: httpx alone, one keep-alive TLS connection to the Graph simulator, `GET /users/{id}/events/{id}`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aio_pika
import httpx
import psutil
from aio_pika import DeliveryMode, ExchangeType, Message
from aio_pika.abc import AbstractIncomingMessage

from bench.stack import AMQP_URL, SIM_CLIENT_ID, SIM_CLIENT_SECRET, SIM_TENANT_ID, Stack, broker_pid
from bench.stats import summary
from shared.envelope import Envelope, Kind, MessageType

SHARDS = 8


def _times(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def _broker() -> psutil.Process | None:
    pid = broker_pid()
    return psutil.Process(pid) if pid is not None else None


def _cpu(proc: psutil.Process | None) -> float:
    return _times(proc) if proc is not None else 0.0


def sample_body() -> bytes:
    """A message of the product's size: a `graph.changed` envelope as graph-webhook publishes it."""
    return Envelope(
        type=MessageType.GRAPH_CHANGED,
        tenant="bench",
        user="someone@contoso.example",
        kind=Kind.EVENT,
        payload={
            "graph_user_id": str(uuid.uuid4()),
            "subscription_id": str(uuid.uuid4()),
            "change_type": "updated",
            "resource": f"Users/{uuid.uuid4()}/Events/AAMkAD{uuid.uuid4().hex}",
            "resource_id": f"AAMkAD{uuid.uuid4().hex}",
            "list_id": None,
        },
    ).to_bytes()


async def _raw_topology(channel: aio_pika.abc.AbstractChannel, prefix: str) -> aio_pika.abc.AbstractExchange:
    exchange = await channel.declare_exchange(f"{prefix}raw", ExchangeType.TOPIC, durable=True, auto_delete=True)
    for shard in range(SHARDS):
        queue = await channel.declare_queue(f"{prefix}raw.s{shard}", durable=True, arguments={"x-queue-type": "quorum"})
        await queue.bind(exchange, routing_key=f"*.*.{shard}")
    return exchange


async def _drop_raw_topology(channel: aio_pika.abc.AbstractChannel, prefix: str) -> None:
    for shard in range(SHARDS):
        await channel.queue_delete(f"{prefix}raw.s{shard}")
    await channel.exchange_delete(f"{prefix}raw")


async def _drop_quietly(conn: aio_pika.abc.AbstractRobustConnection, prefix: str) -> None:
    """Delete the raw queues and exchange on a fresh channel (the measuring one may be broken), then close."""
    try:
        channel = await conn.channel()
        await _drop_raw_topology(channel, prefix)
    except Exception:  # a dead connection: nothing more can be done from here
        pass
    finally:
        await conn.close()


async def amqp_roundtrip(n: int) -> dict[str, Any]:
    """Publish (confirmed) → consumer callback, one message in flight at a time."""
    prefix = f"bench-raw-{uuid.uuid4().hex[:8]}."
    body = sample_body()
    conn = await aio_pika.connect_robust(AMQP_URL)
    try:
        publisher = await conn.channel(publisher_confirms=True)
        exchange = await _raw_topology(publisher, prefix)
        consumer = await conn.channel()
        await consumer.set_qos(prefetch_count=64)
        arrived: dict[str, float] = {}
        waiter: dict[str, asyncio.Future[None]] = {}

        async def on_message(message: AbstractIncomingMessage) -> None:
            arrived[str(message.message_id)] = time.perf_counter()
            await message.ack()
            fut = waiter.get(str(message.message_id))
            if fut is not None and not fut.done():
                fut.set_result(None)

        for shard in range(SHARDS):
            queue = await consumer.get_queue(f"{prefix}raw.s{shard}")
            await queue.consume(on_message)
        roundtrips: list[float] = []
        confirms: list[float] = []
        loop = asyncio.get_running_loop()
        broker = _broker()
        cpu0, broker0 = time.process_time(), _cpu(broker)
        for i in range(n + 20):  # the first 20 warm the connection and are not counted
            if i == 20:
                cpu0, broker0 = time.process_time(), _cpu(broker)
            mid = uuid.uuid4().hex
            waiter[mid] = loop.create_future()
            t0 = time.perf_counter()
            await exchange.publish(
                Message(body, message_id=mid, delivery_mode=DeliveryMode.PERSISTENT, content_type="application/json"),
                routing_key=f"graph.changed.{i % SHARDS}",
                mandatory=True,
            )
            t1 = time.perf_counter()
            await asyncio.wait_for(waiter[mid], 10)
            del waiter[mid]
            if i >= 20:
                confirms.append((t1 - t0) * 1000)
                roundtrips.append((arrived.pop(mid) - t0) * 1000)
        client_cpu, broker_cpu = time.process_time() - cpu0, _cpu(broker) - broker0
    finally:
        await _drop_quietly(conn, prefix)
    return {
        "roundtrip_ms": summary(roundtrips),
        "confirm_ms": summary(confirms),
        # CPU of one message's whole trip: publish + confirm + delivery + ack, in the client and in RabbitMQ.
        "client_cpu_us_per_message": round(client_cpu / n * 1e6),
        "broker_cpu_us_per_message": round(broker_cpu / n * 1e6),
    }


async def amqp_confirmed_publish(seconds: float, batch: int, concurrency: int) -> dict[str, Any]:
    """Confirmed publishes of `batch` messages at once (as `Bus.publish_many`), `concurrency` batches in flight."""
    prefix = f"bench-raw-{uuid.uuid4().hex[:8]}."
    body = sample_body()
    conn = await aio_pika.connect_robust(AMQP_URL)
    latencies: list[float] = []
    count = 0
    try:
        channel = await conn.channel(publisher_confirms=True)
        exchange = await _raw_topology(channel, prefix)

        async def one_batch() -> None:
            await asyncio.gather(
                *(
                    exchange.publish(
                        Message(body, message_id=uuid.uuid4().hex, delivery_mode=DeliveryMode.PERSISTENT),
                        routing_key=f"graph.changed.{j % SHARDS}",
                        mandatory=True,
                    )
                    for j in range(batch)
                )
            )

        for _ in range(5):
            await one_batch()
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                await one_batch()
                latencies.append((time.perf_counter() - t0) * 1000)
                count += batch

        broker = _broker()
        start = time.perf_counter()
        cpu0, broker0 = time.process_time(), _cpu(broker)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        client_cpu, broker_cpu = time.process_time() - cpu0, _cpu(broker) - broker0
    finally:
        await _drop_quietly(conn, prefix)
    return {
        "messages_per_s": round(count / elapsed, 1),
        "client_cpu_us_per_message": round(client_cpu / max(count, 1) * 1e6),
        "broker_cpu_us_per_message": round(broker_cpu / max(count, 1) * 1e6),
        "_latencies_ms": latencies,  # for callers that pool rounds; dropped from reports
        "batch": batch,
        "concurrency": concurrency,
        "batch_latency_ms": summary(latencies),
    }


async def sim_token(client: httpx.AsyncClient) -> str:
    r = await client.post(
        f"/{SIM_TENANT_ID}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": SIM_CLIENT_ID,
            "client_secret": SIM_CLIENT_SECRET,
            "scope": "https://graph.microsoft.com/.default",
        },
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


async def sim_event_url(stack: Stack) -> tuple[str, str]:
    """A user with one event in the simulator; returns (the event's Graph URL, a bearer token)."""
    async with stack.sim() as c:
        user = (
            await c.post("/_sim/users", json={"userPrincipalName": f"baseline-{uuid.uuid4().hex[:6]}@contoso.example"})
        ).json()
        token = await sim_token(c)
        event = (
            await c.post(
                f"/v1.0/users/{user['id']}/events",
                headers={"Authorization": f"Bearer {token}"},
                json={
                    "subject": "baseline",
                    "start": {"dateTime": "2030-01-01T10:00:00", "timeZone": "UTC"},
                    "end": {"dateTime": "2030-01-01T11:00:00", "timeZone": "UTC"},
                },
            )
        ).json()
    return f"{stack.graph_base}/users/{user['id']}/events/{event['id']}", token


async def http_get(stack: Stack, n: int) -> dict[str, Any]:
    """Sequential GETs of one event over one keep-alive TLS connection; CPU per GET on both ends."""
    url, token = await sim_event_url(stack)
    server = psutil.Process(stack.pid("graph-sim"))
    latencies: list[float] = []
    async with httpx.AsyncClient(
        verify=stack.ssl_context(), trust_env=False, headers={"Authorization": f"Bearer {token}"}
    ) as c:
        for _ in range(20):
            (await c.get(url)).raise_for_status()
        start = time.perf_counter()
        cpu0, server0 = time.process_time(), _times(server)
        for _ in range(n):
            t0 = time.perf_counter()
            r = await c.get(url)
            latencies.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
        elapsed = time.perf_counter() - start
        client_cpu, server_cpu = time.process_time() - cpu0, _times(server) - server0
    return {
        "get_ms": summary(latencies),
        "sequential_gets_per_s": round(n / elapsed, 1),
        "client_cpu_us_per_get": round(client_cpu / n * 1e6),
        "server_cpu_us_per_get": round(server_cpu / n * 1e6),
    }


async def measure(
    stack: Stack, *, roundtrips: int, gets: int, publish_seconds: float, batch: int, concurrency: int
) -> dict[str, Any]:
    """All bare-I/O figures: AMQP round trip and confirmed publish rate, HTTP GET latency."""
    rt = await amqp_roundtrip(roundtrips)
    pub = await amqp_confirmed_publish(publish_seconds, batch, concurrency)
    pub.pop("_latencies_ms")
    get = await http_get(stack, gets)
    return {"amqp": {**rt, "confirmed_publish": pub}, "http": get}
