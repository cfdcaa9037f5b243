"""The admin console under hostile input: every page behind the login, CSRF on every form, and
user-provided text (names, subjects, journal reasons, flash messages) rendered as inert text.

Already proved in tests/ops/test_ops_access.py: a representative's name is escaped on the users
pages, the login form's own nonce, logout needs the token, three forms refuse a missing token.
This file covers every route of the console, taken from its router, so a new page or form is
checked as soon as it exists.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote

import httpx
from fastapi.routing import APIRoute

from shared.bus import Bus
from shared.envelope import Envelope, Kind, MessageType
from sync_core.console.pages import router
from tests.support.system import ERP_TOKEN, USER_EMAIL, System, eventually

MARKUP = "<script>alert(1)</script>"
ESCAPED = html.escape(MARKUP, quote=False)
PATH_VALUES = {"ref": "REP01", "group": "sync-core", "key": "no-such-letter", "anomaly_id": "1"}
QUERIES = {"/admin/users/{ref}/force": {"direction": "erp_to_outlook", "since": "2030-01-01T00:00:00Z"}}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def console_routes(method: str) -> list[str]:
    """Every console path answering `method`, with its parameters filled in (login excluded)."""
    paths = []
    for route in router.routes:
        if isinstance(route, APIRoute) and method in (route.methods or ()) and route.path != "/admin/login":
            path = route.path
            for name, value in PATH_VALUES.items():
                path = path.replace("{" + name + "}", value)
            paths.append(path)
    assert paths, f"the console has {method} routes"
    return paths


@asynccontextmanager
async def logged_in(system: System) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A console client with a session, and the session's CSRF token."""
    async with httpx.AsyncClient(base_url=system.sync_url, timeout=30) as client:
        page = await client.get("/admin/login")
        nonce = _CSRF.search(page.text)
        assert nonce
        r = await client.post(
            "/admin/login", data={"username": "admin", "password": "admin", "csrf_token": nonce.group(1)}
        )
        assert r.status_code == 303, r.text
        users = await client.get("/admin/users")
        token = _CSRF.search(users.text)
        assert token, "the users page carries the session's CSRF token"
        yield client, token.group(1)


async def rep01(system: System) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=system.erp_url, headers={"Authorization": f"Bearer {ERP_TOKEN}"}) as erp:
        return dict((await erp.get("/api/v1/representatives/REP01")).json())


async def test_every_console_page_needs_a_login(system_in_background: System) -> None:
    system = system_in_background
    async with httpx.AsyncClient(base_url=system.sync_url) as anon:
        for path in console_routes("GET"):
            r = await anon.get(path, params=QUERIES.get(path.replace("REP01", "{ref}")))
            assert r.status_code == 303, (path, r.status_code)
            assert r.headers["location"].startswith("/admin/login?next="), path
            assert USER_EMAIL not in r.text and "REP01" not in r.text.replace(path, "")
            fragment = await anon.get(path, headers={"X-Fragment": "1"})
            assert fragment.status_code == 401, path
    async with httpx.AsyncClient(base_url=system.sync_url, cookies={"sync_admin_session": "forged.cookie"}) as forged:
        for path in console_routes("GET"):
            assert (await forged.get(path)).status_code == 303, path


async def test_every_console_form_needs_a_login_and_the_sessions_csrf_token(system_in_background: System) -> None:
    system = system_in_background
    before = await rep01(system)
    forms = console_routes("POST")
    data = {"direction": "erp_to_outlook", "user": "REP01", "sync_calls": "on", "version": "1"}
    async with httpx.AsyncClient(base_url=system.sync_url) as anon:
        for path in forms:
            r = await anon.post(path, data=data)
            assert r.status_code == 303 and r.headers["location"].startswith("/admin/login"), path
    async with logged_in(system) as (client, token):
        async with logged_in(system) as (_, other_sessions_token):
            assert other_sessions_token != token
            for path in forms:
                for csrf in (None, "", "forged", other_sessions_token, token + "x"):
                    form = data if csrf is None else {**data, "csrf_token": csrf}
                    r = await client.post(path, data=form)
                    assert r.status_code == 403, (path, csrf, r.status_code)
        assert (await client.get("/admin/users")).status_code == 200, "still logged in: the token is the check"
    after = await rep01(system)
    assert after["version"] == before["version"], "no refused form changed the representative"


