"""Per (user, collection) work is serialised, also with two sync-core replicas on the same queues
(ADR 0002: sharded quorum queues with a single active consumer), and a replica's failover neither
loses nor duplicates anything."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from datetime import timedelta

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sync_core.app import create_app as create_sync_app
from tests.support.items import at, event_body, meeting_body
from tests.support.servers import serve
from tests.support.system import System, eventually

COLLECTION = {"event": "event", "task": "todo", "call": "todo", "contact": "contact"}


def overlaps(spans: list) -> list[tuple[str, str, str]]:
    """Handler spans of one collection that ran at the same time (there must be none)."""
    by_collection: dict[str, list] = defaultdict(list)
    for span in spans:
        attrs = span.attributes or {}
        if span.name == "delta read":
            by_collection[str(attrs.get("sync.collection"))].append(span)
        elif span.name == "apply to outlook":
            by_collection[COLLECTION[str(attrs.get("sync.kind"))]].append(span)
    found = []
    for collection, group in by_collection.items():
        group.sort(key=lambda s: s.start_time)
        for a, b in itertools.pairwise(group):
            if b.start_time < a.end_time:
                found.append((collection, a.name, b.name))
    return found


async def changes(system: System, tag: str, n: int, day: int) -> list[str]:
    """n changes on each side and in each collection, all at once; returns the activity subjects."""
    tasks_path = await system.tasks_path()
    work = []
    subjects = []
    for i in range(n):
        start = at(days=day) + timedelta(hours=2 * i)
        subjects += [f"{tag} ERP meeting {i}", f"{tag} Outlook event {i}", f"{tag} ERP task {i}", f"{tag} To Do {i}"]
        work += [
            system.erp_write("POST", "activities", meeting_body(f"{tag} ERP meeting {i}", start), expect=201),
            system.graph.post_json(
                f"{system.user_path()}/events", json=event_body(f"{tag} Outlook event {i}", start + timedelta(hours=1))
            ),
            system.erp_write(
                "POST", "activities", {"kind": "task", "subject": f"{tag} ERP task {i}", "representative": "REP01"}
            ),
            system.graph.post_json(tasks_path, json={"title": f"{tag} To Do {i}"}),
            system.graph.post_json(
                f"{system.user_path()}/contacts",
                json={
                    "givenName": tag,
                    "surname": f"Person{i}",
                    "emailAddresses": [{"address": f"{tag.lower()}.{i}@acme.example"}],
                },
            ),
        ]
    await asyncio.gather(*work)
    return subjects


async def consistent(system: System, subjects: list[str], contacts: int) -> bool:
    erp = sorted(a["subject"] for a in await system.erp_items("activities"))
    outlook = sorted(
        [e["data"]["subject"] for e in await system.sim_items("events")]
        + [t["data"]["title"] for t in await system.sim_items("tasks")]
    )
    erp_contacts = await system.erp_items("contacts")
    return erp == sorted(subjects) and outlook == sorted(subjects) and len(erp_contacts) == contacts


async def test_two_replicas_serialise_each_users_collection_and_fail_over_without_duplicates_R22(
    system: System, span_exporter: InMemorySpanExporter
) -> None:
    assert system.sync_settings is not None
    async with serve(create_sync_app(system.sync_settings)) as replica_b:
        async with httpx.AsyncClient(base_url=replica_b) as c:

            async def ready() -> bool:
                return (await c.get("/readyz")).status_code == 200

            await eventually(ready)
        span_exporter.clear()

        # Both replicas consume every shard; the broker lets one of them work a queue at a time.
        first = await changes(system, "First", 4, day=3)
        await eventually(lambda: consistent(system, first, 4), timeout=30)
        assert overlaps(list(span_exporter.get_finished_spans())) == []

        # Replica A stops while work is queued: replica B takes the queues over.
        second_batch = asyncio.create_task(changes(system, "Second", 4, day=6))
        await asyncio.sleep(0.2)
        await system.stop_sync_core()
        system.sync_url = replica_b
        second = await second_batch
        await eventually(lambda: consistent(system, first + second, 8), timeout=30)

        assert overlaps(list(span_exporter.get_finished_spans())) == []
        # Nothing was written twice: one ERP record per Outlook item and one Outlook item per ERP record.
        erp = [a["subject"] for a in await system.erp_items("activities")]
        assert len(erp) == len(set(erp))
        assert not await system.journal(outcome="failed")
