"""Tasks and calls both ways between the ERP and the user's To Do list (R02, R03, R14)."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.support.items import at, z
from tests.support.metrics import scrape, values
from tests.support.system import System, eventually

EXTENSION = "com.outlookerpsync.activity"


async def erp_activities(system: System, subject: str) -> list[dict]:
    return [a for a in await system.erp_items("activities") if a["subject"] == subject]


async def todo_tasks(system: System, title: str) -> list[dict]:
    return [t for t in await system.sim_items("tasks") if t["data"].get("title") == title]


async def mirrored_task(system: System, title: str) -> list[dict]:
    """The To Do mirror of an ERP task once whole: its open extension is written after the task."""
    return [t for t in await todo_tasks(system, title) if t["extensions"] and t["linkedResources"]]


def erp_link(record: dict) -> dict:
    [link] = [r for r in record["linkedResources"] if r.get("applicationName") == "ERP"]
    return dict(link)


def extension(record: dict) -> dict:
    [ext] = [e for e in record["extensions"] if str(e.get("extensionName") or e.get("id", "")).endswith(EXTENSION)]
    return dict(ext)


async def test_outlook_task_reaches_the_erp_and_its_completion_follows_R02(system: System) -> None:
    due_day = at(days=7).date()
    start = at(days=1, hour=9)
    tasks = await system.tasks_path()
    created = await system.graph.post_json(
        tasks,
        json={
            "title": "Send the price list",
            "body": {"contentType": "text", "content": "Include the 2027 discounts."},
            "status": "inProgress",
            "categories": ["#VANDELAY#"],
            "startDateTime": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
            "dueDateTime": {"dateTime": f"{due_day}T00:00:00", "timeZone": "W. Europe Standard Time"},
        },
    )
    [task] = await eventually(lambda: erp_activities(system, "Send the price list"))
    assert task["kind"] == "task" and task["chrono"].startswith("TSK")  # R03
    assert task["notes"] == "Include the 2027 discounts."
    assert task["partner_code"] == "VANDELAY"
    assert task["start"] == z(start)
    assert task["due"] == f"{due_day}T00:00:00Z"  # the day as written, never shifted (R07, R33)
    assert task["done"] is False and task["representative"] == "REP01" and task["public"] is True

    async def linked() -> dict | None:
        record = next(iter(await todo_tasks(system, "Send the price list")), None)
        return record if record and record["linkedResources"] else None

    link = erp_link(await eventually(linked))  # R21: the ERP id rides in a linked resource
    assert link["externalId"] == f"task:{task['id']}" and link["displayName"] == task["chrono"]

    await system.graph.patch_json(f"{tasks}/{created['id']}", json={"status": "completed"})

    async def done() -> list[dict]:
        return [a for a in await erp_activities(system, "Send the price list") if a["done"]]

    [after] = await eventually(done)
    assert after["id"] == task["id"]


async def extension_writes(system: System) -> int:
    """Open extensions written to a To Do task on their own (not inline in the task's creation)."""
    stats = await system.sim_control("GET", "stats")
    return sum(stats["requests"].get("POST /users/{user}/todo/lists/{lid}/tasks/{id}/extensions", {}).values())


async def todo_echoes_skipped(system: System) -> float:
    """sync-core's count of To Do tasks a delta round found at the version it last wrote (R22)."""
    return sum(values(await scrape(system.sync_url), "sync_echoes_skipped_total", kind="task"))


async def test_erp_task_reaches_to_do_with_contact_and_time_spent_R02(system: System) -> None:
    extensions_before = await extension_writes(system)
    echoes_before = await todo_echoes_skipped(system)
    jane = await system.erp_write(
        "POST",
        "contacts",
        {"given_name": "Jane", "surname": "Roe", "emails": ["jane@acme.example"], "representatives": ["REP01"]},
        expect=201,
    )
    due_day = at(days=5).date()
    task = await system.erp_write(
        "POST",
        "activities",
        {
            "kind": "task",
            "subject": "Prepare the offer",
            "notes": "Two options.",
            "start": z(at(days=1, hour=8)),
            "due": f"{due_day}T00:00:00Z",
            "partner_code": "ACME",
            "contact_id": jane["id"],
            "time_spent_minutes": 30,
            "representative": "REP01",
        },
        expect=201,
    )
    [record] = await eventually(lambda: mirrored_task(system, "Prepare the offer"))
    data = record["data"]
    assert data["body"]["content"].strip() == "Two options."
    assert data["categories"] == ["#ACME#"]
    assert str(data["dueDateTime"]).startswith(f"{due_day}T00:00:00")
    assert data["status"] == "notStarted"
    assert erp_link(record)["externalId"] == f"task:{task['id']}"
    assert erp_link(record)["displayName"] == task["chrono"]
    ext = extension(record)
    assert ext["contact"]["email"] == "jane@acme.example" and ext["timeSpentMinutes"] == 30
    # The task, its linked resource and its extension were created in one request, whose answer's
    # etag is the version sync-core wrote: the delta round that reports it reads nothing (R22).
    assert await extension_writes(system) == extensions_before

    async def echo_skipped() -> bool:
        return await todo_echoes_skipped(system) > echoes_before

    assert await eventually(echo_skipped)

    await system.erp_write("PUT", f"activities/{task['id']}", {"done": True, "time_spent_minutes": 45})

    async def completed() -> dict | None:
        [r] = await todo_tasks(system, "Prepare the offer")
        return r if r["data"]["status"] == "completed" and extension(r)["timeSpentMinutes"] == 45 else None

    await eventually(completed)


async def test_erp_call_reaches_to_do_and_stays_a_call_when_changed_in_outlook_R03(system: System) -> None:
    call_at = at(days=2, hour=15)
    call = await system.erp_write(
        "POST",
        "activities",
        {
            "kind": "call",
            "subject": "Call back about the delivery",
            "start": z(call_at),
            "time_spent_minutes": 12,
            "representative": "REP01",
        },
        expect=201,
    )
    assert call["chrono"].startswith("CLL")
    [record] = await eventually(lambda: mirrored_task(system, "Call back about the delivery"))
    assert erp_link(record)["displayName"] == call["chrono"]
    assert erp_link(record)["externalId"] == f"call:{call['id']}"
    task = await system.graph.get_json(f"{await system.tasks_path()}/{record['immutableId']}")
    assert datetime.fromisoformat(task["startDateTime"]["dateTime"][:19]).replace(tzinfo=UTC) == call_at
    assert extension(record)["timeSpentMinutes"] == 12  # R03: call duration

    await system.graph.patch_json(
        f"{await system.tasks_path()}/{record['immutableId']}", json={"title": "Call back: delivery on Monday"}
    )
    [after] = await eventually(lambda: erp_activities(system, "Call back: delivery on Monday"))
    assert after["id"] == call["id"] and after["kind"] == "call" and after["chrono"] == call["chrono"]
    assert after["time_spent_minutes"] == 12
    assert [a for a in await system.erp_items("activities") if a["kind"] == "task"] == []


async def test_unknown_contact_of_an_outlook_task_is_created_in_the_erp_R14(system: System) -> None:
    tasks = await system.tasks_path()
    created = await system.graph.post_json(
        tasks,
        json={
            "title": "Follow up with Zed",
            "dueDateTime": {"dateTime": f"{at(days=3).date()}T00:00:00", "timeZone": "UTC"},
        },
    )
    await system.graph.post_json(
        f"{tasks}/{created['id']}/extensions",
        json={
            "@odata.type": "microsoft.graph.openTypeExtension",
            "extensionName": EXTENSION,
            "contact": {"name": "Zed Zulu", "email": "zed@vandelay.example"},
        },
    )

    async def with_contact() -> list[dict]:
        return [a for a in await erp_activities(system, "Follow up with Zed") if a["contact_id"]]

    [task] = await eventually(with_contact)
    [zed] = [c for c in await system.erp_items("contacts") if "zed@vandelay.example" in c["emails"]]
    assert task["contact_id"] == zed["id"]
    assert (zed["given_name"], zed["surname"]) == ("Zed", "Zulu")
    assert zed["partner_code"] == "VANDELAY"  # R10: the domain names the supplier
    assert "REP01" in zed["representatives"]
    assert len(await erp_activities(system, "Follow up with Zed")) == 1


async def test_task_without_dates_syncs_both_ways_R02(system: System) -> None:
    task = await system.erp_write(
        "POST", "activities", {"kind": "task", "subject": "Undated chore", "representative": "REP01"}, expect=201
    )
    [record] = await eventually(lambda: todo_tasks(system, "Undated chore"))
    assert record["data"].get("dueDateTime") is None
    await system.graph.patch_json(
        f"{await system.tasks_path()}/{record['immutableId']}",
        json={"dueDateTime": {"dateTime": f"{at(days=4).date()}T00:00:00", "timeZone": "UTC"}},
    )

    async def dated() -> list[dict]:
        return [a for a in await erp_activities(system, "Undated chore") if a["due"]]

    [after] = await eventually(dated)
    assert after["id"] == task["id"] and after["due"] == f"{at(days=4).date()}T00:00:00Z"
    assert len(await todo_tasks(system, "Undated chore")) == 1
