"""graph-webhook fixtures: the Graph simulator, the real broker, a bus collector, the real erp-connector."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from webhook_sim_control import WebhookSim
from webhook_support import Collector, Erp

from graph_sim.testing import SimServer
from shared.settings import CommonSettings
from tests.support.servers import serve


@pytest.fixture(scope="session")
def sim_server() -> Iterator[SimServer]:
    with SimServer() as server:
        yield server


@pytest.fixture
def sim(sim_server: SimServer) -> Iterator[WebhookSim]:
    control = WebhookSim(sim_server)
    control.reset()
    yield control
    control.http.close()


@pytest.fixture
async def collector(common_settings: CommonSettings) -> AsyncIterator[Collector]:
    c = Collector(common_settings)
    await c.start()
    yield c
    await c.bus.close(drain_timeout=1)


@pytest.fixture
async def erp(common_settings: CommonSettings, tmp_path: Any) -> AsyncIterator[Erp]:
    from erp_connector.app import create_app as create_erp_app
    from erp_connector.settings import ErpConnectorSettings

    settings = ErpConnectorSettings(
        **common_settings.model_dump(),
        erp_database_url=f"sqlite:///{tmp_path}/erp.db",
        erp_outbox_relay_interval_s=0.2,
    )
    async with serve(create_erp_app(settings)) as url:
        client = Erp(url, settings.erp_api_token.get_secret_value())
        yield client
        await client.http.aclose()
