"""Queues and dead letters on the broker, as an operator sees them: depth, consumers, replay, discard.

`Bus` dead-letters a message that kept failing into its group's dead-letter queue with headers that
say why (`x-error`), how often it was tried (`x-attempts`), where it came from (`x-original-queue`)
and when (`x-dead-lettered-at`). This module reads those queues without consuming them and puts
messages back where they came from. Any service that holds a connection can use it (sync-core's
console, graph-webhook).

How a dead-letter queue is read: messages are fetched with `basic.get` and held unacknowledged
until the scan ends, then returned with `basic.nack(requeue=True)`; the one being replayed or
discarded is acknowledged instead. Holding them all matters: a quorum queue hands a returned
message out again first, so returning each one at once would show the same message forever.
A replay publishes the original body to the original queue (default exchange, publisher confirm,
mandatory) before acknowledging the dead letter, so a crash in between can duplicate a message but
never lose one; consumers are idempotent by message id. The attempt count starts afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from shared.errors import BrokerUnavailable, SyncError
from shared.topology import Topology

log = logging.getLogger(__name__)

ORIGINAL_QUEUE = "x-original-queue"
ERROR = "x-error"
ATTEMPTS = "x-attempts"
DEAD_LETTERED_AT = "x-dead-lettered-at"
REPLAYED_AT = "x-replayed-at"
REPLAYED_BY = "x-replayed-by"
REPLAYS = "x-replays"
# Headers that describe the failed run: a replayed message starts clean.
_FAILURE_HEADERS = (ORIGINAL_QUEUE, ERROR, ATTEMPTS, DEAD_LETTERED_AT, "x-last-error", "x-delivery-count")
BODY_PREVIEW = 4000


class DeadLetterError(SyncError):
    """A dead-letter operation was refused: unknown queue, or a message that cannot be replayed."""


@dataclass(frozen=True)
class QueueStats:
    """One queue as the broker sees it now; `error` when it could not be declared passively."""

    name: str
    role: str  # work, retry, dead-letter, control
    messages: int | None
    consumers: int | None
    error: str | None = None


@dataclass(frozen=True)
class DeadLetter:
    """A dead-lettered message, with what the bus recorded about its failure."""

    key: str
    queue: str
    original_queue: str | None
    error: str | None
    attempts: int
    dead_lettered_at: datetime | None
    type: str | None
    user: str | None
    kind: str | None
    size: int
    body: str
    replays: int


def message_key(message: AbstractIncomingMessage) -> str:
    """How a dead letter is named: its message id (the envelope id), else a hash of its body."""
    if message.message_id:
        return str(message.message_id)
    return "sha256:" + hashlib.sha256(message.body).hexdigest()[:32]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _int(value: Any) -> int:
    try:
        return int(_text(value) or 0)
    except ValueError:
        return 0


def _time(value: Any) -> datetime | None:
    text = _text(value)
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def describe(queue: str, message: AbstractIncomingMessage) -> DeadLetter:
    """What an operator needs to judge a dead letter; the envelope's user and kind when it parses."""
    headers = message.headers or {}
    user = kind = None
    try:
        body = json.loads(message.body)
        if isinstance(body, dict):
            user = _text(body.get("user"))
            kind = _text(body.get("kind"))
    except ValueError:
        pass
    return DeadLetter(
        key=message_key(message),
        queue=queue,
        original_queue=_text(headers.get(ORIGINAL_QUEUE)),
        error=_text(headers.get(ERROR)),
        attempts=_int(headers.get(ATTEMPTS)),
        dead_lettered_at=_time(headers.get(DEAD_LETTERED_AT)),
        type=_text(message.type),
        user=user,
        kind=kind,
        size=len(message.body),
        body=message.body[:BODY_PREVIEW].decode("utf-8", "replace"),
        replays=_int(headers.get(REPLAYS)),
    )


def replay_message(message: AbstractIncomingMessage, *, by: str | None) -> Message:
    """The message as first published, failure headers dropped, marked as replayed."""
    headers = {k: v for k, v in (message.headers or {}).items() if k not in _FAILURE_HEADERS}
    headers[REPLAYED_AT] = datetime.now(UTC).isoformat()
    headers[REPLAYS] = _int((message.headers or {}).get(REPLAYS)) + 1
    if by:
        headers[REPLAYED_BY] = by[:200]
    return Message(
        message.body,
        message_id=message.message_id,
        content_type=message.content_type,
        delivery_mode=DeliveryMode.PERSISTENT,
        type=message.type,
        timestamp=message.timestamp,
        headers=headers,
    )


Visit = Callable[[AbstractIncomingMessage], Awaitable[bool]]


