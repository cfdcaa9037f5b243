"""Fixtures: one simulator over TLS for the session (reset before each test), a token from real msal,
an httpx client trusting the simulator's CA, and a loopback webhook receiver."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import msal
import pytest
from graph_payloads import GRAPH_SCOPE
from webhook_receiver import Webhook

from graph_sim.config import SimConfig
from graph_sim.testing import SimServer


def make_config(**overrides: Any) -> SimConfig:
    base: dict[str, Any] = {
        "delivery_backoff_seconds": 0.05,
        "notification_batch_window_seconds": 0.05,
        "delivery_timeout_seconds": 1.0,
        "lifecycle_tick_seconds": 0.05,
    }
    base.update(overrides)
    return SimConfig(**base)


@pytest.fixture(scope="session")
def server() -> Iterator[SimServer]:
    with SimServer(make_config()) as sim:
        yield sim


@pytest.fixture(autouse=True)
def _reset(server: SimServer) -> None:
    async def reset() -> None:
        server.sim.reset()

    server.call(reset)


def acquire_token(sim: SimServer) -> str:
    app = msal.ConfidentialClientApplication(
        sim.config.client_id,
        client_credential=sim.config.client_secret,
        authority=sim.authority,
        instance_discovery=False,
        http_client=sim.requests_session(),
    )
    result = app.acquire_token_for_client(GRAPH_SCOPE)
    assert "access_token" in result, result
    return str(result["access_token"])


@pytest.fixture(scope="session")
def token(server: SimServer) -> str:
    return acquire_token(server)


@pytest.fixture
def client(server: SimServer, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.base_url,
        verify=server.ssl_context(),
        trust_env=False,
        headers={"Authorization": f"Bearer {token}"},
        timeout=20,
    ) as c:
        yield c


@pytest.fixture
def control(server: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{server.root_url}/_sim", verify=server.ssl_context(), trust_env=False, timeout=30
    ) as c:
        yield c


@pytest.fixture
def user(control: httpx.Client) -> dict[str, Any]:
    r = control.post(
        "/users",
        json={
            "userPrincipalName": "adele@contoso.example",
            "displayName": "Adele Vance",
            "mail": "adele@contoso.example",
        },
    )
    assert r.status_code == 201
    return dict(r.json())


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()
