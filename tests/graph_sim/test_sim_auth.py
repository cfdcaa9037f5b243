"""Identity: msal client credentials over TLS, AADSTS errors, Graph's 401/403.

Docs: https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow,
https://learn.microsoft.com/graph/errors, https://learn.microsoft.com/graph/auth-v2-service.
"""

from __future__ import annotations

import os
import time
from typing import Any

import certifi
import httpx
import jwt
import msal
import pytest
import requests
from graph_payloads import GRAPH_SCOPE

from graph_sim.testing import SimServer

SYSTEM_BUNDLE = (
    "/etc/ssl/certs/ca-certificates.crt" if os.path.exists("/etc/ssl/certs/ca-certificates.crt") else certifi.where()
)


def _msal(server: SimServer, secret: str, http_client: Any) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        server.config.client_id,
        client_credential=secret,
        authority=server.authority,
        instance_discovery=False,
        http_client=http_client,
    )


def test_msal_gets_a_token_when_requests_ca_bundle_points_elsewhere(server: SimServer, monkeypatch: Any) -> None:
    # The machine's REQUESTS_CA_BUNDLE overrides `verify=` inside requests; a Session with
    # trust_env=False and verify=<simulator CA> is immune to it.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", SYSTEM_BUNDLE)
    session = requests.Session()
    session.trust_env = False
    session.verify = server.ca_path
    result = _msal(server, server.config.client_secret, session).acquire_token_for_client(GRAPH_SCOPE)
    assert result.get("token_type") == "Bearer", result
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["tid"] == server.config.tenant_id
    assert claims["appid"] == server.config.client_id
    assert "Calendars.ReadWrite" in claims["roles"]
    assert claims["exp"] > time.time() + 3000
    # and the token works on Graph, over TLS verified against the CA file
    r = httpx.get(
        f"{server.base_url}/users",
        verify=server.ssl_context(),
        trust_env=False,
        headers={"Authorization": f"Bearer {result['access_token']}"},
    )
    assert r.status_code == 200


