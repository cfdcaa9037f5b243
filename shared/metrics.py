"""Gauges sampled on a schedule: broker queues (depth, consumers) and whatever a service registers.

    sampler = Sampler("sync-core", [QueueProbe(bus)])
    sampler.start()          # samples at once, then every `interval_s` (and measures the loop's lag)
    ...
    await sampler.stop()     # its series disappear from `/metrics`

Why sampled, not read at scrape time: Prometheus reads `/metrics` synchronously, and a queue's depth
needs a round trip to the broker (a passive declare per queue). A sampler keeps the last values in
memory; the observable gauges report them. A gauge's values belong to the sampler that set them, so
several services (or several test systems) in one process never overwrite each other's series,
and a stopped service's series go away instead of going stale.

Process RSS needs nothing here: `prometheus_client` exports `process_resident_memory_bytes` (and CPU,
open file descriptors, start time) on every `/metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from opentelemetry.metrics import CallbackOptions, Observation

from shared.dead_letters import DeadLetterQueues
from shared.telemetry import meter, user_hash

if TYPE_CHECKING:
    from shared.bus import Bus

log = logging.getLogger(__name__)
_meter = meter("shared.metrics")

SAMPLE_INTERVAL_S = 15.0
Labels = tuple[tuple[str, str], ...]


def labels(**values: object) -> Labels:
    """A hashable label set, for `SampledGauge.set`."""
    return tuple(sorted((k, str(v)) for k, v in values.items()))


class SampledGauge:
    """An observable gauge whose values are set by samplers, each owning its own series."""

    def __init__(self, name: str, description: str, unit: str = "") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._values: dict[int, dict[Labels, float]] = {}
        _meter.create_observable_gauge(name, callbacks=[self._observe], unit=unit, description=description)

    def set(self, owner: object, values: dict[Labels, float]) -> None:
        """Replace every series `owner` reports (series it no longer names are dropped)."""
        with self._lock:
            self._values[id(owner)] = dict(values)

    def forget(self, owner: object) -> None:
        with self._lock:
            self._values.pop(id(owner), None)

    def values(self) -> dict[Labels, float]:
        """All current series (for tests and debugging)."""
        with self._lock:
            return {k: v for series in self._values.values() for k, v in series.items()}

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value, dict(key)) for key, value in self.values().items()]


queue_messages = SampledGauge(
    "sync_queue_messages", "Messages ready in a broker queue (work, retry, dead-letter, control), by queue and role"
)
queue_consumers = SampledGauge("sync_queue_consumers", "Consumers attached to a broker queue, by queue and role")
broker_up = SampledGauge("sync_broker_up", "1 when the last sample of the broker's queues succeeded, else 0")
_sample_failures = _meter.create_counter("sync_metric_sample_failures", description="Gauge samples that failed")


class Probe(Protocol):
    """Something a `Sampler` reads on schedule: `sample` sets gauges, `forget` drops its series."""

    async def sample(self) -> None: ...

    def forget(self) -> None: ...


LOOP_LAG_EVERY_S = 0.1
loop_lag = _meter.create_histogram(
    "sync_event_loop_lag_seconds",
    unit="s",
    description="How late a timer fired on the service's event loop (one every 0.1 s): the wait of any ready work",
)


class LoopLag:
    """Measures the event loop's lag, while `run` runs (a `Sampler` runs it beside its probes): a
    timer set every `every_s` and how late it fires. A loop busy with a long step (a synchronous
    call, a full garbage collection) delays every message and request of the process by as much;
    ADR 0059 was found this way."""

    def __init__(self, record: Callable[[float], None] = loop_lag.record, every_s: float = LOOP_LAG_EVERY_S) -> None:
        self.record = record
        self.every_s = every_s

    async def run(self) -> None:
        clock = time.perf_counter  # the loop's own clock has a millisecond's resolution on uvloop
        while True:
            asked = clock()
            await asyncio.sleep(self.every_s)
            self.record(max(0.0, clock() - asked - self.every_s))


# Samplers running in this process: `refresh_all` lets a test (or a debug endpoint) sample now.
_running: set[Sampler] = set()


class Sampler:
    """Reads its probes at once and then every `interval_s` until stopped; a failure is logged once."""

    def __init__(self, name: str, probes: list[Probe], interval_s: float = SAMPLE_INTERVAL_S) -> None:
        self.name = name
        self.probes = probes
        self.interval_s = interval_s
        self._tasks: list[asyncio.Task[None]] = []
        self._failing: set[str] = set()
        self.loop_lag = LoopLag()  # measured alongside, in every service that samples

    def start(self) -> None:
        if not self._tasks:
            _running.add(self)
            self._tasks = [
                asyncio.create_task(self._run(), name=f"{self.name}-metrics"),
                asyncio.create_task(self.loop_lag.run(), name=f"{self.name}-loop-lag"),
            ]

    async def stop(self) -> None:
        """Stop sampling and drop the probes' series."""
        _running.discard(self)
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for probe in self.probes:
            probe.forget()

    async def sample(self) -> None:
        """Read every probe once; one failing does not stop the others."""
        for probe in self.probes:
            name = type(probe).__name__
            try:
                await probe.sample()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _sample_failures.add(1, {"sampler": self.name, "probe": name})
                if name not in self._failing:
                    log.warning("metric probe %s failed: %s: %s", name, type(exc).__name__, str(exc)[:200])
                    self._failing.add(name)
            else:
                if name in self._failing:
                    log.info("metric probe %s recovered", name)
                    self._failing.discard(name)

    async def _run(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self.interval_s)


