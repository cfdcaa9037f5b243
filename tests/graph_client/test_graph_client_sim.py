"""GraphClient and TokenProvider against the Graph simulator, with real msal and real TLS.

Graph rules proven here (cited from microsoft-graph-docs-contrib):
- 429 + Retry-After, ride it out: https://learn.microsoft.com/graph/throttling
- at most 4 concurrent requests per app and mailbox:
  https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits
- delta paging with @odata.nextLink / @odata.deltaLink, 410 for an unknown token:
  https://learn.microsoft.com/graph/delta-query-overview
- immutable ids with `Prefer: IdType="ImmutableId"`: https://learn.microsoft.com/graph/outlook-immutable-id
"""

from __future__ import annotations

import asyncio
import time

import pytest
import requests
from graph_client_sim_control import SimControl
from pydantic import SecretStr

from shared.graph import (
    GraphAuthError,
    GraphClient,
    GraphNotFound,
    GraphPreconditionFailed,
    GraphSyncStateNotFound,
    GraphThrottled,
    GraphUnavailable,
    TokenProvider,
)
from shared.graph.auth import token_http_client
from shared.settings import GraphSettings

TOKEN_PATH = "POST /{tenant}/oauth2/v2.0/token"


def _token_requests(sim: SimControl) -> int:
    return sum(sim.stats()["requests"].get(TOKEN_PATH, {}).values())


