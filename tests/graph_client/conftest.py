"""The Graph simulator over TLS (one per session) and GraphSettings pointing at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from graph_client_sim_control import SimControl

from graph_sim.testing import SimServer
from shared.settings import GraphSettings


@pytest.fixture(scope="session")
def sim_server() -> Iterator[SimServer]:
    with SimServer() as server:
        yield server


@pytest.fixture
def sim(sim_server: SimServer) -> Iterator[SimControl]:
    control = SimControl(sim_server)
    control.reset()
    yield control
    control.http.close()


@pytest.fixture
def graph_settings(sim_server: SimServer) -> GraphSettings:
    return GraphSettings(
        graph_base_url=sim_server.base_url,
        graph_authority_host=sim_server.root_url,
        graph_ca_bundle=sim_server.ca_path,
        graph_tenant_id=sim_server.config.tenant_id,
        graph_client_id=sim_server.config.client_id,
        graph_client_secret=sim_server.config.client_secret,  # type: ignore[arg-type]
        graph_max_attempts=4,
        graph_max_retry_after_s=5.0,
    )
