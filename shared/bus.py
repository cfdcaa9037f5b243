"""The message bus on aio-pika: confirmed publishes, manual acks, retries, dead letters.

- Publishes are persistent, `mandatory` and confirmed: `publish` returns only once the broker
  has the message, and raises `BrokerUnavailable` otherwise.
- A consumer acks after its handler returned (the handler commits first). A failing handler's
  message goes to the next retry queue (growing delay); after the last one, to the group's
  dead-letter queue, with the error, the attempts and the original queue in its headers.
- Messages with the same serialisation key are handled one at a time in arrival order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika import DeliveryMode, Message
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import ValidationError

from shared.envelope import Envelope
from shared.errors import BrokerUnavailable, PermanentError
from shared.settings import CommonSettings
from shared.telemetry import extract_context, inject_headers, meter, user_hash
from shared.topology import Topology, declare

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("shared.bus")
_meter = meter("shared.bus")
published = _meter.create_counter("sync_messages_published", description="Messages published, by routing type")
consumed = _meter.create_counter("sync_messages_consumed", description="Messages handled, by queue and outcome")
retried = _meter.create_counter("sync_messages_retried", description="Messages sent to a retry queue")
dead_lettered = _meter.create_counter("sync_messages_dead_lettered", description="Messages dead-lettered")

Handler = Callable[[Envelope], Awaitable[None]]
ATTEMPTS = "x-attempts"
# When the message being handled reached this process (monotonic clock), before it waited for
# its serialisation key: lets a handler tell which messages an earlier run already covered.
received_at: ContextVar[float | None] = ContextVar("received_at", default=None)


class _NotStarted(Exception):
    """The bus is closing: the message was not handled and goes back to its queue unacked."""


def topology_of(settings: CommonSettings) -> Topology:
    return Topology(settings.amqp_prefix, settings.sync_shards, tuple(settings.retry_delays_ms))


class KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def run(self, key: str, fn: Callable[[], Awaitable[None]]) -> None:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                await fn()
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class Bus:
    """A robust connection to RabbitMQ shared by a service's publishers and consumers."""

    def __init__(self, settings: CommonSettings, service: str) -> None:
        self.settings = settings
        self.service = service
        self.topology = topology_of(settings)
        self.connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._consumers: list[tuple[AbstractQueue, str]] = []
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._locks = KeyedLocks()
        # Set by `close`: no handler starts any more; what arrives or waits stays unacked.
        self._closing = False

    async def connect(self, timeout: float = 10.0) -> None:
        """Connect (retrying inside `timeout`) and declare the topology."""
        self.connection = await aio_pika.connect_robust(
            self.settings.amqp_url.get_secret_value(),
            timeout=timeout,
            client_properties={"connection_name": self.service},
        )
        self._publish_channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await declare(self._publish_channel, self.topology)

    @property
    def connected(self) -> bool:
        return self.connection is not None and not self.connection.is_closed and self._exchange is not None

    async def ping(self) -> None:
        """Raise unless the broker connection is open (for `/readyz`)."""
        if self.connection is None or self.connection.is_closed:
            raise BrokerUnavailable("no broker connection")
        if self._publish_channel is None or self._publish_channel.is_closed:
            raise BrokerUnavailable("publish channel closed")
        if self._exchange is None:
            raise BrokerUnavailable("topology not declared yet")

    async def publish(self, envelope: Envelope, *, timeout: float = 5.0) -> None:
        """Publish one message and wait for the broker's confirm."""
        await self.publish_many([envelope], timeout=timeout)

    async def publish_many(self, envelopes: list[Envelope], *, timeout: float = 5.0) -> None:
        """Publish several messages concurrently; returns when all are confirmed.

        One deadline for the whole batch (`asyncio.timeout`), not one per message: a timeout handed to
        aio-pika wraps every step of every publish in `asyncio.wait_for` (a task each), which cost more
        CPU than the publish itself on graph-webhook's hot path (docs/benchmarks.md).
        """
        if not envelopes:
            return
        try:
            async with asyncio.timeout(timeout):
                if len(envelopes) == 1:
                    await self._publish_one(envelopes[0])
                else:
                    await asyncio.gather(*(self._publish_one(e) for e in envelopes))
        except TimeoutError as exc:
            raise BrokerUnavailable(f"broker did not confirm {len(envelopes)} message(s) within {timeout}s") from exc
        shards = self.settings.sync_shards
        destinations = Counter((e.type.value, self.topology.queue_for(e.routing_key(shards))) for e in envelopes)
        for (message_type, queue), count in destinations.items():
            published.add(count, {"type": message_type, "queue": queue})

    async def _publish_one(self, envelope: Envelope) -> None:
        """One message under its own producer span (its id and routing key are what a trace links on)."""
        routing_key = envelope.routing_key(self.settings.sync_shards)
        with _tracer.start_as_current_span(
            f"{self.topology.exchange} publish",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "publish",
                "messaging.destination.name": self.topology.exchange,
                "messaging.rabbitmq.destination.routing_key": routing_key,
                "messaging.message.id": str(envelope.id),
                "sync.message_type": envelope.type.value,
                "sync.kind": envelope.kind.value if envelope.kind else "",
                "sync.user_hash": user_hash(envelope.user),
            },
        ):
            message = Message(
                envelope.to_bytes(),
                message_id=str(envelope.id),
                content_type="application/json",
                delivery_mode=DeliveryMode.PERSISTENT,
                type=envelope.type.value,
                timestamp=envelope.occurred_at,
                headers=dict(inject_headers({})),
            )
            await self._send(message, routing_key)

    async def _send(self, message: Message, routing_key: str, *, default_exchange: bool = False) -> None:
        """Publish and wait for the confirm; the caller bounds the wait."""
        if self._publish_channel is None or self._exchange is None:
            raise BrokerUnavailable("bus not connected")
        exchange = self._publish_channel.default_exchange if default_exchange else self._exchange
        try:
            await exchange.publish(message, routing_key=routing_key, mandatory=True, timeout=None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise BrokerUnavailable(f"broker did not confirm {routing_key}: {type(exc).__name__}: {exc}") from exc

    async def _publish_raw(
        self, message: Message, routing_key: str, *, default_exchange: bool = False, timeout: float = 5.0
    ) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self._send(message, routing_key, default_exchange=default_exchange)
        except TimeoutError as exc:
            raise BrokerUnavailable(f"broker did not confirm {routing_key} within {timeout}s") from exc

    async def consume(self, queue_name: str, handler: Handler, *, prefetch: int | None = None) -> None:
        """Start consuming `queue_name` with `handler`; ack after it returns."""
        if self.connection is None:
            raise BrokerUnavailable("bus not connected")
        spec = self.topology.spec(queue_name)
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=prefetch or self.settings.amqp_prefetch)
        args: dict[str, Any] = {"x-queue-type": "quorum"}
        if spec.single_active:
            args["x-single-active-consumer"] = True
        queue = await channel.declare_queue(queue_name, durable=True, arguments=args)

        async def on_message(message: AbstractIncomingMessage) -> None:
            await self._handle(message, spec.name, spec.group, handler)

        tag = await queue.consume(on_message)
        self._consumers.append((queue, tag))

    async def _handle(self, message: AbstractIncomingMessage, queue: str, group: str, handler: Handler) -> None:
        self._inflight += 1
        self._idle.clear()
        received_at.set(time.monotonic())
        try:
            try:
                envelope = Envelope.from_bytes(message.body)
            except (ValidationError, ValueError) as exc:
                log.warning("invalid envelope on %s, dead-lettered", queue, extra={"error": str(exc)[:200]})
                await self._dead_letter(message, queue, group, f"invalid envelope: {exc}", attempts=0)
                await message.ack()
                return
            ctx = extract_context(message.headers)
            with _tracer.start_as_current_span(
                f"{queue} process",
                context=ctx,
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "rabbitmq",
                    "messaging.operation.type": "process",
                    "messaging.destination.name": queue,
                    "messaging.message.id": str(envelope.id),
                    "sync.message_type": envelope.type.value,
                    "sync.kind": envelope.kind.value if envelope.kind else "",
                    "sync.user_hash": user_hash(envelope.user),
                },
            ) as span:
                outcome = "ok"

                async def run() -> None:
                    if self._closing:
                        raise _NotStarted
                    await handler(envelope)

                try:
                    await self._locks.run(envelope.serialisation_key(), run)
                except _NotStarted:
                    # Closing the channel returns it to the queue, for the replica that takes over.
                    span.set_attribute("messaging.rabbitmq.requeued", True)
                    return
                except PermanentError as exc:
                    outcome = "dead_lettered"
                    span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
                    await self._dead_letter(message, queue, group, f"{type(exc).__name__}: {exc}", attempts=1)
                except Exception as exc:
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
                    outcome = await self._retry(message, queue, group, exc)
                await message.ack()
                consumed.add(1, {"queue": queue, "outcome": outcome})
        except BrokerUnavailable:
            # Neither retried nor dead-lettered: leave it unacked so the broker redelivers it.
            log.warning("could not reroute a failed message from %s; it will be redelivered", queue)
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    async def _retry(self, message: AbstractIncomingMessage, queue: str, group: str, exc: Exception) -> str:
        attempts = int(str((message.headers or {}).get(ATTEMPTS, 0) or 0))
        delays = self.topology.retry_delays_ms
        error = f"{type(exc).__name__}: {exc}"
        if attempts >= len(delays):
            await self._dead_letter(message, queue, group, error, attempts=attempts + 1)
            return "dead_lettered"
        headers = dict(message.headers or {})
        headers[ATTEMPTS] = attempts + 1
        headers["x-last-error"] = error[:500]
        retry = Message(
            message.body,
            message_id=message.message_id,
            content_type=message.content_type,
            delivery_mode=DeliveryMode.PERSISTENT,
            type=message.type,
            timestamp=message.timestamp,
            headers=headers,
        )
        await self._publish_raw(retry, self.topology.retry_queue(queue, attempts), default_exchange=True)
        log.warning("handler failed on %s, retry %d/%d", queue, attempts + 1, len(delays), extra={"error": error[:300]})
        retried.add(1, {"queue": queue})
        return "retried"

    async def _dead_letter(
        self, message: AbstractIncomingMessage, queue: str, group: str, error: str, *, attempts: int
    ) -> None:
        headers = dict(message.headers or {})
        headers.update(
            {
                "x-original-queue": queue,
                "x-error": error[:1000],
                ATTEMPTS: attempts,
                "x-dead-lettered-at": datetime.now(UTC).isoformat(),
            }
        )
        dead = Message(
            message.body,
            message_id=message.message_id,
            content_type=message.content_type,
            delivery_mode=DeliveryMode.PERSISTENT,
            type=message.type,
            timestamp=message.timestamp,
            headers=headers,
        )
        await self._publish_raw(dead, self.topology.dead_letter_queue(group), default_exchange=True)
        log.error(
            "message dead-lettered from %s", queue, extra={"error": error[:300], "message_id": message.message_id}
        )
        dead_lettered.add(1, {"queue": queue})

    async def close(self, drain_timeout: float = 10.0) -> None:
        """Let running handlers finish, then stop consuming and close; messages not started are redelivered.

        The order keeps per-key serialisation across replicas (ADR 0002): the broker makes another
        replica the active consumer of a single-active-consumer queue as soon as this one cancels,
        so nothing may still run here by then. Messages that arrive or wait for their key meanwhile
        are not started and stay unacked; closing the channel returns them to their queues.
        """
        self._closing = True
        try:
            await asyncio.wait_for(self._idle.wait(), drain_timeout)
        except TimeoutError:
            log.warning("shutdown with %d message(s) still in flight; they will be redelivered", self._inflight)
        for queue, tag in self._consumers:
            try:
                await queue.cancel(tag)
            except Exception:  # the channel may already be gone; its messages return to the queue
                log.debug("cancel failed", exc_info=True)
        self._consumers.clear()
        if self.connection is not None:
            await self.connection.close()
        self.connection = None
        self._publish_channel = None
        self._exchange = None
