"""Asynchronous webhook delivery: batching per notificationUrl, retries with back-off, and
notification faults (drop, duplicate, reorder).

Delivery rules from https://learn.microsoft.com/graph/change-notifications-delivery-webhooks:
several notifications may share one POST; a reply that is not 2xx within 3 seconds is retried.
Delivery never runs inside the API request that caused the change.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import orjson

from shared.transport import AiohttpTransport

if TYPE_CHECKING:
    from graph_sim.simulator import Simulator

log = logging.getLogger("graph_sim.notifier")


@dataclass(slots=True)
class Pending:
    notification: dict[str, Any]
    lifecycle: bool = False
    subscription_id: str | None = None


@dataclass
class Counters:
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    retries: int = 0
    posts: int = 0
    lifecycle_delivered: int = 0
    lifecycle_failed: int = 0
    missed_sent: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Target:
    url: str
    queue: deque[Pending] = field(default_factory=deque)
    held: list[Pending] = field(default_factory=list)
    worker: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Notifier:
    """Queues notifications per target URL and delivers them from background tasks."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.targets: dict[str, Target] = {}
        self.counters = Counters()
        self.outstanding = 0
        self.history: deque[dict[str, Any]] = deque(maxlen=sim.config.notification_history_size)
        self._idle: asyncio.Event | None = None
        self._clients: dict[str, httpx.AsyncClient] = {}

    # clients ---------------------------------------------------------------------------------
    def client_for(self, url: str) -> httpx.AsyncClient:
        """http targets, and https on loopback without verification; other https verified."""
        scheme = urlsplit(url).scheme
        if scheme == "http" or is_loopback(url):
            name, verify = (
                "loopback",
                False if self.sim.config.notification_ca_bundle is None else self.sim.config.notification_ca_bundle,
            )
        else:
            name, verify = "verified", self.sim.config.notification_ca_bundle or True
        client = self._clients.get(name)
        if client is None:
            # On aiohttp's connections, as our own clients (ADR 0057): the simulator shares the cores
            # with what it serves in the benchmarks, and this was a quarter of its CPU.
            transport = AiohttpTransport(limits=httpx.Limits(max_connections=100), verify=verify, trust_env=False)
            client = httpx.AsyncClient(
                transport=transport, trust_env=False, timeout=self.sim.config.delivery_timeout_seconds
            )
            self._clients[name] = client
        return client

    async def close(self) -> None:
        for target in self.targets.values():
            if target.worker is not None:
                target.worker.cancel()
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    def reset(self) -> None:
        for target in self.targets.values():
            if target.worker is not None:
                target.worker.cancel()
        self.targets.clear()
        self.counters = Counters()
        self.outstanding = 0
        self.history.clear()
        if self._idle is not None:
            self._idle.set()

    # queueing --------------------------------------------------------------------------------
    def _idle_event(self) -> asyncio.Event:
        if self._idle is None:
            self._idle = asyncio.Event()
            self._idle.set()
        return self._idle

    def enqueue(
        self, url: str, notification: dict[str, Any], lifecycle: bool = False, subscription_id: str | None = None
    ) -> None:
        """Queue one notification; change notifications are subject to the notification faults."""
        target = self.targets.get(url)
        if target is None:
            target = self.targets[url] = Target(url)
        pending = Pending(notification, lifecycle, subscription_id)
        copies = 1
        if not lifecycle:
            f = self.sim.faults.settings.notifications
            rng = self.sim.faults.rng
            if f.drop_ratio and rng.random() < f.drop_ratio:
                self.counters.dropped += 1
                return
            if f.duplicate_ratio and rng.random() < f.duplicate_ratio:
                self.counters.duplicated += 1
                copies = 2
            if f.reorder_ratio and rng.random() < f.reorder_ratio:
                self.counters.reordered += 1
                target.held.append(pending)
                self._add_outstanding(1)
                asyncio.get_running_loop().call_later(f.reorder_hold_seconds, self._release, target)
                copies -= 1
        for _ in range(copies):
            target.queue.append(Pending(notification, lifecycle, subscription_id))
            self._add_outstanding(1)
        self._ensure_worker(target)

    def _add_outstanding(self, n: int) -> None:
        self.outstanding += n
        idle = self._idle_event()
        if self.outstanding > 0:
            idle.clear()
        else:
            idle.set()

    def _release(self, target: Target) -> None:
        if target.held:
            target.queue.extend(target.held)
            target.held.clear()
            self._ensure_worker(target)

    def _ensure_worker(self, target: Target) -> None:
        target.wake.set()
        if target.worker is None or target.worker.done():
            target.worker = asyncio.get_running_loop().create_task(self._run(target))

    async def flush(self, timeout: float = 10.0) -> bool:
        """Release held notifications and wait until nothing is pending or in flight."""
        for target in self.targets.values():
            self._release(target)
        try:
            await asyncio.wait_for(self._idle_event().wait(), timeout)
        except TimeoutError:
            return False
        return True

    # delivery --------------------------------------------------------------------------------
    async def _run(self, target: Target) -> None:
        cfg = self.sim.config
        while target.queue:
            if cfg.notification_batch_window_seconds > 0:
                await asyncio.sleep(cfg.notification_batch_window_seconds)
            batch: list[Pending] = []
            while target.queue and len(batch) < cfg.notification_batch_max:
                batch.append(target.queue.popleft())
            try:
                ok = await self._post_with_retry(target.url, batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("graph_sim: delivery to %s crashed", target.url)
                ok = False
            self._settle(batch, ok)
            # a held (reordered) notification goes out after a later batch
            self._release(target)

    def _settle(self, batch: list[Pending], ok: bool) -> None:
        lifecycle = sum(1 for p in batch if p.lifecycle)
        changes = len(batch) - lifecycle
        if ok:
            self.counters.delivered += changes
            self.counters.lifecycle_delivered += lifecycle
        else:
            self.counters.failed += changes
            self.counters.lifecycle_failed += lifecycle
            if self.sim.config.missed_on_delivery_failure:
                for sid in {p.subscription_id for p in batch if not p.lifecycle and p.subscription_id}:
                    self.sim.subscriptions.send_lifecycle(sid, "missed")
                    self.counters.missed_sent += 1
        self._add_outstanding(-len(batch))

    async def _post_with_retry(self, url: str, batch: list[Pending]) -> bool:
        cfg = self.sim.config
        payload = orjson.dumps({"value": [p.notification for p in batch]})
        client = self.client_for(url)
        for attempt in range(cfg.delivery_max_attempts):
            if attempt:
                self.counters.retries += 1
                await asyncio.sleep(cfg.delivery_backoff_seconds * (2 ** (attempt - 1)))
            status: int | str
            # Wall-clock time of the POST: benchmarks time a change from here to the other side.
            sent_at = time.time()
            try:
                self.counters.posts += 1
                resp = await client.post(url, content=payload, headers={"Content-Type": "application/json"})
                status = resp.status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            self.history.append(
                {
                    "url": url,
                    "attempt": attempt + 1,
                    "status": status,
                    "sent_at": sent_at,
                    "value": [p.notification for p in batch],
                }
            )
            if isinstance(status, int) and 200 <= status < 300:
                return True
        return False
