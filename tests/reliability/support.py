"""Helpers of the reliability tests: sync-core restarts, own broker connections dropped, the
dead-letter queues, quiescence and the two sides read back in one comparable shape."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aio_pika
import httpx
import psutil

from shared.bus import topology_of
from shared.dead_letters import DeadLetterQueues
from shared.envelope import Kind, MessageType
from shared.graph.errors import GraphNotFound
from sync_core.app import create_app as create_sync_app
from tests.support.http_fault_proxy import INJECTED, HttpFaultProxy
from tests.support.servers import serve
from tests.support.system import System, eventually

# Failed journal lines a fault explains: Graph throttling / outage, or the broker going away.
EXPLAINED_FAILURES = ("429", "503", "throttl", "serviceunavailable", "service unavailable", "broker", "connection")


class Harness:
    """What the reliability tests add to `System`: a sync-core that can be stopped and started
    again, and the test process's own broker connections."""

    def __init__(self, system: System, stack: AsyncExitStack) -> None:
        self.system = system
        self.stack = stack
        self.sync_running = True
        self.restarts = 0
        self.drops = 0
        self.erp_proxy: HttpFaultProxy | None = None

    async def route_erp_through(self, proxy: HttpFaultProxy, url: str) -> None:
        """sync-core's ERP calls go through `proxy` (at `url`) from now on: a new replica is started
        with that `erp_connector_url` (not counted as a fault restart)."""
        assert self.system.sync_settings is not None
        self.system.sync_settings = self.system.sync_settings.model_copy(update={"erp_connector_url": url})
        await self.stop_sync_core()
        await self.start_sync_core()
        self.restarts -= 1
        self.erp_proxy = proxy

    async def stop_sync_core(self) -> None:
        if not self.sync_running:
            return
        if self.restarts == 0:
            await self.system.stop_sync_core()
        else:
            await self.system.extra["reliability_sync_stack"].aclose()
        self.sync_running = False

    async def start_sync_core(self) -> None:
        if self.sync_running:
            return
        assert self.system.sync_settings is not None
        sub = await self.stack.enter_async_context(AsyncExitStack())
        url = await sub.enter_async_context(serve(create_sync_app(self.system.sync_settings)))
        self.system.extra["reliability_sync_stack"] = sub
        self.system.sync_url = url
        self.sync_running = True
        self.restarts += 1

        async def ready() -> bool:
            async with httpx.AsyncClient(base_url=url) as c:
                return (await c.get("/readyz")).status_code == 200

        await eventually(ready, timeout=20)

    async def drop_own_broker_connections(self) -> list[str]:
        """Close, on the broker, the AMQP connections this test process holds (no one else's)."""
        # After an earlier drop, wait for the robust connections to be back (aio-pika retries every 5 s).
        names = set(await eventually(own_broker_connection_names, timeout=20))
        listing = await rabbitmqctl("list_connections", "pid", "name")
        closed = []
        for line in listing.splitlines():
            pid, _, name = line.partition("\t")
            if name.strip() in names:  # this process's own connections only
                # RabbitMQ 3.10 names the connection to close by its pid (its name is shown above).
                await rabbitmqctl("close_connection", pid.strip(), "test")
                closed.append(name.strip())
        assert closed, f"none of this process's connections {sorted(names)} found on the broker"
        self.drops += 1
        return closed


async def own_broker_connection_names(port: int = 5672) -> list[str]:
    """RabbitMQ's names (`client:port -> server:port`) of this process's connections to the broker."""
    out = []
    for c in psutil.Process(os.getpid()).net_connections("tcp"):
        if c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr.port == port:
            out.append(f"{c.laddr.ip}:{c.laddr.port} -> {c.raddr.ip}:{c.raddr.port}")
    return sorted(out)