class DeadLetterQueues:
    """The queues of one topology on one broker connection."""

    def __init__(self, connection: AbstractConnection | None, topology: Topology, *, timeout: float = 5.0) -> None:
        self.connection = connection
        self.topology = topology
        self.timeout = timeout

    # Names -------------------------------------------------------------------------------------

    def groups(self) -> dict[str, str]:
        """Dead-letter queues by short group name (`sync-core`, `graph-webhook`), prefix removed."""
        prefix = self.topology.prefix
        return {g.removeprefix(prefix): self.topology.dead_letter_queue(g) for g in self.topology.groups()}

    def dead_letter_queue(self, group: str) -> str:
        """The dead-letter queue of a group; `DeadLetterError` for an unknown one."""
        try:
            return self.groups()[group]
        except KeyError:
            raise DeadLetterError(f"no dead-letter queue for {group!r}; known: {', '.join(self.groups())}") from None

    def roles(self) -> dict[str, str]:
        roles: dict[str, str] = {}
        for spec in self.topology.queues():
            roles[spec.name] = "work" if spec.single_active else "control"
            for attempt in range(len(self.topology.retry_delays_ms)):
                roles[self.topology.retry_queue(spec.name, attempt)] = "retry"
        for group in self.topology.groups():
            roles[self.topology.dead_letter_queue(group)] = "dead-letter"
        return roles

    # Reading -----------------------------------------------------------------------------------

    async def _channel(self) -> AbstractChannel:
        if self.connection is None or self.connection.is_closed:
            raise BrokerUnavailable("no broker connection")
        try:
            return await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        except Exception as exc:
            raise BrokerUnavailable(f"could not open a broker channel: {type(exc).__name__}: {exc}") from exc

    async def stats(self) -> list[QueueStats]:
        """Depth and consumer count of every queue of the topology (passive declare: nothing is created)."""
        out: list[QueueStats] = []
        channel = await self._channel()
        try:
            for name, role in self.roles().items():
                try:
                    if channel.is_closed:
                        channel = await self._channel()
                    queue = await channel.declare_queue(name, passive=True, timeout=self.timeout)
                    result = queue.declaration_result
                    out.append(QueueStats(name, role, result.message_count, result.consumer_count))
                except BrokerUnavailable:
                    raise
                except Exception as exc:
                    # A missing queue closes the channel; the next one gets a new channel.
                    out.append(QueueStats(name, role, None, None, f"{type(exc).__name__}: {exc}"[:300]))
        finally:
            if not channel.is_closed:
                await channel.close()
        return out

    async def _scan(self, queue_name: str, visit: Visit, *, limit: int | None = None) -> int:
        """Hand each message (up to the depth at the start, or `limit`) to `visit`; those it
        did not take (returned False) go back to the queue. Returns how many it took."""
        channel = await self._channel()
        held: list[AbstractIncomingMessage] = []
        taken = 0
        try:
            queue = await channel.declare_queue(queue_name, passive=True, timeout=self.timeout)
            depth = queue.declaration_result.message_count or 0
            budget = depth if limit is None else min(depth, limit)
            for _ in range(budget):
                message = await queue.get(no_ack=False, fail=False, timeout=self.timeout)
                if message is None:
                    break
                if await visit(message):
                    await message.ack()
                    taken += 1
                else:
                    held.append(message)
        finally:
            for message in held:
                try:
                    await message.nack(requeue=True)
                except Exception:  # the channel went away: the broker returns them anyway
                    log.debug("nack failed", exc_info=True)
            if not channel.is_closed:
                await channel.close()
        return taken

    async def list(self, queue_name: str, *, limit: int = 100) -> list[DeadLetter]:
        """The first `limit` dead letters, left in the queue."""
        seen: list[DeadLetter] = []

        async def look(message: AbstractIncomingMessage) -> bool:
            seen.append(describe(queue_name, message))
            return False

        await self._scan(queue_name, look, limit=limit)
        return seen

    # Acting ------------------------------------------------------------------------------------

    async def _republish(self, channel: AbstractChannel, message: AbstractIncomingMessage, by: str | None) -> None:
        original = _text((message.headers or {}).get(ORIGINAL_QUEUE))
        if not original or original not in self.roles():
            raise DeadLetterError(f"message {message_key(message)} names no queue of this deployment to go back to")
        await channel.default_exchange.publish(
            replay_message(message, by=by), routing_key=original, mandatory=True, timeout=self.timeout
        )

    async def replay(self, queue_name: str, key: str, *, by: str | None = None) -> DeadLetter | None:
        """Put one dead letter back on its original queue; None when no message has that key."""
        channel = await self._channel()
        taken: list[DeadLetter] = []
        try:

            async def pick(message: AbstractIncomingMessage) -> bool:
                if message_key(message) != key:
                    return False
                await self._republish(channel, message, by)
                taken.append(describe(queue_name, message))
                return True

            await self._scan(queue_name, _first(pick))
            return taken[0] if taken else None
        finally:
            if not channel.is_closed:
                await channel.close()

    async def replay_all(self, queue_name: str, *, by: str | None = None) -> int:
        """Put every dead letter present now back on its original queue; returns how many.

        Messages that fail again come back later; they are not replayed twice by one call."""
        channel = await self._channel()
        try:

            async def every(message: AbstractIncomingMessage) -> bool:
                try:
                    await self._republish(channel, message, by)
                except DeadLetterError:
                    return False  # no original queue: stays for a person to look at
                return True

            return await self._scan(queue_name, every)
        finally:
            if not channel.is_closed:
                await channel.close()

    async def discard(self, queue_name: str, key: str) -> DeadLetter | None:
        """Drop one dead letter for good; None when no message has that key."""
        taken: list[DeadLetter] = []

        async def pick(message: AbstractIncomingMessage) -> bool:
            if message_key(message) != key:
                return False
            taken.append(describe(queue_name, message))
            return True

        await self._scan(queue_name, _first(pick))
        return taken[0] if taken else None

    async def discard_all(self, queue_name: str) -> int:
        """Drop every dead letter of the queue; returns how many there were."""
        channel = await self._channel()
        try:
            queue = await channel.declare_queue(queue_name, passive=True, timeout=self.timeout)
            result = await queue.purge(timeout=self.timeout)
            return int(getattr(result, "message_count", 0) or 0)
        finally:
            if not channel.is_closed:
                await channel.close()


def _first(visit: Visit) -> Visit:
    """`visit`, but it takes one message at most."""
    done = False

    async def once(message: AbstractIncomingMessage) -> bool:
        nonlocal done
        if done:
            return False
        done = await visit(message)
        return done

    return once
