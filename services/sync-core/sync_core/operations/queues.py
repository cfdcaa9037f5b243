"""Queues and dead letters (shared.dead_letters) on sync-core's broker connection, audited."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.dead_letters import DeadLetter, DeadLetterError, DeadLetterQueues, QueueStats
from shared.errors import BrokerUnavailable
from sync_core.operations.audit import audit
from sync_core.operations.errors import Invalid, NotFound, Unavailable

if TYPE_CHECKING:
    from sync_core.app import Runtime


def dead_letter_queues(rt: Runtime) -> DeadLetterQueues:
    return DeadLetterQueues(rt.bus.connection, rt.bus.topology, timeout=rt.settings.ops_timeout_s)


def _queue(dlq: DeadLetterQueues, group: str) -> str:
    try:
        return dlq.dead_letter_queue(group)
    except DeadLetterError as exc:
        raise NotFound(str(exc)) from None


async def queue_stats(rt: Runtime) -> list[QueueStats]:
    try:
        return await dead_letter_queues(rt).stats()
    except BrokerUnavailable as exc:
        raise Unavailable(f"broker: {exc}") from exc


async def list_dead_letters(rt: Runtime, group: str, *, limit: int = 100) -> list[DeadLetter]:
    dlq = dead_letter_queues(rt)
    try:
        return await dlq.list(_queue(dlq, group), limit=limit)
    except BrokerUnavailable as exc:
        raise Unavailable(f"broker: {exc}") from exc


async def replay(rt: Runtime, group: str, key: str, *, actor: str) -> DeadLetter:
    """Put one dead letter back on its queue."""
    dlq = dead_letter_queues(rt)
    try:
        found = await dlq.replay(_queue(dlq, group), key, by=actor)
    except DeadLetterError as exc:
        raise Invalid(str(exc)) from None
    except BrokerUnavailable as exc:
        raise Unavailable(f"broker: {exc}") from exc
    if found is None:
        raise NotFound(f"no dead letter {key} in {group} (replayed or discarded already?)")
    await audit(
        rt,
        actor=actor,
        action="dlq.replay",
        user=found.user,
        reason=f"replayed dead letter {key} ({found.type}) of {group} to {found.original_queue}",
        details={"key": key, "error": found.error, "attempts": found.attempts},
    )
    return found


async def replay_all(rt: Runtime, group: str, *, actor: str) -> int:
    dlq = dead_letter_queues(rt)
    try:
        count = await dlq.replay_all(_queue(dlq, group), by=actor)
    except BrokerUnavailable as exc:
        raise Unavailable(f"broker: {exc}") from exc
    await audit(rt, actor=actor, action="dlq.replay-all", reason=f"replayed {count} dead letter(s) of {group}")
    return count


async def discard(rt: Runtime, group: str, key: str, *, actor: str) -> DeadLetter:
    dlq = dead_letter_queues(rt)
    try:
        found = await dlq.discard(_queue(dlq, group), key)
    except BrokerUnavailable as exc:
        raise Unavailable(f"broker: {exc}") from exc
    if found is None:
        raise NotFound(f"no dead letter {key} in {group} (replayed or discarded already?)")
    await audit(
        rt,
        actor=actor,
        action="dlq.discard",
        user=found.user,
        reason=f"discarded dead letter {key} ({found.type}) of {group}",
        details={"key": key, "error": found.error, "attempts": found.attempts},
    )
    return found


async def discard_all(rt: Runtime, group: str, *, actor: str) -> int:
    dlq = dead_letter_queues(rt)
    try:
        count = await dlq.discard_all(_queue(dlq, group))
    except BrokerUnavailable as exc:
        raise Unavailable(f"broker: {exc}") from exc
    await audit(rt, actor=actor, action="dlq.discard-all", reason=f"discarded {count} dead letter(s) of {group}")
    return count
