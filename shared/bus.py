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
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import aio_pika
import aiormq
from aio_pika import DeliveryMode, Message
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aiormq import spec
from aiormq.abc import ChannelFrame
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context
from pamqp.header import ContentHeader
from pydantic import ValidationError

from shared.envelope import Envelope
from shared.errors import BrokerUnavailable, PermanentError
from shared.settings import CommonSettings
from shared.telemetry import extract_context, inject_headers, meter, user_hash
from shared.topology import Topology, declare

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("shared.bus")
_meter = meter("shared.bus")
# Messages published, by type and queue: counted in a dict per batch, reported at each scrape. A counter's
# `add` (attributes hashed, a lock taken) cost more per batch than the rest of the bookkeeping.
_published_counts: Counter[tuple[str, str]] = Counter()


def _observe_published(options: CallbackOptions) -> list[Observation]:
    counts = list(_published_counts.items())  # one C call: safe against the event loop adding meanwhile
    return [Observation(n, {"type": message_type, "queue": queue}) for (message_type, queue), n in counts]


published = _meter.create_observable_counter(
    "sync_messages_published", callbacks=[_observe_published], description="Messages published, by routing type"
)
consumed = _meter.create_counter("sync_messages_consumed", description="Messages handled, by queue and outcome")
retried = _meter.create_counter("sync_messages_retried", description="Messages sent to a retry queue")
dead_lettered = _meter.create_counter("sync_messages_dead_lettered", description="Messages dead-lettered")

Handler = Callable[[Envelope], Awaitable[None]]
ATTEMPTS = "x-attempts"
PERSISTENT = int(DeliveryMode.PERSISTENT)
# When the message being handled reached this process (monotonic clock), before it waited for
# its serialisation key: lets a handler tell which messages an earlier run already covered.
received_at: ContextVar[float | None] = ContextVar("received_at", default=None)
# Whether the message being handled may have been handled before, in part: redelivered by the broker
# (a consumer died or its connection dropped), back from a retry queue, or replayed from the dead
# letters. A handler can then look for effects a first attempt left before it recorded them.
delivered_before: ContextVar[bool] = ContextVar("delivered_before", default=False)


class _NotStarted(Exception):
    """The bus is closing: the message was not handled and goes back to its queue unacked."""


def topology_of(settings: CommonSettings) -> Topology:
    return Topology(settings.amqp_prefix, settings.sync_shards, tuple(settings.retry_delays_ms))


@dataclass(frozen=True, slots=True)
class _Outgoing:
    span: Span
    exchange: str
    routing_key: str
    message_id: str
    message_type: str
    body: bytes
    properties: spec.Basic.Properties


# What `_enqueue_batch` uses of aiormq's channel besides its public API (aiormq 6.x, as pinned).
_CHANNEL_INTERNALS = ("lock", "delivery_tag", "confirmations", "message_id_delivery_tag", "write_queue", "_split_body")


def _batchable(channel: aiormq.Channel) -> bool:
    """Whether `_enqueue_batch` can take delivery tags on this channel the way `basic_publish` does."""
    return (
        isinstance(channel, aiormq.Channel)
        and channel.publisher_confirms
        and not channel.is_closed
        and all(hasattr(channel, name) for name in _CHANNEL_INTERNALS)
    )


async def _enqueue_batch(channel: aiormq.Channel, outgoing: list[_Outgoing]) -> list[asyncio.Future[Any]]:
    """Queue every message of a batch as one write; return the futures of their confirms.

    What aiormq's `basic_publish` does per message (delivery tag and confirm future under the channel's
    lock, the message id mapped to the tag so that a returned message fails its future), done once for
    the batch: the writer task sends one buffer instead of one per message, and no task is started
    per message. The frames are the same as `basic_publish`'s, in the same order.
    """
    frames: list[Any] = []
    for o in outgoing:
        frames.append(spec.Basic.Publish(exchange=o.exchange, routing_key=o.routing_key, mandatory=True))
        frames.append(ContentHeader(properties=o.properties, body_size=len(o.body)))
        frames.extend(channel._split_body(o.body))
    # Built before any delivery tag is taken: under the lock, nothing can fail between the tags and the write.
    write = ChannelFrame.marshall(frames=frames, channel_number=channel.number)
    confirms: list[asyncio.Future[Any]] = []
    async with channel.lock:
        if channel.is_closed:
            raise BrokerUnavailable("publish channel closed")
        for o in outgoing:
            channel.delivery_tag += 1
            confirm = channel.create_future()
            channel.confirmations[channel.delivery_tag] = confirm
            channel.message_id_delivery_tag[o.message_id] = channel.delivery_tag
            confirm.add_done_callback(functools.partial(_forget_message_id, channel, o.message_id))
            confirms.append(confirm)
        channel.write_queue.put_nowait(write)
    return confirms


