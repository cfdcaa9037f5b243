"""A seeded random driver: operations on both sides through their public surfaces (Graph as the
user, the ERP's REST API), interleaved with faults. Everything it does derives from one seed."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.graph.errors import GraphThrottled, GraphUnavailable
from tests.reliability.support import Harness
from tests.support.items import at, event_body, meeting_body, z

FAULTS = ["429", "503", "drop", "duplicate", "reorder", "expire", "restart", "broker", "erp_down"]


def can_lose_answer(method: str, path: str) -> bool:
    """Which ERP writes an outage may apply and then lose the answer of: all of them (finding 5 fixed)."""
    return True


# Graph `timeZone` names of the events the driver creates (Windows and IANA) and their IANA zone.
TIME_ZONES = {
    "UTC": "UTC",
    "Europe/Lisbon": "Europe/Lisbon",
    "Pacific Standard Time": "America/Los_Angeles",
    "W. Europe Standard Time": "Europe/Berlin",
    "India Standard Time": "Asia/Kolkata",
    "Asia/Tokyo": "Asia/Tokyo",
}


@dataclass
class Item:
    kind: str  # meeting, task, call, contact
    origin: str  # outlook, erp
    name: str  # current subject / title / given name
    id: str  # the id on its origin side (Graph id or ERP id)
    alive: bool = True
    also: str | None = None  # after a conflicting edit: the other side's name, which may win
    history: list[str] = field(default_factory=list)  # every name it had
    start: datetime | None = None  # a meeting's intended UTC start (whatever zone it was written in)


@dataclass
class Driver:
    harness: Harness
    seed: int
    rng: random.Random = field(init=False)
    items: list[Item] = field(default_factory=list)
    ops: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    zones: Counter[str] = field(default_factory=Counter)
    log: list[str] = field(default_factory=list)
    _slot: int = 0
    _n: int = 0
    _notification_fault_left: int = 0
    erp_outage_s: float = 0.0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    @property
    def system(self) -> Any:
        return self.harness.system

    # Names and slots ---------------------------------------------------------------------------

    def name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix} s{self.seed} #{self._n}"

    def slot(self) -> datetime:
        """A meeting time no other meeting of this run uses (the ERP refuses overlaps, R15)."""
        self._slot += 1
        return at(days=2 + self._slot // 5, hour=7 + 2 * (self._slot % 5))

    def zoned_event(self, subject: str, start: datetime, minutes: int = 60, **extra: Any) -> dict[str, Any]:
        """A Graph event at the UTC instant `start`, written as wall time in a zone Outlook users have
        (Windows or IANA names, half-hour offsets): the instant must come out the same in the ERP."""
        zone = self.rng.choice(list(TIME_ZONES))
        self.zones[zone] += 1
        tz = ZoneInfo(TIME_ZONES[zone])
        wall = {
            k: dt.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S")
            for k, dt in (("start", start), ("end", start + timedelta(minutes=minutes)))
        }
        return {
            "subject": subject,
            "start": {"dateTime": wall["start"], "timeZone": zone},
            "end": {"dateTime": wall["end"], "timeZone": zone},
            **extra,
        }

    def pick(self, kind: str, origin: str | None = None) -> Item | None:
        choices = [i for i in self.items if i.alive and i.kind == kind and (origin is None or i.origin == origin)]
        return self.rng.choice(choices) if choices else None

    # One step ------------------------------------------------------------------------------------

    async def step(self) -> None:
        if self._notification_fault_left > 0:
            self._notification_fault_left -= 1
            if self._notification_fault_left == 0:
                await self.system.sim_control(
                    "POST",
                    "faults",
                    {"notifications": {"drop_ratio": 0.0, "duplicate_ratio": 0.0, "reorder_ratio": 0.0}},
                )
        if self.rng.random() < 0.25:
            await self.fault()
        op = self.rng.choices(list(OPERATIONS), weights=[w for w, _ in OPERATIONS.values()])[0]
        for attempt in range(6):
            try:
                done = await OPERATIONS[op][1](self)
                break
            except (GraphThrottled, GraphUnavailable):
                # The user's own request met the injected burst (nothing was written): try again.
                if attempt == 5:
                    raise
                await asyncio.sleep(0.3)
        if done is not False:
            self.ops[op] += 1
            self.log.append(op)

    async def fault(self) -> None:
        choice = self.rng.choice(FAULTS)
        s = self.system
        if choice == "429":
            await s.sim_control("POST", "faults", {"force_429": {"count": self.rng.randint(2, 6), "retry_after": 0.1}})
        elif choice == "503":
            await s.sim_control("POST", "faults", {"force_503": {"count": self.rng.randint(2, 5), "retry_after": 0.1}})
        elif choice in ("drop", "duplicate", "reorder"):
            ratio = self.rng.choice([0.3, 0.6, 1.0])
            body: dict[str, Any] = {f"{choice}_ratio": ratio, "seed": self.rng.randint(0, 10**6)}
            if choice == "reorder":
                # Held back and delivered after later ones (an update's notification before the create's).
                body["reorder_hold_seconds"] = self.rng.choice([0.2, 0.5, 1.0])
            await s.sim_control("POST", "faults", {"notifications": body})
            self._notification_fault_left = self.rng.randint(2, 5)
        elif choice == "erp_down":
            proxy = self.harness.erp_proxy
            if proxy is None:
                return
            # The ERP's write API answers 503 for a while (shorter or longer than the retry delays).
            seconds = self.rng.choice([0.3, 0.8, 1.5, 3.0])
            proxy.outage(seconds, seed=self.rng.randint(0, 10**6), can_lose=can_lose_answer)
            self.erp_outage_s += seconds
        elif choice == "expire":
            await s.sim_control("POST", "delta/expire", {"user": s.graph_user_id})
        elif choice == "restart":
            if self.harness.restarts >= 2:
                return  # bounded: each restart costs a couple of seconds
            await self.harness.stop_sync_core()
            # Work piles up on the queues while it is down.
            for _ in range(self.rng.randint(1, 3)):
                op = self.rng.choice(["outlook_create_event", "erp_create_meeting", "outlook_create_task"])
                await OPERATIONS[op][1](self)
                self.ops[op] += 1
            await self.harness.start_sync_core()
        elif choice == "broker":
            if self.harness.drops >= 2:
                return
            await self.harness.drop_own_broker_connections()
        self.faults[choice] += 1
        self.log.append(f"fault:{choice}")

    # Outlook (Graph, as the user) ----------------------------------------------------------------

    async def outlook_create_event(self) -> None:
        name = self.name("Outlook meeting")
        extra: dict[str, Any] = {}
        n = self.rng.choice([0, 0, 1, 2, 3])
        if n:
            extra["attendees"] = [
                {
                    "emailAddress": {"address": f"att{self.seed}.{self._n}.{k}@umbrella.example", "name": f"A {k}"},
                    "type": "required",
                }
                for k in range(n)
            ]
        start = self.slot()
        created = await self.system.graph.post_json(
            f"{self.system.user_path()}/events", json=self.zoned_event(name, start, **extra)
        )
        self.items.append(Item("meeting", "outlook", name, str(created["id"]), start=start))

    async def outlook_create_private_event(self) -> None:
        await self.system.graph.post_json(
            f"{self.system.user_path()}/events",
            json=event_body(self.name("PRIVATE"), self.slot(), sensitivity="private"),
        )

    async def outlook_create_recurring_event(self) -> None:
        start = self.slot()
        recurrence = {
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": [start.strftime("%A").lower()]},
            "range": {"type": "numbered", "startDate": str(start.date()), "numberOfOccurrences": 2},
        }
        await self.system.graph.post_json(
            f"{self.system.user_path()}/events",
            json=event_body(self.name("RECURRING"), start, 30, recurrence=recurrence),
        )

    async def outlook_update_event(self) -> bool:
        item = self.pick("meeting", "outlook")
        if item is None:
            return False
        body: dict[str, Any] = {"subject": self.name("Outlook meeting")}
        start = None
        if self.rng.random() < 0.5:
            start = self.slot()
            body.update(self.zoned_event(body["subject"], start))
        await self.system.graph.patch_json(f"{self.system.user_path()}/events/{item.id}", json=body)
        item.start = start or item.start
        item.history.append(item.name)
        item.name = body["subject"]
        item.also = None
        return True

    async def outlook_delete_event(self) -> bool:
        item = self.pick("meeting", "outlook")
        if item is None:
            return False
        await self.system.graph.delete(f"{self.system.user_path()}/events/{item.id}")
        item.alive = False
        return True

    async def outlook_create_task(self) -> None:
        name = self.name("Outlook task")
        created = await self.system.graph.post_json(await self.system.tasks_path(), json={"title": name})
        self.items.append(Item("task", "outlook", name, str(created["id"])))

    async def outlook_update_task(self) -> bool:
        item = self.pick("task", "outlook")
        if item is None:
            return False
        item.history.append(item.name)
        item.name, item.also = self.name("Outlook task"), None
        await self.system.graph.patch_json(f"{await self.system.tasks_path()}/{item.id}", json={"title": item.name})
        return True

    async def outlook_delete_task(self) -> bool:
        item = self.pick("task", "outlook")
        if item is None:
            return False
        await self.system.graph.delete(f"{await self.system.tasks_path()}/{item.id}")
        item.alive = False
        return True

    async def outlook_create_contact(self) -> None:
        self._n += 1
        given = f"Given{self._n}"
        created = await self.system.graph.post_json(
            f"{self.system.user_path()}/contacts",
            json={
                "givenName": given,
                "surname": f"Seed{self.seed}",
                "emailAddresses": [{"address": f"c{self.seed}.{self._n}@acme.example"}],
            },
        )
        self.items.append(Item("contact", "outlook", given, str(created["id"])))

    async def outlook_update_contact(self) -> bool:
        item = self.pick("contact")
        if item is None:
            return False
        self._n += 1
        item.name = f"Renamed{self._n}"
        await self.system.graph.patch_json(
            f"{self.system.user_path()}/contacts/{item.id}", json={"givenName": item.name}
        )
        return True

    async def outlook_delete_contact(self) -> bool:
        item = self.pick("contact")
        if item is None:
            return False
        await self.system.graph.delete(f"{self.system.user_path()}/contacts/{item.id}")
        item.alive = False
        return True

    # ERP (REST API) --------------------------------------------------------------------------------

    async def erp_create_meeting(self) -> None:
        name, start = self.name("ERP meeting"), self.slot()
        created = await self.system.erp_write("POST", "activities", meeting_body(name, start), expect=201)
        self.items.append(Item("meeting", "erp", name, str(created["id"]), start=start))

    async def erp_create_task(self, kind: str = "task") -> None:
        name = self.name(f"ERP {kind}")
        body: dict[str, Any] = {"kind": kind, "subject": name, "representative": "REP01"}
        if kind == "call":
            body["start"] = z(self.slot())
        created = await self.system.erp_write("POST", "activities", body, expect=201)
        self.items.append(Item(kind, "erp", name, str(created["id"])))

    async def erp_create_call(self) -> None:
        await self.erp_create_task("call")

    async def erp_update(self) -> bool:
        item = self.rng.choice([i for i in self.items if i.alive and i.origin == "erp"] or [None])
        if item is None:
            return False
        item.history.append(item.name)
        item.name = self.name(f"ERP {item.kind}")
        item.also = None
        body: dict[str, Any] = {"subject": item.name}
        if item.kind == "meeting" and self.rng.random() < 0.5:
            start = self.slot()
            body.update(start=z(start), end=z(start + timedelta(hours=1)))
            item.start = start
        await self.system.erp_write("PUT", f"activities/{item.id}", body)
        return True

    async def erp_delete(self) -> bool:
        item = self.rng.choice([i for i in self.items if i.alive and i.origin == "erp"] or [None])
        if item is None:
            return False
        await self.system.erp_write("DELETE", f"activities/{item.id}")
        item.alive = False
        return True

    async def conflicting_edit(self) -> bool:
        """One meeting edited on both sides at once: the policy decides, both sides must agree."""
        item = self.pick("meeting", "erp")
        if item is None:
            return False
        s = self.system
        mirror = [e for e in await s.sim_items("events") if e["data"].get("subject") == item.name]
        if len(mirror) != 1:
            return False  # not mirrored yet
        erp_name, outlook_name = self.name("Conflict ERP"), self.name("Conflict Outlook")
        await asyncio.gather(
            s.erp_write("PUT", f"activities/{item.id}", {"subject": erp_name}),
            s.graph.patch_json(f"{s.user_path()}/events/{mirror[0]['immutableId']}", json={"subject": outlook_name}),
        )
        item.name, item.also = erp_name, outlook_name  # the policy decides which
        return True


OPERATIONS: dict[str, tuple[int, Any]] = {
    "outlook_create_event": (6, Driver.outlook_create_event),
    "outlook_create_private_event": (1, Driver.outlook_create_private_event),
    "outlook_create_recurring_event": (1, Driver.outlook_create_recurring_event),
    "outlook_update_event": (3, Driver.outlook_update_event),
    "outlook_delete_event": (2, Driver.outlook_delete_event),
    "outlook_create_task": (3, Driver.outlook_create_task),
    "outlook_update_task": (2, Driver.outlook_update_task),
    "outlook_delete_task": (1, Driver.outlook_delete_task),
    "outlook_create_contact": (3, Driver.outlook_create_contact),
    "outlook_update_contact": (2, Driver.outlook_update_contact),
    "outlook_delete_contact": (1, Driver.outlook_delete_contact),
    "erp_create_meeting": (5, Driver.erp_create_meeting),
    "erp_create_task": (2, Driver.erp_create_task),
    "erp_create_call": (2, Driver.erp_create_call),
    "erp_update": (4, Driver.erp_update),
    "erp_delete": (2, Driver.erp_delete),
    "conflicting_edit": (2, Driver.conflicting_edit),
}