def test_msal_with_plain_verify_is_broken_by_requests_ca_bundle(server: SimServer, monkeypatch: Any) -> None:
    """The trap the product must avoid: msal's own verify= loses against REQUESTS_CA_BUNDLE."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", SYSTEM_BUNDLE)
    with pytest.raises((requests.exceptions.SSLError, ValueError)):
        msal.ConfidentialClientApplication(
            server.config.client_id,
            client_credential=server.config.client_secret,
            authority=server.authority,
            instance_discovery=False,
            verify=server.ssl_context(),
        ).acquire_token_for_client(GRAPH_SCOPE)


def test_wrong_secret_is_aadsts_invalid_client(server: SimServer) -> None:
    result = _msal(server, "wrong", server.requests_session()).acquire_token_for_client(GRAPH_SCOPE)
    assert result["error"] == "invalid_client"
    assert 7000215 in result["error_codes"]
    r = httpx.post(
        f"{server.authority}/oauth2/v2.0/token",
        verify=server.ssl_context(),
        trust_env=False,
        data={
            "grant_type": "client_credentials",
            "client_id": server.config.client_id,
            "client_secret": "wrong",
            "scope": GRAPH_SCOPE[0],
        },
    )
    assert r.status_code == 401
    assert r.json()["error_description"].startswith("AADSTS7000215")


def test_unknown_client_and_bad_scope(server: SimServer) -> None:
    url = f"{server.authority}/oauth2/v2.0/token"
    r = httpx.post(
        url,
        verify=server.ssl_context(),
        trust_env=False,
        data={"grant_type": "client_credentials", "client_id": "nope", "client_secret": "x", "scope": GRAPH_SCOPE[0]},
    )
    assert (r.status_code, r.json()["error"]) == (400, "unauthorized_client")
    r = httpx.post(
        url,
        verify=server.ssl_context(),
        trust_env=False,
        data={
            "grant_type": "client_credentials",
            "client_id": server.config.client_id,
            "client_secret": server.config.client_secret,
            "scope": "Calendars.Read",
        },
    )
    assert (r.status_code, r.json()["error"]) == (400, "invalid_scope")


def test_openid_configuration_points_at_this_server(server: SimServer) -> None:
    doc = httpx.get(
        f"{server.authority}/v2.0/.well-known/openid-configuration", verify=server.ssl_context(), trust_env=False
    ).json()
    assert doc["token_endpoint"] == f"{server.authority}/oauth2/v2.0/token"
    assert doc["issuer"] == f"{server.authority}/v2.0"


@pytest.mark.parametrize("header", [None, "Bearer not-a-jwt", "Basic abc"])
def test_graph_without_valid_token_is_401(server: SimServer, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    r = httpx.get(f"{server.base_url}/users", verify=server.ssl_context(), trust_env=False, headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_expired_token_is_401(server: SimServer) -> None:
    now = int(time.time())
    expired = jwt.encode(
        {
            "aud": "https://graph.microsoft.com",
            "exp": now - 10,
            "appid": server.config.client_id,
            "tid": server.config.tenant_id,
            "roles": [],
        },
        server.sim.auth.key,
        algorithm="HS256",
    )
    r = httpx.get(
        f"{server.base_url}/users",
        verify=server.ssl_context(),
        trust_env=False,
        headers={"Authorization": f"Bearer {expired}"},
    )
    assert r.status_code == 401
    assert "expired" in r.json()["error"]["message"]


def test_missing_application_permission_is_403(server: SimServer, user: dict[str, Any]) -> None:
    limited = jwt.encode(
        {
            "aud": "https://graph.microsoft.com",
            "exp": int(time.time()) + 60,
            "appid": server.config.client_id,
            "tid": server.config.tenant_id,
            "roles": ["User.Read.All"],
        },
        server.sim.auth.key,
        algorithm="HS256",
    )
    r = httpx.get(
        f"{server.base_url}/users/{user['id']}/events",
        verify=server.ssl_context(),
        trust_env=False,
        headers={"Authorization": f"Bearer {limited}"},
    )
    assert (r.status_code, r.json()["error"]["code"]) == (403, "ErrorAccessDenied")


def test_rotated_secret_and_revoked_app(server: SimServer, control: httpx.Client, token: str) -> None:
    cid = server.config.client_id
    control.post(f"/apps/{cid}", json={"client_secret": "rotated", "revoked": True})
    try:
        r = httpx.get(
            f"{server.base_url}/users",
            verify=server.ssl_context(),
            trust_env=False,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 401
        old = _msal(server, server.config.client_secret, server.requests_session()).acquire_token_for_client(
            GRAPH_SCOPE
        )
        assert old["error"] == "invalid_client"
    finally:
        control.post(f"/apps/{cid}", json={"client_secret": server.config.client_secret, "revoked": False})


def test_users_by_id_and_upn(client: httpx.Client, user: dict[str, Any]) -> None:
    by_id = client.get(f"/users/{user['id']}").json()
    by_upn = client.get("/users/ADELE@contoso.example").json()
    assert by_id["id"] == by_upn["id"] == user["id"]
    assert {"id", "displayName", "mail", "userPrincipalName", "businessPhones"} <= by_id.keys()
    r = client.get("/users/nobody@contoso.example")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "Request_ResourceNotFound")
    r = client.get("/users/nobody@contoso.example/events")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "ErrorInvalidUser")
    listed = client.get("/users", params={"$filter": "mail eq 'adele@contoso.example'"}).json()["value"]
    assert [u["id"] for u in listed] == [user["id"]]


def test_me_is_rejected_for_app_only_tokens(client: httpx.Client) -> None:
    assert client.get("/me/events").status_code == 400


def test_disabled_mailbox(client: httpx.Client, control: httpx.Client, user: dict[str, Any]) -> None:
    control.patch(f"/users/{user['id']}", json={"mailboxEnabled": False})
    r = client.get(f"/users/{user['id']}/events")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "MailboxNotEnabledForRESTAPI")
    assert client.get(f"/users/{user['id']}").status_code == 200
