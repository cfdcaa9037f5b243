"""Delta queries: paging, deltaLink rounds, @removed, 410 syncStateNotFound, O(changes) cost.

Docs: https://learn.microsoft.com/graph/delta-query-overview, https://learn.microsoft.com/graph/delta-query-events,
https://learn.microsoft.com/graph/api/contact-delta, https://learn.microsoft.com/graph/api/todotask-delta.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from graph_payloads import event_body

WINDOW = {"startDateTime": "2030-01-01T00:00:00Z", "endDateTime": "2031-01-01T00:00:00Z"}


def _round(
    client: httpx.Client, url: str, params: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> tuple[list[dict[str, Any]], str, int]:
    """Follow nextLinks to the deltaLink: (rows, deltaLink, pages)."""
    rows: list[dict[str, Any]] = []
    r = client.get(url, params=params, headers=headers)
    pages = 1
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        rows += body["value"]
        if "@odata.deltaLink" in body:
            assert "@odata.nextLink" not in body
            return rows, body["@odata.deltaLink"], pages
        r = client.get(body["@odata.nextLink"], headers=headers)
        pages += 1


def test_initial_round_pages_with_maxpagesize(
    client: httpx.Client, control: httpx.Client, user: dict[str, Any]
) -> None:
    control.post(f"/users/{user['id']}/events", json=[event_body(subject=f"e{n}") for n in range(7)])
    url = f"/users/{user['id']}/calendarView/delta"
    r = client.get(url, params=WINDOW, headers={"Prefer": "odata.maxpagesize=3"})
    assert r.headers["Preference-Applied"] == "odata.maxpagesize=3"
    assert len(r.json()["value"]) == 3 and "$skiptoken=" in r.json()["@odata.nextLink"]
    rows, delta_link, pages = _round(client, url, WINDOW, {"Prefer": "odata.maxpagesize=3"})
    assert pages == 3
    assert sorted(e["subject"] for e in rows) == [f"e{n}" for n in range(7)]
    assert "$deltatoken=" in delta_link
    # nothing changed: an empty round
    assert _round(client, delta_link)[0] == []


def test_incremental_round_reports_updates_and_removals(client: httpx.Client, user: dict[str, Any]) -> None:
    base = f"/users/{user['id']}/events"
    a = client.post(base, json=event_body(subject="a")).json()
    b = client.post(base, json=event_body(subject="b")).json()
    _, link, _ = _round(client, f"/users/{user['id']}/calendarView/delta", WINDOW)
    client.patch(f"{base}/{a['id']}", json={"subject": "a2"})
    client.patch(f"{base}/{a['id']}", json={"subject": "a3"})
    client.delete(f"{base}/{b['id']}")
    out = client.post(
        base, json=event_body(subject="outside", start="2035-01-01T10:00:00", end="2035-01-01T11:00:00")
    ).json()
    rows, link, _ = _round(client, link)
    assert {"id": b["id"], "@removed": {"reason": "deleted"}}.items() <= next(
        r for r in rows if r["id"] == b["id"]
    ).items()
    assert [r["subject"] for r in rows if r["id"] == a["id"]] == ["a3"]
    assert all(r["id"] != out["id"] for r in rows)
    # moving an event out of the window removes it from this calendar view
    client.patch(
        f"{base}/{a['id']}",
        json={
            "start": {"dateTime": "2036-01-01T10:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2036-01-01T11:00:00", "timeZone": "UTC"},
        },
    )
    rows, _, _ = _round(client, link)
    assert rows == [{"@odata.type": "#microsoft.graph.event", "id": a["id"], "@removed": {"reason": "changed"}}]


def test_expired_or_unknown_token_is_410(client: httpx.Client, control: httpx.Client, user: dict[str, Any]) -> None:
    url = f"/users/{user['id']}/calendarView/delta"
    _, link, _ = _round(client, url, WINDOW)
    control.post("/delta/expire", json={"user": user["id"]})
    r = client.get(link)
    assert r.status_code == 410
    assert r.json()["error"]["code"] == "syncStateNotFound"
    assert client.get(url, params={"$deltatoken": "garbage"}).status_code == 410
    # a fresh initial round works again
    assert client.get(url, params=WINDOW).status_code == 200


def test_calendar_view_delta_rejects_select(client: httpx.Client, user: dict[str, Any]) -> None:
    r = client.get(f"/users/{user['id']}/calendarView/delta", params={**WINDOW, "$select": "subject"})
    assert r.status_code == 400


def test_series_is_expanded_in_delta(client: httpx.Client, user: dict[str, Any]) -> None:
    body = event_body(
        start="2030-03-04T10:00:00",
        end="2030-03-04T11:00:00",
        recurrence={
            "pattern": {"type": "daily", "interval": 1},
            "range": {"type": "endDate", "startDate": "2030-03-04", "endDate": "2030-03-06"},
        },
    )
    master = client.post(f"/users/{user['id']}/events", json=body).json()
    rows, link, _ = _round(client, f"/users/{user['id']}/calendarView/delta", WINDOW)
    assert sorted(r["type"] for r in rows) == ["occurrence"] * 3 + ["seriesMaster"]
    occurrence = next(r for r in rows if r["type"] == "occurrence")
    client.delete(f"/users/{user['id']}/events/{occurrence['id']}")
    rows, _, _ = _round(client, link)
    assert rows == [
        {"@odata.type": "#microsoft.graph.event", "id": occurrence["id"], "@removed": {"reason": "deleted"}}
    ]
    assert master["type"] == "seriesMaster"


def test_delta_ids_follow_the_immutable_id_preference(client: httpx.Client, user: dict[str, Any]) -> None:
    imm = {"Prefer": 'IdType="ImmutableId", odata.maxpagesize=50'}
    ev = client.post(f"/users/{user['id']}/events", json=event_body(), headers=imm).json()
    rows, _, _ = _round(client, f"/users/{user['id']}/calendarView/delta", WINDOW, imm)
    assert [r["id"] for r in rows] == [ev["id"]]


def test_incremental_round_costs_changes_not_mailbox_size(
    client: httpx.Client, control: httpx.Client, user: dict[str, Any]
) -> None:
    """R30: with 20,000 events, a round after one change reads one log entry."""
    items = [event_body(subject=f"bulk{n}") for n in range(20_000)]
    for chunk in range(0, len(items), 5000):
        control.post(f"/users/{user['id']}/events", json={"items": items[chunk : chunk + 5000], "notify": False})
    url = f"/users/{user['id']}/calendarView/delta"
    _, link, _ = _round(client, url, WINDOW, {"Prefer": "odata.maxpagesize=1000"})
    ev = client.post(f"/users/{user['id']}/events", json=event_body(subject="new")).json()
    started = time.perf_counter()
    rows, _, _ = _round(client, link)
    elapsed = time.perf_counter() - started
    assert [r["id"] for r in rows] == [ev["id"]]
    assert elapsed < 0.1


def test_contact_delta_per_folder_and_move(client: httpx.Client, user: dict[str, Any]) -> None:
    folder = client.post(f"/users/{user['id']}/contactFolders", json={"displayName": "Customers"}).json()
    c = client.post(f"/users/{user['id']}/contacts", json={"givenName": "Ana", "surname": "Lima"}).json()
    _, default_link, _ = _round(client, f"/users/{user['id']}/contacts/delta")
    _, folder_link, _ = _round(client, f"/users/{user['id']}/contactFolders/{folder['id']}/contacts/delta")
    moved = client.post(f"/users/{user['id']}/contacts/{c['id']}/move", json={"destinationId": folder["id"]}).json()
    rows, _, _ = _round(client, default_link)
    assert rows == [{"@odata.type": "#microsoft.graph.contact", "id": c["id"], "@removed": {"reason": "changed"}}]
    rows, _, _ = _round(client, folder_link)
    assert [(r["id"], r["parentFolderId"]) for r in rows] == [(moved["id"], folder["id"])]


def test_todo_task_delta(client: httpx.Client, user: dict[str, Any]) -> None:
    lists = client.get(f"/users/{user['id']}/todo/lists").json()["value"]
    lid = next(x["id"] for x in lists if x["wellknownListName"] == "defaultList")
    url = f"/users/{user['id']}/todo/lists/{lid}/tasks"
    t = client.post(url, json={"title": "TSK001 call back"}).json()
    rows, link, _ = _round(client, f"{url}/delta")
    assert [r["title"] for r in rows] == ["TSK001 call back"]
    client.delete(f"{url}/{t['id']}")
    rows, _, _ = _round(client, link)
    assert rows == [{"@odata.type": "#microsoft.graph.todoTask", "id": t["id"], "@removed": {"reason": "deleted"}}]
