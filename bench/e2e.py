"""End-to-end latency both ways at a fixed offered rate (open loop: changes are made on schedule,
whether or not earlier ones are done).

- Outlook → ERP: an event is created in a simulated mailbox (as the user would, through the
  simulator's seeding API, which notifies like Graph). Timed from the simulator's notification POST
  (`sent_at` in `GET /_sim/notifications`) to the ERP row (`created_at` of the activity).
- ERP → Outlook: a meeting is created through the ERP's REST API. Timed from the ERP row
  (`created_at`) to the event in the mailbox (`createdDateTime` of the simulator's record).

Both clocks are this host's. Changes are spread round-robin over `users` mailboxes. A change not
through within `drain_s` after the last one was offered counts as missing (reported, and counted
at the drain limit in the percentiles, so a backlog can't hide).
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import httpx

from bench.seed import (
    User,
    day_start,
    erp_activities,
    erp_meeting,
    erp_total,
    event_body,
    notification_times,
    parse_ts,
    sim_items,
)
from bench.stack import Stack
from bench.stats import summary

_METRIC = re.compile(r"^http_server_duration_milliseconds_count\{(?P<labels>.*)\} (?P<value>[0-9.e+]+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


async def request_counts(stack: Stack) -> dict[str, float]:
    """Requests served so far: Graph's by route (simulator stats), the ERP's by method and route (/metrics)."""
    out: dict[str, float] = {}
    async with stack.sim() as sim:
        stats = (await sim.get("/_sim/stats")).json()
    batched = stats.get("batched") or {}
    for route, by_status in stats["requests"].items():
        # A $batch's sub-requests ride in its one HTTP request (`graph POST /$batch`): kept apart, and
        # not priced as requests of their own by `cpu_floor_ms`.
        inner = float(batched.get(route, 0))
        out[f"graph {route}"] = float(sum(by_status.values())) - inner
        if inner:
            out[f"in $batch: graph {route}"] = inner
    # Messages: graph-webhook publishes one per delivered notification, the ERP one per relayed outbox row.
    out["messages graph.changed (notifications delivered)"] = float(stats["notifications"]["delivered"])
    async with httpx.AsyncClient(trust_env=False, timeout=30) as c:
        text = (await c.get(f"{stack.erp_url}/metrics")).text
    for line in text.splitlines():
        if line.startswith("erp_outbox_relayed_total"):
            key = "messages erp.changed (outbox relayed)"
            out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
            continue
        m = _METRIC.match(line)
        if m:
            labels = dict(_LABEL.findall(m["labels"]))
            key = f"erp {labels.get('http_method', '?')} {labels.get('http_target', '?')}"
            out[key] = out.get(key, 0.0) + float(m["value"])
    return out


def per_change(before: dict[str, float], after: dict[str, float], changes: int) -> dict[str, float]:
    """Requests per change between two `request_counts`, busiest first."""
    diff = {k: after[k] - before.get(k, 0.0) for k in after}
    return {k: round(v / max(changes, 1), 2) for k, v in sorted(diff.items(), key=lambda kv: -kv[1]) if v > 0}


class Slots:
    """Non-overlapping meeting times per user: the ERP refuses overlapping meetings (R15)."""

    def __init__(self, first_day: int = 2, minutes: int = 30) -> None:
        self.base = day_start(first_day)
        self.minutes = minutes
        self.next: dict[str, int] = {}

    def take(self, user: User) -> datetime:
        n = self.next.get(user.code, 0)
        self.next[user.code] = n + 1
        return self.base + timedelta(minutes=self.minutes * n)


def load_client(*, ssl: ssl.SSLContext | None = None, headers: dict[str, str] | None = None) -> aiohttp.ClientSession:
    """The load generator's HTTP client. It shares the machine's two cores with the system it
    measures, so it is aiohttp: about half httpx's CPU per request (docs/benchmarks.md, session 8).
    The bench's probes and reads, off the timed path, keep httpx."""
    connector = aiohttp.TCPConnector(limit=64, ssl=ssl if ssl is not None else True)
    return aiohttp.ClientSession(connector=connector, headers=headers, timeout=aiohttp.ClientTimeout(total=60))


async def offer(rate: float, count: int, make: Callable[[int], Coroutine[Any, Any, None]]) -> dict[str, Any]:
    """Start `make(i)` at `i / rate` seconds, for i < count, without waiting for earlier ones."""
    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter()
    lag: list[float] = []
    for i in range(count):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            lag.append(-delay * 1000)
        tasks.append(asyncio.create_task(make(i)))
    offered_s = time.perf_counter() - start
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    return {
        "offered": count,
        "offered_rate_per_s": round(count / offered_s, 1) if offered_s else None,
        "errors": len(errors),
        "first_error": repr(errors[0])[:300] if errors else None,
        "schedule_lag_ms_p99": summary(lag)["p99"] if lag else 0.0,
    }