async def rabbitmqctl(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "rabbitmqctl", "-q", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    # A connection that closed by itself meanwhile is not an error of the test.
    if proc.returncode != 0 and b"not_found" not in err and b"does not exist" not in err.lower():
        raise AssertionError(f"rabbitmqctl {args[0]} failed: {err.decode(errors='replace')[:300]}")
    return out.decode(errors="replace")


@asynccontextmanager
async def dead_letter_queues(system: System) -> AsyncIterator[DeadLetterQueues]:
    assert system.common is not None
    conn = await aio_pika.connect(
        system.common.amqp_url.get_secret_value(), client_properties={"connection_name": "tests-reliability"}
    )
    try:
        yield DeadLetterQueues(conn, topology_of(system.common))
    finally:
        await conn.close()


async def dead_letter_depths(system: System) -> dict[str, int]:
    """Messages in each dead-letter queue of the system's topology."""
    async with dead_letter_queues(system) as dlq:
        stats = await dlq.stats()
    return {s.name: int(s.messages or 0) for s in stats if s.role == "dead-letter"}


async def assert_each_once(system: System, names: list[str], *, settle_s: float = 1.0) -> None:
    """After `settle_s` (late redeliveries would show up as duplicates by then): each name once on
    both sides, no dead letter, no item created twice."""
    from tests.reliability.test_reliability_focused import both_sides

    await asyncio.sleep(settle_s)
    erp, outlook = await both_sides(system)
    assert erp == sorted(names) == outlook, {"erp": erp, "outlook": outlook}
    assert all(depth == 0 for depth in (await dead_letter_depths(system)).values())
    created = [
        (r["kind"], r["direction"], r.get("erp_id") or r.get("graph_id"))
        for r in await system.journal()
        if r["outcome"] == "created"
    ]
    assert len(created) == len(set(created)), "an item was created twice"


def _utc(value: Any) -> datetime | None:
    """An ERP datetime text or a Graph dateTimeTimeZone in UTC, as an aware datetime (seconds)."""
    if value is None:
        return None
    if isinstance(value, dict):
        assert value.get("timeZone") == "UTC", value
        value = value["dateTime"]
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00")[:25])
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).replace(microsecond=0)


def is_single_public(event: dict[str, Any]) -> bool:
    data = event["data"]
    single = data.get("type", "singleInstance") == "singleInstance" and not data.get("recurrence")
    return single and data.get("sensitivity", "normal") != "private"


async def snapshot(system: System) -> dict[str, Any]:
    """Both sides in comparable shape: meetings as (subject, start, end), tasks as titles, contacts
    as (given name, surname, e-mail); plus what must never have crossed."""
    erp_activities = [
        a for a in await system.erp_items("activities") if not a["deleted"] and a["representative"] == "REP01"
    ]
    erp_meetings = sorted(
        (a["subject"], _utc(a["start"]), _utc(a["end"])) for a in erp_activities if a["kind"] == "meeting"
    )
    erp_tasks = sorted(a["subject"] for a in erp_activities if a["kind"] in ("task", "call"))
    outlook_meetings = []
    crossed_out = []
    for e in await system.sim_items("events"):
        if not is_single_public(e):
            continue
        try:
            g = await system.graph.get_json(f"{system.user_path()}/events/{e['immutableId']}")
        except GraphNotFound:
            continue  # deleted since the listing (sync-core is still at work): the next look sees it gone
        outlook_meetings.append((g.get("subject"), _utc(g["start"]), _utc(g["end"])))
    for a in erp_activities:
        if str(a["subject"]).startswith(("PRIVATE", "RECURRING")):
            crossed_out.append(a["subject"])
    outlook_tasks = sorted(t["data"].get("title") for t in await system.sim_items("tasks"))
    outlook_contacts = sorted(
        (
            c["data"].get("givenName"),
            c["data"].get("surname"),
            str((c["data"].get("emailAddresses") or [{}])[0].get("address", "")).lower(),
        )
        for c in await system.sim_items("contacts")
    )
    erp_contacts = [c for c in await system.erp_items("contacts") if not c["deleted"]]
    return {
        "erp_meetings": erp_meetings,
        "outlook_meetings": sorted(outlook_meetings),
        "erp_tasks": erp_tasks,
        "outlook_tasks": outlook_tasks,
        "outlook_contacts": outlook_contacts,
        "erp_contacts": erp_contacts,
        "crossed_out": crossed_out,
    }