async def test_token_is_acquired_once_and_reused_with_requests_ca_bundle_set(
    sim: SimControl, graph_settings: GraphSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REQUESTS_CA_BUNDLE (set on these machines) must not replace our CA for msal's token calls."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    sim.add_user("ann@contoso.example")
    tokens = TokenProvider(graph_settings)
    async with GraphClient(graph_settings, tokens) as graph:
        users = await asyncio.gather(*(graph.find_user("ann@contoso.example") for _ in range(20)))
        await graph.get_json("/users")
    assert {u["mail"] for u in users} == {"ann@contoso.example"}
    assert tokens.acquired == 1
    assert _token_requests(sim) == 1, "msal must not call the token endpoint per Graph request"


def test_the_requests_ca_bundle_trap_is_real(graph_settings: GraphSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Control: a requests session that trusts the environment ignores its own `verify`; ours doesn't."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    discovery = (
        f"{graph_settings.graph_authority_host}/{graph_settings.graph_tenant_id}/v2.0/.well-known/openid-configuration"
    )
    naive = requests.Session()
    naive.verify = graph_settings.graph_ca_bundle  # type: ignore[assignment]
    with pytest.raises(requests.exceptions.SSLError):
        naive.get(discovery, timeout=5)
    assert token_http_client(graph_settings).get(discovery, timeout=5).status_code == 200


async def test_token_is_not_fetched_on_the_event_loop(graph_settings: GraphSettings, sim: SimControl) -> None:
    """msal blocks; it runs in a worker thread, so a ticker on the loop keeps ticking meanwhile."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    try:
        await TokenProvider(graph_settings).token()
    finally:
        task.cancel()
    assert ticks > 1


async def test_bad_secret_is_an_auth_error(graph_settings: GraphSettings, sim: SimControl) -> None:
    settings = graph_settings.model_copy(update={"graph_client_secret": SecretStr("wrong")})
    async with GraphClient(settings) as graph:
        with pytest.raises(GraphAuthError) as caught:
            await graph.get_json("/users")
    assert caught.value.code == "invalid_client"
    assert "wrong" not in str(caught.value)


async def test_429_with_retry_after_is_ridden_out(graph_settings: GraphSettings, sim: SimControl) -> None:
    user = sim.add_user("bob@contoso.example")
    sim.faults(force_429={"count": 2, "retry_after": 0.25, "user": user["id"]})
    async with GraphClient(graph_settings) as graph:
        await graph.tokens.token()
        start = time.monotonic()
        page = await graph.get_json(f"/users/{user['id']}/events")
        waited = time.monotonic() - start
    assert page["value"] == []
    assert waited >= 0.5, "two Retry-After waits of 0.25 s"
    assert sim.stats()["by_status"].get("429") == 2


async def test_retry_after_beyond_the_cap_surfaces_as_throttled(graph_settings: GraphSettings, sim: SimControl) -> None:
    user = sim.add_user("bob@contoso.example")
    sim.faults(force_429={"count": 1, "retry_after": 30})
    async with GraphClient(graph_settings) as graph:
        with pytest.raises(GraphThrottled) as caught:
            await graph.get_json(f"/users/{user['id']}/events")
    assert caught.value.retry_after == 30


async def test_503_burst_longer_than_the_attempts_is_unavailable(
    graph_settings: GraphSettings, sim: SimControl
) -> None:
    user = sim.add_user("bob@contoso.example")
    sim.faults(force_503={"count": 10, "retry_after": 0.05})
    async with GraphClient(graph_settings) as graph:
        with pytest.raises(GraphUnavailable) as caught:
            await graph.get_json(f"/users/{user['id']}/contacts")
    assert caught.value.status == 503
    assert sim.stats()["by_status"]["503"] == graph_settings.graph_max_attempts


async def test_forty_parallel_calls_to_one_mailbox_draw_no_429(graph_settings: GraphSettings, sim: SimControl) -> None:
    """The simulator models Outlook's limit of 4 concurrent requests per mailbox; our cap keeps under it.

    The peak concurrency itself is measured in test_graph_client_retries (the simulator applies its
    added latency before taking a concurrency slot, so it can't show a 429 for a client without the cap).
    """
    user = sim.add_user("cap@contoso.example")
    sim.faults(throttling={"enabled": True}, latency_ms=30)
    async with GraphClient(graph_settings) as graph:
        await asyncio.gather(*(graph.get_json(f"/users/{user['id']}/contacts") for _ in range(40)))
    assert "429" not in sim.stats()["by_status"]


async def test_delta_pages_end_in_a_delta_link_and_410_restarts(graph_settings: GraphSettings, sim: SimControl) -> None:
    user = sim.add_user("dee@contoso.example")
    sim.seed(user["id"], "contacts", [{"givenName": f"C{i}", "surname": "X"} for i in range(25)])
    async with GraphClient(graph_settings) as graph:
        pages = [p async for p in graph.delta(f"/users/{user['id']}/contacts/delta", max_page_size=10)]
        assert [len(items) for items, _ in pages] == [10, 10, 5]
        assert [link is None for _, link in pages] == [True, True, False]
        delta_link = pages[-1][1]
        assert delta_link is not None and delta_link.startswith(graph_settings.graph_base_url)

        sim.seed(user["id"], "contacts", [{"givenName": "New", "surname": "One"}])
        again = [p async for p in graph.delta(delta_link)]
        assert [item["givenName"] for item in again[0][0]] == ["New"]

        sim.expire_delta(user["id"])
        with pytest.raises(GraphSyncStateNotFound):
            async for _ in graph.delta(again[-1][1] or ""):
                pass


async def test_errors_map_from_graph_bodies(graph_settings: GraphSettings, sim: SimControl) -> None:
    user = sim.add_user("eve@contoso.example")
    base = f"/users/{user['id']}/contacts"
    async with GraphClient(graph_settings) as graph:
        created = await graph.post_json(base, {"givenName": "Ann", "surname": "Lee"})
        assert created["id"].startswith("AAkALg"), "immutable id by default"
        with pytest.raises(GraphNotFound) as missing:
            await graph.get_json(f"{base}/AAkALgnothere")
        assert missing.value.code == "ErrorItemNotFound" and missing.value.request_id
        await graph.patch_json(f"{base}/{created['id']}", {"jobTitle": "CFO"})
        with pytest.raises(GraphPreconditionFailed):
            await graph.patch_json(
                f"{base}/{created['id']}", {"jobTitle": "CEO"}, headers={"If-Match": created["@odata.etag"]}
            )
        with pytest.raises(GraphNotFound):
            await graph.find_user("nobody@contoso.example")
        await graph.delete(f"{base}/{created['id']}")
        await graph.delete(f"{base}/{created['id']}", missing_ok=True)


async def test_batch_runs_subrequests_in_order(graph_settings: GraphSettings, sim: SimControl) -> None:
    user = sim.add_user("fay@contoso.example")
    base = f"/users/{user['id']}/contacts"
    async with GraphClient(graph_settings) as graph:
        results = await graph.batch(
            [{"method": "POST", "url": base, "body": {"givenName": f"B{i}", "surname": "Z"}} for i in range(3)]
            + [{"method": "GET", "url": f"{base}/AAkALgmissing"}],
            mailbox=user["id"],
        )
    assert [r["status"] for r in results] == [201, 201, 201, 404]
    assert [r["body"]["givenName"] for r in results[:3]] == ["B0", "B1", "B2"]