async def _wait_for(
    probe: Callable[[], Awaitable[int]], target: int, drain_s: float, every_s: float = 0.25
) -> tuple[int, float]:
    start = time.perf_counter()
    done = 0
    while time.perf_counter() - start < drain_s:
        done = await probe()
        if done >= target:
            break
        await asyncio.sleep(every_s)
    return done, time.perf_counter() - start


def _latencies(pairs: list[tuple[float, float | None]], drain_limit_ms: float) -> tuple[list[float], int]:
    out: list[float] = []
    missing = 0
    for t0, t1 in pairs:
        if t1 is None:
            missing += 1
            out.append(drain_limit_ms)
        else:
            out.append(max(0.0, (t1 - t0) * 1000))
    return out, missing


async def outlook_to_erp(
    stack: Stack, users: list[User], slots: Slots, *, rate: float, seconds: float, drain_s: float
) -> dict[str, Any]:
    tag = f"o2e-{uuid.uuid4().hex[:6]}"
    count = int(rate * seconds)
    created: dict[int, str] = {}
    plan = [(users[i % len(users)], slots.take(users[i % len(users)])) for i in range(count)]
    async with load_client(ssl=stack.ssl_context()) as sim, stack.erp() as erp:
        before = await erp_total(erp, "activities", origin="outlook")
        counts = await request_counts(stack)

        async def make(i: int) -> None:
            user, start = plan[i]
            url = f"{stack.sim_root}/_sim/users/{user.graph_id}/events"
            async with sim.post(url, json=event_body(f"{tag} {i}", start)) as r:
                r.raise_for_status()
                created[i] = str((await r.json())["immutableId"])

        offered = await offer(rate, count, make)
        done, waited = await _wait_for(lambda: erp_total(erp, "activities", origin="outlook"), before + count, drain_s)
    requests = per_change(counts, await request_counts(stack), done - before)
    sent = await notification_times(stack)
    rows = {a["subject"]: a for a in await erp_activities(stack, origin="outlook")}
    pairs: list[tuple[float, float | None]] = []
    unnotified = 0
    for i, immutable_id in created.items():
        if immutable_id not in sent:
            unnotified += 1
            continue
        row = rows.get(f"{tag} {i}")
        pairs.append((sent[immutable_id], parse_ts(row["created_at"]) if row else None))
    latencies, missing = _latencies(pairs, (seconds + drain_s) * 1000)
    return {
        **offered,
        "through": done - before,
        "missing": missing,
        "not_notified": unnotified,
        "drain_s": round(waited, 2),
        "latency_ms": summary(latencies),
        "requests_per_change": requests,
    }


async def erp_to_outlook(
    stack: Stack, users: list[User], slots: Slots, *, rate: float, seconds: float, drain_s: float
) -> dict[str, Any]:
    tag = f"e2o-{uuid.uuid4().hex[:6]}"
    count = int(rate * seconds)
    written: dict[str, float] = {}
    plan = [(users[i % len(users)], slots.take(users[i % len(users)])) for i in range(count)]
    counts = await request_counts(stack)
    async with stack.erp() as erp_base:
        url = f"{str(erp_base.base_url).rstrip('/')}/activities"
        async with load_client(headers={"Authorization": erp_base.headers["Authorization"]}) as erp:

            async def make(i: int) -> None:
                user, start = plan[i]
                subject = f"{tag} {i}"
                async with erp.post(url, json=erp_meeting(user.code, subject, start)) as r:
                    r.raise_for_status()
                    written[subject] = parse_ts((await r.json())["created_at"])

            offered = await offer(rate, count, make)

    async def in_outlook() -> int:
        return sum([len(await sim_items(stack, user, "events", subject_prefix=tag)) for user in users])

    # Reading the mailboxes is heavier than an ERP count: once a second is enough (times come from the
    # records), and only this run's items (the simulator filters: the probe's CPU shares the machine).
    done, waited = await _wait_for(in_outlook, len(written), drain_s, every_s=1.0)
    arrived: dict[str, float] = {}
    for user in users:
        for e in await sim_items(stack, user, "events", subject_prefix=tag):
            arrived[str(e["data"]["subject"])] = parse_ts(e["createdDateTime"])
    pairs = [(t0, arrived.get(subject)) for subject, t0 in written.items()]
    latencies, missing = _latencies(pairs, (seconds + drain_s) * 1000)
    return {
        **offered,
        "through": done,
        "missing": missing,
        "drain_s": round(waited, 2),
        "latency_ms": summary(latencies),
        # The bench's own ERP writes (`erp POST …activities`) are the changes themselves.
        "requests_per_change": per_change(counts, await request_counts(stack), done),
    }
