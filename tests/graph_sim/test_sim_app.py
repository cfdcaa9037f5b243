"""The simulator as an in-process ASGI app and as its own process (`python -m graph_sim`)."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import msal

from graph_sim.app import create_app
from graph_sim.config import SimConfig
from graph_sim.testing import SimServer


async def _token(c: httpx.AsyncClient, config: SimConfig) -> str:
    r = await c.post(
        f"/{config.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": config.client_id,
            "client_secret": config.client_secret,
            "scope": "https://graph.microsoft.com/.default",
        },
    )
    return str(r.json()["access_token"])


async def test_two_apps_in_one_process_do_not_share_state() -> None:
    one, two = create_app(), create_app(SimConfig(GRAPH_TENANT_ID="tenant-two"))
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=one), base_url="http://sim-one") as c1,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=two), base_url="http://sim-two") as c2,
    ):
        await c1.post("/_sim/users", json={"userPrincipalName": "a@contoso.example"})
        t1 = await _token(c1, one.state.sim.config)
        assert (await c2.post("/tenant-two/oauth2/v2.0/token", data={})).status_code == 400
        users1 = (await c1.get("/v1.0/users", headers={"Authorization": f"Bearer {t1}"})).json()["value"]
        assert [u["userPrincipalName"] for u in users1] == ["a@contoso.example"]
        # a token of one simulator is not valid on the other
        assert (await c2.get("/v1.0/users", headers={"Authorization": f"Bearer {t1}"})).status_code == 401
    assert one.state.sim is not two.state.sim
    assert two.state.sim.store.mailboxes == {}


def test_sim_server_starts_fast_and_on_a_given_port(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    with SimServer(port=port) as sim:
        assert time.perf_counter() - started < 1.0
        assert sim.base_url == f"https://127.0.0.1:{port}/v1.0"
        assert sim.authority == f"https://127.0.0.1:{port}/{sim.config.tenant_id}"
        r = httpx.get(
            f"{sim.authority}/v2.0/.well-known/openid-configuration", verify=sim.ssl_context(), trust_env=False
        )
        assert r.status_code == 200


def test_python_m_graph_sim_serves_https_and_writes_the_ca(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env: dict[str, Any] = {
        **os.environ,
        "GRAPH_SIM_PORT": str(port),
        "GRAPH_SIM_CA_PATH": "state/ca.pem",
        "GRAPH_CLIENT_SECRET": "from-env",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "graph_sim"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        ca = tmp_path / "state" / "ca.pem"
        deadline = time.time() + 15
        while True:
            try:
                if ca.exists():
                    tls = ssl.create_default_context(cafile=str(ca))
                    r = httpx.get(f"https://127.0.0.1:{port}/_sim/stats", verify=tls, trust_env=False)
                    if r.status_code == 200:
                        break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline, "simulator did not start"
            time.sleep(0.1)
        session = __import__("requests").Session()
        session.trust_env = False
        session.verify = str(ca)
        app = msal.ConfidentialClientApplication(
            "11111111-1111-1111-1111-111111111111",
            client_credential="from-env",
            authority=f"https://127.0.0.1:{port}/00000000-0000-0000-0000-0000000000aa",
            instance_discovery=False,
            http_client=session,
        )
        assert "access_token" in app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
        session.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


async def test_inspecting_a_mailbox_can_keep_only_the_items_whose_subject_starts_with_a_prefix() -> None:
    """The control API's `subject_prefix` (the benchmark's probe reads only its own run's items)."""
    app = create_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as c:
        user = (await c.post("/_sim/users", json={"userPrincipalName": "p@contoso.example"})).json()["id"]
        start = {"dateTime": "2030-01-07T09:00:00", "timeZone": "UTC"}
        end = {"dateTime": "2030-01-07T09:30:00", "timeZone": "UTC"}
        items = [{"subject": s, "start": start, "end": end} for s in ("run-a 1", "run-b 1", "run-a 2")]
        assert (await c.post(f"/_sim/users/{user}/events", json={"items": items, "notify": False})).status_code == 201
        picked = (await c.get(f"/_sim/users/{user}/events", params={"subject_prefix": "run-a"})).json()
        assert sorted(i["data"]["subject"] for i in picked) == ["run-a 1", "run-a 2"]
        assert len((await c.get(f"/_sim/users/{user}/events")).json()) == 3
