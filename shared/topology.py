"""The broker topology, declared idempotently by every service at start.

One topic exchange `sync`. Routing keys are `<type>.<shard>` (e.g. `graph.changed.3`).
sync-core reads `sync-core.s<N>` queues: quorum queues with single active consumer, so work
for one (user, collection) is handled by one consumer at a time even with several replicas.
Each work queue has retry queues (TTL, dead-lettered back) and its group has a dead-letter queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractExchange

EXCHANGE = "sync"


@dataclass(frozen=True)
class QueueSpec:
    """A work queue: its name, its bindings on the exchange, its consumer group."""

    name: str
    bindings: tuple[str, ...]
    group: str
    single_active: bool = False
    arguments: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Topology:
    prefix: str
    shards: int
    retry_delays_ms: tuple[int, ...]

    @property
    def exchange(self) -> str:
        return f"{self.prefix}{EXCHANGE}"

    def sync_core_queue(self, shard: int) -> str:
        return f"{self.prefix}sync-core.s{shard}"

    def queues(self) -> list[QueueSpec]:
        specs = [
            QueueSpec(
                self.sync_core_queue(i),
                (f"graph.*.{i}", f"erp.*.{i}", f"sync.*.{i}", f"journal.*.{i}"),
                group=f"{self.prefix}sync-core",
                single_active=True,
            )
            for i in range(self.shards)
        ]
        specs.append(
            QueueSpec(f"{self.prefix}graph-webhook.control", ("user.changed.*",), group=f"{self.prefix}graph-webhook")
        )
        return specs

    def spec(self, name: str) -> QueueSpec:
        for spec in self.queues():
            if spec.name == name:
                return spec
        raise KeyError(name)

    def queue_for(self, routing_key: str) -> str:
        """The work queue a routing key reaches (topic match, `*` = one word); '' when none."""
        words = routing_key.split(".")
        for spec in self.queues():
            for binding in spec.bindings:
                pattern = binding.split(".")
                if len(pattern) == len(words) and all(p in ("*", w) for p, w in zip(pattern, words, strict=True)):
                    return spec.name
        return ""

    def retry_queue(self, queue: str, attempt: int) -> str:
        return f"{queue}.retry.{attempt + 1}"

    def dead_letter_queue(self, group: str) -> str:
        return f"{group}.dlq"

    def groups(self) -> list[str]:
        return sorted({q.group for q in self.queues()})

    def all_queue_names(self) -> list[str]:
        names: list[str] = []
        for q in self.queues():
            names.append(q.name)
            names.extend(self.retry_queue(q.name, i) for i in range(len(self.retry_delays_ms)))
        names.extend(self.dead_letter_queue(g) for g in self.groups())
        return names


QUORUM = {"x-queue-type": "quorum"}


async def declare(channel: AbstractChannel, topo: Topology) -> AbstractExchange:
    """Declare the exchange, the work, retry and dead-letter queues; safe to repeat."""
    exchange = await channel.declare_exchange(topo.exchange, ExchangeType.TOPIC, durable=True)
    for spec in topo.queues():
        args: dict[str, object] = {**QUORUM, **spec.arguments}
        if spec.single_active:
            args["x-single-active-consumer"] = True
        queue = await channel.declare_queue(spec.name, durable=True, arguments=args)  # type: ignore[arg-type]
        for key in spec.bindings:
            await queue.bind(exchange, routing_key=key)
        for attempt, delay in enumerate(topo.retry_delays_ms):
            # Classic queue with a queue-wide TTL: messages expire in order from the head and go
            # back to the work queue through the default exchange.
            await channel.declare_queue(
                topo.retry_queue(spec.name, attempt),
                durable=True,
                arguments={
                    "x-message-ttl": delay,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": spec.name,
                },
            )
    for group in topo.groups():
        await channel.declare_queue(topo.dead_letter_queue(group), durable=True, arguments=dict(QUORUM))  # type: ignore[arg-type]
    return exchange
