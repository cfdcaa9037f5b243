"""Contacts, To Do tasks (linkedResources, open extensions) and $batch.

Docs: https://learn.microsoft.com/graph/api/resources/contact, https://learn.microsoft.com/graph/api/resources/todotask,
https://learn.microsoft.com/graph/api/resources/linkedresource, https://learn.microsoft.com/graph/json-batching.
"""

from __future__ import annotations

from typing import Any

import httpx
from graph_payloads import ERP_ID, event_body


def test_contact_crud_and_extended_property(client: httpx.Client, user: dict[str, Any]) -> None:
    base = f"/users/{user['id']}/contacts"
    c = client.post(
        base,
        json={
            "givenName": "Ana",
            "surname": "Lima",
            "companyName": "#C001#",
            "jobTitle": "Buyer",
            "emailAddresses": [{"address": "ana@fabrikam.example", "name": "Ana Lima"}],
            "businessPhones": ["+351 21 000 0000"],
            "mobilePhone": "+351 91 000 0000",
            "singleValueExtendedProperties": [{"id": ERP_ID, "value": "CT-9"}],
        },
    ).json()
    assert c["displayName"] == "Ana Lima"
    assert c["parentFolderId"]
    flt = f"singleValueExtendedProperties/Any(ep: ep/id eq '{ERP_ID}' and ep/value eq 'CT-9')"
    assert [x["id"] for x in client.get(base, params={"$filter": flt}).json()["value"]] == [c["id"]]
    r = client.patch(f"{base}/{c['id']}", json={"jobTitle": "Head buyer"}, headers={"If-Match": c["@odata.etag"]})
    assert r.json()["jobTitle"] == "Head buyer" and r.json()["changeKey"] != c["changeKey"]
    assert (
        client.patch(f"{base}/{c['id']}", json={"jobTitle": "x"}, headers={"If-Match": c["@odata.etag"]}).status_code
        == 412
    )
    assert client.delete(f"{base}/{c['id']}").status_code == 204
    assert client.get(f"{base}/{c['id']}").status_code == 404


def test_contact_move_keeps_immutable_id(client: httpx.Client, user: dict[str, Any]) -> None:
    imm = {"Prefer": 'IdType="ImmutableId"'}
    folder = client.post(f"/users/{user['id']}/contactFolders", json={"displayName": "Exchange"}).json()
    c = client.post(f"/users/{user['id']}/contacts", json={"givenName": "A", "surname": "B"}, headers=imm).json()
    regular = client.get(f"/users/{user['id']}/contacts/{c['id']}").json()["id"]
    moved = client.post(
        f"/users/{user['id']}/contacts/{regular}/move", json={"destinationId": folder["id"]}, headers=imm
    )
    assert moved.json()["id"] == c["id"]
    assert moved.json()["parentFolderId"] == folder["id"]
    assert client.get(f"/users/{user['id']}/contacts/{regular}").status_code == 404
    listed = client.get(f"/users/{user['id']}/contactFolders/{folder['id']}/contacts", headers=imm).json()
    assert [x["id"] for x in listed["value"]] == [c["id"]]


def test_todo_default_list_and_task_lifecycle(client: httpx.Client, user: dict[str, Any]) -> None:
    lists = client.get(f"/users/{user['id']}/todo/lists").json()["value"]
    assert [(x["displayName"], x["wellknownListName"]) for x in lists] == [("Tasks", "defaultList")]
    url = f"/users/{user['id']}/todo/lists/{lists[0]['id']}/tasks"
    t = client.post(
        url,
        json={
            "title": "TSK0001 prepare offer",
            "importance": "high",
            "dueDateTime": {"dateTime": "2030-06-01T00:00:00", "timeZone": "W. Europe Standard Time"},
            "body": {"content": "notes", "contentType": "text"},
            "linkedResources": [
                {
                    "webUrl": "https://erp.example/tasks/1",
                    "applicationName": "ERP",
                    "displayName": "TSK0001",
                    "externalId": "TSK0001",
                }
            ],
        },
    ).json()
    assert t["status"] == "notStarted"
    assert t["dueDateTime"] == {"dateTime": "2030-05-31T22:00:00.0000000", "timeZone": "UTC"}
    done = client.patch(f"{url}/{t['id']}", json={"status": "completed"}).json()
    assert done["status"] == "completed" and "completedDateTime" in done
    linked = client.get(f"{url}/{t['id']}/linkedResources").json()["value"]
    assert linked[0]["externalId"] == "TSK0001"
    ext = client.post(
        f"{url}/{t['id']}/extensions",
        json={"@odata.type": "microsoft.graph.openTypeExtension", "extensionName": "com.erp.sync", "chrono": "TSK0001"},
    )
    assert ext.status_code == 201
    got = client.get(f"{url}/{t['id']}", params={"$expand": "extensions"}).json()
    assert got["extensions"][0]["chrono"] == "TSK0001"
    assert client.post(url, json={"title": "x", "status": "bogus"}).status_code == 400


def test_batch_with_depends_on(client: httpx.Client, user: dict[str, Any]) -> None:
    base = f"/users/{user['id']}"
    r = client.post(
        "/$batch",
        json={
            "requests": [
                {
                    "id": "1",
                    "method": "POST",
                    "url": f"{base}/events",
                    "body": event_body(subject="b1"),
                    "headers": {"Content-Type": "application/json"},
                },
                {"id": "2", "method": "GET", "url": f"{base}/events?$top=5", "dependsOn": ["1"]},
                {"id": "3", "method": "GET", "url": f"{base}/events/does-not-exist"},
                {"id": "4", "method": "GET", "url": f"{base}/events", "dependsOn": ["3"]},
            ]
        },
    )
    assert r.status_code == 200
    by_id = {x["id"]: x for x in r.json()["responses"]}
    assert by_id["1"]["status"] == 201
    assert [e["subject"] for e in by_id["2"]["body"]["value"]] == ["b1"]
    assert by_id["3"]["status"] == 404
    assert by_id["4"]["status"] == 424


def test_batch_limit_is_twenty(client: httpx.Client, user: dict[str, Any]) -> None:
    requests = [{"id": str(n), "method": "GET", "url": f"/users/{user['id']}"} for n in range(21)]
    assert client.post("/$batch", json={"requests": requests}).status_code == 400
    ok = client.post("/$batch", json={"requests": requests[:20]})
    assert [x["status"] for x in ok.json()["responses"]] == [200] * 20


def test_stats_count_batch_sub_requests_apart(
    client: httpx.Client, control: httpx.Client, user: dict[str, Any]
) -> None:
    """`/_sim/stats` counts a $batch's sub-requests under their own routes and again under `batched`,
    so that a reader can tell the HTTP requests (requests − batched) from the work inside them."""
    base = f"/users/{user['id']}"
    client.get(f"{base}/events")
    requests = [{"id": str(n), "method": "GET", "url": f"{base}/events"} for n in range(3)]
    assert client.post("/$batch", json={"requests": requests}).status_code == 200
    stats = control.get("/stats").json()
    assert stats["requests"]["GET /users/{user}/events"] == {"200": 4}
    assert stats["requests"]["POST /$batch"] == {"200": 1}
    assert stats["batched"] == {"GET /users/{user}/events": 3}
