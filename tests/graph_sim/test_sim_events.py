"""Events: CRUD, time zones, all-day, changeKey/If-Match, extended properties, recurrence, move.

Docs: https://learn.microsoft.com/graph/api/resources/event, .../user-list-events,
.../user-list-calendarview, .../event-update (If-Match), https://learn.microsoft.com/graph/outlook-immutable-id,
https://learn.microsoft.com/graph/api/singlevaluelegacyextendedproperty-get.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from graph_payloads import ERP_ID, event_body


def _events(user: dict[str, Any]) -> str:
    return f"/users/{user['id']}/events"


def test_create_returns_graph_event_in_utc(client: httpx.Client, user: dict[str, Any]) -> None:
    r = client.post(_events(user), json=event_body())
    assert r.status_code == 201
    ev = r.json()
    assert ev["type"] == "singleInstance"
    assert ev["originalStartTimeZone"] == "W. Europe Standard Time"
    # 10:00 Berlin in March (UTC+1) is 09:00 UTC; Graph answers in UTC without a Prefer header
    assert ev["start"] == {"dateTime": "2030-03-04T09:00:00.0000000", "timeZone": "UTC"}
    assert ev["@odata.etag"] == f'W/"{ev["changeKey"]}"'
    assert ev["organizer"]["emailAddress"]["address"] == user["mail"]


@pytest.mark.parametrize("tz", ["Pacific Standard Time", "America/Los_Angeles"])
def test_prefer_outlook_timezone_converts_across_dst(client: httpx.Client, user: dict[str, Any], tz: str) -> None:
    # R33: the US switches to DST on 2030-03-10, Europe on 2030-03-31
    ev = client.post(_events(user), json=event_body(start="2030-03-20T10:00:00", end="2030-03-20T11:00:00")).json()
    got = client.get(f"{_events(user)}/{ev['id']}", headers={"Prefer": f'outlook.timezone="{tz}"'})
    assert got.json()["start"] == {"dateTime": "2030-03-20T02:00:00.0000000", "timeZone": tz}
    assert "outlook.timezone" in got.headers["Preference-Applied"]


def test_unknown_time_zone_is_400(client: httpx.Client, user: dict[str, Any]) -> None:
    r = client.post(_events(user), json=event_body(tz="Mars Standard Time"))
    assert r.status_code == 400


def test_all_day_event_keeps_its_dates_in_any_zone(client: httpx.Client, user: dict[str, Any]) -> None:
    body = event_body(start="2030-05-01T00:00:00", end="2030-05-03T00:00:00", isAllDay=True)
    ev = client.post(_events(user), json=body).json()
    assert ev["isAllDay"] is True
    for tz in ("Tokyo Standard Time", "Hawaiian Standard Time"):
        got = client.get(f"{_events(user)}/{ev['id']}", headers={"Prefer": f'outlook.timezone="{tz}"'}).json()
        assert got["start"]["dateTime"] == "2030-05-01T00:00:00.0000000"
        assert got["end"]["dateTime"] == "2030-05-03T00:00:00.0000000"


def test_all_day_event_must_be_at_midnight(client: httpx.Client, user: dict[str, Any]) -> None:
    body = event_body(start="2030-05-01T09:00:00", end="2030-05-02T00:00:00", isAllDay=True)
    assert client.post(_events(user), json=body).status_code == 400


def test_update_changes_change_key_and_stale_if_match_is_412(client: httpx.Client, user: dict[str, Any]) -> None:
    ev = client.post(_events(user), json=event_body()).json()
    url = f"{_events(user)}/{ev['id']}"
    r = client.patch(url, json={"subject": "Moved"}, headers={"If-Match": ev["@odata.etag"]})
    assert r.status_code == 200
    updated = r.json()
    assert updated["changeKey"] != ev["changeKey"]
    assert updated["@odata.etag"] != ev["@odata.etag"]
    assert updated["subject"] == "Moved"
    stale = client.patch(url, json={"subject": "Again"}, headers={"If-Match": ev["@odata.etag"]})
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "ErrorIrresolvableConflict"
    assert client.delete(url, headers={"If-Match": ev["@odata.etag"]}).status_code == 412
    assert client.delete(url, headers={"If-Match": updated["@odata.etag"]}).status_code == 204
    assert client.get(url).status_code == 404


def test_extended_property_filter_and_expand(client: httpx.Client, user: dict[str, Any]) -> None:
    for n in range(3):
        client.post(
            _events(user),
            json=event_body(subject=f"e{n}", singleValueExtendedProperties=[{"id": ERP_ID, "value": f"MEET{n}"}]),
        )
    flt = f"singleValueExtendedProperties/Any(ep: ep/id eq '{ERP_ID}' and ep/value eq 'MEET1')"
    r = client.get(
        _events(user), params={"$filter": flt, "$expand": f"singleValueExtendedProperties($filter=id eq '{ERP_ID}')"}
    )
    found = r.json()["value"]
    assert [e["subject"] for e in found] == ["e1"]
    assert found[0]["singleValueExtendedProperties"] == [{"id": ERP_ID, "value": "MEET1"}]
    # not returned unless expanded
    plain = client.get(f"{_events(user)}/{found[0]['id']}").json()
    assert "singleValueExtendedProperties" not in plain


def test_list_pages_by_ten_by_default(client: httpx.Client, control: httpx.Client, user: dict[str, Any]) -> None:
    control.post(
        f"/users/{user['id']}/events", json={"items": [event_body(subject=f"s{n}") for n in range(23)], "notify": False}
    )
    page = client.get(_events(user)).json()
    seen = [e["subject"] for e in page["value"]]
    assert len(seen) == 10
    while "@odata.nextLink" in page:
        page = client.get(page["@odata.nextLink"]).json()
        seen += [e["subject"] for e in page["value"]]
    assert seen == [f"s{n}" for n in range(23)]
    assert len(client.get(_events(user), params={"$top": 5}).json()["value"]) == 5


def test_recurring_series_expands_in_calendar_view(client: httpx.Client, user: dict[str, Any]) -> None:
    body = event_body(
        start="2030-03-04T10:00:00",
        end="2030-03-04T11:00:00",
        recurrence={
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "wednesday"]},
            "range": {"type": "numbered", "startDate": "2030-03-04", "numberOfOccurrences": 4},
        },
    )
    master = client.post(_events(user), json=body).json()
    assert master["type"] == "seriesMaster"
    view = client.get(
        f"/users/{user['id']}/calendarView",
        params={"startDateTime": "2030-03-01T00:00:00Z", "endDateTime": "2030-04-01T00:00:00Z"},
    ).json()["value"]
    assert [v["type"] for v in view] == ["occurrence"] * 4
    assert [v["start"]["dateTime"][:10] for v in view] == ["2030-03-04", "2030-03-06", "2030-03-11", "2030-03-13"]
    assert {v["seriesMasterId"] for v in view} == {master["id"]}
    # PATCH an occurrence makes an exception; DELETE cancels one
    client.patch(f"{_events(user)}/{view[1]['id']}", json={"subject": "Special"})
    client.delete(f"{_events(user)}/{view[2]['id']}")
    view = client.get(
        f"/users/{user['id']}/calendarView",
        params={"startDateTime": "2030-03-01T00:00:00Z", "endDateTime": "2030-04-01T00:00:00Z"},
    ).json()["value"]
    assert [(v["type"], v["subject"]) for v in view] == [
        ("occurrence", "Visit"),
        ("exception", "Special"),
        ("occurrence", "Visit"),
    ]


def test_calendar_view_needs_a_window(client: httpx.Client, user: dict[str, Any]) -> None:
    assert client.get(f"/users/{user['id']}/calendarView").status_code == 400


def test_move_changes_regular_id_but_not_immutable_id(client: httpx.Client, user: dict[str, Any]) -> None:
    # https://learn.microsoft.com/graph/outlook-immutable-id (R21)
    immutable = {"Prefer": 'IdType="ImmutableId"'}
    created = client.post(_events(user), json=event_body(), headers=immutable)
    assert created.headers["Preference-Applied"] == 'IdType="ImmutableId"'
    imm_id = created.json()["id"]
    regular_id = client.get(f"{_events(user)}/{imm_id}").json()["id"]
    assert regular_id != imm_id
    other = client.post(f"/users/{user['id']}/calendars", json={"name": "Archive"}).json()
    moved = client.post(f"{_events(user)}/{regular_id}/move", json={"destinationId": other["id"]}).json()
    assert moved["id"] != regular_id
    assert client.get(f"{_events(user)}/{regular_id}").status_code == 404
    assert client.get(f"{_events(user)}/{imm_id}", headers=immutable).json()["id"] == imm_id


def test_meeting_with_attendees_sends_invitations(
    client: httpx.Client, control: httpx.Client, user: dict[str, Any]
) -> None:
    """Exchange mails attendees; the outbox lets product tests prove R31 (no invitation spam)."""
    client.post(_events(user), json=event_body())
    assert control.get(f"/users/{user['id']}/outbox").json() == []
    client.post(
        _events(user),
        json=event_body(
            attendees=[{"emailAddress": {"address": "client@fabrikam.example", "name": "Client"}, "type": "required"}]
        ),
    )
    sent = control.get(f"/users/{user['id']}/outbox").json()
    assert [(m["type"], m["to"]) for m in sent] == [("meetingRequest", ["client@fabrikam.example"])]


def test_inspect_shows_internal_state(client: httpx.Client, control: httpx.Client, user: dict[str, Any]) -> None:
    ev = client.post(_events(user), json=event_body()).json()
    client.delete(f"{_events(user)}/{ev['id']}")
    items = control.get(f"/users/{user['id']}/events").json()
    assert items[0]["regularId"] == ev["id"]
    assert items[0]["deleted"] is True


@pytest.mark.parametrize(
    "field",
    [
        {"location": "Lisbon office"},
        {"body": "plain text"},
        {"start": "2030-03-04T10:00:00"},
        {"attendees": "ana@contoso.example"},
        {"attendees": ["ana@contoso.example"]},
        {"categories": "Blue"},
    ],
)
def test_a_primitive_where_graph_expects_an_object_is_a_400_not_a_500(
    client: httpx.Client, user: dict[str, Any], field: dict[str, Any]
) -> None:
    created = client.post(_events(user), json=event_body())
    assert created.status_code == 201
    for r in (
        client.post(_events(user), json={**event_body(), **field}),
        client.patch(f"{_events(user)}/{created.json()['id']}", json=field),
    ):
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "RequestBodyRead"
