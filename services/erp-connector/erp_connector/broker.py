"""Confirmed publishing that reports every broker failure as `BrokerUnavailable`."""

from __future__ import annotations

import asyncio

from shared.bus import Bus
from shared.envelope import Envelope
from shared.errors import BrokerUnavailable


async def publish_confirmed(bus: Bus, *envelopes: Envelope) -> None:
    """Publish and wait for the broker's confirms.

    When the connection closes under a publish, aio-pika cancels the pending confirm: the caller
    sees `CancelledError` although nobody cancelled it. That would end the outbox relay's task
    silently, so it becomes `BrokerUnavailable` unless this task really is being cancelled.
    """
    try:
        await bus.publish_many(list(envelopes))
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        raise BrokerUnavailable("the broker connection closed before confirming") from exc
