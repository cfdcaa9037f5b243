"""Injected faults and Outlook's per-mailbox throttling model.

Outlook service limits (https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits):
10,000 API requests per 10 minutes and 4 concurrent requests, per app and mailbox. Throttled
requests get 429 with Retry-After and the body of https://learn.microsoft.com/graph/throttling.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import deque
from typing import Any

from pydantic import BaseModel

from graph_sim.clock import SimClock
from graph_sim.errors import GraphError


class Throttling(BaseModel):
    enabled: bool = False
    concurrency: int = 4
    requests: int = 10_000
    window_seconds: float = 600.0


class Burst(BaseModel):
    """The next `count` Graph requests (optionally only for one mailbox) fail."""

    count: int = 0
    retry_after: float | None = 2.0
    user: str | None = None


class NotificationFaults(BaseModel):
    drop_ratio: float = 0.0
    duplicate_ratio: float = 0.0
    reorder_ratio: float = 0.0
    reorder_hold_seconds: float = 0.5
    seed: int | None = None


class FaultSettings(BaseModel):
    throttling: Throttling = Throttling()
    force_429: Burst = Burst()
    force_503: Burst = Burst(retry_after=None)
    latency_ms: float = 0.0
    notifications: NotificationFaults = NotificationFaults()


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in patch.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class Faults:
    """Current fault settings plus the throttling counters."""

    def __init__(self, clock: SimClock, throttling: bool = False) -> None:
        self.clock = clock
        self.default_throttling = throttling
        self.settings = FaultSettings(throttling=Throttling(enabled=throttling))
        self.rng = random.Random()
        self.inflight: dict[tuple[str, str], int] = {}
        self.windows: dict[tuple[str, str], deque[float]] = {}

    def update(self, patch: dict[str, Any]) -> FaultSettings:
        """Merge a partial JSON body into the settings (POST /_sim/faults)."""
        if patch.get("notifications", {}).get("reorder") is True:
            patch["notifications"]["reorder_ratio"] = 0.5
        patch.get("notifications", {}).pop("reorder", None)
        self.settings = FaultSettings.model_validate(_merge(self.settings.model_dump(), patch))
        seed = self.settings.notifications.seed
        if "notifications" in patch and seed is not None:
            self.rng = random.Random(seed)
        return self.settings

    def reset(self) -> None:
        self.settings = FaultSettings(throttling=Throttling(enabled=self.default_throttling))
        self.inflight.clear()
        self.windows.clear()

    async def delay(self) -> None:
        """Added latency, spent while the request holds its concurrency slot."""
        if self.settings.latency_ms > 0:
            await asyncio.sleep(self.settings.latency_ms / 1000)

    def before(self, app_id: str, mailbox: str | None) -> tuple[str, str] | None:
        """Forced errors, then throttling; returns the concurrency slot to release."""
        s = self.settings
        for status, burst in ((503, s.force_503), (429, s.force_429)):
            if burst.count > 0 and (burst.user is None or burst.user == mailbox):
                burst.count -= 1
                headers = {"Retry-After": _fmt(burst.retry_after)} if burst.retry_after is not None else {}
                if status == 503:
                    raise GraphError(
                        503, "serviceNotAvailable", "The service is temporarily unavailable. Try again later.", headers
                    )
                raise GraphError(429, "TooManyRequests", "Please retry again later.", headers)
        t = s.throttling
        if not t.enabled or mailbox is None:
            return None
        key = (app_id, mailbox)
        now = self.clock.time()
        window = self.windows.setdefault(key, deque())
        while window and window[0] <= now - t.window_seconds:
            window.popleft()
        if len(window) >= t.requests:
            wait = max(1, math.ceil(window[0] + t.window_seconds - now))
            raise GraphError(
                429,
                "ApplicationThrottled",
                "Application is over its MailboxRequests limit.",
                {"Retry-After": str(wait)},
            )
        if self.inflight.get(key, 0) >= t.concurrency:
            raise GraphError(
                429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.", {"Retry-After": "1"}
            )
        window.append(now)
        self.inflight[key] = self.inflight.get(key, 0) + 1
        return key

    def release(self, slot: tuple[str, str] | None) -> None:
        if slot is not None:
            self.inflight[slot] -= 1


def _fmt(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)
