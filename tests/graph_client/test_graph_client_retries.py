"""GraphClient behaviour the simulator can't produce on demand, checked against a mocked transport (respx).

Graph rules proven here:
- 429/503 honour Retry-After, decimal seconds allowed: https://learn.microsoft.com/graph/throttling
- error bodies `{"error": {"code", "message", "innerError"}}`: https://learn.microsoft.com/graph/errors
- `$batch` holds at most 20 requests: https://learn.microsoft.com/graph/json-batching
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import respx

from shared.graph import (
    GraphAuthError,
    GraphBadRequest,
    GraphClient,
    GraphError,
    GraphNotFound,
    GraphPreconditionFailed,
    GraphSyncStateNotFound,
    GraphThrottled,
    GraphUnavailable,
)
from shared.graph.backoff import parse_retry_after
from shared.settings import GraphSettings

BASE = "https://graph.test/v1.0"
# Mocked at httpx's level: the Graph client's transport is not httpcore's (shared.transport, ADR 0057).
graph_api = respx.MockRouter(assert_all_called=False, using="httpx")


class FakeTokens:
    """Hands out numbered tokens; `invalidate` makes the next one new."""

    def __init__(self) -> None:
        self.n = 1
        self.invalidated: list[str] = []

    async def token(self) -> str:
        return f"tok-{self.n}"

    async def invalidate(self, token: str) -> None:
        self.invalidated.append(token)
        self.n += 1


def _settings(**kw: object) -> GraphSettings:
    values: dict[str, object] = {
        "graph_base_url": BASE,
        "graph_ca_bundle": None,
        "graph_max_attempts": 3,
        "graph_max_retry_after_s": 5.0,
    }
    values.update(kw)
    return GraphSettings(**values)  # type: ignore[arg-type]


def _graph_error(status: int, code: str, message: str = "boom", **headers: str) -> httpx.Response:
    body = {"error": {"code": code, "message": message, "innerError": {"request-id": "rid-1", "date": "x"}}}
    return httpx.Response(status, json=body, headers=headers)


@pytest.fixture
def tokens() -> FakeTokens:
    return FakeTokens()


@graph_api
async def test_429_with_decimal_retry_after_is_ridden_out(tokens: FakeTokens) -> None:
    route = graph_api.get(f"{BASE}/users/u1/events").mock(
        side_effect=[_graph_error(429, "TooManyRequests", **{"Retry-After": "0.3"}), httpx.Response(200, json={})]
    )
    async with GraphClient(_settings(), tokens) as graph:
        start = time.monotonic()
        assert await graph.get_json("/users/u1/events") == {}
        waited = time.monotonic() - start
    assert route.call_count == 2
    assert waited >= 0.3, "never retry earlier than Graph asked"


@graph_api
async def test_retry_after_as_http_date_is_honoured(tokens: FakeTokens) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    assert 0.5 < (parse_retry_after(when) or 0) <= 2.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("soon") is None


@graph_api
async def test_retry_after_beyond_the_cap_is_not_waited_out_in_process(tokens: FakeTokens) -> None:
    route = graph_api.get(f"{BASE}/users/u1/events").mock(
        return_value=_graph_error(429, "ApplicationThrottled", **{"Retry-After": "120"})
    )
    async with GraphClient(_settings(graph_max_retry_after_s=5), tokens) as graph:
        with pytest.raises(GraphThrottled) as caught:
            await graph.get_json("/users/u1/events")
    assert route.call_count == 1
    assert caught.value.retry_after == 120
    assert caught.value.code == "ApplicationThrottled"


@graph_api
async def test_503_without_retry_after_backs_off_then_gives_up_as_unavailable(tokens: FakeTokens) -> None:
    route = graph_api.get(f"{BASE}/users/u1/contacts").mock(return_value=_graph_error(503, "serviceNotAvailable"))
    async with GraphClient(_settings(graph_max_attempts=2), tokens) as graph:
        with pytest.raises(GraphUnavailable) as caught:
            await graph.get_json("/users/u1/contacts")
    assert route.call_count == 2
    assert caught.value.status == 503 and caught.value.request_id == "rid-1"


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "BadRequest", GraphBadRequest),
        (403, "ErrorAccessDenied", GraphAuthError),
        (404, "ErrorItemNotFound", GraphNotFound),
        (410, "SyncStateNotFound", GraphSyncStateNotFound),
        (412, "ErrorIrresolvableConflict", GraphPreconditionFailed),
        (409, "ErrorConflict", GraphError),
    ],
)
@graph_api
async def test_graph_error_bodies_map_to_exceptions(
    tokens: FakeTokens, status: int, code: str, cls: type[GraphError]
) -> None:
    graph_api.patch(f"{BASE}/users/u1/events/e1").mock(return_value=_graph_error(status, code, "nope"))
    async with GraphClient(_settings(), tokens) as graph:
        with pytest.raises(cls) as caught:
            await graph.patch_json("/users/u1/events/e1", {"subject": "x"})
    err = caught.value
    assert (err.status, err.code, err.message, err.request_id) == (status, code, "nope", "rid-1")
    assert "/users/u1/events/e1" in str(err)


@graph_api
async def test_401_gets_one_fresh_token_then_fails_as_auth_error(tokens: FakeTokens) -> None:
    route = graph_api.get(f"{BASE}/users/u1").mock(return_value=_graph_error(401, "InvalidAuthenticationToken"))
    async with GraphClient(_settings(), tokens) as graph:
        with pytest.raises(GraphAuthError):
            await graph.get_json("/users/u1")
    assert route.call_count == 2
    assert tokens.invalidated == ["tok-1"]
    assert [c.request.headers["Authorization"] for c in route.calls] == ["Bearer tok-1", "Bearer tok-2"]


@graph_api
async def test_network_errors_are_retried_for_reads_but_not_for_creates(tokens: FakeTokens) -> None:
    get = graph_api.get(f"{BASE}/users/u1/events").mock(
        side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200, json={"value": []})]
    )
    post = graph_api.post(f"{BASE}/users/u1/events").mock(side_effect=httpx.ReadTimeout("slow"))
    async with GraphClient(_settings(), tokens) as graph:
        assert await graph.get_json("/users/u1/events") == {"value": []}
        with pytest.raises(GraphUnavailable, match="may have happened"):
            await graph.post_json("/users/u1/events", {"subject": "x"})
    assert get.call_count == 2
    assert post.call_count == 1, "a POST that may have reached Graph is not sent twice"


@graph_api
async def test_connect_errors_are_retried_even_for_creates(tokens: FakeTokens) -> None:
    post = graph_api.post(f"{BASE}/users/u1/events").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(201, json={"id": "e1"})]
    )
    async with GraphClient(_settings(), tokens) as graph:
        assert await graph.post_json("/users/u1/events", {"subject": "x"}) == {"id": "e1"}
    assert post.call_count == 2


@graph_api
async def test_at_most_four_requests_run_at_once_per_mailbox_and_mailboxes_run_in_parallel(tokens: FakeTokens) -> None:
    """Outlook allows 4 concurrent requests per app and mailbox
    (https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits)."""
    inflight: dict[str, int] = {}
    peak: dict[str, int] = {}

    async def slow(request: httpx.Request) -> httpx.Response:
        mailbox = request.url.path.split("/")[3].lower()
        inflight[mailbox] = inflight.get(mailbox, 0) + 1
        peak[mailbox] = max(peak.get(mailbox, 0), inflight[mailbox])
        await asyncio.sleep(0.02)
        inflight[mailbox] -= 1
        return httpx.Response(200, json={"value": []})

    graph_api.get(url__regex=rf"{BASE}/users/[^/]+/events").mock(side_effect=slow)
    async with GraphClient(_settings(), tokens) as graph:
        start = time.monotonic()
        await asyncio.gather(
            *(graph.get_json(f"/users/{box}/events") for box in ("a", "b", "c") for _ in range(20)),
            *(graph.get_json("/users/A/events", mailbox="a") for _ in range(4)),
        )
        elapsed = time.monotonic() - start
    assert peak == {"a": 4, "b": 4, "c": 4}, "mailbox keys are case-insensitive and capped at 4"
    assert elapsed < 0.02 * 24 / 4 * 2, "different mailboxes do not wait for each other"


@graph_api
async def test_a_429_holds_back_the_mailboxs_other_requests(tokens: FakeTokens) -> None:
    """Graph asked this mailbox to wait: requests queued behind it wait too instead of drawing more 429s."""
    calls: list[float] = []
    start = time.monotonic()

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic() - start)
        if len(calls) == 1:
            return _graph_error(429, "ApplicationThrottled", **{"Retry-After": "0.3"})
        return httpx.Response(200, json={})

    graph_api.get(f"{BASE}/users/u1/events").mock(side_effect=answer)
    async with GraphClient(_settings(graph_max_concurrency_per_mailbox=1), tokens) as graph:
        await asyncio.gather(*(graph.get_json("/users/u1/events") for _ in range(3)))
    assert len(calls) == 4
    assert all(t >= 0.3 for t in calls[1:])


@graph_api
async def test_immutable_id_preference_is_sent_and_merged(tokens: FakeTokens) -> None:
    route = graph_api.get(f"{BASE}/users/u1/events").mock(return_value=httpx.Response(200, json={}))
    async with GraphClient(_settings(), tokens) as graph:
        await graph.get_json("/users/u1/events", headers={"Prefer": 'outlook.timezone="UTC"'})
        await graph.get_json("/users/u1/events", immutable_ids=False)
    first, second = (c.request.headers for c in route.calls)
    assert first["Prefer"] == 'outlook.timezone="UTC", IdType="ImmutableId"'
    assert "Prefer" not in second
    assert first["client-request-id"] != second["client-request-id"]


async def test_absolute_urls_must_point_at_graph(tokens: FakeTokens) -> None:
    graph = GraphClient(_settings(), tokens)
    assert graph.url(f"{BASE}/users/u1/events/delta?$deltatoken=x") == f"{BASE}/users/u1/events/delta?$deltatoken=x"
    assert graph.url("users/u1") == f"{BASE}/users/u1"
    with pytest.raises(ValueError, match="not the Graph base URL"):
        graph.url("https://evil.example/v1.0/users")


@graph_api
async def test_batch_chunks_by_20_keeps_order_and_retries_throttled_subrequests(tokens: FakeTokens) -> None:
    sent: list[list[str]] = []
    throttled_once: set[str] = set()

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        ids = [r["id"] for r in body["requests"]]
        sent.append(ids)
        assert len(ids) <= 20
        responses = []
        for r in body["requests"]:
            assert r["headers"]["Prefer"] == 'IdType="ImmutableId"'
            if r["id"] == "7" and "7" not in throttled_once:
                throttled_once.add("7")
                responses.append({"id": "7", "status": 429, "headers": {"Retry-After": "0.1"}, "body": {}})
            else:
                responses.append({"id": r["id"], "status": 200, "body": {"url": r["url"]}})
        return httpx.Response(200, json={"responses": list(reversed(responses))})

    route = graph_api.post(f"{BASE}/$batch").mock(side_effect=answer)
    requests = [{"method": "GET", "url": f"/users/u1/events/e{i}"} for i in range(45)]
    async with GraphClient(_settings(), tokens) as graph:
        results = await graph.batch(requests, mailbox="u1")
    assert route.call_count == 4  # 20 + 20 + 5, and the one throttled sub-request again
    assert [len(s) for s in sent] == [20, 1, 20, 5]
    assert [r["body"]["url"] for r in results] == [f"/users/u1/events/e{i}" for i in range(45)]
    assert all(r["status"] == 200 for r in results)


async def test_batch_refuses_dependencies_across_chunks(tokens: FakeTokens) -> None:
    requests: list[dict[str, Any]] = [{"id": str(i), "method": "GET", "url": "/users/u1"} for i in range(21)]
    requests[20]["dependsOn"] = ["1"]
    async with GraphClient(_settings(), tokens) as graph:
        with pytest.raises(ValueError, match="outside its chunk"):
            await graph.batch(requests)
