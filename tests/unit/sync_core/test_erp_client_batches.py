"""sync-core's ERP client batches creates that queue up (ADR 0027): each caller gets its own answer
or error, whatever happens to the batch request as a whole. The real ERP is in
tests/erp_connector/test_erp_batch.py; here the ERP's failures are made on purpose."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import respx

from sync_core.adapters.erp import ErpClient, ErpRefused, ErpUnavailable


def created(request: httpx.Request) -> httpx.Response:
    return httpx.Response(201, json={"id": json.loads(request.content)["subject"]})


async def burst(erp: ErpClient, n: int) -> list[Any]:
    """`n` creates at once: all are queued before the one send starts, so they go together."""
    calls = [erp.create("activities", {"subject": f"s{i}"}, key=f"k{i}") for i in range(n)]
    return await asyncio.gather(*calls, return_exceptions=True)


@respx.mock(using="httpx", base_url="http://erp.test/api/v1")
async def test_each_caller_gets_its_own_answer_and_a_left_out_one_is_unavailable(respx_mock: respx.MockRouter) -> None:
    def answers(request: httpx.Request) -> httpx.Response:
        reqs = json.loads(request.content)["requests"]
        assert all(r["headers"]["X-Change-Origin"] == "outlook" and r["headers"]["Idempotency-Key"] for r in reqs)
        out = [{"id": r["id"], "status": 201, "body": {"id": r["body"]["subject"]}} for r in reqs[1:]]
        out[0] = {"id": reqs[1]["id"], "status": 409, "body": {"detail": {"code": "overlap", "message": "R15"}}}
        return httpx.Response(200, json={"responses": out})  # the first request left out

    batch = respx_mock.post("/batch").mock(side_effect=answers)
    erp = ErpClient("http://erp.test", "t", batch_max=20, batch_in_flight=1)
    try:
        left_out, refused, *rest = await burst(erp, 6)
    finally:
        await erp.close()
    assert batch.call_count == 1
    assert isinstance(left_out, ErpUnavailable), "an answer missing from the batch is retried, not taken as done"
    assert isinstance(refused, ErpRefused) and refused.code == "overlap"
    assert rest == [{"id": "s2"}, {"id": "s3"}, {"id": "s4"}, {"id": "s5"}]


@pytest.mark.parametrize(
    ("batch_answer", "expected"),
    [
        (httpx.Response(413, json={"detail": {"code": "too_large"}}), "alone"),
        (httpx.Response(405), "alone"),
        (httpx.Response(503, json={"detail": {"code": "down"}}), ErpUnavailable),
        (httpx.ConnectError("refused"), ErpUnavailable),
    ],
    ids=["too-large-sent-alone", "no-batch-sent-alone", "erp-down", "connection-refused"],
)
async def test_a_batch_that_fails_whole_fails_or_resends_each_create(batch_answer: Any, expected: Any) -> None:
    with respx.mock(using="httpx", base_url="http://erp.test/api/v1", assert_all_called=False) as mock:
        alone = mock.post("/activities").mock(side_effect=created)
        if isinstance(batch_answer, Exception):
            mock.post("/batch").mock(side_effect=batch_answer)
        else:
            mock.post("/batch").mock(return_value=batch_answer)
        erp = ErpClient("http://erp.test", "t", batch_max=20, batch_in_flight=1)
        try:
            results = await burst(erp, 5)
        finally:
            await erp.close()
    if expected == "alone":
        assert results == [{"id": f"s{i}"} for i in range(5)] and alone.call_count == 5
    else:
        assert all(isinstance(r, expected) for r in results) and alone.call_count == 0, results


async def test_batch_max_one_sends_every_create_alone() -> None:
    with respx.mock(using="httpx", base_url="http://erp.test/api/v1", assert_all_called=False) as mock:
        alone = mock.post("/activities").mock(side_effect=created)
        batch = mock.post("/batch").mock(return_value=httpx.Response(500))
        erp = ErpClient("http://erp.test", "t", batch_max=1, batch_in_flight=1)
        try:
            results = await burst(erp, 4)
        finally:
            await erp.close()
    assert results == [{"id": f"s{i}"} for i in range(4)]
    assert alone.call_count == 4 and batch.call_count == 0
