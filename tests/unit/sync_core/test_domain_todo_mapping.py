"""To Do task ↔ canonical task or call: R02 fields, R03 calls by CLL chrono, R11, R21."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from domain_builders import call, graph_echo, task

from sync_core.domain.fingerprint import fingerprint
from sync_core.domain.mapping.properties import TODO_EXTENSION
from sync_core.domain.mapping.todo import activity_to_graph_todo, graph_todo_to_activity, split_todo_body
from sync_core.domain.model import ActivityKind, Person


def outlook_task(**kw: Any) -> dict[str, Any]:
    """A task the user made in To Do, as Graph returns it."""
    base: dict[str, Any] = {
        "@odata.etag": 'W/"xyz"',
        "id": "AAkALgAAAA=",
        "title": "Prepare the demo",
        "status": "notStarted",
        "importance": "normal",
        "body": {"content": "", "contentType": "text"},
        "categories": [],
        "lastModifiedDateTime": "2024-06-01T10:00:00.0000000Z",
        "dueDateTime": {"dateTime": "2024-06-10T00:00:00.0000000", "timeZone": "UTC"},
    }
    base.update(kw)
    return base


def linked(display: str, external: str | None = "task:42", app: str = "ERP") -> list[dict[str, Any]]:
    res: dict[str, Any] = {"applicationName": app, "displayName": display, "webUrl": "https://erp/x"}
    if external is not None:
        res["externalId"] = external
    return [res]


def test_outlook_task_without_linked_resource_is_a_task_R03() -> None:
    a = graph_todo_to_activity(outlook_task())
    assert a.kind is ActivityKind.TASK
    assert a.subject == "Prepare the demo"
    assert a.due == date(2024, 6, 10)
    assert a.notes is None
    assert a.done is False
    assert a.erp_id is None and a.chrono is None
    assert a.graph_id == "AAkALgAAAA=" and a.graph_change_key == 'W/"xyz"'


def test_cll_chrono_makes_a_call_R03() -> None:
    a = graph_todo_to_activity(outlook_task(linkedResources=linked("CLL00017", "call:17")))
    assert a.kind is ActivityKind.CALL
    assert a.chrono == "CLL00017" and a.erp_id == "17"


def test_tsk_chrono_makes_a_task_R03() -> None:
    assert graph_todo_to_activity(outlook_task(linkedResources=linked("TSK00018"))).kind is ActivityKind.TASK


def test_chrono_prefix_decides_over_the_external_id_kind_R03() -> None:
    a = graph_todo_to_activity(outlook_task(linkedResources=linked("cll00019", "task:19")))
    assert a.kind is ActivityKind.CALL


def test_external_id_kind_decides_when_chrono_is_not_yet_known_R03() -> None:
    assert graph_todo_to_activity(outlook_task(linkedResources=linked("", "call:20"))).kind is ActivityKind.CALL


def test_linked_resources_of_other_applications_are_ignored_R21() -> None:
    a = graph_todo_to_activity(outlook_task(linkedResources=linked("CLL1", "call:1", app="Outlook")))
    assert a.kind is ActivityKind.TASK and a.erp_id is None


@pytest.mark.parametrize(("status", "done"), [("completed", True), ("notStarted", False), ("inProgress", False)])
def test_completed_status_is_done_R02(status: str, done: bool) -> None:
    a = graph_todo_to_activity(outlook_task(status=status))
    assert a.done is done and a.outlook_status == status


def test_done_writes_completed_and_open_keeps_the_outlook_status_R02() -> None:
    assert activity_to_graph_todo(task(done=True))["status"] == "completed"
    assert activity_to_graph_todo(task(done=False))["status"] == "notStarted"
    assert activity_to_graph_todo(task(done=False, outlook_status="inProgress"))["status"] == "inProgress"
    assert activity_to_graph_todo(task(done=False, outlook_status="completed"))["status"] == "notStarted"


def test_due_day_is_read_as_written_without_zone_shift_R02_R07() -> None:
    due = {"dateTime": "2024-06-10T00:00:00.0000000", "timeZone": "Pacific Standard Time"}
    assert graph_todo_to_activity(outlook_task(dueDateTime=due)).due == date(2024, 6, 10)


def test_due_day_answered_in_utc_is_the_day_meant_in_the_writers_zone_R02_R07_R33() -> None:
    # Graph answers in UTC: midnight W. Europe comes back as 23:00 UTC the evening before,
    # midnight Pacific as 07:00 UTC (08:00 in winter) the same day.
    for utc_text in ("2024-06-09T22:00:00.0000000", "2024-06-10T00:00:00.0000000", "2024-06-10T07:00:00.0000000"):
        due = {"dateTime": utc_text, "timeZone": "UTC"}
        assert graph_todo_to_activity(outlook_task(dueDateTime=due)).due == date(2024, 6, 10), utc_text


def test_start_is_converted_to_utc_R02_R33() -> None:
    start = {"dateTime": "2024-06-02T09:00:00.0000000", "timeZone": "W. Europe Standard Time"}
    assert graph_todo_to_activity(outlook_task(startDateTime=start)).start == datetime(2024, 6, 2, 7, tzinfo=UTC)


def test_task_body_carries_all_r02_fields() -> None:
    body = activity_to_graph_todo(task(erp_id="42", done=False))
    assert body["title"] == "Send the offer"
    assert body["body"] == {"contentType": "text", "content": "v2 prices"}
    assert body["categories"] == ["#ACME#"]
    assert body["startDateTime"] == {"dateTime": "2024-06-02T07:00:00.0000000", "timeZone": "UTC"}
    assert body["dueDateTime"] == {"dateTime": "2024-06-10T00:00:00.0000000", "timeZone": "UTC"}
    assert body["linkedResources"] == [{"applicationName": "ERP", "displayName": "TSK0001", "externalId": "task:42"}]
    (ext,) = body["extensions"]
    assert ext["extensionName"] == TODO_EXTENSION
    assert ext["contact"] == {"name": "Bob Buyer", "email": "bob@acme.com"}
    assert ext["timeSpentMinutes"] == 30


def test_call_external_id_names_the_call_kind_R03() -> None:
    body = activity_to_graph_todo(call(erp_id="17", chrono="CLL0017"))
    assert body["linkedResources"][0]["externalId"] == "call:17"
    assert body["linkedResources"][0]["displayName"] == "CLL0017"


def test_missing_dates_are_cleared_R02() -> None:
    body = activity_to_graph_todo(task(start=None, due=None))
    assert body["startDateTime"] is None and body["dueDateTime"] is None


def test_contact_and_time_spent_come_back_from_the_extension_R02_R03() -> None:
    back = graph_todo_to_activity(graph_echo(activity_to_graph_todo(call(erp_id="17"))))
    assert back.contact == Person("Bob Buyer", "bob@acme.com")
    assert back.time_spent_minutes == 30
    assert back.kind is ActivityKind.CALL


def test_split_body_separates_navigation_properties_for_patch() -> None:
    props, resources, extensions = split_todo_body(activity_to_graph_todo(task(erp_id="42")))
    assert "linkedResources" not in props and "extensions" not in props
    assert len(resources) == 1 and len(extensions) == 1
    assert props["title"] == "Send the offer"


@pytest.mark.parametrize("make", [task, call])
def test_task_and_call_round_trip_through_graph(make: Any) -> None:
    a = make(erp_id="42")
    back = graph_todo_to_activity(graph_echo(activity_to_graph_todo(a), time_zone="Eastern Standard Time"))
    assert fingerprint(back) == fingerprint(a)
    assert back.kind is a.kind and back.erp_id == "42"