async def test_user_text_is_rendered_as_inert_text_on_the_console(system_in_background: System) -> None:
    """Subjects (imported activities, R27), journal reasons (R25) and flash messages built from the URL."""
    system = system_in_background
    async with httpx.AsyncClient(base_url=system.erp_url, headers={"Authorization": f"Bearer {ERP_TOKEN}"}) as erp:
        imported = await erp.post(
            "/api/v1/activities",
            json={
                "kind": "task",
                "representative": "REP01",
                "subject": MARKUP,
                "location": '"><img src=x onerror=alert(2)>',
                "origin": "outlook",
                "time_spent_minutes": 5,
            },
            headers={"X-Change-Origin": "outlook"},
        )
        assert imported.status_code == 201, imported.text
    assert system.common is not None
    bus = Bus(system.common, "tests")
    await bus.connect()
    try:
        await bus.publish(
            Envelope(
                type=MessageType.JOURNAL_LINE,
                tenant=system.common.tenant,
                user=USER_EMAIL,
                kind=Kind.EVENT,
                payload={
                    "direction": "outlook_to_erp",
                    "outcome": "failed",
                    "rule": "R11",
                    "reason": f"unknown partner {MARKUP}",
                    "graph_id": "<b>graph</b>",
                    "erp_id": None,
                    "trace_id": None,
                },
            )
        )
    finally:
        await bus.close()
    await eventually(lambda: system.journal(rule="R11", outcome="failed"))
    async with logged_in(system) as (client, token):
        for path in ("/admin/imported", "/admin/journal", "/admin/users/REP01"):
            page = await client.get(path)
            assert page.status_code == 200, path
            assert MARKUP not in page.text and "<img src=x" not in page.text, path
            assert ESCAPED in page.text or html.escape(MARKUP) in page.text, path
        fragment = await client.get("/admin/journal", headers={"X-Fragment": "1"})
        assert MARKUP not in fragment.text and html.escape(MARKUP) in fragment.text
        # A user reference from the URL comes back in the flash message of the refusal (no "/" in a path segment).
        ref = "<svg onload=alert(3)>"
        r = await client.post(f"/admin/users/{quote(ref, safe='')}/reconcile", data={"csrf_token": token})
        assert r.status_code == 303
        page = await client.get(r.headers["location"])
        assert html.escape(ref) in page.text and ref not in page.text, "the flash names the user, as text"
        page = await client.get(f"/admin/users/{quote(ref, safe='')}")
        assert page.status_code == 404 and ref not in page.text
        for path, params in (
            ("/admin/journal", {"user": MARKUP, "rule": MARKUP}),
            ("/admin/imported", {"kind": MARKUP}),
        ):
            page = await client.get(path, params=params)
            assert page.status_code < 500 and MARKUP not in page.text, path


async def test_console_refuses_nul_and_overflowing_numbers_with_a_4xx(system_in_background: System) -> None:
    """These reached the database: a 500 (PostgreSQL refuses NUL; SQLite and PostgreSQL overflow)."""
    system = system_in_background
    async with logged_in(system) as (client, token):
        for path, params in (
            ("/admin/journal", {"user": "ana\x00"}),
            ("/admin/journal", {"offset": str(2**70)}),
            ("/admin/imported", {"offset": str(2**70)}),
            ("/admin/anomalies", {"user": "\x00"}),
        ):
            r = await client.get(path, params=params)
            assert r.status_code == 422, (path, params, r.status_code)
        r = await client.post(f"/admin/anomalies/{2**70}/repair", data={"csrf_token": token})
        assert r.status_code == 422
