"""Access to the ops API and the console: token or session, CSRF on forms, never data for anonymous."""

from __future__ import annotations

import httpx

from tests.ops.ops_support import ADMIN, console, csrf_of, login
from tests.support.system import OPS_TOKEN, System

API_READS = [
    "/api/v1/ops/users",
    "/api/v1/ops/users/state",
    "/api/v1/ops/users/REP01",
    "/api/v1/ops/journal",
    "/api/v1/ops/anomalies",
    "/api/v1/ops/reconcile/runs",
    "/api/v1/ops/imported",
    "/api/v1/ops/queues",
    "/api/v1/ops/dead-letters/sync-core",
    "/api/v1/ops/subscriptions",
]
API_WRITES = [
    ("PATCH", "/api/v1/ops/users/REP01", {"sync_calls": False}),
    ("POST", "/api/v1/ops/users/REP01/enable", None),
    ("POST", "/api/v1/ops/users/REP01/disable", None),
    ("POST", "/api/v1/ops/users/REP01/test-connection", None),
    ("POST", "/api/v1/ops/users/REP01/force", {"direction": "erp_to_outlook"}),
    ("POST", "/api/v1/ops/users/REP01/reconcile", None),
    ("POST", "/api/v1/ops/anomalies/1/repair", {}),
    ("POST", "/api/v1/ops/dead-letters/sync-core/replay-all", None),
    ("DELETE", "/api/v1/ops/dead-letters/sync-core", None),
    ("POST", "/api/v1/ops/subscriptions/REP01/renew", None),
]
PAGES = [
    "/admin/",
    "/admin/users",
    "/admin/users/REP01",
    "/admin/journal",
    "/admin/anomalies",
    "/admin/imported",
    "/admin/queues",
]


async def test_anonymous_or_wrong_token_gets_401_and_no_data(ops_system: System) -> None:
    async with httpx.AsyncClient(base_url=ops_system.sync_url) as anon:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {OPS_TOKEN}"}):
            for path in API_READS:
                r = await anon.get(path, headers=headers)
                assert r.status_code == 401, (path, r.status_code)
                assert "ana.silva" not in r.text
            for method, path, body in API_WRITES:
                r = await anon.request(method, path, json=body, headers=headers)
                assert r.status_code == 401, (method, path, r.status_code)
    rep = await ops_system.erp_write("GET", "representatives/REP01")
    assert rep["sync_enabled"] is True and rep["sync_calls"] is True, "nothing was changed by the refused calls"


async def test_pages_redirect_anonymous_visitors_to_login(ops_system: System) -> None:
    async with httpx.AsyncClient(base_url=ops_system.sync_url) as anon:
        for path in PAGES:
            r = await anon.get(path)
            assert r.status_code == 303, path
            assert r.headers["location"].startswith("/admin/login?next=")
            assert "ana.silva" not in r.text
        # Live parts ask with X-Fragment: they get 401, not a login page.
        r = await anon.get("/admin/journal", headers={"X-Fragment": "1"})
        assert r.status_code == 401
    # A forged or foreign session cookie is no session.
    async with httpx.AsyncClient(
        base_url=ops_system.sync_url, cookies={"sync_admin_session": "forged.value"}
    ) as forged:
        r = await forged.get("/admin/users")
        assert r.status_code == 303
    async with httpx.AsyncClient(base_url=ops_system.sync_url) as anon:
        # Forms are refused without a session.
        r = await anon.post("/admin/users/REP01/settings", data={"sync_calls": "on"})
        assert r.status_code == 303 and r.headers["location"].startswith("/admin/login")


async def test_login_with_hashed_password_sets_a_signed_session(ops_system: System) -> None:
    async with httpx.AsyncClient(base_url=ops_system.sync_url) as client:
        r = await login(client, ADMIN, "wrong password")
        assert r.status_code == 401 and "Wrong user name or password" in r.text
        r = await login(client, "nobody", "admin")
        assert r.status_code == 401
        page = await client.get("/admin/login")
        r = await client.post("/admin/login", data={"username": ADMIN, "password": "admin", "csrf_token": "forged"})
        assert r.status_code == 400, "the login form has its own CSRF nonce"
        r = await login(client)
        assert r.status_code == 303 and r.headers["location"] == "/admin/users"
        cookie = r.headers["set-cookie"]
        assert "sync_admin_session=" in cookie and "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
        page = await client.get("/admin/users")
        assert page.status_code == 200 and "ana.silva@contoso.example" in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        assert page.headers["x-frame-options"] == "DENY"
        # Logging out needs the CSRF token too, and ends the session.
        r = await client.post("/admin/logout", data={})
        assert r.status_code == 403
        r = await client.post("/admin/logout", data={"csrf_token": csrf_of(page.text)})
        assert r.status_code == 303
        assert (await client.get("/admin/users")).status_code == 303


async def test_forms_without_the_session_csrf_token_are_refused(ops_system: System) -> None:
    async with console(ops_system) as client:
        for path, data in (
            ("/admin/users/REP01/settings", {"sync_calls": "on"}),
            ("/admin/users/REP01/force", {"direction": "erp_to_outlook"}),
            ("/admin/queues/sync-core/replay-all", {}),
        ):
            r = await client.post(path, data=data)
            assert r.status_code == 403, path
            r = await client.post(path, data={**data, "csrf_token": "not the session's"})
            assert r.status_code == 403, path
    rep = await ops_system.erp_write("GET", "representatives/REP01")
    assert rep["sync_enabled"] is True and rep["sync_tasks"] is True


async def test_user_text_is_escaped_on_every_page(ops_system: System, ops: httpx.AsyncClient) -> None:
    hostile = '<script>alert("x")</script>'
    await ops_system.erp_write(
        "POST",
        "representatives",
        {"code": "XSS", "name": hostile, "email": "xss@contoso.example", "sales_role": True, "sync_enabled": False},
    )
    async with console(ops_system) as client:
        for path in ("/admin/users", "/admin/users/XSS"):
            page = await client.get(path)
            assert page.status_code == 200
            assert hostile not in page.text
            assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
        page = await client.get("/admin/journal", params={"user": hostile})
        assert hostile not in page.text


async def test_the_ops_api_is_documented_in_openapi(ops_system: System) -> None:
    async with httpx.AsyncClient(base_url=ops_system.sync_url) as client:
        spec = (await client.get("/openapi.json")).json()
    paths = set(spec["paths"])
    for path in (
        "/api/v1/ops/users",
        "/api/v1/ops/users/{user}",
        "/api/v1/ops/users/{user}/test-connection",
        "/api/v1/ops/users/{user}/force",
        "/api/v1/ops/users/{user}/force/progress",
        "/api/v1/ops/users/{user}/reconcile",
        "/api/v1/ops/journal",
        "/api/v1/ops/anomalies",
        "/api/v1/ops/anomalies/{anomaly_id}/repair",
        "/api/v1/ops/imported",
        "/api/v1/ops/queues",
        "/api/v1/ops/dead-letters/{group}",
        "/api/v1/ops/dead-letters/{group}/{key}/replay",
        "/api/v1/ops/subscriptions",
    ):
        assert path in paths, path
    assert not any(p.startswith("/admin") for p in paths), "console pages are not part of the API"
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
