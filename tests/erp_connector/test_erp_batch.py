"""`POST /api/v1/batch` over real HTTP: each create answered as if sent alone (ADR 0027)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from erp_support import TOKEN, Running, Tap, seed
from sqlalchemy import event
from test_erp_api import MEETING

OUTLOOK = {"X-Change-Origin": "outlook"}


def create(rid: str, url: str, body: Any, **headers: str) -> dict[str, Any]:
    return {"id": rid, "method": "POST", "url": url, "headers": headers, "body": body}


async def batch(client: httpx.AsyncClient, *requests: dict[str, Any]) -> dict[str, dict[str, Any]]:
    r = await client.post("/api/v1/batch", json={"requests": list(requests)})
    assert r.status_code == 200, r.text
    answers = r.json()["responses"]
    assert [a["id"] for a in answers] == [q["id"] for q in requests], "answers come in the order asked"
    return {a["id"]: a for a in answers}


async def test_batch_creates_each_record_as_alone_and_refuses_one_without_the_others_R15_R11(
    erp: Running, tap: Tap
) -> None:
    await seed(erp.client)
    task = {"kind": "task", "subject": "Send quote", "due": "2030-03-05T00:00:00Z", "representative": "REP01"}
    contact = {"given_name": "Rui", "surname": "Lopes", "emails": ["rui@acme.example"], "representatives": ["REP01"]}
    answers = await batch(
        erp.client,
        create("m1", "/activities", MEETING, **{"Idempotency-Key": "k-m1"}),
        create("overlap", "/activities", {**MEETING, "subject": "Clash"}),
        create("t1", "/activities", task),
        create("partner", "/activities", {**MEETING, "start": "2030-04-01T09:00:00Z", "partner_code": "NOPE"}),
        create("c1", "/contacts", contact),
        create("bad", "/activities", {"kind": "meeting"}),
        {"id": "put", "method": "PUT", "url": "/activities/1", "body": {"subject": "x"}},
    )
    m1 = answers["m1"]
    assert m1["status"] == 201 and m1["body"]["chrono"] == "MTG000001"
    assert m1["headers"]["ETag"] == '"1"' and m1["headers"]["Location"] == f"/api/v1/activities/{m1['body']['id']}"
    assert answers["overlap"]["status"] == 409 and answers["overlap"]["body"]["detail"]["code"] == "overlap"  # R15
    assert answers["t1"]["status"] == 201 and answers["t1"]["body"]["chrono"] == "TSK000001"
    assert answers["partner"]["status"] == 422
    assert answers["partner"]["body"]["detail"]["code"] == "unknown_partner"  # R11
    c1 = answers["c1"]
    assert c1["status"] == 201 and c1["body"]["partner_code"] == "ACME", "R10: the domain picks the partner"
    assert answers["bad"]["status"] == 422
    assert any(e["loc"] == ["representative"] for e in answers["bad"]["body"]["detail"])
    assert answers["put"]["status"] == 400 and answers["put"]["body"]["detail"]["code"] == "not_batchable"

    activities = (await erp.client.get("/api/v1/activities")).json()
    assert sorted(a["chrono"] for a in activities["items"]) == ["MTG000001", "TSK000001"]
    assert (await erp.client.get("/api/v1/contacts")).json()["total"] == 1
    events = await tap.wait_for(3, "erp.changed")
    assert len(events) == 3, "one event per record created, none for the refused"


async def test_a_key_used_in_a_batch_replays_alone_and_the_other_way_round(erp: Running, tap: Tap) -> None:
    await seed(erp.client)
    first = await batch(erp.client, create("1", "/activities", MEETING, **{"Idempotency-Key": "k1"}, **OUTLOOK))
    alone = await erp.client.post("/api/v1/activities", json=MEETING, headers={"Idempotency-Key": "k1", **OUTLOOK})
    assert alone.status_code == 201 and alone.headers["idempotent-replayed"] == "true"
    assert alone.json() == first["1"]["body"]

    later = {**MEETING, "start": "2030-05-01T09:00:00Z", "end": "2030-05-01T10:00:00Z"}
    made = await erp.client.post("/api/v1/activities", json=later, headers={"Idempotency-Key": "k2"})
    again = await batch(
        erp.client,
        create("2", "/activities", later, **{"Idempotency-Key": "k2"}),
        create("3", "/activities", {**later, "subject": "other"}, **{"Idempotency-Key": "k2"}),
    )
    assert again["2"]["status"] == 201 and again["2"]["headers"]["Idempotent-Replayed"] == "true"
    assert again["2"]["body"] == made.json()
    assert again["3"]["status"] == 422 and again["3"]["body"]["detail"]["code"] == "idempotency_key_reused"
    assert (await erp.client.get("/api/v1/activities")).json()["total"] == 2
    assert [e["payload"]["origin"] for e in await tap.wait_for(1, "erp.changed")] == ["erp"], (
        "the batch's X-Change-Origin: outlook is honoured (no echo of sync-core's own write is announced)"
    )


async def test_batch_refuses_a_malformed_envelope_whole(erp: Running) -> None:
    await seed(erp.client)
    url = "/api/v1/batch"
    too_many = {"requests": [create(str(n), "/activities", MEETING) for n in range(101)]}
    twins = {"requests": [create("1", "/activities", MEETING), create("1", "/activities", MEETING)]}
    for body in ({}, {"requests": []}, too_many, twins, {"requests": [{"id": "1"}]}):
        r = await erp.client.post(url, json=body)
        assert r.status_code == 422, (body if len(str(body)) < 200 else "too many", r.text)
    async with httpx.AsyncClient(base_url=erp.url) as anonymous:
        assert (await anonymous.post(url, json=twins)).status_code == 401
    assert (await erp.client.get("/api/v1/activities")).json()["total"] == 0, "nothing of a refused batch is written"


async def test_sync_core_client_sends_queued_creates_together_each_answered_as_alone_R15(erp: Running) -> None:
    """sync-core's ErpClient: creates made at once share its one send, in a batch; a refusal
    (R15) reaches its own caller only; a key replays alone what the batch made."""
    from starlette.types import Receive, Scope, Send

    from sync_core.adapters.erp import ErpClient, ErpRefused
    from tests.support.servers import serve

    served = 0

    async def counting(scope: Scope, receive: Receive, send: Send) -> None:
        # Counted here, not from the ERP's /metrics: a long test session can fill an instrument's
        # attribute sets (OpenTelemetry's cardinality limit), and later ones land in an overflow set.
        nonlocal served
        if scope["type"] == "http" and scope["path"] == "/api/v1/batch" and scope["method"] == "POST":
            served += 1
        await erp.app(scope, receive, send)

    await seed(erp.client)
    meetings = [
        {
            **MEETING,
            "subject": f"M{n}",
            "start": f"2030-06-{n + 1:02d}T09:00:00Z",
            "end": f"2030-06-{n + 1:02d}T10:00:00Z",
        }
        for n in range(12)
    ]
    clash = {**meetings[3], "subject": "Clash"}
    async with serve(counting) as url:
        client = ErpClient(url, TOKEN, batch_max=20, batch_in_flight=1)
        try:
            results = await asyncio.gather(
                *(client.create("activities", body, key=f"k{n}") for n, body in enumerate([*meetings, clash])),
                return_exceptions=True,
            )
            *made, refused = results
            assert isinstance(refused, ErpRefused) and refused.code == "overlap", refused
            assert all(isinstance(r, dict) for r in made), made
            assert [r["subject"] for r in made] == [m["subject"] for m in meetings], "each caller gets its own record"  # type: ignore[index]
            assert len({r["id"] for r in made}) == 12  # type: ignore[index]
            in_batches = served
            again = await client.create("activities", meetings[5], key="k5")
            assert again == made[5], "a key sent in a batch replays alone"
        finally:
            await client.close()
    assert (await erp.client.get("/api/v1/activities")).json()["total"] == 12
    assert 1 <= in_batches <= 2, f"13 creates at once, one send: together, not one by one ({in_batches} batches)"


async def test_sync_core_client_falls_back_to_single_creates_when_the_erp_has_no_batch(erp: Running) -> None:
    """An ERP of one's own may not offer /batch: a 404 there makes every create go alone, none lost."""
    from starlette.types import Receive, Scope, Send

    from sync_core.adapters.erp import ErpClient
    from tests.support.servers import serve

    async def without_batch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/api/v1/batch":
            await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"Not Found"})
            return
        await erp.app(scope, receive, send)

    await seed(erp.client)
    async with serve(without_batch) as url:
        client = ErpClient(url, TOKEN, batch_max=20, batch_in_flight=1)
        try:
            bodies = [{**MEETING, "kind": "task", "subject": f"T{n}", "start": None, "end": None} for n in range(8)]
            made = await asyncio.gather(*(client.create("activities", b, key=f"t{n}") for n, b in enumerate(bodies)))
            assert sorted(r["subject"] for r in made) == sorted(b["subject"] for b in bodies)
            assert client._creates.supported is False
        finally:
            await client.close()
    assert (await erp.client.get("/api/v1/activities", params={"kind": "task"})).json()["total"] == 8


async def test_a_batchs_creates_commit_together_in_order_on_sqlite_R03(erp: Running) -> None:
    """On a SQLite file the creates of one batch are asked for at once and committed in one
    transaction (group commit, ADR 0028), still in the order given: chronos follow the requests."""
    threads = erp.app.state.db.transactions.threads
    if threads is None:
        pytest.skip("group commit is for a SQLite file")
    await seed(erp.client)
    begins: list[object] = []
    event.listen(threads.writer, "begin", begins.append)
    task = {"kind": "task", "representative": "REP01"}
    tasks = [create(f"t{i}", "/activities", {**task, "subject": f"T{i}"}) for i in range(10)]
    answers = await batch(erp.client, *tasks)
    assert [answers[f"t{i}"]["body"]["chrono"] for i in range(10)] == [f"TSK{i + 1:06d}" for i in range(10)]
    assert len(begins) <= 2, f"{len(begins)} transactions for one batch of 10"
