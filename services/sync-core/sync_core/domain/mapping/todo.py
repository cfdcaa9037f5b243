"""Graph To Do `todoTask` ↔ canonical task or call (R02, R03).

To Do has no extended properties: the ERP id and chrono ride in a linked resource (applicationName
"ERP", externalId `<kind>:<erp id>`, displayName the chrono), the partner in a `#CODE#` category,
and what To Do has no property for (the contact, the time spent — Outlook's "actual work") in an
open extension named `TODO_EXTENSION`.
"""

from __future__ import annotations

from typing import Any

from shared.envelope import Kind

from ..model import Activity, ActivityKind, Person, kind_of_activity
from ..notes import body_text, text_body
from ..rules import kind_of_chrono
from ..timezones import due_day, floating_midnight, from_utc, to_utc
from .common import instant, join_categories, split_categories, text
from .properties import LINKED_APPLICATION, TODO_EXTENSION, erp_ref, parse_erp_ref

COMPLETED = "completed"
NOT_STARTED = "notStarted"
NAVIGATION = ("linkedResources", "extensions")


def erp_linked_resource(task: dict[str, Any]) -> dict[str, Any] | None:
    """The linked resource the sync wrote on a task, if any."""
    for res in task.get("linkedResources") or ():
        if str((res or {}).get("applicationName") or "").lower() == LINKED_APPLICATION.lower():
            return dict(res)
    return None


def erp_extension(task: dict[str, Any]) -> dict[str, Any] | None:
    """The open extension the sync wrote on a task, if any (its id is `…<extensionName>`)."""
    for ext in task.get("extensions") or ():
        name = str((ext or {}).get("extensionName") or (ext or {}).get("id") or "")
        if name == TODO_EXTENSION or name.endswith("." + TODO_EXTENSION):
            return dict(ext)
    return None


def _person(value: Any) -> Person | None:
    if not isinstance(value, dict):
        return None
    email, name = text(value.get("email")), text(value.get("name"))
    if not (email or name):
        return None
    return Person(name=name or email or "", email=email or "")


def _minutes(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def graph_todo_to_activity(task: dict[str, Any]) -> Activity:
    """A To Do task as a canonical task or call (R03: a `CLL…` chrono is a call)."""
    link = erp_linked_resource(task) or {}
    ref_kind, erp_id = parse_erp_ref(text(link.get("externalId")))
    chrono = text(link.get("displayName"))
    kind = kind_of_chrono(chrono)
    if kind is None:
        kind = ActivityKind.CALL if ref_kind is Kind.CALL else ActivityKind.TASK
    ext = erp_extension(task) or {}
    contact = _person(ext.get("contact"))
    partner, others = split_categories(task.get("categories"))
    start = task.get("startDateTime") or None
    due = task.get("dueDateTime") or None
    status = text(task.get("status"))
    return Activity(
        kind=kind,
        subject=text(task.get("title")),
        start=to_utc(start["dateTime"], start.get("timeZone")) if start and start.get("dateTime") else None,
        # To Do due dates are days: never shifted by a zone (R07, R33), even when Graph answers in UTC.
        due=due_day(due["dateTime"], due.get("timeZone")) if due and due.get("dateTime") else None,
        notes=body_text(task.get("body")),
        done=status == COMPLETED,
        partner_code=partner,
        contact=contact,
        persons=(contact,) if contact else (),
        time_spent_minutes=_minutes(ext.get("timeSpentMinutes")),
        chrono=chrono,
        modified_at=instant(task.get("lastModifiedDateTime")),
        erp_id=erp_id,
        graph_id=text(task.get("id")),
        graph_change_key=text(task.get("@odata.etag")),
        categories=others,
        outlook_status=status,
    )


def activity_to_graph_todo(a: Activity) -> dict[str, Any]:
    """The POST body of a To Do task for a task or call, navigation properties inline.

    For a PATCH, send `split_todo_body(body)[0]` and write the linked resource and the extension
    through their own endpoints (Graph does not update navigation properties inline).
    """
    if a.done:
        status = COMPLETED
    elif a.outlook_status and a.outlook_status != COMPLETED:
        status = a.outlook_status  # keep inProgress / waitingOnOthers / deferred
    else:
        status = NOT_STARTED
    body: dict[str, Any] = {
        "title": a.subject or "",
        "body": text_body(a.notes),
        "status": status,
        "categories": join_categories(a.partner_code, a.categories),
        "startDateTime": from_utc(a.start) if a.start else None,
        "dueDateTime": floating_midnight(a.due) if a.due else None,
    }
    if a.erp_id or a.chrono:
        resource: dict[str, Any] = {"applicationName": LINKED_APPLICATION, "displayName": a.chrono or ""}
        if a.erp_id:
            resource["externalId"] = erp_ref(kind_of_activity(a.kind), a.erp_id)
        body["linkedResources"] = [resource]
    contact = a.contact or (a.persons[0] if a.persons else None)
    body["extensions"] = [
        {
            "@odata.type": "microsoft.graph.openTypeExtension",
            "extensionName": TODO_EXTENSION,
            "contact": {"name": contact.name, "email": contact.email} if contact else None,
            "timeSpentMinutes": a.time_spent_minutes,
        }
    ]
    return body


def split_todo_body(body: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(task properties, linked resources, extensions) of an `activity_to_graph_todo` body."""
    props = {k: v for k, v in body.items() if k not in NAVIGATION}
    return props, list(body.get("linkedResources") or ()), list(body.get("extensions") or ())
