"""Conformance: the simulator's payloads against the shapes of Microsoft's documented examples
(field names, JSON types, nesting). Each DOC_* below restates the response example of the cited page
with illustrative values; `conforms` checks that every documented field exists with the same JSON type
(null in the documentation matches anything).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from graph_payloads import event_body
from webhook_receiver import Webhook, subscribe

from graph_sim.testing import SimServer

DTZ = {"dateTime": "2017-04-15T12:00:00.0000000", "timeZone": "Pacific Standard Time"}
EMAIL = {"name": "Samantha Booth", "address": "samanthab@contoso.com"}

# https://learn.microsoft.com/graph/api/event-get (v1.0, "Example 1" response) and resources/event
DOC_EVENT = {
    "@odata.etag": 'W/"ZlnW4RIAV06KYYwlrfNZvQAAKGWwbw=="',
    "id": "AAMkAGIAAAoZDOFAAA=",
    "createdDateTime": "2017-04-15T03:00:50.7579581Z",
    "lastModifiedDateTime": "2017-04-15T03:00:51.245372Z",
    "changeKey": "ZlnW4RIAV06KYYwlrfNZvQAAKGWwbw==",
    "categories": [],
    "originalStartTimeZone": "Pacific Standard Time",
    "originalEndTimeZone": "Pacific Standard Time",
    "iCalUId": "040000008200E00074C5B7101A82E00800000000",
    "reminderMinutesBeforeStart": 15,
    "isReminderOn": True,
    "hasAttachments": False,
    "subject": "Let's go for lunch",
    "bodyPreview": "Does late morning work for you?",
    "importance": "normal",
    "sensitivity": "normal",
    "isAllDay": False,
    "isCancelled": False,
    "isOrganizer": True,
    "responseRequested": True,
    "seriesMasterId": None,
    "showAs": "busy",
    "type": "singleInstance",
    "webLink": "https://outlook.office365.com/owa/?itemid=AAMkAGI",
    "onlineMeetingUrl": None,
    "isOnlineMeeting": False,
    "onlineMeetingProvider": "unknown",
    "allowNewTimeProposals": True,
    "isDraft": False,
    "hideAttendees": False,
    "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
    "body": {"contentType": "html", "content": "<html>…</html>"},
    "start": DTZ,
    "end": DTZ,
    "location": {"displayName": "Harry's Bar", "locationType": "default", "uniqueIdType": "unknown"},
    "locations": [],
    "recurrence": None,
    "attendees": [
        {"type": "required", "status": {"response": "none", "time": "0001-01-01T00:00:00Z"}, "emailAddress": EMAIL}
    ],
    "organizer": {"emailAddress": EMAIL},
    "onlineMeeting": None,
}

# https://learn.microsoft.com/graph/api/contact-get (response) and resources/contact
DOC_CONTACT = {
    "@odata.etag": 'W/"EQAAABYAAAB="',
    "id": "AAMkAGI2TGuLAAA=",
    "createdDateTime": "2017-04-15T03:00:50Z",
    "lastModifiedDateTime": "2017-04-15T03:00:50Z",
    "changeKey": "EQAAABYAAAB=",
    "categories": [],
    "parentFolderId": "AAMkAGI2AAEOAAA=",
    "birthday": None,
    "fileAs": "",
    "displayName": "Pavel Bansky",
    "givenName": "Pavel",
    "initials": None,
    "middleName": None,
    "nickName": None,
    "surname": "Bansky",
    "title": None,
    "yomiGivenName": None,
    "yomiSurname": None,
    "yomiCompanyName": None,
    "generation": None,
    "imAddresses": [],
    "jobTitle": None,
    "companyName": None,
    "department": None,
    "officeLocation": None,
    "profession": None,
    "businessHomePage": None,
    "assistantName": None,
    "manager": None,
    "homePhones": [],
    "mobilePhone": None,
    "businessPhones": ["+1 732 555 0102"],
    "spouseName": None,
    "personalNotes": "",
    "children": [],
    "emailAddresses": [{"address": "pavelb@contoso.onmicrosoft.com", "name": "Pavel Bansky"}],
    "homeAddress": {},
    "businessAddress": {},
    "otherAddress": {},
}

# https://learn.microsoft.com/graph/api/todotask-get (response) and resources/todotask
DOC_TASK = {
    "@odata.etag": 'W/"xzyPKP0BiUGgld+lMKXwbQAAnBoTIw=="',
    "importance": "low",
    "isReminderOn": False,
    "status": "notStarted",
    "title": "A new task",
    "createdDateTime": "2020-08-18T09:03:06.0072392Z",
    "lastModifiedDateTime": "2020-08-18T09:03:06.9356234Z",
    "hasAttachments": False,
    "categories": ["Important"],
    "id": "721a35e2-35e2-721a-e235-1a72e2351a72",
    "body": {"content": "", "contentType": "text"},
    "dueDateTime": {"dateTime": "2020-08-18T07:00:00.0000000", "timeZone": "UTC"},
}

# https://learn.microsoft.com/graph/change-notifications-delivery-webhooks ("Change notification example")
DOC_NOTIFICATION = {
    "value": [
        {
            "subscriptionId": "{subscription_guid}",
            "subscriptionExpirationDateTime": "2016-03-19T22:11:09.952Z",
            "clientState": "secretClientValue",
            "changeType": "created",
            "resource": "users/{user_guid}/messages/{id}",
            "tenantId": "84bd8158-6d4d-4958-8b9f-9d6445542f95",
            "resourceData": {
                "@odata.type": "#Microsoft.Graph.Message",
                "@odata.id": "Users/{user_guid}/Messages/{id}",
                "@odata.etag": 'W/"CQAAABYAAADkrWGo7bouTKlsgTZMr9KwAAAUWRHf"',
                "id": "{long_id_string}",
            },
        }
    ]
}

# https://learn.microsoft.com/graph/change-notifications-lifecycle-events ("Structure of a lifecycle notification")
DOC_LIFECYCLE = {
    "value": [
        {
            "subscriptionId": "<subscription_guid>",
            "subscriptionExpirationDateTime": "2019-03-20T11:00:00.0000000Z",
            "tenantId": "<tenant_guid>",
            "clientState": "<secretClientState>",
            "lifecycleEvent": "reauthorizationRequired",
        }
    ]
}

# https://learn.microsoft.com/graph/delta-query-events (sample responses: nextLink page, deltaLink page)
DOC_DELTA_NEXT = {
    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(event)",
    "@odata.nextLink": "https://graph.microsoft.com/v1.0/me/calendarView/delta?$skiptoken=R0usmci39",
    "value": [DOC_EVENT],
}
DOC_DELTA_LAST = {
    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(event)",
    "@odata.deltaLink": "https://graph.microsoft.com/v1.0/me/calendarView/delta?$deltatoken=R0usmcM",
    "value": [],
}
# https://learn.microsoft.com/graph/delta-query-overview (removed item)
DOC_REMOVED = {"@odata.type": "#microsoft.graph.event", "id": "AAMkADVxTAAA=", "@removed": {"reason": "deleted"}}

# https://learn.microsoft.com/graph/throttling ("Sample response")
DOC_429 = {
    "error": {
        "code": "TooManyRequests",
        "innerError": {
            "code": "429",
            "date": "2020-08-18T12:51:51",
            "message": "Please retry after",
            "request-id": "94fb3b52-452a-4535-a601-69e0a90e3aa2",
            "status": "429",
        },
        "message": "Please retry again later.",
    }
}

# https://learn.microsoft.com/graph/errors (error resource: code, message, innerError)
DOC_401 = {
    "error": {
        "code": "InvalidAuthenticationToken",
        "message": "Access token is empty.",
        "innerError": {"date": "2020-08-18T12:51:51", "request-id": "x", "client-request-id": "y"},
    }
}


def conforms(doc: Any, ours: Any, path: str = "$") -> list[str]:
    """Mismatches between a documented example and our payload (documented fields must exist, same type)."""
    if doc is None:
        return []
    if isinstance(doc, dict):
        if not isinstance(ours, dict):
            return [f"{path}: expected object, got {type(ours).__name__}"]
        problems = []
        for key, value in doc.items():
            if key not in ours:
                problems.append(f"{path}.{key}: missing")
            else:
                problems += conforms(value, ours[key], f"{path}.{key}")
        return problems
    if isinstance(doc, list):
        if not isinstance(ours, list):
            return [f"{path}: expected array"]
        return conforms(doc[0], ours[0], f"{path}[0]") if doc and ours else []
    if isinstance(doc, bool) or isinstance(ours, bool):
        return [] if isinstance(ours, bool) == isinstance(doc, bool) else [f"{path}: bool mismatch"]
    if type(doc) is not type(ours) and not (isinstance(doc, int | float) and isinstance(ours, int | float)):
        return [f"{path}: expected {type(doc).__name__}, got {type(ours).__name__}"]
    return []


def test_event_conforms(client: httpx.Client, user: dict[str, Any]) -> None:
    ev = client.post(
        f"/users/{user['id']}/events",
        json=event_body(
            location={"displayName": "Harry's Bar"},
            body={"contentType": "html", "content": "<p>hi</p>"},
            attendees=[{"emailAddress": {"address": "samanthab@contoso.com", "name": "Samantha"}, "type": "required"}],
        ),
    ).json()
    got = client.get(f"/users/{user['id']}/events/{ev['id']}").json()
    assert conforms(DOC_EVENT, got) == []


def test_contact_conforms(client: httpx.Client, user: dict[str, Any]) -> None:
    c = client.post(
        f"/users/{user['id']}/contacts",
        json={
            "givenName": "Pavel",
            "surname": "Bansky",
            "businessPhones": ["+1 732 555 0102"],
            "emailAddresses": [{"address": "pavelb@contoso.onmicrosoft.com", "name": "Pavel Bansky"}],
        },
    ).json()
    assert conforms(DOC_CONTACT, client.get(f"/users/{user['id']}/contacts/{c['id']}").json()) == []


def test_todo_task_conforms(client: httpx.Client, user: dict[str, Any]) -> None:
    lid = client.get(f"/users/{user['id']}/todo/lists").json()["value"][0]["id"]
    t = client.post(
        f"/users/{user['id']}/todo/lists/{lid}/tasks",
        json={
            "title": "A new task",
            "categories": ["Important"],
            "dueDateTime": {"dateTime": "2020-08-18T07:00:00", "timeZone": "UTC"},
        },
    ).json()
    assert conforms(DOC_TASK, t) == []


def test_change_and_lifecycle_notifications_conform(
    client: httpx.Client, control: httpx.Client, server: SimServer, user: dict[str, Any], webhook: Webhook
) -> None:
    sub = subscribe(client, user, webhook).json()
    client.post(f"/users/{user['id']}/events", json=event_body())
    control.post(f"/subscriptions/{sub['id']}/lifecycle", json={"lifecycleEvent": "reauthorizationRequired"})
    assert server.flush()
    assert conforms(DOC_NOTIFICATION, webhook.posts()[0]) == []
    assert conforms(DOC_LIFECYCLE, webhook.posts("/lifecycle")[0]) == []
    assert "changeType" not in webhook.posts("/lifecycle")[0]["value"][0]


def test_delta_pages_conform(client: httpx.Client, user: dict[str, Any]) -> None:
    for n in range(3):
        client.post(f"/users/{user['id']}/events", json=event_body(subject=str(n)))
    window = {"startDateTime": "2030-01-01T00:00:00Z", "endDateTime": "2031-01-01T00:00:00Z"}
    first = client.get(
        f"/users/{user['id']}/calendarView/delta", params=window, headers={"Prefer": "odata.maxpagesize=2"}
    ).json()
    assert conforms(DOC_DELTA_NEXT, first) == []
    last = client.get(first["@odata.nextLink"]).json()
    assert conforms(DOC_DELTA_LAST, last) == []
    client.delete(f"/users/{user['id']}/events/{first['value'][0]['id']}")
    removed = client.get(last["@odata.deltaLink"]).json()["value"][0]
    assert conforms(DOC_REMOVED, removed) == [] and set(removed) == set(DOC_REMOVED)


def test_error_bodies_conform(
    client: httpx.Client, control: httpx.Client, server: SimServer, user: dict[str, Any]
) -> None:
    control.post("/faults", json={"force_429": {"count": 1, "retry_after": 2}})
    r = client.get(f"/users/{user['id']}/events")
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"
    assert conforms(DOC_429, r.json()) == []
    unauth = httpx.get(f"{server.base_url}/users", verify=server.ssl_context(), trust_env=False)
    assert conforms(DOC_401, unauth.json()) == []


def test_subscription_resource_conforms(client: httpx.Client, user: dict[str, Any], webhook: Webhook) -> None:
    # https://learn.microsoft.com/graph/api/subscription-post-subscriptions (response)
    doc = {
        "id": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
        "resource": "me/mailFolders('Inbox')/messages",
        "applicationId": "24d3b144-21ae-4080-943f-7067b395b913",
        "changeType": "created",
        "clientState": "secretClientValue",
        "notificationUrl": "https://webhook.azurewebsites.net/api/send",
        "expirationDateTime": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        "creatorId": "8ee44408-0679-472c-bc2a-692812af3437",
        "latestSupportedTlsVersion": "v1_2",
        "notificationQueryOptions": None,
        "lifecycleNotificationUrl": None,
        "includeResourceData": None,
    }
    assert conforms(doc, subscribe(client, user, webhook).json()) == []