def contact_mismatches(snap: dict[str, Any]) -> list[str]:
    """Every Outlook contact exactly once in the ERP, assigned to REP01, with the same names."""
    problems = []
    for given, surname, email in snap["outlook_contacts"]:
        found = [c for c in snap["erp_contacts"] if email in [e.lower() for e in c["emails"]]]
        if len(found) != 1:
            problems.append(f"{email}: {len(found)} ERP contacts")
            continue
        c = found[0]
        if (c["given_name"], c["surname"]) != (given, surname) or "REP01" not in c["representatives"]:
            problems.append(f"{email}: ERP has {c['given_name']} {c['surname']} {c['representatives']}")
    return problems


def mismatches(snap: dict[str, Any]) -> list[str]:
    problems = []
    if snap["erp_meetings"] != snap["outlook_meetings"]:
        erp, outlook = set(snap["erp_meetings"]), set(snap["outlook_meetings"])
        problems.append(f"meetings only in ERP: {sorted(erp - outlook, key=str)}")
        problems.append(f"meetings only in Outlook: {sorted(outlook - erp, key=str)}")
        problems.append(f"meetings: {len(snap['erp_meetings'])} in ERP, {len(snap['outlook_meetings'])} in Outlook")
    if snap["erp_tasks"] != snap["outlook_tasks"]:
        problems.append(f"tasks: ERP {snap['erp_tasks']} != Outlook {snap['outlook_tasks']}")
    problems += contact_mismatches(snap)
    if snap["crossed_out"]:
        problems.append(f"private/recurring crossed to the ERP (R05, R06): {snap['crossed_out']}")
    return problems


async def faults_off(system: System) -> None:
    await system.sim_control(
        "POST",
        "faults",
        {
            "force_429": {"count": 0},
            "force_503": {"count": 0},
            "notifications": {"drop_ratio": 0.0, "duplicate_ratio": 0.0, "reorder_ratio": 0.0},
        },
    )


async def replay_injected_dead_letters(system: System) -> int:
    """What an operator does once the ERP answers again: replay the dead letters its outage caused
    (those whose error is the proxy's injected 503, none other). Returns how many were replayed."""
    return await replay_dead_letters(system, lambda error: INJECTED in error)


async def replay_dead_letters(system: System, match: Callable[[str], bool] = lambda error: True) -> int:
    """Replay the dead letters whose error `match`es (all by default); returns how many were replayed."""
    replayed = 0
    async with dead_letter_queues(system) as dlq:
        for queue in dlq.groups().values():
            for letter in await dlq.list(queue):
                if match(str(letter.error)) and await dlq.replay(queue, letter.key, by="test") is not None:
                    replayed += 1
    return replayed


async def quiesce(
    system: System, *, timeout: float = 60.0, still_for: float = 2.0, replayed: list[int] | None = None
) -> tuple[float, list[str]]:
    """Faults off, notifications out, a resync per collection, then wait until both sides agree and
    the journal stops growing. Returns (seconds it took, remaining mismatches).

    With `replayed` (a list), dead letters of the injected ERP outage are replayed on the way, and how
    many is appended to it."""
    began = time.monotonic()
    await faults_off(system)
    await system.sim_control("POST", "notifications/flush")
    for kind in (Kind.EVENT, Kind.TASK, Kind.CONTACT):
        await system.publish(MessageType.GRAPH_RESYNC, kind=kind, reason="quiescence")
    deadline = began + timeout
    last_len = -1
    stable_since = time.monotonic()
    problems: list[str] = ["not checked"]
    while time.monotonic() < deadline:
        if replayed is not None:
            replayed.append(await replay_injected_dead_letters(system))
        length = len(await system.journal())
        if length != last_len:
            last_len, stable_since = length, time.monotonic()
        problems = mismatches(await snapshot(system))
        if not problems and time.monotonic() - stable_since >= still_for:
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - began, problems


def unexplained_failures(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failed journal lines no injected fault accounts for."""
    out = []
    for row in rows:
        if row.get("outcome") != "failed":
            continue
        reason = str(row.get("reason") or "").lower()
        if not any(word in reason for word in EXPLAINED_FAILURES):
            out.append(row)
    return out