def _forget_message_id(channel: aiormq.Channel, message_id: str, _: object) -> None:
    channel.message_id_delivery_tag.pop(message_id, None)


async def _cancel(queue: Any, tag: str) -> None:
    try:
        await asyncio.wait_for(queue.cancel(tag), 5.0)
    except (Exception, TimeoutError):  # the channel may be gone; its messages return to the queue
        log.debug("cancel failed", exc_info=True)


def _failed(span: Span, exc: BaseException) -> None:
    """End a producer span whose message was not confirmed."""
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:200]))
    span.end()


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
        # One write per batch through aiormq's channel internals (`_enqueue_batch`); False: per message.
        self.batch_frames = True
        # The `published` series of each routing key: the topic match is worked out once per key.
        self._queues: dict[str, tuple[str, str]] = {}
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

    def on_reconnected(self, callback: Callable[[], object]) -> None:
        """Call `callback` each time the connection comes back (its channels restored) after a loss."""
        if self.connection is None:
            raise BrokerUnavailable("bus not connected")
        self.connection.reconnect_callbacks.add(lambda *_: callback())

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
        """Publish several messages at once; returns when the broker has confirmed (acked) every one.

        One deadline for the whole batch (`asyncio.timeout`), not one per message: a timeout handed to
        aio-pika wraps every step of every publish in `asyncio.wait_for` (a task each), which cost more
        CPU than the publish itself on graph-webhook's hot path (docs/benchmarks.md). A message the
        broker nacks or returns (unroutable) raises `BrokerUnavailable` like one it never confirms.
        """
        failures = await self.publish_each(envelopes, timeout=timeout)
        for failure in failures:
            if failure is not None:
                raise failure

    async def publish_each(
        self, envelopes: list[Envelope], *, parents: list[Context] | None = None, timeout: float = 5.0
    ) -> list[BrokerUnavailable | None]:
        """Publish several messages at once and say, for each, whether the broker confirmed it (None)
        or why not. `parents`, one per message, are the trace contexts their producer spans continue
        (the current one otherwise). A batch that cannot start, or misses its deadline, fails whole."""
        if not envelopes:
            return []
        try:
            async with asyncio.timeout(timeout):
                outgoing, failures = await self._publish_batch(envelopes, parents)
        except TimeoutError as exc:
            raise BrokerUnavailable(f"broker did not confirm {len(envelopes)} message(s) within {timeout}s") from exc
        for o, failure in zip(outgoing, failures, strict=True):
            if failure is None:
                _published_counts[self._published_key(o.message_type, o.routing_key)] += 1
        return failures

    def _published_key(self, message_type: str, routing_key: str) -> tuple[str, str]:
        """The `published` series of a routing key: its type and queue (the topic match worked out once per key)."""
        found = self._queues.get(routing_key)
        if found is None:
            found = self._queues[routing_key] = (message_type, self.topology.queue_for(routing_key))
        return found

    async def _publish_batch(
        self, envelopes: list[Envelope], parents: list[Context] | None
    ) -> tuple[list[_Outgoing], list[BrokerUnavailable | None]]:
        """Every message under its own producer span (its id and routing key are what a trace links on).

        The messages go to aiormq's channel without aio-pika's `Exchange.publish`, which builds an
        `aio_pika.Message` per message only to turn it into these properties. With aiormq's channel
        as we know it (`_batchable`), the whole batch is one write: its delivery tags taken in order
        under the channel's lock, its confirms awaited as the futures aiormq resolves. Otherwise each
        message is `basic_publish(wait=False)`: queued without waiting for its frame to be written.
        A span ends when its message is confirmed or has failed.
        """
        if self._publish_channel is None or self._exchange is None or self._publish_channel.is_closed:
            raise BrokerUnavailable("bus not connected")
        try:
            channel = cast(aiormq.Channel, await self._publish_channel.get_underlay_channel())
        except Exception as exc:
            raise BrokerUnavailable(f"publish channel unavailable: {type(exc).__name__}: {exc}") from exc
        if parents is None:
            outgoing = [self._outgoing(envelope) for envelope in envelopes]
        else:
            outgoing = [self._outgoing(envelope, parent) for envelope, parent in zip(envelopes, parents, strict=True)]
        confirms: list[Awaitable[Any]]
        try:
            if self.batch_frames and _batchable(channel):
                confirms = list(await _enqueue_batch(channel, outgoing))
            else:
                confirms = [
                    channel.basic_publish(
                        o.body,
                        exchange=o.exchange,
                        routing_key=o.routing_key,
                        properties=o.properties,
                        mandatory=True,
                        wait=False,
                    )
                    for o in outgoing
                ]
        except BaseException as exc:
            for o in outgoing:
                _failed(o.span, exc)
            raise
        try:
            results = await asyncio.gather(*confirms, return_exceptions=True)
        except BaseException as exc:  # the batch's deadline, or the request cancelled
            for o in outgoing:
                _failed(o.span, exc)
            raise
        failures: list[BrokerUnavailable | None] = []
        for o, result in zip(outgoing, results, strict=True):
            if isinstance(result, spec.Basic.Ack):
                o.span.end()
                failures.append(None)
                continue
            reason = (
                f"{type(result).__name__}: {result}" if isinstance(result, BaseException) else type(result).__name__
            )
            failure = BrokerUnavailable(f"broker did not confirm {o.routing_key}: {reason}")
            failure.__cause__ = result if isinstance(result, BaseException) else None
            _failed(o.span, failure)
            failures.append(failure)
        return outgoing, failures

    def _outgoing(self, envelope: Envelope, parent: Context | None = None) -> _Outgoing:
        """A message ready to go: its producer span started, the span's context in its headers."""
        exchange = self.topology.exchange
        routing_key = envelope.routing_key(self.settings.sync_shards)
        message_id = str(envelope.id)
        message_type = envelope.type.value
        span = _tracer.start_span(
            f"{exchange} publish",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "publish",
                "messaging.destination.name": exchange,
                "messaging.rabbitmq.destination.routing_key": routing_key,
                "messaging.message.id": message_id,
                "sync.message_type": message_type,
                "sync.kind": envelope.kind.value if envelope.kind else "",
                "sync.user_hash": user_hash(envelope.user),
            },
        )
        properties = spec.Basic.Properties(
            content_type="application/json",
            headers=dict(inject_headers({}, set_span_in_context(span))),
            delivery_mode=PERSISTENT,
            priority=0,
            message_id=message_id,
            timestamp=envelope.occurred_at,
            message_type=message_type,
        )
        return _Outgoing(span, exchange, routing_key, message_id, message_type, envelope.to_bytes(), properties)

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
        headers = message.headers or {}
        delivered_before.set(bool(message.redelivered) or bool(headers.get(ATTEMPTS)) or bool(headers.get("x-replays")))
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
        # All at once, each bounded: with the broker down, a robust channel waits for a reconnection
        # that may never come, and a service must still stop (one after the other, 8 shards took 40 s).
        await asyncio.gather(*(_cancel(queue, tag) for queue, tag in self._consumers))
        self._consumers.clear()
        if self.connection is not None:
            try:
                await asyncio.wait_for(self.connection.close(), 5.0)
            except (Exception, TimeoutError):
                log.debug("close failed", exc_info=True)
        self.connection = None
        self._publish_channel = None
        self._exchange = None
