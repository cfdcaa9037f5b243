"""Confirmed publishing that reports every broker failure as `BrokerUnavailable`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.context import Context

from shared.bus import Bus
from shared.envelope import Envelope
from shared.errors import BrokerUnavailable


@contextmanager
def _cancel_is_broker_loss() -> Iterator[None]:
    """When the connection closes under a publish, aio-pika cancels the pending confirm: the caller
    sees `CancelledError` although nobody cancelled it. That would end the outbox relay's task
    silently, so it becomes `BrokerUnavailable` unless this task really is being cancelled."""
    try:
        yield
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        raise BrokerUnavailable("the broker connection closed before confirming") from exc


async def publish_confirmed(bus: Bus, *envelopes: Envelope) -> None:
    """Publish and wait for the broker's confirms; any failure raises."""
    with _cancel_is_broker_loss():
        await bus.publish_many(list(envelopes))


async def publish_each_confirmed(
    bus: Bus, envelopes: list[Envelope], parents: list[Context]
) -> list[BrokerUnavailable | None]:
    """Publish at once and say, per message, whether the broker confirmed it (None) or why not."""
    try:
        with _cancel_is_broker_loss():
            return await bus.publish_each(envelopes, parents=parents)
    except BrokerUnavailable as exc:  # the batch could not start or missed its deadline: none counts
        return [exc] * len(envelopes)
