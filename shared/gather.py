"""Calls sent together when they queue up (ADR 0027): no wait is ever added to gather them.

At most `in_flight` sends run at once. A call that finds a send free starts one at once; a send takes
every call queued by the time it runs (up to `max_batch`) and goes on while more are queued. At low
load that is each call alone; in a burst, one request for many, each answered (or refused) as if sent
alone. Used for sync-core's ERP creates (`POST /batch`) and its R21 stamps on Outlook items (`$batch`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar


def _future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


@dataclass
class Call:
    """One queued call; `answer` is settled with its result or its exception."""

    answer: asyncio.Future[Any] = field(default_factory=_future, kw_only=True)


C = TypeVar("C", bound=Call)


def settle(call: Call, outcome: Any) -> None:
    """Answer a call once: an exception is raised to its caller, anything else returned."""
    if call.answer.done():
        return
    if isinstance(outcome, BaseException):
        call.answer.set_exception(outcome)
    else:
        call.answer.set_result(outcome)


async def answer_with(call: Call, work: Awaitable[Any]) -> None:
    """Answer a call with what `work` returns, or with the exception it raises."""
    try:
        result = await work
    except Exception as exc:
        settle(call, exc)
    else:
        if not call.answer.done():
            call.answer.set_result(result)


class Gather(Generic[C]):
    """Subclasses say how one call goes `alone` and how several go `together`; both settle every call
    they are given. `stopped` is the error for calls left when a send ends without answering them."""

    def __init__(self, *, max_batch: int, in_flight: int) -> None:
        self.max_batch = max_batch
        self.in_flight = in_flight
        self._queue: deque[C] = deque()
        self._senders: set[asyncio.Task[None]] = set()
        # Sends running, counted down by the send itself when it finds the queue empty (with no
        # await in between): a call queued after that check starts a send of its own.
        self._running = 0

    @property
    def idle(self) -> bool:
        """Nothing queued and no send running."""
        return not self._queue and self._running == 0

    async def _alone(self, call: C) -> None:
        raise NotImplementedError

    async def _together(self, calls: list[C]) -> None:
        raise NotImplementedError

    def _stopped(self, reason: str) -> BaseException:
        raise NotImplementedError

    def _can_gather(self) -> bool:
        return True

    async def submit(self, call: C) -> Any:
        return await self.enqueue(call)

    def enqueue(self, call: C) -> asyncio.Future[Any]:
        """Queue `call` now (a send starts if one is free) and return its answer to await."""
        self._queue.append(call)
        if self._running < self.in_flight:
            self._running += 1
            task = asyncio.create_task(self._send())
            self._senders.add(task)
            task.add_done_callback(self._senders.discard)
        return call.answer

    async def _send(self) -> None:
        taken: list[C] = []
        try:
            while self._queue:
                taken = []
                while self._queue and len(taken) < self.max_batch:
                    call = self._queue.popleft()
                    if not call.answer.done():  # its caller gave up before it was sent: nothing to send
                        taken.append(call)
                if len(taken) > 1 and self._can_gather():
                    await self._together(taken)
                else:
                    await asyncio.gather(*(self._alone(call) for call in taken))
        except BaseException as exc:
            gone = self._stopped(f"stopped ({type(exc).__name__})")
            for call in [*taken, *self._queue]:
                settle(call, gone)
            self._queue.clear()
            raise
        finally:
            self._running -= 1

    async def aclose(self) -> None:
        for task in list(self._senders):
            task.cancel()
        await asyncio.gather(*self._senders, return_exceptions=True)
        closed = self._stopped("closed")
        for call in self._queue:  # left by a send cancelled before it started
            settle(call, closed)
        self._queue.clear()