async def refresh_all() -> None:
    """Sample every running sampler of this process now."""
    for sampler in list(_running):
        await sampler.sample()


class QueueProbe:
    """Depth and consumer count of every queue of a bus's topology, by passive declares.

    Covers the work queues, each one's retry queues, the dead-letter queues and the control queue.
    A queue the broker does not know (yet) is left out; a broker that does not answer sets
    `sync_broker_up` to 0 and drops the queue series rather than showing stale numbers.
    """

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def sample(self) -> None:
        connection = self.bus.connection
        if connection is None or connection.is_closed:
            # Not connected (yet, or any more): the service's own logs and `/readyz` say why.
            self._down()
            return
        try:
            stats = await DeadLetterQueues(connection, self.bus.topology).stats()
        except Exception:
            self._down()
            raise
        messages: dict[Labels, float] = {}
        consumers: dict[Labels, float] = {}
        for q in stats:
            if q.messages is None or q.consumers is None:
                continue
            key = labels(queue=q.name, role=q.role)
            messages[key] = float(q.messages)
            consumers[key] = float(q.consumers)
        queue_messages.set(self, messages)
        queue_consumers.set(self, consumers)
        broker_up.set(self, {(): 1.0})

    def _down(self) -> None:
        queue_messages.forget(self)
        queue_consumers.forget(self)
        broker_up.set(self, {(): 0.0})

    def forget(self) -> None:
        for gauge in (queue_messages, queue_consumers, broker_up):
            gauge.forget(self)


users_healthy = SampledGauge(
    "sync_user_healthy",
    "1 while a user's mailbox and credentials work, 0 once a sync failed on them (R35), by user hash",
)
users_by_health = SampledGauge("sync_users", "Users known to sync-core, by health (healthy, unhealthy)")
journal_failures = _meter.create_counter(
    "sync_journal_failures",
    description="Journal lines with outcome `failed`, by user hash, kind and direction (R25, R35)",
)


class UserHealthProbe:
    """Per-user health as sync-core records it, read from its state by `read` (e-mail → healthy)."""

    def __init__(self, read: Callable[[], Awaitable[dict[str, bool]]]) -> None:
        self.read = read

    async def sample(self) -> None:
        health = await self.read()
        users_healthy.set(self, {labels(user_hash=user_hash(u)): float(ok) for u, ok in health.items()})
        unhealthy = sum(1 for ok in health.values() if not ok)
        users_by_health.set(
            self,
            {labels(health="healthy"): float(len(health) - unhealthy), labels(health="unhealthy"): float(unhealthy)},
        )

    def forget(self) -> None:
        users_healthy.forget(self)
        users_by_health.forget(self)


def count_journal_failure(user: str, kind: str | None, direction: str | None) -> None:
    """Count one failed journal line; the user only as its hash."""
    journal_failures.add(1, {"user_hash": user_hash(user), "kind": kind or "", "direction": direction or ""})
